"""Property tests: the real Ledger against the reference model in tests/ledger_reference.py.

Each example is a random scenario: eight accounts (1..6 on EUR, 7 and 8 on USD, some with
limit or history flags), a batch funding them, then 3..12 steps, each a batch of account
events, a batch of transfers (every flag, duplicates, linked chains, balancing, pending
transfers with timeouts of 0..5 s, posts and voids mostly referring to those), a clock advance
or an explicit expiry run. Ids come from small spaces (accounts 1..8, transfers 1..40) so that
duplicates, ``exists_with_different_*``, chains and pending references collide often.

Properties: after every step the result code of every event and every account (all four
balances, flags, timestamp) are identical in the Ledger and the model; at the end so are the
stored transfers (lookup_transfers), every account's transfers (get_account_transfers, with
its filters), statement() and, for history accounts, get_account_balances(); for every ledger
debits equal credits, pending and posted; no limit flag is exceeded; check_invariants() is ok.

Hypothesis runs many examples inside one call of a test function, so a function-scoped
``ledger`` fixture would carry one example's state into the next. Each example therefore gets
a fresh Ledger on a fresh database of the same backend (``fresh_ledger``: a copy of a migrated
SQLite file, or a new PostgreSQL schema) and a fresh FakeClock.

ENTREPOT_PROPERTY_EXAMPLES (default 40) sets the number of scenarios per backend;
``pytest --hypothesis-show-statistics`` shows how often each result code came up.
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import engine as conjecture_engine

from entrepot.kernel.clock import FakeClock
from entrepot.ledger import (
    AMOUNT_FULL,
    Account,
    AccountFlags,
    HistoryNotEnabled,
    Ledger,
    StatementLine,
    Transfer,
    TransferFlags,
)
from entrepot.storage import upgrade
from entrepot.storage.engine import create_engine_from_url
from tests.conftest import create_postgres_schema, drop_postgres_schema, postgres_schema_url
from tests.ledger_reference import AMOUNT_MAX, U128_MAX, ReferenceLedger

DEFINED_LEDGERS = (978, 840, 156, 646)
ACCOUNT_IDS = range(1, 9)
TRANSFER_IDS = range(1, 41)  # and 41..47 for the funding batch
MISSING_ACCOUNT = 9  # never created
EXAMPLES = int(os.environ.get("ENTREPOT_PROPERTY_EXAMPLES", "40"))
SHRINK_SECONDS = int(os.environ.get("ENTREPOT_PROPERTY_SHRINK_SECONDS", "20"))

PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    # Shrink one failure only, and skip the explain phase, which re-runs a failing scenario
    # hundreds of times for little insight: each example costs a fresh database.
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)


# ------------------------------------------------------------------------------ strategies
@functools.cache
def chance(percent: int) -> st.SearchStrategy[bool]:
    """True with about ``percent`` % probability; shrinks towards False."""
    return st.integers(0, 99).map(lambda x: x >= 100 - percent)


def weighted(*pairs: tuple[int, Any]) -> st.SearchStrategy[Any]:
    """Pick a value with the given integer weights; shrinks towards the first."""
    values: list[Any] = []
    for weight, value in pairs:
        values.extend([value] * weight)
    return st.sampled_from(values)


@functools.cache
def flag_if(flag: int, percent: int) -> st.SearchStrategy[int]:
    return chance(percent).map(lambda on: flag if on else 0)


small_amount = st.integers(0, 60)
big_amount = st.sampled_from(
    [AMOUNT_MAX, AMOUNT_MAX - 1, AMOUNT_MAX - 40, 2**62, 2**62 + 7, AMOUNT_MAX // 3]
)
user_data = weighted((3, 0), (1, 1), (1, 2))


def home_ledger(account_id: int) -> int:
    """Accounts 1..6 are opened on EUR (978), 7 and 8 on USD (840)."""
    return 840 if account_id in (7, 8) else 978


@st.composite
def opening_account(draw: st.DrawFn, account_id: int) -> Account:
    """An account that can be created: the scenario's first batch is made of these."""
    limit = draw(
        weighted(
            (5, 0),
            (2, int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)),
            (1, int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)),
        )
    )
    return Account(
        id=account_id,
        ledger=home_ledger(account_id),
        code=1,
        flags=limit | draw(flag_if(int(AccountFlags.HISTORY), 50)),
        user_data_128=draw(user_data),
        user_data_64=draw(user_data),
        user_data_32=draw(user_data),
    )


def some_id(ids: Sequence[int], *extra: int) -> st.SearchStrategy[int]:
    """One of ``ids``; rarely 0, 2**128 - 1 or one of ``extra``."""
    specials = [(1, e) for e in (0, U128_MAX, *extra)]
    return weighted(*((60 // len(ids) + 1, i) for i in ids), *specials)


#: Pending transfers mostly take ids 1..12 and posts and voids mostly refer to those, while
#: their own ids, and those of single-phase transfers, mostly come from 13..40.
PENDING_IDS = range(1, 13)
OTHER_IDS = range(13, 41)
ACCOUNT_ID = some_id(ACCOUNT_IDS)
ID_OF_KIND = {
    "pending": some_id(PENDING_IDS),
    "other": some_id(OTHER_IDS),
    "any": some_id(TRANSFER_IDS),
}
#: Both accounts of a transfer mostly come from one ledger: EUR (1..6) or USD (7 and 8).
GROUP_IDS = {"EUR": range(1, 7), "USD": range(7, 9), "any": ACCOUNT_IDS}
ACCOUNT_IN = {
    "EUR": some_id(range(1, 7), MISSING_ACCOUNT),
    "USD": some_id(range(7, 9), MISSING_ACCOUNT),
    "any": some_id(ACCOUNT_IDS, MISSING_ACCOUNT),
}
ACCOUNT_GROUP = weighted((16, "EUR"), (3, "USD"), (1, "any"))
#: Zero means "as the pending transfer"; sometimes a post or void names an account anyway.
RESOLVE_ACCOUNT = weighted((60, 0), *((1, i) for i in ACCOUNT_IDS), (1, MISSING_ACCOUNT))
TRANSFER_LEDGER = {
    home: weighted((40, home), (1, 978), (1, 840), (1, 156), (1, 0)) for home in (978, 840)
}
ACCOUNT_LEDGER = {home: weighted((12, home), (1, 840), (1, 999), (1, 0)) for home in (978, 840)}
RARE = weighted((60, 0), (1, 1))
KIND = weighted((3, "plain"), (3, "pending"), (2, "post"), (2, "void"))
KIND_BEFORE_PENDING = weighted((3, "plain"), (5, "pending"), (1, "post"), (1, "void"))
VOID_AMOUNT = weighted((4, 0), (2, AMOUNT_FULL), (1, None))
RESOLVE_LEDGER = weighted((12, 0), (2, 978), (1, 840))
RESOLVE_CODE = weighted((12, 0), (2, 1), (1, 2))
TRANSFER_CODE = weighted((30, 1), (1, 2), (1, 0))
TRANSFER_TIMESTAMP = weighted((80, 0), (1, 3))
ACCOUNT_CODE = weighted((12, 1), (1, 2), (1, 0))
ACCOUNT_TIMESTAMP = weighted((60, 0), (1, 5))
EXTRA_TRANSFER_FLAG = st.sampled_from(
    [
        int(TransferFlags.PENDING),
        int(TransferFlags.POST_PENDING_TRANSFER),
        int(TransferFlags.VOID_PENDING_TRANSFER),
        1 << 6,
        1 << 15,
    ]
)


@st.composite
def account_event(draw: st.DrawFn) -> Account:
    """Any account event: mostly re-creations of 1..8 (exists, exists_with_different_*)."""
    account_id = draw(ACCOUNT_ID)
    flags = (
        draw(flag_if(int(AccountFlags.LINKED), 25))
        | draw(flag_if(int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS), 20))
        | draw(flag_if(int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS), 10))
        | draw(flag_if(int(AccountFlags.HISTORY), 40))
        | draw(flag_if(1 << 4, 2))
    )
    balances = [0, 0, 0, 0]
    if draw(chance(3)):
        balances[draw(st.integers(0, 3))] = draw(st.integers(1, 5))
    return Account(
        id=account_id,
        ledger=draw(ACCOUNT_LEDGER[home_ledger(account_id)]),
        code=draw(ACCOUNT_CODE),
        flags=flags,
        user_data_128=draw(user_data),
        user_data_64=draw(user_data),
        user_data_32=draw(user_data),
        debits_pending=balances[0],
        debits_posted=balances[1],
        credits_pending=balances[2],
        credits_posted=balances[3],
        timestamp=draw(ACCOUNT_TIMESTAMP),
    )


@st.composite
def transfer_event(draw: st.DrawFn, pendings: tuple[int, ...] = ()) -> Transfer:
    kind = draw(KIND if pendings else KIND_BEFORE_PENDING)
    resolve = kind in ("post", "void")
    flags = {
        "plain": 0,
        "pending": int(TransferFlags.PENDING),
        "post": int(TransferFlags.POST_PENDING_TRANSFER),
        "void": int(TransferFlags.VOID_PENDING_TRANSFER),
    }[kind]
    flags |= draw(flag_if(int(TransferFlags.LINKED), 20))
    flags |= draw(flag_if(int(TransferFlags.BALANCING_DEBIT), 2 if resolve else 10))
    flags |= draw(flag_if(int(TransferFlags.BALANCING_CREDIT), 2 if resolve else 10))
    if draw(chance(2)):
        flags |= draw(EXTRA_TRANSFER_FLAG)
    own = "pending" if kind == "pending" else "other"
    transfer_id = draw(ID_OF_KIND[own if draw(chance(85)) else "any"])
    if resolve:
        debit, credit = draw(RESOLVE_ACCOUNT), draw(RESOLVE_ACCOUNT)
        if pendings and draw(chance(80)):
            pending_id = draw(st.sampled_from(pendings))
        else:
            pending_id = draw(ID_OF_KIND["pending" if draw(chance(85)) else "any"])
        if draw(chance(2)):
            pending_id = transfer_id
        if kind == "post":
            amount = draw(st.one_of(small_amount, st.just(AMOUNT_FULL)))
        else:
            amount = draw(VOID_AMOUNT)
            if amount is None:
                amount = draw(small_amount)
        ledger = draw(RESOLVE_LEDGER)
        code = draw(RESOLVE_CODE)
        timeout = draw(RARE)
    else:
        group = draw(ACCOUNT_GROUP)
        debit = draw(ACCOUNT_IN[group])
        credit = draw(ACCOUNT_IN[group])
        if credit == debit and draw(chance(80)):
            credit = draw(st.sampled_from([i for i in GROUP_IDS[group] if i != debit]))
        pending_id = draw(RARE)
        amount = draw(big_amount if draw(chance(15)) else small_amount)
        ledger = draw(TRANSFER_LEDGER[home_ledger(debit)])
        code = draw(TRANSFER_CODE)
        timeout = draw(st.integers(0, 5) if kind == "pending" else RARE)
    return Transfer(
        id=transfer_id,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        pending_id=pending_id,
        user_data_128=draw(user_data),
        user_data_64=draw(user_data),
        user_data_32=draw(user_data),
        timeout=timeout,
        ledger=ledger,
        code=code,
        flags=flags,
        timestamp=draw(TRANSFER_TIMESTAMP),
    )


STEP_KIND = weighted((1, "accounts"), (4, "transfers"), (2, "advance"), (1, "expire"))
ADVANCE = st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1e-9, 0.999999999])
#: Accounts 1 (EUR) and 7 (USD) have no limit; the scenario's second batch funds the others
#: from them with transfers 41..47, so that limits are not hit at once.
FUNDING = [
    Transfer(40 + i, 7 if i == 8 else 1, i, 100, ledger=home_ledger(i), code=1)
    for i in (2, 3, 4, 5, 6, 8)
]


@st.composite
def scenario(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """The opening accounts, the funding batch, then 3..12 random steps. Posts and voids
    mostly refer to pending transfers drawn earlier in the scenario (created or not)."""
    opening = [draw(opening_account(i)) for i in ACCOUNT_IDS]
    for unlimited in (1, 7):
        opening[unlimited - 1] = opening[unlimited - 1]._replace(
            flags=opening[unlimited - 1].flags & int(AccountFlags.HISTORY)
        )
    steps: list[tuple[str, Any]] = [("accounts", opening), ("transfers", FUNDING)]
    pendings: list[int] = []
    for _ in range(draw(st.integers(3, 12))):
        kind = draw(STEP_KIND)
        if kind == "accounts":
            steps.append((kind, draw(st.lists(account_event(), min_size=1, max_size=4))))
        elif kind == "transfers":
            batch = []
            for _ in range(draw(st.integers(1, 8))):
                t = draw(transfer_event(tuple(pendings)))
                if t.flags & TransferFlags.PENDING:
                    pendings.append(t.id)
                batch.append(t)
            steps.append((kind, batch))
        elif kind == "advance":
            steps.append((kind, draw(ADVANCE)))
        else:
            steps.append((kind, None))
    return steps


# ------------------------------------------------------------------------------ fixtures
LedgerFactory = Callable[[], tuple[Ledger, FakeClock]]


@pytest.fixture(autouse=True)
def _short_shrinking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hypothesis shrinks for up to five minutes; with a database per example that is too long
    for a failing run here. Its (internal) limit is lowered; harmless if it is ever renamed."""
    monkeypatch.setattr(conjecture_engine, "MAX_SHRINKING_SECONDS", SHRINK_SECONDS, raising=False)


def _prepare(engine: sa.Engine) -> None:
    upgrade(engine)
    ledger = Ledger(engine)
    for number, currency in zip(DEFINED_LEDGERS, ("EUR", "USD", "CNY", "RWF"), strict=True):
        ledger.define_ledger(number, currency)


@pytest.fixture
def fresh_ledger(database_url: str, tmp_path: Path) -> Iterator[LedgerFactory]:
    """Make a Ledger on a new, empty database of ``database_url``'s backend, once per example;
    the previous one is disposed of (and its PostgreSQL schema dropped) when the next is made.
    SQLite databases are copies of one migrated template file (a few ms instead of ~30)."""
    made: list[tuple[sa.Engine, str | None]] = []
    count = itertools.count()
    sqlite = database_url.startswith("sqlite")
    template = tmp_path / "template.db"
    if sqlite:
        engine = create_engine_from_url(f"sqlite:///{template}")
        _prepare(engine)
        engine.dispose()
        assert not Path(f"{template}-wal").exists() or not Path(f"{template}-wal").stat().st_size

    def release() -> None:
        while made:
            engine, schema = made.pop()
            engine.dispose()
            if schema is not None:
                drop_postgres_schema(schema)

    def make() -> tuple[Ledger, FakeClock]:
        release()
        if sqlite:
            path = tmp_path / f"example-{next(count)}.db"
            shutil.copyfile(template, path)
            engine = create_engine_from_url(f"sqlite:///{path}")
            made.append((engine, None))
        else:
            schema = create_postgres_schema()
            engine = create_engine_from_url(postgres_schema_url(schema))
            made.append((engine, schema))
            _prepare(engine)
        clock = FakeClock()
        return Ledger(engine, clock), clock

    yield make
    release()


# ------------------------------------------------------------------------------ the runner
class Scenario:
    def __init__(self, ledger: Ledger, clock: FakeClock) -> None:
        self.ledger = ledger
        self.clock = clock
        self.model = ReferenceLedger(DEFINED_LEDGERS)
        self.account_ids = [*ACCOUNT_IDS, MISSING_ACCOUNT]
        self.transfer_ids = [*TRANSFER_IDS, *(t.id for t in FUNDING)]
        self.log: list[str] = []

    def fail_context(self) -> str:
        """Every step so far with the Ledger's results: the scenario to reproduce."""
        return "\n".join(self.log)

    def accounts(self, batch: Sequence[Account]) -> None:
        now = self.clock.now_ns()
        got = [str(r) for r in self.ledger.create_accounts(batch)]
        want = self.model.create_accounts(batch, now)
        self.log.append(f"create_accounts {batch} -> {got}")
        assert got == want, f"create_accounts results differ\n{self.fail_context()}"
        for code in got:
            event(f"account {code}")
        self.check_accounts()

    def transfers(self, batch: Sequence[Transfer]) -> None:
        now = self.clock.now_ns()
        got = [str(r) for r in self.ledger.create_transfers(batch)]
        want = self.model.create_transfers(batch, now)
        self.log.append(f"create_transfers {batch} -> {got}")
        assert got == want, f"create_transfers results differ\n{self.fail_context()}"
        for code in got:
            event(f"transfer {code}")
        self.check_accounts()

    def advance(self, seconds: float) -> None:
        self.log.append(f"advance {seconds}")
        self.clock.advance(seconds)

    def expire(self) -> None:
        now = self.clock.now_ns()
        got = self.ledger.expire_pending()
        want = self.model.expire_pending(now)
        self.log.append(f"expire_pending -> {got}")
        assert got == want, f"expire_pending count differs\n{self.fail_context()}"
        self.check_accounts()

    def run(self, steps: Sequence[tuple[str, Any]]) -> None:
        for kind, payload in steps:
            if kind == "accounts":
                self.accounts(payload)
            elif kind == "transfers":
                self.transfers(payload)
            elif kind == "advance":
                self.advance(payload)
            else:
                self.expire()
        self.check_everything()

    # -------------------------------------------------------------------------- checks
    def check_accounts(self) -> None:
        got = self.ledger.lookup_accounts(self.account_ids)
        want = [a for a in map(self.model.account, self.account_ids) if a is not None]
        assert got == want, f"accounts differ\n{self.fail_context()}"

    def check_everything(self) -> None:
        self.check_accounts()
        got_t = self.ledger.lookup_transfers(self.transfer_ids)
        want_t = [t for t in map(self.model.transfer, self.transfer_ids) if t is not None]
        assert got_t == want_t, f"stored transfers differ\n{self.fail_context()}"

        accounts = self.ledger.lookup_accounts(self.account_ids)
        totals: dict[int, list[int]] = {}
        for a in accounts:
            t = totals.setdefault(a.ledger, [0, 0, 0, 0])
            t[0] += a.debits_pending
            t[1] += a.debits_posted
            t[2] += a.credits_pending
            t[3] += a.credits_posted
            if a.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS:
                assert a.debits_pending + a.debits_posted <= a.credits_posted, a
            if a.flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS:
                assert a.credits_pending + a.credits_posted <= a.debits_posted, a
            for value in a[7:11]:
                assert 0 <= value <= AMOUNT_MAX, a
        for ledger, (dp, dpo, cp, cpo) in totals.items():
            assert (dp, dpo) == (cp, cpo), f"ledger {ledger}: debits != credits"
        report = self.ledger.check_invariants()
        assert report.ok, report.violations
        assert report.ledgers == self.model.ledger_totals()

        # Every query for the two busiest accounts, the plain ones for the others.
        busiest = sorted(accounts, key=lambda a: -len(self.model.account_transfers(a.id)))[:2]
        for a in accounts:
            self.check_account_queries(a, thorough=a in busiest)

    def check_account_queries(self, a: Account, *, thorough: bool) -> None:
        ledger, model = self.ledger, self.model
        want = model.account_transfers(a.id)
        assert ledger.get_account_transfers(a.id) == want, a.id
        credit_normal = not a.flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
        ranges = [(0, (1 << 63) - 1)]
        if want and thorough:
            ranges.append((want[len(want) // 2].timestamp, want[-1].timestamp))
            # a recent period: its opening balance is read back from the balance now
            ranges.append((want[-1].timestamp, (1 << 63) - 1))
        for since, until in ranges:
            statement = ledger.statement(a.id, since_ns=since, until_ns=until)
            opening, lines, closing = model.statement_lines(a.id, since, until, credit_normal)
            assert statement.account == a
            assert statement.credit_normal == credit_normal
            assert statement.opening_balance_minor == opening, (a.id, since, until)
            assert statement.lines == lines, (a.id, since, until)
            assert statement.closing_balance_minor == closing, (a.id, since, until)
            assert not statement.truncated
            if since == 0:
                sign = 1 if credit_normal else -1
                assert closing == sign * (a.credits_posted - a.debits_posted), a.id
        if a.flags & AccountFlags.HISTORY:
            assert ledger.get_account_balances(a.id) == model.account_balances(a.id), a.id
        else:
            with pytest.raises(HistoryNotEnabled):
                ledger.get_account_balances(a.id)
        if not thorough:
            return

        assert ledger.get_account_transfers(a.id, reverse=True) == want[::-1], a.id
        assert ledger.get_account_transfers(a.id, credits=False) == [
            t for t in want if t.debit_account_id == a.id
        ], a.id
        assert ledger.get_account_transfers(a.id, debits=False) == [
            t for t in want if t.credit_account_id == a.id
        ], a.id
        assert ledger.get_account_transfers(a.id, limit=2) == want[:2], a.id
        assert ledger.statement(a.id, limit=1).truncated == (len(want) > 1), a.id
        # One row a page, each starting where the last stopped, is the whole statement.
        whole = ledger.statement(a.id)
        paged: list[StatementLine] = []
        next_since: int | None = 0
        while next_since is not None:
            page = ledger.statement(a.id, since_ns=next_since, limit=1)
            assert (page.next_since_ns is not None) == page.truncated, a.id
            paged.extend(page.lines)
            next_since = page.next_since_ns
        assert paged == whole.lines, a.id
        assert page.closing_balance_minor == whole.closing_balance_minor, a.id
        if want:
            middle = want[len(want) // 2].timestamp
            assert ledger.get_account_transfers(a.id, since_ns=middle) == [
                t for t in want if t.timestamp >= middle
            ], a.id
            assert ledger.get_account_transfers(a.id, until_ns=middle) == [
                t for t in want if t.timestamp <= middle
            ], a.id

        if a.flags & AccountFlags.HISTORY:
            assert (
                ledger.get_account_balances(a.id, reverse=True)
                == model.account_balances(a.id)[::-1]
            ), a.id
            history = model.account_balances(a.id)
            if history:
                middle = history[len(history) // 2].transfer_timestamp
                assert (
                    ledger.get_account_balances(a.id, since_ns=middle, limit=3)
                    == [h for h in history if h.transfer_timestamp >= middle][:3]
                ), a.id


# ------------------------------------------------------------------------------ the tests
@PROPERTY_SETTINGS
@given(scenario=scenario())
def test_ledger_agrees_with_reference_model(
    fresh_ledger: LedgerFactory,
    scenario: list[tuple[str, Any]],
) -> None:
    Scenario(*fresh_ledger()).run(scenario)


@settings(PROPERTY_SETTINGS, max_examples=max(1, EXAMPLES // 2))
@given(
    amounts=st.lists(st.integers(1, 30), min_size=1, max_size=12),
    timeouts=st.lists(st.integers(1, 5), min_size=12, max_size=12),
    waits=st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0, 0.5]), min_size=1, max_size=6),
)
def test_pending_transfers_expire_in_order(
    fresh_ledger: LedgerFactory,
    amounts: list[int],
    timeouts: list[int],
    waits: list[float],
) -> None:
    """Many pending transfers with timeouts on history accounts: expiry takes one timestamp
    each, in order of expiry, before the batch's events, and voids the reservation."""
    run = Scenario(*fresh_ledger())
    history = int(AccountFlags.HISTORY)
    run.accounts([Account(1, 978, 1, history), Account(2, 978, 1, history)])
    run.transfers(
        [
            Transfer(
                i + 1,
                1,
                2,
                amount,
                timeout=timeouts[i],
                ledger=978,
                code=1,
                flags=int(TransferFlags.PENDING),
            )
            for i, amount in enumerate(amounts)
        ]
    )
    for n, wait in enumerate(waits):
        run.advance(wait)
        # A post of each pending transfer: some succeed, some find it expired.
        run.transfers(
            [
                Transfer(
                    20 + n,
                    pending_id=1 + n % len(amounts),
                    amount=AMOUNT_FULL,
                    flags=int(TransferFlags.POST_PENDING_TRANSFER),
                )
            ]
        )
    run.check_everything()


# ------------------------------------------------------------------ plain batches (ADR 0003)
#: Fresh transfer ids for plain batches start here, above every id the other strategies use.
PLAIN_ID_BASE = 1_000


@st.composite
def plain_batch(draw: st.DrawFn, first_id: int) -> list[Transfer]:
    """A batch of plain transfers with fresh ids: mostly one the fast path takes whole, at
    times with one flaw that sends it event by event (a repeated id, an unknown account, the
    same account twice, a ledger that is not the accounts', an amount that overflows, or one
    that breaks a limit, which the drawn amounts do by themselves now and then)."""
    size = draw(st.integers(1, 12))
    batch = []
    for k in range(size):
        group = draw(weighted((6, "EUR"), (2, "USD")))
        debit, credit = draw(st.permutations(list(GROUP_IDS[group])))[:2]
        batch.append(
            Transfer(
                first_id + k,
                debit,
                credit,
                draw(st.integers(0, 30)),
                user_data_128=draw(user_data),
                user_data_64=draw(user_data),
                user_data_32=draw(user_data),
                ledger=home_ledger(debit),
                code=draw(weighted((5, 1), (1, 7))),
            )
        )
    flaw = draw(
        weighted(
            (12, None),
            (1, "repeat"),
            (1, "unknown"),
            (1, "same"),
            (1, "ledger"),
            (1, "overflow"),
            (1, "known"),
        )
    )
    at = draw(st.integers(0, size - 1))
    t = batch[at]
    if flaw == "repeat" and size > 1:
        batch[at] = t._replace(id=batch[(at + 1) % size].id)
    elif flaw == "unknown":
        batch[at] = t._replace(credit_account_id=MISSING_ACCOUNT)
    elif flaw == "same":
        batch[at] = t._replace(credit_account_id=t.debit_account_id)
    elif flaw == "ledger":
        batch[at] = t._replace(ledger=840 if t.ledger == 978 else 978)
    elif flaw == "overflow":
        batch[at] = t._replace(amount=AMOUNT_MAX)
    elif flaw == "known":  # an id already used: exists / exists_with_different_*
        batch[at] = t._replace(id=draw(st.sampled_from([*OTHER_IDS, *(f.id for f in FUNDING)])))
    return batch


@st.composite
def plain_scenario(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Mostly plain batches, between them steps of every other kind, and now and then a
    switch to the other writer (another Ledger on the same database, as another process)."""
    opening = [
        a._replace(flags=a.flags & ~int(AccountFlags.HISTORY)) if draw(chance(80)) else a
        for a in (draw(opening_account(i)) for i in ACCOUNT_IDS)
    ]
    for unlimited in (1, 7):
        opening[unlimited - 1] = opening[unlimited - 1]._replace(flags=0)
    steps: list[tuple[str, Any]] = [("accounts", opening), ("transfers", FUNDING)]
    next_id = PLAIN_ID_BASE
    pendings: list[int] = []
    for _ in range(draw(st.integers(4, 14))):
        kind = draw(weighted((8, "plain"), (2, "transfers"), (1, "advance"), (2, "switch")))
        if kind == "plain":
            batch = draw(plain_batch(next_id))
            next_id += len(batch)
            steps.append(("transfers", batch))
        elif kind == "transfers":
            batch = [draw(transfer_event(tuple(pendings))) for _ in range(draw(st.integers(1, 4)))]
            pendings.extend(t.id for t in batch if t.flags & TransferFlags.PENDING)
            steps.append(("transfers", batch))
        elif kind == "advance":
            steps.append(("advance", draw(ADVANCE)))
        else:
            steps.append(("switch", None))
    return steps


@PROPERTY_SETTINGS
@given(scenario=plain_scenario())
def test_plain_batches_agree_with_reference_model(
    fresh_ledger: LedgerFactory,
    scenario: list[tuple[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path for plain batches (segments, deferred balances, ADR 0003) gives the same
    results, balances, stored transfers and queries as the reference model: every batch is
    eligible (plain_batch_min=1), postings merge and balances flush every few transfers, and
    two writers take turns on one database so that each must read the other's segments."""
    import entrepot.ledger.services as services
    import entrepot.ledger.store as store

    monkeypatch.setattr(services, "POSTINGS_MERGE_TRANSFERS", 9)
    monkeypatch.setattr(store, "SEGMENT_RANGES_MAX", 2)  # both ways of finding ids
    monkeypatch.setattr(store, "OPENING_SUMMED_MAX", 0)  # both ways of an opening balance
    monkeypatch.setattr(services, "PLAIN_MERGE_TRANSFERS", 17)
    monkeypatch.setattr(services, "MERGE_SEGMENTS", 6)
    monkeypatch.setattr(services, "FLUSH_SEGMENTS", 2)
    ledger, clock = fresh_ledger()
    ledger.plain_batch_min = 1
    other = Ledger(ledger.engine, clock, plain_batch_min=1)
    run = Scenario(ledger, clock)
    for kind, payload in scenario:
        if kind == "switch":
            run.ledger = other if run.ledger is ledger else ledger
            run.log.append("switch writer")
            continue
        if kind == "transfers":
            run.transfer_ids.extend(t.id for t in payload if t.id not in run.transfer_ids)
        getattr(run, kind)(payload)
    run.check_everything()
    with ledger.engine.connect() as conn:
        segments = conn.exec_driver_sql("SELECT COUNT(*) FROM ledger_transfer_segments").scalar()
    event(f"segments written: {'some' if segments else 'none'}")
