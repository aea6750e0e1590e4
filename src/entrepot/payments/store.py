"""Payment scheme tables (SQLAlchemy Core) and the rows <-> model mapping.

Migration ``0002_payments`` creates these tables; keep the two in step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from entrepot.kernel.ids import id_from_bytes
from entrepot.payments.model import (
    AliasType,
    AmountType,
    DeadlineAction,
    Escrow,
    EscrowState,
    Participant,
    ParticipantCurrency,
    ParticipantKind,
    Party,
    PaymentTransfer,
    Quote,
    QuoteState,
    TransferState,
)
from entrepot.storage.driver import Fast, FastInsert, select_all
from entrepot.storage.engine import driver_connection

metadata = sa.MetaData()
ACCOUNT_ID = sa.LargeBinary(16)

participants = sa.Table(
    "pay_participants",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("bic", sa.String(11)),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
participant_status = sa.Table(  # migration 0019: each suspension and resumption, and why
    "pay_participant_status",
    metadata,
    sa.Column("participant_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("reason", sa.String(200)),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
)
participant_currencies = sa.Table(
    "pay_participant_currencies",
    metadata,
    sa.Column("participant_id", sa.String(64), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("ledger", sa.BigInteger, nullable=False),
    sa.Column("position_account", ACCOUNT_ID, nullable=False),
    sa.Column("settlement_account", ACCOUNT_ID, nullable=False),
    sa.Column("net_debit_cap", sa.BigInteger, nullable=False),
)
scheme_accounts = sa.Table(
    "pay_scheme_accounts",
    metadata,
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("account_id", ACCOUNT_ID, nullable=False),
)
aliases = sa.Table(
    "pay_aliases",
    metadata,
    sa.Column("alias_type", sa.String(16), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("participant_id", sa.String(64), nullable=False, index=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
fx_rates = sa.Table(
    "pay_fx_rates",
    metadata,
    sa.Column("provider_id", sa.String(64), primary_key=True),
    sa.Column("source_currency", sa.String(3), primary_key=True),
    sa.Column("target_currency", sa.String(3), primary_key=True),
    sa.Column("rate", sa.String(64), nullable=False),
    sa.Column("spread_bps", sa.Integer, nullable=False),
    sa.Column("valid_until", sa.BigInteger, nullable=False),
    sa.Column("posted_at", sa.BigInteger, nullable=False),
)
#: A quote or transfer still open (what the deadline pass expires), an accepted quote, an
#: escrow still held: the deadline pass and a quote's acceptance find them through partial
#: indexes that hold only those rows (a scan of every quote and transfer ever made, under the
#: write lock, took 33 ms a pass at 200,000 transfers and grows with the scheme's history).
#: A query states its condition as this same literal text: an index's condition is proved
#: from the query's, and SQLite matched no ``IN (?, ?)`` of bound values to it, nor can
#: PostgreSQL's generic plan of a prepared statement.
OPEN_QUOTE = "state IN ('QUOTED', 'ACCEPTED')"
ACCEPTED_QUOTE = "state = 'ACCEPTED'"
OPEN_TRANSFER = "state IN ('RESERVED', 'HOLD')"
HELD_ESCROW = "state = 'HELD'"
#: The settlement window open now (its partial index is unique: there is one at most; every
#: commit reads it, which scanned every window the scheme ever had)
OPEN_WINDOW_STATE = "state = 'OPEN'"


def _partial(name: str, columns: tuple[str, ...], where: str, *, unique: bool = False) -> sa.Index:
    return sa.Index(
        name,
        *columns,
        unique=unique,
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


quotes = sa.Table(
    "pay_quotes",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("payer_participant", sa.String(64), nullable=False, index=True),
    sa.Column("payee_participant", sa.String(64), nullable=False),
    sa.Column("payee_alias_type", sa.String(16), nullable=False),
    sa.Column("payee_alias", sa.String(64), nullable=False),
    sa.Column("amount_type", sa.String(8), nullable=False),
    sa.Column("source_currency", sa.String(3), nullable=False),
    sa.Column("target_currency", sa.String(3), nullable=False),
    sa.Column("source_amount", sa.BigInteger, nullable=False),
    sa.Column("fee", sa.BigInteger, nullable=False),
    sa.Column("target_amount", sa.BigInteger, nullable=False),
    sa.Column("fx_provider", sa.String(64)),
    sa.Column("fx_rate", sa.String(64)),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("payer_alias", sa.String(80)),
    #: the expiry the request asked for, in ns (``expires_at`` may be sooner: its FX rate's
    #: validity); null for quotes before migration 0023
    sa.Column("ttl", sa.BigInteger),
    #: when the payee alias priced was registered (its directory row's ``created_at``): a
    #: prepare pays it only under that registration; null before migration 0030 and for an
    #: alias registered before registrations were dated
    sa.Column("payee_registered_at", sa.BigInteger),
    _partial("ix_pay_quotes_open_expiry", ("expires_at",), OPEN_QUOTE),
    _partial("ix_pay_quotes_accepted", ("payer_participant", "source_currency"), ACCEPTED_QUOTE),
)
transfers = sa.Table(
    "pay_transfers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("quote_id", sa.String(64), nullable=False, unique=True),
    sa.Column("payer_participant", sa.String(64), nullable=False, index=True),
    sa.Column("payee_participant", sa.String(64), nullable=False, index=True),
    sa.Column("source_currency", sa.String(3), nullable=False),
    sa.Column("target_currency", sa.String(3), nullable=False),
    sa.Column("source_amount", sa.BigInteger, nullable=False),
    sa.Column("fee", sa.BigInteger, nullable=False),
    sa.Column("target_amount", sa.BigInteger, nullable=False),
    #: a provider lists the transfers its liquidity runs (``GET /v1/transfers``; migration 0033)
    sa.Column("fx_provider", sa.String(64), index=True),
    sa.Column("fx_rate", sa.String(64)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("window_id", sa.BigInteger, index=True),
    sa.Column("reason", sa.String(200)),
    sa.Column("note", sa.String(200)),
    sa.Column("payer_alias", sa.String(80)),
    # a bulk item's payee ("TYPE:value"); a quoted transfer's is on its quote (migration 0011)
    sa.Column("payee_alias", sa.String(80)),
    #: the order transfers were written in (under the write lock): ``GET /v1/transfers``
    #: pages by it (migration 0031)
    sa.Column("seq", sa.BigInteger),
    sa.Index("ix_pay_transfers_seq", "seq", unique=True),
    _partial("ix_pay_transfers_open_expiry", ("expires_at",), OPEN_TRANSFER),
)
escrows = sa.Table(
    "pay_escrows",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("payer_participant", sa.String(64), nullable=False, index=True),
    sa.Column("payee_participant", sa.String(64), nullable=False, index=True),
    sa.Column("controller", sa.String(64), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("released", sa.BigInteger, nullable=False),
    sa.Column("refunded", sa.BigInteger, nullable=False),
    sa.Column("purpose", sa.String(200), nullable=False),
    sa.Column("deadline", sa.BigInteger, nullable=False),
    sa.Column("on_deadline", sa.String(8), nullable=False),
    sa.Column("state", sa.String(8), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # the context whose use cases alone decide it (an order's escrow: "trade"); None: its
    # controller decides through the scheme's API (migration 0026)
    sa.Column("managed_by", sa.String(16), nullable=True),
    _partial("ix_pay_escrows_held_deadline", ("deadline",), HELD_ESCROW),
)
escrow_events = sa.Table(
    "pay_escrow_events",
    metadata,
    sa.Column("escrow_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("window_id", sa.BigInteger, index=True),  # the settlement window it happened in
)
windows = sa.Table(
    "pay_settlement_windows",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("state", sa.String(8), nullable=False),
    sa.Column("opened_at", sa.BigInteger, nullable=False),
    sa.Column("closed_at", sa.BigInteger),
    sa.Column("settled_at", sa.BigInteger),
    _partial("ux_pay_settlement_windows_open", ("state",), OPEN_WINDOW_STATE, unique=True),
)
window_positions = sa.Table(
    "pay_window_positions",
    metadata,
    sa.Column("window_id", sa.BigInteger, primary_key=True),
    sa.Column("participant_id", sa.String(64), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("sent", sa.BigInteger, nullable=False),
    sa.Column("received", sa.BigInteger, nullable=False),
    sa.Column("net", sa.BigInteger, nullable=False),
    # what settling moved (NULL until settled; migration 0012)
    sa.Column("settled", sa.BigInteger, nullable=True),
)
credentials = sa.Table(
    "pay_credentials",
    metadata,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("participant_id", sa.String(64), nullable=False, index=True),
    sa.Column("secret_hash", sa.String(128), nullable=False),
    sa.Column("salt", sa.String(64), nullable=False),
    sa.Column("public_key", sa.String(128)),
    sa.Column("revoked", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
participant_rate_limits = sa.Table(  # migration 0034: a participant's own request rate
    "pay_participant_rate_limits",
    metadata,
    sa.Column("participant_id", sa.String(64), primary_key=True),
    sa.Column("per_s", sa.Float, nullable=False),
    sa.Column("burst", sa.Integer, nullable=False),
    sa.Column("set_by", sa.String(64), nullable=False),
    sa.Column("set_at", sa.BigInteger, nullable=False),
    sa.CheckConstraint("per_s >= 0.01 AND per_s <= 1000000", name="ck_rate_limit_per_s"),
    sa.CheckConstraint("burst >= 1 AND burst <= 1000000", name="ck_rate_limit_burst"),
)
request_nonces = sa.Table(  # migration 0013: signed requests' nonces, while they are fresh
    "pay_request_nonces",
    metadata,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
)
idempotency = sa.Table(
    "pay_idempotency",
    metadata,
    sa.Column("caller", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # the response's headers, a JSON list of [name, value] (None: stored before 0010)
    sa.Column("headers", sa.Text, nullable=True),
    # the random token of the request whose marker this is (payments/keyed.py; migration
    # 0021); None for answers stored without a marker, and rows from before
    sa.Column("token", sa.BigInteger, nullable=True),
    # the purge of rows past the retention period finds them by age (migration 0024)
    sa.Index("ix_pay_idempotency_created_at", "created_at"),
)

# Notifications (Mojaloop's callbacks): where each participant wants them, and an outbox
# written in the same transaction as the state change it reports (migration 0007).
endpoints = sa.Table(
    "pay_endpoints",
    metadata,
    sa.Column("participant_id", sa.String(64), primary_key=True),
    sa.Column("url", sa.String(500), nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
outbox = sa.Table(
    "pay_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("participant_id", sa.String(64), nullable=False, index=True),
    sa.Column("event", sa.String(40), nullable=False),
    # a transfer's id, or ``<participant id>/<change number>`` (migration 0029)
    sa.Column("resource_id", sa.String(128), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
    sa.Column("delivered_at", sa.BigInteger),
    sa.Column("last_error", sa.String(300)),
    # when the dispatcher gave up on it (migration 0014): no longer due, no longer in the way
    sa.Column("abandoned_at", sa.BigInteger),
    sa.Index("ix_pay_outbox_due", "delivered_at", "next_attempt_at"),
)

# A reviewer's verdict on a held transfer, as the decisions the screenings log for it,
# written in the review's own transaction and appended to the decision log after it commits
# (migration 0025): a verdict is logged if and only if it took effect. Deleted once appended;
# what a crash or a log that refused left here, the deadline pass appends.
decision_outbox = sa.Table(
    "pay_decision_outbox",
    metadata,
    sa.Column("decision_id", sa.String(32), primary_key=True),
    sa.Column("transfer_id", sa.String(64), nullable=False),
    sa.Column("record", sa.Text, nullable=False),  # the decision as the log writes it (JSON)
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # until when one worker or pass appends it (the review's own worker, then a pass that
    # claimed it); past it, the next pass claims it
    sa.Column("claimed_until", sa.BigInteger, nullable=False, index=True),
)


def _dec(text: str | None) -> Decimal | None:
    return Decimal(text) if text is not None else None


qr_payments = sa.Table(  # migration 0032: a dynamic QR is paid once
    "pay_qr_payments",
    metadata,
    #: SHA-256 of the QR's text without its CRC value (hex): the QR, however its CRC is cased
    sa.Column("qr_digest", sa.String(64), primary_key=True),
    #: the transfer paying it (the latest: one aborted frees the QR for another)
    sa.Column("transfer_id", sa.String(64), nullable=False),
    sa.Column("paid_at", sa.BigInteger, nullable=False),
)
versions = sa.Table(  # migration 0009: bumped by triggers on every participant change
    "pay_versions",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)


# Statements of the payment path, built once: building a statement per call (and its cache
# key) cost SQLAlchemy more than running it.
_PARTICIPANT = (
    sa.select(
        participants,
        participant_currencies.c.currency.label("pc_currency"),
        participant_currencies.c.ledger.label("pc_ledger"),
        participant_currencies.c.position_account.label("pc_position"),
        participant_currencies.c.settlement_account.label("pc_settlement"),
        participant_currencies.c.net_debit_cap.label("pc_cap"),
    )
    .select_from(
        participants.outerjoin(
            participant_currencies, participant_currencies.c.participant_id == participants.c.id
        )
    )
    .where(participants.c.id == sa.bindparam("pid"))
)


_ALIAS = select_all(aliases, "alias_type = ? AND alias = ?")
QUOTE_BY_ID = select_all(quotes, "id = ?")
TRANSFER_BY_ID = select_all(transfers, "id = ?")
IDEMPOTENT_ANSWER = Fast(
    "SELECT request_hash, status_code, response, headers FROM pay_idempotency"
    " WHERE caller = ? AND key = ?"
)
# A concurrent retry that stored its answer first keeps it: its response stands. The marker
# its operation wrote (status 0: payments/keyed.py) is filled in, by the answer to the same
# request only (servers without a shared home could run two requests with one key).
STORE_IDEMPOTENT_ANSWER = Fast(
    "INSERT INTO pay_idempotency"
    " (caller, key, request_hash, status_code, response, created_at, headers)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (caller, key) DO UPDATE SET"
    " status_code = excluded.status_code, response = excluded.response,"
    " created_at = excluded.created_at, headers = excluded.headers"
    " WHERE pay_idempotency.status_code = 0"
    " AND pay_idempotency.request_hash = excluded.request_hash"
)
# The answer of a request that wrote a marker of the key: fills in that marker only (its
# ``token``, the request's, is the last parameter; payments/keyed.py), and is stored where
# the key has no row (the marker was rolled back with its transaction).
STORE_OWN_IDEMPOTENT_ANSWER = Fast(
    STORE_IDEMPOTENT_ANSWER.sql["sqlite"] + " AND pay_idempotency.token = ?"
)
# The answer of a request that wrote no marker of the key: a row already there is another
# request's (its marker waits for that request's own answer), and is left as it is.
STORE_NEW_IDEMPOTENT_ANSWER = Fast(
    "INSERT INTO pay_idempotency"
    " (caller, key, request_hash, status_code, response, created_at, headers)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (caller, key) DO NOTHING"
)
TRANSFER_EXISTS = Fast("SELECT id FROM pay_transfers WHERE id = ?")
SET_QUOTE_STATE = Fast("UPDATE pay_quotes SET state = ? WHERE id = ?")
INSERT_QUOTE = FastInsert(quotes)
INSERT_TRANSFER = FastInsert(transfers)
#: The last transfer's number (``seq``): read under the write lock, the next ones follow it
LAST_TRANSFER_SEQ = Fast("SELECT COALESCE(MAX(seq), 0) FROM pay_transfers")
SET_TRANSFER_STATE = Fast(
    "UPDATE pay_transfers SET state = ?, reason = ?, updated_at = ?, window_id = ? WHERE id = ?"
)
#: The transfer that paid a dynamic QR, if one did (read and written under the write lock)
QR_PAID_BY = Fast("SELECT transfer_id FROM pay_qr_payments WHERE qr_digest = ?")
INSERT_QR_PAYMENT = Fast(
    "INSERT INTO pay_qr_payments (qr_digest, transfer_id, paid_at) VALUES (?, ?, ?)"
)
SET_QR_PAYMENT = Fast("UPDATE pay_qr_payments SET transfer_id = ?, paid_at = ? WHERE qr_digest = ?")
OPEN_WINDOW = select_all(windows, OPEN_WINDOW_STATE)
SCHEME_ACCOUNT = Fast("SELECT account_id FROM pay_scheme_accounts WHERE currency = ? AND kind = ?")
RATES_NOW = select_all(fx_rates, "source_currency = ? AND target_currency = ? AND valid_until > ?")
ENDPOINTS_OF = sa.select(endpoints.c.participant_id).where(
    endpoints.c.participant_id.in_(sa.bindparam("pids", expanding=True))
)
INSERT_OUTBOX = sa.insert(outbox)


def load_participant(conn: Connection, participant_id: str) -> Participant | None:
    """A participant with its currencies, in one query."""
    rows = conn.execute(_PARTICIPANT, {"pid": participant_id}).all()
    if not rows:
        return None
    row = rows[0]
    currencies = {
        r.pc_currency: ParticipantCurrency(
            r.pc_currency,
            r.pc_ledger,
            id_from_bytes(r.pc_position),
            id_from_bytes(r.pc_settlement),
            r.pc_cap,
        )
        for r in rows
        if r.pc_currency is not None
    }
    return Participant(
        row.id, row.name, ParticipantKind(row.kind), row.country, row.active, currencies, row.bic
    )


_PARTICIPANTS_VERSION = Fast("SELECT version FROM pay_versions WHERE name = 'participants'")
_MEMO = "entrepot.payments.participants_version"
_WITH_ENDPOINT = sa.select(endpoints.c.participant_id)


class ParticipantCache:
    """The participants this process has read, each with the version of the participants it
    was read at (``pay_versions``, bumped by triggers on every change to a participant, its
    currencies or its callback endpoint, by any process). A transaction reads the version once,
    at its first lookup, and takes from the cache only what was read at that version: it sees
    exactly what a query would, in its own snapshot. A payment checks five to ten participants
    (payer, payee, FX provider, the scheme's fee account, each more than once) and who has a
    callback endpoint; without the cache each was a query, most of them under the write lock.

    A transaction that changes participants itself (``changed``) reads through the cache for
    the rest of its life: its changes are not committed, so no version names them yet."""

    SIZE_MAX = 10_000

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, Participant]] = {}
        self._endpoints: tuple[int, frozenset[str]] | None = None

    def get(self, conn: Connection, participant_id: str) -> Participant | None:
        version = self._version(conn)
        if version is not None:
            hit = self._entries.get(participant_id)
            if hit is not None and hit[0] == version:
                return hit[1]
        found = load_participant(conn, participant_id)
        if found is not None and version is not None:
            if len(self._entries) >= self.SIZE_MAX:
                self._entries.clear()
            self._entries[participant_id] = (version, found)
        return found

    def with_endpoint(self, conn: Connection) -> frozenset[str]:
        """The participants that registered a callback endpoint (each state change of a
        transfer queues a notice for them)."""
        version = self._version(conn)
        cached = self._endpoints
        if version is not None and cached is not None and cached[0] == version:
            return cached[1]
        found = frozenset(r[0] for r in conn.execute(_WITH_ENDPOINT).all())
        if version is not None:
            self._endpoints = (version, found)
        return found

    @staticmethod
    def _version(conn: Connection) -> int | None:
        """The participants' version in this transaction (None: it changed them itself)."""
        memo = conn.info.get(_MEMO)
        if memo is not None and memo[0] is conn.get_transaction():
            return memo[1]  # type: ignore[no-any-return]
        version = int(_PARTICIPANTS_VERSION.first(conn)[0])
        conn.info[_MEMO] = (conn.get_transaction(), version)
        return version

    @staticmethod
    def changed(conn: Connection) -> None:
        """``conn``'s transaction has changed a participant: read through from now on."""
        conn.info[_MEMO] = (conn.get_transaction(), None)


def find_alias(conn: Connection, kind: str, value: str) -> Party | None:
    row = _ALIAS.first(conn, (kind, value))
    return party_from_row(row) if row is not None else None


def party_from_row(r: Any) -> Party:
    return Party(
        AliasType(r.alias_type),
        r.alias,
        r.participant_id,
        r.display_name,
        r.currency,
        r.country,
        r.created_at,
    )


def quote_from_row(r: Any) -> Quote:
    return Quote(
        r.id,
        r.payer_participant,
        r.payee_participant,
        AliasType(r.payee_alias_type),
        r.payee_alias,
        AmountType(r.amount_type),
        r.source_currency,
        r.target_currency,
        r.source_amount,
        r.fee,
        r.target_amount,
        r.fx_provider,
        _dec(r.fx_rate),
        r.expires_at,
        QuoteState(r.state),
        r.created_at,
        r.payer_alias,
        r.payee_registered_at,
    )


def transfer_from_row(r: Any) -> PaymentTransfer:
    return PaymentTransfer(
        r.id,
        r.quote_id,
        r.payer_participant,
        r.payee_participant,
        r.source_currency,
        r.target_currency,
        r.source_amount,
        r.fee,
        r.target_amount,
        r.fx_provider,
        _dec(r.fx_rate),
        TransferState(r.state),
        r.expires_at,
        r.created_at,
        r.updated_at,
        r.window_id,
        r.reason,
        r.note,
        r.payer_alias,
        r.payee_alias,
    )


def escrow_from_row(r: Any) -> Escrow:
    return Escrow(
        r.id,
        r.payer_participant,
        r.payee_participant,
        r.controller,
        r.currency,
        r.amount,
        r.released,
        r.refunded,
        r.purpose,
        r.deadline,
        DeadlineAction(r.on_deadline),
        EscrowState(r.state),
        r.created_at,
        r.managed_by,
    )


def insert_rows(
    conn: Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    constants: Mapping[str, Any] | None = None,
) -> None:
    """Insert many rows in the caller's transaction, through the driver: ``COPY`` on
    PostgreSQL, and on SQLite through a staging table (below); SQLAlchemy's per-row parameter
    processing costs more than the insert itself on the bulk path. Each row is a tuple of
    ``columns``' values, already what the driver takes (ints, strings, bytes, None);
    ``constants`` are columns with one value for every row (a bulk's payer, currency, state,
    time, window); the columns left out take their defaults.

    On SQLite the rows go into a TEMP table of ``columns`` (the connection's own, in memory,
    no index, no WAL) and one ``INSERT ... SELECT`` copies them with the constants, which are
    bound once. An ``executemany`` into the table binds every value of every row and runs
    the statement's set-up once a row: about 40 % more work for a bulk's 8,000 rows of 16
    values (callgrind: 442 against 274 million instructions a bulk). A staging table is
    named after its table and columns (another set of columns is another table), emptied
    before use (a caller that caught a failed insert and went on in its transaction left
    rows in it) and after. The temp database keeps its freed pages for reuse: about 1 MB on
    a connection that has staged 8,000 rows."""
    if not rows:
        return
    constants = dict(constants or {})
    known = set(table.columns.keys())
    unknown = [c for c in (*columns, *constants) if c not in known]
    if unknown:
        raise ValueError(f"{table.name} has no column {', '.join(unknown)}")
    twice = set(columns) & set(constants)
    if twice:
        raise ValueError(f"columns given both per row and as constants: {twice}")
    if conn.dialect.name == "postgresql":  # COPY: one round trip, not one per row
        if not conn.in_transaction():  # COPY through the driver would not begin SQLAlchemy's
            conn.begin()  # transaction, and the caller's commit would then commit nothing
        fixed = tuple(constants.values())
        cur = driver_connection(conn).cursor()
        with cur.copy(
            f"COPY {table.name} ({', '.join((*columns, *constants))}) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row + fixed)
        return
    names = ", ".join(columns)
    name = f"staging_{table.name}_{hashlib.blake2b(names.encode(), digest_size=4).hexdigest()}"
    staging = f"temp.{name}"
    conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({names})")
    conn.exec_driver_sql(f"DELETE FROM {staging}")  # a failed insert's leftovers, if any
    conn.exec_driver_sql(
        f"INSERT INTO {staging} ({names}) VALUES ({', '.join(['?'] * len(columns))})",
        list(rows),
    )
    conn.exec_driver_sql(
        f"INSERT INTO main.{table.name} ({', '.join((*columns, *constants))}) "
        f"SELECT {names}{''.join(', ?' for _ in constants)} FROM {staging} ORDER BY rowid",
        tuple(constants.values()),
    )
    conn.exec_driver_sql(f"DELETE FROM {staging}")
