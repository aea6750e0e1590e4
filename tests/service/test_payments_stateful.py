"""A stateful property of the whole scheme: random interleavings of quotes (one currency and
cross-currency, SEND and RECEIVE), accepts, prepares, commits, rejects, expiries (the clock
advanced, the deadline pass run or not), suspensions, escrows (holds, partial releases and
refunds, splits, deadlines), bulks, cap changes, deposits and settlement windows, driven
through ``PaymentScheme``'s public API and checked after every step against a model kept
here: every ledger account's balances, every transfer's, quote's and escrow's state, each
window's net positions and gross, and that every refused call changed nothing (compared
as snapshots of the tables and the accounts). Each advance of the clock adds 1 ms besides
its seconds (no instant is then exactly a deadline, where the ledger's stamps may run a few
nanoseconds ahead of the clock) and runs ``Ledger.expire_pending()``: the ledger's lazy
expiry, at whichever write comes next, is not modelled."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal, localcontext
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as s
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from entrepot.kernel.clock import NS_PER_S, FakeClock
from entrepot.ledger import Ledger
from entrepot.payments import (
    SCHEME,
    EscrowState,
    FeeSchedule,
    PaymentScheme,
    QuoteState,
    TransferState,
)
from entrepot.payments import errors as pe
from entrepot.payments.bulk import BulkItem, bulk_transfers
from entrepot.payments.services import FX_RESERVATION_SLACK_S, ledger_id
from entrepot.storage import upgrade
from entrepot.storage.engine import create_engine_from_url
from tests.conftest import (
    BACKENDS,
    create_postgres_schema,
    drop_postgres_schema,
    postgres_schema_url,
)
from tests.service.test_payments import snapshot

FX = "fx"
#: participant -> currency, deposit, net debit cap, its customer's MSISDN
BANKS = {
    "rw1": ("RWF", 200_000, 100_000, "+250788000001"),
    "rw2": ("RWF", 100_000, 40_000, "+250788000002"),
    "my1": ("MYR", 50_000, 20_000, "+60123000001"),
    "my2": ("MYR", 30_000, 10_000, "+60123000002"),
}
FX_FUNDS = {"RWF": (100_000, 60_000), "MYR": (20_000, 15_000)}  # deposit, cap
#: (source, target) -> posted rate, spread in bps
RATES = {("RWF", "MYR"): (Decimal("0.0032"), 100), ("MYR", "RWF"): (Decimal("310"), 50)}
EXPONENT = {"RWF": 0, "MYR": 2}
CURRENCIES = ("RWF", "MYR")
FEE_BPS = 50
SCHEME_KINDS = ("cap_line", "reserve", "settlement_hub", "position_reset", "fx_reservation")
SCHEME_KINDS += ("escrow",)
TICK_NS = NS_PER_S // 1000  # every advance adds 1 ms: no instant is ever exactly a deadline's


def fee_of(principal: int) -> int:
    return int((Decimal(principal) * FEE_BPS / 10_000).quantize(Decimal(1), ROUND_HALF_UP))


def effective(source: str, target: str) -> Decimal:
    rate, spread = RATES[(source, target)]
    return rate * (10_000 - spread) / Decimal(10_000)


def to_target(principal: int, source: str, target: str) -> int:
    """SEND: the principal converted, rounded down to the target's minor unit."""
    with localcontext() as ctx:
        ctx.prec = 60
        exact = (
            Decimal(principal)
            * effective(source, target)
            * Decimal(10) ** (EXPONENT[target] - EXPONENT[source])
        )
        return int(exact.to_integral_value(ROUND_DOWN))


def to_source(received: int, source: str, target: str) -> int:
    """RECEIVE: the fewest source minor units that buy ``received``, rounded up."""
    with localcontext() as ctx:
        ctx.prec = 60
        exact = (
            Decimal(received)
            / effective(source, target)
            * Decimal(10) ** (EXPONENT[source] - EXPONENT[target])
        )
        return int(exact.to_integral_value(ROUND_UP))


Key = tuple[str, str, str]  # ("pos" | "sett", participant, currency) or ("scheme", kind, currency)


@dataclass
class Bal:
    net: int = 0  # credits posted less debits posted
    dp: int = 0  # debits pending
    cp: int = 0  # credits pending


@dataclass
class Pend:
    legs: list[tuple[Key, Key, int]]
    expires_ns: int
    live: bool = True


@dataclass
class MQuote:
    id: str
    payer: str
    payee: str
    source: str
    target: str
    total: int
    fee: int
    received: int
    expires_ns: int
    state: QuoteState = QuoteState.QUOTED
    reservation: Pend | None = None

    @property
    def cross(self) -> bool:
        return self.source != self.target


@dataclass
class MTransfer:
    id: str
    q: MQuote
    expires_ns: int
    pend: Pend
    state: TransferState = TransferState.RESERVED
    reason: str | None = None
    window: int | None = None


@dataclass
class MEscrow:
    id: str
    payer: str
    payee: str
    controller: str
    currency: str
    amount: int
    deadline_ns: int
    release_on_deadline: bool
    released: int = 0
    refunded: int = 0

    @property
    def held(self) -> int:
        return self.amount - self.released - self.refunded


@dataclass
class Model:
    bal: dict[Key, Bal] = field(default_factory=dict)
    caps: dict[tuple[str, str], int] = field(default_factory=dict)
    active: dict[str, bool] = field(default_factory=dict)
    deposits: dict[str, int] = field(default_factory=dict)
    pendings: list[Pend] = field(default_factory=list)
    quotes: list[MQuote] = field(default_factory=list)
    transfers: list[MTransfer] = field(default_factory=list)
    bulk_items: dict[str, str] = field(default_factory=dict)  # transfer id -> payer
    escrows: list[MEscrow] = field(default_factory=list)
    open_window: int = 0
    closed_window: int | None = None  # closed, not settled yet
    #: per window: (participant, currency) -> [sent, received]
    gross: dict[int, dict[tuple[str, str], list[int]]] = field(default_factory=dict)
    #: what each position is owed (+) or owes (-) since the last settlement: moves and carries
    unsettled: dict[tuple[str, str], int] = field(default_factory=dict)

    def b(self, key: Key) -> Bal:
        return self.bal.setdefault(key, Bal())

    def post(self, dr: Key, cr: Key, amount: int) -> None:
        self.b(dr).net -= amount
        self.b(cr).net += amount

    def pend(self, legs: list[tuple[Key, Key, int]], expires_ns: int) -> Pend:
        for dr, cr, amount in legs:
            self.b(dr).dp += amount
            self.b(cr).cp += amount
        p = Pend(legs, expires_ns)
        self.pendings.append(p)
        return p

    def resolve(self, p: Pend, post: bool) -> None:
        if not p.live:
            return
        p.live = False
        self.pendings.remove(p)
        for dr, cr, amount in p.legs:
            self.b(dr).dp -= amount
            self.b(cr).cp -= amount
            if post:
                self.post(dr, cr, amount)

    def available(self, pid: str, cur: str) -> int:
        b = self.b(("pos", pid, cur))
        return b.net - b.dp

    def move(self, pid: str, cur: str, sent: int, received: int) -> None:
        """A payment's or escrow's effect on a position, counted in the open window."""
        g = self.gross.setdefault(self.open_window, {}).setdefault((pid, cur), [0, 0])
        g[0] += sent
        g[1] += received
        self.unsettled[(pid, cur)] = self.unsettled.get((pid, cur), 0) + received - sent


def pos(pid: str, cur: str) -> Key:
    return ("pos", pid, cur)


def sch(kind: str, cur: str) -> Key:
    return ("scheme", kind, cur)


def currency_of(pid: str) -> str:
    return BANKS[pid][0]


def held_currencies(pid: str) -> tuple[str, ...]:
    if pid in (FX, SCHEME):
        return CURRENCIES
    return (currency_of(pid),)


@dataclass
class Expect:
    errors: tuple[type[Exception], ...] = ()
    effect: Callable[[], None] | None = None  # a documented refusal that records something


class SchemeMachine(RuleBasedStateMachine):
    backend = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp()
        self.schema = None
        if self.backend == "sqlite":
            url = f"sqlite:///{self.tmp}/entrepot.db"
        else:
            self.schema = create_postgres_schema()
            url = postgres_schema_url(self.schema)
        self.engine = create_engine_from_url(url)
        upgrade(self.engine)
        self.clock = FakeClock()
        self.ledger = Ledger(self.engine, self.clock)
        self.s = PaymentScheme(self.engine, self.ledger, self.clock, fees=FeeSchedule(bps=FEE_BPS))
        self.m = Model()
        self.n = 0
        self._setup()

    def teardown(self) -> None:
        self.engine.dispose()
        if self.schema is not None:
            drop_postgres_schema(self.schema)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        s, m = self.s, self.m
        for cur in CURRENCIES:
            s.enable_currency(cur)
            m.caps[(SCHEME, cur)] = 0
        m.active[SCHEME] = True
        for pid, (cur, deposit, cap, msisdn) in BANKS.items():
            s.register_participant(pid, pid.upper(), "bank", "RW" if cur == "RWF" else "MY", [cur])
            s.register_alias(pid, "MSISDN", msisdn, f"customer of {pid}", cur)
            self._fund(pid, cur, deposit, cap)
            m.active[pid] = True
        s.register_participant(FX, "FX", "fx_provider", "SG", list(CURRENCIES))
        m.active[FX] = True
        for cur, (deposit, cap) in FX_FUNDS.items():
            self._fund(FX, cur, deposit, cap)
        for (src, dst), (rate, spread) in RATES.items():
            s.post_fx_rate(FX, src, dst, rate, spread, 86_400)
        m.open_window = s.current_window().id

    def _fund(self, pid: str, cur: str, deposit: int, cap: int) -> None:
        self.s.deposit(pid, cur, deposit, f"dep-{pid}-{cur}")
        self.s.set_net_debit_cap(pid, cur, cap)
        m = self.m
        m.post(sch("reserve", cur), ("sett", pid, cur), deposit)
        m.deposits[cur] = m.deposits.get(cur, 0) + deposit
        m.post(sch("cap_line", cur), pos(pid, cur), cap)
        m.caps[(pid, cur)] = cap

    def _id(self, kind: str) -> str:
        self.n += 1
        return f"{kind}-{self.n}"

    def now(self) -> int:
        return self.clock.now_ns()

    # ------------------------------------------------------------------ the call harness
    def call(self, expect: Expect, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; it must fail with one of ``expect.errors`` (and change nothing, or
        exactly ``expect.effect``), or succeed if none is expected. Returns the result, or
        None when it failed."""
        before = snapshot(self.s) if expect.errors and expect.effect is None else None
        try:
            result = fn()
        except pe.PaymentError as exc:
            assert expect.errors, f"refused, the model expected success: {exc!r}"
            assert isinstance(exc, expect.errors), f"{exc!r}, expected one of {expect.errors}"
            if expect.effect is not None:
                expect.effect()
            else:
                after = snapshot(self.s)
                for part in ("liquidity", "tables", "accounts", "ledgers"):
                    assert after[part] == before[part], f"refused {exc!r} changed {part}"
            return None
        assert not expect.errors, f"succeeded, the model expected {expect.errors}: {result!r}"
        return result

    # ------------------------------------------------------------------ quotes
    def _parties(self, data: s.DataObject) -> tuple[str, str]:
        payer = data.draw(s.sampled_from(sorted(BANKS)), label="payer")
        others = [p for p in sorted(BANKS) if p != payer]
        onus = data.draw(s.integers(0, 9), label="on-us if 0") == 0
        payee = payer if onus else data.draw(s.sampled_from(others), label="payee")
        return payer, payee

    @rule(
        data=s.data(),
        send=s.booleans(),
        amount=s.integers(1, 150_000),
        ttl=s.sampled_from([5, 30, 120]),
    )
    def quote(self, data: s.DataObject, send: bool, amount: int, ttl: int) -> None:
        self._quote(*self._parties(data), send, amount, ttl)

    @rule(
        data=s.data(),
        send=s.booleans(),
        amount=s.integers(1, 150_000),
        ttl=s.sampled_from([5, 30, 120]),
        accept_first=s.booleans(),
        transfer_ttl=s.sampled_from([5, 30, 120]),
        then=s.sampled_from(["wait", "commit", "reject"]),
    )
    def pay(
        self,
        data: s.DataObject,
        send: bool,
        amount: int,
        ttl: int,
        accept_first: bool,
        transfer_ttl: int,
        then: str,
    ) -> None:
        """Quote, perhaps accept, prepare, and perhaps decide, one after the other."""
        q = self._quote(*self._parties(data), send, amount, ttl)
        if q is None:
            return
        if accept_first:
            self._accept(q)
        t = self._prepare(q, transfer_ttl)
        if t is not None and then != "wait":
            self._decide(t, then == "commit")

    def _quote(self, payer: str, payee: str, send: bool, amount: int, ttl: int) -> MQuote | None:
        m = self.m
        src, dst = currency_of(payer), currency_of(payee)
        if not send and dst == "MYR":
            amount = amount // 5 + 1  # MYR minor units: keep RECEIVE amounts comparable
        errors: list[type[Exception]] = []
        if not m.active[payer] or not m.active[payee]:
            errors.append(pe.ParticipantSuspended)
        elif payer == payee:
            errors.append(pe.InvalidPaymentInput)
        elif src != dst and not m.active[FX]:
            errors.append(pe.NoFxRate)
        total = fee = received = 0
        if not errors:
            if send:
                fee = fee_of(amount)
                principal = amount - fee
                received = to_target(principal, src, dst) if src != dst else principal
                total = amount
            else:
                received = amount
                principal = to_source(amount, src, dst) if src != dst else amount
                fee = fee_of(principal)
                total = principal + fee
            if received <= 0:
                errors.append(pe.InvalidPaymentInput)
        qid = self._id("q")
        got = self.call(
            Expect(tuple(errors)),
            lambda: self.s.create_quote(
                payer, qid, "MSISDN", BANKS[payee][3], amount, "SEND" if send else "RECEIVE", src,
                ttl_s=ttl,
            ),
        )  # fmt: skip
        if got is None:
            return None
        assert (got.source_amount_minor, got.fee_minor, got.target_amount_minor) == (
            total,
            fee,
            received,
        )
        assert got.fx_provider == (FX if src != dst else None)
        q = MQuote(qid, payer, payee, src, dst, total, fee, received, self.now() + ttl * NS_PER_S)
        m.quotes.append(q)
        return q

    def _reservation_legs(self, q: MQuote) -> list[tuple[Key, Key, int]]:
        return [(pos(FX, q.target), sch("fx_reservation", q.target), q.received)]

    def _reservation_timeout_ns(self, q: MQuote) -> int:
        """Whole seconds to the quote's expiry, and the slack past it (``_acceptance``)."""
        seconds = -(-(q.expires_ns - self.now()) // NS_PER_S) + FX_RESERVATION_SLACK_S
        return seconds * NS_PER_S

    @precondition(lambda self: self.m.quotes)
    @rule(data=s.data())
    def accept(self, data: s.DataObject) -> None:
        self._accept(self._pick_quote(data))

    def _pick_quote(self, data: s.DataObject) -> MQuote:
        fresh = [q for q in self.m.quotes if q.state is not QuoteState.USED]
        if fresh and data.draw(s.integers(0, 4), label="any quote if 0"):
            return data.draw(s.sampled_from(fresh), label="fresh quote")
        return data.draw(s.sampled_from(self.m.quotes), label="quote")

    def _accept(self, q: MQuote) -> None:
        m = self.m
        now = self.now()
        errors: list[type[Exception]] = []
        # prepare's order: used, then expired (recorded so or not), then the rest
        if q.state is QuoteState.USED:
            errors.append(pe.InvalidState)
        elif q.state is QuoteState.EXPIRED or now >= q.expires_ns:
            errors.append(pe.QuoteExpired)
        elif q.state is QuoteState.ACCEPTED:
            # accepted again: so it stays, unless a party was suspended since
            if not m.active[q.payer] or not m.active[q.payee] or (q.cross and not m.active[FX]):
                errors.append(pe.ParticipantSuspended)
        elif not q.cross:
            if not m.active[q.payer] or not m.active[q.payee]:
                errors.append(pe.ParticipantSuspended)
        elif not m.active[FX] or not m.active[q.payer] or not m.active[q.payee]:
            errors.append(pe.ParticipantSuspended)
        else:
            held = sum(
                o.total
                for o in m.quotes
                if o.state is QuoteState.ACCEPTED
                and o.payer == q.payer
                and o.cross
                and o.source == q.source
                and o.expires_ns > now
            )
            # prepare's order: the FX provider's liquidity before the payer's cap
            if m.available(FX, q.target) < q.received:
                errors.append(pe.FxLiquidityExhausted)
            elif held + q.total > m.available(q.payer, q.source):
                errors.append(pe.NetDebitCapExceeded)
        got = self.call(Expect(tuple(errors)), lambda: self.s.accept_quote(q.payer, q.id))
        if got is None or q.state is QuoteState.ACCEPTED:
            return
        if q.cross:
            q.reservation = m.pend(self._reservation_legs(q), now + self._reservation_timeout_ns(q))
        q.state = QuoteState.ACCEPTED

    # ------------------------------------------------------------------ transfers
    def _legs(self, t_id: str, q: MQuote) -> list[tuple[Key, Key, int]]:
        legs = []
        if q.fee:
            legs.append((pos(q.payer, q.source), pos(SCHEME, q.source), q.fee))
        principal = q.total - q.fee
        if q.cross:
            legs.append((pos(q.payer, q.source), pos(FX, q.source), principal))
            legs.append((pos(FX, q.target), pos(q.payee, q.target), q.received))
        else:
            legs.append((pos(q.payer, q.source), pos(q.payee, q.target), principal))
        return legs

    @precondition(lambda self: self.m.quotes)
    @rule(data=s.data(), ttl=s.sampled_from([5, 30, 120]))
    def prepare(self, data: s.DataObject, ttl: int) -> None:
        self._prepare(self._pick_quote(data), ttl)

    def _prepare(self, q: MQuote, ttl: int) -> MTransfer | None:
        m = self.m
        now = self.now()
        errors: list[type[Exception]] = []
        if q.state is QuoteState.USED:
            errors.append(pe.InvalidState)
        elif q.state is QuoteState.EXPIRED or now >= q.expires_ns:
            errors.append(pe.QuoteExpired)
        elif not all(m.active[p] for p in (q.payer, q.payee, *([FX] if q.cross else []))):
            errors.append(pe.ParticipantSuspended)
        elif (
            q.cross
            and q.state is not QuoteState.ACCEPTED
            and m.available(FX, q.target) < q.received
        ):
            errors.append(pe.FxLiquidityExhausted)
        elif m.available(q.payer, q.source) < q.total:
            errors.append(pe.NetDebitCapExceeded)
        tid = self._id("t")
        got = self.call(
            Expect(tuple(errors)), lambda: self.s.prepare_transfer(q.payer, tid, q.id, ttl_s=ttl)
        )
        if got is None:
            return None
        assert got.state is TransferState.RESERVED
        if q.reservation is not None:
            m.resolve(q.reservation, post=False)
        q.state = QuoteState.USED
        p = m.pend(self._legs(tid, q), now + ttl * NS_PER_S)
        t = MTransfer(tid, q, now + ttl * NS_PER_S, p)
        m.transfers.append(t)
        return t

    def _expire(self, t: MTransfer) -> None:
        self.m.resolve(t.pend, post=False)
        t.state, t.reason = TransferState.ABORTED, "expired"

    @precondition(lambda self: self.m.transfers)
    @rule(data=s.data(), commit=s.booleans())
    def decide(self, data: s.DataObject, commit: bool) -> None:
        m = self.m
        open_ = [t for t in m.transfers if t.state is TransferState.RESERVED]
        if open_ and data.draw(s.integers(0, 4), label="any transfer if 0"):
            t = data.draw(s.sampled_from(open_), label="open transfer")
        else:
            t = data.draw(s.sampled_from(m.transfers), label="transfer")
        self._decide(t, commit)

    def _decide(self, t: MTransfer, commit: bool) -> None:
        m = self.m
        q = t.q
        expect = Expect()
        others = [q.payer, *([FX] if q.cross else [])]
        # the service's order: an expiry (recorded, or due and recorded now) first, then a
        # suspended payee's commit (it may still give the funds back), then the state
        if t.state is TransferState.ABORTED and t.reason == "expired":
            expect = Expect((pe.TransferExpired,))
        elif t.state is TransferState.RESERVED and self.now() >= t.expires_ns:
            expect = Expect((pe.TransferExpired,), lambda: self._expire(t))
        elif commit and t.state is TransferState.ABORTED and t.reason == "suspended":
            expect = Expect((pe.ParticipantSuspended,))  # a retry told as the first commit was
        elif commit and not m.active[q.payee]:
            expect = Expect((pe.ParticipantSuspended,))
        elif t.state is not TransferState.RESERVED:
            expect = Expect((pe.InvalidState,))
        elif commit and not all(m.active[p] for p in others):

            def suspended() -> None:
                m.resolve(t.pend, post=False)
                t.state, t.reason = TransferState.ABORTED, "suspended"

            expect = Expect((pe.ParticipantSuspended,), suspended)
        if commit:
            got = self.call(expect, lambda: self.s.commit_transfer(q.payee, t.id))
        else:
            got = self.call(expect, lambda: self.s.reject_transfer(q.payee, t.id, "no"))
        if got is None:
            return
        m.resolve(t.pend, post=commit)
        if commit:
            t.state, t.window = TransferState.COMMITTED, m.open_window
            m.move(q.payer, q.source, q.total, 0)
            if q.fee:
                m.move(SCHEME, q.source, 0, q.fee)
            if q.cross:
                m.move(FX, q.source, 0, q.total - q.fee)
                m.move(FX, q.target, q.received, 0)
            m.move(q.payee, q.target, 0, q.received)
        else:
            t.state, t.reason = TransferState.ABORTED, "no"
        assert got.state is t.state

    # ------------------------------------------------------------------ time
    @rule(seconds=s.sampled_from([0, 1, 4, 5, 29, 30, 31, 60, 119, 120, 200]), run=s.booleans())
    def advance(self, seconds: int, run: bool) -> None:
        """The clock moves; the ledger voids what fell due; the deadline pass runs or not."""
        self.clock.advance(seconds, ns=TICK_NS)
        self.ledger.expire_pending()
        now = self.now()
        for p in list(self.m.pendings):
            if now >= p.expires_ns:
                self.m.resolve(p, post=False)
        if run:
            self.deadlines()

    def deadlines(self) -> None:
        m = self.m
        now = self.now()
        escrows = self._due_escrows()
        done = self.s.process_deadlines()
        quotes = [q for q in m.quotes if q.state in _OPEN_QUOTE and q.expires_ns <= now]
        transfers = [
            t for t in m.transfers if t.state is TransferState.RESERVED and t.expires_ns <= now
        ]
        for q in quotes:
            q.state = QuoteState.EXPIRED
            if q.reservation is not None:
                m.resolve(q.reservation, post=False)
        for t in transfers:
            self._expire(t)
        acted = 0
        for e in escrows:
            to = e.payee if e.release_on_deadline else e.payer
            if m.active[to]:
                self._escrow_move(e, e.held, release=e.release_on_deadline)
                acted += 1
        assert done == {
            "quotes_expired": len(quotes),
            "transfers_aborted": len(transfers),
            "escrows_resolved": acted,
            "escrows_failed": len(escrows) - acted,
        }

    # ------------------------------------------------------------------ participants
    @rule(pid=s.sampled_from([*sorted(BANKS), FX]), active=s.booleans())
    def set_active(self, pid: str, active: bool) -> None:
        m = self.m
        self.s.set_active(pid, active)
        if m.active[pid] and not active:
            # its accepted cross-currency quotes, as payer or payee, end and free their FX
            # reservations (the provider's own suspension ends none)
            now = self.now()
            for q in m.quotes:
                if (
                    q.state is QuoteState.ACCEPTED
                    and q.cross
                    and q.expires_ns > now
                    and pid in (q.payer, q.payee)
                ):
                    q.state = QuoteState.EXPIRED
                    if q.reservation is not None:
                        m.resolve(q.reservation, post=False)
        m.active[pid] = active

    @rule(pid=s.sampled_from(sorted(BANKS)), cap=s.integers(0, 120_000))
    def set_cap(self, pid: str, cap: int) -> None:
        m = self.m
        cur = currency_of(pid)
        was = m.caps[(pid, cur)]
        errors: tuple[type[Exception], ...] = ()
        if cap > m.b(("sett", pid, cur)).net or was - cap > m.available(pid, cur):
            errors = (pe.NetDebitCapExceeded,)
        if self.call(Expect(errors), lambda: self.s.set_net_debit_cap(pid, cur, cap)) is None:
            return
        if cap > was:
            m.post(sch("cap_line", cur), pos(pid, cur), cap - was)
        elif cap < was:
            m.post(pos(pid, cur), sch("cap_line", cur), was - cap)
        m.caps[(pid, cur)] = cap

    @rule(pid=s.sampled_from(sorted(BANKS)), amount=s.integers(1, 50_000))
    def deposit(self, pid: str, amount: int) -> None:
        cur = currency_of(pid)
        self.s.deposit(pid, cur, amount, self._id("dep"))
        self.m.post(sch("reserve", cur), ("sett", pid, cur), amount)
        self.m.deposits[cur] += amount

    # ------------------------------------------------------------------ escrow
    @rule(
        data=s.data(),
        amount=s.integers(1, 60_000),
        deadline=s.sampled_from([5, 30, 120]),
        release=s.booleans(),
        by_scheme=s.booleans(),
    )
    def escrow_create(
        self, data: s.DataObject, amount: int, deadline: int, release: bool, by_scheme: bool
    ) -> None:
        m = self.m
        payer = data.draw(s.sampled_from(sorted(BANKS)), label="payer")
        cur = currency_of(payer)
        payees = [p for p in [*sorted(BANKS), FX] if p != payer and cur in held_currencies(p)]
        payee = data.draw(s.sampled_from(payees), label="payee")
        controller = SCHEME if by_scheme else payer
        errors: tuple[type[Exception], ...] = ()
        if not m.active[payer] or not m.active[payee]:
            errors = (pe.ParticipantSuspended,)
        elif m.available(payer, cur) < amount:
            errors = (pe.NetDebitCapExceeded,)
        eid = self._id("e")
        got = self.call(
            Expect(errors),
            lambda: self.s.create_escrow(
                payer, eid, payee, cur, amount, "order", deadline,
                "release" if release else "refund", controller=controller,
            ),
        )  # fmt: skip
        if got is None:
            return
        m.post(pos(payer, cur), sch("escrow", cur), amount)
        m.move(payer, cur, amount, 0)
        due = self.now() + deadline * NS_PER_S
        m.escrows.append(MEscrow(eid, payer, payee, controller, cur, amount, due, release))

    def _escrow_move(self, e: MEscrow, amount: int, *, release: bool) -> None:
        to = e.payee if release else e.payer
        self.m.post(sch("escrow", e.currency), pos(to, e.currency), amount)
        self.m.move(to, e.currency, 0, amount)
        if release:
            e.released += amount
        else:
            e.refunded += amount

    def _due_escrows(self) -> list[MEscrow]:
        return [e for e in self.m.escrows if e.held and e.deadline_ns <= self.now()]

    def _escrow_decision(self, e: MEscrow, caller: str, moves: list[tuple[int, bool]]) -> Expect:
        """What a decision of ``caller`` moving ``moves`` (amount, release) should do."""
        m = self.m
        if caller != e.controller:
            return Expect((pe.NotYours,))
        if not e.held:
            return Expect((pe.InvalidState,))
        if self.now() >= e.deadline_ns:
            to = e.payee if e.release_on_deadline else e.payer
            if m.active[to]:
                return Expect(
                    (pe.InvalidState,),
                    lambda: self._escrow_move(e, e.held, release=e.release_on_deadline),
                )
        if not m.active[caller] and any(release for _, release in moves):
            return Expect((pe.ParticipantSuspended,))  # a suspended controller only refunds
        if sum(a for a, _ in moves) > e.held:
            return Expect((pe.InsufficientEscrow,))
        for _, release in moves:
            if not m.active[e.payee if release else e.payer]:
                return Expect((pe.ParticipantSuspended,))
        return Expect()

    @precondition(lambda self: self.m.escrows)
    @rule(data=s.data(), release=s.booleans(), part=s.integers(1, 4), who=s.integers(0, 9))
    def escrow_decide(self, data: s.DataObject, release: bool, part: int, who: int) -> None:
        held = [e for e in self.m.escrows if e.held]
        if held and data.draw(s.integers(0, 4), label="any escrow if 0"):
            e = data.draw(s.sampled_from(held), label="held escrow")
        else:
            e = data.draw(s.sampled_from(self.m.escrows), label="escrow")
        amount = max(1, e.held * part // 4) if e.held else 1
        caller = e.payee if who == 0 else e.controller
        expect = self._escrow_decision(e, caller, [(amount, release)])
        move = self.s.release_escrow if release else self.s.refund_escrow
        if self.call(expect, lambda: move(caller, e.id, amount)) is not None:
            self._escrow_move(e, amount, release=release)

    @precondition(lambda self: self.m.escrows)
    @rule(data=s.data(), rel=s.integers(0, 3), ref=s.integers(0, 3))
    def escrow_split(self, data: s.DataObject, rel: int, ref: int) -> None:
        e = data.draw(s.sampled_from(self.m.escrows), label="escrow")
        a, b = e.held * rel // 4, e.held * ref // 4
        if a + b == 0:
            return
        moves = [(x, r) for x, r in ((a, True), (b, False)) if x]
        expect = self._escrow_decision(e, e.controller, moves)
        if self.call(expect, lambda: self.s.split_escrow(e.controller, e.id, a, b)) is None:
            return
        for x, r in moves:
            self._escrow_move(e, x, release=r)

    # ------------------------------------------------------------------ bulk
    @rule(
        payer=s.sampled_from(sorted(BANKS)),
        items=s.lists(
            s.tuples(s.sampled_from([*sorted(BANKS), "nobody"]), s.integers(1, 40_000)),
            min_size=1,
            max_size=5,
        ),
    )
    def bulk(self, payer: str, items: list[tuple[str, int]]) -> None:
        m = self.m
        cur = currency_of(payer)
        errors: tuple[type[Exception], ...] = () if m.active[payer] else (pe.ParticipantSuspended,)
        ids = [self._id("b") for _ in items]
        bulk = [
            BulkItem(tid, "MSISDN", BANKS[p][3] if p in BANKS else "+250788999999", amount)
            for tid, (p, amount) in zip(ids, items, strict=True)
        ]
        # each item in order, as its fee and payment legs in one linked chain would post
        want: list[TransferState] = []
        paid: list[tuple[str, str, int, int]] = []
        avail = m.available(payer, cur)
        for tid, (p, amount) in zip(ids, items, strict=True):
            fee = fee_of(amount)
            ok = (
                p in BANKS
                and currency_of(p) == cur
                and p != payer
                and m.active[p]
                and amount + fee <= avail
            )
            if ok:
                avail -= amount + fee
                paid.append((tid, p, amount, fee))
            want.append(TransferState.COMMITTED if ok else TransferState.ABORTED)
        got = self.call(Expect(errors), lambda: bulk_transfers(self.s, payer, ids[0], cur, bulk))
        if got is None:
            return
        assert [r.state for r in got] == want, got
        for tid, p, amount, fee in paid:
            m.post(pos(payer, cur), pos(p, cur), amount)
            m.move(payer, cur, amount + fee, 0)
            m.move(p, cur, 0, amount)
            if fee:
                m.post(pos(payer, cur), pos(SCHEME, cur), fee)
                m.move(SCHEME, cur, 0, fee)
            m.bulk_items[tid] = payer

    # ------------------------------------------------------------------ settlement
    @precondition(lambda self: self.m.closed_window is None)
    @rule()
    def close_window(self) -> None:
        m = self.m
        errors = (pe.InvalidState,) if m.closed_window is not None else ()
        w = self.call(Expect(errors), lambda: self.s.close_window())
        if w is None:
            return
        assert w.id == m.open_window
        gross = m.gross.get(w.id, {})
        want = {}
        for (pid, cur), cap in m.caps.items():
            b = m.b(pos(pid, cur))
            net = b.net - cap
            assert net == m.unsettled.get((pid, cur), 0), (pid, cur, "model")
            sent, received = gross.get((pid, cur), (0, 0))
            if net or sent or received:
                want[(pid, cur)] = (sent, received, net)
        seen = {
            (p.participant_id, p.currency): (p.sent_minor, p.received_minor, p.net_minor)
            for p in w.positions
        }
        assert seen == want
        for cur in CURRENCIES:
            # the nets, what escrow holds and what past settlements carried sum to zero
            nets = sum(v[2] for (_, c), v in want.items() if c == cur)
            carried = m.b(sch("position_reset", cur)).net + m.b(sch("escrow", cur)).net
            assert nets + carried == 0, cur
        m.closed_window = w.id
        m.open_window = self.s.current_window().id
        assert m.open_window > w.id

    @precondition(lambda self: self.m.closed_window is not None)
    @rule()
    def settle_window(self) -> None:
        m = self.m
        wid = m.closed_window
        assert wid is not None
        w = self.s.get_window(wid)
        want_settled = {}
        want_caps = dict(m.caps)
        for p in w.positions:
            key = (p.participant_id, p.currency)
            cur = p.currency
            b = m.b(pos(*key))
            sett = ("sett", *key)
            amount = 0
            if p.net_minor < 0:
                amount = -p.net_minor
                cover = max(0, m.b(sett).net - amount)
                lower = 0
                if p.participant_id != SCHEME:
                    lower = min(max(0, m.caps[key] - cover), amount)
                m.post(sett, sch("settlement_hub", cur), amount)
                m.post(sch("position_reset", cur), pos(*key), amount)
                if lower:
                    m.post(pos(*key), sch("cap_line", cur), lower)
                    want_caps[key] = m.caps[key] - lower
                m.unsettled[key] = m.unsettled.get(key, 0) + amount
            elif p.net_minor > 0:
                amount = min(p.net_minor, max(0, b.net - b.dp))
                m.post(sch("settlement_hub", cur), sett, amount)
                m.post(pos(*key), sch("position_reset", cur), amount)
                m.unsettled[key] = m.unsettled.get(key, 0) - amount
            want_settled[key] = amount
        done = self.s.settle_window(SCHEME, wid)
        assert {(p.participant_id, p.currency): p.settled_minor for p in done.positions} == (
            want_settled
        )
        m.caps = want_caps
        m.closed_window = None

    # ------------------------------------------------------------------ invariants
    @invariant()
    def ledger_agrees(self) -> None:
        m = self.m
        report = self.ledger.check_invariants()
        assert report.ok, report.violations
        ids: dict[int, Key] = {}
        for p in self.s.list_participants():
            for cur, pc in p.currencies.items():
                ids[pc.position_account] = pos(p.id, cur)
                ids[pc.settlement_account] = ("sett", p.id, cur)
                assert pc.net_debit_cap_minor == m.caps[(p.id, cur)], (p.id, cur)
            assert p.active == m.active[p.id], p.id
        for cur in CURRENCIES:
            for kind in SCHEME_KINDS:
                ids[ledger_id("scheme-account", cur, kind)] = sch(kind, cur)
        seen = {}
        for a in self.ledger.lookup_accounts(list(ids)):
            key = ids[a.id]
            seen[key] = Bal(a.credits_posted - a.debits_posted, a.debits_pending, a.credits_pending)
        want = {k: m.bal.get(k, Bal()) for k in ids.values()}
        assert {k: v for k, v in seen.items() if v != want[k]} == {}, {
            k: want[k] for k, v in seen.items() if v != want[k]
        }
        for cur in CURRENCIES:
            # central bank money: only deposits make it, and it stays in settlement accounts
            # or in the settlement hub
            money = sum(v.net for k, v in seen.items() if k[0] == "sett" and k[2] == cur)
            money += seen[sch("settlement_hub", cur)].net
            assert money == m.deposits[cur] == -seen[sch("reserve", cur)].net, cur
            assert seen[sch("escrow", cur)].net == sum(
                e.held for e in m.escrows if e.currency == cur
            )
        for (pid, cur), cap in m.caps.items():
            b = seen[pos(pid, cur)]
            # what it sent net, plus what is reserved, within its net debit cap
            assert (cap - b.net) + b.dp <= cap, (pid, cur)

    @invariant()
    def states_agree(self) -> None:
        m = self.m
        now = self.now()
        for q in m.quotes:
            state = q.state
            if state in _OPEN_QUOTE and now >= q.expires_ns:
                state = QuoteState.EXPIRED  # read so before the deadline pass records it
            assert self.s.get_quote(q.payer, q.id).state is state, q.id
        for t in m.transfers:
            got = self.s.get_transfer(SCHEME, t.id)
            state, reason = t.state, t.reason
            if state is TransferState.RESERVED and now >= t.expires_ns:
                state, reason = TransferState.ABORTED, "expired"
            assert got.state is state, (t.id, got)
            if state is TransferState.ABORTED and reason == "expired":
                assert got.reason == "expired"
            assert got.window_id == t.window, t.id
            if t.q.cross and t.state is not TransferState.RESERVED:
                # both currency legs posted, or neither
                legs = [ledger_id("leg1", t.id), ledger_id("leg2", t.id)]
                posts = self.ledger.lookup_transfers([ledger_id("commit", str(i)) for i in legs])
                assert len(posts) in (0, 2), t.id
                assert (len(posts) == 2) == (t.state is TransferState.COMMITTED), t.id
        for tid, payer in m.bulk_items.items():
            assert self.s.get_transfer(payer, tid).state is TransferState.COMMITTED
        for e in m.escrows:
            got = self.s.get_escrow(e.controller, e.id)
            released, refunded = e.released, e.refunded
            if (
                e.held
                and now >= e.deadline_ns
                and m.active[e.payee if e.release_on_deadline else e.payer]
            ):
                # read as the deadline decided it, before the pass records it
                if e.release_on_deadline:
                    released += e.held
                else:
                    refunded += e.held
            assert (got.released_minor, got.refunded_minor) == (released, refunded), e.id
            assert got.released_minor + got.refunded_minor <= got.amount_minor
            held = released + refunded < e.amount
            assert got.state is (EscrowState.HELD if held else EscrowState.CLOSED), e.id


_OPEN_QUOTE = (QuoteState.QUOTED, QuoteState.ACCEPTED)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_scheme_agrees_with_its_model_under_random_interleavings(backend: str) -> None:
    machine = type(f"SchemeMachine_{backend}", (SchemeMachine,), {"backend": backend})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=25 if backend == "sqlite" else 8,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
