"""Bulk credit transfers (ADR 0004): each item gets exactly the result that posting its fee and
payment legs as one linked chain would give, while the ledger carries one posting per payee
participant and one for the fees. The oracle is the ledger's own state machine
(``decide_transfers``), run on the balances read before the bulk."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as s
from psycopg.errors import UniqueViolation

from entrepot.kernel.clock import NS_PER_S, FakeClock
from entrepot.kernel.limits import AMOUNT_MAX
from entrepot.ledger import Account, AccountFlags, Transfer, TransferFlags
from entrepot.ledger.machine import AccountState, LedgerView, decide_transfers
from entrepot.payments import SCHEME, FeeSchedule, PaymentScheme, TransferState
from entrepot.payments import bulk as bulk_module
from entrepot.payments import store as st
from entrepot.payments.bulk import (
    BulkItem,
    BulkResult,
    _Positions,
    bulk_quote_id,
    bulk_transfers,
)
from entrepot.payments.errors import (
    CurrencyNotSupported,
    InvalidPaymentInput,
    ParticipantSuspended,
)
from entrepot.payments.services import Code, ledger_id
from entrepot.storage.migrate import downgrade, upgrade
from entrepot.storage.uow import UnitOfWork
from tests.service.test_payments import assert_ledger_ok, fee_of, join, unchanged

PAYEES = {"cimb": ("MSISDN", "+60123000001"), "rhb": ("MSISDN", "+60123000002")}
_ids = itertools.count()


def join_payees(scheme: PaymentScheme) -> None:
    for pid, alias in PAYEES.items():
        join(scheme, pid, "MYR", country="MY", alias=alias)


def positions(scheme: PaymentScheme, pids: list[str], currency: str = "MYR") -> list[int]:
    return [scheme.get_participant(p).check_currency(currency).position_account for p in pids]


def machine_oracle(
    scheme: PaymentScheme, payer: str, items: list[tuple[str, int]]
) -> tuple[list[str | None], dict[int, tuple[int, int, int, int]]]:
    """Each item (payee participant, amount) posted as the fee and payment legs of one linked
    chain through the ledger's state machine, on the balances as they are now: each item's
    failure code (None: committed) and every account's balances after."""
    src, fee_to, *dsts = positions(scheme, [payer, SCHEME, *PAYEES])
    dst_of = dict(zip(PAYEES, dsts, strict=True))
    accounts = scheme.ledger.lookup_accounts([src, fee_to, *dsts])
    view = LedgerView(accounts={a.id: AccountState(a) for a in accounts}, ledgers={458})
    batch, spans = [], []
    for n, (payee, amount) in enumerate(items):
        fee = fee_of(amount)
        first = len(batch)
        if fee:
            batch.append(Transfer(10**30 + 2 * n, src, fee_to, fee, ledger=458, code=2, flags=1))
        batch.append(Transfer(10**30 + 2 * n + 1, src, dst_of[payee], amount, ledger=458, code=1))
        spans.append((first, len(batch)))
    fx = decide_transfers(batch, view, 1)
    codes = []
    for a, b in spans:
        failed = [str(r) for r in fx.results[a:b] if str(r) not in ("ok", "linked_event_failed")]
        codes.append(failed[0] if failed else None)
    after = {i: (st_.dp, st_.dpo, st_.cp, st_.cpo) for i, st_ in view.accounts.items()}
    return codes, after


def balances(scheme: PaymentScheme, ids: list[int]) -> dict[int, tuple[int, int, int, int]]:
    return {
        a.id: (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
        for a in scheme.ledger.lookup_accounts(ids)
    }


def run_bulk(
    scheme: PaymentScheme, payer: str, items: list[tuple[str, int]], bulk_id: str | None = None
) -> list[BulkResult]:
    tag = next(_ids)
    bulk = [BulkItem(f"t{tag}-{n}", *PAYEES[p], a) for n, (p, a) in enumerate(items)]
    return bulk_transfers(scheme, payer, bulk_id or f"bulk-{tag}", "MYR", bulk)


def expect(codes: list[str | None], results: list[BulkResult]) -> None:
    want = [
        (TransferState.COMMITTED, None)
        if c is None
        else (TransferState.ABORTED, "net debit cap exceeded" if c == "exceeds_credits" else c)
        for c in codes
    ]
    assert [(r.state, r.reason) for r in results] == want


# ----------------------------------------------------------------- the oracle, end to end
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=s.lists(
        s.tuples(s.sampled_from(sorted(PAYEES)), s.integers(1, 400)), min_size=1, max_size=30
    )
)
def test_every_item_gets_the_state_machines_result_and_the_balances_match(
    scheme: PaymentScheme, items: list[tuple[str, int]]
) -> None:
    if "cimb" not in {p.id for p in scheme.list_participants()}:  # the first example
        join_payees(scheme)
    # Amounts in thousandths of what the payer has left, so every run meets the cap.
    left = scheme.liquidity("maybank", "MYR")["position_available_minor"]
    scaled = [(p, max(1, left * k // 4_000)) for p, k in items]
    ids = positions(scheme, ["maybank", SCHEME, *PAYEES])
    codes, after = machine_oracle(scheme, "maybank", scaled)
    expect(codes, run_bulk(scheme, "maybank", scaled))
    assert balances(scheme, ids) == after
    assert_ledger_ok(scheme)
    # Top the payer up for the next example.
    scheme.deposit("maybank", "MYR", 300_000, f"top-{next(_ids)}")
    cap = scheme.get_participant("maybank").check_currency("MYR").net_debit_cap_minor
    scheme.set_net_debit_cap("maybank", "MYR", cap + 300_000)


# ------------------------------------------------ the position model against the machine
def _account(i: int, flags: int, dp: int, dpo: int, cp: int, cpo: int) -> Account:
    return Account(i, 458, 100, flags, debits_pending=dp, debits_posted=dpo,
                   credits_pending=cp, credits_posted=cpo)  # fmt: skip


_balance = s.one_of(s.integers(0, 1_000), s.integers(AMOUNT_MAX - 1_000, AMOUNT_MAX))
_flags = s.sampled_from(
    [0, int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
     int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    accounts=s.lists(s.tuples(_flags, _balance, _balance, _balance, _balance), min_size=3,
                     max_size=3),
    chains=s.lists(
        s.lists(s.tuples(s.integers(0, 2), s.integers(0, 2), s.integers(1, 2_000)), min_size=1,
                max_size=3),
        min_size=1, max_size=8,
    ),
)  # fmt: skip
def test_positions_decide_linked_chains_as_the_state_machine_does(
    accounts: list[tuple[int, int, int, int, int]], chains: list[list[tuple[int, int, int]]]
) -> None:
    """Balances near the 63-bit limit, every limit flag, chains of one to three legs: the
    bulk's position model returns the machine's first failure code and ends with its
    balances."""
    accs = [_account(i + 1, *a) for i, a in enumerate(accounts)]
    model = _Positions(accs)
    view = LedgerView(accounts={a.id: AccountState(a) for a in accs}, ledgers={458})
    batch, spans, n = [], [], 0
    for chain in chains:
        first = len(batch)
        for k, (d, c, amount) in enumerate(chain):
            n += 1
            flags = int(TransferFlags.LINKED) if k < len(chain) - 1 else 0
            batch.append(Transfer(n, d + 1, c + 1, amount, ledger=458, code=1, flags=flags))
        spans.append((first, len(batch)))
    fx = decide_transfers(batch, view, 1)
    for chain, (a, b) in zip(chains, spans, strict=True):
        failed = [str(r) for r in fx.results[a:b] if str(r) not in ("ok", "linked_event_failed")]
        got = model.post([(d + 1, c + 1, amount) for d, c, amount in chain])
        assert (str(got) if got else None) == (failed[0] if failed else None)
    for i, state in view.accounts.items():
        assert model.b[i][:4] == [state.dp, state.dpo, state.cp, state.cpo]


# mostly small: a whole fits only if no credited account is near the limit
_mostly_small = s.one_of(s.integers(0, 5_000), s.integers(0, 50_000), _balance)


@settings(max_examples=400, deadline=None)
@given(
    accounts=s.lists(s.tuples(_flags, _mostly_small, _mostly_small, _mostly_small,
                              _mostly_small), min_size=4, max_size=4),
    items=s.lists(s.tuples(s.integers(1, 3), s.integers(1, 2_000), s.integers(0, 50)),
                  min_size=1, max_size=10),
    fee_to=s.integers(0, 3),
)  # fmt: skip
def test_a_whole_that_fits_means_every_chain_posts_in_any_order(
    accounts: list[tuple[int, int, int, int, int]],
    items: list[tuple[int, int, int]],
    fee_to: int,
) -> None:
    """Account 0 pays (amount, fee) chains to the others, fees to ``fee_to``: when
    ``fits_whole`` says yes, posting the chains one by one, forwards or backwards, fails
    none, and ends where the sums say."""
    accs = [_account(i, *a) for i, a in enumerate(accounts)]
    chains = [
        [*([(0, fee_to, fee)] if fee else []), (0, payee, amount)] for payee, amount, fee in items
    ]
    credits: dict[int, int] = {}
    for chain in chains:
        for _, c, a in chain:
            credits[c] = credits.get(c, 0) + a
    debit = sum(a for chain in chains for _, _, a in chain)
    if not _Positions(accs).fits_whole(0, debit, credits):
        return
    for order in (chains, chains[::-1]):
        model = _Positions(accs)
        assert [model.post(chain) for chain in order] == [None] * len(chains)
        assert model.b[0][1] == accs[0].debits_posted + debit
        for c, credit in credits.items():
            assert model.b[c][3] == accs[c].credits_posted + credit


def test_a_bulk_that_fits_whole_is_decided_as_item_by_item(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same bulks (one that fits whole, one that runs into the cap) decided with and
    without the whole check: the same results, rows and ledger."""
    join_payees(scheme)
    left = scheme.liquidity("maybank", "MYR")["position_available_minor"]
    fits = [("cimb", 1_000), ("rhb", 2_000), ("cimb", 3)]
    over = [("cimb", left // 2), ("rhb", left // 2), ("rhb", 10), ("cimb", left)]
    seen = []
    decide = bulk_module._decide

    def both(*args: Any, **kwargs: Any) -> Any:
        fresh = [*args[:3], copy.deepcopy(args[3]), *args[4:]]  # deciding moves positions
        whole = decide(*args, **kwargs)
        one_by_one = decide(*fresh, **{**kwargs, "fits_whole": False})
        assert whole == one_by_one
        seen.append(whole[0])
        return whole

    monkeypatch.setattr(bulk_module, "_decide", both)
    assert [r.state.value for r in run_bulk(scheme, "maybank", fits)] == ["COMMITTED"] * 3
    assert [r.state.value for r in run_bulk(scheme, "maybank", over)] == [
        "COMMITTED", "ABORTED", "COMMITTED", "ABORTED"
    ]  # fmt: skip
    assert len(seen) == 2
    assert_ledger_ok(scheme)


# ---------------------------------------------------------------------------- the cases
def test_an_item_over_the_cap_is_rejected_alone_and_a_later_smaller_one_still_fits(
    scheme: PaymentScheme,
) -> None:
    join_payees(scheme)
    left = scheme.liquidity("maybank", "MYR")["position_available_minor"]
    big = (left - 1_000) * 10_000 // 10_050  # with its 50 bps fee, about 1,000 below the cap
    items = [("cimb", big), ("rhb", 5_000), ("rhb", 900)]  # 900 + fee 5 fits in the rest
    results = run_bulk(scheme, "maybank", items)
    assert [(r.state.value, r.reason) for r in results] == [
        ("COMMITTED", None),
        ("ABORTED", "net debit cap exceeded"),
        ("COMMITTED", None),
    ]
    liq = scheme.liquidity("maybank", "MYR")
    assert liq["position_available_minor"] == left - big - fee_of(big) - 900 - fee_of(900)
    assert scheme.liquidity("rhb", "MYR")["net_position_minor"] == 900
    assert_ledger_ok(scheme)


def test_the_ledger_carries_one_posting_per_payee_and_one_for_fees_reconciling_with_rows(
    scheme: PaymentScheme,
) -> None:
    join_payees(scheme)
    items = [("cimb", 1_000), ("rhb", 2_000), ("cimb", 3_000), ("cimb", 100)]
    results = run_bulk(scheme, "maybank", items, bulk_id="payroll-11")
    assert all(r.state is TransferState.COMMITTED for r in results)
    src, fee_to, cimb, rhb = positions(scheme, ["maybank", SCHEME, "cimb", "rhb"])
    lines = scheme.ledger.get_account_transfers(src)
    bulk_lines = [t for t in lines if t.user_data_128 == ledger_id("bulk", "payroll-11")]
    fees = sum(fee_of(a) for _, a in items)
    got = sorted((t.credit_account_id, t.amount, t.user_data_64, t.code) for t in bulk_lines)
    assert got == sorted(
        [(fee_to, fees, 4, Code.FEE), (cimb, 4_100, 3, Code.PAYMENT), (rhb, 2_000, 1, Code.PAYMENT)]
    )
    assert all(not t.flags for t in bulk_lines)  # posted, not pending or linked
    with scheme.engine.connect() as conn:
        rows = conn.execute(
            sa.select(st.transfers).where(st.transfers.c.note == "bulk payroll-11")
        ).all()
    by_payee: dict[str, int] = {}
    for r in rows:
        assert (r.state, r.source_currency, r.target_currency) == ("COMMITTED", "MYR", "MYR")
        assert (
            r.source_amount == r.target_amount + r.fee == r.target_amount + fee_of(r.target_amount)
        )
        by_payee[r.payee_participant] = by_payee.get(r.payee_participant, 0) + r.target_amount
    assert by_payee == {"cimb": 4_100, "rhb": 2_000}
    assert sum(r.fee for r in rows) == fees
    assert_ledger_ok(scheme)


def test_each_precheck_rejects_its_item_alone(scheme: PaymentScheme) -> None:
    join_payees(scheme)
    join(scheme, "gone", "MYR", country="MY", alias=("MSISDN", "+60123000009"))
    scheme.set_active("gone", False)
    scheme.register_alias("maybank", "MSISDN", "+60123000005", "own customer", "MYR")
    run_bulk(scheme, "maybank", [("cimb", 10)], bulk_id="first")  # t<n>-0 exists now
    done = f"t{next(_ids) - 1}-0"
    items = [
        BulkItem(done, *PAYEES["cimb"], 10),
        BulkItem("x-unknown", "MSISDN", "+60199999999", 10),
        BulkItem("x-rwf", "MSISDN", "+250788123456", 10),  # mtn-rw's customer takes RWF
        BulkItem("x-onus", "MSISDN", "+60123000005", 10),
        BulkItem("x-gone", "MSISDN", "+60123000009", 10),
        BulkItem("x-ok", *PAYEES["rhb"], 10),
    ]
    results = bulk_transfers(scheme, "maybank", "mixed", "MYR", items)
    assert [(r.state.value, r.reason) for r in results] == [
        ("ABORTED", "transfer id already exists, created by a different request"),
        ("ABORTED", "no party for MSISDN +60199999999"),
        ("ABORTED", "payee takes RWF, not MYR"),
        ("ABORTED", "on-us: the payee is at the payer's own participant"),
        ("ABORTED", "payee participant gone is not active"),
        ("COMMITTED", None),
    ]
    with scheme.engine.connect() as conn:
        stored = {r[0] for r in conn.execute(sa.select(st.transfers.c.id)).all()}
    assert "x-ok" in stored and not stored & {"x-unknown", "x-rwf", "x-onus", "x-gone"}


def test_a_bulk_in_which_every_item_fails_changes_nothing(scheme: PaymentScheme) -> None:
    join_payees(scheme)
    left = scheme.liquidity("maybank", "MYR")["position_available_minor"]
    with unchanged(scheme):
        results = run_bulk(scheme, "maybank", [("cimb", left), ("rhb", left)])
    assert {r.reason for r in results} == {"net debit cap exceeded"}


@pytest.mark.parametrize(
    ("items", "bulk_id", "why"),
    [
        ([BulkItem("a", "MSISDN", "+60123000001", 10)] * 2, "b", "repeat"),
        # the repeat is named, as any bad item is: its index and id, and the first's index
        (
            [BulkItem(t, "MSISDN", "+60123000001", 10) for t in ("a", "b", "c", "b")],
            "b",
            r"^transfers\[3\] \(transferId 'b'\): transfer id repeats transfers\[1\]'s",
        ),
        ([BulkItem("a", "MSISDN", "+60123000001", 0)], "b", "positive"),
        # at the scheme's largest amount, its fee takes what the payer is charged past it:
        # named by the item's own amount and the fee (it named only their sum, 1005000000000000,
        # a number the payer's file does not hold, as "amount"; found by a review)
        (
            [BulkItem("a", "MSISDN", "+60123000001", 10**15)],
            "b",
            r"^transfers\[0\] \(transferId 'a'\): amount 1000000000000000 and its fee "
            r"5000000000000 make 1005000000000000, past the scheme's maximum \(1000000000000000\)",
        ),
        ([BulkItem("a b", "MSISDN", "+60123000001", 10)], "b", "transfer id"),
        ([BulkItem("a", "MSISDN", "0123", 10)], "b", "E.164"),
        ([BulkItem("a", "MSISDN", "+60123000001", 10)], "", "bulk id"),
        # the size says how many came as well as the most (the most alone told a client
        # splitting a payroll nothing of by how much it was over; the API's schema said both)
        ([], "b", r"holds 1\.\.8000 transfers, not 0$"),
        ([BulkItem("a", "MSISDN", "+60123000001", 10)] * 8_001, "b", r"1\.\.8000 .*not 8001$"),
    ],
)
def test_bad_input_rejects_the_whole_bulk_and_changes_nothing(
    scheme: PaymentScheme, items: list[BulkItem], bulk_id: str, why: str
) -> None:
    join_payees(scheme)
    with unchanged(scheme), pytest.raises(InvalidPaymentInput, match=why):
        bulk_transfers(scheme, "maybank", bulk_id, "MYR", items)


def test_a_suspended_payer_cannot_send_a_bulk(scheme: PaymentScheme) -> None:
    join_payees(scheme)
    scheme.set_active("maybank", False)
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        run_bulk(scheme, "maybank", [("cimb", 10)])


def test_a_bulk_resent_whole_is_answered_for_a_payer_suspended_since(
    scheme: PaymentScheme,
) -> None:
    """Found by a review: a bulk resent after its payer was suspended was refused 409, so
    the payer's system never learnt its items were paid; a resent prepare is answered. A
    resend with a new item (one the first bulk rejected: a retry after a lost answer) was
    refused whole too: its items are answered, the new one rejected alone. A bulk none of
    whose items exist still needs an active payer."""
    join_payees(scheme)
    items = [BulkItem(f"s-{n}", *PAYEES["cimb"], 1_000 + n) for n in range(3)]
    first = bulk_transfers(scheme, "maybank", "s", "MYR", items)
    assert [r.state.value for r in first] == ["COMMITTED"] * 3
    scheme.set_active("maybank", False)
    with unchanged(scheme):
        assert bulk_transfers(scheme, "maybank", "s", "MYR", items) == first
    with unchanged(scheme):
        again = bulk_transfers(
            scheme, "maybank", "s", "MYR", [*items, BulkItem("s-new", *PAYEES["cimb"], 5)]
        )
    assert again[:3] == first
    assert (again[3].state, again[3].reason) == (
        TransferState.ABORTED,
        "payer participant maybank is suspended",
    )
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        bulk_transfers(scheme, "maybank", "s2", "MYR", [BulkItem("s-new", *PAYEES["cimb"], 5)])
    # another bulk holding an id that exists (made by another request) is no resend
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        bulk_transfers(
            scheme, "maybank", "s3", "MYR", [items[0], BulkItem("s-new", *PAYEES["cimb"], 5)]
        )


def test_a_retried_bulk_commits_nothing_twice_and_a_reused_bulk_id_posts_apart(
    scheme: PaymentScheme,
) -> None:
    join_payees(scheme)
    items = [BulkItem(f"r-{n}", *PAYEES["cimb"], 1_000) for n in range(3)]
    items.append(BulkItem("r-big", *PAYEES["cimb"], 10**14))  # over the cap: rejected
    first = bulk_transfers(scheme, "maybank", "r", "MYR", items)
    assert [r.state.value for r in first] == ["COMMITTED"] * 3 + ["ABORTED"]
    # Resent (the payer's system timed out): each item as the first send left it, nothing
    # posted again; the rejected item, which left no transfer, is tried again.
    with unchanged(scheme):
        again = bulk_transfers(scheme, "maybank", "r", "MYR", items)
    assert again == first
    # The same ids in another bulk, or with another amount or payee: not the same items.
    for other in (
        bulk_transfers(scheme, "maybank", "r2", "MYR", items[:1]),
        bulk_transfers(scheme, "maybank", "r", "MYR", [items[0]._replace(amount_minor=999)]),
        bulk_transfers(scheme, "maybank", "r", "MYR", [BulkItem("r-0", *PAYEES["rhb"], 1_000)]),
    ):
        assert [(r.state.value, r.reason) for r in other] == [
            ("ABORTED", "transfer id already exists, created by a different request")
        ]
    more = [BulkItem(f"r-{n}", *PAYEES["cimb"], 1_000) for n in range(3, 5)]
    assert all(
        r.state.value == "COMMITTED" for r in bulk_transfers(scheme, "maybank", "r", "MYR", more)
    )
    assert scheme.liquidity("cimb", "MYR")["net_position_minor"] == 5_000
    assert_ledger_ok(scheme)


def test_a_resent_bulk_item_is_the_one_paid_if_it_names_the_same_payee_alias(
    scheme: PaymentScheme,
) -> None:
    """The row keeps the alias the item named: an alias that moved to another participant
    since (a ported number) still names the item paid; another alias, even one that names
    nobody, is another request."""
    join_payees(scheme)
    items = [BulkItem("p-1", *PAYEES["cimb"], 1_000), BulkItem("p-2", *PAYEES["cimb"], 1_000)]
    first = bulk_transfers(scheme, "maybank", "pay", "MYR", items)
    assert [r.state for r in first] == [TransferState.COMMITTED] * 2
    scheme.remove_alias("cimb", *PAYEES["cimb"])
    scheme.register_alias("rhb", *PAYEES["cimb"], "Same person, other bank", "MYR")
    with unchanged(scheme):
        again = bulk_transfers(scheme, "maybank", "pay", "MYR", items)
        other = bulk_transfers(
            scheme, "maybank", "pay", "MYR", [BulkItem("p-2", "MSISDN", "+60199999999", 1_000)]
        )
    assert again == first
    assert [(r.state.value, r.reason) for r in other] == [
        ("ABORTED", "transfer id already exists, created by a different request")
    ]
    # A row written before it kept its alias (migration 0011): the payee's participant
    with scheme.engine.begin() as conn:
        conn.execute(sa.update(st.transfers).values(payee_alias=None))
    with unchanged(scheme):
        legacy = bulk_transfers(scheme, "maybank", "pay", "MYR", items)
    assert [r.reason for r in legacy] == [  # the alias names rhb now, cimb was paid
        "transfer id already exists, created by a different request"
    ] * 2
    scheme.remove_alias("rhb", *PAYEES["cimb"])
    scheme.register_alias("cimb", *PAYEES["cimb"], "Back again", "MYR")
    assert bulk_transfers(scheme, "maybank", "pay", "MYR", items) == first
    assert scheme.liquidity("cimb", "MYR")["net_position_minor"] == 2_000
    assert_ledger_ok(scheme)


def _one_item_bulk(scheme: PaymentScheme, bulk_id: str, column: str) -> tuple[str, Any]:
    """A bulk of one item, 10 to cimb's payee: the item's transfer id, and ``column`` of its
    row."""
    join_payees(scheme)
    run_bulk(scheme, "maybank", [("cimb", 10)], bulk_id=bulk_id)
    tid = f"t{next(_ids) - 1}-0"
    with scheme.engine.connect() as conn:
        stored = conn.execute(
            sa.select(st.transfers.c[column]).where(st.transfers.c.id == tid)
        ).scalar_one()
    return tid, stored


def test_a_bulk_items_row_keeps_the_payee_alias_it_named(scheme: PaymentScheme) -> None:
    _, stored = _one_item_bulk(scheme, "alias", "payee_alias")
    assert stored == "MSISDN:" + PAYEES["cimb"][1]


def test_migration_0011_goes_down_and_up(scheme: PaymentScheme) -> None:
    join_payees(scheme)
    items = [BulkItem("m-1", *PAYEES["cimb"], 1_000)]
    first = bulk_transfers(scheme, "maybank", "mig", "MYR", items)
    downgrade(scheme.engine, "0010_idempotency_headers")
    columns = {c["name"] for c in sa.inspect(scheme.engine).get_columns("pay_transfers")}
    assert "payee_alias" not in columns
    upgrade(scheme.engine)  # the alias is gone: the row is answered by its participant
    with unchanged(scheme):
        assert bulk_transfers(scheme, "maybank", "mig", "MYR", items) == first


def test_a_reservation_that_expired_frees_its_liquidity_for_the_bulk(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    join_payees(scheme)
    left = scheme.liquidity("maybank", "MYR")["position_available_minor"]
    amount = left * 9 // 10
    scheme.create_quote("maybank", "q-hold", *PAYEES["rhb"], amount, "RECEIVE", "MYR")
    scheme.prepare_transfer("maybank", "t-hold", "q-hold")
    assert scheme.liquidity("maybank", "MYR")["position_reserved_minor"] > 0
    clock.advance(3_600)  # past the transfer's expiry; nothing has voided it yet
    results = run_bulk(scheme, "maybank", [("cimb", amount)])
    assert results[0].state is TransferState.COMMITTED
    assert scheme.liquidity("maybank", "MYR")["position_reserved_minor"] == 0
    assert_ledger_ok(scheme)


def test_a_bulk_items_quote_id_is_one_no_client_can_take_first(scheme: PaymentScheme) -> None:
    tid, stored = _one_item_bulk(scheme, "q", "quote_id")
    assert stored == bulk_quote_id(tid)
    with pytest.raises(InvalidPaymentInput, match="quote id"):
        scheme.create_quote("maybank", stored, *PAYEES["rhb"], 100, "SEND", "MYR")
    longest = [bulk_quote_id(c * n) for c in "ab" for n in (59, 60, 64)]
    assert len(set(longest)) == 6 and all(len(q) <= 64 and "#" in q for q in longest)
    assert bulk_quote_id("a" * 59) == "bulk#" + "a" * 59
    assert bulk_quote_id("a" * 60).startswith("bulk##")


def test_a_reservation_falling_due_while_items_are_decided_frees_its_liquidity_too(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """Deciding 8,000 items takes time; a reservation that falls due meanwhile is voided
    by the same commit, so the items are decided again on the balances it frees (found in
    review: the first item was rejected for liquidity its own commit released)."""
    join_payees(scheme)
    amount = scheme.liquidity("maybank", "MYR")["position_available_minor"] * 6 // 10
    scheme.create_quote("maybank", "q-due", *PAYEES["rhb"], amount, "RECEIVE", "MYR")
    scheme.prepare_transfer("maybank", "t-due", "q-due")
    with scheme.engine.connect() as conn:
        due = conn.exec_driver_sql("SELECT MAX(expires_at) FROM ledger_pending").scalar_one()
    clock.advance((due - clock.now_ns()) / NS_PER_S - 0.05)  # due 50 ms into the bulk

    class SlowFees(FeeSchedule):  # each item's pricing takes 100 ms of the clock
        def fee(self, principal_minor: int, currency: str) -> int:
            clock.advance(0.1)
            return super().fee(principal_minor, currency)

    scheme.fees = SlowFees(bps=50)
    results = run_bulk(scheme, "maybank", [("cimb", amount), ("cimb", 100)])
    assert [(r.state.value, r.reason) for r in results] == [("COMMITTED", None)] * 2
    assert scheme.liquidity("maybank", "MYR")["position_reserved_minor"] == 0
    assert_ledger_ok(scheme)


def test_insert_rows_commits_with_the_callers_transaction_even_as_its_first_statement(
    scheme: PaymentScheme,
) -> None:
    """On PostgreSQL the rows go in by COPY through the driver, which does not begin
    SQLAlchemy's transaction: begun first, or the caller's commit committed nothing (found in
    review). Awkward text survives the COPY escaping; a rollback takes the rows back."""
    columns = ("id", "quote_id", "payer_participant", "payee_participant", "source_currency",
               "target_currency", "source_amount", "fee", "target_amount", "state",
               "expires_at", "created_at", "updated_at", "window_id", "note")  # fmt: skip
    note = "tab\tnew\nline back\\slash \\N"

    def row(tid: str) -> tuple[object, ...]:
        return (tid, f"bulk#{tid}", "maybank", "mtn-rw", "MYR", "MYR", 11, 1, 10, "COMMITTED",
                5, 5, 5, None, note)  # fmt: skip

    with UnitOfWork(scheme.engine) as uow:
        st.insert_rows(uow.connection, st.transfers, columns, [row("first")])
        uow.commit()
    with UnitOfWork(scheme.engine) as uow:
        st.insert_rows(uow.connection, st.transfers, columns, [row("rolled-back")])
        uow.rollback()
    with scheme.engine.connect() as conn:
        got = conn.execute(sa.select(st.transfers.c.id, st.transfers.c.note)).all()
    assert [tuple(r) for r in got] == [("first", note)]


def test_insert_rows_adds_the_constants_to_every_row_in_order(scheme: PaymentScheme) -> None:
    """The constants (bound once; on SQLite through a staging table) reach every row, rows
    keep their order, and each later insert adds only its own rows, also after a transaction
    whose insert failed."""
    columns = ("id", "quote_id", "source_amount", "fee", "target_amount", "note")
    constants = {
        "payer_participant": "maybank",
        "payee_participant": "mtn-rw",
        "source_currency": "MYR",
        "target_currency": "MYR",
        "state": "COMMITTED",
        "expires_at": 5,
        "created_at": 6,
        "updated_at": 7,
        "window_id": None,
    }

    def rows(tag: str, n: int) -> list[tuple[object, ...]]:
        return [(f"{tag}{i}", f"bulk#{tag}{i}", 11 + i, 1, 10 + i, f"it's {i}") for i in range(n)]

    with UnitOfWork(scheme.engine) as uow:
        st.insert_rows(uow.connection, st.transfers, columns, rows("a", 3), constants)
        uow.commit()
    # the second row repeats a stored id: the whole insert fails (COPY raises the driver's own)
    with UnitOfWork(scheme.engine) as uow, pytest.raises((sa.exc.IntegrityError, UniqueViolation)):
        st.insert_rows(
            uow.connection, st.transfers, columns, [*rows("x", 1), *rows("a", 1)], constants
        )
    with UnitOfWork(scheme.engine) as uow:
        st.insert_rows(uow.connection, st.transfers, columns, rows("b", 2), constants)
        uow.commit()
    t = st.transfers.c
    with scheme.engine.connect() as conn:
        got = conn.execute(
            sa.select(t.id, t.source_amount, t.note, t.payer_participant, t.state, t.expires_at,
                      t.created_at, t.updated_at, t.window_id).order_by(t.id)
        ).all()  # fmt: skip
    expected = [(f"{tag}{i}", 11 + i, f"it's {i}", "maybank", "COMMITTED", 5, 6, 7, None)
                for tag, n in (("a", 3), ("b", 2)) for i in range(n)]  # fmt: skip
    assert [tuple(r) for r in got] == expected
    if scheme.engine.dialect.name == "sqlite":  # inserted in the rows' order
        with scheme.engine.connect() as conn:
            order = conn.exec_driver_sql("SELECT id FROM pay_transfers ORDER BY rowid").all()
        assert [r[0] for r in order] == ["a0", "a1", "a2", "b0", "b1"]


def test_insert_rows_refuses_a_column_given_twice_or_unknown(scheme: PaymentScheme) -> None:
    with UnitOfWork(scheme.engine) as uow:
        with pytest.raises(ValueError, match="both per row and as constants"):
            st.insert_rows(uow.connection, st.transfers, ("id", "fee"), [("a", 1)], {"fee": 2})
        with pytest.raises(ValueError, match="has no column colour"):
            st.insert_rows(uow.connection, st.transfers, ("id",), [("a",)], {"colour": "red"})


def test_insert_rows_in_one_transaction_after_a_caught_failure_and_with_other_columns(
    scheme: PaymentScheme,
) -> None:
    """On one connection, in one transaction: a failed insert whose error the caller caught
    leaves nothing for the next insert to copy, and an insert with another set of columns
    is staged apart (a staging table of the first call's columns had no column for it)."""
    constants = {"payer_participant": "maybank", "payee_participant": "mtn-rw",
                 "source_currency": "MYR", "target_currency": "MYR", "state": "COMMITTED",
                 "expires_at": 5, "created_at": 5, "updated_at": 5}  # fmt: skip
    narrow = ("id", "quote_id", "source_amount", "fee", "target_amount")
    wide = (*narrow, "note")
    with UnitOfWork(scheme.engine) as uow:
        conn = uow.connection
        st.insert_rows(conn, st.transfers, narrow, [("a", "bulk#a", 2, 1, 1)], constants)
        # SQLite undoes only the failed statement and the transaction goes on (the staged
        # rows stay staged); PostgreSQL's needs a savepoint to go on
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.exec_driver_sql("SAVEPOINT caught")
        with pytest.raises((sa.exc.IntegrityError, UniqueViolation)):
            rows = [("b", "bulk#b", 2, 1, 1), ("a", "bulk#a2", 2, 1, 1)]  # "a" exists
            st.insert_rows(conn, st.transfers, narrow, rows, constants)
        if postgres:
            conn.exec_driver_sql("ROLLBACK TO SAVEPOINT caught")
        st.insert_rows(conn, st.transfers, narrow, [("c", "bulk#c", 2, 1, 1)], constants)
        st.insert_rows(conn, st.transfers, wide, [("d", "bulk#d", 2, 1, 1, "n")], constants)
        uow.commit()
    with scheme.engine.connect() as conn:
        got = conn.execute(sa.select(st.transfers.c.id, st.transfers.c.note)).all()
    assert sorted(tuple(r) for r in got) == [("a", None), ("c", None), ("d", "n")]


def test_a_bulk_items_pacs008_names_the_customer_paid_not_only_its_bank(
    scheme: PaymentScheme,
) -> None:
    """A bulk item has no quote, and its pacs.008 named the payee's bank as the creditor: the
    customer paid (the alias the item named, kept on its row) was in no message. It is now,
    while the alias is still that bank's; once it is gone the bank stands in, as before."""
    from entrepot.payments import messages

    join_payees(scheme)
    (done,) = run_bulk(scheme, "maybank", [("cimb", 100)])
    assert done.state is TransferState.COMMITTED
    t = scheme.get_transfer("maybank", done.transfer_id)
    assert t.payee_alias == "MSISDN:+60123000001"
    ct = messages.credit_transfer(scheme, t, messages.payee_party(scheme, t))
    assert (ct.creditor.name, ct.creditor.alias_type, ct.creditor.alias) == (
        "customer of cimb",
        "MSISDN",
        "+60123000001",
    )
    assert ct.creditor_agent.name == "CIMB"
    scheme.remove_alias("cimb", *PAYEES["cimb"])
    assert messages.payee_party(scheme, t) is None  # the bank stands in


def test_a_bulks_payees_are_screened_once_each_and_a_held_one_is_rejected_alone(
    scheme: PaymentScheme,
) -> None:
    """Found by a review: bulks were never screened. A payee a single payment held for review
    ("BANCO NACIONAL DE CUBA") was paid at once inside a bulk, and nothing was logged."""
    from entrepot.config import shared_data_dir
    from entrepot.payments.screening import SanctionsScreening
    from entrepot.risk.decisions import MemorySink
    from entrepot.risk.sanctions import Screener

    lists = shared_data_dir() / "sanctions"
    if not (lists / "ofac_sdn.csv").is_file():
        pytest.skip(f"the OFAC snapshot is not at {lists}")
    sink = MemorySink()
    scheme.screening = SanctionsScreening(Screener.from_directory(lists, sink=sink))
    join_payees(scheme)
    scheme.register_alias("cimb", "MSISDN", "+60123000077", "BANCO NACIONAL DE CUBA", "MYR")
    listed = ("MSISDN", "+60123000077")
    items = [
        BulkItem("s-1", *PAYEES["cimb"], 10),
        BulkItem("s-2", *listed, 20),
        BulkItem("s-3", *PAYEES["rhb"], 30),
        BulkItem("s-4", *listed, 40),
        BulkItem("s-5", *PAYEES["cimb"], 50),
    ]
    results = bulk_transfers(scheme, "maybank", "screened", "MYR", items)
    assert [r.state.value for r in results] == [
        "COMMITTED", "ABORTED", "COMMITTED", "ABORTED", "COMMITTED",
    ]  # fmt: skip
    for held in (results[1], results[3]):
        assert held.reason is not None and held.reason.startswith(bulk_module.HELD_IN_BULK)
        assert "BANCO NACIONAL DE CUBA" in held.reason and "sanctions decision" in held.reason
    # three payee parties, three screenings logged, in one append: the cimb customer once
    decisions = list(sink)
    assert sorted(d.outcome for d in decisions) == ["clear", "clear", "review"]
    with scheme.engine.connect() as conn:
        stored = {r[0] for r in conn.execute(sa.select(st.transfers.c.id)).all()}
    assert {"s-1", "s-3", "s-5"} <= stored and not stored & {"s-2", "s-4"}
    # resent (a client that timed out): what it paid is answered as made, not screened or
    # logged again; the items it rejected left no transfer and are tried (and screened) again
    again = bulk_transfers(scheme, "maybank", "screened", "MYR", items)
    assert [r.state.value for r in again] == [r.state.value for r in results]
    assert [d.outcome for d in list(sink)[3:]] == ["review"]
    # a single payment to it is held for the reviewer, as before
    q = scheme.create_quote("maybank", "q-single", *listed, 20, "SEND", "MYR")
    assert scheme.prepare_transfer("maybank", "t-single", q.id).state is TransferState.HOLD
    assert_ledger_ok(scheme)


class _Recording:
    """Holds a payee whose display name says HOLD; records what it screens, and when."""

    screens_ahead = True

    def __init__(self, scheme: PaymentScheme, on_first: Any = None) -> None:
        self.scheme = scheme
        self.seen: list[tuple[str, bool]] = []  # (name, screened while the bulk's lock held)
        self.on_first = on_first

    def screen(self, transfer: Any, payee: Any) -> Any:
        from entrepot.payments.services import ScreeningDecision

        group = self.scheme._group
        under_lock = group is not None and group._turn.locked()
        self.seen.append((payee.display_name, under_lock))
        if self.on_first is not None:
            hook, self.on_first = self.on_first, None
            hook()
        return ScreeningDecision(hold="HOLD" in payee.display_name, reasons=("listed",))


def test_a_bulks_payees_are_screened_before_the_write_lock_and_again_if_renamed(
    scheme: PaymentScheme,
) -> None:
    """A payroll's thousands of payees take about a millisecond each to screen: under the
    write lock every other writer would wait seconds. They are screened from a snapshot
    first; a party renamed meanwhile is screened again inside, on the name it has then."""
    join_payees(scheme)

    def rename() -> None:
        with scheme.engine.begin() as conn:
            conn.execute(
                sa.update(st.aliases)
                .where(st.aliases.c.alias == PAYEES["rhb"][1])
                .values(display_name="HOLD renamed")
            )

    recording = _Recording(scheme, on_first=rename)
    scheme.screening = recording
    items = [BulkItem("a-1", *PAYEES["cimb"], 10), BulkItem("a-2", *PAYEES["rhb"], 20)]
    results = bulk_transfers(scheme, "maybank", "ahead", "MYR", items)
    assert [r.state.value for r in results] == ["COMMITTED", "ABORTED"]
    assert recording.seen == [
        ("customer of cimb", False),  # ahead, outside the lock
        ("customer of rhb", False),
        ("HOLD renamed", True),  # read otherwise inside: screened again there
    ]


def test_a_bulk_the_snapshot_shows_refused_screens_and_logs_nothing_ahead(
    scheme: PaymentScheme,
) -> None:
    """Found by a review: a bulk whose payer is suspended or does not hold the currency, and a
    bulk item whose payee's participant is suspended, had their payees screened (and logged)
    ahead of the lock, then were refused: decisions for payments that never were. A single
    prepare the snapshot shows refused is not screened; nor are these now."""
    join_payees(scheme)
    join(scheme, "bk-rw", "RWF")  # holds no MYR
    recording = _Recording(scheme)
    scheme.screening = recording
    items = [BulkItem("r-1", *PAYEES["cimb"], 10), BulkItem("r-2", *PAYEES["rhb"], 20)]
    with unchanged(scheme), pytest.raises(CurrencyNotSupported):
        bulk_transfers(scheme, "bk-rw", "no-myr", "MYR", items)
    scheme.set_active("maybank", False)
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        bulk_transfers(scheme, "maybank", "suspended", "MYR", items)
    assert recording.seen == []
    scheme.set_active("maybank", True)
    scheme.set_active("rhb", False)  # its customer's item is rejected alone, not screened
    results = bulk_transfers(scheme, "maybank", "payee-suspended", "MYR", items)
    assert [r.state.value for r in results] == ["COMMITTED", "ABORTED"]
    assert results[1].reason == "payee participant rhb is not active"
    assert recording.seen == [("customer of cimb", False)]
    assert_ledger_ok(scheme)


def test_a_resent_bulk_whose_first_item_was_rejected_screens_no_paid_payee_again(
    scheme: PaymentScheme,
) -> None:
    """Found by a review: ahead of the lock, a resend was recognised by its first item alone;
    when the first bulk had rejected that item (it left no transfer), every payee it paid
    was screened, and logged, again, for payments not being made."""
    join_payees(scheme)
    recording = _Recording(scheme)
    scheme.screening = recording
    items = [
        BulkItem("x-0", "MSISDN", "+60129999999", 10),  # no such party: rejected
        BulkItem("x-1", *PAYEES["cimb"], 10),
    ]
    first = bulk_transfers(scheme, "maybank", "x", "MYR", items)
    assert [r.state.value for r in first] == ["ABORTED", "COMMITTED"]
    assert recording.seen == [("customer of cimb", False)]
    assert bulk_transfers(scheme, "maybank", "x", "MYR", items) == first
    assert recording.seen == [("customer of cimb", False)]  # not screened again


class _Learning:
    """A screening that keeps state of what it screens (no ``screens_ahead``): it counts each
    payee party screened, and gives with its decision how to take that back."""

    def __init__(self) -> None:
        self.learned: dict[str, int] = {}

    def screen(self, transfer: Any, payee: Any) -> Any:
        from entrepot.payments.services import ScreeningDecision

        name = payee.display_name
        self.learned[name] = self.learned.get(name, 0) + 1

        def undo() -> None:
            self.learned[name] -= 1
            if not self.learned[name]:
                del self.learned[name]

        return ScreeningDecision(hold=False, undo=(undo,))


@pytest.mark.parametrize("group_commit", [True, False])
def test_a_bulk_that_does_not_commit_is_taken_back_out_of_what_screening_learned(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch, group_commit: bool
) -> None:
    """Found by a review: a prepare whose transfer is not written after all runs its
    screening's take-back (``ScreeningDecision.undo``), and a bulk did not: a screening that
    keeps state of what it sees (the ``Screening`` protocol allows one) kept a bulk whose
    COMMIT failed, and counted it again at each retry. (Fraud screening scores no bulk item
    today: an item names no payer party, and the feature state is left as it was.)"""
    from contextlib import contextmanager

    join_payees(scheme)
    if not group_commit:
        monkeypatch.setattr(scheme, "_group", None)
    learning = _Learning()
    scheme.screening = learning
    items = [BulkItem("u-1", *PAYEES["cimb"], 10), BulkItem("u-2", *PAYEES["rhb"], 20)]
    real = scheme._uow

    @contextmanager
    def commit_fails():  # type: ignore[no-untyped-def]
        with real() as uow:
            yield uow
            raise OSError(5, "Input/output error")  # at the COMMIT: it rolls back

    for _ in range(2):  # failed, and retried
        monkeypatch.setattr(scheme, "_uow", commit_fails)
        with unchanged(scheme), pytest.raises(OSError):
            bulk_transfers(scheme, "maybank", "u", "MYR", items)
        monkeypatch.setattr(scheme, "_uow", real)
    assert learning.learned == {}
    results = bulk_transfers(scheme, "maybank", "u", "MYR", items)
    assert [r.state.value for r in results] == ["COMMITTED", "COMMITTED"]
    assert learning.learned == {"customer of cimb": 1, "customer of rhb": 1}
    assert_ledger_ok(scheme)


def test_with_fraud_screening_on_a_bulks_payees_are_still_screened_before_the_write_lock(
    scheme: PaymentScheme,
) -> None:
    """Found by a review: with fraud screening on (``ENTREPOT_FRAUD_MODEL``), the combined
    screening keeps state, so a bulk screened every payee under the write lock: a payroll of
    thousands of distinct payees (about a millisecond each for the watch lists) held every
    other writer for seconds. Fraud screening scores no bulk item (an item names no payer
    party) and learns nothing from one: the bulk screens ahead as with sanctions alone."""
    from entrepot.payments.screening import CombinedScreening, FraudScreening

    join_payees(scheme)
    recording = _Recording(scheme)

    def no_model() -> Any:
        raise AssertionError("a bulk item is not fraud-scored: the model is not loaded")

    fraud = FraudScreening(no_model)
    scheme.screening = CombinedScreening([recording, fraud])
    items = [BulkItem("f-1", *PAYEES["cimb"], 10), BulkItem("f-2", *PAYEES["rhb"], 20)]
    results = bulk_transfers(scheme, "maybank", "fraud-on", "MYR", items)
    assert [r.state.value for r in results] == ["COMMITTED", "COMMITTED"]
    assert recording.seen == [("customer of cimb", False), ("customer of rhb", False)]
    assert fraud.unscored == 2
    assert_ledger_ok(scheme)
