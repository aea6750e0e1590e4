"""The ledger demo: a small cross-border payment network, driven by a seeded stream of transfers.

Per currency (the seed network's CNY, MYR, EUR, RWF, ETB, plus USD) the scheme operator holds a
settlement account and a fee account; participants (banks, wallets) hold position accounts that
may not go below zero (``debits_must_not_exceed_credits``); merchants hold accounts that may not
go below zero either. The operator funds the participants, then a stream of transfers runs in
batches through :meth:`Ledger.create_transfers`: payments (some with a linked fee), pending
payments later posted in full or in part, voided or left to expire, refunds, balancing payouts,
top-ups, replays of earlier ids, and payments too large for the payer, which fail on its limit.

The run replays exactly for a seed: randomness comes from ``random.Random(seed)`` and time from
the injected :class:`FakeClock`. Alongside the ledger's own invariant check the demo keeps its
own reference model (balances as the sum of the transfers it saw succeed) and compares.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from entrepot.kernel.clock import FakeClock
from entrepot.kernel.limits import AMOUNT_MAX, BATCH_EVENTS_MAX
from entrepot.kernel.money import get_currency
from entrepot.ledger import (
    AMOUNT_FULL,
    Account,
    AccountFlags,
    CreateTransferResult,
    Ledger,
    Transfer,
    TransferFlags,
    ledger_for_currency,
)

CURRENCIES = ("CNY", "MYR", "EUR", "RWF", "ETB", "USD")
#: Local units per US dollar, in thousandths: only to give amounts a local size (not FX).
UNITS_PER_USD_MILLI = {
    "CNY": 7_200,
    "MYR": 4_500,
    "EUR": 920,
    "RWF": 1_350_000,
    "ETB": 120_000,
    "USD": 1_000,
}
PARTICIPANTS_PER_CURRENCY = 3
MERCHANTS_PER_CURRENCY = 5
TRANSFERS_DEFAULT = 20_000
BATCH_SIZE_DEFAULT = 500
SEED_DEFAULT = 42
#: Opening liquidity of each participant, and of each top-up, in US cents (sized per currency).
FUNDING_USD_CENTS = 2_000_000
TOP_UP_USD_CENTS = 500_000
#: A payment this large always exceeds the payer's position: the limit must refuse it.
OVERSIZE_USD_CENTS = 1_000_000_000
PENDING_TIMEOUTS_S = (30, 120, 600)
#: Simulated time between two events, in milliseconds.
EVENT_GAP_MS = (1, 100)
FEE_BASIS_POINTS = 80
#: Earlier transfers kept to be replayed (their ids resent with the same payload).
REPLAYABLE_MAX = 4_096

# Account codes and transfer codes (what kind of thing an account or a movement is).
CODE_SETTLEMENT, CODE_FEES, CODE_POSITION, CODE_MERCHANT = 1, 2, 10, 20
T_FUNDING, T_PAYMENT, T_FEE, T_REFUND, T_PAYOUT, T_TOP_UP = 1, 2, 3, 4, 5, 6

#: Relative weights of the stream's events.
EVENT_WEIGHTS = {
    "payment": 54,
    "payment_with_fee": 10,
    "oversize_payment": 1,
    "pending": 12,
    "resolve": 12,
    "refund": 4,
    "payout": 4,
    "top_up": 1,
    "replay": 1,
    "resolve_again": 1,
}

POSTING_LIMIT = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
RESOLVE_FLAGS = int(TransferFlags.POST_PENDING_TRANSFER | TransferFlags.VOID_PENDING_TRANSFER)
OK = CreateTransferResult.OK
EXISTS = CreateTransferResult.EXISTS
EXPIRED = CreateTransferResult.PENDING_TRANSFER_EXPIRED


ledger_number = ledger_for_currency


@dataclass(frozen=True, slots=True)
class DemoAccount:
    id: int
    currency: str
    ledger: int
    kind: str  # settlement | fees | participant | merchant
    name: str
    flags: int


@dataclass(frozen=True, slots=True)
class DemoCheck:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class DemoReport:
    seed: int
    transfers: int
    batches: int
    setup_results: dict[str, int]
    result_counts: dict[str, int]
    end_of_day_results: dict[str, int]
    expired: int
    accounts: list[tuple[DemoAccount, Account]]
    checks: list[DemoCheck]
    started_ns: int
    finished_ns: int

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


class _Pending(NamedTuple):
    id: int
    debit_account_id: int
    credit_account_id: int
    amount: int


class _Planned(NamedTuple):
    transfer: Transfer
    pending: _Pending | None  # the pending transfer this one creates or resolves
    #: Part of a linked chain. A replayed chain answers ``exists`` for its first event and
    #: ``linked_event_failed`` for the rest (TigerBeetle's rule), so chains are not replayed.
    in_chain: bool = False


ProgressCallback = Callable[[int, int], None]


def build_network(currencies: Sequence[str] = CURRENCIES) -> list[DemoAccount]:
    """Account ids read as ``<ledger><kind><n>``: 978011 is EUR participant 1."""
    return [account for code in currencies for account in _currency_network(code)]


def _currency_network(code: str) -> list[DemoAccount]:
    ledger = ledger_number(code)
    base = ledger * 1_000
    history = int(AccountFlags.HISTORY)
    accounts = [
        DemoAccount(base + 1, code, ledger, "settlement", f"{code} operator settlement", 0),
        DemoAccount(base + 2, code, ledger, "fees", f"{code} operator fees", history),
    ]
    for n in range(1, PARTICIPANTS_PER_CURRENCY + 1):
        name = f"{code} participant {n}"
        accounts.append(
            DemoAccount(base + 10 + n, code, ledger, "participant", name, POSTING_LIMIT)
        )
    for n in range(1, MERCHANTS_PER_CURRENCY + 1):
        flags = POSTING_LIMIT | (history if n == 1 else 0)
        accounts.append(
            DemoAccount(base + 20 + n, code, ledger, "merchant", f"{code} merchant {n}", flags)
        )
    return accounts


def _account_code(kind: str) -> int:
    return {
        "settlement": CODE_SETTLEMENT,
        "fees": CODE_FEES,
        "participant": CODE_POSITION,
        "merchant": CODE_MERCHANT,
    }[kind]


def local_amount(usd_cents: int, currency: str) -> int:
    """Minor units of ``currency`` worth about ``usd_cents`` (integer arithmetic, at least 1)."""
    cur = get_currency(currency)
    scale: int = 10**cur.exponent
    minor = usd_cents * UNITS_PER_USD_MILLI[currency] * scale // 100_000
    return max(1, minor)


class _Simulation:
    def __init__(self, ledger: Ledger, clock: FakeClock, seed: int, batch_size: int) -> None:
        self.ledger = ledger
        self.clock = clock
        self.rng = random.Random(seed)
        # Ids live in a per-seed range, so runs with other seeds on a kept database never clash.
        self.next_id = (random.Random(f"ids:{seed}").getrandbits(62) + 1) << 64
        self.batch_size = batch_size
        self.network = build_network()
        self.by_currency: dict[str, dict[str, list[DemoAccount]]] = {}
        for a in self.network:
            self.by_currency.setdefault(a.currency, {}).setdefault(a.kind, []).append(a)
        self.reference: dict[int, list[int]] = {}
        self.open: list[_Pending] = []
        self.closed: list[_Pending] = []
        self.booked: set[int] = set()  # pending transfers this run created
        self.replayable: list[Transfer] = []
        self.event_names = list(EVENT_WEIGHTS)
        self.event_weights = list(EVENT_WEIGHTS.values())

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    # ------------------------------------------------------------------ setup
    def setup(self) -> Counter[str]:
        results: Counter[str] = Counter()
        for code in CURRENCIES:
            self.ledger.define_ledger(ledger_number(code), code)
        accounts = [Account(a.id, a.ledger, _account_code(a.kind), a.flags) for a in self.network]
        results.update(str(r) for r in self.ledger.create_accounts(accounts))
        funding = []
        for code, kinds in self.by_currency.items():
            settlement = kinds["settlement"][0]
            for p in kinds["participant"]:
                amount = local_amount(FUNDING_USD_CENTS, code)
                funding.append(
                    Transfer(
                        self.new_id(),
                        settlement.id,
                        p.id,
                        amount,
                        ledger=settlement.ledger,
                        code=T_FUNDING,
                    )
                )
        results.update(str(r) for r in self.ledger.create_transfers(funding))
        for a in self.ledger.lookup_accounts([a.id for a in self.network]):
            self.reference[a.id] = [
                a.debits_pending,
                a.debits_posted,
                a.credits_pending,
                a.credits_posted,
            ]
        return results

    # ------------------------------------------------------------------ events
    def _pick(self, currency: str, kind: str) -> DemoAccount:
        return self.rng.choice(self.by_currency[currency][kind])

    def _payment_amount(self, currency: str) -> int:
        usd_cents = min(int(self.rng.lognormvariate(7.8, 1.0)), 500_000)
        return local_amount(usd_cents, currency)

    def _transfer(
        self,
        dr: DemoAccount,
        cr: DemoAccount,
        amount: int,
        code: int,
        flags: int = 0,
        timeout: int = 0,
    ) -> Transfer:
        return Transfer(
            self.new_id(),
            dr.id,
            cr.id,
            amount,
            timeout=timeout,
            ledger=dr.ledger,
            code=code,
            flags=flags,
        )

    def plan_event(self, room: int) -> list[_Planned]:
        """One event of the stream: one transfer, or two for a payment with a linked fee."""
        name = self.rng.choices(self.event_names, self.event_weights)[0]
        currency = self.rng.choice(CURRENCIES)
        if name == "payment_with_fee" and room < 2:
            name = "payment"
        if name == "resolve" and not self.open:
            name = "pending"
        if name == "resolve_again" and not self.closed:
            name = "payment"
        if name == "replay" and not self.replayable:
            name = "payment"
        return getattr(self, f"_plan_{name}")(currency)  # type: ignore[no-any-return]

    def _plan_payment(self, currency: str) -> list[_Planned]:
        payer, merchant = self._pick(currency, "participant"), self._pick(currency, "merchant")
        amount = self._payment_amount(currency)
        return [_Planned(self._transfer(payer, merchant, amount, T_PAYMENT), None)]

    def _plan_oversize_payment(self, currency: str) -> list[_Planned]:
        payer, merchant = self._pick(currency, "participant"), self._pick(currency, "merchant")
        amount = local_amount(OVERSIZE_USD_CENTS, currency)
        return [_Planned(self._transfer(payer, merchant, amount, T_PAYMENT), None)]

    def _plan_payment_with_fee(self, currency: str) -> list[_Planned]:
        payer, merchant = self._pick(currency, "participant"), self._pick(currency, "merchant")
        fees = self.by_currency[currency]["fees"][0]
        amount = self._payment_amount(currency)
        if self.rng.random() < 0.05:  # too large: the payment fails, and with it the fee
            amount = local_amount(OVERSIZE_USD_CENTS, currency)
        fee = max(1, amount * FEE_BASIS_POINTS // 10_000)
        linked = int(TransferFlags.LINKED)
        return [
            _Planned(self._transfer(payer, merchant, amount, T_PAYMENT, linked), None, True),
            _Planned(self._transfer(merchant, fees, fee, T_FEE), None, True),
        ]

    def _plan_pending(self, currency: str) -> list[_Planned]:
        payer, merchant = self._pick(currency, "participant"), self._pick(currency, "merchant")
        amount = self._payment_amount(currency)
        timeout = self.rng.choice(PENDING_TIMEOUTS_S)
        t = self._transfer(payer, merchant, amount, T_PAYMENT, int(TransferFlags.PENDING), timeout)
        return [_Planned(t, _Pending(t.id, payer.id, merchant.id, amount))]

    def _plan_resolve(self, currency: str) -> list[_Planned]:
        p = self.open.pop(self.rng.randrange(len(self.open)))
        roll = self.rng.random()
        if roll < 0.65:
            amount, flags = AMOUNT_FULL, TransferFlags.POST_PENDING_TRANSFER
        elif roll < 0.8:
            amount, flags = self.rng.randint(1, p.amount), TransferFlags.POST_PENDING_TRANSFER
        else:
            amount, flags = 0, TransferFlags.VOID_PENDING_TRANSFER
        t = Transfer(self.new_id(), amount=amount, pending_id=p.id, flags=int(flags))
        return [_Planned(t, p)]

    def _plan_resolve_again(self, currency: str) -> list[_Planned]:
        p = self.rng.choice(self.closed)
        flags = int(TransferFlags.VOID_PENDING_TRANSFER)
        return [_Planned(Transfer(self.new_id(), pending_id=p.id, flags=flags), None)]

    def _plan_refund(self, currency: str) -> list[_Planned]:
        merchant, payer = self._pick(currency, "merchant"), self._pick(currency, "participant")
        amount = self._payment_amount(currency) * self.rng.choice((1, 1, 1, 20))
        return [_Planned(self._transfer(merchant, payer, amount, T_REFUND), None)]

    def _plan_payout(self, currency: str) -> list[_Planned]:
        """Sweep what a merchant holds to its bank: a balancing debit of at most everything."""
        merchant, bank = self._pick(currency, "merchant"), self._pick(currency, "participant")
        flags = int(TransferFlags.BALANCING_DEBIT)
        return [_Planned(self._transfer(merchant, bank, AMOUNT_MAX, T_PAYOUT, flags), None)]

    def _plan_top_up(self, currency: str) -> list[_Planned]:
        settlement = self.by_currency[currency]["settlement"][0]
        bank = self._pick(currency, "participant")
        amount = local_amount(TOP_UP_USD_CENTS, currency)
        return [_Planned(self._transfer(settlement, bank, amount, T_TOP_UP), None)]

    def _plan_replay(self, currency: str) -> list[_Planned]:
        """The same id and payload again: the ledger answers ``exists``, changing nothing."""
        return [_Planned(self.rng.choice(self.replayable), None)]

    # ------------------------------------------------------------------ running
    def plan_batch(self, remaining: int) -> list[_Planned]:
        batch: list[_Planned] = []
        limit = min(remaining, self.batch_size)
        while len(batch) < limit:
            batch.extend(self.plan_event(limit - len(batch)))
            self.clock.advance(ns=self.rng.randint(*EVENT_GAP_MS) * 1_000_000)
        return batch

    def submit(self, batch: Sequence[_Planned]) -> list[str]:
        results = [str(r) for r in self.ledger.create_transfers([p.transfer for p in batch])]
        balancing = [
            p.transfer.id
            for p, r in zip(batch, results, strict=True)
            if r == OK and p.transfer.flags & TransferFlags.BALANCING_DEBIT
        ]
        actual = {t.id: t.amount for t in self.ledger.lookup_transfers(balancing)}
        for p, result in zip(batch, results, strict=True):
            self.apply(p, result, actual.get(p.transfer.id, p.transfer.amount))
        return results

    def apply(self, planned: _Planned, result: str, amount: int) -> None:
        """Book a result in the reference model and in the sim's view of pending transfers.

        ``exists`` (a replay, or a rerun of a kept database) changes no balance, but the sim
        follows it like ``ok`` so that a rerun with the same seed replays the same stream.
        """
        t, p, in_chain = planned
        known = result in (OK, EXISTS)
        if t.flags & RESOLVE_FLAGS:
            if p is not None:
                self._resolved(t, p, result)
            return
        if known and p is not None:  # a new pending transfer
            self.open.append(p)
            if result == OK:
                self.booked.add(p.id)
                self._move(t.debit_account_id, t.credit_account_id, pending=t.amount)
        elif result == OK:
            self._move(t.debit_account_id, t.credit_account_id, posted=amount)
        if known and not in_chain and len(self.replayable) < REPLAYABLE_MAX:
            self.replayable.append(t)

    def _resolved(self, t: Transfer, p: _Pending, result: str) -> None:
        if result not in (OK, EXISTS, EXPIRED):
            self.open.append(p)
            return
        self.closed.append(p)
        # The pending amount leaves the balances when this run posts or voids it, or when the
        # ledger expired it during this run (a reservation booked here).
        if result == OK or (result == EXPIRED and p.id in self.booked):
            self._move(p.debit_account_id, p.credit_account_id, pending=-p.amount)
        self.booked.discard(p.id)
        if result == OK and t.flags & TransferFlags.POST_PENDING_TRANSFER:
            posted = p.amount if t.amount == AMOUNT_FULL else t.amount
            self._move(p.debit_account_id, p.credit_account_id, posted=posted)

    def _move(self, dr: int, cr: int, *, pending: int = 0, posted: int = 0) -> None:
        d, c = self.reference[dr], self.reference[cr]
        d[0] += pending
        d[1] += posted
        c[2] += pending
        c[3] += posted

    def end_of_day(self) -> tuple[int, Counter[str]]:
        """Expire what is due, then void every pending transfer still open."""
        self.clock.advance(max(PENDING_TIMEOUTS_S) // 2)
        expired = self.ledger.expire_pending()
        results: Counter[str] = Counter()
        todo, self.open = self.open, []
        void = int(TransferFlags.VOID_PENDING_TRANSFER)
        for start in range(0, len(todo), BATCH_EVENTS_MAX):
            chunk = todo[start : start + BATCH_EVENTS_MAX]
            batch = [
                _Planned(Transfer(self.new_id(), pending_id=p.id, flags=void), p) for p in chunk
            ]
            results.update(self.submit(batch))
        return expired, results


def run_ledger_demo(
    ledger: Ledger,
    clock: FakeClock,
    *,
    transfers: int = TRANSFERS_DEFAULT,
    seed: int = SEED_DEFAULT,
    batch_size: int = BATCH_SIZE_DEFAULT,
    on_progress: ProgressCallback | None = None,
) -> DemoReport:
    """Build the network, fund it, run ``transfers`` transfers, close the day, check."""
    if transfers < 0:
        raise ValueError(f"transfers must be >= 0, got {transfers}")
    if not 2 <= batch_size <= BATCH_EVENTS_MAX:
        raise ValueError(f"batch_size must be 2..{BATCH_EVENTS_MAX}, got {batch_size}")
    started_ns = clock.now_ns()
    sim = _Simulation(ledger, clock, seed, batch_size)
    setup = sim.setup()
    counts: Counter[str] = Counter()
    done = batches = 0
    while done < transfers:
        batch = sim.plan_batch(transfers - done)
        counts.update(sim.submit(batch))
        done += len(batch)
        batches += 1
        if on_progress is not None:
            on_progress(done, transfers)
    expired, end_of_day = sim.end_of_day()
    stored = ledger.lookup_accounts([a.id for a in sim.network])
    accounts = list(zip(sim.network, stored, strict=True))
    return DemoReport(
        seed=seed,
        transfers=done,
        batches=batches,
        setup_results=dict(sorted(setup.items())),
        result_counts=dict(counts.most_common()),
        end_of_day_results=dict(sorted(end_of_day.items())),
        expired=expired,
        accounts=accounts,
        checks=check_demo(ledger, sim.reference, accounts),
        started_ns=started_ns,
        finished_ns=clock.now_ns(),
    )


def check_demo(
    ledger: Ledger, reference: dict[int, list[int]], accounts: Sequence[tuple[DemoAccount, Account]]
) -> list[DemoCheck]:
    """The invariants, each checked from the stored accounts and from the ledger's own check."""
    unbalanced: list[str] = []
    per_ledger: dict[int, list[int]] = {}
    for _, a in accounts:
        totals = per_ledger.setdefault(a.ledger, [0, 0, 0, 0])
        for i, value in enumerate(
            (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
        ):
            totals[i] += value
    for number, (dp, dpo, cp, cpo) in sorted(per_ledger.items()):
        if dp != cp or dpo != cpo:
            unbalanced.append(f"ledger {number}: debits {dpo}+{dp} != credits {cpo}+{cp}")
    over_limit = [d.name for d, a in accounts if _over_limit(a)]
    mismatched = [
        d.name
        for d, a in accounts
        if reference[a.id]
        != [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted]
    ]
    left_pending = [d.name for d, a in accounts if a.debits_pending or a.credits_pending]
    report = ledger.check_invariants()
    return [
        DemoCheck(
            "debits == credits per ledger",
            not unbalanced,
            "; ".join(unbalanced) or f"{len(per_ledger)} ledgers balanced",
        ),
        DemoCheck(
            "no limit exceeded",
            not over_limit,
            ", ".join(over_limit) or "every limited account within its credits",
        ),
        DemoCheck(
            "balances == sum of transfers (demo's model)",
            not mismatched,
            ", ".join(mismatched) or f"{len(accounts)} accounts match",
        ),
        DemoCheck("ledger check_invariants()", report.ok, "; ".join(report.violations) or "ok"),
        DemoCheck(
            "no pending left after end of day",
            not left_pending,
            ", ".join(left_pending) or "all resolved",
        ),
    ]


def _over_limit(a: Account) -> bool:
    if a.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS:
        return a.debits_pending + a.debits_posted > a.credits_posted
    if a.flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS:
        return a.credits_pending + a.credits_posted > a.debits_posted
    return False
