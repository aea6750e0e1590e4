"""Ledger use cases. :class:`Ledger` is the only writer of balances in Entrepot.

Every write runs in one transaction: start (taking the write lock), load the rows the batch
refers to, decide the batch in memory (:mod:`entrepot.ledger.machine`), write the effects
set-based, commit. Account states stay cached between batches; the cache is trusted only while
``ledger_meta.version`` holds the (random) version this process last wrote: no other process
wrote since, and the write was not rolled back.
"""

from __future__ import annotations

import gc
import secrets
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Connection, Engine

from entrepot.kernel.clock import Clock, SystemClock
from entrepot.kernel.ids import U128_MAX
from entrepot.kernel.limits import QUERY_LIMIT_MAX, U32_MAX
from entrepot.kernel.money import get_currency
from entrepot.ledger.errors import (
    AccountNotFound,
    HistoryNotEnabled,
    LedgerInputError,
    TransferNotFound,
    UnknownLedger,
)
from entrepot.ledger.machine import (
    AccountState,
    LedgerView,
    PendingState,
    decide_accounts,
    decide_transfers,
)
from entrepot.ledger.model import (
    NON_POSTING_FLAGS,
    RESOLVE_FLAGS,
    TIME_MAX,
    Account,
    AccountBalance,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    LedgerDefinition,
    Statement,
    StatementLine,
    Transfer,
)
from entrepot.ledger.plain import (
    AccountTable,
    PlainColumns,
    apply_plain,
    decide_plain,
    plain_columns,
    segment_accounts,
)
from entrepot.ledger.store import LEDGER_NAME_MAX, LedgerStore, Meta
from entrepot.ledger.validate import check_accounts, check_batch_size, check_transfers
from entrepot.storage.engine import read_connection
from entrepot.storage.uow import UnitOfWork

#: Cached account states kept between batches before the cache is dropped and reloaded.
CACHE_ACCOUNTS_MAX = 1_000_000
#: Transfer rows written before their postings are merged into per-account runs (ADR 0002).
POSTINGS_MERGE_TRANSFERS = 65_536
#: Transfers in segments written before their postings are merged and the balances they
#: deferred are written to the accounts (ADR 0003). A query reads unmerged segments with
#: numpy, about ten times faster than unmerged rows, so they may wait longer.
PLAIN_MERGE_TRANSFERS = 262_144
#: ... or after this many segments, whatever their size: a query reads every unmerged segment.
MERGE_SEGMENTS = 256
#: Segments whose balances may wait to be written to the accounts: a reader of a balance adds
#: up every one of them (ADR 0003).
FLUSH_SEGMENTS = 64
#: ``Ledger._next_expiry`` when no pending transfer has a timeout: after every expiry.
NO_EXPIRY = 1 << 64
#: Smallest batch worth deciding with the plain fast path (ADR 0003). Smaller ones cost little
#: event by event; as segments they would be many and small, and group commit's batches (tens
#: of calls whose ids are not in order) would alternate between the two paths, each switch
#: costing a flush and a segment probe (PostgreSQL single calls fell ~25 % at 32).
PLAIN_BATCH_MIN = 128

_T = TypeVar("_T")
#: A write's work, run under the write lock with the meta row read there
_Work = Callable[["Ledger", Connection, Meta], _T]


@dataclass(frozen=True, slots=True)
class InvariantReport:
    """Checked on the stored rows: per ledger, debits equal credits (pending and posted), the
    accounts' balances equal what their transfers add up to, and no limit flag is exceeded."""

    ledgers: dict[int, dict[str, int]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


class Ledger:
    def __init__(
        self, engine: Engine, clock: Clock | None = None, *, plain_batch_min: int = PLAIN_BATCH_MIN
    ) -> None:
        self.engine = engine
        self.plain_batch_min = plain_batch_min
        self.clock: Clock = clock or SystemClock()
        self.store = LedgerStore(engine.dialect.name)
        self._lock = threading.Lock()
        self._cache: dict[int, AccountState] = {}
        self._cache_version: int | None = None
        self._ledgers: set[int] = set()
        # Postings of transfers not yet merged, by account; None when unknown here.
        self._tail: dict[int, list[int]] | None = None
        # The cached accounts' balances as numpy columns, for plain batches (ADR 0003).
        self._table = AccountTable()
        # Whether the table's dirty marks name every account whose posted balances plain
        # batches changed since the last flush; if not, a flush adds up the segments.
        self._dirty_known = False
        # No pending transfer expires before this (NO_EXPIRY: none has a timeout), so no
        # write before it needs to look for due ones; None when unknown. Kept with the
        # cache: only this process's writes, which keep it up to date, can have changed
        # the pending transfers while the cache is trusted.
        self._next_expiry: int | None = None

    # ------------------------------------------------------------------ transactions
    def _write(self, uow: UnitOfWork | None, work: _Work[_T]) -> _T:
        # Lock order, everywhere: the database's write lock first, then this in-memory one;
        # the other order deadlocks against units of work. A caller's unit of work may not
        # hold it yet (it only read, or did nothing): it is taken here, before ours, with
        # the meta row read under it (which no other writer can change until we commit).
        if uow is not None:
            meta = self.store.begin_write(uow.connection)
            # Whether the caller commits is not ours to know, and need not be: the cache is
            # trusted only while the meta row holds the version this write gave it, which
            # never comes back once rolled back (versions are drawn at random, _new_version).
            with self._lock:
                try:
                    self._check_cache(uow.connection, meta)
                    return work(self, uow.connection, meta)
                except BaseException:
                    self._invalidate()  # the work may have stopped half-way through the cache
                    raise
        with self.engine.connect() as conn:
            meta = self.store.begin_write(conn)
            with self._lock:
                try:
                    self._check_cache(conn, meta)
                    results = work(self, conn, meta)
                    conn.commit()
                except BaseException:
                    self._invalidate()
                    raise
                return results

    def _invalidate(self) -> None:
        self._dirty_known = False
        self._table = AccountTable()
        self._cache.clear()
        self._cache_version = None
        self._ledgers = set()
        self._tail = None
        self._next_expiry = None

    def _check_cache(self, conn: Connection, meta: Meta) -> None:
        """Check the cache against ``meta`` (read by :meth:`_write` under the write lock)."""
        if meta.version != self._cache_version or len(self._cache) > CACHE_ACCOUNTS_MAX:
            self._cache.clear()
            self._tail = None
            self._next_expiry = None
            self._table = AccountTable()
            self._dirty_known = meta.unflushed_after is None
            self._ledgers = {d.ledger for d in self.store.load_ledgers(conn)}

    def _now(self, meta: Meta) -> int:
        return max(self.clock.now_ns(), meta.last_timestamp + 1)

    def _load_due(self, conn: Connection, now: int) -> list[PendingState]:
        """The pending transfers due at ``now``; none looked for before the earliest expiry
        known (under the write lock, with the cache trusted). Every one returned is expired
        by the write (``decide_transfers``), so afterwards the earliest expiry is the one
        read here or one of the write's new pending transfers' (:meth:`_note_expiries`)."""
        after = self._next_expiry
        if after is not None and now < after:
            return []
        due, after = self.store.load_due_and_next(conn, now)
        self._next_expiry = NO_EXPIRY if after is None else after
        return due

    def _note_expiries(self, created: Iterable[PendingState]) -> None:
        after = self._next_expiry
        if after is None:
            return
        for p in created:
            if 0 < p.expires_at < after:
                after = p.expires_at
        self._next_expiry = after

    def _load_accounts(self, conn: Connection, ids: Iterable[int], meta: Meta) -> None:
        cache = self._cache
        # 0 is no account's id (creating one is refused): posts and voids name accounts 0,
        # meaning their pending transfer's, and would otherwise query for it every time.
        missing = [i for i in ids if i not in cache and i]
        if missing:
            for a in self.store.load_accounts(conn, missing, meta.unflushed_after):
                cache[a.id] = AccountState(a)

    def _flush(self, conn: Connection, meta: Meta) -> Meta:
        """Write the balances that plain batches deferred to the accounts' rows (ADR 0003):
        the event-by-event path writes whole balances from the cache, which holds them."""
        after = meta.unflushed_after
        if after is None:
            return meta
        self._flush_balances(conn, after)
        return meta._replace(balances_upto=meta.segments_upto, unflushed_segments=0)

    def _flush_balances(self, conn: Connection, after: int) -> None:
        dirty = self._table.take_dirty()
        if self._dirty_known:  # the table holds them: write them as they are
            self.store.write_posted(conn, dirty)
        else:
            self.store.flush_balances(conn, after)
        self._dirty_known = True

    def _commit_meta(
        self,
        conn: Connection,
        meta: Meta,
        last_ts: int,
        max_id: int,
        created: int = 0,
        *,
        segment: bool = False,
    ) -> None:
        m = meta
        indexed_upto, unindexed = m.indexed_upto, m.unindexed_count
        unindexed_plain, unindexed_segments = m.unindexed_plain, m.unindexed_segments
        balances_upto, unflushed_segments = m.balances_upto, m.unflushed_segments
        segments_upto = m.segments_upto
        if segment:
            unindexed_plain += created
            unindexed_segments += 1
            unflushed_segments += 1
            segments_upto = last_ts
        else:
            unindexed += created
        last_ts = max(last_ts, m.last_timestamp)
        if (
            unindexed >= POSTINGS_MERGE_TRANSFERS
            or unindexed_plain >= PLAIN_MERGE_TRANSFERS
            or unindexed_segments >= MERGE_SEGMENTS
        ):
            tail = self._tail
            if tail is None:
                tail = self.store.tail_postings(conn, indexed_upto)
            self.store.write_postings(conn, tail, indexed_upto)
            self._tail = {}
            indexed_upto, unindexed, unindexed_plain, unindexed_segments = last_ts, 0, 0, 0
            unflushed_segments = max(unflushed_segments, FLUSH_SEGMENTS)  # and flush
        if unflushed_segments >= FLUSH_SEGMENTS and segments_upto > balances_upto:
            self._flush_balances(conn, balances_upto)
            balances_upto = segments_upto
        if segments_upto <= balances_upto:
            unflushed_segments = 0
        version = _new_version(m.version)
        self.store.save_meta(
            conn,
            Meta(
                version,
                last_ts,
                max_id,
                indexed_upto,
                unindexed,
                unindexed_plain,
                segments_upto,
                balances_upto,
                unindexed_segments,
                unflushed_segments,
            ),
        )
        self._cache_version = version

    def _track_tail(self, created: Sequence[Transfer]) -> None:
        tail = self._tail
        if tail is None:
            return
        for t in created:
            ts = t.timestamp
            dr = tail.get(t.debit_account_id)
            if dr is None:
                tail[t.debit_account_id] = [ts]
            else:
                dr.append(ts)
            cr = tail.get(t.credit_account_id)
            if cr is None:
                tail[t.credit_account_id] = [ts]
            else:
                cr.append(ts)

    # ------------------------------------------------------------------ ledgers
    def define_ledger(self, ledger: int, currency: str, name: str = "") -> LedgerDefinition:
        """Declare ledger number -> currency (one currency per ledger). Idempotent."""
        if type(ledger) is not int or not 0 < ledger <= U32_MAX:
            raise LedgerInputError(f"ledger must be an integer in 1..{U32_MAX}, got {ledger!r}")
        # What both backends store alike: PostgreSQL refused a longer name or a NUL byte
        # with a database error where SQLite stored it (and stored a non-text name as given).
        if not isinstance(name, str) or len(name) > LEDGER_NAME_MAX or "\x00" in name:
            raise LedgerInputError(
                f"name must be text of at most {LEDGER_NAME_MAX} characters without NUL, "
                f"got {name!r:.60}",
                field="name",
            )
        cur = get_currency(currency)
        definition = LedgerDefinition(ledger, cur.code, name or cur.name)
        with self.engine.connect() as conn:
            meta = self.store.begin_write(conn)  # the database's write lock before ours
            with self._lock:
                existing = {d.ledger: d for d in self.store.load_ledgers(conn)}.get(ledger)
                if existing is not None and existing.currency != cur.code:
                    raise LedgerInputError(
                        f"ledger {ledger} is already defined for {existing.currency}, "
                        f"not {cur.code}",
                        field="currency",
                    )
                if existing is None:
                    self.store.upsert_ledger(conn, definition)
                    # A new version: every other writer's cache (its set of ledgers with it)
                    # stops matching and is reloaded at its next write.
                    self.store.save_meta(conn, meta._replace(version=_new_version(meta.version)))
                    conn.commit()
                self._invalidate()
                return existing or definition

    def ledgers(self) -> list[LedgerDefinition]:
        with read_connection(self.engine) as conn:
            return self.store.load_ledgers(conn)

    def get_ledger(self, ledger: int) -> LedgerDefinition:
        for d in self.ledgers():
            if d.ledger == ledger:
                return d
        raise UnknownLedger(f"ledger {ledger} is not defined", field="ledger")

    # ------------------------------------------------------------------ writes
    def create_accounts(
        self, batch: Sequence[Account], *, uow: UnitOfWork | None = None
    ) -> list[CreateAccountResult]:
        batch = check_accounts(batch)
        if not batch:
            return []
        return self._write(uow, lambda s, c, m: s._create_accounts(c, m, batch))  # type: ignore[arg-type, return-value]

    def _create_accounts(self, conn: Connection, meta: Meta, batch: Sequence[Account]) -> list[str]:
        self._load_accounts(conn, {a.id for a in batch}, meta)
        view = LedgerView(accounts=self._cache, ledgers=self._ledgers)
        fx = decide_accounts(batch, view, self._now(meta))
        self.store.write_accounts(conn, fx)
        self._commit_meta(conn, meta, fx.last_timestamp, meta.max_transfer_id)
        return fx.results  # type: ignore[return-value]

    def create_transfers(
        self, batch: Sequence[Transfer], *, uow: UnitOfWork | None = None
    ) -> list[CreateTransferResult]:
        check_batch_size(batch, "transfers")
        if not batch:
            return []
        cols = None
        if len(batch) >= self.plain_batch_min:
            with _gc_paused():
                cols = plain_columns(batch)
        if cols is None:
            batch = check_transfers(batch)
        return self._write(uow, lambda s, c, m: s._create_transfers(c, m, batch, cols))  # type: ignore[arg-type, return-value]

    def _create_transfers(
        self, conn: Connection, meta: Meta, batch: Sequence[Transfer], cols: PlainColumns | None
    ) -> list[str]:
        store = self.store
        now = self._now(meta)
        due = self._load_due(conn, now)
        if cols is not None and not due and min(cols.ids) > meta.max_transfer_id:
            results = self._create_plain(conn, cols, meta, now)
            if results is not None:
                return results
        meta = self._flush(conn, meta)
        self._table.sync_states()  # the state machine works on the AccountStates
        account_ids: set[int] = set()
        pending_ids: set[int] = set()
        for t in batch:
            account_ids.add(t.debit_account_id)
            account_ids.add(t.credit_account_id)
            if t.flags & RESOLVE_FLAGS:
                pending_ids.add(t.pending_id)
        # Segments are looked in only if one exists: a segment's commit sets segments_upto
        # (ADR 0003), and the meta row was read under the write lock.
        segments = meta.segments_upto > 0
        pending = store.load_pending(conn, pending_ids, segments=segments) if pending_ids else {}
        for p in (*due, *pending.values()):
            account_ids.add(p.transfer.debit_account_id)
            account_ids.add(p.transfer.credit_account_id)
        self._load_accounts(conn, account_ids, meta)
        max_known = meta.max_transfer_id
        maybe_seen = {t.id for t in batch if t.id <= max_known}
        seen, failed = store.load_seen(conn, maybe_seen, segments=segments)
        view = LedgerView(
            accounts=self._cache,
            transfers={t.id: t for t in seen},
            failed=failed,
            pending=pending,
        )
        fx = decide_transfers(batch, view, now, due)
        self._note_expiries(fx.pending_created)
        self._table.refresh(fx.touched.values())
        store.write_transfers(conn, fx)
        max_id = max(
            max_known,
            max((t.id for t in fx.created), default=0),
            max((f[0] for f in fx.failed), default=0),
        )
        self._track_tail(fx.created)
        self._commit_meta(conn, meta, fx.last_timestamp, max_id, len(fx.created))
        return fx.results  # type: ignore[return-value]

    def _create_plain(
        self, conn: Connection, cols: PlainColumns, meta: Meta, now: int
    ) -> list[str] | None:
        with _gc_paused():  # not while waiting for the write lock or the commit's fsync
            return self._create_plain_now(conn, cols, meta, now)

    def _create_plain_now(
        self, conn: Connection, cols: PlainColumns, meta: Meta, now: int
    ) -> list[str] | None:
        """A batch of plain transfers that all succeed, decided at once and stored as one
        segment (ADR 0003); None if the batch needs deciding event by event."""
        table = self._table
        drs, crs = cols.debit_account_ids, cols.credit_account_ids
        dr, cr = table.rows(drs), table.rows(crs)
        if dr is None or cr is None:  # accounts not in the table yet: load them
            missing = {a for a in (*drs, *crs) if a not in table.row_of}
            self._load_accounts(conn, missing, meta)
            table.add(self._cache[a] for a in missing if a in self._cache)
            dr, cr = table.rows(drs), table.rows(crs)
            if dr is None or cr is None:  # an unknown account: the machine says which
                return None
        plain = decide_plain(cols, table, dr, cr)
        if plain is None:
            return None
        n = len(cols.ids)
        self.store.write_segment(conn, now, plain, *segment_accounts(plain, table))
        apply_plain(plain, table)  # a failed commit drops the table with the cache (_write)
        self._commit_meta(conn, meta, now + n - 1, max(cols.ids), n, segment=True)
        return [CreateTransferResult.OK] * n

    def expire_pending(self, *, uow: UnitOfWork | None = None) -> int:
        """Void every pending transfer whose timeout has passed; return how many. With ``uow``
        the voids join the caller's transaction (it commits them, or rolls them back)."""

        def work(s: Ledger, conn: Connection, meta: Meta) -> list[str]:
            now = s._now(meta)
            due = s._load_due(conn, now)
            if not due:
                return []
            meta = s._flush(conn, meta)
            s._table.sync_states()
            ids = {p.transfer.debit_account_id for p in due}
            ids |= {p.transfer.credit_account_id for p in due}
            s._load_accounts(conn, ids, meta)
            fx = decide_transfers([], LedgerView(accounts=s._cache), now, due)
            s._table.refresh(fx.touched.values())
            s.store.write_transfers(conn, fx)
            s._commit_meta(conn, meta, fx.last_timestamp, meta.max_transfer_id)
            return ["expired"] * len(due)

        return len(self._write(uow, work))

    # ------------------------------------------------------------------ reads
    def lookup_accounts(
        self,
        ids: Sequence[int],
        *,
        uow: UnitOfWork | None = None,
        snapshot: Connection | None = None,
    ) -> list[Account]:
        """Accounts that exist, in the order asked; unknown ids are left out. With ``uow`` they
        are read in the caller's transaction, which sees its own writes, under the write lock
        (taken here if the caller has not): the balances no other writer can change before it
        commits. Without the lock, on PostgreSQL's READ COMMITTED, a flush committed between
        the meta row's read and the balance rows' would be counted twice. With ``snapshot``
        (a ``read_connection``) they are read in it, as of the moment the caller's other rows
        are read there: read in a snapshot of their own, a write committed in between (a cap
        raised, a settlement) was in the balances and not in the rows read with them."""
        _check_ids(ids)
        if uow is not None:
            self.store.take_write_lock(uow.connection)
            snapshot = uow.connection
        with nullcontext(snapshot) if snapshot else read_connection(self.engine) as conn:
            found = {a.id: a for a in self.store.load_accounts(conn, set(ids))}
        return [found[i] for i in ids if i in found]

    def get_account(self, account_id: int) -> Account:
        found = self.lookup_accounts([account_id])
        if not found:
            raise AccountNotFound(f"account {account_id} does not exist", field="account_id")
        return found[0]

    def lookup_transfers(self, ids: Sequence[int]) -> list[Transfer]:
        _check_ids(ids)
        with read_connection(self.engine) as conn:
            found = {t.id: t for t in self.store.load_transfers(conn, set(ids))}
        return [found[i] for i in ids if i in found]

    def get_transfer(self, transfer_id: int) -> Transfer:
        found = self.lookup_transfers([transfer_id])
        if not found:
            raise TransferNotFound(f"transfer {transfer_id} does not exist", field="transfer_id")
        return found[0]

    def get_account_transfers(
        self,
        account_id: int,
        *,
        since_ns: int = 0,
        until_ns: int = TIME_MAX,
        limit: int = QUERY_LIMIT_MAX,
        debits: bool = True,
        credits: bool = True,
        reverse: bool = False,
    ) -> list[Transfer]:
        _check_query(since_ns, until_ns, limit)
        self.get_account(account_id)
        with read_connection(self.engine) as conn:
            return self.store.account_transfers(
                conn,
                account_id,
                since_ns,
                until_ns,
                limit,
                debits=debits,
                credits=credits,
                reverse=reverse,
            )

    def get_account_timestamps(
        self,
        account_id: int,
        *,
        since_ns: int = 0,
        until_ns: int = TIME_MAX,
        limit: int | None = None,
    ) -> list[int]:
        """The timestamps of the account's transfers in ``[since_ns, until_ns]`` (inclusive),
        ascending, pending and voiding ones too: an index of a range, read from the account's
        posting runs without loading a transfer, by which a caller pages through it (a
        statement's pages) and reads each page's transfers alone. With ``limit`` (1 or more),
        the first ``limit`` of them, the range read no further: a caller bounding a range
        asks for one past its bound."""
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
        ):
            raise LedgerInputError(f"limit must be 1 or more, got {limit!r}", field="limit")
        _check_query(since_ns, until_ns, 1)
        self.get_account(account_id)
        with read_connection(self.engine) as conn:
            return self.store.account_timestamps(conn, account_id, since_ns, until_ns, limit)

    def locate_account_transfers(
        self,
        account_id: int,
        *,
        since_ns: int = 0,
        until_ns: int = TIME_MAX,
        positions: Sequence[int] = (),
        limit: int = QUERY_LIMIT_MAX,
    ) -> tuple[int, list[int | None]]:
        """(n, stamps): how many of the account's transfers (pending and voiding ones too)
        are in ``[since_ns, until_ns]`` (inclusive), ``limit`` at most, the range read no
        further; and the timestamps of the ``positions``-th of them (from 0; None at or past
        n), found without reading the others': where a page of a range starts and ends, and
        whether the range holds more than a caller's bound (ask for one past it)."""
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise LedgerInputError(f"limit must be 1 or more, got {limit!r}", field="limit")
        if any(not isinstance(p, int) or isinstance(p, bool) or p < 0 for p in positions):
            raise LedgerInputError(
                f"positions must be whole numbers from 0, got {list(positions)!r}",
                field="positions",
            )
        _check_query(since_ns, until_ns, 1)
        self.get_account(account_id)
        with read_connection(self.engine) as conn:
            return self.store.account_stamps_at(
                conn, account_id, since_ns, until_ns, positions, limit
            )

    def get_account_balances(
        self,
        account_id: int,
        *,
        since_ns: int = 0,
        until_ns: int = TIME_MAX,
        limit: int = QUERY_LIMIT_MAX,
        reverse: bool = False,
    ) -> list[AccountBalance]:
        """The account's four balances after each change (accounts with the history flag)."""
        _check_query(since_ns, until_ns, limit)
        account = self.get_account(account_id)
        if not account.flags & AccountFlags.HISTORY:
            raise HistoryNotEnabled(
                f"account {account_id} was created without the history flag", field="account_id"
            )
        with read_connection(self.engine) as conn:
            return self.store.account_history(conn, account_id, since_ns, until_ns, limit, reverse)

    def fence(self, at_least: int | None = None) -> int:
        """A moment up to which the ledger's history is final: every transfer stamped at or
        before it is committed, and every transfer written after is stamped after it. A write
        stamps its transfers before it commits (a group commit's batch may be in flight for
        milliseconds), so a reader of a period ending now could miss some that a later read
        of the same period finds. This takes a turn of the write lock (the writes in flight
        commit first) and moves the last timestamp to now, which the next writer stamps past,
        whatever its own clock says. No balance changes: the accounts cached by every process
        stay valid (the meta row keeps its version).

        ``at_least``: a reader of a period ending then needs no turn of the lock where the
        committed history already reaches past it. Writes stamp under the write lock and
        commit the last stamp with their transfers, so a committed last timestamp at or after
        ``at_least`` is final as it stands: it is answered from a plain read."""
        if at_least is not None:
            with read_connection(self.engine) as conn:
                last = self.store.read_meta(conn).last_timestamp
            if last >= at_least:
                return last

        def work(s: Ledger, conn: Connection, meta: Meta) -> int:
            at = s._now(meta)
            s.store.save_meta(conn, meta._replace(last_timestamp=at))
            return at

        return self._write(None, work)

    def last_timestamp(self, *, uow: UnitOfWork) -> int:
        """The last stamp the ledger gave (a transfer's, an account's, a fence's) as ``uow``'s
        transaction sees it, its own writes included. A caller holding the write lock (it has
        written in ``uow``) reads the stamp of its own last entry: no other writer stamps
        before it commits."""
        return self.store.read_meta(uow.connection).last_timestamp

    def statement(
        self,
        account_id: int,
        *,
        since_ns: int = 0,
        until_ns: int = TIME_MAX,
        limit: int = QUERY_LIMIT_MAX,
        credit_normal: bool | None = None,
    ) -> Statement:
        """Posted movements over a time range with opening, running and closing balances.

        Pending reservations are not movements; their posts are. ``credit_normal`` defaults to
        True unless the account may not hold more credits than debits (flagged
        ``credits_must_not_exceed_debits``: an asset-like account).
        """
        _check_query(since_ns, until_ns, limit)
        _check_ids([account_id])
        with read_connection(self.engine) as conn:
            accounts = self.store.load_accounts(conn, [account_id])
            if not accounts:
                raise AccountNotFound(f"account {account_id} does not exist", field="account_id")
            account = accounts[0]
            if credit_normal is None:
                credit_normal = not account.flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
            posted = (account.debits_posted, account.credits_posted)
            history = bool(account.flags & AccountFlags.HISTORY)
            dr, cr = self.store.posted_sums_before(
                conn, account_id, since_ns, posted, history=history
            )
            rows = self.store.account_transfers(conn, account_id, since_ns, until_ns, limit + 1)
        sign = 1 if credit_normal else -1
        opening = sign * (cr - dr)
        balance = opening
        lines: list[StatementLine] = []
        for t in rows[:limit]:
            if t.flags & NON_POSTING_FLAGS:
                continue
            debit = t.amount if t.debit_account_id == account_id else 0
            credit = t.amount if t.credit_account_id == account_id else 0
            balance += sign * (credit - debit)
            lines.append(StatementLine(t, debit, credit, balance))
        truncated = len(rows) > limit
        return Statement(
            account,
            since_ns,
            until_ns,
            credit_normal,
            opening,
            lines,
            balance,
            truncated,
            rows[limit - 1].timestamp + 1 if truncated else None,
        )

    def check_invariants(self) -> InvariantReport:
        with read_connection(self.engine) as conn:
            after = self.store.read_meta(conn).unflushed_after
            totals = self.store.ledger_totals(conn, after)
            from_transfers, by_account = self.store.transfer_totals(conn)
            over_limit = 0  # in Python: the sums may pass 2**63-1
            differ: list[bytes] = []
            for key, _ledger, flags, dp, dpo, cp, cpo in self.store.account_balances(conn, after):
                if (flags & 2 and dp + dpo > cpo) or (flags & 4 and cp + cpo > dpo):
                    over_limit += 1
                if by_account.pop(key, [0, 0, 0, 0]) != [dp, dpo, cp, cpo]:
                    differ.append(key)
            differ.extend(by_account)  # transfers of accounts that do not exist
        report = InvariantReport()
        for ledger, n, dp, dpo, cp, cpo in totals:
            posted, pending = from_transfers.get(ledger, (0, 0))
            report.ledgers[ledger] = {
                "accounts": n,
                "debits_pending": dp,
                "debits_posted": dpo,
                "credits_pending": cp,
                "credits_posted": cpo,
            }
            if dp != cp or dpo != cpo:
                report.violations.append(f"ledger {ledger}: debits != credits")
            if dpo != posted or dp != pending:
                report.violations.append(
                    f"ledger {ledger}: balances ({dpo} posted, {dp} pending) differ from "
                    f"transfers ({posted} posted, {pending} pending)"
                )
        if differ:
            first = int.from_bytes(min(differ), "big")
            report.violations.append(
                f"{len(differ)} account(s) differ from what their transfers add up to "
                f"(first: account {first})"
            )
        if over_limit:
            report.violations.append(f"{over_limit} account(s) exceed their limit flag")
        return report


def _new_version(previous: int) -> int:
    """The meta row's next version: random, not ``previous + 1``. A process trusts its cache
    while the row holds the version it last wrote; with counters, a write rolled back here
    (a caller's unit of work, a savepoint) and another process's next write would both be
    ``previous + 1``, and the stale cache would look current."""
    while True:
        version = secrets.randbits(62) + 1
        if version != previous:
            return version


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large batch is transposed and decided: that
    allocates hundreds of thousands of acyclic objects (freed by reference counting), and the
    collections they would trigger walk every object in the process (~0.6 µs a transfer).
    Process-wide, so held for CPU work only, never across a lock wait or an fsync."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _check_ids(ids: Iterable[int]) -> None:
    """Ids to look up are 128-bit unsigned integers, as written (a wider or negative one was
    an ``OverflowError`` from packing it; ``True`` is no id, though it is an int), given as
    a list, tuple or set (None was a ``TypeError``; a generator would be read twice)."""
    if isinstance(ids, str | bytes) or not isinstance(ids, Collection):
        raise LedgerInputError(
            f"ids must be a list of integers, got {type(ids).__name__}", field="ids"
        )
    for i in ids:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i <= U128_MAX:
            raise LedgerInputError(f"id {i!r} is not an integer in 0..2^128-1", field="ids")


def _check_query(since_ns: int, until_ns: int, limit: int) -> None:
    for name, value in (("since", since_ns), ("until", until_ns), ("limit", limit)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise LedgerInputError(f"{name} must be an integer, got {value!r}", field=name)
    if not 0 <= since_ns <= until_ns:
        raise LedgerInputError(
            f"time range {since_ns}..{until_ns} is empty or negative", field="since"
        )
    if until_ns > TIME_MAX:  # past what a timestamp column holds (an error of its own there)
        raise LedgerInputError(f"until {until_ns} is after TIME_MAX ({TIME_MAX})", field="until")
    if not 0 < limit <= QUERY_LIMIT_MAX:
        raise LedgerInputError(f"limit must be 1..{QUERY_LIMIT_MAX}, got {limit}", field="limit")
