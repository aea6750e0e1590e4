"""Ledger tables and the store: rows <-> records, written set-based.

Ids are unsigned 128-bit integers stored as 16-byte big-endian BLOB/BYTEA (ordered like the
integers). Every record's ``timestamp`` is unique across the ledger, assigned at commit, and is
the primary key of its table, so inserts append at the right edge of the B-tree (ADR 0002).

The hot path uses the DB-API cursor under the SQLAlchemy connection: ``executemany`` on SQLite,
``COPY`` and ``unnest`` arrays on PostgreSQL. Queries that are not hot use SQLAlchemy Core.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np
import sqlalchemy as sa
from sqlalchemy import Connection

from entrepot.ledger.machine import AccountEffects, AccountState, PendingState, TransferEffects
from entrepot.ledger.model import (
    NON_POSTING_FLAGS,
    TIME_MAX,
    Account,
    AccountBalance,
    LedgerDefinition,
    PendingStatus,
    Transfer,
)
from entrepot.ledger.plain import PlainBatch
from entrepot.storage.driver import Fast
from entrepot.storage.engine import driver_connection

metadata = sa.MetaData()
#: A ledger's name, in characters (the column's width; PostgreSQL enforces it, SQLite not)
LEDGER_NAME_MAX = 200
_META_COLUMNS = (
    "SELECT version, last_timestamp, max_transfer_id, indexed_upto, unindexed_count, "
    "unindexed_plain, segments_upto, balances_upto, unindexed_segments, unflushed_segments "
    "FROM ledger_meta WHERE id = 1"
)
_META = Fast(_META_COLUMNS)
_META_FOR_UPDATE = Fast(_META_COLUMNS + " FOR UPDATE")
_LOCK_META = Fast("SELECT 1 FROM ledger_meta WHERE id = 1 FOR UPDATE")
_LEDGERS = Fast("SELECT ledger, currency, name FROM ledger_ledgers ORDER BY ledger")
_TS = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid

ledgers_table = sa.Table(
    "ledger_ledgers",
    metadata,
    sa.Column("ledger", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("name", sa.String(LEDGER_NAME_MAX), nullable=False),
)
accounts_table = sa.Table(
    "ledger_accounts",
    metadata,
    sa.Column("timestamp", _TS, primary_key=True, autoincrement=False),
    sa.Column("id", sa.LargeBinary(16), nullable=False, unique=True),
    sa.Column("ledger", sa.BigInteger, sa.ForeignKey("ledger_ledgers.ledger"), nullable=False),
    sa.Column("code", sa.Integer, nullable=False),
    sa.Column("flags", sa.Integer, nullable=False),
    sa.Column("user_data_128", sa.LargeBinary(16)),
    sa.Column("user_data_64", sa.BigInteger, nullable=False),
    sa.Column("user_data_32", sa.BigInteger, nullable=False),
    sa.Column("debits_pending", sa.BigInteger, nullable=False),
    sa.Column("debits_posted", sa.BigInteger, nullable=False),
    sa.Column("credits_pending", sa.BigInteger, nullable=False),
    sa.Column("credits_posted", sa.BigInteger, nullable=False),
    sa.Index("ix_ledger_accounts_ledger_code", "ledger", "code"),
)
transfers_table = sa.Table(
    "ledger_transfers",
    metadata,
    sa.Column("timestamp", _TS, primary_key=True, autoincrement=False),
    sa.Column("id", sa.LargeBinary(16), nullable=False, unique=True),
    sa.Column("debit_account_id", sa.LargeBinary(16), nullable=False),
    sa.Column("credit_account_id", sa.LargeBinary(16), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("pending_id", sa.LargeBinary(16)),
    sa.Column("user_data_128", sa.LargeBinary(16)),
    sa.Column("user_data_64", sa.BigInteger, nullable=False),
    sa.Column("user_data_32", sa.BigInteger, nullable=False),
    sa.Column("timeout", sa.BigInteger, nullable=False),
    sa.Column("ledger", sa.BigInteger, nullable=False),
    sa.Column("code", sa.Integer, nullable=False),
    sa.Column("flags", sa.Integer, nullable=False),
)
pending_table = sa.Table(
    "ledger_pending",
    metadata,
    sa.Column("timestamp", _TS, primary_key=True, autoincrement=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("resolved_timestamp", sa.BigInteger, nullable=False),
    sa.Index(
        "ix_ledger_pending_due",
        "expires_at",
        sqlite_where=sa.text("status = 'pending' AND expires_at > 0"),
        postgresql_where=sa.text("status = 'pending' AND expires_at > 0"),
    ),
)
failed_table = sa.Table(
    "ledger_failed_transfers",
    metadata,
    sa.Column("id", sa.LargeBinary(16), primary_key=True),
    sa.Column("result", sa.String(64), nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
)
history_table = sa.Table(
    "ledger_account_history",
    metadata,
    sa.Column("account_id", sa.LargeBinary(16), primary_key=True),
    sa.Column("timestamp", sa.BigInteger, primary_key=True),
    sa.Column("debits_pending", sa.BigInteger, nullable=False),
    sa.Column("debits_posted", sa.BigInteger, nullable=False),
    sa.Column("credits_pending", sa.BigInteger, nullable=False),
    sa.Column("credits_posted", sa.BigInteger, nullable=False),
)
postings_table = sa.Table(
    "ledger_postings",
    metadata,
    sa.Column("account_id", sa.LargeBinary(16), primary_key=True),
    sa.Column("last_timestamp", sa.BigInteger, primary_key=True),
    sa.Column("first_timestamp", sa.BigInteger, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("timestamps", sa.LargeBinary, nullable=False),
)
segments_table = sa.Table(
    "ledger_transfer_segments",
    metadata,
    sa.Column("first_timestamp", _TS, primary_key=True, autoincrement=False),
    sa.Column("last_timestamp", sa.BigInteger, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("min_id", sa.LargeBinary(16), nullable=False, unique=True),
    sa.Column("max_id", sa.LargeBinary(16), nullable=False),
    sa.Column("accounts", sa.LargeBinary, nullable=False),
    sa.Column("debit_index", sa.LargeBinary, nullable=False),
    sa.Column("credit_index", sa.LargeBinary, nullable=False),
    sa.Column("ids", sa.LargeBinary, nullable=False),
    sa.Column("amounts", sa.LargeBinary, nullable=False),
    sa.Column("ledgers", sa.LargeBinary, nullable=False),
    sa.Column("codes", sa.LargeBinary, nullable=False),
    sa.Column("user_data_128", sa.LargeBinary),
    sa.Column("user_data_64", sa.LargeBinary),
    sa.Column("user_data_32", sa.LargeBinary),
)
meta_table = sa.Table(
    "ledger_meta",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("last_timestamp", sa.BigInteger, nullable=False),
    sa.Column("max_transfer_id", sa.LargeBinary(16), nullable=False),
    sa.Column("indexed_upto", sa.BigInteger, nullable=False),
    sa.Column("unindexed_count", sa.BigInteger, nullable=False),
    sa.Column("unindexed_plain", sa.BigInteger, nullable=False),
    sa.Column("segments_upto", sa.BigInteger, nullable=False),
    sa.Column("balances_upto", sa.BigInteger, nullable=False),
    sa.Column("unindexed_segments", sa.BigInteger, nullable=False),
    sa.Column("unflushed_segments", sa.BigInteger, nullable=False),
)

#: Segment id ranges fetched at once to find transfers by id; beyond, one query per id.
SEGMENT_RANGES_MAX = 256
LOOKUP_CHUNK = 500  # ids per IN (...) at most
#: IN (...) list sizes: a lookup's chunk is padded with NULL up to the smallest that holds it,
#: so a few statements are prepared and reused. Not always 500: SQLite binds and probes every
#: entry of the list, and a payment's lookups of one to four ids cost 160 µs each padded to
#: 500, 8 µs padded to 4.
LOOKUP_SIZES = (4, 32, LOOKUP_CHUNK)
_ZERO16 = bytes(16)
T = TypeVar("T")

_ACCOUNT_COLS = (
    "id, ledger, code, flags, user_data_128, user_data_64, user_data_32, "
    "debits_pending, debits_posted, credits_pending, credits_posted, timestamp"
)
_TRANSFER_COLS = (
    "id, debit_account_id, credit_account_id, amount, pending_id, user_data_128, user_data_64, "
    "user_data_32, timeout, ledger, code, flags, timestamp"
)
_BALANCES = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
_TRANSFER_COLS_T = ", ".join("t." + c.strip() for c in _TRANSFER_COLS.split(","))
# Lookups by id (``LedgerStore._fetch_by_ids`` adds the WHERE)
_SELECT_ACCOUNTS = f"SELECT {_ACCOUNT_COLS} FROM ledger_accounts"
_SELECT_TRANSFERS = f"SELECT {_TRANSFER_COLS} FROM ledger_transfers"
_SELECT_PENDING = (
    f"SELECT {_TRANSFER_COLS_T}, p.status, p.expires_at, p.resolved_timestamp "
    "FROM ledger_transfers t LEFT JOIN ledger_pending p ON p.timestamp = t.timestamp"
)
# load_seen: the transfers and the failed transfers with these ids
_SEEN = (
    f"SELECT {_TRANSFER_COLS}, CAST(NULL AS TEXT) FROM ledger_transfers WHERE id {{in}} "
    "UNION ALL SELECT id, " + "NULL, " * 12 + "result FROM ledger_failed_transfers "
    "WHERE id {in}"
)
_SEEN_PG = _SEEN.replace("{in}", "= ANY(%s)")
_SEEN_SQL: dict[int, str] = {}


def _seen_sql(size: int) -> str:
    sql = _SEEN_SQL.get(size)
    if sql is None:
        sql = _SEEN_SQL[size] = _SEEN.replace("{in}", f"IN ({','.join('?' * size)})")
    return sql


#: Pending transfers due at ``?`` (expires_at <= it) and, in a row of NULLs but the last
#: column, the earliest expiry after ``?`` among those still pending. Both use the partial
#: index ix_ledger_pending_due (its condition is repeated for SQLite to see that it applies).
_DUE_AND_NEXT = (
    f"SELECT {_TRANSFER_COLS_T}, p.expires_at FROM ledger_pending p "
    "JOIN ledger_transfers t ON t.timestamp = p.timestamp "
    "WHERE p.status = 'pending' AND p.expires_at > 0 AND p.expires_at <= ? "
    "UNION ALL SELECT " + "NULL, " * 13 + "(SELECT expires_at FROM ledger_pending "
    "WHERE status = 'pending' AND expires_at > 0 AND expires_at > ? "
    "ORDER BY expires_at LIMIT 1)"
)


def _due_order(p: PendingState) -> tuple[int, int]:
    return p.expires_at, p.transfer.timestamp


#: Posting runs store their timestamps as big-endian int64 (portable across machines).
_RUN_STAMP = ">i8"


#: An opening balance over at most this many earlier transfers is summed from them (a few
#: milliseconds), without counting the later ones to see whether they are fewer
OPENING_SUMMED_MAX = 1_024


def unpack_timestamps(raw: bytes) -> list[int]:
    """The timestamps of a posting run (``write_postings`` packs them)."""
    stamps: list[int] = np.frombuffer(raw, dtype=_RUN_STAMP).tolist()
    return stamps


def _b(value: int) -> bytes:
    return value.to_bytes(16, "big")


def _b0(value: int) -> bytes | None:
    return value.to_bytes(16, "big") if value else None


def _i(raw: bytes | None) -> int:
    return int.from_bytes(raw, "big") if raw else 0


def account_from_row(r: Sequence[Any]) -> Account:
    return Account(_i(r[0]), r[1], r[2], r[3], _i(r[4]), r[5], r[6], r[7], r[8], r[9], r[10], r[11])


def transfer_from_row(r: Sequence[Any]) -> Transfer:
    return Transfer(
        _i(r[0]),
        _i(r[1]),
        _i(r[2]),
        r[3],
        _i(r[4]),
        _i(r[5]),
        r[6],
        r[7],
        r[8],
        r[9],
        r[10],
        r[11],
        r[12],
    )


def transfer_row(t: Transfer) -> tuple[Any, ...]:
    return (
        t.timestamp,
        _b(t.id),
        _b(t.debit_account_id),
        _b(t.credit_account_id),
        t.amount,
        _b0(t.pending_id),
        _b0(t.user_data_128),
        t.user_data_64,
        t.user_data_32,
        t.timeout,
        t.ledger,
        t.code,
        t.flags,
    )


class _Auto:
    """Default marker: read ``Meta.unflushed_after`` from the database."""


AUTO = _Auto()


class Meta(NamedTuple):
    version: int
    last_timestamp: int
    max_transfer_id: int
    indexed_upto: int  # postings of transfers up to this timestamp are merged into runs
    unindexed_count: int  # transfer rows written since indexed_upto
    unindexed_plain: int  # transfers in segments written since indexed_upto
    segments_upto: int  # last timestamp of the newest segment (0: none yet)
    balances_upto: int  # segments up to this timestamp are counted in the balance columns
    unindexed_segments: int  # segments written since indexed_upto
    unflushed_segments: int  # segments written since balances_upto

    @property
    def unflushed_after(self) -> int | None:
        """Segments after this timestamp are not yet in the accounts' balance columns."""
        return self.balances_upto if self.segments_upto > self.balances_upto else None


def _padded(chunk: list[T | None]) -> list[T | None]:
    """``chunk`` (at most LOOKUP_CHUNK ids) padded in place with None to the smallest of
    LOOKUP_SIZES that holds it (NULL matches nothing in ``IN (...)``), so that few distinct
    statements are prepared."""
    n = len(chunk)
    for size in LOOKUP_SIZES:
        if size >= n:
            chunk.extend([None] * (size - n))
            return chunk
    raise ValueError(f"{n} ids are more than a chunk holds")


def padded_chunks(values: Sequence[T]) -> Iterator[list[T | None]]:
    """``values`` in chunks of at most LOOKUP_CHUNK, each :func:`_padded`."""
    for start in range(0, len(values), LOOKUP_CHUNK):
        yield _padded(list(values[start : start + LOOKUP_CHUNK]))


class LedgerStore:
    """SQL for one dialect. Stateless apart from the dialect's placeholder style."""

    def __init__(self, dialect_name: str) -> None:
        self.pg = dialect_name == "postgresql"
        self.ph = "%s" if self.pg else "?"
        self._due_and_next = self._sql(_DUE_AND_NEXT)
        self._in_sqls: dict[tuple[str, str, int], str] = {}

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.pg else text

    # ----------------------------------------------------------------------------- meta
    def begin_write(self, conn: Connection) -> Meta:
        """Start the write transaction and serialise writers: SQLite's ``BEGIN IMMEDIATE``
        holds the database's write lock; on PostgreSQL the meta row's lock does the same."""
        return self.read_meta(conn, lock=self.pg)

    def take_write_lock(self, conn: Connection) -> None:
        """Serialise ``conn``'s transaction with every writer, as :meth:`begin_write` does,
        for a caller that does not need the meta (another context's unit of work): SQLite's
        ``BEGIN IMMEDIATE`` (the engine begins every write transaction so; no statement needed),
        PostgreSQL's lock on the meta row."""
        if self.pg:
            _LOCK_META.first(conn)
        elif not conn.in_transaction():
            conn.begin()

    def read_meta(self, conn: Connection, *, lock: bool = False) -> Meta:
        """The meta row (``lock``: and its row lock, on PostgreSQL). Every write transaction
        reads it; the connection's transaction is begun first if it is not (the engine's
        ``BEGIN IMMEDIATE`` for a writer on SQLite)."""
        row = (_META_FOR_UPDATE if lock else _META).first(conn)
        if row is None:
            raise RuntimeError("the ledger's meta row is missing: run the migrations")
        return Meta(row[0], row[1], _i(row[2]), *row[3:])

    def save_meta(self, conn: Connection, meta: Meta) -> None:
        cur = driver_connection(conn).cursor()
        cur.execute(
            self._sql(
                "UPDATE ledger_meta SET version = ?, last_timestamp = ?, max_transfer_id = ?, "
                "indexed_upto = ?, unindexed_count = ?, unindexed_plain = ?, segments_upto = ?, "
                "balances_upto = ?, unindexed_segments = ?, unflushed_segments = ? WHERE id = 1"
            ),
            (
                meta.version,
                meta.last_timestamp,
                _b(meta.max_transfer_id),
                meta.indexed_upto,
                meta.unindexed_count,
                meta.unindexed_plain,
                meta.segments_upto,
                meta.balances_upto,
                meta.unindexed_segments,
                meta.unflushed_segments,
            ),
        )

    # ----------------------------------------------------------------------------- postings
    def tail_postings(self, conn: Connection, after_ts: int) -> dict[int, list[int]]:
        """account id -> timestamps of its transfers after ``after_ts`` (not yet merged)."""
        cur = driver_connection(conn).cursor()
        cur.execute(
            self._sql(
                "SELECT timestamp, debit_account_id, credit_account_id FROM ledger_transfers "
                "WHERE timestamp > ? ORDER BY timestamp"
            ),
            (after_ts,),
        )
        tail: dict[int, list[int]] = {}
        for ts, dr, cr in cur.fetchall():
            tail.setdefault(_i(dr), []).append(ts)
            tail.setdefault(_i(cr), []).append(ts)
        return tail

    def write_postings(
        self, conn: Connection, tail: dict[int, list[int]], segments_after: int
    ) -> None:
        """Merge the unmerged postings into one run per account: ``tail`` holds those of the
        transfer rows, and the segments after ``segments_after`` are read here."""
        number: dict[bytes, int] = {}  # account id -> its number in this merge
        groups: list[Any] = []  # per posting: the account's number ...
        stamps: list[Any] = []  # ... and the transfer's timestamp
        for account, account_stamps in tail.items():
            groups.append(np.full(len(account_stamps), number.setdefault(_b(account), len(number))))
            stamps.append(np.array(account_stamps, dtype=np.int64))
        cur = driver_connection(conn).cursor()
        cur.execute(
            self._sql(
                "SELECT first_timestamp, count, accounts, debit_index, credit_index "
                "FROM ledger_transfer_segments WHERE first_timestamp > ? ORDER BY first_timestamp"
            ),
            (segments_after,),
        )
        for first, count, accounts, dr, cr in cur.fetchall():
            raw = bytes(accounts)
            local = np.array(
                [number.setdefault(raw[i : i + 16], len(number)) for i in range(0, len(raw), 16)],
                dtype=np.int64,
            )
            # Both postings of each transfer, in time order: (debit, credit), (debit, credit)...
            pair = np.stack([np.frombuffer(dr, dtype="<u4"), np.frombuffer(cr, dtype="<u4")], 1)
            groups.append(local[pair.ravel()])
            stamps.append(np.repeat(np.arange(first, first + count, dtype=np.int64), 2))
        if not groups:
            return
        g = np.concatenate(groups)
        ts = np.concatenate(stamps)
        if tail:  # transfer rows and segments interleave in time: put them in order
            order = np.argsort(ts, kind="stable")
            g, ts = g[order], ts[order]
        order = _radix_order(g, len(number))  # stable: each account's postings stay in time order
        g, ts = g[order], ts[order]
        starts = [0, *(np.flatnonzero(g[1:] != g[:-1]) + 1).tolist()]
        ends = [*starts[1:], len(ts)]
        key_of = list(number)
        packed = ts.astype(_RUN_STAMP)
        rows = [
            (key_of[k], int(ts[e - 1]), int(ts[b]), e - b, packed[b:e].tobytes())
            for k, b, e in zip(g[starts].tolist(), starts, ends, strict=True)
        ]
        cur.executemany(
            self._sql(
                "INSERT INTO ledger_postings (account_id, last_timestamp, first_timestamp, "
                "count, timestamps) VALUES (?,?,?,?,?)"
            ),
            rows,
        )

    def account_timestamps(
        self,
        conn: Connection,
        account_id: int,
        since_ns: int,
        until_ns: int,
        limit: int | None = None,
    ) -> list[int]:
        """Timestamps of the account's transfers in ``[since_ns, until_ns]``, ascending: the
        first ``limit`` of them where given (:meth:`account_stamps`)."""
        found = self.account_stamps(conn, account_id, since_ns, until_ns, limit)
        stamps: list[int] = found.tolist()
        return stamps

    def account_stamps(
        self,
        conn: Connection,
        account_id: int,
        since_ns: int,
        until_ns: int,
        limit: int | None = None,
    ) -> Any:
        """:meth:`account_timestamps` as an int64 array. With ``limit``, the first ``limit``
        of them, read no further than it takes to find them: the posting runs' counts pick
        the runs that hold them (one more where a run spans ``since_ns``), and the unmerged
        transfers are read up to ``limit`` (a statement checked its row limit on the whole
        period's timestamps, read first: a period far over it was read whole to be refused,
        a review)."""
        meta = self.read_meta(conn)
        key = _b(account_id)
        cur = driver_connection(conn).cursor()
        parts: list[Any] = []
        found = 0
        runs_until = until_ns
        if limit is not None:  # the runs that hold the first ``limit``: counted, not read
            cur.execute(
                self._sql(
                    "SELECT first_timestamp, last_timestamp, count FROM ledger_postings "
                    "WHERE account_id = ? AND last_timestamp >= ? AND first_timestamp <= ? "
                    "ORDER BY last_timestamp"
                ),
                (key, since_ns, until_ns),
            )
            counted = 0
            for first, last, count in cur.fetchall():
                runs_until = min(until_ns, int(last))
                if first >= since_ns:  # a run spanning since_ns may hold fewer: not counted
                    counted += int(count)
                if counted >= limit:
                    break
        cur.execute(
            self._sql(
                "SELECT timestamps FROM ledger_postings WHERE account_id = ? "
                "AND last_timestamp >= ? AND first_timestamp <= ? ORDER BY last_timestamp"
            ),
            (key, since_ns, runs_until),
        )
        for (raw,) in cur.fetchall():
            run = np.frombuffer(raw, dtype=_RUN_STAMP)
            lo = int(np.searchsorted(run, since_ns))
            hi = int(np.searchsorted(run, until_ns, side="right"))
            parts.append(run[lo:hi])
            found += hi - lo
        if limit is not None and found >= limit:
            return _joined(parts)[:limit].astype(np.int64)
        left = None if limit is None else limit - found
        cur.execute(
            self._sql(
                "SELECT timestamp FROM ledger_transfers WHERE timestamp > ? AND timestamp >= ? "
                "AND timestamp <= ? AND (debit_account_id = ? OR credit_account_id = ?) "
                "ORDER BY timestamp" + ("" if left is None else " LIMIT ?")
            ),
            (meta.indexed_upto, since_ns, until_ns, key, key) + (() if left is None else (left,)),
        )
        tail = [np.array([r[0] for r in cur.fetchall()], dtype=np.int64)]
        cur.execute(
            self._sql(
                "SELECT first_timestamp, accounts, debit_index, credit_index "
                "FROM ledger_transfer_segments WHERE first_timestamp > ? "
                "AND last_timestamp >= ? AND first_timestamp <= ? ORDER BY first_timestamp"
            ),
            (meta.indexed_upto, since_ns, until_ns),
        )
        in_segments = 0
        while left is None or in_segments < left:
            row = cur.fetchone()
            if row is None:
                break
            first, accounts, dr, cr = row
            k = _find16(bytes(accounts), key)
            if k < 0:
                continue
            hits = np.flatnonzero(
                (np.frombuffer(dr, dtype="<u4") == k) | (np.frombuffer(cr, dtype="<u4") == k)
            ) + int(first)
            hits = hits[(hits >= since_ns) & (hits <= until_ns)]
            tail.append(hits)
            in_segments += len(hits)
        cur.close()
        unmerged = np.sort(np.concatenate(tail).astype(np.int64))
        if left is not None:
            unmerged = unmerged[:left]
        return _joined([*parts, unmerged]).astype(np.int64)

    def account_stamps_at(
        self,
        conn: Connection,
        account_id: int,
        since_ns: int,
        until_ns: int,
        positions: Sequence[int],
        limit: int,
    ) -> tuple[int, list[int | None]]:
        """(n, stamps): how many of the account's transfers are in ``[since_ns, until_ns]``,
        ``limit`` at most (the range read no further), and the timestamps of the
        ``positions``-th of them (from 0; None at or past n). The merged ones are found from
        the posting runs (:meth:`account_stamps`, their counts picking the runs); the
        unmerged ones, where they are rows alone, are counted and found by the database
        (``COUNT``, ``OFFSET``) without their timestamps read into Python: a statement's
        page read the whole period's to find where it starts (a review); where unmerged
        segments interleave, those are read (the merge thresholds bound them)."""
        meta = self.read_meta(conn)
        n = 0
        found: dict[int, int] = {}
        if since_ns <= meta.indexed_upto:
            merged_until = min(until_ns, meta.indexed_upto)
            merged = self.account_stamps(conn, account_id, since_ns, merged_until, limit)
            n = len(merged)
            found = {p: int(merged[p]) for p in positions if 0 <= p < n}
        if n < limit and until_ns > meta.indexed_upto:
            lo, left = max(since_ns, meta.indexed_upto + 1), limit - n
            key = _b(account_id)
            cur = driver_connection(conn).cursor()
            cur.execute(
                self._sql(
                    "SELECT 1 FROM ledger_transfer_segments WHERE first_timestamp > ? "
                    "AND last_timestamp >= ? AND first_timestamp <= ? LIMIT 1"
                ),
                (meta.indexed_upto, lo, until_ns),
            )
            if cur.fetchone() is None:  # rows alone
                rows = (
                    "FROM ledger_transfers WHERE timestamp >= ? AND timestamp <= ? "
                    "AND (debit_account_id = ? OR credit_account_id = ?)"
                )
                cur.execute(
                    self._sql(f"SELECT COUNT(*) FROM (SELECT 1 {rows} LIMIT ?) AS r"),
                    (lo, until_ns, key, key, left),
                )
                count = int(cur.fetchone()[0])
                at = self._sql(f"SELECT timestamp {rows} ORDER BY timestamp LIMIT 1 OFFSET ?")
                for p in positions:
                    if n <= p < n + count:
                        cur.execute(at, (lo, until_ns, key, key, p - n))
                        found[p] = int(cur.fetchone()[0])
            else:
                tail = self.account_stamps(conn, account_id, lo, until_ns, left)
                count = len(tail)
                found.update({p: int(tail[p - n]) for p in positions if n <= p < n + count})
            cur.close()
            n += count
        return n, [found.get(p) for p in positions]

    def transfers_at(self, conn: Connection, stamps: Sequence[int]) -> list[Transfer]:
        """Transfers by timestamp, in the order given."""
        if not stamps:
            return []
        cur = driver_connection(conn).cursor()
        found: dict[int, Transfer] = {}
        sql = f"SELECT {_TRANSFER_COLS} FROM ledger_transfers WHERE timestamp IN ({{}})"
        for chunk in padded_chunks(stamps):
            cur.execute(sql.format(",".join([self.ph] * len(chunk))), chunk)
            for r in cur.fetchall():
                t = transfer_from_row(r)
                found[t.timestamp] = t
        missing = [ts for ts in stamps if ts not in found]
        if missing:
            found.update(self._segment_transfers_at(cur, missing))
        return [found[ts] for ts in stamps]

    # ----------------------------------------------------------------------------- ledgers
    def load_ledgers(self, conn: Connection) -> list[LedgerDefinition]:
        """Read at the start of every write after another process wrote (the ledger cache's
        version changed): on the driver's cursor, a tenth of SQLAlchemy's cost."""
        return [LedgerDefinition(*r) for r in _LEDGERS.all(conn)]

    def upsert_ledger(self, conn: Connection, d: LedgerDefinition) -> None:
        existing = conn.execute(
            sa.select(ledgers_table).where(ledgers_table.c.ledger == d.ledger)
        ).first()
        if existing is None:
            conn.execute(sa.insert(ledgers_table).values(d._asdict()))

    # ----------------------------------------------------------------------------- lookups
    def _fetch_by_ids(
        self, conn: Connection, select_sql: str, column: str, ids: Iterable[int]
    ) -> list[Any]:
        keys: list[bytes | None] = [_b(i) for i in ids]
        if not keys:
            return []
        cur = driver_connection(conn).cursor()
        if self.pg:
            # Planned for these ids each time: a prepared (generic) plan chosen while the
            # table was small stays a sequential scan as it grows (ADR 0003: plain batches
            # leave the row tables small at first).
            cur.execute(f"{select_sql} WHERE {column} = ANY(%s)", (keys,), prepare=False)
            return list(cur.fetchall())
        if len(keys) <= LOOKUP_CHUNK:  # one chunk (a payment's lookups: one to five ids)
            keys = _padded(keys)
            return cur.execute(self._in_sql(select_sql, column, len(keys)), keys).fetchall()  # type: ignore[no-any-return]
        out: list[Any] = []
        for chunk in padded_chunks(keys):
            out.extend(cur.execute(self._in_sql(select_sql, column, len(chunk)), chunk).fetchall())
        return out

    def _in_sql(self, select_sql: str, column: str, size: int) -> str:
        """``select_sql`` for ids ``IN`` a list of ``size`` placeholders, built once."""
        key = (select_sql, column, size)
        sql = self._in_sqls.get(key)
        if sql is None:
            sql = self._in_sqls[key] = f"{select_sql} WHERE {column} IN ({','.join('?' * size)})"
        return sql

    def load_accounts(
        self, conn: Connection, ids: Iterable[int], unflushed_after: int | _Auto | None = AUTO
    ) -> list[Account]:
        """Accounts by id, with their current balances. The segments after
        ``unflushed_after`` (``Meta.unflushed_after``; read from the meta row unless given)
        are added to the balance columns read (ADR 0003)."""
        if isinstance(unflushed_after, _Auto):  # the meta first: it begins the transaction
            unflushed_after = self.read_meta(conn).unflushed_after
        rows = self._fetch_by_ids(conn, _SELECT_ACCOUNTS, "id", ids)
        if unflushed_after is not None and rows:
            deltas = self.segment_deltas(conn, unflushed_after)
            rows = [_overlay(r, deltas.get(bytes(r[0]))) for r in rows]
        return [account_from_row(r) for r in rows]

    def load_transfers(
        self, conn: Connection, ids: Iterable[int], *, segments: bool = True
    ) -> list[Transfer]:
        """Transfers by id (those not found are left out). ``segments=False``: the caller
        knows that no segment exists (``Meta.segments_upto`` is 0), so none is looked in."""
        ids = list(ids)
        rows = self._fetch_by_ids(conn, _SELECT_TRANSFERS, "id", ids)
        out = [transfer_from_row(r) for r in rows]
        if segments and len(out) < len(ids):
            found = {t.id for t in out}
            cur = driver_connection(conn).cursor()
            out.extend(self._segment_transfers(cur, [i for i in ids if i not in found]))
        return out

    def load_seen(
        self, conn: Connection, ids: Iterable[int], *, segments: bool = True
    ) -> tuple[list[Transfer], dict[int, str]]:
        """:meth:`load_transfers` of these ids, and those of them that failed (id -> result),
        both tables read in one statement (a ``UNION ALL``; a failed id's row has a result,
        a transfer's none): what every batch decided event by event looks up for its ids."""
        ids = list(ids)
        keys: list[bytes | None] = [_b(i) for i in ids]
        if not keys:
            return [], {}
        cur = driver_connection(conn).cursor()
        if self.pg:  # planned for these ids each time, as _fetch_by_ids says
            cur.execute(_SEEN_PG, (keys, keys), prepare=False)
            rows = cur.fetchall()
        elif len(keys) <= LOOKUP_CHUNK:
            keys = _padded(keys)
            rows = cur.execute(_seen_sql(len(keys)), keys + keys).fetchall()
        else:
            rows = []
            for chunk in padded_chunks(keys):
                rows.extend(cur.execute(_seen_sql(len(chunk)), chunk + chunk).fetchall())
        out: list[Transfer] = []
        failed: dict[int, str] = {}
        for r in rows:
            if r[13] is None:
                out.append(transfer_from_row(r))
            else:
                failed[_i(r[0])] = r[13]
        if segments and len(out) < len(ids):
            found = {t.id for t in out}
            out.extend(self._segment_transfers(cur, [i for i in ids if i not in found]))
        return out, failed

    def load_pending(
        self, conn: Connection, ids: Iterable[int], *, segments: bool = True
    ) -> dict[int, PendingState]:
        """Transfers that posts/voids refer to, with their pending status (None if not pending).
        ``segments`` as for :meth:`load_transfers`."""
        ids = list(ids)
        rows = self._fetch_by_ids(conn, _SELECT_PENDING, "t.id", ids)
        out: dict[int, PendingState] = {}
        for r in rows:
            t = transfer_from_row(r)
            status = PendingStatus(r[13]) if r[13] is not None else None
            out[t.id] = PendingState(t, status, r[14] or 0, r[15] or 0)
        missing = [i for i in ids if i not in out] if segments else None
        if missing:  # a plain transfer in a segment is never pending
            cur = driver_connection(conn).cursor()
            for t in self._segment_transfers(cur, missing):
                out[t.id] = PendingState(t, None)
        return out

    def load_due_pending(self, conn: Connection, now_ns: int) -> list[PendingState]:
        cur = driver_connection(conn).cursor()
        cur.execute(
            self._sql(
                f"SELECT {_TRANSFER_COLS_T}, p.expires_at FROM ledger_pending p "
                "JOIN ledger_transfers t ON t.timestamp = p.timestamp "
                "WHERE p.status = 'pending' AND p.expires_at > 0 AND p.expires_at <= ? "
                "ORDER BY p.expires_at, p.timestamp"
            ),
            (now_ns,),
        )
        return [
            PendingState(transfer_from_row(r), PendingStatus.PENDING, r[13]) for r in cur.fetchall()
        ]

    def load_due_and_next(
        self, conn: Connection, now_ns: int
    ) -> tuple[list[PendingState], int | None]:
        """:meth:`load_due_pending`, and in the same statement the earliest expiry after
        ``now_ns`` of the transfers still pending (None if there is none): until then no
        pending transfer can be due unless one is written."""
        cur = driver_connection(conn).cursor()
        cur.execute(self._due_and_next, (now_ns, now_ns))
        due = []
        after = None
        for r in cur.fetchall():
            if r[0] is None:  # the earliest expiry's row: a due row's id is never NULL
                after = r[13]
            else:
                due.append(PendingState(transfer_from_row(r), PendingStatus.PENDING, r[13]))
        if len(due) > 1:  # as load_due_pending orders them (a timestamp is unique)
            due.sort(key=_due_order)
        return due, after

    # ----------------------------------------------------------------------------- writes
    def write_accounts(self, conn: Connection, fx: AccountEffects) -> None:
        if not fx.created:
            return
        rows = [
            (
                a.timestamp,
                _b(a.id),
                a.ledger,
                a.code,
                a.flags,
                _b0(a.user_data_128),
                a.user_data_64,
                a.user_data_32,
                0,
                0,
                0,
                0,
            )
            for a in fx.created
        ]
        cur = driver_connection(conn).cursor()
        cur.executemany(
            self._sql(
                "INSERT INTO ledger_accounts (timestamp, id, ledger, code, flags, user_data_128, "
                "user_data_64, user_data_32, debits_pending, debits_posted, credits_pending, "
                "credits_posted) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
            ),
            rows,
        )

    def write_transfers(self, conn: Connection, fx: TransferEffects) -> None:
        cur = driver_connection(conn).cursor()
        if fx.created:
            self._insert_transfers(cur, [transfer_row(t) for t in fx.created])
        if fx.touched:
            self._update_balances(cur, fx.touched.values())
        if fx.pending_created:
            cur.executemany(
                self._sql(
                    "INSERT INTO ledger_pending (timestamp, status, expires_at, "
                    "resolved_timestamp) VALUES (?,?,?,?)"
                ),
                [
                    (p.transfer.timestamp, p.status, p.expires_at, p.resolved_timestamp)
                    for p in fx.pending_created
                ],
            )
        if fx.pending_resolved:
            # A pending transfer created and resolved in this batch (an FX reservation that
            # the prepare posting it also releases) was inserted with its final status above.
            new = {id(p) for p in fx.pending_created}
            resolved = [
                (p.status, p.resolved_timestamp, p.transfer.timestamp)
                for p in fx.pending_resolved
                if id(p) not in new
            ]
            if resolved:
                cur.executemany(
                    self._sql(
                        "UPDATE ledger_pending SET status = ?, resolved_timestamp = ? "
                        "WHERE timestamp = ?"
                    ),
                    resolved,
                )
        if fx.failed:
            cur.executemany(
                self._sql(
                    "INSERT INTO ledger_failed_transfers (id, result, timestamp) VALUES (?,?,?)"
                ),
                [(_b(i), r, ts) for i, r, ts in fx.failed],
            )
        if fx.history:
            cur.executemany(
                self._sql(
                    "INSERT INTO ledger_account_history (account_id, timestamp, debits_pending, "
                    "debits_posted, credits_pending, credits_posted) VALUES (?,?,?,?,?,?)"
                ),
                [(_b(h.account_id), *h[1:]) for h in fx.history],
            )

    def _insert_transfers(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        if not self.pg:
            cur.executemany(
                "INSERT INTO ledger_transfers (timestamp, id, debit_account_id, "
                "credit_account_id, amount, pending_id, user_data_128, user_data_64, "
                "user_data_32, timeout, ledger, code, flags) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            return
        with cur.copy(
            "COPY ledger_transfers (timestamp, id, debit_account_id, credit_account_id, amount, "
            "pending_id, user_data_128, user_data_64, user_data_32, timeout, ledger, code, "
            "flags) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(
                [
                    "int8",
                    "bytea",
                    "bytea",
                    "bytea",
                    "int8",
                    "bytea",
                    "bytea",
                    "int8",
                    "int8",
                    "int8",
                    "int8",
                    "int4",
                    "int4",
                ]
            )
            for row in rows:
                copy.write_row(row)

    def _update_balances(self, cur: Any, touched: Iterable[AccountState]) -> None:
        rows = [(a.dp, a.dpo, a.cp, a.cpo, a.timestamp) for a in touched]
        self._set_balances(cur, _BALANCES, rows)

    def _set_balances(
        self, cur: Any, columns: Sequence[str], rows: Sequence[tuple[int, ...]]
    ) -> None:
        """Set these balance columns of accounts, set-based: each row holds their values
        and, last, the account's timestamp."""
        if not rows:
            return
        if not self.pg:
            sets = ", ".join(f"{c} = ?" for c in columns)
            cur.executemany(f"UPDATE ledger_accounts SET {sets} WHERE timestamp = ?", rows)
            return
        names = [f"v{i}" for i in range(len(columns))]
        sets = ", ".join(f"{c} = v.{n}" for c, n in zip(columns, names, strict=True))
        values = ", ".join(f"unnest(%b::int8[]) AS {n}" for n in (*names, "ts"))
        cur.execute(
            f"UPDATE ledger_accounts AS a SET {sets} FROM (SELECT {values}) AS v "
            "WHERE a.timestamp = v.ts",
            [list(c) for c in zip(*rows, strict=True)],
        )

    # ----------------------------------------------------------------------------- queries
    def account_transfers(
        self,
        conn: Connection,
        account_id: int,
        since_ns: int,
        until_ns: int,
        limit: int,
        *,
        debits: bool = True,
        credits: bool = True,
        reverse: bool = False,
    ) -> list[Transfer]:
        if not (debits or credits):
            return []
        stamps = self.account_timestamps(conn, account_id, since_ns, until_ns)
        if reverse:
            stamps.reverse()
        out: list[Transfer] = []
        for start in range(0, len(stamps), LOOKUP_CHUNK):
            for t in self.transfers_at(conn, stamps[start : start + LOOKUP_CHUNK]):
                if (debits and t.debit_account_id == account_id) or (
                    credits and t.credit_account_id == account_id
                ):
                    out.append(t)
                    if len(out) == limit:
                        return out
        return out

    def account_history(
        self,
        conn: Connection,
        account_id: int,
        since_ns: int,
        until_ns: int,
        limit: int,
        reverse: bool = False,
    ) -> list[AccountBalance]:
        order = "DESC" if reverse else "ASC"
        cur = driver_connection(conn).cursor()
        cur.execute(
            self._sql(
                "SELECT timestamp, debits_pending, debits_posted, credits_pending, credits_posted "
                "FROM ledger_account_history WHERE account_id = ? AND timestamp >= ? "
                f"AND timestamp <= ? ORDER BY timestamp {order} LIMIT ?"
            ),
            (_b(account_id), since_ns, until_ns, limit),
        )
        return [AccountBalance(account_id, *r) for r in cur.fetchall()]

    def posted_sums_before(
        self,
        conn: Connection,
        account_id: int,
        before_ns: int,
        posted: tuple[int, int] | None = None,
        *,
        history: bool = False,
    ) -> tuple[int, int]:
        """(debits, credits) posted to the account by transfers before ``before_ns``.

        ``history``: the account keeps its balances after each change (the ``history``
        flag): they are its last history row's before ``before_ns``, one lookup on the
        table's key, whatever the account's age (a statement page's opening balance was
        summed from up to half the account's history; position accounts have the flag).

        ``posted``: the account's (debits, credits) posted now, read in the same snapshot.
        Then, where fewer of its transfers come at or after ``before_ns`` than before it,
        those are subtracted from it instead of every earlier one being summed: the posted
        balances are the sums of the posted transfers (``check_invariants`` holds the
        ledger to it), and a statement of a recent period read the account's whole history,
        its cost growing with the account's age (found by a review). Which side is the
        smaller is told without reading the merged history's timestamps (a second review:
        reading the later side's to count them made an early period pay for all of it):
        :meth:`_later_is_fewer`. The side is summed by :meth:`_range_sums`."""
        if before_ns <= 0:
            return 0, 0
        if history:
            cur = driver_connection(conn).cursor()
            cur.execute(
                self._sql(
                    "SELECT debits_posted, credits_posted FROM ledger_account_history "
                    "WHERE account_id = ? AND timestamp < ? ORDER BY timestamp DESC LIMIT 1"
                ),
                (_b(account_id), before_ns),
            )
            row = cur.fetchone()
            cur.close()
            return (int(row[0]), int(row[1])) if row is not None else (0, 0)
        if posted is not None and self._later_is_fewer(conn, account_id, before_ns):
            debits, credits = self._range_sums(conn, account_id, before_ns, TIME_MAX)
            return posted[0] - debits, posted[1] - credits
        return self._range_sums(conn, account_id, 0, before_ns - 1)

    def _later_is_fewer(self, conn: Connection, account_id: int, before_ns: int) -> bool:
        """Whether fewer of the account's transfers come at or after ``before_ns`` than
        before it. Counted without reading the merged history: its posting runs' counts on
        each side (an account's runs cover disjoint times, so one run at most spans
        ``before_ns``, and that one is read and split), and the account's transfers not yet
        merged into runs, counted in the database (:meth:`_tail_sums`), which the merge
        thresholds bound. (A first cut counted a spanning run whole as later and every
        account's unmerged transfers as this one's: the history was summed where a few
        transfers would do; a review.)"""
        meta = self.read_meta(conn)
        key = _b(account_id)
        cur = driver_connection(conn).cursor()
        cur.execute(
            self._sql(
                "SELECT COALESCE(SUM(CASE WHEN last_timestamp < ? THEN count END), 0), "
                "COALESCE(SUM(CASE WHEN first_timestamp >= ? THEN count END), 0) "
                "FROM ledger_postings WHERE account_id = ?"
            ),
            (before_ns, before_ns, key),
        )
        earlier, later = (int(n) for n in cur.fetchone())
        cur.execute(
            self._sql(
                "SELECT timestamps FROM ledger_postings WHERE account_id = ? "
                "AND first_timestamp < ? AND last_timestamp >= ?"
            ),
            (key, before_ns, before_ns),
        )
        for (raw,) in cur.fetchall():  # the run spanning the period's start, if any
            stamps = np.frombuffer(raw, dtype=_RUN_STAMP)
            split = int(np.searchsorted(stamps, before_ns))
            earlier += split
            later += len(stamps) - split
        cur.close()
        unmerged = meta.indexed_upto + 1  # the account's transfers from here are in no run
        if before_ns > unmerged:
            earlier += self._tail_sums(conn, meta, key, unmerged, before_ns - 1)[0]
        if earlier <= OPENING_SUMMED_MAX:  # summed outright: the later side is not counted
            return False
        later += self._tail_sums(conn, meta, key, max(unmerged, before_ns), TIME_MAX)[0]
        return later < earlier

    def _range_sums(
        self, conn: Connection, account_id: int, since_ns: int, until_ns: int
    ) -> tuple[int, int]:
        """(debits, credits) posted to the account by its transfers in ``[since_ns,
        until_ns]``: those merged into posting runs found by their timestamps and summed by
        :meth:`_posted_sums`, the others summed in the database (:meth:`_tail_sums`). Each
        was loaded as a whole transfer (some 10 µs apiece), and a statement page's opening
        balance sums up to half its account's history: reading every page of a long
        statement cost some 3.3x the whole statement (a review)."""
        meta = self.read_meta(conn)
        debits = credits = 0
        if since_ns <= meta.indexed_upto:
            merged_until = min(until_ns, meta.indexed_upto)
            stamps = self.account_stamps(conn, account_id, since_ns, merged_until)
            debits, credits = self._posted_sums(conn, account_id, stamps)
        if until_ns > meta.indexed_upto:
            lo = max(since_ns, meta.indexed_upto + 1)
            _, tail_debits, tail_credits = self._tail_sums(conn, meta, _b(account_id), lo, until_ns)
            debits += tail_debits
            credits += tail_credits
        return debits, credits

    def _tail_sums(
        self, conn: Connection, meta: Meta, key: bytes, since_ns: int, until_ns: int
    ) -> tuple[int, int, int]:
        """(how many, debits posted, credits posted) of the transfers of the account ``key``
        in ``[since_ns, until_ns]`` not yet merged into posting runs (after
        ``meta.indexed_upto``): the rows' counted and summed by one query, the segments'
        from their packed columns. The merge thresholds bound what either reads."""
        cur = driver_connection(conn).cursor()
        cur.execute(
            self._sql(
                "SELECT COUNT(*), "
                "COALESCE(SUM(CASE WHEN (flags & ?) = 0 AND debit_account_id = ? "
                "THEN amount ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN (flags & ?) = 0 AND credit_account_id = ? "
                "THEN amount ELSE 0 END), 0) "
                "FROM ledger_transfers WHERE timestamp > ? AND timestamp >= ? "
                "AND timestamp <= ? AND (debit_account_id = ? OR credit_account_id = ?)"
            ),
            (*(NON_POSTING_FLAGS, key) * 2, meta.indexed_upto, since_ns, until_ns, key, key),
        )
        count, debits, credits = (int(n) for n in cur.fetchone())
        cur.execute(
            self._sql(
                "SELECT first_timestamp, accounts, debit_index, credit_index, amounts "
                "FROM ledger_transfer_segments WHERE first_timestamp > ? "
                "AND last_timestamp >= ? AND first_timestamp <= ? ORDER BY first_timestamp"
            ),
            (meta.indexed_upto, since_ns, until_ns),
        )
        for first, accounts, dr, cr, amounts in cur.fetchall():
            k = _find16(bytes(accounts), key)
            if k < 0:
                continue
            stamps = np.arange(int(first), int(first) + len(amounts) // 8, dtype=np.int64)
            inside = (stamps >= since_ns) & (stamps <= until_ns)
            is_debit = (np.frombuffer(dr, dtype="<u4") == k) & inside
            is_credit = (np.frombuffer(cr, dtype="<u4") == k) & inside
            a = np.frombuffer(amounts, dtype="<i8")
            count += int(np.count_nonzero(is_debit | is_credit))
            debits += int(a[is_debit].sum())
            credits += int(a[is_credit].sum())
        cur.close()
        return count, debits, credits

    def _posted_sums(
        self, conn: Connection, account_id: int, stamps: Sequence[int]
    ) -> tuple[int, int]:
        """(debits, credits) the account's transfers at ``stamps`` posted to it, no transfer
        loaded: the rows' amounts read ``LOOKUP_CHUNK`` timestamps at a time, three columns
        of them, and the segments' (plain batches, all posting) summed from their packed
        columns. Each was loaded as a whole transfer (some 10 µs apiece), and a statement
        page's opening balance sums up to half its account's history: reading every page of
        a long statement cost some 3.3x the whole statement (a review)."""
        at = np.asarray(stamps, dtype=np.int64)
        if not len(at):
            return 0, 0
        key = _b(account_id)
        cur = driver_connection(conn).cursor()
        sql = self._sql(
            "SELECT timestamp, "
            "CASE WHEN (flags & ?) = 0 AND debit_account_id = ? THEN amount ELSE 0 END, "
            "CASE WHEN (flags & ?) = 0 AND credit_account_id = ? THEN amount ELSE 0 END "
            "FROM ledger_transfers WHERE timestamp IN ({})"
        )
        found: list[Any] = []
        debits = credits = 0
        for chunk in padded_chunks(at.tolist()):
            cur.execute(
                sql.format(",".join([self.ph] * len(chunk))),
                (NON_POSTING_FLAGS, key, NON_POSTING_FLAGS, key, *chunk),
            )
            for ts, debit, credit in cur.fetchall():
                found.append(ts)
                debits += debit
                credits += credit
        # not rows: in segments
        left = at[~np.isin(at, np.array(found, dtype=np.int64))] if found else at
        if len(left):
            d, c = self._segment_sums_at(cur, key, left)
            debits += d
            credits += c
        return int(debits), int(credits)

    def _segment_sums_at(self, cur: Any, key: bytes, stamps: Any) -> tuple[int, int]:
        """(debits, credits) posted to the account ``key`` by the segments' transfers at
        ``stamps`` (ascending; stamps in no segment are left out)."""
        sql = self._sql(
            "SELECT first_timestamp, last_timestamp FROM ledger_transfer_segments "
            "WHERE first_timestamp <= ? ORDER BY first_timestamp DESC LIMIT 1"
        )
        columns = self._sql(
            "SELECT accounts, debit_index, credit_index, amounts FROM ledger_transfer_segments "
            "WHERE first_timestamp = ?"
        )
        debits = credits = 0
        i, n = 0, len(stamps)
        while i < n:
            cur.execute(sql, (int(stamps[i]),))
            row = cur.fetchone()
            if row is None or stamps[i] > row[1]:
                i += 1
                continue
            first, last = int(row[0]), int(row[1])
            j = int(np.searchsorted(stamps, last, side="right"))
            cur.execute(columns, (first,))
            accounts, dr, cr, amounts = cur.fetchone()
            k = _find16(bytes(accounts), key)
            if k >= 0:
                at = stamps[i:j] - first
                a = np.frombuffer(amounts, dtype="<i8")[at]
                debits += int(a[np.frombuffer(dr, dtype="<u4")[at] == k].sum())
                credits += int(a[np.frombuffer(cr, dtype="<u4")[at] == k].sum())
            i = j
        return debits, credits

    def account_balances(
        self, conn: Connection, unflushed_after: int | None
    ) -> Iterator[tuple[bytes, int, int, int, int, int, int]]:
        """Every account's (16-byte id, ledger, flags, four balances), segments not yet
        flushed added."""
        deltas = self.segment_deltas(conn, unflushed_after) if unflushed_after is not None else {}
        result = conn.exec_driver_sql(
            "SELECT id, ledger, flags, debits_pending, debits_posted, credits_pending, "
            "credits_posted FROM ledger_accounts"
        )
        for key, ledger, flags, dp, dpo, cp, cpo in result:
            d = deltas.get(bytes(key)) if deltas else None
            if d is not None:
                dpo += d[0]
                cpo += d[1]
            yield bytes(key), int(ledger), int(flags), dp, dpo, cp, cpo

    def ledger_totals(
        self, conn: Connection, unflushed_after: int | None
    ) -> list[tuple[int, int, int, int, int, int]]:
        """Per ledger: accounts and the sums of the four balances. Summed here, in Python's
        unbounded ints: a ledger's total may legitimately pass 2**63-1, where SQLite's SUM()
        overflows."""
        totals: dict[int, list[int]] = {}
        for _key, ledger, _flags, dp, dpo, cp, cpo in self.account_balances(conn, unflushed_after):
            acc = totals.setdefault(int(ledger), [0, 0, 0, 0, 0])
            acc[0] += 1
            acc[1] += dp
            acc[2] += dpo
            acc[3] += cp
            acc[4] += cpo
        return [(ledger, *acc) for ledger, acc in sorted(totals.items())]  # type: ignore[misc]

    def transfer_totals(
        self, conn: Connection
    ) -> tuple[dict[int, tuple[int, int]], dict[bytes, list[int]]]:
        """Recomputed from the transfers (rows and segments): per ledger, (sum posted, sum
        still pending); per account (16-byte id), the four balances they add up to
        (debits pending, debits posted, credits pending, credits posted). In Python's
        unbounded ints."""
        out: dict[int, list[int]] = {}
        accounts: dict[bytes, list[int]] = {}
        posted = conn.exec_driver_sql(
            "SELECT ledger, debit_account_id, credit_account_id, amount FROM ledger_transfers "
            "WHERE (flags & 10) = 0"
        )
        for ledger, dr, cr, amount in posted:
            out.setdefault(int(ledger), [0, 0])[0] += amount
            accounts.setdefault(bytes(dr), [0, 0, 0, 0])[1] += amount
            accounts.setdefault(bytes(cr), [0, 0, 0, 0])[3] += amount
        pending = conn.exec_driver_sql(
            "SELECT t.ledger, t.debit_account_id, t.credit_account_id, t.amount "
            "FROM ledger_pending p JOIN ledger_transfers t "
            "ON t.timestamp = p.timestamp WHERE p.status = 'pending'"
        )
        for ledger, dr, cr, amount in pending:
            out.setdefault(int(ledger), [0, 0])[1] += amount
            accounts.setdefault(bytes(dr), [0, 0, 0, 0])[0] += amount
            accounts.setdefault(bytes(cr), [0, 0, 0, 0])[2] += amount
        for amounts, ledgers, keys, dr_index, cr_index in conn.exec_driver_sql(
            "SELECT amounts, ledgers, accounts, debit_index, credit_index "
            "FROM ledger_transfer_segments"
        ):
            a = np.frombuffer(amounts, dtype="<i8")
            lg = _column(ledgers, "<u4", len(a))
            for ledger in np.unique(lg).tolist():
                out.setdefault(int(ledger), [0, 0])[0] += sum(a[lg == ledger].tolist())
            raw = bytes(keys)
            # A segment's sums fit in int64: its whole batch totals at most AMOUNT_MAX.
            sums = np.zeros((len(raw) // 16, 2), dtype=np.int64)
            np.add.at(sums[:, 0], np.frombuffer(dr_index, dtype="<u4"), a)
            np.add.at(sums[:, 1], np.frombuffer(cr_index, dtype="<u4"), a)
            for k, (d, c) in enumerate(sums.tolist()):
                acc = accounts.setdefault(raw[16 * k : 16 * k + 16], [0, 0, 0, 0])
                acc[1] += d
                acc[3] += c
        return {ledger: (v[0], v[1]) for ledger, v in out.items()}, accounts

    def counts(self, conn: Connection) -> tuple[int, int]:
        row = conn.exec_driver_sql(
            "SELECT (SELECT COUNT(*) FROM ledger_accounts), "
            "(SELECT COUNT(*) FROM ledger_transfers), "
            "(SELECT COALESCE(SUM(count), 0) FROM ledger_transfer_segments)"
        ).one()
        return int(row[0]), int(row[1]) + int(row[2])

    # ----------------------------------------------------------------------------- segments
    # A plain batch is stored as one row of packed columns (ADR 0003). Its transfers have
    # consecutive timestamps first_timestamp .. last_timestamp, and ids above every id stored
    # before it, so segments are ordered alike by timestamp and by id and never overlap.
    def write_segment(
        self,
        conn: Connection,
        first_ts: int,
        plain: PlainBatch,
        accounts: bytes,
        debit_index: Any,
        credit_index: Any,
    ) -> None:
        c = plain.columns
        n = len(c.ids)
        row = (
            first_ts,
            first_ts + n - 1,
            n,
            _b(min(c.ids)),
            _b(max(c.ids)),
            accounts,
            debit_index.astype("<u4").tobytes(),
            credit_index.astype("<u4").tobytes(),
            b"".join([i.to_bytes(16, "big") for i in c.ids]),
            plain.amounts.astype("<i8").tobytes(),
            _uniform(plain.ledgers, "<u4"),
            _uniform(np.array(c.codes), "<u2"),
            b"".join([v.to_bytes(16, "big") for v in c.user_data_128])
            if any(c.user_data_128)
            else None,
            np.array(c.user_data_64, dtype="<u8").tobytes() if any(c.user_data_64) else None,
            np.array(c.user_data_32, dtype="<u4").tobytes() if any(c.user_data_32) else None,
        )
        driver_connection(conn).cursor().execute(
            self._sql(
                "INSERT INTO ledger_transfer_segments (first_timestamp, last_timestamp, count, "
                "min_id, max_id, accounts, debit_index, credit_index, ids, amounts, ledgers, "
                "codes, user_data_128, user_data_64, user_data_32) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            ),
            row,
        )

    def segment_deltas(self, conn: Connection, after_ts: int) -> dict[bytes, tuple[int, int]]:
        """Per account (16-byte id): (debits, credits) posted by the segments after
        ``after_ts``, which the balance columns do not hold yet."""
        cur = driver_connection(conn).cursor()
        cur.execute(
            self._sql(
                "SELECT accounts, debit_index, credit_index, amounts "
                "FROM ledger_transfer_segments WHERE first_timestamp > ?"
            ),
            (after_ts,),
        )
        keys: list[Any] = []
        sums: list[Any] = []
        for accounts, dr, cr, amounts in cur.fetchall():
            halves = _halves(accounts)
            a = np.frombuffer(amounts, dtype="<i8")
            sum_ = np.zeros((len(halves), 2), dtype=np.int64)
            np.add.at(sum_[:, 0], np.frombuffer(dr, dtype="<u4"), a)
            np.add.at(sum_[:, 1], np.frombuffer(cr, dtype="<u4"), a)
            keys.append(halves)
            sums.append(sum_)
        if not keys:
            return {}
        k = np.concatenate(keys)
        v = np.concatenate(sums)
        if len(keys) > 1:  # the same account in several segments: add its sums up
            order = np.lexsort((k[:, 1], k[:, 0]))
            k, v = k[order], v[order]
            starts = np.flatnonzero(np.r_[True, (k[1:] != k[:-1]).any(axis=1)])
            k, v = k[starts], np.add.reduceat(v, starts, axis=0)
        raw = k.astype(">u8").tobytes()
        return {raw[16 * j : 16 * j + 16]: (d, c) for j, (d, c) in enumerate(v.tolist()) if d or c}

    def flush_balances(self, conn: Connection, after_ts: int) -> None:
        """Add the segments after ``after_ts`` to the accounts' balance columns."""
        deltas = self.segment_deltas(conn, after_ts)
        if not deltas:
            return
        cur = driver_connection(conn).cursor()
        if not self.pg:
            cur.executemany(
                "UPDATE ledger_accounts SET debits_posted = debits_posted + ?, "
                "credits_posted = credits_posted + ? WHERE id = ?",
                [(d, c, key) for key, (d, c) in deltas.items()],
            )
            return
        cur.execute(
            "UPDATE ledger_accounts AS a SET debits_posted = a.debits_posted + v.d, "
            "credits_posted = a.credits_posted + v.c FROM (SELECT unnest(%s::bytea[]) AS id, "
            "unnest(%s::int8[]) AS d, unnest(%s::int8[]) AS c) AS v WHERE a.id = v.id",
            (list(deltas), [d for d, _ in deltas.values()], [c for _, c in deltas.values()]),
        )

    def write_posted(self, conn: Connection, rows: list[tuple[int, int, int]]) -> None:
        """Write (debits posted, credits posted) to the accounts with these timestamps."""
        cur = driver_connection(conn).cursor()
        self._set_balances(cur, ("debits_posted", "credits_posted"), rows)

    _SEGMENT_COLS = (
        "first_timestamp, count, accounts, debit_index, credit_index, ids, amounts, ledgers, "
        "codes, user_data_128, user_data_64, user_data_32"
    )

    def _segment(self, cur: Any, first_ts: int) -> _Segment:
        cur.execute(
            self._sql(
                f"SELECT {self._SEGMENT_COLS} FROM ledger_transfer_segments "
                "WHERE first_timestamp = ?"
            ),
            (first_ts,),
        )
        return _Segment(cur.fetchone())

    def _segment_transfers(self, cur: Any, ids: Sequence[int]) -> list[Transfer]:
        """Transfers stored in segments, by id (those not found are left out). Segments are
        disjoint id ranges in order: one query fetches the ranges that may hold the ids."""
        if not ids:
            return []
        keys = sorted(_b(i) for i in ids)
        cur.execute(
            self._sql(
                "SELECT first_timestamp, min_id, max_id FROM ledger_transfer_segments "
                "WHERE min_id <= ? AND min_id >= COALESCE((SELECT min_id FROM "
                "ledger_transfer_segments WHERE min_id <= ? ORDER BY min_id DESC LIMIT 1), ?) "
                f"ORDER BY min_id LIMIT {SEGMENT_RANGES_MAX + 1}"
            ),
            (keys[-1], keys[0], keys[0]),
        )
        ranges = [(bytes(lo), bytes(hi), first) for first, lo, hi in cur.fetchall()]
        by_segment: dict[int, list[bytes]] = {}
        if len(ranges) <= SEGMENT_RANGES_MAX:
            lows = [r[0] for r in ranges]
            for key in keys:
                j = bisect.bisect_right(lows, key) - 1
                if j >= 0 and key <= ranges[j][1]:
                    by_segment.setdefault(ranges[j][2], []).append(key)
        elif self.pg:  # ids spread over many segments: each one's, in one round trip
            cur.execute(
                "SELECT k.id, s.first_timestamp, s.max_id FROM unnest(%s::bytea[]) AS k(id) "
                "CROSS JOIN LATERAL (SELECT first_timestamp, max_id FROM "
                "ledger_transfer_segments WHERE min_id <= k.id ORDER BY min_id DESC LIMIT 1) s",
                (keys,),
            )
            for key, first_ts, high in cur.fetchall():
                if bytes(key) <= bytes(high):
                    by_segment.setdefault(first_ts, []).append(bytes(key))
        else:  # SQLite answers in-process: a query per id costs a few µs
            sql = (
                "SELECT first_timestamp, max_id FROM ledger_transfer_segments WHERE min_id <= ? "
                "ORDER BY min_id DESC LIMIT 1"
            )
            for key in keys:
                cur.execute(sql, (key,))
                row = cur.fetchone()
                if row is not None and key <= bytes(row[1]):
                    by_segment.setdefault(row[0], []).append(key)
        out: list[Transfer] = []
        for first_ts, found in by_segment.items():
            seg = self._segment(cur, first_ts)
            positions = [p for p in (_find16(seg.ids, k) for k in found) if p >= 0]
            out.extend(seg.transfers(positions))
        return out

    def _segment_transfers_at(self, cur: Any, stamps: Sequence[int]) -> dict[int, Transfer]:
        """Transfers stored in segments, by timestamp."""
        sql = self._sql(
            "SELECT first_timestamp, last_timestamp FROM ledger_transfer_segments "
            "WHERE first_timestamp <= ? ORDER BY first_timestamp DESC LIMIT 1"
        )
        out: dict[int, Transfer] = {}
        pending = sorted(stamps)
        i = 0
        while i < len(pending):
            cur.execute(sql, (pending[i],))
            row = cur.fetchone()
            if row is None or pending[i] > row[1]:
                i += 1
                continue
            first, last = row
            j = i
            while j < len(pending) and pending[j] <= last:
                j += 1
            seg = self._segment(cur, first)
            for t in seg.transfers([ts - first for ts in pending[i:j]]):
                out[t.timestamp] = t
            i = j
        return out


class _Segment:
    """One segment's columns, decoded on demand."""

    def __init__(self, row: Sequence[Any]) -> None:
        (first, count, accounts, dr, cr, ids, amounts, ledgers, codes, u128, u64, u32) = row
        self.first = int(first)
        self.accounts = bytes(accounts)
        self.ids = bytes(ids)
        self.dr = np.frombuffer(dr, dtype="<u4")
        self.cr = np.frombuffer(cr, dtype="<u4")
        self.amounts = np.frombuffer(amounts, dtype="<i8")
        n = int(count)
        self.ledgers = _column(ledgers, "<u4", n)
        self.codes = _column(codes, "<u2", n)
        self.u128 = bytes(u128) if u128 is not None else None
        self.u64 = np.frombuffer(u64, dtype="<u8") if u64 is not None else None
        self.u32 = np.frombuffer(u32, dtype="<u4") if u32 is not None else None

    def transfers(self, positions: Sequence[int]) -> list[Transfer]:
        acc, ids, u128 = self.accounts, self.ids, self.u128
        out = []
        for p in positions:
            d = int(self.dr[p]) * 16
            c = int(self.cr[p]) * 16
            out.append(
                Transfer(
                    int.from_bytes(ids[16 * p : 16 * p + 16], "big"),
                    int.from_bytes(acc[d : d + 16], "big"),
                    int.from_bytes(acc[c : c + 16], "big"),
                    int(self.amounts[p]),
                    0,
                    int.from_bytes(u128[16 * p : 16 * p + 16], "big") if u128 else 0,
                    int(self.u64[p]) if self.u64 is not None else 0,
                    int(self.u32[p]) if self.u32 is not None else 0,
                    0,
                    int(self.ledgers[p]),
                    int(self.codes[p]),
                    0,
                    self.first + p,
                )
            )
        return out


def _uniform(values: Any, dtype: str) -> bytes:
    """A column as stored: one value when every row has it (ledgers and codes mostly do)."""
    if len(values) > 1 and bool((values == values[0]).all()):
        return np.asarray(values[:1], dtype=dtype).tobytes()
    return np.asarray(values, dtype=dtype).tobytes()


def _column(raw: bytes, dtype: str, n: int) -> Any:
    column = np.frombuffer(raw, dtype=dtype)
    return np.broadcast_to(column, (n,)) if len(column) == 1 else column


def _radix_order(keys: Any, distinct: int) -> Any:
    """A stable order of ``keys`` (integers in ``0..distinct-1``): numpy sorts 16-bit keys
    stably by radix, in linear time, so keys below 2**32 take two passes."""
    order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    if distinct > 0x10000:
        high = (keys[order] >> 16).astype(np.uint16)
        order = order[np.argsort(high, kind="stable")]
    return order


def _halves(raw: bytes) -> Any:
    """16-byte big-endian ids packed in ``raw`` as an (n, 2) array of their uint64 halves,
    which sort and compare like the ids."""
    return np.frombuffer(raw, dtype=">u8").reshape(-1, 2).astype(np.uint64)


def _joined(parts: list[Any]) -> Any:
    """Arrays of timestamps, one after the other (an empty int64 array for none)."""
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _find16(blob: bytes, key: bytes) -> int:
    """Index of ``key`` among the 16-byte items packed in ``blob``, or -1."""
    start = 0
    while True:
        at = blob.find(key, start)
        if at < 0:
            return -1
        if at % 16 == 0:
            return at // 16
        start = at + 1


def _overlay(row: Sequence[Any], delta: tuple[int, int] | None) -> Sequence[Any]:
    """An account row with unflushed segment sums added to its posted balances."""
    if delta is None:
        return row
    r = list(row)
    r[8] += delta[0]
    r[10] += delta[1]
    return r
