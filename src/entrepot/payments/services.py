"""The payment scheme's use cases. Every one runs in one unit of work: it loads what it needs,
lets the model decide, posts through the ledger in the same transaction, and commits. All
writes are serialised behind the ledger's write lock (ADR 0002), so there is no lost update.

Ledger layout, per currency (ledger = ISO 4217 numeric code):
- each participant: a *position* account (``debits_must_not_exceed_credits``), granted its
  net debit cap from the scheme's cap line, debited when it sends, credited when it receives;
  and a *settlement* account at the central bank, funded by deposits;
- the scheme: ``cap_line``, ``reserve`` (central bank money issued into settlement accounts),
  ``settlement_hub`` (nets are paid into and out of it), ``position_reset`` (restores positions
  after settlement), ``fx_reservation`` (FX liquidity held for accepted quotes),
  ``escrow`` (funds held for a purpose).
Fees are credited to the position of the scheme operator, participant ``scheme``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal, localcontext
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from entrepot.config import IDEMPOTENCY_RETENTION_S
from entrepot.kernel.clock import NS_PER_S, Clock, SystemClock
from entrepot.kernel.countries import is_country
from entrepot.kernel.errors import FieldsNamed
from entrepot.kernel.ids import id_from_bytes, id_to_bytes
from entrepot.kernel.money import (
    Currency,
    Money,
    convert,
    format_amount,
    get_currency,
    parse_amount,
)
from entrepot.kernel.text import first_refused, shows_nothing
from entrepot.ledger import (
    AMOUNT_FULL,
    Account,
    AccountFlags,
    Ledger,
    Transfer,
    TransferFlags,
    chain_batches,
    ledger_for_currency,
)
from entrepot.payments import keyed, qr
from entrepot.payments import store as st
from entrepot.payments.aliases import alias_text, normalise_alias
from entrepot.payments.errors import (
    AliasTaken,
    ControllerNotAllowed,
    CurrencyNotSupported,
    DuplicateWithDifferentBody,
    EscrowNotFound,
    FxLiquidityExhausted,
    InsufficientEscrow,
    InvalidPaymentInput,
    InvalidState,
    LedgerRefused,
    NetDebitCapExceeded,
    NoFxRate,
    NotYours,
    ParticipantNotFound,
    ParticipantSuspended,
    PartyNotFound,
    PaymentError,
    QrAlreadyPaid,
    QuoteExpired,
    QuoteNotFound,
    TransferBlocked,
    TransferExpired,
    TransferNotFound,
    WindowNotFound,
    shown_id,
)
from entrepot.payments.fees import FeeSchedule
from entrepot.payments.keyed import FX_RATE, PARTY, PARTY_REMOVED, SETTLEMENT_WINDOW, mark_keyed
from entrepot.payments.model import (
    REVIEW_REJECTED,
    REVIEW_RELEASED,
    SCHEME_AMOUNT_MAX,
    AliasType,
    AmountType,
    DeadlineAction,
    Escrow,
    EscrowState,
    FxRate,
    NetPosition,
    Participant,
    ParticipantKind,
    Party,
    PaymentTransfer,
    Quote,
    QuoteState,
    SettlementWindow,
    StatusChange,
    TransferState,
    WindowState,
    less_spread,
    uetr_int,
)
from entrepot.payments.notify import endpoint_problem, notify_status, notify_transfer
from entrepot.storage.engine import read_connection
from entrepot.storage.group import GroupCommit
from entrepot.storage.outbox import claim_due, waiting_and_due
from entrepot.storage.uow import UnitOfWork

log = logging.getLogger(__name__)

SCHEME = "scheme"  # the scheme operator's participant id; fees accrue to its position
#: A reviewer's verdict waiting in the decision outbox this long (its worker died, or the log
#: refused it) is appended by the deadline pass; a younger one, by the review's own worker.
VERDICT_GRACE_S = 60
VERDICTS_A_PASS = 1_000


class VerdictsPartlyLogged(Exception):
    """Some of the verdicts a screening was to log were appended (``logged``: their ids),
    then a log refused the rest (the cause)."""

    def __init__(self, logged: set[str], cause: BaseException) -> None:
        super().__init__(f"{len(logged)} verdicts appended, then: {cause}")
        self.logged = logged


ID_NAMESPACE = uuid.UUID("6d1f5c3e-8a43-4f0e-9a8e-5e1b2c3d4e5f")
QUOTE_TTL_S = 60
#: An FX rate as posted (target units per source unit): at most 12 decimal places, below
#: 10^11, and at least 10^-10 less its spread: what the API's schema takes, and what a
#: pacs.008's ``XchgRate`` (11 digits, 10 after the point) can state. Rates up to 10^18 and
#: down to 10^-12 were taken: a payment made at one could not be exported (422).
RATE_DECIMALS_MAX = 12
RATE_MAX = 10**11
RATE_EFFECTIVE_MIN = Decimal("1E-10")
RATE_EFFECTIVE_MAX = Decimal("99999999999.5")  # rounds to 10^11 at no places: 12 digits
#: ISO 9362: institution (4 letters), country (2), location (2), branch (3, optional)
_BIC = re.compile(r"[A-Z]{6}[A-Z2-9][A-NP-Z0-9](?:[A-Z0-9]{3})?")
TRANSFER_TTL_S = 60
#: How long an accepted quote's FX reservation outlives the quote (``_acceptance``)
FX_RESERVATION_SLACK_S = 1
TTL_S_MAX = 86_400
NAME_LEN_MAX = 200
ENDPOINT_LEN_MAX = 500
SCHEME_ACCOUNT_KINDS = (
    "cap_line",
    "reserve",
    "settlement_hub",
    "position_reset",
    "fx_reservation",
    "escrow",
)


class Code:
    """Ledger account and transfer codes used by the scheme."""

    POSITION = 100
    SETTLEMENT = 101
    SCHEME_ACCOUNT = 110
    PAYMENT = 1
    FEE = 2
    FX_LEG = 3
    FX_RESERVATION = 4
    ESCROW_HOLD = 5
    ESCROW_RELEASE = 6
    ESCROW_REFUND = 7
    SETTLEMENT_TRANSFER = 8
    POSITION_RESET = 9
    CAP = 10
    DEPOSIT = 11


_NAMESPACE_BYTES = ID_NAMESPACE.bytes
_UUID5_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID5_SET = (5 << 76) | (0x8000 << 48)


def ledger_id(*parts: str) -> int:
    """Deterministic 128-bit ledger ids from scheme ids: retries post the same ids. Exactly
    ``uuid.uuid5(ID_NAMESPACE, ":".join(parts)).int`` (SHA-1, RFC 4122 version and variant
    bits), computed without building UUID objects: the bulk path makes two per transfer."""
    digest = hashlib.sha1(_NAMESPACE_BYTES + ":".join(parts).encode()).digest()
    return (int.from_bytes(digest[:16], "big") & _UUID5_CLEAR) | _UUID5_SET


@dataclass(frozen=True, slots=True)
class ScreeningDecision:
    """``hold``: a person reviews the transfer before it is reserved for the payee (HOLD);
    ``block``: refused outright (fraud with strong combined evidence; never a name alone)."""

    hold: bool
    reasons: tuple[str, ...] = ()
    block: bool = False
    #: the decisions the screening was logged as (``"sanctions decision <id>"``): named at
    #: the end of a held transfer's reason, whole however long the reasons, so that the
    #: reviewer's verdict is logged linked to them in whichever worker it reaches
    logged: tuple[str, ...] = ()
    #: what takes back what the screening learned from the transfer (fraud: the payer's
    #: history), run should the transfer not be written after all (``_on_rollback``)
    undo: tuple[Callable[[], None], ...] = field(default=(), compare=False, repr=False)

    def reason(self) -> str:
        """The held transfer's reason: the reasons, cut to fit, then the decisions."""
        text = "; ".join(self.reasons)
        if not self.logged:
            return _reason(text) or ""
        tail = " [" + "; ".join(self.logged) + "]"
        return (_reason(text, REASON_LEN_MAX - len(tail)) or "") + tail


def screen_all(
    screening: Screening, pairs: Sequence[tuple[PaymentTransfer, Party | None]]
) -> list[ScreeningDecision]:
    """``screening``'s decision on each (transfer, payee): together where it screens many at
    once (``screen_many``: one log append), else one by one."""
    many = getattr(screening, "screen_many", None)
    if many is not None:
        return list(many(pairs))
    return [screening.screen(t, p) for t, p in pairs]


def screens_bulks_ahead(screening: object) -> bool:
    """Whether ``screening`` may screen a bulk's payees before the write lock: it keeps no
    state of what it screens (``screens_ahead``), or none of a bulk's items
    (``screens_bulks_ahead``: fraud screening, which scores no transfer without a payer)."""
    return bool(
        getattr(screening, "screens_ahead", False)
        or getattr(screening, "screens_bulks_ahead", False)
    )


class Screening(Protocol):
    """Risk plugs in here: a transfer may be held for a person's review instead of reserved,
    or blocked. A screening may also make the decisions a review's verdict is logged as
    (``verdicts``, called in the review's transaction, written to the decision outbox),
    append them to its log (``log_verdicts``, after the commit; the ids appended), learn from
    the verdict (``learn``, after the commit), load what it screens with ahead of the first
    transfer (``load``; a server calls it at start), and say that it keeps no state of what it
    screens (``screens_ahead = True``: a prepare then screens before taking the write lock).
    One that keeps state of some transfers but of no bulk item says so with
    ``screens_bulks_ahead = True``: a bulk then screens its payees before the write lock.
    One that keeps state gives, with its decision, how to take back what it learned
    (``ScreeningDecision.undo``): run if the transfer is not written after all."""

    def screen(self, transfer: PaymentTransfer, payee: Party | None) -> ScreeningDecision: ...


class ApproveAll:
    def screen(self, transfer: PaymentTransfer, payee: Party | None) -> ScreeningDecision:
        return ScreeningDecision(hold=False)


def source_for_target(target_minor: int, target: str, rate: Decimal, source: str) -> int:
    """The fewest source minor units that buy ``target_minor`` at ``rate`` (target units per
    source unit): the exact quotient, rounded up once (never 1/rate rounded, then rounded)."""
    t, s = get_currency(target), get_currency(source)
    with localcontext() as ctx:
        ctx.prec = 80
        exact = Decimal(target_minor) / Decimal(10) ** t.exponent / rate
        units = exact.quantize(Decimal(1).scaleb(-s.exponent), rounding=ROUND_UP)
        return int(units.scaleb(s.exponent))


def _check_amount(amount_minor: int, what: str = "amount") -> None:
    if type(amount_minor) is not int or amount_minor <= 0:
        raise InvalidPaymentInput(f"{what} must be a positive integer of minor units", field=what)
    if amount_minor > SCHEME_AMOUNT_MAX:
        raise InvalidPaymentInput(f"{what} {amount_minor} exceeds the scheme's maximum", field=what)


def _check_text(value: str, what: str, field: str, length_max: int = NAME_LEN_MAX) -> None:
    """A name or note: 1 to ``length_max`` characters, not only spaces, and none that
    ``kernel/text.py`` refuses: control characters broke what carries the text on
    (PostgreSQL refuses NUL: a 500; XML the others: a payer's pacs.008 failed for the
    payee's display name), and invisible ones show a payer another name than it holds."""
    if not value or len(value) > length_max or shows_nothing(value):
        raise InvalidPaymentInput(
            f"{what} must be 1-{length_max} characters, not only spaces (nor joiners or marks "
            "alone: they show nothing)",
            field=field,
        )
    at = first_refused(value)  # kernel/text.py: a name a payer is shown to trust
    if at is not None:
        raise InvalidPaymentInput(
            f"{what} holds a control or invisible formatting character "
            f"(U+{ord(value[at]):04X}) at {at}",
            field=field,
        )


def _check_amount_currency(
    amount_type: AmountType, currency: str | None, source: str, target: str
) -> None:
    """A SEND amount is in the source currency, a RECEIVE amount in the payee's (None: the
    caller states none)."""
    expected = source if amount_type is AmountType.SEND else target
    if currency is not None and currency != expected:
        raise InvalidPaymentInput(
            f"a {amount_type.value} amount is in {expected}, not {currency}",
            field="amount.currency",
        )


#: an id, as the API's schemas take one (str.isalnum() took any script's letters and digits:
#: the CLI made ids, "bänk-١", the API refuses and could not name)
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: the scheme operator's participant is of no one country: ISO 3166's code for none
SCHEME_COUNTRY = "ZZ"


# Refusals named as the API's bodies spell the fields (an alias check says "id")
_AS_PAYER = FieldsNamed({"id": "payer.partyIdentifier", "type": "payer.partyIdType"})
_AS_PAYEE = FieldsNamed({"id": "payee.partyIdentifier", "type": "payee.partyIdType"})
_AS_SOURCE = FieldsNamed({"currency": "sourceCurrency"})
_AS_TARGET = FieldsNamed({"currency": "targetCurrency"})
_PAYEE_IS_THE_QR = FieldsNamed({"payee": "payload"})
_TIP_AMOUNT = FieldsNamed({"amount": "tip.amount"})


def _check_id(value: str, what: str) -> None:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidPaymentInput(
            f"{what} {value!r} must be 1-64 letters, digits, '-' or '_'", field=what
        )


def _check_ttl(seconds: int, what: str) -> None:
    if type(seconds) is not int or not 1 <= seconds <= TTL_S_MAX:
        raise InvalidPaymentInput(f"{what} must be 1..{TTL_S_MAX} seconds", field=what)


def _check_posted(results: Sequence[str], on_limit: Callable[[], Exception]) -> None:
    """Raise for the first kind of refusal among a ledger batch's results: a limit
    (``on_limit``), an expired pending transfer, anything else. Events that failed only
    because a linked one did, and retries of events already made, are not refusals."""
    failures = [r for r in results if r not in ("ok", "exists", "linked_event_failed")]
    if not failures:
        return
    if any(r in ("exceeds_credits", "exceeds_debits") for r in failures):
        raise on_limit()
    if "pending_transfer_expired" in failures:
        raise TransferExpired("the transfer expired before it was resolved")
    raise LedgerRefused(f"ledger refused the postings: {', '.join(sorted(set(failures)))}")


def _fx_exhausted(q: Quote) -> FxLiquidityExhausted:
    return FxLiquidityExhausted(f"FX provider {q.fx_provider} lacks {q.target_currency} liquidity")


_JOINED: ContextVar[UnitOfWork | None] = ContextVar("entrepot_payments_joined", default=None)
#: The context whose use case the scheme runs in (``joined(uow, manager=...)``): the only one
#: that may decide the escrows it made (``managed_by``).
_MANAGER: ContextVar[str | None] = ContextVar("entrepot_payments_manager", default=None)
#: What to undo in memory should the unit of work the scheme's use cases run in not commit
#: (the outermost one's: a joined use case's work commits with its caller's).
_UNDO: ContextVar[list[Callable[[], None]] | None] = ContextVar(
    "entrepot_payments_undo", default=None
)


@contextmanager
def _undone_on_failure() -> Iterator[None]:
    """Inside: what ``_on_rollback`` is given runs (latest first) if the block raises, the
    commit's failure included; an inner block leaves it to the outermost."""
    if _UNDO.get() is not None:
        yield
        return
    undo: list[Callable[[], None]] = []
    token = _UNDO.set(undo)
    try:
        yield
    except BaseException:
        for step in reversed(undo):
            try:
                step()
            except Exception:  # the first error is the one to raise
                log.exception("undoing in memory what a failed unit of work did failed")
        raise
    finally:
        _UNDO.reset(token)


#: ``_undone_on_failure``'s stand-in where nothing can be given to undo (reusable)
_NOTHING_TO_UNDO: AbstractContextManager[None] = nullcontext()


def _on_rollback(steps: Sequence[Callable[[], None]]) -> None:
    """Run ``steps`` should the current unit of work not commit (nothing outside one)."""
    undo = _UNDO.get()
    if undo is not None:
        undo.extend(steps)


class _JoinedUnitOfWork(UnitOfWork):
    """The caller's unit of work, seen from inside the scheme: the scheme's own ``commit()``
    (it persists an abort before raising, e.g. a transfer found expired) does nothing here, so
    the caller's work is never committed half-way; the caller commits or rolls back all."""

    def __init__(self, outer: UnitOfWork) -> None:
        super().__init__(outer.engine)
        self._connection = outer.connection

    def commit(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:  # the connection is the caller's to close
        self._connection = None


def _holds_not(escrow_id: str, held_minor: int, wanted_minor: int, currency: str) -> str:
    """Why a move is more than an escrow holds, in amounts as the caller writes them."""
    held = format_amount(held_minor, currency)
    wanted = format_amount(wanted_minor, currency)
    return f"escrow {escrow_id} holds {held} {currency}, not {wanted} {currency}"


class PaymentScheme:
    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        clock: Clock | None = None,
        *,
        fees: FeeSchedule | None = None,
        screening: Screening | None = None,
        callback_hosts: Sequence[str] = (),
        group_commit: bool = True,
        idempotency_retention_s: int = IDEMPOTENCY_RETENTION_S,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.clock: Clock = clock or SystemClock()
        self.fees = fees or FeeSchedule()
        self.screening: Screening = screening or ApproveAll()
        #: hosts callback endpoints may point at (empty: any): the operator's allow-list
        self.callback_hosts = frozenset(h.lower() for h in callback_hosts)
        #: how long an Idempotency-Key's answer is kept (``purge_idempotency``)
        self.idempotency_retention_s = idempotency_retention_s
        self._participants = st.ParticipantCache()
        # Concurrent use cases share a transaction and its commit (storage/group.py); the
        # shared transaction takes the ledger's write lock first, as each would.
        self._group = GroupCommit(engine, ledger.store.take_write_lock) if group_commit else None

    # ------------------------------------------------------------------ plumbing
    def _joined_uow(self) -> UnitOfWork | None:
        """The caller's unit of work these use cases run in (``joined``), if any."""
        joined = _JOINED.get()
        return joined if joined is not None and joined.engine is self.engine else None

    @contextmanager
    def _uow(self) -> Iterator[UnitOfWork]:
        # Each write of a keyed API request records the key with it (payments/keyed.py), when
        # its block ends without an exception: a refusal that keeps part of its work (an
        # expiry recorded with ``commit()``, then the error) leaves no marker, and its retry
        # is refused again rather than answered as done.
        joined = self._joined_uow()
        if joined is not None:
            self.ledger.store.take_write_lock(joined.connection)
            yield _JoinedUnitOfWork(joined)  # the caller commits, or rolls everything back
            mark_keyed(joined.connection, self._now())
            return
        if self._group is not None:
            with self._undo_scope(), self._group.unit() as uow:  # commits with its batch
                # Reads inside (``_read``) see this transaction, earlier members' work too:
                # a snapshot would not, until the batch commits.
                token = _JOINED.set(uow)
                try:
                    yield uow
                finally:
                    _JOINED.reset(token)
                mark_keyed(uow.connection, self._now())
            return
        with self._undo_scope(), UnitOfWork(self.engine) as uow:
            # Take the ledger's write lock first: every scheme write is serialised with it.
            self.ledger.store.take_write_lock(uow.connection)
            yield uow
            mark_keyed(uow.connection, self._now())
            uow.commit()

    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]:
        """``with scheme.unit_of_work() as uow: ...``: a unit of work for a write that goes
        with the scheme's (the API's idempotency records): it joins the scheme's group commit
        (one transaction, one COMMIT and fsync, for the concurrent writes of a batch) and
        commits when the block ends without an exception."""
        return self._uow()

    def write_with_next(
        self,
        write: Callable[[Connection], Any],
        on_done: Callable[[BaseException | None], None],
    ) -> bool:
        """Queue a small write (the API's idempotency records) to go into the transaction of
        the scheme's next group commit, without a turn of its own; ``on_done(None)`` once it
        is durable. False when no commit is sure to follow (or there is no group commit):
        the caller writes on its own (``GroupCommit.write_with_next``)."""
        if self._group is None or self._joined_uow() is not None:
            return False
        return self._group.write_with_next(write, on_done)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection for queries: the joined unit of work's (it sees its own writes), else
        a snapshot that does not take the write lock."""
        joined = self._joined_uow()
        if joined is not None:
            yield joined.connection
            return
        with read_connection(self.engine) as conn:
            yield conn

    @contextmanager
    def joined(self, uow: UnitOfWork, manager: str | None = None) -> Iterator[PaymentScheme]:
        """Run scheme use cases inside a caller's unit of work (another context's use case,
        e.g. a trade checkout): their writes and the caller's commit together or not at all.
        The scheme does not commit; the caller does. Reads through ``get_*`` still see only
        committed data. ``manager``: the context calling, which alone decides the escrows it
        made with ``managed_by`` set to it."""
        self.ledger.store.take_write_lock(uow.connection)
        token = _JOINED.set(uow)
        managed = _MANAGER.set(manager)
        try:
            with self._undo_scope():  # (the caller's commit, after it, is the caller's)
                yield self
        finally:
            _MANAGER.reset(managed)
            _JOINED.reset(token)

    def _now(self) -> int:
        return self.clock.now_ns()

    def _undo_scope(self) -> AbstractContextManager[None]:
        """``_undone_on_failure()`` where the screening may keep state of what it screens (its
        decisions then give a take-back); else nothing: a screening that keeps none (none at
        all, or one that ``screens_ahead``) gives nothing to undo, and setting up the scope
        for every unit of work cost a few microseconds each."""
        screening = self.screening
        if type(screening) is ApproveAll or getattr(screening, "screens_ahead", False):
            return _NOTHING_TO_UNDO
        return _undone_on_failure()

    def _post(self, uow: UnitOfWork, batch: Sequence[Transfer]) -> list[str]:
        return [str(r) for r in self.ledger.create_transfers(batch, uow=uow)]

    def _post_ok(
        self, uow: UnitOfWork, batch: Sequence[Transfer], on_limit: Callable[[], Exception]
    ) -> None:
        _check_posted(self._post(uow, batch), on_limit)

    def _participant(self, conn: Connection, participant_id: str) -> Participant:
        found = self._participants.get(conn, participant_id)
        if found is None:
            raise ParticipantNotFound(f"participant {shown_id(participant_id)!r} does not exist")
        return found

    def _active(self, conn: Connection, participant_id: str) -> Participant:
        p = self._participant(conn, participant_id)
        if not p.active:
            raise ParticipantSuspended(f"participant {participant_id!r} is suspended")
        return p

    def _scheme_account(self, conn: Connection, currency: str, kind: str) -> int:
        row = st.SCHEME_ACCOUNT.first(conn, (currency, kind))
        if row is None:
            raise CurrencyNotSupported(f"the scheme does not run {currency}", field="currency")
        return id_from_bytes(row[0])

    # ------------------------------------------------------------------ currencies
    def enable_currency(self, currency: str) -> None:
        """Open the scheme's ledger accounts for a currency (idempotent)."""
        cur = get_currency(currency)
        number = ledger_for_currency(cur)
        self.ledger.define_ledger(number, cur.code)
        with self._uow() as uow:
            conn = uow.connection
            accounts = []
            for kind in SCHEME_ACCOUNT_KINDS:
                account_id = ledger_id("scheme-account", cur.code, kind)
                accounts.append(Account(account_id, number, Code.SCHEME_ACCOUNT))
                exists = conn.execute(
                    sa.select(st.scheme_accounts.c.kind).where(
                        st.scheme_accounts.c.currency == cur.code, st.scheme_accounts.c.kind == kind
                    )
                ).first()
                if exists is None:
                    conn.execute(
                        sa.insert(st.scheme_accounts).values(
                            currency=cur.code, kind=kind, account_id=id_to_bytes(account_id)
                        )
                    )
            results = self.ledger.create_accounts(accounts, uow=uow)
            assert all(r in ("ok", "exists") for r in results), results
        with self._read() as conn:
            scheme = st.load_participant(conn, SCHEME)
        if scheme is None:
            # "already exists": another enable_currency registered it since the read above
            # (two at once on a new scheme); the currency is added to it all the same
            with suppress(InvalidState):
                self.register_participant(
                    SCHEME, "Entrepot scheme operator", "hub", SCHEME_COUNTRY, []
                )
        self.add_currency(SCHEME, cur.code)

    def scheme_currencies(self) -> list[str]:
        with self._read() as conn:
            rows = conn.execute(sa.select(st.scheme_accounts.c.currency).distinct()).all()
        return sorted(r[0] for r in rows)

    # ------------------------------------------------------------------ participants
    def register_participant(
        self,
        participant_id: str,
        name: str,
        kind: ParticipantKind | str,
        country: str,
        currencies: Sequence[str],
        *,
        bic: str | None = None,
    ) -> Participant:
        _check_id(participant_id, "participant id")
        try:
            kind = ParticipantKind(kind)
        except ValueError:
            raise InvalidPaymentInput(f"unknown participant kind {kind!r}", field="kind") from None
        _check_text(name, "name", "name")
        # an assigned code ("ÄÖ" passed once, "ZZ" until now); only the scheme operator's own
        # participant, of every country and none, is registered as ZZ
        if not is_country(country) and (participant_id, country) != (SCHEME, SCHEME_COUNTRY):
            raise InvalidPaymentInput(
                f"country {country!r} is not an assigned ISO 3166-1 alpha-2 code", field="country"
            )
        if bic is not None and not _BIC.fullmatch(bic):
            raise InvalidPaymentInput(f"BIC {bic!r} is not ISO 9362 (8 or 11)", field="bic")
        held = [get_currency(c) for c in dict.fromkeys(currencies)]
        # One transaction: a currency refused (not run by the scheme) once left the
        # participant registered without it, and registering it again "already exists".
        with self._uow() as uow:
            conn = uow.connection
            if st.load_participant(conn, participant_id) is not None:
                raise InvalidState(f"participant {participant_id!r} already exists")
            for cur in held:
                self._scheme_account(conn, cur.code, "cap_line")  # the scheme must run it
            conn.execute(
                sa.insert(st.participants).values(
                    id=participant_id,
                    name=name,
                    kind=kind.value,
                    country=country,
                    bic=bic,
                    active=True,
                    created_at=self._now(),
                )
            )
            st.ParticipantCache.changed(conn)
            for cur in held:
                self._add_currency(uow, participant_id, cur)
        return self.get_participant(participant_id)

    def add_currency(self, participant_id: str, currency: str) -> Participant:
        cur = get_currency(currency)
        with self._uow() as uow:
            self._add_currency(uow, participant_id, cur)
        return self.get_participant(participant_id)

    def _add_currency(self, uow: UnitOfWork, participant_id: str, cur: Currency) -> None:
        conn = uow.connection
        p = self._participant(conn, participant_id)
        if cur.code in p.currencies:
            return
        self._scheme_account(conn, cur.code, "cap_line")  # the scheme must run it
        number = ledger_for_currency(cur)
        position = ledger_id("position", participant_id, cur.code)
        settlement = ledger_id("settlement", participant_id, cur.code)
        limited = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
        results = self.ledger.create_accounts(
            [
                Account(position, number, Code.POSITION, flags=limited | AccountFlags.HISTORY),
                Account(settlement, number, Code.SETTLEMENT, flags=limited),
            ],
            uow=uow,
        )
        assert all(r in ("ok", "exists") for r in results), results
        conn.execute(
            sa.insert(st.participant_currencies).values(
                participant_id=participant_id,
                currency=cur.code,
                ledger=number,
                position_account=id_to_bytes(position),
                settlement_account=id_to_bytes(settlement),
                net_debit_cap=0,
            )
        )
        st.ParticipantCache.changed(conn)

    def get_participant(self, participant_id: str) -> Participant:
        with self._read() as conn:
            return self._participant(conn, participant_id)

    def list_participants(self) -> list[Participant]:
        with self._read() as conn:
            ids = conn.execute(sa.select(st.participants.c.id).order_by(st.participants.c.id))
            return [self._participant(conn, r[0]) for r in ids.all()]

    def set_active(
        self, participant_id: str, active: bool, reason: str | None = None, *, actor: str = SCHEME
    ) -> Participant:
        """The operator suspends a participant (it can then neither send nor receive) or
        resumes it. A change is recorded with its reason and actor (``status_history``) and
        the participant is notified (``participant.suspended`` / ``.resumed``); asking for
        the state it is already in changes and records nothing (a retry)."""
        if reason is not None:
            _check_text(reason, "reason", "reason", length_max=REASON_LEN_MAX)
        if participant_id == SCHEME and not active:
            # it takes every payment's fee and holds every escrow: suspended, it would refuse
            # them all, the scheme stopped by one mistyped command
            raise InvalidPaymentInput(
                "the scheme operator's own participant cannot be suspended",
                field="participantId",
            )
        with self._uow() as uow:
            conn = uow.connection
            p = self._participant(conn, participant_id)
            if p.active == active:
                return p
            # Changed only from the state read, and recorded only if it changed: an operator
            # whose read missed another's change at the same moment (a stale snapshot or
            # cache) records no second change, nor tells the participant twice.
            changed = conn.execute(
                sa.update(st.participants)
                .where(st.participants.c.id == participant_id, st.participants.c.active == p.active)
                .values(active=active)
            ).rowcount
            if changed != 1:
                st.ParticipantCache.changed(conn)  # read it as it is, not as cached
                return self._participant(conn, participant_id)
            c = st.participant_status.c
            seq = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(c.seq), 0)).where(
                    c.participant_id == participant_id
                )
            ).scalar_one()
            change = StatusChange(participant_id, seq + 1, active, reason, actor, self._now())
            conn.execute(
                sa.insert(st.participant_status).values(
                    participant_id=participant_id,
                    seq=change.seq,
                    active=active,
                    reason=reason,
                    actor=actor,
                    at=change.at_ns,
                )
            )
            notify_status(conn, change)
            st.ParticipantCache.changed(conn)
            if not active:
                self._withdraw_quotes(uow, participant_id, change.at_ns)
        return self.get_participant(participant_id)

    def _withdraw_quotes(self, uow: UnitOfWork, participant_id: str, now: int) -> None:
        """The accepted cross-currency quotes a participant just suspended pays or is paid
        by end (``EXPIRED``, their FX reservations voided): no prepare can use them while it
        is suspended, and each held its FX provider's liquidity from every other payer until
        its expiry. A provider's own suspension ends none: the liquidity held is its own,
        which nobody else can be quoted meanwhile, and a quote accepted through it is
        honoured if it is resumed in time. A quote not accepted yet holds nothing and is left
        to expire."""
        conn = uow.connection
        q = st.quotes.c
        ids = [
            r[0]
            for r in conn.execute(
                sa.select(q.id).where(
                    sa.text(st.ACCEPTED_QUOTE),
                    q.fx_provider.is_not(None),
                    q.expires_at > now,
                    sa.or_(
                        q.payer_participant == participant_id,
                        q.payee_participant == participant_id,
                    ),
                )
            )
        ]
        if not ids:
            return
        self._void_quietly(uow, [ledger_id("fx-reservation", i) for i in ids])
        conn.execute(
            sa.update(st.quotes)
            .where(q.id.in_(ids), sa.text(st.ACCEPTED_QUOTE))
            .values(state=QuoteState.EXPIRED.value)
        )

    def status_history(self, caller: str, participant_id: str) -> list[StatusChange]:
        """Each suspension and resumption of the participant, oldest first: the operator's
        to read, and the participant's own."""
        return self.status_with_history(caller, participant_id)[1]

    def status_with_history(
        self, caller: str, participant_id: str
    ) -> tuple[Participant, list[StatusChange]]:
        """The participant as it is and its :meth:`status_history`, read at one moment (one
        snapshot): its state is the one its last change left."""
        if caller not in (SCHEME, participant_id):
            raise NotYours("a participant reads only its own status history")
        c = st.participant_status.c
        with self._read() as conn:
            p = self._participant(conn, participant_id)
            rows = conn.execute(
                sa.select(c.participant_id, c.seq, c.active, c.reason, c.actor, c.at)
                .where(c.participant_id == participant_id)
                .order_by(c.seq)
            ).all()
        return p, [StatusChange(r[0], r[1], bool(r[2]), r[3], r[4], r[5]) for r in rows]

    def deposit(
        self, participant_id: str, currency: str, amount_minor: int, deposit_id: str
    ) -> None:
        """Central bank money into the participant's settlement account (liquidity cover)."""
        _check_amount(amount_minor)
        _check_id(deposit_id, "deposit id")
        with self._uow() as uow:
            conn = uow.connection
            pc = self._participant(conn, participant_id).check_currency(currency)
            reserve = self._scheme_account(conn, currency, "reserve")
            made = Transfer(
                ledger_id("deposit", deposit_id),
                reserve,
                pc.settlement_account,
                amount_minor,
                ledger=pc.ledger,
                code=Code.DEPOSIT,
            )
            (result,) = self._post(uow, [made])
            if result.startswith("exists_with_different"):  # the id was used for another
                raise DuplicateWithDifferentBody(
                    f"deposit {deposit_id} was made with another participant, currency or amount",
                    field="depositId",
                )
            _check_posted([result], lambda: LedgerRefused("deposit refused"))

    def liquidity(self, participant_id: str, currency: str) -> dict[str, int]:
        # The cap and the balances in one snapshot: a cap change or a settlement moves both,
        # and read apart they made a net position out of the change.
        with self._read() as conn:
            pc = self._participant(conn, participant_id).check_currency(currency)
            pos, sett = self.ledger.lookup_accounts(
                [pc.position_account, pc.settlement_account], snapshot=conn
            )
        return {
            "settlement_balance_minor": sett.credits_posted - sett.debits_posted,
            "net_debit_cap_minor": pc.net_debit_cap_minor,
            "position_available_minor": pos.credits_posted - pos.debits_posted - pos.debits_pending,
            "position_reserved_minor": pos.debits_pending,
            "net_position_minor": pos.credits_posted - pos.debits_posted - pc.net_debit_cap_minor,
        }

    def set_net_debit_cap(self, participant_id: str, currency: str, cap_minor: int) -> Participant:
        """How far the participant may send more than it receives before settlement. The cap
        must be covered by its settlement balance; lowering it below what is in use fails."""
        if type(cap_minor) is not int or cap_minor < 0:
            raise InvalidPaymentInput("net debit cap must be a non-negative integer", field="cap")
        with self._uow() as uow:
            conn = uow.connection
            p = self._participant(conn, participant_id)
            pc = p.check_currency(currency)
            # in this transaction: a settlement or deposit just before it in a shared batch
            # (group commit) is not in any snapshot yet
            settlement = self.ledger.lookup_accounts([pc.settlement_account], uow=uow)[0]
            cover = settlement.credits_posted - settlement.debits_posted
            if cap_minor > cover and p.kind is not ParticipantKind.HUB:
                raise NetDebitCapExceeded(
                    f"a cap of {cap_minor} is not covered by the settlement balance {cover}",
                    field="cap",
                )
            delta = cap_minor - pc.net_debit_cap_minor
            if delta:
                line = self._scheme_account(conn, currency, "cap_line")
                # A new id for each change: one made of the time and the new cap was made
                # again by A -> B -> A within one clock reading (a clock stepped back, a
                # simulation's), and the ledger refused it, or took a repeat of A -> B for a
                # retry and moved nothing while the cap row changed.
                tid = ledger_id("cap", participant_id, currency, secrets.token_hex(16))
                dr, cr = (line, pc.position_account) if delta > 0 else (pc.position_account, line)
                self._post_ok(
                    uow,
                    [Transfer(tid, dr, cr, abs(delta), ledger=pc.ledger, code=Code.CAP)],
                    lambda: NetDebitCapExceeded(
                        "the cap cannot go below the participant's current net debit"
                    ),
                )
            conn.execute(
                sa.update(st.participant_currencies)
                .where(
                    st.participant_currencies.c.participant_id == participant_id,
                    st.participant_currencies.c.currency == currency,
                )
                .values(net_debit_cap=cap_minor)
            )
            st.ParticipantCache.changed(conn)
        return self.get_participant(participant_id)

    # ------------------------------------------------------------------ directory
    def register_alias(
        self, caller: str, alias_type: AliasType | str, alias: str, display_name: str, currency: str
    ) -> Party:
        kind, value = normalise_alias(alias_type, alias)
        _check_text(display_name, "display name", "displayName")
        if caller == SCHEME:
            # it has no customers: an alias of its own was paid, and its pacs.008 named a
            # creditor resident in ZZ, the operator's user-assigned code
            raise NotYours(
                "the scheme operator's participant takes fees and holds escrows: it has no "
                "customers to register aliases for"
            )
        with self._uow() as uow:
            conn = uow.connection
            p = self._active(conn, caller)
            p.check_currency(currency)
            row = conn.execute(
                sa.select(st.aliases).where(
                    st.aliases.c.alias_type == kind.value, st.aliases.c.alias == value
                )
            ).first()
            if row is not None:
                if row.participant_id != caller:
                    raise AliasTaken(f"{kind.value} {value} is registered by another participant")
                raise AliasTaken(f"{kind.value} {value} is already registered")
            now = self._now()
            conn.execute(
                sa.insert(st.aliases).values(
                    alias_type=kind.value,
                    alias=value,
                    participant_id=caller,
                    display_name=display_name,
                    currency=currency,
                    country=p.country,
                    created_at=now,
                )
            )
            # its retry, its answer lost, is told the party (run again: "already registered")
            mark_keyed(conn, now, result=f"{PARTY}:{kind.value}/{value}")
        return Party(kind, value, caller, display_name, currency, p.country, now)

    def remove_alias(self, caller: str, alias_type: AliasType | str, alias: str) -> None:
        kind, value = normalise_alias(alias_type, alias)
        with self._uow() as uow:
            conn = uow.connection
            party = self._find_party(conn, kind, value)
            if party.participant_id != caller:
                raise NotYours(f"{kind.value} {value} belongs to another participant")
            # A suspended participant reads, and changes nothing in the directory: its alias
            # removed, payers were told "no such party" rather than that it is suspended, and
            # the alias was free for another participant to register (found by a review).
            self._active(conn, caller)
            conn.execute(
                sa.delete(st.aliases).where(
                    st.aliases.c.alias_type == kind.value, st.aliases.c.alias == value
                )
            )
            # its retry, its answer lost, is told it was done (204), not run again: run
            # again, it removed the alias registered since for a new customer
            mark_keyed(conn, self._now(), result=f"{PARTY_REMOVED}:{kind.value}/{value}")

    def _find_party(self, conn: Connection, kind: AliasType, value: str) -> Party:
        party = st.find_alias(conn, kind.value, value)
        if party is None:
            raise PartyNotFound(f"no party is registered for {kind.value} {value}")
        return party

    def _payee_party(self, conn: Connection, q: Quote) -> Party:
        """The party quote ``q`` pays, as the directory holds it now. Refused (quote again)
        when its alias was removed, moved to another participant, or removed and registered
        again since the quote was priced: paying would pay a participant for a customer it
        no longer has, or pay a new customer (a number given to someone else, perhaps paid
        in another currency) at a quote shown to the payer for the old one, screening and
        naming the new one."""
        party = st.find_alias(conn, q.payee_alias_type.value, q.payee_alias)
        if party is None or not _pays_as_quoted(party, q):
            raise PartyNotFound(
                f"{q.payee_alias_type.value} {q.payee_alias} is no longer registered at "
                f"{q.payee_participant} as it was when quote {q.id} was priced: quote again"
            )
        return party

    def lookup_party(self, alias_type: AliasType | str, alias: str) -> Party:
        """Any participant may look up any alias, across countries."""
        kind, value = normalise_alias(alias_type, alias)
        with self._read() as conn:
            return self._find_party(conn, kind, value)

    def lookup_party_and_participant(
        self, alias_type: AliasType | str, alias: str
    ) -> tuple[Party, Participant]:
        """The operator's lookup (the CLI's): the party and its participant, read at one
        moment, suspended or not. Who holds an alias is the operator's to see; whether the
        participant is active says whether the party is payable (:meth:`lookup_payee`)."""
        kind, value = normalise_alias(alias_type, alias)
        with self._read() as conn:
            party = self._find_party(conn, kind, value)
            return party, self._participant(conn, party.participant_id)

    def lookup_payee(self, alias_type: AliasType | str, alias: str) -> Party:
        """A payer's lookup (the API's): the party, or ``participant_suspended`` when its
        participant is suspended, which receives nothing until it is resumed: the answer
        its quote and prepare get (the party was answered as payable)."""
        kind, value = normalise_alias(alias_type, alias)
        with self._read() as conn:
            party = self._find_party(conn, kind, value)
            if not self._participant(conn, party.participant_id).active:
                raise ParticipantSuspended(
                    f"{kind.value} {value} is at participant {party.participant_id!r}, which "
                    "is suspended: it receives no payment until it is resumed"
                )
        return party

    def till_participant(self, till: str, currency: str) -> str | None:
        """The participant a merchant till is registered at now, None if none: what a QR
        made for the till names (``build_merchant_qr``'s ``acquirer``), so that a payment by
        it is refused once the till has moved to another participant. A QR in a currency the
        registered till is not paid in is refused (every payment of it would be)."""
        try:
            party = self.lookup_party(AliasType.MERCHANT, till)
        except PartyNotFound:
            return None
        if party.currency != currency:
            raise InvalidPaymentInput(
                f"till {till} is paid in {party.currency}: a QR in {currency} could never be paid",
                field="currency",
            )
        return party.participant_id

    # ------------------------------------------------------------------ FX
    def post_fx_rate(
        self, caller: str, source: str, target: str, rate: Decimal, spread_bps: int, valid_s: int
    ) -> FxRate:
        if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
            raise InvalidPaymentInput("rate must be a positive decimal", field="rate")
        with localcontext() as exact:  # normalised, never rounded (the default rounds to 28)
            exact.prec = max(28, len(rate.as_tuple().digits))
            plain = rate.normalize()
        places = -int(plain.as_tuple().exponent)  # finite: an int
        if places > RATE_DECIMALS_MAX or plain >= RATE_MAX:
            raise InvalidPaymentInput(
                f"rate {rate} must have at most {RATE_DECIMALS_MAX} decimal places and be "
                f"less than {RATE_MAX:,}",
                field="rate",
            )
        if type(spread_bps) is not int or not 0 <= spread_bps < 10_000:
            raise InvalidPaymentInput("spread must be 0..9999 basis points", field="spreadBps")
        effective = less_spread(rate, spread_bps)
        if not RATE_EFFECTIVE_MIN <= effective < RATE_EFFECTIVE_MAX:
            raise InvalidPaymentInput(
                f"rate {plain:f} less its spread of {spread_bps} bp is {effective.normalize():f}"
                f": a pacs.008's XchgRate states {RATE_EFFECTIVE_MIN:f} to 99999999999",
                field="rate",
            )
        _check_ttl(valid_s, "validity")
        if source == target:
            raise InvalidPaymentInput(
                "an FX rate needs two different currencies", field="targetCurrency"
            )
        # Kept and used as its value, not as written: "0.0033" and 50 zeros was stored as
        # sent (a 500 on PostgreSQL's 64 characters), and priced every SEND on the pair past
        # a quote's 50 digits (422 for every payer) and its pacs.008 past XchgRate's 11.
        rate = Decimal(f"{plain:f}")
        with self._uow() as uow:
            conn = uow.connection
            p = self._active(conn, caller)
            if p.kind is not ParticipantKind.FX_PROVIDER:
                raise NotYours(f"{caller} is not an FX provider")
            with _AS_SOURCE:
                p.check_currency(source)
            with _AS_TARGET:
                p.check_currency(target)
            now = self._now()
            fx = FxRate(caller, source, target, rate, spread_bps, now + valid_s * NS_PER_S)
            key = (
                (st.fx_rates.c.provider_id == caller)
                & (st.fx_rates.c.source_currency == source)
                & (st.fx_rates.c.target_currency == target)
            )
            conn.execute(sa.delete(st.fx_rates).where(key))
            conn.execute(
                sa.insert(st.fx_rates).values(
                    provider_id=caller,
                    source_currency=source,
                    target_currency=target,
                    rate=str(rate),
                    spread_bps=spread_bps,
                    valid_until=fx.valid_until_ns,
                    posted_at=now,
                )
            )
            # its retry, its answer lost, is answered with this rate: run again, it posted it
            # over the provider's newer rate, and its validity ran again from the retry
            posted = f"{source}/{target}/{rate}/{spread_bps}/{fx.valid_until_ns}"
            mark_keyed(conn, now, result=f"{FX_RATE}:{posted}")
        return fx

    def find_rate(self, source: str, target: str) -> FxRate:
        """The best valid rate from ``source`` to ``target`` now (raises NoFxRate)."""
        with self._read() as conn:
            return self.best_rate(conn, source, target, self._now())

    def best_rate(
        self, conn: Connection, source: str, target: str, now: int, parties: tuple[str, ...] = ()
    ) -> FxRate:
        """The best rate of an active provider, leaving out ``parties`` (the payment's payer
        and payee participants: a provider cannot convert for itself, its legs would debit and
        credit one account, and the prepare would be refused)."""
        return self._rates(conn, source, target, now, parties)[0]

    def _rates(
        self, conn: Connection, source: str, target: str, now: int, parties: tuple[str, ...]
    ) -> list[FxRate]:
        """The valid rates of active providers but ``parties``, the best first (raises
        NoFxRate if there is none)."""
        rows = st.RATES_NOW.all(conn, (source, target, now))
        candidates = []
        for r in rows:
            if r.provider_id in parties:
                continue
            provider = self._participants.get(conn, r.provider_id)
            if provider is not None and provider.active:
                candidates.append(
                    FxRate(
                        r.provider_id, source, target, Decimal(r.rate), r.spread_bps, r.valid_until
                    )
                )
        if not candidates:
            raise NoFxRate(f"no FX provider quotes {source} to {target} right now")
        return sorted(candidates, key=lambda fx: (fx.effective_rate, fx.provider_id), reverse=True)

    def _can_pay(self, conn: Connection, fx: FxRate, amount_minor: int) -> bool:
        """Whether ``fx``'s provider can pay ``amount_minor`` of its target currency now:
        what its position there could still send (its cap, plus what it received, less what
        it sent or holds for accepted quotes), read under the quote's write lock."""
        provider = self._participants.get(conn, fx.provider_id)
        if provider is None or fx.target_currency not in provider.currencies:
            return False
        position = provider.check_currency(fx.target_currency).position_account
        found = self.ledger.lookup_accounts([position], snapshot=conn)
        if not found:
            return False
        a = found[0]
        return a.credits_posted - a.debits_posted - a.debits_pending >= amount_minor

    # ------------------------------------------------------------------ quotes
    def create_quote(
        self,
        caller: str,
        quote_id: str,
        payee_alias_type: AliasType | str,
        payee_alias: str,
        amount_minor: int,
        amount_type: AmountType | str,
        source_currency: str,
        *,
        ttl_s: int = QUOTE_TTL_S,
        payer_alias_type: AliasType | str | None = None,
        payer_alias: str | None = None,
        amount_currency: str | None = None,
    ) -> Quote:
        """Price a payment to a payee alias. The payer party (its alias at the caller, as in
        Mojaloop's quote) is optional; when given, fraud screening sees who pays.
        ``amount_currency``: the currency the request states the amount in (the API's), which
        must be the quote's source currency for a SEND amount and the payee's for a RECEIVE
        one; checked before anything is written."""
        _check_id(quote_id, "quote id")
        _check_not_scheme(caller)
        payer_party = None
        if payer_alias is not None or payer_alias_type is not None:
            if payer_alias is None or payer_alias_type is None:
                raise InvalidPaymentInput(
                    "payer alias needs both a type and a value", field="payer"
                )
            with _AS_PAYER:
                ptype, pvalue = normalise_alias(payer_alias_type, payer_alias)
            payer_party = alias_text(ptype.value, pvalue)
        _check_amount(amount_minor)
        _check_ttl(ttl_s, "quote expiry")
        try:
            amount_type = AmountType(amount_type)
        except ValueError:
            raise InvalidPaymentInput(
                "amountType must be SEND or RECEIVE", field="amountType"
            ) from None
        with _AS_PAYEE:
            kind, alias = normalise_alias(payee_alias_type, payee_alias)
        with self._uow() as uow:
            conn = uow.connection
            row = st.QUOTE_BY_ID.first(conn, (quote_id,))
            if row is not None:  # a resend: the first result, or 3106 for another request
                q = st.quote_from_row(row)
                requested = (
                    q.source_amount_minor
                    if q.amount_type is AmountType.SEND
                    else q.target_amount_minor
                )
                _resent(
                    f"quote {quote_id}",
                    "quoteId",
                    (
                        *(caller, kind, alias, amount_type, amount_minor, source_currency),
                        *(ttl_s * NS_PER_S, payer_party),
                    ),
                    (
                        *(q.payer_participant, q.payee_alias_type, q.payee_alias, q.amount_type),
                        # the expiry asked for (rows before migration 0023: the quote's own)
                        *(
                            requested,
                            q.source_currency,
                            row.ttl or q.expires_at_ns - q.created_at_ns,
                        ),
                        q.payer_alias,
                    ),
                )
                # the same request otherwise: its amount's currency is checked as a new one's
                _check_amount_currency(
                    amount_type, amount_currency, q.source_currency, q.target_currency
                )
                return self._quote_view(q)  # as it is now: a resend after its expiry read
            payer = self._active(conn, caller)  # ACCEPTED, while a GET said EXPIRED
            with _AS_SOURCE:
                payer.check_currency(source_currency)
            party = self._find_party(conn, kind, alias)
            self._active(conn, party.participant_id)
            if party.participant_id == caller:
                raise InvalidPaymentInput(
                    f"{kind.value} {alias} is at {caller} itself: an on-us payment is booked by "
                    "the participant, not the scheme",
                    field="payee",
                )
            _check_amount_currency(amount_type, amount_currency, source_currency, party.currency)
            now = self._now()
            quote = self._price(
                conn, quote_id, caller, party, amount_minor, amount_type, source_currency, now,
                ttl_s * NS_PER_S,
            )  # fmt: skip
            quote = replace(quote, payer_alias=payer_party)
            st.INSERT_QUOTE.insert(conn, _quote_values(quote, ttl_s * NS_PER_S))
        return quote

    def quote_and_prepare(
        self,
        caller: str,
        quote_id: str,
        transfer_id: str,
        payee_alias_type: AliasType | str,
        payee_alias: str,
        amount_minor: int,
        amount_type: AmountType | str,
        source_currency: str,
        *,
        payer_alias_type: AliasType | str | None = None,
        payer_alias: str | None = None,
        target_currency: str | None = None,
        payee_participant: str | None = None,
        note: str | None = None,
        once: str | None = None,
    ) -> tuple[Quote, PaymentTransfer]:
        """Quote and prepare in one transaction (pay-by-QR): both or neither, so a payment
        the payer's cap or screening refuses leaves no quote behind, and the scheme takes its
        write lock and commits once instead of twice. ``target_currency``: the currency the
        payer means to pay in (a QR's), checked against the quote's before the prepare: a
        payee that is paid in another currency refuses the payment, and a resend in another
        currency is 3106 (a quote's currency comes from its payee, not from the request).
        ``payee_participant``: the participant the payer means to pay at (a QR's acquirer),
        likewise: a till that has moved to another participant is refused (404), not paid.
        ``note``: the transfer's (a QR's references). ``once``: a dynamic QR's digest
        (:func:`_dynamic_qr_digest`): refused ``qr_already_paid`` before anything is written
        while another transfer paying it is not aborted; this one is recorded as its payment."""
        with self._uow() as uow, self.joined(uow):
            conn = uow.connection
            # under the write lock: two payments of one QR are serialised, the second sees
            # the first's record (a resend, whose transfer exists, is answered as it was made)
            if once is not None and st.TRANSFER_EXISTS.first(conn, (transfer_id,)) is not None:
                once = None
            paid_by = None if once is None else self._dynamic_qr_paid_by(conn, once)
            q = self.create_quote(
                caller,
                quote_id,
                payee_alias_type,
                payee_alias,
                amount_minor,
                amount_type,
                source_currency,
                payer_alias_type=payer_alias_type,
                payer_alias=payer_alias,
            )
            if target_currency is not None and target_currency != q.target_currency:
                if st.TRANSFER_BY_ID.first(conn, (transfer_id,)) is not None:
                    # a resend in another currency: 3106 (they differ, so this raises)
                    _resent(
                        f"quote {quote_id}", "quoteId", (target_currency,), (q.target_currency,)
                    )
                raise InvalidPaymentInput(
                    f"the merchant is paid in {q.target_currency}", field="amount.currency"
                )
            if payee_participant is not None and payee_participant != q.payee_participant:
                if st.TRANSFER_BY_ID.first(conn, (transfer_id,)) is not None:
                    _resent(  # a resend naming another participant: 3106 (this raises)
                        f"quote {quote_id}", "quoteId", (payee_participant,), (q.payee_participant,)
                    )
                raise _moved(payee_alias, payee_participant)
            t = self.prepare_transfer(caller, transfer_id, quote_id, note=note)
            if once is not None:
                values = (transfer_id, self._now())
                if paid_by is None:
                    st.INSERT_QR_PAYMENT.execute(conn, (once, *values))
                else:  # its earlier payment was aborted
                    st.SET_QR_PAYMENT.execute(conn, (*values, once))
            q = self._quote(conn, quote_id)  # USED now
        return q, t

    def _dynamic_qr_paid_by(self, conn: Connection, digest: str) -> str | None:
        """The transfer that last paid the dynamic QR of ``digest``, if any (None: never
        paid); refused ``qr_already_paid`` when that transfer is not aborted (RESERVED, on
        HOLD or COMMITTED: one past its expiry reads aborted, as its GET does)."""
        row = st.QR_PAID_BY.first(conn, (digest,))
        if row is None:
            return None
        paid = self._expired_view(self._transfer(conn, row[0]))
        if paid.state is not TransferState.ABORTED:
            raise QrAlreadyPaid(
                f"this dynamic QR is paid by transfer {paid.id} ({paid.state.value}): a "
                "dynamic QR is one payment, payable again only if that one is aborted"
            )
        return paid.id

    def pay_by_qr(
        self,
        caller: str,
        quote_id: str,
        transfer_id: str,
        till: str,
        amount_minor: int,
        currency: str,
        source_currency: str,
        *,
        merchant_name: str,
        merchant_country: str,
        payer_alias_type: AliasType | str | None = None,
        payer_alias: str | None = None,
        acquirer: str | None = None,
        note: str | None = None,
        once: str | None = None,
    ) -> tuple[Party, Quote, PaymentTransfer]:
        """Pay a merchant's till (from its QR): look it up, check that it is paid in
        ``currency``, quote RECEIVE ``amount_minor`` and prepare, the last two in one
        transaction (:meth:`quote_and_prepare`). The party, quote and transfer. Resent (the
        transfer exists), the payment is answered by its ids as it was made (ADR 0009), with
        the till as it was paid even if it has been removed or has moved since: its party then
        comes from the quote and the QR (``merchant_name``, ``merchant_country``). A till that
        moves to a payee paid in another currency between the lookup and the transaction is
        refused there, before anything commits; so is one no longer at ``acquirer`` (the
        participant the QR names, where it names one: a till given up and registered by
        another participant's merchant was paid, the payer shown the QR's merchant).
        ``note``: the transfer's (the QR's bill number and reference label). ``once``: a
        dynamic QR's digest, paid once (:meth:`quote_and_prepare`)."""
        kind, alias = normalise_alias(AliasType.MERCHANT, till)
        with self._read() as conn:  # the lookup of a plain QR payment, outside the lock
            party = st.find_alias(conn, kind.value, alias)
            # whether it is a resend matters only if the till refuses the payment now
            refused = (
                party is None
                or currency != party.currency
                or (acquirer is not None and acquirer != party.participant_id)
            )
            if refused and st.TRANSFER_BY_ID.first(conn, (transfer_id,)) is not None:
                refused = False  # a resend: answered as it was made, below
        if refused:
            if party is None:
                raise PartyNotFound(f"no party is registered for {kind.value} {alias}")
            if acquirer is not None and acquirer != party.participant_id:
                raise _moved(alias, acquirer)
            raise InvalidPaymentInput(
                f"the merchant is paid in {party.currency}", field="amount.currency"
            )
        # The currency again inside the transaction: the till may have moved to a payee paid
        # in another currency since the lookup above, and nothing may commit then.
        q, t = self.quote_and_prepare(
            caller,
            quote_id,
            transfer_id,
            kind,
            alias,
            amount_minor,
            AmountType.RECEIVE,
            source_currency,
            payer_alias_type=payer_alias_type,
            payer_alias=payer_alias,
            target_currency=currency,
            payee_participant=acquirer,
            note=note,
            once=once,
        )
        if party is None or (party.participant_id, party.currency) != (
            q.payee_participant,
            q.target_currency,
        ):
            party = Party(
                kind, alias, q.payee_participant, merchant_name, q.target_currency, merchant_country
            )
        return party, q, t

    def pay_qr_payload(
        self,
        caller: str,
        quote_id: str,
        transfer_id: str,
        payload: str,
        source_currency: str,
        *,
        amount: str | None = None,
        amount_currency: str | None = None,
        payer_alias_type: AliasType | str | None = None,
        payer_alias: str | None = None,
        tip: str | None = None,
        tip_currency: str | None = None,
        prompted: Mapping[str, str] | None = None,
    ) -> tuple[Party, Quote, PaymentTransfer]:
        """Pay a merchant's QR from its text, as ``POST /v1/qr/pay`` and ``payments qr-pay``
        do: decode it, take its Entrepot till id, settle what is paid (:meth:`_qr_amount`,
        :meth:`_qr_extra`), then :meth:`pay_by_qr`. ``amount`` is decimal text in
        ``amount_currency`` (by default the QR's currency): the transaction amount, needed
        for a static QR, and a dynamic QR's own amount if sent; a convenience fee the QR
        states (tag 55 = 02 or 03) is added to it, and ``tip`` (in the QR's currency) where
        the QR asks the payer for one (55 = 01). ``prompted``: the values the payer entered
        where the QR asks for them (a tag 62 bill number, reference or terminal label of
        ``***``), carried in the transfer's note. Refused, nothing is written; the party,
        quote and transfer otherwise."""
        decoded = qr.decode(payload)
        entered = _qr_prompted(decoded, prompted or {})
        till = decoded.find_merchant_alias()
        if till is None:
            raise InvalidPaymentInput(
                "this QR carries no Entrepot merchant till id", field="payload"
            )
        try:  # what is wrong is in the QR, not in a field of the request (there is no "id")
            normalise_alias(AliasType.MERCHANT, till)
        except InvalidPaymentInput as exc:
            raise InvalidPaymentInput(f"the QR's till id: {exc}", field="payload") from None
        minor, currency = self._qr_amount(
            caller, transfer_id, decoded, till, amount, amount_currency or decoded.currency.code
        )
        if currency == decoded.currency.code:  # else refused as a resend, whatever is added
            # The payer's amount on its own first: a fee or tip was added to an amount of
            # nothing (or less: "-1.00" from the CLI), and the merchant paid the fee for a
            # sale of nothing; a 30-digit amount overflowed the percentage's arithmetic (500).
            _check_amount(minor, "amount")
            extra = self._qr_extra(decoded, minor, tip, tip_currency or currency)
            if minor + extra > SCHEME_AMOUNT_MAX:
                raise InvalidPaymentInput(
                    f"amount {minor} and the QR's fee or tip {extra} together exceed the "
                    "scheme's maximum",
                    field="amount",
                )
            minor += extra
        try:
            with _PAYEE_IS_THE_QR:  # the request has no payee: the QR names it
                return self.pay_by_qr(
                    caller,
                    quote_id,
                    transfer_id,
                    till,
                    minor,
                    currency,
                    source_currency,
                    merchant_name=decoded.merchant_name,
                    merchant_country=decoded.country,
                    payer_alias_type=payer_alias_type,
                    payer_alias=payer_alias,
                    acquirer=decoded.find_acquirer(),
                    note=_qr_note(decoded, entered),
                    once=_dynamic_qr_digest(decoded),
                )
        except InvalidPaymentInput as exc:
            # an amount sent in the QR's own currency is not at fault either (the error told
            # the payer to send the currency it had sent)
            own = decoded.currency.code
            if exc.field != "amount.currency" or amount_currency not in (None, own):
                raise
            # the currency is the QR's own (tag 53): the QR is at fault, not a field sent
            raise InvalidPaymentInput(
                f"the QR's currency {currency}: {exc}", field="payload"
            ) from None

    def _qr_amount(
        self,
        caller: str,
        transfer_id: str,
        decoded: qr.QrPayload,
        till: str,
        amount: str | None,
        currency: str,
    ) -> tuple[int, str]:
        """What a QR payment pays, in minor units, and its currency: an amount sent with the QR
        is in the QR's currency, and a dynamic QR's own amount; a static QR needs one. These
        are checked only for a payment the caller has not made (:meth:`has_sent`): its resend
        with another amount or currency is the scheme's to refuse (3106), so it goes on with
        what was sent."""
        own = decoded.currency.code
        if amount is not None and currency != own:
            if not self.has_sent(caller, transfer_id):
                raise InvalidPaymentInput(
                    f"this QR is paid in {own}, not {currency}", field="amount.currency"
                )
            return parse_amount(amount, currency), currency  # refused as a resend
        fixed = decoded.amount_minor  # a dynamic QR's amount
        if fixed is not None:
            sent = fixed if amount is None else parse_amount(amount, own)
            if sent != fixed and not self.has_sent(caller, transfer_id):
                raise InvalidPaymentInput(
                    f"this QR is for {format_amount(fixed, own)} {own}: an amount sent with it "
                    "must be the same",
                    field="amount",
                )
            return sent, own  # the QR's amount, or another refused as a resend
        if amount is None:
            # a till that names nobody, or one moved since the QR was made, 404 first: a
            # wallet asked its payer for an amount, then said the QR could not be paid
            party = self.lookup_party(AliasType.MERCHANT, till)
            acquirer = decoded.find_acquirer()
            if acquirer is not None and acquirer != party.participant_id:
                raise _moved(till, acquirer)
            raise InvalidPaymentInput("a static QR needs an amount", field="amount")
        return parse_amount(amount, own), own

    @staticmethod
    def _qr_extra(
        decoded: qr.QrPayload, base_minor: int, tip: str | None, tip_currency: str
    ) -> int:
        """What the QR's tag 55 adds to the transaction amount ``base_minor`` (EMVCo MPM
        v1.1, tags 55-57): the payer's ``tip`` where it is 01 (the app prompts for one;
        none sent, none paid), the fixed convenience fee of tag 56 where 02, the percentage
        of tag 57 where 03 (rounded half up to the minor unit). A tip for a QR that asks for
        none is refused: the merchant would be paid what it did not ask."""
        indicator = decoded.tip_indicator
        own = decoded.currency.code
        if tip is not None:
            if indicator != "01":
                raise InvalidPaymentInput(
                    "this QR does not ask for a tip (its tag 55 is not 01)", field="tip"
                )
            if tip_currency != own:
                raise InvalidPaymentInput(
                    f"a tip on this QR is in {own}, not {tip_currency}", field="tip.currency"
                )
            with _TIP_AMOUNT:
                minor = parse_amount(tip, own)
            if minor <= 0:
                raise InvalidPaymentInput("a tip is a positive amount", field="tip")
            return minor
        if indicator == "02":
            return decoded.convenience_fee_fixed_minor or 0
        if indicator == "03":
            percent = decoded.convenience_fee_percentage or Decimal(0)
            return int((base_minor * percent / 100).quantize(Decimal(1), ROUND_HALF_UP))
        return 0

    def _price(
        self,
        conn: Connection,
        quote_id: str,
        caller: str,
        party: Party,
        amount: int,
        amount_type: AmountType,
        source: str,
        now: int,
        ttl_ns: int,
    ) -> Quote:
        """The quote of ``amount`` to ``party``, expiring ``ttl_ns`` from ``now``, or when the
        FX rate it is priced at stops being valid, if that is sooner: a rate posted for 5 s
        bound its provider for the day a payer's quote asked (accepted, its liquidity held;
        a payer could wait for the market to move and prepare only if it had gone its way)."""
        target = party.currency
        if source == target:
            return self._priced(
                quote_id, caller, party, amount, amount_type, source, now, ttl_ns, None
            )
        # The best rate whose provider can pay what it converts to: priced at the best rate
        # alone, a provider without the liquidity (or whose liquidity accepted quotes hold)
        # had every payer's quote for the pair, each then refused fx_liquidity_exhausted at
        # its acceptance, while other providers could pay (found by a review). Where none
        # can, the best rate's, refused as before when accepted.
        best, *others = self._rates(conn, source, target, now, (caller, party.participant_id))
        first = self._priced(
            quote_id, caller, party, amount, amount_type, source, now, ttl_ns, best
        )
        if not others or self._can_pay(conn, best, first.target_amount_minor):
            return first
        for fx in others:
            try:
                quote = self._priced(
                    quote_id, caller, party, amount, amount_type, source, now, ttl_ns, fx
                )
            except InvalidPaymentInput:  # the amount out of bounds at this rate: not this one
                continue
            if self._can_pay(conn, fx, quote.target_amount_minor):
                return quote
        return first

    def _priced(
        self,
        quote_id: str,
        caller: str,
        party: Party,
        amount: int,
        amount_type: AmountType,
        source: str,
        now: int,
        ttl_ns: int,
        fx: FxRate | None,
    ) -> Quote:
        """The quote of ``amount`` to ``party`` at ``fx`` (None: in one currency)."""
        target = party.currency
        rate = fx.effective_rate if fx is not None else Decimal(1)
        if amount_type is AmountType.SEND:
            fee = self.fees.fee(amount, source)
            principal = amount - fee
            if principal <= 0:
                raise InvalidPaymentInput(
                    f"the amount does not cover the scheme fee: a SEND of "
                    f"{format_amount(amount, source)} {source} pays a fee of "
                    f"{format_amount(fee, source)} {source}",
                    field="amount",
                )
            received = (
                convert(
                    Money(principal, get_currency(source)), rate, target, ROUND_DOWN
                ).amount_minor
                if fx
                else principal
            )
            total = amount
        else:
            received = amount
            principal = source_for_target(amount, target, rate, source) if fx else amount
            _check_amount(principal, "amount")  # a tiny rate: refused before it is priced
            fee = self.fees.fee(principal, source)
            total = principal + fee
        if received <= 0:
            raise InvalidPaymentInput("the amount converts to nothing", field="amount")
        # What the rate makes of the amount, within the scheme's bounds too (a tiny rate
        # made a RECEIVE amount a send amount no account could hold)
        _check_amount(total, "amount")
        _check_amount(received, "amount")
        return Quote(
            quote_id,
            caller,
            party.participant_id,
            party.alias_type,
            party.alias,
            amount_type,
            source,
            target,
            total,
            fee,
            received,
            fx.provider_id if fx else None,
            fx.effective_rate if fx else None,
            now + ttl_ns if fx is None else min(now + ttl_ns, fx.valid_until_ns),
            QuoteState.QUOTED,
            now,
            payee_registered_at_ns=party.registered_at_ns,
        )

    def _quote(self, conn: Connection, quote_id: str) -> Quote:
        row = st.QUOTE_BY_ID.first(conn, (quote_id,))
        if row is None:
            raise QuoteNotFound(f"quote {shown_id(quote_id)} does not exist")
        return st.quote_from_row(row)

    def get_quote(self, caller: str, quote_id: str) -> Quote:
        with self._read() as conn:
            q = self._quote(conn, quote_id)
        if caller not in (q.payer_participant, q.payee_participant):
            raise NotYours(f"quote {quote_id} is not yours")
        return self._quote_view(q)

    def _quote_view(self, q: Quote) -> Quote:
        """``q`` as it is now: EXPIRED past its expiry, as the deadline pass will record it."""
        if q.state in (QuoteState.QUOTED, QuoteState.ACCEPTED) and self._now() >= q.expires_at_ns:
            return replace(q, state=QuoteState.EXPIRED)
        return q

    def accept_quote(self, caller: str, quote_id: str) -> Quote:
        """Reserve the FX provider's liquidity until the quote expires, so its rate holds."""
        with self._uow() as uow:
            q = self._accept(uow, caller, quote_id)
        return q

    def _accept(self, uow: UnitOfWork, caller: str, quote_id: str) -> Quote:
        conn = uow.connection
        q = self._quote(conn, quote_id)
        if q.payer_participant != caller:
            raise NotYours(f"quote {quote_id} is not yours")
        if q.state is QuoteState.ACCEPTED:  # accepted again: so it is, unless it expired
            if self._now() >= q.expires_at_ns:
                raise QuoteExpired(f"quote {quote_id} expired")
            # or a party was suspended since (a suspended payer accepts nothing; a review
            # found a same-currency quote, which suspension does not withdraw, answered so)
            self._active(conn, caller)
            self._active(conn, q.payee_participant)
            self._payee_party(conn, q)  # or its alias moved: no prepare could use it
            if q.fx_provider is not None:  # its quotes stay accepted, honoured once resumed
                self._active(conn, q.fx_provider)
            return q
        # The refusals come in prepare's order (a prepare accepts its quote too, and one
        # request must be refused alike by both): the quote's state and expiry, a suspended
        # payer or payee (one that can receive nothing is paid through no FX liquidity),
        # the payee's alias moved or registered again since (no prepare could use the
        # quote: it held the provider's liquidity for nothing), then the FX provider
        # (suspended, short of liquidity), then the payer's cap. A refusal after the
        # reservation was posted undoes it with the unit of work.
        self._check_open(q)
        self._active(conn, caller)
        self._active(conn, q.payee_participant)
        self._payee_party(conn, q)
        reservation = self._acceptance(conn, q)
        if reservation is not None:
            self._post_ok(uow, [reservation], lambda: _fx_exhausted(q))
            self._check_payer_covers(uow, q)
        self._set_quote_state(conn, q.id, QuoteState.ACCEPTED)
        return replace(q, state=QuoteState.ACCEPTED)

    def _acceptance(self, conn: Connection, q: Quote) -> Transfer | None:
        """Check that quote ``q`` (its payer's, not accepted yet) can be accepted now; the
        pending transfer that reserves its FX provider's target-currency liquidity until it
        expires, None for a same-currency quote."""
        now = self._check_open(q)
        if not q.cross_currency:
            return None
        assert q.fx_provider is not None
        fxp = self._active(conn, q.fx_provider).check_currency(q.target_currency)
        hold = self._scheme_account(conn, q.target_currency, "fx_reservation")
        # A second past the quote's expiry: a prepare just before it voids the reservation at
        # the ledger's time, which runs ahead of this clock (its stamps, another worker's
        # clock); ending with the quote, the ledger had voided it first, and the prepare of a
        # quote still open was refused transfer_expired. The deadline pass voids it with the
        # quote's expiry; its liquidity is held at most a second longer.
        timeout = max(1, -(-(q.expires_at_ns - now) // NS_PER_S)) + FX_RESERVATION_SLACK_S
        return Transfer(
            ledger_id("fx-reservation", q.id),
            fxp.position_account,
            hold,
            q.target_amount_minor,
            ledger=fxp.ledger,
            code=Code.FX_RESERVATION,
            flags=TransferFlags.PENDING,
            timeout=timeout,
        )

    def _check_open(self, q: Quote) -> int:
        """Refuse quote ``q`` unless it may still be accepted; the time now. In prepare's
        order: used, then expired (whether or not the deadline pass has recorded it yet: an
        EXPIRED quote was refused ``invalid_state`` by accept and ``quote_expired`` by
        prepare), then any other state."""
        if q.state is QuoteState.USED:
            raise InvalidState(f"quote {q.id} was already used by another transfer")
        now = self._now()
        if q.state is QuoteState.EXPIRED or now >= q.expires_at_ns:
            raise QuoteExpired(f"quote {q.id} expired")
        if q.state is not QuoteState.QUOTED:
            raise InvalidState(f"quote {q.id} is {q.state.value}")
        return now

    def _check_payer_covers(self, uow: UnitOfWork, q: Quote) -> None:
        """An accepted quote holds its FX provider's liquidity until it expires, and costs
        its payer nothing until it is prepared: a payer could hold all of a provider's
        liquidity, and every other payer's quotes would be refused. A payer's accepted quotes
        not yet used may together come to at most what its position could send now (its
        cap, plus what it received, less what it sent or reserved)."""
        conn = uow.connection
        payer = self._active(conn, q.payer_participant)
        pc = payer.check_currency(q.source_currency)
        (position,) = self.ledger.lookup_accounts([pc.position_account], uow=uow)
        available = position.credits_posted - position.debits_posted - position.debits_pending
        quotes = st.quotes.c
        held = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(quotes.source_amount), 0)).where(
                sa.text(st.ACCEPTED_QUOTE),  # through its partial index (store.py)
                quotes.payer_participant == payer.id,
                quotes.source_currency == q.source_currency,
                quotes.fx_provider.is_not(None),  # one currency: nothing is reserved for it
                quotes.expires_at > self._now(),
            )
        ).scalar_one()
        if int(held) + q.source_amount_minor > available:
            raise NetDebitCapExceeded(
                f"{payer.id} cannot accept quote {q.id}: with its other accepted quotes "
                f"({int(held)} {q.source_currency} minor units) it would hold more than its "
                f"position could send ({available})"
            )

    def _set_quote_state(self, conn: Connection, quote_id: str, state: QuoteState) -> None:
        st.SET_QUOTE_STATE.execute(conn, (state.value, quote_id))

    # ------------------------------------------------------------------ transfers
    def prepare_transfer(
        self,
        caller: str,
        transfer_id: str,
        quote_id: str,
        *,
        ttl_s: int = TRANSFER_TTL_S,
        note: str | None = None,
    ) -> PaymentTransfer:
        """Reserve the payer participant's position (net debit cap checked); both currency
        legs of a cross-currency transfer are reserved in one linked chain, or neither."""
        _check_id(transfer_id, "transfer id")
        _check_ttl(ttl_s, "transfer expiry")
        if note is not None:
            _check_text(note, "note", "note")
        ahead = self._screen_ahead(caller, transfer_id, quote_id, ttl_s, note)
        with self._uow() as uow:
            conn = uow.connection
            row = st.TRANSFER_BY_ID.first(conn, (transfer_id,))
            if row is not None:  # a resend: the transfer as it is now, or 3106
                t = st.transfer_from_row(row)
                _resent(
                    f"transfer {transfer_id}",
                    "transferId",
                    (caller, quote_id, note, ttl_s * NS_PER_S),
                    (t.payer_participant, t.quote_id, t.note, t.expires_at_ns - t.created_at_ns),
                )
                return self._expired_view(t)
            q = self._quote(conn, quote_id)
            if q.payer_participant != caller:
                raise NotYours(f"quote {quote_id} is not yours")
            if q.state is QuoteState.USED:
                raise InvalidState(f"quote {quote_id} was already used by another transfer")
            if q.state is QuoteState.EXPIRED or self._now() >= q.expires_at_ns:
                # (EXPIRED before its time: its payer or payee was suspended while it held
                # FX liquidity, ``_withdraw_quotes``)
                raise QuoteExpired(f"quote {quote_id} expired")
            payer = self._active(conn, q.payer_participant)
            payee = self._active(conn, q.payee_participant)
            party = self._payee_party(conn, q)
            # A quote not accepted yet is accepted here: its FX reservation is posted in the
            # same ledger batch as the legs, which release it (one ledger call, not two).
            # The refusals keep their order: the FX provider's liquidity, then the payer's
            # cap, then screening (a prepare refused before it is never screened: fraud
            # screening learns from what it screens, and a cap-refused prepare and each of
            # its retries counted in the payer's velocity). A refusal after the batch was
            # posted undoes it with the member's work.
            reservation = None if q.state is QuoteState.ACCEPTED else self._acceptance(conn, q)
            if reservation is None and q.fx_provider is not None:
                # accepted earlier: its provider may have been suspended since (the commit
                # would abort it, but nothing is reserved against a suspended provider)
                self._active(conn, q.fx_provider)
            now = self._now()
            t = _new_transfer(transfer_id, q, ttl_s, note, now)
            legs = self._legs(conn, t, payer, payee, ttl_s)  # the same whatever screening says
            head = [] if reservation is None else [reservation]
            results = self._post(uow, [*head, *legs])
            _check_posted(results[: len(head)], lambda: _fx_exhausted(q))
            _check_posted(
                results[len(head) :],
                lambda: NetDebitCapExceeded(
                    f"{payer.id} would exceed its net debit cap in {q.source_currency}"
                ),
            )
            if ahead is not None and ahead.fits(t, party):
                decision = ahead.decision
            else:  # not screened ahead, or the quote or the party changed meanwhile
                decision = self.screening.screen(t, party)
            if decision.block:
                raise TransferBlocked(
                    f"transfer {transfer_id} blocked by screening: " + "; ".join(decision.reasons)
                )
            # Screened, a transfer counts in what a screening learns (a block too: an attempt);
            # from here it counts only if it is written (a failure to write it, the COMMIT's
            # included, takes it back: a transfer that never was counted in the payer's
            # velocity, and again at each retry).
            _on_rollback(decision.undo)
            if decision.hold:
                t = replace(t, state=TransferState.HOLD, reason=decision.reason())
            self._set_quote_state(conn, q.id, QuoteState.USED)
            seq = st.LAST_TRANSFER_SEQ.first(conn)[0] + 1  # under the write lock
            st.INSERT_TRANSFER.insert(conn, {**_transfer_values(t), "seq": seq})
            notify_transfer(conn, t, now, self._participants.with_endpoint(conn))
        return t

    def _screen_ahead(
        self, caller: str, transfer_id: str, quote_id: str, ttl_s: int, note: str | None
    ) -> _Screened | None:
        """Screen before the write lock: watch lists or a model, and the decision log's fsync,
        are the slowest part of a prepare, and every other writer would wait for them. Read
        from a snapshot; the transaction uses the decision only if the transfer and the payee
        party it builds are the ones screened (:meth:`_Screened.fits`), else screens again.
        None inside a caller's unit of work (it already holds the lock, and reading the same
        rows twice gains nothing), when the screening keeps state of what it screens (fraud
        screening learns each payer's history: a prepare that then fails must not have been
        seen), or when the snapshot already shows that the prepare fails (the transaction then
        fails with its own error, nothing screened). Only a prepare that fails later, inside
        (the FX provider's liquidity, a racing retry), leaves a screening logged for a
        transfer that never was."""
        if not getattr(self.screening, "screens_ahead", False):
            return None
        if self._joined_uow() is not None:
            return None  # already under the caller's lock: the transaction screens, once
        with self._read() as conn:
            if st.TRANSFER_EXISTS.first(conn, (transfer_id,)):
                return None
            row = st.QUOTE_BY_ID.first(conn, (quote_id,))
            if row is None:
                return None
            q = st.quote_from_row(row)
            now = self._now()
            if (
                q.payer_participant != caller
                or q.state in (QuoteState.USED, QuoteState.EXPIRED)
                or now >= q.expires_at_ns
            ):
                return None
            for pid in (q.payer_participant, q.payee_participant, q.fx_provider):
                if pid is None:  # no FX provider: one currency
                    continue
                p = self._participants.get(conn, pid)
                if p is None or not p.active:
                    return None
            party = st.find_alias(conn, q.payee_alias_type.value, q.payee_alias)
        if not _pays_as_quoted(party, q):
            # (moved, or registered again, since the quote: the prepare is refused, and the
            # alias's new holder, a stranger to the payment, was screened and logged)
            return None
        assert party is not None
        t = _new_transfer(transfer_id, q, ttl_s, note, now)
        return _Screened(t, party, self.screening.screen(t, party))

    def _legs(
        self,
        conn: Connection,
        t: PaymentTransfer,
        payer: Participant,
        payee: Participant,
        ttl_s: int,
    ) -> list[Transfer]:
        pend, linked = TransferFlags.PENDING, TransferFlags.LINKED
        src = payer.check_currency(t.source_currency)
        fee_to = self._participant(conn, SCHEME).check_currency(t.source_currency)
        principal = t.source_amount_minor - t.fee_minor
        # Each leg carries the payment's UETR, and so does the posting that commits it (a
        # post inherits its pending transfer's user data): statements name it per entry.
        ref = uetr_int(t.id)
        legs = []
        if t.fee_minor:
            legs.append(
                Transfer(
                    ledger_id("fee", t.id),
                    src.position_account,
                    fee_to.position_account,
                    t.fee_minor,
                    user_data_128=ref,
                    ledger=src.ledger,
                    code=Code.FEE,
                    flags=pend | linked,
                    timeout=ttl_s,
                )
            )
        if t.fx_provider is None:
            dst = payee.check_currency(t.target_currency)
            legs.append(
                Transfer(
                    ledger_id("leg1", t.id),
                    src.position_account,
                    dst.position_account,
                    principal,
                    user_data_128=ref,
                    ledger=src.ledger,
                    code=Code.PAYMENT,
                    flags=pend,
                    timeout=ttl_s,
                )
            )
            return legs
        fxp = self._participant(conn, t.fx_provider)
        fx_src, fx_dst = (
            fxp.check_currency(t.source_currency),
            fxp.check_currency(t.target_currency),
        )
        dst = payee.check_currency(t.target_currency)
        legs += [
            Transfer(
                ledger_id("leg1", t.id),
                src.position_account,
                fx_src.position_account,
                principal,
                user_data_128=ref,
                ledger=src.ledger,
                code=Code.FX_LEG,
                flags=pend | linked,
                timeout=ttl_s,
            ),
            Transfer(
                ledger_id("fx-release", t.quote_id),
                pending_id=ledger_id("fx-reservation", t.quote_id),
                amount=AMOUNT_FULL,
                flags=TransferFlags.VOID_PENDING_TRANSFER | linked,
            ),
            Transfer(
                ledger_id("leg2", t.id),
                fx_dst.position_account,
                dst.position_account,
                t.target_amount_minor,
                user_data_128=ref,
                ledger=dst.ledger,
                code=Code.FX_LEG,
                flags=pend,
                timeout=ttl_s,
            ),
        ]
        return legs

    def _pending_legs(self, t: PaymentTransfer) -> list[int]:
        legs = [ledger_id("fee", t.id)] if t.fee_minor else []
        legs.append(ledger_id("leg1", t.id))
        if t.fx_provider is not None:
            legs.append(ledger_id("leg2", t.id))
        return legs

    def _resolve_legs(self, uow: UnitOfWork, t: PaymentTransfer, post: bool) -> None:
        flag = TransferFlags.POST_PENDING_TRANSFER if post else TransferFlags.VOID_PENDING_TRANSFER
        action = "commit" if post else "abort"
        pending = self._pending_legs(t)
        batch = [
            Transfer(
                ledger_id(action, str(leg)),
                pending_id=leg,
                amount=AMOUNT_FULL,
                flags=flag | (TransferFlags.LINKED if k < len(pending) - 1 else 0),
            )
            for k, leg in enumerate(pending)
        ]
        self._post_ok(uow, batch, lambda: LedgerRefused(f"could not {action} {t.id}"))

    def _void_quietly(self, uow: UnitOfWork, pending: Sequence[int]) -> None:
        """Release reservations whose deadline passed: void each one still pending (the
        ledger's own expiry may already have, or be about to; either outcome is fine). In
        batches the ledger takes: a deadline pass with more legs than one batch holds was
        refused whole, every pass after it too, and no deadline acted again."""
        batch = [
            Transfer(
                ledger_id("abort", str(leg)),
                pending_id=leg,
                amount=AMOUNT_FULL,
                flags=TransferFlags.VOID_PENDING_TRANSFER,
            )
            for leg in pending
        ]
        for start, stop in chain_batches([t.flags for t in batch]):
            self.ledger.create_transfers(batch[start:stop], uow=uow)

    def _transfer(self, conn: Connection, transfer_id: str) -> PaymentTransfer:
        row = st.TRANSFER_BY_ID.first(conn, (transfer_id,))
        if row is None:
            raise TransferNotFound(f"transfer {shown_id(transfer_id)} does not exist")
        return st.transfer_from_row(row)

    def has_sent(self, caller: str, transfer_id: str) -> bool:
        """Whether the caller paid a transfer with this id: a request of its naming the id is
        then a resend. Not the payee's, the FX provider's or the operator's, who read the
        transfer but never sent it: a QR payment of theirs naming its id was taken for a
        resend, refused 3106 (a different request) rather than told what was wrong with it."""
        with self._read() as conn:
            row = st.TRANSFER_BY_ID.first(conn, (transfer_id,))
        return row is not None and st.transfer_from_row(row).payer_participant == caller

    def get_transfer(self, caller: str, transfer_id: str) -> PaymentTransfer:
        with self._read() as conn:
            t = self._transfer(conn, transfer_id)
        if caller not in (t.payer_participant, t.payee_participant, t.fx_provider, SCHEME):
            raise NotYours(f"transfer {transfer_id} is not yours")
        return _seen_by(caller, self._expired_view(t))

    def _expired_view(self, t: PaymentTransfer) -> PaymentTransfer:
        if (
            t.state in (TransferState.RESERVED, TransferState.HOLD)
            and self._now() >= t.expires_at_ns
        ):
            return replace(t, state=TransferState.ABORTED, reason="expired")
        return t

    def commit_transfer(self, caller: str, transfer_id: str) -> PaymentTransfer:
        """The payee participant accepts: every leg posts, or none."""
        return self._decide(caller, transfer_id, commit=True, reason=None)

    def reject_transfer(
        self, caller: str, transfer_id: str, reason: str = "rejected by payee"
    ) -> PaymentTransfer:
        _check_text(reason, "reason", "reason", length_max=REASON_LEN_MAX)
        if reason == "expired" or reason.startswith((REVIEW_RELEASED, REVIEW_REJECTED)):
            # the scheme's own records: a rejection saying "expired" was reported (pacs.002
            # AB05, dated at the expiry) and refused again as an expiry; one saying "held and
            # rejected: " read to the payer as the scheme's review
            raise _scheme_words(reason)
        return self._decide(caller, transfer_id, commit=False, reason=reason)

    def _decide(
        self, caller: str, transfer_id: str, *, commit: bool, reason: str | None
    ) -> PaymentTransfer:
        with self._uow() as uow:
            conn = uow.connection
            t = self._transfer(conn, transfer_id)
            if caller != t.payee_participant:
                raise NotYours(f"only the payee participant may resolve transfer {transfer_id}")
            if not commit and reason is not None and _suspended_at_commit(reason, t):
                raise _scheme_words(reason)  # as the commit that found them suspended says
            if t.state is TransferState.ABORTED and t.reason == "expired":
                # however its expiry was recorded (a decision, the deadline pass): the same
                # refusal, so a retried decision is told what the first was
                raise TransferExpired(f"transfer {transfer_id} expired")
            now = self._now()
            if t.state in (TransferState.RESERVED, TransferState.HOLD) and now >= t.expires_at_ns:
                # a held one too: it expired on hold (it was refused "on hold for review",
                # its expiry left for the deadline pass, while its GET read it ABORTED)
                self._record_expiry(uow, t)
                raise TransferExpired(f"transfer {transfer_id} expired")
            if commit and t.state is TransferState.ABORTED and _suspended_at_commit(t.reason, t):
                # its commit found the payer or the FX provider suspended and aborted it: a
                # retried commit is told what the first was (not "already ABORTED")
                raise ParticipantSuspended(f"transfer {transfer_id} aborted: {t.reason}")
            # After the expiry (a review: a suspended payee's late commit was told to wait for
            # its resumption, and the expiry was left unrecorded; its reject was told expired)
            if commit:  # a suspended payee receives nothing, but may give the funds back now
                self._active(conn, caller)  # rather than hold them to the expiry
            if t.state is TransferState.HOLD:  # why is for the payer and the reviewer
                raise InvalidState(f"transfer {transfer_id} is on hold for review")
            if t.state is not TransferState.RESERVED:
                raise InvalidState(f"transfer {transfer_id} is already {t.state.value}")
            if commit:
                others = [t.payer_participant, *([t.fx_provider] if t.fx_provider else [])]
                stopped = [p for p in others if not self._participant(conn, p).active]
                if stopped:  # suspended since prepare: it may no longer send; release the funds
                    self._void_quietly(uow, self._pending_legs(t))
                    why = f"{', '.join(stopped)}{SUSPENDED_BEFORE_COMMIT}"
                    self._set_state(conn, t, TransferState.ABORTED, why, None)
                    uow.commit()
                    raise ParticipantSuspended(f"transfer {transfer_id} aborted: {why}")
            try:
                self._resolve_legs(uow, t, post=commit)
            except TransferExpired:
                # The ledger voided the legs first: their timeout runs on the ledger's time
                # (its stamps), which is at least this clock and ahead of it when another
                # worker's clock is. Expired all the same, and recorded so (not left RESERVED).
                self._record_expiry(uow, t)
                raise TransferExpired(f"transfer {transfer_id} expired") from None
            window = self._open_window(conn).id if commit else None
            state = TransferState.COMMITTED if commit else TransferState.ABORTED
            if commit and (t.reason or "").startswith(REVIEW_RELEASED):
                reason = t.reason  # the reviewer's words stay the payer's and the operator's
            t = self._set_state(conn, t, state, reason, window)
        # the payee's answer: a reviewer's release words are the payer's and the operator's
        # (they reached the payee in its commit's answer: found by a review)
        return _seen_by(caller, t)

    def review_hold(
        self,
        caller: str,
        transfer_id: str,
        approve: bool,
        reason: str,
        *,
        reviewer_id: str | None = None,
        credential: str | None = None,
    ) -> PaymentTransfer:
        """The scheme's reviewer releases a held transfer to the payee, or aborts it.
        ``reviewer_id``: the person at the operator who decided (a staff id), ``credential``:
        the key id the request came with; the verdict logged names both, where given, so a
        verdict contested later is traced to whoever made it."""
        _check_text(reason, "reason", "reason", length_max=REASON_LEN_MAX)
        if reviewer_id is not None and not ID_PATTERN.fullmatch(reviewer_id):
            raise InvalidPaymentInput(
                "reviewer_id names the person who decided: 1 to 64 letters, digits, _ or -",
                field="reviewer_id",
            )
        by = {k: v for k, v in (("reviewer_id", reviewer_id), ("credential", credential)) if v}
        with self._uow() as uow:
            conn = uow.connection
            if caller != SCHEME:
                raise NotYours("only the scheme operator reviews held transfers")
            t = self._transfer(conn, transfer_id)
            if self._expired_view(t).reason == "expired" and t.state is not TransferState.HOLD:
                # recorded by a review (below) or the deadline pass: told as the first was;
                # or not on hold and past its expiry, which GET reads (it was told "is
                # RESERVED, not on hold")
                raise TransferExpired(f"transfer {transfer_id} expired")
            if t.state is not TransferState.HOLD:
                raise InvalidState(f"transfer {transfer_id} is {t.state.value}, not on hold")
            if self._now() >= t.expires_at_ns:
                self._record_expiry(uow, t)
                raise TransferExpired(f"transfer {transfer_id} expired while on hold")
            if approve:
                # Released to a payee that can accept nothing (suspended), the payer's and the
                # FX provider's funds stayed reserved until the expiry: refused, still held,
                # for the reviewer to reject (which releases them) or to wait for a resumption.
                for pid in (t.payer_participant, t.payee_participant, t.fx_provider):
                    if pid is not None:
                        self._active(conn, pid)
                done = self._set_state(
                    conn, t, TransferState.RESERVED, f"{REVIEW_RELEASED}{reason}", None
                )
            else:
                try:
                    self._resolve_legs(uow, t, post=False)
                except TransferExpired:  # the ledger's time passed the legs' timeout (_decide)
                    self._record_expiry(uow, t)
                    raise TransferExpired(f"transfer {transfer_id} expired while on hold") from None
                done = self._set_state(
                    conn, t, TransferState.ABORTED, f"{REVIEW_REJECTED}{reason}", None
                )
            # The verdict, as the decisions the screenings log for it (linked to the ones that
            # held it), is written in this transaction and appended to the log once it has
            # committed: the log holds a verdict if and only if it took effect.
            verdicts = self._verdicts(t, not approve, reason, by)
            if verdicts:
                now = self._now()
                conn.execute(
                    sa.insert(st.decision_outbox),
                    [
                        {
                            "decision_id": d.decision_id,
                            "transfer_id": t.id,
                            "record": json.dumps(d.to_dict(), sort_keys=True),
                            "created_at": now,
                            # this worker's to append, next (the pass leaves it until then)
                            "claimed_until": now + VERDICT_GRACE_S * NS_PER_S,
                        }
                        for d in verdicts
                    ],
                )
        if verdicts:
            try:
                self._append_verdicts([d.to_dict() for d in verdicts])
            except Exception:  # the verdict stands; the deadline pass appends it later
                log.warning(
                    "transfer %s: the review's verdict took effect but the decision log did "
                    "not take it now; the deadline pass appends it",
                    t.id,
                    exc_info=True,
                )
        learn = getattr(self.screening, "learn", None)
        if learn is not None:  # fraud screening's review item and label (kept in memory)
            learn(t, not approve, verdicts)
        return done

    def _verdicts(
        self, t: PaymentTransfer, rejected: bool, reason: str, by: Mapping[str, str]
    ) -> list[Any]:
        """The decisions the screenings log for a reviewer's verdict on ``t`` (held), naming
        who decided (``by``) where the review says."""
        verdicts = getattr(self.screening, "verdicts", None)
        return [] if verdicts is None else list(verdicts(t, rejected, reason, by))

    def _append_verdicts(self, records: Sequence[dict[str, Any]]) -> int:
        """Append reviewers' verdicts (decisions in ``to_dict``'s form, from the decision
        outbox) to the log through the screenings, then delete those appended from the
        outbox; how many were appended. Raises where a log refused some (those appended
        are deleted first: a screening whose log took them is not asked again). A process
        that dies between an append and its delete appends that verdict again once its
        claim lapses: a verdict may then be in the log twice, under one decision id."""
        log_verdicts = getattr(self.screening, "log_verdicts", None)
        if log_verdicts is None or not records:
            return 0
        try:
            logged = sorted(log_verdicts(records))
        except VerdictsPartlyLogged as partly:
            self._delete_verdicts(sorted(partly.logged))
            raise
        self._delete_verdicts(logged)
        return len(logged)

    def _delete_verdicts(self, ids: Sequence[str]) -> None:
        if ids:
            with self._uow() as uow:
                c = st.decision_outbox.c
                uow.connection.execute(sa.delete(st.decision_outbox).where(c.decision_id.in_(ids)))

    def log_pending_verdicts(self) -> dict[str, int]:
        """Reviewers' verdicts that took effect but are not in the decision log yet (the
        process died after the review committed, or the log refused them then) appended now;
        the deadline pass runs it. Each waits first for its claim to lapse (the review's
        worker appends it itself, within ``VERDICT_GRACE_S``), then is claimed in a write
        (another pass at the same time, of another process or host, skips what this one
        claimed) and appended. A log that refuses them is reported, not raised: the other
        passes run. ``verdicts_waiting``: those not appended (claimed, refused, or of a kind
        no screening here logs)."""
        with self._read() as conn:
            waiting, due = waiting_and_due(conn, st.decision_outbox, self._now())
        if not due:
            return {"verdicts_logged": 0, "verdicts_waiting": waiting}
        with self._uow() as uow:
            waiting, rows = claim_due(
                uow.connection,
                st.decision_outbox,
                self._now(),
                VERDICT_GRACE_S * NS_PER_S,
                VERDICTS_A_PASS,
            )
        logged = 0
        try:
            logged = self._append_verdicts([json.loads(r.record) for r in rows])
        except VerdictsPartlyLogged as partly:
            logged = len(partly.logged)
            log.warning("the decision log refused reviewers' verdicts", exc_info=True)
        except Exception:  # the log refuses (disk full, say): the next pass tries again
            log.warning("the decision log refused reviewers' verdicts", exc_info=True)
        return {"verdicts_logged": logged, "verdicts_waiting": waiting - logged}

    def _record_expiry(self, uow: UnitOfWork, t: PaymentTransfer) -> None:
        """Abort ``t`` as expired and keep that (``commit()``): its legs voided, where the
        ledger's own timeout has not already, its state ABORTED, "expired", its parties told.
        The caller then raises ``TransferExpired``, which undoes nothing of this."""
        self._void_quietly(uow, self._pending_legs(t))
        self._set_state(uow.connection, t, TransferState.ABORTED, "expired", None)
        uow.commit()

    def _set_state(
        self,
        conn: Connection,
        t: PaymentTransfer,
        state: TransferState,
        reason: str | None,
        window: int | None,
    ) -> PaymentTransfer:
        now = self._now()
        reason = _reason(reason)
        st.SET_TRANSFER_STATE.execute(conn, (state.value, reason, now, window, t.id))
        t = replace(t, state=state, reason=reason, updated_at_ns=now, window_id=window)
        notify_transfer(conn, t, now, self._participants.with_endpoint(conn))
        return t

    def list_transfers(
        self, caller: str, limit: int = 100, after: str | None = None
    ) -> list[PaymentTransfer]:
        """The caller's transfers in the order they were written (``seq``), ``limit`` at a
        time after the transfer ``after`` (the last of the previous page, one of the
        caller's). In id order, as before, a transfer written between two pages with an id
        below the cursor (ids are the payers', UUIDs) was never listed. The caller's: those
        it pays, is paid, or (an FX provider) whose legs its liquidity runs."""
        c = st.transfers.c
        mine = (
            (c.payer_participant == caller)
            | (c.payee_participant == caller)
            | (c.fx_provider == caller)
        )
        query = sa.select(st.transfers).where(mine)
        with self._read() as conn:
            if after:
                cursor = conn.execute(sa.select(c.seq).where(c.id == after, mine)).first()
                if cursor is None:  # not the caller's: whether it exists is not told either
                    raise InvalidPaymentInput(
                        f"after must be the id of a transfer of yours, not {after!r}",
                        field="after",
                    )
                query = query.where(c.seq > cursor[0])
            rows = conn.execute(query.order_by(c.seq).limit(min(max(limit, 1), 1000))).all()
        return [_seen_by(caller, self._expired_view(st.transfer_from_row(r))) for r in rows]

    def process_deadlines(self) -> dict[str, int]:
        """Expired quotes and transfers become EXPIRED/ABORTED (the ledger already voided
        their reservations); escrows past their deadline are released or refunded."""
        now = self._now()
        self.ledger.expire_pending()
        with self._uow() as uow:
            conn = uow.connection
            stale_quotes = conn.execute(
                sa.select(st.quotes.c.id).where(
                    sa.text(st.ACCEPTED_QUOTE),  # through its partial index (store.py)
                    st.quotes.c.expires_at <= now,
                    st.quotes.c.fx_provider.is_not(None),
                )
            ).all()
            stale = conn.execute(
                sa.select(st.transfers).where(
                    sa.text(st.OPEN_TRANSFER), st.transfers.c.expires_at <= now
                )
            ).all()
            legs = [ledger_id("fx-reservation", r[0]) for r in stale_quotes]
            for row in stale:
                legs += self._pending_legs(st.transfer_from_row(row))
            self._void_quietly(uow, legs)
            q = conn.execute(
                sa.update(st.quotes)
                .where(sa.text(st.OPEN_QUOTE), st.quotes.c.expires_at <= now)
                .values(state=QuoteState.EXPIRED.value)
            ).rowcount
            t = conn.execute(
                sa.update(st.transfers)
                .where(sa.text(st.OPEN_TRANSFER), st.transfers.c.expires_at <= now)
                .values(state=TransferState.ABORTED.value, reason="expired", updated_at=now)
            ).rowcount
            for row in stale:
                expired = replace(
                    st.transfer_from_row(row),
                    state=TransferState.ABORTED,
                    reason="expired",
                    updated_at_ns=now,
                )
                notify_transfer(conn, expired, now)
            due = conn.execute(
                sa.select(st.escrows).where(sa.text(st.HELD_ESCROW), st.escrows.c.deadline <= now)
            ).all()
        escrows = 0
        failed = 0
        for row in due:
            try:
                escrows += self._deadline_acts(row.id)
            except PaymentError as exc:  # e.g. the payee is suspended: held for a person
                # said why (it was only counted: a refusal nobody expected went unseen)
                log.info("escrow %s: its deadline cannot act now: %s", row.id, exc)
                failed += 1
            except Exception:  # (the database, say): the other escrows due still act now
                log.exception("escrow %s: its deadline did not act; retried next pass", row.id)
                failed += 1
        return {
            "quotes_expired": q,
            "transfers_aborted": t,
            "escrows_resolved": escrows,
            "escrows_failed": failed,
        }

    def purge_idempotency(self) -> dict[str, int]:
        """Idempotency-Key answers and markers older than the retention period deleted (a
        request resent with its key after it is a new request); the deadline pass runs it."""
        before = self._now() - self.idempotency_retention_s * NS_PER_S
        return {"idempotency_keys_purged": keyed.purge_answers(self.engine, before)}

    def _deadline_acts(self, escrow_id: str) -> int:
        """The deadline's action on an escrow found due: 1 if taken now, 0 if the escrow was
        closed meanwhile (another pass, an operator's or another host's, or a decision that
        came after the deadline took the action first): not a failure. Read again under the
        write lock: what was due was read in an earlier transaction."""
        with self._uow() as uow:
            e = self._escrow(uow.connection, escrow_id)
            if e.state is not EscrowState.HELD:
                return 0
            release = e.on_deadline is DeadlineAction.RELEASE
            self._move_in(uow, e.controller, e.id, e.held_minor, release=release, by_deadline=True)
        return 1

    # ------------------------------------------------------------------ notifications
    def set_endpoint(self, caller: str, url: str) -> str:
        """Where the participant wants its notifications (an http(s) URL; see notify.py)."""
        if (
            not isinstance(url, str)
            or len(url) > ENDPOINT_LEN_MAX
            or not url.startswith(("http://", "https://"))
        ):
            raise InvalidPaymentInput(
                f"endpoint must be an http(s) URL of at most {ENDPOINT_LEN_MAX} characters",
                field="url",
            )
        why = endpoint_problem(url, self.callback_hosts)
        if why is not None:
            raise InvalidPaymentInput(f"endpoint {url!r} is refused: {why}", field="url")
        with self._uow() as uow:
            conn = uow.connection
            self._active(conn, caller)
            conn.execute(sa.delete(st.endpoints).where(st.endpoints.c.participant_id == caller))
            now = self._now()
            conn.execute(
                sa.insert(st.endpoints).values(participant_id=caller, url=url, updated_at=now)
            )
            # Its waiting notices are tried at the next delivery round, at this endpoint, with
            # all their retries before them: a participant that fixed or moved its endpoint
            # waited out the backoff earned by the broken one (up to 17 minutes), and a notice
            # that had failed 11 times there was abandoned at the new one's first hiccup
            # (reviews). ``attempts`` counts the attempts at the current endpoint.
            o = st.outbox.c
            conn.execute(
                sa.update(st.outbox)
                .where(
                    o.participant_id == caller,
                    o.delivered_at.is_(None),
                    o.abandoned_at.is_(None),
                    sa.or_(o.next_attempt_at > now, o.attempts > 0),
                )
                .values(next_attempt_at=now, attempts=0)
            )
            st.ParticipantCache.changed(conn)
        return url

    def get_endpoint(self, caller: str) -> str | None:
        """The participant's notification endpoint (None: it has set none)."""
        with self._read() as conn:
            self._participant(conn, caller)  # an unknown participant is a 404, not "none set"
            row = conn.execute(
                sa.select(st.endpoints.c.url).where(st.endpoints.c.participant_id == caller)
            ).first()
        return None if row is None else str(row[0])

    def notifications(
        self, caller: str, *, pending_only: bool = False, after: int = 0, limit: int = 100
    ) -> list[dict[str, object]]:
        """The caller's notifications, oldest first (a pull for whoever missed a callback)."""
        if type(after) is not int or not 0 <= after < 2**63:
            raise InvalidPaymentInput("after must be a notification id, 0..2^63-1", field="after")
        o = st.outbox.c
        q = sa.select(st.outbox).where(o.participant_id == caller, o.id > after)
        if pending_only:  # still being tried
            q = q.where(o.delivered_at.is_(None), o.abandoned_at.is_(None))
        with self._read() as conn:
            rows = conn.execute(q.order_by(o.id).limit(min(max(limit, 1), 1000))).all()
        return [
            {
                "id": r.id,
                "event": r.event,
                "resourceId": r.resource_id,
                "body": json.loads(r.body),
                "createdAt": r.created_at,
                "attempts": r.attempts,
                "deliveredAt": r.delivered_at,
                "lastError": r.last_error,
                "abandonedAt": r.abandoned_at,
            }
            for r in rows
        ]

    # ------------------------------------------------------------------ escrow
    def create_escrow(
        self,
        caller: str,
        escrow_id: str,
        payee: str,
        currency: str,
        amount_minor: int,
        purpose: str,
        deadline_s: int,
        on_deadline: DeadlineAction | str = DeadlineAction.REFUND,
        controller: str | None = None,
    ) -> Escrow:
        """Hold the payer participant's funds for a purpose (an order) until a decision."""
        _check_id(escrow_id, "escrow id")
        _check_amount(amount_minor)
        if type(deadline_s) is not int or not 1 <= deadline_s <= 366 * 86_400:
            raise InvalidPaymentInput(
                "deadline must be 1 second to 366 days away", field="deadline"
            )
        _check_text(purpose, "purpose", "purpose")
        try:
            action = DeadlineAction(on_deadline)
        except ValueError:
            raise InvalidPaymentInput(
                "onDeadline must be release or refund", field="onDeadline"
            ) from None
        with self._uow() as uow:
            conn = uow.connection
            row = conn.execute(sa.select(st.escrows).where(st.escrows.c.id == escrow_id)).first()
            if row is not None:  # a resend: the escrow as it is now, or 3106
                e = st.escrow_from_row(row)
                _resent(
                    f"escrow {escrow_id}",
                    "escrowId",
                    (
                        *(caller, payee, currency, amount_minor, purpose),
                        *(deadline_s * NS_PER_S, action, controller or caller),
                    ),
                    (
                        *(e.payer_participant, e.payee_participant, e.currency, e.amount_minor),
                        *(e.purpose, e.deadline_ns - e.created_at_ns, e.on_deadline),
                        e.controller,
                    ),
                )
                return e
            # Found by a review: the scheme operator's participant paid fee income out through
            # an escrow it made (it sends no payments), and an escrow to its own payer,
            # released, was counted gross in the settlement report (and as liquidity netting
            # saved) though no money changed hands: as a quote to one's own participant, on-us.
            _check_not_scheme(caller)
            if payee == caller:
                raise InvalidPaymentInput(
                    f"the payee is {caller} itself: an escrow moves funds to another "
                    "participant (on-us funds are the participant's own to hold)",
                    field="payeeFsp",
                )
            payer = self._active(conn, caller)
            try:
                payee_p = self._active(conn, payee)
            except (ParticipantNotFound, ParticipantSuspended) as exc:
                exc.field = "payeeFsp"  # (the request's; the check names none)
                raise
            payee_p.check_currency(currency)
            ctl = controller or caller
            self._check_controller(conn, ctl, caller, payee)
            src = payer.check_currency(currency)
            hold = self._scheme_account(conn, currency, "escrow")
            self._post_ok(
                uow,
                [
                    Transfer(
                        ledger_id("escrow-hold", escrow_id),
                        src.position_account,
                        hold,
                        amount_minor,
                        ledger=src.ledger,
                        code=Code.ESCROW_HOLD,
                    )
                ],
                lambda: NetDebitCapExceeded(f"{caller} would exceed its net debit cap"),
            )
            now = self._now()
            e = Escrow(
                escrow_id,
                caller,
                payee,
                ctl,
                currency,
                amount_minor,
                0,
                0,
                purpose,
                now + deadline_s * NS_PER_S,
                action,
                EscrowState.HELD,
                now,
                _MANAGER.get(),  # made in an order's checkout: decided through the order
            )
            conn.execute(
                sa.insert(st.escrows).values(
                    id=e.id,
                    payer_participant=e.payer_participant,
                    payee_participant=e.payee_participant,
                    controller=e.controller,
                    currency=e.currency,
                    amount=e.amount_minor,
                    released=0,
                    refunded=0,
                    purpose=e.purpose,
                    deadline=e.deadline_ns,
                    on_deadline=action.value,
                    state=e.state.value,
                    created_at=now,
                    managed_by=e.managed_by,
                )
            )
            self._escrow_event(conn, e.id, "hold", amount_minor, caller)
        return e

    def _check_controller(self, conn: Connection, controller: str, payer: str, payee: str) -> None:
        """An escrow's controller decides where its funds go: the payer (the default), the
        payee, or an escrow agent (a participant of kind hub: a trade hub's operator, the
        scheme operator), and active. Any other participant never agreed to decide for these
        two; one that does not exist is refused alike, so the answer tells the payer nothing
        of participants it has no part with."""
        if controller in (payer, payee):
            return  # both checked active by the caller
        agent = self._participants.get(conn, controller)
        if agent is None or agent.kind is not ParticipantKind.HUB:
            raise ControllerNotAllowed(
                f"{controller!r} may not control this escrow: its controller is the payer, "
                "the payee or an escrow agent (a hub)",
                field="controller",
            )
        self._active(conn, controller)  # it could decide nothing

    def _escrow_event(
        self, conn: Connection, escrow_id: str, action: str, amount: int, actor: str
    ) -> int:
        seq = conn.execute(
            sa.select(sa.func.count())
            .select_from(st.escrow_events)
            .where(st.escrow_events.c.escrow_id == escrow_id)
        ).scalar_one()
        conn.execute(
            sa.insert(st.escrow_events).values(
                escrow_id=escrow_id,
                seq=seq,
                action=action,
                amount=amount,
                actor=actor,
                at=self._now(),
                window_id=self._open_window(conn).id,
            )
        )
        return int(seq)

    def get_escrow(self, caller: str, escrow_id: str, *, recorded: bool = False) -> Escrow:
        """The escrow as its deadline has decided it (``_decided_view``); ``recorded``: as its
        records stand, for a context whose decisions move what it holds (trade's, which a
        late decision then finds refused)."""
        with self._read() as conn:
            e = self._escrow(conn, escrow_id)
            self._may_read(caller, e)
            return e if recorded else self._decided_view(conn, e)

    def _deadline_can_act(self, conn: Connection, e: Escrow) -> bool:
        """Whether the deadline's action on ``e`` can be taken: its recipient can receive
        (not suspended, holds the currency). It cannot otherwise: the escrow stays the
        controller's to decide, as the pass leaves it for a person."""
        release = e.on_deadline is DeadlineAction.RELEASE
        to = self._participants.get(conn, e.payee_participant if release else e.payer_participant)
        return to is not None and to.active and e.currency in to.currencies

    def _decided_view(self, conn: Connection, e: Escrow) -> Escrow:
        """``e`` as read: past its deadline, what it holds is read released or refunded the
        deadline's way where the deadline can act, as the pass (or a late decision) then
        records it; nothing is written. It read HELD and releasable until the pass, while a
        release was refused as too late (found by a review; a transfer past its expiry reads
        ABORTED so)."""
        if (
            e.state is not EscrowState.HELD
            or self._now() < e.deadline_ns
            or not self._deadline_can_act(conn, e)
        ):
            return e
        if e.on_deadline is DeadlineAction.RELEASE:
            return replace(
                e, released_minor=e.released_minor + e.held_minor, state=EscrowState.CLOSED
            )
        return replace(e, refunded_minor=e.refunded_minor + e.held_minor, state=EscrowState.CLOSED)

    @staticmethod
    def _may_read(caller: str, e: Escrow) -> None:
        # the scheme operator holds every escrow (its escrow account), as it reads any transfer
        if caller not in (e.payer_participant, e.payee_participant, e.controller, SCHEME):
            raise NotYours(f"escrow {e.id} is not yours")

    def escrow_events(self, caller: str, escrow_id: str) -> list[dict[str, object]]:
        return self.escrow_history(caller, escrow_id)[1]

    def escrow_history(self, caller: str, escrow_id: str) -> tuple[Escrow, list[dict[str, object]]]:
        """The escrow and every decision on it, in order, read together (one snapshot: the
        events are those that made what it holds): for whoever may read it (``get_escrow``)."""
        with self._read() as conn:
            e = self._escrow(conn, escrow_id)
            self._may_read(caller, e)
            e = self._decided_view(conn, e)
            rows = conn.execute(
                sa.select(st.escrow_events)
                .where(st.escrow_events.c.escrow_id == escrow_id)
                .order_by(st.escrow_events.c.seq)
            ).all()
        return e, [
            {
                "seq": r.seq,
                "action": r.action,
                "amount_minor": r.amount,
                "actor": r.actor,
                "at_ns": r.at,
            }
            for r in rows
        ]

    def _escrow(self, conn: Connection, escrow_id: str) -> Escrow:
        row = conn.execute(sa.select(st.escrows).where(st.escrows.c.id == escrow_id)).first()
        if row is None:
            raise EscrowNotFound(f"escrow {shown_id(escrow_id)} does not exist")
        return st.escrow_from_row(row)

    def release_escrow(
        self, caller: str, escrow_id: str, amount_minor: int, *, currency: str | None = None
    ) -> Escrow:
        """Pay ``amount_minor`` of what is held to the payee. ``currency``: the one the
        request states the amount in (the API's), which must be the escrow's."""
        return self._move_escrow(caller, escrow_id, amount_minor, release=True, currency=currency)

    def refund_escrow(
        self, caller: str, escrow_id: str, amount_minor: int, *, currency: str | None = None
    ) -> Escrow:
        """Return ``amount_minor`` of what is held to the payer (``currency`` as above)."""
        return self._move_escrow(caller, escrow_id, amount_minor, release=False, currency=currency)

    def split_escrow(
        self,
        caller: str,
        escrow_id: str,
        release_minor: int,
        refund_minor: int,
        *,
        currency: str | None = None,
    ) -> Escrow:
        """Release part to the payee and refund part to the payer in one decision: both
        postings in one transaction, or neither. ``currency``: the one the request states
        the parts in, which must be the escrow's (as a release's or a refund's)."""
        for part, what in ((release_minor, "release_minor"), (refund_minor, "refund_minor")):
            # a part may be none (0, an int: not False or 0.0); else as any amount
            if type(part) is not int or part != 0:
                _check_amount(part, what)
        parts = [(a, rel) for a, rel in ((release_minor, True), (refund_minor, False)) if a]
        if not parts:
            raise InvalidPaymentInput("a split moves a positive amount", field="amount")
        with self._uow() as uow:
            e = self._escrow(uow.connection, escrow_id)
            # before telling anyone what it holds; a split that releases nothing only refunds
            self._may_decide(uow, caller, e, refund_only=not release_minor)
            if currency is not None and currency != e.currency:
                raise InvalidPaymentInput(
                    f"escrow {escrow_id} holds {e.currency}, not {currency}",
                    field="release.currency",
                )
            held = e.held_minor
            if release_minor + refund_minor > held:
                raise InsufficientEscrow(
                    _holds_not(escrow_id, held, release_minor + refund_minor, e.currency)
                )
            for amount, release in parts:  # decided above, at one instant: a deadline
                # passing between the two postings kept the first and refunded the rest
                e = self._move_in(uow, caller, escrow_id, amount, release=release, decided=True)
        return e

    def _move_escrow(
        self, caller: str, escrow_id: str, amount: int, *, release: bool, currency: str | None
    ) -> Escrow:
        with self._uow() as uow:
            return self._move_in(uow, caller, escrow_id, amount, release=release, currency=currency)

    def _may_decide(
        self, uow: UnitOfWork, caller: str, e: Escrow, *, refund_only: bool = False
    ) -> None:
        """Refuse a decision on ``e`` by anyone but its controller, by a suspended controller
        (unless it only refunds: ``refund_only``), or once it is closed. An escrow whose
        deadline has passed is decided by the deadline first (kept, whatever the caller's
        request then does): the decision comes too late."""
        if caller != e.controller:
            # not naming the controller: who decides another's escrow is not the caller's to know
            raise NotYours(f"escrow {e.id} is not yours to decide")
        if e.managed_by is not None and _MANAGER.get() != e.managed_by:
            # An order's escrow, decided by the order's course (delivery, a dispute's ruling):
            # its controller, the hub, released one straight to itself past an open dispute.
            raise NotYours(
                f"escrow {e.id} pays for a {e.managed_by} order: it is decided through the "
                "order (delivery, cancellation, a dispute's ruling), not directly"
            )
        if e.state is not EscrowState.HELD:
            raise InvalidState(f"escrow {e.id} is closed")
        if self._now() >= e.deadline_ns:
            release = e.on_deadline is DeadlineAction.RELEASE
            # The deadline cannot act when its recipient cannot receive (suspended, say): the
            # escrow then stays the controller's to decide, as process_deadlines leaves it for
            # a person, and the controller must be active to decide, as before the deadline.
            # Where it can, the escrow reads closed already (_decided_view): refused so.
            if self._deadline_can_act(uow.connection, e):
                done = "released to the payee" if release else "refunded to the payer"
                if isinstance(uow, _JoinedUnitOfWork):
                    # Inside another context's transaction nothing is committed here (the
                    # refusal undoes it all): the deadline run takes the action.
                    raise InvalidState(
                        f"escrow {e.id} passed its deadline: what it holds is to be {done}"
                    )
                self._move_in(
                    uow, e.controller, e.id, e.held_minor, release=release, by_deadline=True
                )
                uow.commit()
                raise InvalidState(f"escrow {e.id} passed its deadline: what it held was {done}")
        # A suspended participant gives no payment instruction, a decision on funds it controls
        # included: a release waits for its resumption, or for the deadline, which acts alone.
        # A refund gives the payer back its own money, to where it came from (never to the
        # controller): a suspended hub's buyers, whose orders are cancelled, were refused
        # their refunds until the hub was resumed or the deadline, up to a year later, acted.
        if not refund_only:
            self._active(uow.connection, caller)

    def _move_in(
        self,
        uow: UnitOfWork,
        caller: str,
        escrow_id: str,
        amount: int,
        *,
        release: bool,
        currency: str | None = None,
        by_deadline: bool = False,
        decided: bool = False,
    ) -> Escrow:
        """Move ``amount`` of escrow ``escrow_id`` to its payee (``release``) or payer.
        ``currency``: the one the request states the amount in, which must be the escrow's
        (checked once the caller may decide: a stranger learns nothing of the escrow).
        ``by_deadline``: the deadline's own action (process_deadlines, _may_decide), recorded
        as the deadline's; ``decided``: ``caller`` may decide, checked by the caller in this
        transaction (a split's second part)."""
        _check_amount(amount)
        conn = uow.connection
        e = self._escrow(conn, escrow_id)
        if by_deadline or decided:
            if caller != e.controller or e.state is not EscrowState.HELD:
                raise InvalidState(f"escrow {escrow_id} is not held")
        else:
            self._may_decide(uow, caller, e, refund_only=not release)
        if currency is not None and currency != e.currency:
            raise InvalidPaymentInput(
                f"escrow {escrow_id} holds {e.currency}, not {currency}", field="amount.currency"
            )
        if amount > e.held_minor:
            raise InsufficientEscrow(_holds_not(escrow_id, e.held_minor, amount, e.currency))
        to = e.payee_participant if release else e.payer_participant
        dst = self._active(conn, to).check_currency(e.currency)  # suspended: receives nothing
        hold = self._scheme_account(conn, e.currency, "escrow")
        action = "release" if release else "refund"
        seq = self._escrow_event(conn, e.id, action, amount, "deadline" if by_deadline else caller)
        self._post_ok(
            uow,
            [
                Transfer(
                    ledger_id(f"escrow-{action}", e.id, str(seq)),
                    hold,
                    dst.position_account,
                    amount,
                    ledger=dst.ledger,
                    code=Code.ESCROW_RELEASE if release else Code.ESCROW_REFUND,
                )
            ],
            lambda: LedgerRefused(f"escrow {action} refused"),
        )
        released = e.released_minor + (amount if release else 0)
        refunded = e.refunded_minor + (0 if release else amount)
        state = EscrowState.CLOSED if released + refunded == e.amount_minor else EscrowState.HELD
        conn.execute(
            sa.update(st.escrows)
            .where(st.escrows.c.id == e.id)
            .values(released=released, refunded=refunded, state=state.value)
        )
        return replace(e, released_minor=released, refunded_minor=refunded, state=state)

    # ------------------------------------------------------------------ settlement
    def _open_window(self, conn: Connection) -> SettlementWindow:
        row = st.OPEN_WINDOW.first(conn)
        if row is None:
            wid = conn.execute(
                sa.insert(st.windows)
                .values(state="OPEN", opened_at=self._now())
                .returning(st.windows.c.id)
            ).scalar_one()
            return SettlementWindow(int(wid), WindowState.OPEN, self._now(), None, None)
        return SettlementWindow(
            row.id, WindowState(row.state), row.opened_at, row.closed_at, row.settled_at
        )

    def current_window(self) -> SettlementWindow:
        with self._uow() as uow:
            return self._open_window(uow.connection)

    def close_window(self, caller: str = SCHEME) -> SettlementWindow:
        """Close the open window: each participant's multilateral net position per currency
        (from its position account), then open the next window."""
        if caller != SCHEME:
            raise NotYours("only the scheme operator closes settlement windows")
        with self._uow() as uow:
            conn = uow.connection
            unsettled = conn.execute(
                sa.select(st.windows.c.id).where(st.windows.c.state == "CLOSED")
            ).first()
            if unsettled is not None:
                raise InvalidState(
                    f"settlement window {unsettled[0]} is closed but not settled: settle it first"
                )
            w = self._open_window(conn)
            now = self._now()
            gross = self._window_gross(conn, w.id)
            rows = conn.execute(sa.select(st.participant_currencies)).all()
            accounts = {
                a.id: a
                for a in self.ledger.lookup_accounts(
                    [id_from_bytes(r.position_account) for r in rows], uow=uow
                )
            }
            for r in rows:
                a = accounts[id_from_bytes(r.position_account)]
                net = a.credits_posted - a.debits_posted - r.net_debit_cap
                sent, received = gross.get((r.participant_id, r.currency), (0, 0))
                if net == 0 and sent == 0 and received == 0:
                    continue
                conn.execute(
                    sa.insert(st.window_positions).values(
                        window_id=w.id,
                        participant_id=r.participant_id,
                        currency=r.currency,
                        sent=sent,
                        received=received,
                        net=net,
                    )
                )
            conn.execute(
                sa.update(st.windows)
                .where(st.windows.c.id == w.id)
                .values(state="CLOSED", closed_at=now)
            )
            conn.execute(sa.insert(st.windows).values(state="OPEN", opened_at=now))
            # A lost answer's retry must be told of this window, not close the next one.
            mark_keyed(conn, self._now(), result=f"{SETTLEMENT_WINDOW}:{w.id}")
        return self.get_window(w.id)

    def _window_gross(
        self, conn: Connection, window_id: int
    ) -> dict[tuple[str, str], tuple[int, int]]:
        """Per participant and currency, what it sent and received in the window: committed
        transfers (with their fee and FX legs) and escrow moves (a hold is sent by the payer; a
        release is received by the payee, a refund by the payer)."""
        out: dict[tuple[str, str], list[int]] = {}
        moves = conn.execute(
            sa.select(
                st.escrow_events.c.action,
                st.escrow_events.c.amount,
                st.escrows.c.payer_participant,
                st.escrows.c.payee_participant,
                st.escrows.c.currency,
            )
            .join(st.escrows, st.escrows.c.id == st.escrow_events.c.escrow_id)
            .where(st.escrow_events.c.window_id == window_id)
        ).all()
        for action, amount, payer, payee, cur in moves:
            who = payee if action == "release" else payer
            acc = out.setdefault((who, cur), [0, 0])
            acc[0 if action == "hold" else 1] += amount
        rows = conn.execute(
            sa.select(st.transfers).where(
                st.transfers.c.window_id == window_id, st.transfers.c.state == "COMMITTED"
            )
        ).all()
        for r in rows:
            principal = r.source_amount - r.fee
            legs = [(r.payer_participant, r.source_currency, r.source_amount, 0)]
            if r.fee:
                legs.append((SCHEME, r.source_currency, 0, r.fee))
            if r.fx_provider:
                legs += [
                    (r.fx_provider, r.source_currency, 0, principal),
                    (r.fx_provider, r.target_currency, r.target_amount, 0),
                    (r.payee_participant, r.target_currency, 0, r.target_amount),
                ]
            else:
                legs.append((r.payee_participant, r.target_currency, 0, r.target_amount))
            for pid, cur, sent, received in legs:
                acc = out.setdefault((pid, cur), [0, 0])
                acc[0] += sent
                acc[1] += received
        return {k: (v[0], v[1]) for k, v in out.items()}

    def get_window(self, window_id: int) -> SettlementWindow:
        with self._read() as conn:
            return self._window_in(conn, window_id)

    def _window_in(self, conn: Connection, window_id: int) -> SettlementWindow:
        row = conn.execute(sa.select(st.windows).where(st.windows.c.id == window_id)).first()
        if row is None:
            raise WindowNotFound(f"settlement window {window_id} does not exist")
        pos = conn.execute(
            sa.select(st.window_positions)
            .where(st.window_positions.c.window_id == window_id)
            .order_by(st.window_positions.c.currency, st.window_positions.c.participant_id)
        ).all()
        carried = self._carried_into(conn, window_id)
        # what the escrow account paid out in it (its gross counts it: SettlementWindow.report)
        ev = st.escrow_events.c
        paid = conn.execute(
            sa.select(st.escrows.c.currency, sa.func.sum(ev.amount))
            .join(st.escrows, st.escrows.c.id == ev.escrow_id)
            .where(ev.window_id == window_id, ev.action != "hold")
            .group_by(st.escrows.c.currency)
            .order_by(st.escrows.c.currency)
        ).all()
        positions = tuple(
            NetPosition(
                p.participant_id,
                p.currency,
                p.sent,
                p.received,
                p.net,
                p.settled,
                carried.get((p.participant_id, p.currency), 0),
            )
            for p in pos
        )
        return SettlementWindow(
            row.id,
            WindowState(row.state),
            row.opened_at,
            row.closed_at,
            row.settled_at,
            positions,
            tuple((cur, int(amount)) for cur, amount in paid),  # PostgreSQL's sum: numeric
        )

    def _carried_into(self, conn: Connection, window_id: int) -> dict[tuple[str, str], int]:
        """What the settlement of the window before ``window_id`` could not pay each creditor
        (it stays in the creditor's position, so ``window_id``'s net counts it): windows
        settle in order, the previous one before this one closes (ids may skip: a sequence
        value taken by a close that rolled back)."""
        wp, w = st.window_positions.c, st.windows.c
        before = sa.select(sa.func.max(w.id)).where(w.id < window_id).scalar_subquery()
        rows = conn.execute(
            sa.select(wp.participant_id, wp.currency, wp.net, wp.settled).where(
                wp.window_id == before, wp.net > 0, wp.settled < wp.net
            )
        ).all()
        return {(r.participant_id, r.currency): r.net - r.settled for r in rows}

    def list_windows(self, after: int = 0, limit: int | None = None) -> list[SettlementWindow]:
        """The windows after window ``after``, oldest first, at most ``limit`` (None: all),
        read in one snapshot (a year of hourly windows was one answer of 60 MB, each window
        read in a snapshot of its own; the API pages them)."""
        if type(after) is not int or not 0 <= after < 2**63:
            raise InvalidPaymentInput(
                "after must be a window id (0: from the first)", field="after"
            )
        if limit is not None and (type(limit) is not int or not 1 <= limit <= 1000):
            raise InvalidPaymentInput("limit must be 1 to 1000", field="limit")
        query = sa.select(st.windows.c.id).where(st.windows.c.id > after).order_by(st.windows.c.id)
        with self._read() as conn:
            ids = [r[0] for r in conn.execute(query.limit(limit)).all()]
            return [self._window_in(conn, i) for i in ids]

    def settle_window(self, caller: str, window_id: int) -> SettlementWindow:
        """Move each net between settlement accounts at the central bank, then restore the
        positions: net debtors pay the settlement hub, the hub pays net creditors.

        What happened between the window's close and now must not stop its settlement (no
        later window could close). A creditor may have spent what it was owed (its position
        counted it): it is paid what its position can give back now, and the rest stays in
        its position, where the next window's net counts it. A debtor's settlement balance
        falls by what it pays: its net debit cap, which must be covered by that balance,
        comes down with it where it would no longer be (the next window's debts must be
        payable too)."""
        if caller != SCHEME:
            raise NotYours("only the scheme operator settles windows")
        self.get_window(window_id)  # WindowNotFound
        with self._uow() as uow:
            conn = uow.connection
            # Claimed in the transaction, under the write lock: a second settle of the window
            # (at the same time, or after) finds it settled. Checked before it, both ran, and
            # the second, seeing balances the first had moved, lowered caps again and recorded
            # creditors as paid nothing.
            claimed = conn.execute(
                sa.update(st.windows)
                .where(st.windows.c.id == window_id, st.windows.c.state == "CLOSED")
                .values(state="SETTLED", settled_at=self._now())
            ).rowcount
            if not claimed:
                state = conn.execute(
                    sa.select(st.windows.c.state).where(st.windows.c.id == window_id)
                ).scalar_one()
                raise InvalidState(f"settlement window {window_id} is {state}, not CLOSED")
            w = self._window_in(conn, window_id)
            owed = [
                (p, self._participant(conn, p.participant_id)) for p in w.positions if p.net_minor
            ]
            settled: dict[tuple[str, str], int] = {
                (p.participant_id, p.currency): 0 for p in w.positions
            }
            ids = []
            for p, participant in owed:
                pc = participant.check_currency(p.currency)
                ids += [pc.position_account, pc.settlement_account]
            # Reservations past their timeout released first: a creditor's expired reservation
            # was counted against what its position could give back, and the rest of what it
            # was owed deferred a whole window.
            self.ledger.expire_pending(uow=uow)
            # in this transaction: what a batch member before this one moved counts
            accounts = {a.id: a for a in self.ledger.lookup_accounts(ids, uow=uow)}
            posts: list[Transfer] = []  # each participant's: a linked pair, a cap
            caps: dict[tuple[str, str], int] = {}
            short: list[str] = []  # the debtors whose settlement balance cannot pay their net
            for p, participant in owed:
                pc = participant.check_currency(p.currency)
                hub = self._scheme_account(conn, p.currency, "settlement_hub")
                reset = self._scheme_account(conn, p.currency, "position_reset")
                key = (str(window_id), p.participant_id, p.currency)
                lower = 0
                if p.net_minor < 0:
                    amount = -p.net_minor
                    pay = (pc.settlement_account, hub)
                    restore = (reset, pc.position_account)
                    sett = accounts[pc.settlement_account]
                    cover = max(0, sett.credits_posted - sett.debits_posted - amount)
                    free = sett.credits_posted - sett.debits_posted - sett.debits_pending
                    if free < amount:
                        lacks = format_amount(amount - free, p.currency)
                        short.append(f"{p.participant_id} lacks {lacks} {p.currency}")
                    if participant.kind is not ParticipantKind.HUB:
                        # at most what the restore gives back: the position never goes below
                        # where it was before the settlement
                        lower = min(max(0, pc.net_debit_cap_minor - cover), amount)
                else:
                    pos = accounts[pc.position_account]
                    free = pos.credits_posted - pos.debits_posted - pos.debits_pending
                    amount = min(p.net_minor, max(0, free))
                    pay = (hub, pc.settlement_account)
                    restore = (pc.position_account, reset)
                settled[(p.participant_id, p.currency)] = amount
                if amount:
                    posts += [
                        Transfer(
                            ledger_id("settle", *key),
                            *pay,
                            amount,
                            ledger=pc.ledger,
                            code=Code.SETTLEMENT_TRANSFER,
                            flags=TransferFlags.LINKED,
                        ),
                        Transfer(
                            ledger_id("reset", *key),
                            *restore,
                            amount,
                            ledger=pc.ledger,
                            code=Code.POSITION_RESET,
                        ),
                    ]
                if lower:
                    line = self._scheme_account(conn, p.currency, "cap_line")
                    posts.append(
                        Transfer(
                            ledger_id("settle-cap", *key),
                            pc.position_account,
                            line,
                            lower,
                            ledger=pc.ledger,
                            code=Code.CAP,
                        )
                    )
                    caps[(p.participant_id, p.currency)] = pc.net_debit_cap_minor - lower
            # In batches the ledger takes (a window of more than ~4,000 positions was refused
            # whole, for good, and no later window could close), a participant's linked pair
            # never split; all in this transaction: every batch commits, or none.
            for start, stop in chain_batches([t.flags for t in posts]):
                self._post_ok(
                    uow,
                    posts[start:stop],
                    lambda: LedgerRefused(
                        "a net debtor's settlement account cannot cover its net position"
                        + (f" ({'; '.join(short)}): fund it, then settle" if short else "")
                    ),
                )
            if posts:
                # Dated as the ledger booked it (its last entry's stamp, which camt.053 states
                # as each entry's BookgDt), not the clock read when the window was claimed: a
                # settle a moment before midnight UTC read settled that day, its nets booked
                # the next (a review). The ledger stamps under the write lock held here.
                conn.execute(
                    sa.update(st.windows)
                    .where(st.windows.c.id == window_id)
                    .values(settled_at=self.ledger.last_timestamp(uow=uow))
                )
            for (pid, currency), amount in settled.items():
                conn.execute(
                    sa.update(st.window_positions)
                    .where(
                        st.window_positions.c.window_id == window_id,
                        st.window_positions.c.participant_id == pid,
                        st.window_positions.c.currency == currency,
                    )
                    .values(settled=amount)
                )
            for (pid, currency), cap in caps.items():
                conn.execute(
                    sa.update(st.participant_currencies)
                    .where(
                        st.participant_currencies.c.participant_id == pid,
                        st.participant_currencies.c.currency == currency,
                    )
                    .values(net_debit_cap=cap)
                )
            if caps:
                st.ParticipantCache.changed(conn)
        return self.get_window(window_id)


REASON_LEN_MAX = 200  # pay_transfers.reason is VARCHAR(200)


def _reason(text: str | None, length_max: int = REASON_LEN_MAX) -> str | None:
    """A reason that fits its column: long ones are cut with an ellipsis, never refused."""
    if text is None or len(text) <= length_max:
        return text
    return text[: length_max - 1] + "…"


def _seen_by(caller: str, t: PaymentTransfer) -> PaymentTransfer:
    """``t`` as ``caller`` may see it (:meth:`PaymentTransfer.seen_by`); the operator sees it
    all."""
    return t if caller == SCHEME else t.seen_by(caller)


#: The references of a QR's tag 62 a payment carries (its note, pacs.008's RmtInf): what the
#: merchant's participant matches the payment to a bill or till by. Each is at most 25
#: characters, so the note fits RmtInf's 140.
_QR_REFERENCES = (
    ("bill_number", "bill"),
    ("reference_label", "reference"),
    ("terminal_label", "terminal"),
)


#: A tag 62 value is 1-25 characters (v1.1); so is what a payer enters for one.
QR_PROMPTED_LEN_MAX = 25


def _qr_prompted(decoded: qr.QrPayload, prompted: Mapping[str, str]) -> dict[str, str]:
    """What the payer entered where the QR asks for it (``***``: v1.1's "the mobile
    application should prompt the consumer"), checked: each reference the note carries that
    the QR prompts for is needed, and none it does not ask for is taken. Without this the
    payment went through with "bill ***" as its note, and the merchant could not match it to
    a bill. (Prompts for a mobile number, store, loyalty number or customer label are not
    carried: the note holds the bill, the reference and the terminal.)"""
    asked = set(decoded.prompts)
    labels = {name: name.replace("_", " ") for name in qr.PAYER_ENTERED}
    for name, value in prompted.items():
        if name not in labels:
            raise InvalidPaymentInput(
                f"{name!r} is not a value a payer enters for a QR (one of {', '.join(labels)})",
                field="prompted",
            )
        field = f"prompted.{name}"
        if name not in asked:
            raise InvalidPaymentInput(
                f"this QR does not ask the payer for its {labels[name]} (tag 62 does not "
                f"hold {qr.PROMPT} for it)",
                field=field,
            )
        _check_text(value, labels[name], field, length_max=QR_PROMPTED_LEN_MAX)
        if value == qr.PROMPT:
            raise InvalidPaymentInput(f"{labels[name]} {qr.PROMPT} is not a value", field=field)
    for name in labels:
        if name in asked and name not in prompted:
            raise InvalidPaymentInput(
                f"this QR asks the payer for its {labels[name]} ({qr.PROMPT} in tag 62): "
                "send the value the payer entered",
                field=f"prompted.{name}",
            )
    return dict(prompted)


def _qr_note(decoded: qr.QrPayload, entered: Mapping[str, str]) -> str | None:
    """A payment's note from its QR's references ("QR bill 77; reference INV-1"), what the
    payer entered standing for a ``***``; or None. They were dropped: a merchant's
    participant could not tell which bill was paid, nor a second payment of a dynamic QR
    from a payment of another bill of the same amount."""
    refs = {**decoded.additional_data, **entered}
    parts = [f"{label} {refs[key]}" for key, label in _QR_REFERENCES if refs.get(key, "").strip()]
    return "QR " + "; ".join(parts) if parts else None


def _dynamic_qr_digest(decoded: qr.QrPayload) -> str | None:
    """A dynamic QR's key in ``pay_qr_payments``: the SHA-256 of its text as the encoder
    writes it (a CRC in lower case is the same QR); None for a static QR (paid any number of
    times). Its text, not its till and amount: two sales of one amount at one till are two
    QRs when their bill numbers or reference labels differ."""
    if not decoded.is_dynamic:
        return None
    return hashlib.sha256(decoded.text.encode()).hexdigest()


def _moved(till: str, acquirer: str) -> PartyNotFound:
    """A QR's till no longer at the participant the QR names."""
    return PartyNotFound(
        f"no party is registered for MERCHANT {till} at {acquirer}, the participant this QR "
        "names: the till has moved to another participant since the QR was made, and is not "
        "paid there"
    )


#: The end of the reason a commit records when it found the payer or FX provider suspended
SUSPENDED_BEFORE_COMMIT = " suspended before commit"


def _suspended_at_commit(reason: str | None, t: PaymentTransfer) -> bool:
    """Whether ``reason`` is what a commit that found ``t``'s payer or FX provider suspended
    recorded, word for word (ending the same is not enough: a reviewer's or a payee's words
    ending so were told to the payee as the scheme's record; found by a review)."""
    if reason is None or not reason.endswith(SUSPENDED_BEFORE_COMMIT):
        return False
    others = [t.payer_participant, *([t.fx_provider] if t.fx_provider else [])]
    named = [others[:1], others[1:], others]
    return any(who and reason == f"{', '.join(who)}{SUSPENDED_BEFORE_COMMIT}" for who in named)


def _scheme_words(reason: str) -> InvalidPaymentInput:
    return InvalidPaymentInput(
        f"a payee's reason cannot be {reason!r}: the scheme records that itself", field="reason"
    )


def _pays_as_quoted(party: Party | None, q: Quote) -> bool:
    """Whether the directory's ``party`` for quote ``q``'s payee alias is the one it was
    priced for: still at its payee participant, under the registration it had then (not
    removed and registered again since, for a new customer). The prepare's refusal and the
    screening ahead of it ask alike, so a prepare bound to be refused screens no stranger."""
    if party is None or party.participant_id != q.payee_participant:
        return False
    registered = party.registered_at_ns
    if q.payee_registered_at_ns is not None:
        # the registration priced, compared as recorded: not its time with the quote's, two
        # clocks' readings (another worker's, another host's, a clock stepped back) that
        # could refuse every quote of a fresh alias or miss a re-registration (a review)
        return registered == q.payee_registered_at_ns
    return registered is None or registered <= q.created_at_ns  # a quote before 0030


def _check_not_scheme(caller: str) -> None:
    """The scheme operator's participant sends no payments: a fee leg would debit and credit
    its own position (its prepare was refused by the ledger, ``accounts_must_be_different``,
    after a quote that priced it)."""
    if caller == SCHEME:
        raise NotYours(
            "the scheme operator's participant takes fees and holds escrows: it sends no payments"
        )


def _resent(what: str, field: str, asked: tuple[Any, ...], stored: tuple[Any, ...]) -> None:
    """A create whose id exists (a client resending after a timeout): Mojaloop's duplicate
    check. The same request again is answered with what the first created (the caller returns
    it); any other request with that id, by anyone, is refused (3106) and changes nothing."""
    if asked != stored:
        raise DuplicateWithDifferentBody(
            f"{what} already exists, created by a different request", field=field
        )


def _new_transfer(
    transfer_id: str, q: Quote, ttl_s: int, note: str | None, now: int
) -> PaymentTransfer:
    """The transfer a prepare of quote ``q`` creates at ``now`` (RESERVED)."""
    return PaymentTransfer(
        transfer_id,
        q.id,
        q.payer_participant,
        q.payee_participant,
        q.source_currency,
        q.target_currency,
        q.source_amount_minor,
        q.fee_minor,
        q.target_amount_minor,
        q.fx_provider,
        q.fx_rate,
        TransferState.RESERVED,
        now + ttl_s * NS_PER_S,
        now,
        now,
        None,
        None,
        note,
        q.payer_alias,
    )


@dataclass(frozen=True, slots=True)
class _Screened:
    """A screening decision made before the write lock, for the transfer and party it saw."""

    transfer: PaymentTransfer
    party: Party
    decision: ScreeningDecision

    def fits(self, t: PaymentTransfer, party: Party) -> bool:
        """Whether ``t`` and ``party`` are what was screened: everything but the timestamps,
        which the transaction takes again (its prepare happens a moment later)."""
        seen = self.transfer
        return (
            party == self.party
            and replace(
                seen,
                expires_at_ns=t.expires_at_ns,
                created_at_ns=t.created_at_ns,
                updated_at_ns=t.updated_at_ns,
            )
            == t
        )


def _quote_values(q: Quote, ttl_ns: int) -> dict[str, object]:
    """A new quote's row; ``ttl_ns``: the expiry asked for (a resend is compared with it: the
    quote's own may be sooner, its FX rate's)."""
    return {
        "id": q.id,
        "payer_participant": q.payer_participant,
        "payee_participant": q.payee_participant,
        "payee_alias_type": q.payee_alias_type.value,
        "payee_alias": q.payee_alias,
        "amount_type": q.amount_type.value,
        "source_currency": q.source_currency,
        "target_currency": q.target_currency,
        "source_amount": q.source_amount_minor,
        "fee": q.fee_minor,
        "target_amount": q.target_amount_minor,
        "fx_provider": q.fx_provider,
        "fx_rate": str(q.fx_rate) if q.fx_rate is not None else None,
        "expires_at": q.expires_at_ns,
        "state": q.state.value,
        "created_at": q.created_at_ns,
        "payer_alias": q.payer_alias,
        "ttl": ttl_ns,
        "payee_registered_at": q.payee_registered_at_ns,
    }


def _transfer_values(t: PaymentTransfer) -> dict[str, object]:
    return {
        "id": t.id,
        "quote_id": t.quote_id,
        "payer_participant": t.payer_participant,
        "payee_participant": t.payee_participant,
        "source_currency": t.source_currency,
        "target_currency": t.target_currency,
        "source_amount": t.source_amount_minor,
        "fee": t.fee_minor,
        "target_amount": t.target_amount_minor,
        "fx_provider": t.fx_provider,
        "fx_rate": str(t.fx_rate) if t.fx_rate is not None else None,
        "state": t.state.value,
        "expires_at": t.expires_at_ns,
        "created_at": t.created_at_ns,
        "updated_at": t.updated_at_ns,
        "window_id": t.window_id,
        "reason": t.reason,
        "note": t.note,
        "payer_alias": t.payer_alias,
        "payee_alias": None,  # on the quote
    }
