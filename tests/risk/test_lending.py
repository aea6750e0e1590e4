"""Merchant lending through its services, on SQLite and (with ENTREPOT_TEST_POSTGRES_URL) on
PostgreSQL: offers and declines with their reasons and data, disbursement through the ledger,
repayment withheld from payouts inside the caller's transaction, delinquency by the clock,
contests and reviews, scoping by caller. The ledger balances always equal the loan book, and
a rejected call changes nothing."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from entrepot.kernel.clock import FakeClock
from entrepot.ledger import Ledger, Transfer
from entrepot.risk.decisions import MemorySink
from entrepot.risk.lending import (
    AlreadyContested,
    Code,
    Contest,
    ContestClosed,
    ContestNotFound,
    ContestStatus,
    CreditPolicy,
    ExceedsOutstanding,
    Features,
    IdConflict,
    InvalidHistory,
    InvalidLendingInput,
    Lending,
    LoanAlreadyOpen,
    LoanClosed,
    LoanNotFound,
    LoanState,
    MerchantHistory,
    ModelScore,
    NotAnOffer,
    NotYours,
    OfferClosed,
    OfferExpired,
    OfferNotFound,
    OfferOutcome,
    OfferState,
    PolicyChanged,
    PolicyNotFound,
    ReferenceNotFound,
    ReviewerNotIndependent,
    ScorerMissing,
    UnderReview,
    ledger_id,
)
from entrepot.risk.lending import store as lending_store
from entrepot.risk.lending.services import DECISION_GRACE_S
from entrepot.storage.uow import UnitOfWork
from tests.counters import write_transactions

DAY_S = 86_400
SALES = (300_000, 320_000, 310_000, 330_000, 350_000, 360_000)
PRINCIPAL, FEE = 492_499, 14_775  # 1.5 x 328_333 rounded down; 3% of it rounded half up
DUE = PRINCIPAL + FEE


def policy(lender: str = "bank-rw", currency: str = "RWF", **changes: Any) -> CreditPolicy:
    base: dict[str, Any] = {
        "lender_id": lender,
        "currency": currency,
        "min_tenure_days": 90,
        "min_avg_monthly_sales_minor": 100_000,
        "max_refund_rate": "0.05",
        "max_dispute_rate": "0.02",
        "min_regularity": "0.5",
        "limit_multiple": "1.5",
        "limit_min_minor": 50_000,
        "limit_max_minor": 2_000_000,
        "fee_bps": 300,
        "term_days": 90,
        "repayment_share_bps": 1_000,
        "offer_valid_days": 14,
        "late_after_days": 30,
        "default_after_days": 60,
    }
    return CreditPolicy(**{**base, **changes})


def history(clock: FakeClock, merchant: str = "m-kigali-1", **changes: Any) -> MerchantHistory:
    base: dict[str, Any] = {
        "merchant_id": merchant,
        "country": "RW",
        "currency": "RWF",
        "as_of_ns": clock.now_ns(),
        "tenure_days": 400,
        "monthly_sales_minor": SALES,
        "order_count": 500,
        "refund_count": 10,
        "refund_minor": 50_000,
        "dispute_count": 4,
        "disputes_lost": 1,
        "settlement_weeks": 40,
        "observed_weeks": 50,
    }
    return MerchantHistory(**{**base, **changes})


def poor_history(clock: FakeClock, merchant: str = "m-kigali-2") -> MerchantHistory:
    """Too new and too many refunds: a decline."""
    return history(clock, merchant, tenure_days=45, refund_count=40)


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def lending(engine: sa.Engine, ledger: Ledger, clock: FakeClock, sink: MemorySink) -> Lending:
    lend = Lending(engine, ledger, clock, sink=sink)
    lend.set_policy("bank-rw", policy())
    lend.set_policy("bank-ke", policy("bank-ke"))
    return lend


def table_rows(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            t.name: sorted(tuple(r) for r in conn.execute(sa.select(t)).all())
            for t in lending_store.TABLES
        }


def snapshot(lend: Lending, sink: MemorySink) -> dict[str, Any]:
    """Every lending row, every ledger account's balances, the ledgers' totals, the log."""
    with lend.engine.connect() as conn:
        accounts = sorted(
            tuple(r) for r in conn.execute(sa.text("SELECT * FROM ledger_accounts")).all()
        )
        transfers = conn.execute(sa.text("SELECT count(*) FROM ledger_transfers")).scalar()
    return {
        "tables": table_rows(lend.engine),
        "accounts": accounts,
        "transfers": transfers,
        "ledgers": lend.ledger.check_invariants().ledgers,
        "log": list(sink.decisions),
    }


@contextmanager
def unchanged(lend: Lending, sink: MemorySink) -> Iterator[None]:
    """``with unchanged(lend, sink), pytest.raises(E): ...``: the call fails, changes nothing."""
    before = snapshot(lend, sink)
    yield
    after = snapshot(lend, sink)
    for part in before:
        assert after[part] == before[part], f"a rejected call changed {part}"


def assert_book_matches_ledger(lend: Lending, lender: str = "bank-rw") -> None:
    """Each loan's amounts are its receivable account's; funding + fees = what loans owe."""
    report = lend.ledger.check_invariants()
    assert report.ok, report.violations
    book = lend.loan_book(lender, "RWF")
    assert book["reconciled"], book
    for loan in lend.list_loans(lender):
        account = lend.ledger.get_account(loan.receivable_account)
        assert (
            account.debits_posted == loan.total_due_minor == loan.principal_minor + loan.fee_minor
        )
        assert account.credits_posted == loan.repaid_minor
        repaid = sum(r.amount_minor for r in lend.repayments(lender, loan.loan_id))
        assert repaid == loan.repaid_minor
        assert (loan.state is LoanState.REPAID) == (loan.outstanding_minor == 0)


def offer_and_accept(lend: Lending, clock: FakeClock, offer_id: str = "o-1") -> str:
    lend.offer("m-kigali-1", offer_id, "bank-rw", history(clock))
    return lend.accept("m-kigali-1", offer_id).loan_id


# --------------------------------------------------------------------------- policies
def test_policies_are_versioned_data_owned_by_their_lender(
    lending: Lending, sink: MemorySink
) -> None:
    first = lending.get_policy("bank-rw", "RWF")
    assert first.version == 1
    assert lending.set_policy("bank-rw", policy()) == first  # same rules: same version
    second = lending.set_policy("bank-rw", policy(fee_bps=250))
    assert (second.version, second.fee_bps) == (2, 250)
    assert lending.get_policy("bank-rw", "RWF", 1) == first
    assert lending.get_policy("bank-rw", "RWF") == second
    with unchanged(lending, sink), pytest.raises(NotYours, match="may not set the policy"):
        lending.set_policy("bank-ke", policy(fee_bps=1))
    with pytest.raises(PolicyNotFound, match=r"'bank-rw' has no EUR credit policy$"):
        lending.get_policy("bank-rw", "EUR")
    with pytest.raises(PolicyNotFound, match="has no RWF credit policy version 3"):
        lending.get_policy("bank-rw", "RWF", 3)
    # past what the version column holds: none either (PostgreSQL's integer overflowed: a
    # DataError, found by a review)
    for version in (1 << 31, 1 << 63, 0):
        with pytest.raises(PolicyNotFound, match=f"version {version}"):
            lending.get_policy("bank-rw", "RWF", version)


def test_a_participant_with_a_64_character_id_lends(lending: Lending, clock: FakeClock) -> None:
    """Found by a review: a lender's id was checked as an offer id, 56 characters at most (an
    offer id leaves room for ``-review``), so a participant whose id has 57-64 characters,
    as the scheme allows, could set no policy and lend nothing. A lender's and a merchant's
    ids take 64, as their columns do; an offer id still 56."""
    lender = "bank-" + "x" * 59
    merchant = "m-" + "k" * 62
    lending.set_policy(lender, policy(lender))
    offer = lending.offer(merchant, "o-long", lender, history(clock, merchant))
    assert offer.lender_id == lender
    assert lending.accept(merchant, "o-long").loan_id
    with pytest.raises(InvalidLendingInput, match="1-64"):
        lending.set_policy(lender + "x", policy(lender + "x"))
    with pytest.raises(InvalidLendingInput, match="1-56"):
        lending.offer(merchant, "o" * 57, lender, history(clock, merchant))


# --------------------------------------------------------------------------- offers
def test_an_offer_records_its_reasons_data_and_policy_and_is_logged(
    lending: Lending, clock: FakeClock, sink: MemorySink
) -> None:
    h = history(clock)
    o = lending.offer("m-kigali-1", "o-1", "bank-rw", h)
    assert (o.outcome, o.state) == (OfferOutcome.OFFER, OfferState.OPEN)
    assert (o.limit_minor, o.principal_minor, o.fee_minor) == (PRINCIPAL, PRINCIPAL, FEE)
    assert (o.terms.term_days, o.terms.repayment_share_bps) == (90, 1_000)
    assert o.expires_at_ns == clock.now_ns() + 14 * DAY_S * 10**9
    assert o.policy_version == 1 and o.model_version == "lending-policy:bank-rw:RWF:v1"
    assert o.history == h and o.features.avg_monthly_sales_minor == 328_333
    assert o.reasons[0].text == "limit 492499 RWF: 1.5 x average monthly sales 328333 RWF"
    assert lending.get_offer("bank-rw", "o-1") == o  # exactly as stored
    (logged,) = sink.decisions
    assert (logged.decision_id, logged.kind, logged.outcome) == (o.log_id, "credit", "offer")
    assert logged.model_version == o.model_version
    assert logged.reasons == tuple(r.text for r in o.reasons)
    assert logged.inputs["features"] == o.features.to_dict()
    assert logged.inputs["policy_version"] == 1
    assert "m-kigali-1" not in str(logged.inputs)  # the merchant only as a digest
    assert Features.from_dict(logged.inputs["features"]) == o.features


def test_a_decline_names_rules_values_and_thresholds(
    lending: Lending, clock: FakeClock, sink: MemorySink
) -> None:
    d = lending.offer("m-kigali-2", "o-2", "bank-rw", poor_history(clock))
    assert (d.outcome, d.state, d.principal_minor) == (OfferOutcome.DECLINE, OfferState.DECLINED, 0)
    assert [(r.rule, r.value, r.threshold) for r in d.reasons] == [
        ("max_refund_rate", "0.0800", "0.05"),
        ("min_tenure_days", "45", "90"),
    ]
    assert sink.decisions[-1].outcome == "decline"
    with unchanged(lending, sink), pytest.raises(NotAnOffer, match="is a decline"):
        lending.accept("m-kigali-2", "o-2")


def test_an_offer_id_is_an_idempotency_key(
    lending: Lending, clock: FakeClock, sink: MemorySink
) -> None:
    first = lending.offer("m-kigali-1", "o-1", "bank-rw", history(clock))
    clock.advance(3_600)
    assert (
        lending.offer("bank-rw", "o-1", "bank-rw", history(clock, as_of_ns=first.history.as_of_ns))
        == first
    )
    assert len(sink.decisions) == 1  # a replay decides nothing new
    with unchanged(lending, sink), pytest.raises(IdConflict, match="used for another request"):
        lending.offer("m-kigali-1", "o-1", "bank-rw", history(clock, tenure_days=401))
    with unchanged(lending, sink), pytest.raises(IdConflict):
        lending.offer(
            "m-kigali-1", "o-1", "bank-ke", history(clock, as_of_ns=first.history.as_of_ns)
        )


def test_bad_offer_requests_change_nothing(
    lending: Lending, clock: FakeClock, sink: MemorySink
) -> None:
    h = history(clock)
    with unchanged(lending, sink):
        with pytest.raises(PolicyNotFound, match="'bank-xx' has no RWF credit policy"):
            lending.offer("m-kigali-1", "o-1", "bank-xx", h)
        with pytest.raises(PolicyNotFound, match="no EUR credit policy"):
            lending.offer("m-kigali-1", "o-1", "bank-rw", history(clock, currency="EUR"))
        with pytest.raises(NotYours, match="may not ask for credit"):
            lending.offer("m-other", "o-1", "bank-rw", h)
        with pytest.raises(InvalidLendingInput, match="offer_id"):
            lending.offer("m-kigali-1", "bad id", "bank-rw", h)
        with pytest.raises(InvalidHistory, match="future"):
            lending.offer(
                "m-kigali-1", "o-1", "bank-rw", history(clock, as_of_ns=clock.now_ns() + 1)
            )
        with pytest.raises(InvalidLendingInput, match="must be a MerchantHistory"):
            lending.offer("m-kigali-1", "o-1", "bank-rw", h.to_dict())  # type: ignore[arg-type]
        # the lender's policy names the months it decides on (12): a longer history is not
        # the merchant's to give (it chose its window, and flipped the decision: a review)
        # the history was built on the 6 months the policy named then; it names 12 now
        with pytest.raises(PolicyChanged, match="changed its policy while the history"):
            lending.offer("m-kigali-1", "o-1", "bank-rw", h, window=6)
        longer = history(clock, monthly_sales_minor=(150_000,) * 13)
        with pytest.raises(InvalidHistory, match="covers 13 months; lender 'bank-rw' decides"):
            lending.offer("m-kigali-1", "o-1", "bank-rw", longer)


def test_a_policy_with_a_model_cutoff_needs_and_records_the_model(
    engine: sa.Engine, ledger: Ledger, clock: FakeClock
) -> None:
    class FakeModel:
        def score(self, features: Features) -> ModelScore:
            # a float made Decimal, as a model gives: 55 digits (overflowed the stored score)
            low = Decimal(float("0.04"))
            pd = Decimal("0.40") if features.refund_rate > Decimal("0.03") else low
            return ModelScore("merchant-scorecard-3", pd, ("refund_rate in [0.03, inf)",))

    sink = MemorySink()
    bare = Lending(engine, ledger, clock, sink=sink)
    bare.set_policy("bank-rw", policy(max_pd="0.1"))
    with unchanged(bare, sink), pytest.raises(ScorerMissing, match="no credit model"):
        bare.offer("m-kigali-1", "o-1", "bank-rw", history(clock))
    scored = Lending(engine, ledger, clock, sink=sink, scorer=FakeModel())
    good = scored.offer("m-kigali-1", "o-1", "bank-rw", history(clock))
    assert (good.outcome, good.score) == (OfferOutcome.OFFER, Decimal("0.04"))
    assert good.model_version == "lending-policy:bank-rw:RWF:v1+merchant-scorecard-3"
    assert scored.get_offer("m-kigali-1", "o-1").score == Decimal("0.04")
    bad = scored.offer(
        "m-kigali-3", "o-3", "bank-rw", history(clock, "m-kigali-3", refund_count=20)
    )
    assert [r.rule for r in bad.reasons] == ["max_pd", "model"]
    assert bad.reasons[1].text == "refund_rate in [0.03, inf)"
    assert sink.decisions[-1].score == 0.4


# --------------------------------------------------------------------------- acceptance
def test_acceptance_disburses_principal_and_fee_through_the_ledger(
    lending: Lending, clock: FakeClock, sink: MemorySink
) -> None:
    loan_id = offer_and_accept(lending, clock)
    loan = lending.get_loan("m-kigali-1", loan_id)
    assert (loan.state, loan.principal_minor, loan.fee_minor) == (LoanState.CURRENT, PRINCIPAL, FEE)
    assert (loan.total_due_minor, loan.repaid_minor, loan.outstanding_minor) == (DUE, 0, DUE)
    assert loan.due_at_ns == loan.disbursed_at_ns + 90 * DAY_S * 10**9
    receivable = lending.ledger.get_account(ledger_id("lend-receivable", loan_id))
    assert (receivable.code, receivable.debits_posted, receivable.credits_posted) == (
        Code.RECEIVABLE,
        DUE,
        0,
    )
    funding = lending.ledger.get_account(ledger_id("lend-funding", "bank-rw", "RWF"))
    fees = lending.ledger.get_account(ledger_id("lend-fee-income", "bank-rw", "RWF"))
    assert (funding.credits_posted, funding.debits_posted) == (PRINCIPAL, 0)
    assert (fees.credits_posted, fees.debits_posted) == (FEE, 0)
    assert lending.get_offer("m-kigali-1", loan_id).state is OfferState.ACCEPTED
    assert lending.accept("m-kigali-1", loan_id) == loan  # a replay returns the loan
    with unchanged(lending, sink), pytest.raises(IdConflict, match="already accepted"):
        lending.accept("m-kigali-1", loan_id, 60_000)
    (event,) = lending.loan_events("bank-rw", loan_id)
    assert (event.from_state, event.to_state, event.actor) == (
        None,
        LoanState.CURRENT,
        "m-kigali-1",
    )
    assert event.reason == "disbursed 492499 RWF with a fee of 14775 RWF, due 2026-04-01"
    book = lending.loan_book("bank-rw", "RWF")
    assert (book["outstanding_minor"], book["funding_balance_minor"], book["fee_income_minor"]) == (
        DUE,
        PRINCIPAL,
        FEE,
    )
    assert_book_matches_ledger(lending)


def test_a_merchant_may_take_less_than_offered(lending: Lending, clock: FakeClock) -> None:
    lending.offer("m-kigali-1", "o-1", "bank-rw", history(clock))
    loan = lending.accept("m-kigali-1", "o-1", 100_001)
    assert (loan.principal_minor, loan.fee_minor, loan.total_due_minor) == (100_001, 3_000, 103_001)
    assert_book_matches_ledger(lending)


def test_refused_acceptances_change_nothing(
    lending: Lending, clock: FakeClock, sink: MemorySink
) -> None:
    lending.offer("m-kigali-1", "o-1", "bank-rw", history(clock))
    lending.offer("m-kigali-1", "o-2", "bank-rw", history(clock))
    with unchanged(lending, sink):
        with pytest.raises(OfferNotFound, match="'o-9' does not exist"):
            lending.accept("m-kigali-1", "o-9")
        with pytest.raises(OfferNotFound):  # another merchant does not even see it
            lending.accept("m-other", "o-1")
        with pytest.raises(NotYours, match="only merchant 'm-kigali-1' may accept"):
            lending.accept("bank-rw", "o-1")
        with pytest.raises(InvalidLendingInput, match="amount must be between"):
            lending.accept("m-kigali-1", "o-1", PRINCIPAL + 1)
        with pytest.raises(InvalidLendingInput, match="amount must be between"):
            lending.accept("m-kigali-1", "o-1", 49_999)
        with pytest.raises(InvalidLendingInput, match="amount_minor must be 1"):
            lending.accept("m-kigali-1", "o-1", -5)
    lending.accept("m-kigali-1", "o-1")
    with unchanged(lending, sink), pytest.raises(LoanAlreadyOpen, match="already has loan 'o-1'"):
        lending.accept("m-kigali-1", "o-2")
    lending.offer("m-kigali-1", "o-ke", "bank-ke", history(clock))
    assert lending.accept("m-kigali-1", "o-ke").lender_id == "bank-ke"  # another lender: fine


def test_offers_expire(lending: Lending, clock: FakeClock, sink: MemorySink) -> None:
    lending.offer("m-kigali-1", "o-1", "bank-rw", history(clock))
    clock.advance(14 * DAY_S)
    with unchanged(lending, sink), pytest.raises(OfferExpired, match="expired on 2026-01-15"):
        lending.accept("m-kigali-1", "o-1")
    assert lending.process_deadlines()["offers_expired"] == 1
    assert lending.get_offer("m-kigali-1", "o-1").state is OfferState.EXPIRED
    with pytest.raises(OfferExpired):
        lending.accept("m-kigali-1", "o-1")
    assert lending.process_deadlines()["offers_expired"] == 0


# --------------------------------------------------------------------------- repayment
def test_payouts_repay_the_loan_and_it_closes_when_repaid(
    lending: Lending, clock: FakeClock, sink: MemorySink
) -> None:
    assert lending.withhold("m-kigali-1", "RWF", 100_000, "pay-0") == 0  # no loan yet
    loan_id = offer_and_accept(lending, clock)
    assert lending.withhold("m-kigali-1", "RWF", 100_009, "pay-1") == 10_000  # 10%, down
    assert lending.withhold("m-kigali-1", "RWF", 100_009, "pay-1") == 10_000  # a replay
    assert lending.withhold("m-kigali-1", "USD", 100_000, "pay-usd") == 0  # no USD loan
    assert lending.withhold("m-kigali-1", "RWF", 0, "pay-zero") == 0
    with unchanged(lending, sink), pytest.raises(IdConflict, match="another payout"):
        lending.withhold("m-kigali-1", "RWF", 100_010, "pay-1")
    assert lending.get_loan("m-kigali-1", loan_id).outstanding_minor == DUE - 10_000
    assert lending.withhold("m-kigali-1", "RWF", 5_000_000, "pay-2") == DUE - 10_000
    loan = lending.get_loan("bank-rw", loan_id)
    assert (loan.state, loan.repaid_minor, loan.outstanding_minor) == (LoanState.REPAID, DUE, 0)
    assert lending.withhold("m-kigali-1", "RWF", 5_000_000, "pay-3") == 0  # nothing is owed
    assert lending.get_withholding("m-kigali-1", "pay-2") == {
        "reference": "pay-2",
        "merchant_id": "m-kigali-1",
        "currency": "RWF",
        "payout_minor": 5_000_000,
        "withheld_minor": 497_274,
        "loans": {loan_id: 497_274},
    }
    events = lending.loan_events("m-kigali-1", loan_id)
    assert [(e.to_state, e.reason) for e in events[1:]] == [
        (LoanState.REPAID, "repaid in full (withhold pay-2)")
    ]
    assert_book_matches_ledger(lending)
    lending.offer("m-kigali-1", "o-2", "bank-rw", history(clock))
    assert lending.accept("m-kigali-1", "o-2").state is LoanState.CURRENT  # one open at a time


def test_two_requests_racing_for_one_offer_id_log_one_decision(
    lending: Lending, clock: FakeClock, sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a review: each request logged its decision before the check, under the
    write lock, that another had stored the id; the one then refused left its decision (its
    merchant's features) logged under the other's offer id."""
    import threading
    import time

    append = sink.append

    def slow(decisions):  # type: ignore[no-untyped-def]
        time.sleep(0.2)  # an fsync that takes its time: both requests are past their reads
        append(decisions)

    monkeypatch.setattr(sink, "append", slow)
    answers: dict[str, str] = {}

    def ask(merchant: str) -> None:
        try:
            answers[merchant] = lending.offer(
                merchant, "o-1", "bank-rw", history(clock, merchant)
            ).offer_id
        except IdConflict as exc:
            answers[merchant] = exc.code

    askers = [threading.Thread(target=ask, args=(m,)) for m in ("m-a", "m-b")]
    for t in askers:
        t.start()
    for t in askers:
        t.join()
    assert sorted(answers.values()) == ["lending_id_conflict", "o-1"]
    (logged,) = sink.decisions
    stored = lending.get_offer("bank-rw", "o-1")
    assert logged.decision_id == stored.log_id


def test_bad_withholdings_change_nothing(
    lending: Lending, clock: FakeClock, sink: MemorySink
) -> None:
    offer_and_accept(lending, clock)
    with unchanged(lending, sink):
        with pytest.raises(InvalidLendingInput, match="payout_minor must be 0"):
            lending.withhold("m-kigali-1", "RWF", -1, "pay-1")
        with pytest.raises(InvalidLendingInput, match="unknown currency code 'XYZ'"):
            lending.withhold("m-kigali-1", "XYZ", 100, "pay-1")
        with pytest.raises(InvalidLendingInput, match="reference"):
            lending.withhold("m-kigali-1", "RWF", 100, "pay 1")
        with pytest.raises(InvalidLendingInput, match="merchant_id"):
            lending.withhold("", "RWF", 100, "pay-1")
        with pytest.raises(InvalidLendingInput, match="payout_minor must be an integer"):
            lending.withhold("m-kigali-1", "RWF", 10.0, "pay-1")  # type: ignore[arg-type]
    with pytest.raises(ReferenceNotFound, match="no payout 'pay-1'"):
        lending.get_withholding("m-kigali-1", "pay-1")


def test_two_lenders_share_a_payout_oldest_loan_first(lending: Lending, clock: FakeClock) -> None:
    lending.set_policy("bank-ke", policy("bank-ke", repayment_share_bps=9_500))
    offer_and_accept(lending, clock, "o-rw")
    clock.advance(1)
    lending.offer("m-kigali-1", "o-ke", "bank-ke", history(clock))
    lending.accept("m-kigali-1", "o-ke")
    assert lending.withhold("m-kigali-1", "RWF", 200_000, "pay-1") == 200_000
    assert lending.get_withholding("m-kigali-1", "pay-1")["loans"] == {
        "o-rw": 20_000,  # 10%
        "o-ke": 180_000,  # 95% would be 190_000: only what is left of the payout
    }
    assert_book_matches_ledger(lending, "bank-rw")
    assert_book_matches_ledger(lending, "bank-ke")


def test_withholding_commits_or_rolls_back_with_the_callers_transaction(
    lending: Lending, clock: FakeClock, sink: MemorySink
) -> None:
    loan_id = offer_and_accept(lending, clock)
    with unchanged(lending, sink), UnitOfWork(lending.engine) as uow:
        assert lending.withhold("m-kigali-1", "RWF", 50_000, "pay-1", uow=uow) == 5_000
        uow.rollback()  # trade's release failed: the withholding goes with it
    with UnitOfWork(lending.engine) as uow:
        with lending.joined(uow) as joined:
            assert joined.withhold("m-kigali-1", "RWF", 50_000, "pay-1") == 5_000
            joined.repay("bank-rw", loan_id, 1_000, "cash-1")
        uow.connection.execute(sa.text("SELECT 1"))  # the caller's own work would go here
        uow.commit()
    assert lending.get_loan("m-kigali-1", loan_id).repaid_minor == 6_000
    assert_book_matches_ledger(lending)


def test_direct_repayments_never_exceed_what_is_owed(
    lending: Lending, clock: FakeClock, sink: MemorySink
) -> None:
    loan_id = offer_and_accept(lending, clock)
    with unchanged(lending, sink), pytest.raises(NotYours, match="only the lender"):
        lending.repay("m-kigali-1", loan_id, 7_000, "cash-0")  # no self-declared repayment
    loan = lending.repay("bank-rw", loan_id, 7_000, "cash-1")
    assert (loan.repaid_minor, loan.outstanding_minor) == (7_000, DUE - 7_000)
    assert lending.repay("bank-rw", loan_id, 7_000, "cash-1") == loan  # a replay
    with unchanged(lending, sink):
        with pytest.raises(IdConflict, match="another repayment"):
            lending.repay("bank-rw", loan_id, 7_001, "cash-1")
        # found by a review: a payout's withholding under a direct repayment's reference
        # failed on the repayments' key (a database error, not a refusal)
        with pytest.raises(IdConflict, match="direct repayment of loan 'o-1'"):
            lending.withhold("m-kigali-1", "RWF", 10_000, "cash-1")
        with pytest.raises(ExceedsOutstanding, match="exceeds the 500274 RWF loan 'o-1' owes"):
            lending.repay("bank-rw", loan_id, DUE - 7_000 + 1, "cash-2")
        with pytest.raises(InvalidLendingInput, match="amount_minor must be 1"):
            lending.repay("bank-rw", loan_id, 0, "cash-2")
        with pytest.raises(LoanNotFound, match="'o-1' does not exist"):
            lending.repay("m-other", loan_id, 1, "cash-2")
        with pytest.raises(LoanNotFound):
            lending.repay("m-kigali-1", "o-9", 1, "cash-2")
        # The ledger itself refuses an over-repayment, whoever posts it.
        funding = ledger_id("lend-funding", "bank-rw", "RWF")
        over = Transfer(
            ledger_id("rogue"),
            funding,
            loan.receivable_account,
            DUE,
            ledger=646,
            code=Code.REPAYMENT,
        )
        with UnitOfWork(lending.engine) as uow:
            assert lending.ledger.create_transfers([over], uow=uow) == ["exceeds_debits"]
    done = lending.repay("bank-rw", loan_id, DUE - 7_000, "cash-2")
    assert (done.state, done.outstanding_minor) == (LoanState.REPAID, 0)
    with unchanged(lending, sink), pytest.raises(LoanClosed, match="is repaid"):
        lending.repay("bank-rw", loan_id, 1, "cash-3")
    assert [r.source for r in lending.repayments("bank-rw", loan_id)] == ["direct", "direct"]
    assert_book_matches_ledger(lending)


def test_the_book_matches_the_ledger_through_many_random_payouts(
    lending: Lending, clock: FakeClock
) -> None:
    rng = random.Random(11)
    loan_id = offer_and_accept(lending, clock)
    withheld = 0
    for i in range(60):
        clock.advance(rng.randint(0, 3 * DAY_S))
        payout = rng.choice([0, rng.randint(1, 99), rng.randint(100, 400_000)])
        owed = DUE - withheld
        got = lending.withhold("m-kigali-1", "RWF", payout, f"pay-{i}")
        assert got == min(payout // 10, owed)
        withheld += got
        assert lending.get_loan("m-kigali-1", loan_id).repaid_minor == withheld
    assert_book_matches_ledger(lending)


# --------------------------------------------------------------------------- delinquency
def test_delinquency_moves_with_the_clock_and_is_recorded(
    lending: Lending, clock: FakeClock
) -> None:
    loan_id = offer_and_accept(lending, clock)
    clock.advance(29 * DAY_S)
    assert lending.process_deadlines()["loans_late"] == 0
    clock.advance(DAY_S)
    assert lending.process_deadlines()["loans_late"] == 1
    assert lending.get_loan("m-kigali-1", loan_id).state is LoanState.LATE
    lending.withhold("m-kigali-1", "RWF", 1_000_000, "pay-1")  # 100_000 repaid at day 30
    assert lending.process_deadlines()["loans_current"] == 1  # back on schedule
    clock.advance(30 * DAY_S)  # day 60: quiet for 30 days again
    assert lending.process_deadlines()["loans_late"] == 1
    clock.advance(59 * DAY_S)
    assert lending.process_deadlines()["loans_defaulted"] == 0
    clock.advance(DAY_S)  # day 120: late for 60 days
    assert lending.process_deadlines()["loans_defaulted"] == 1
    clock.advance(DAY_S)
    assert lending.process_deadlines() == {
        "offers_expired": 0,
        "loans_current": 0,
        "loans_late": 0,
        "loans_defaulted": 0,
        "loans_repaid": 0,
    }
    assert lending.withhold("m-kigali-1", "RWF", 10_000_000, "pay-2") == DUE - 100_000
    events = lending.loan_events("bank-rw", loan_id)
    assert [(e.from_state, e.to_state, e.actor) for e in events] == [
        (None, LoanState.CURRENT, "m-kigali-1"),
        (LoanState.CURRENT, LoanState.LATE, "deadline"),
        (LoanState.LATE, LoanState.CURRENT, "deadline"),
        (LoanState.CURRENT, LoanState.LATE, "deadline"),
        (LoanState.LATE, LoanState.DEFAULTED, "deadline"),
        (LoanState.DEFAULTED, LoanState.REPAID, "m-kigali-1"),
    ]
    assert events[1].reason == "no repayment since disbursement for 30 days (late after 30)"
    assert events[2].reason == "back on schedule"
    assert events[3].reason == "no repayment for 30 days (late after 30)"
    assert events[4].reason.startswith("late for 60 days (default after 60); past the due date")
    assert_book_matches_ledger(lending)


# --------------------------------------------------------------------------- contests
REVIEW_REASON = "supplier invoice shows the batch fault"


def contested_decline(lending: Lending, clock: FakeClock) -> None:
    lending.offer("m-kigali-2", "o-2", "bank-rw", poor_history(clock))
    lending.contest("m-kigali-2", "o-2", "Refunds were one faulty batch, since replaced.")


def overturn(lending: Lending) -> Contest:
    return lending.review(
        "bank-rw", "o-2", "officer-1", "overturned", REVIEW_REASON, new_principal_minor=150_000
    )


def test_a_contest_is_filed_once_and_reviewed_only_by_its_lender(
    lending: Lending, clock: FakeClock, sink: MemorySink
) -> None:
    contested_decline(lending, clock)
    c = lending.contest("m-kigali-2", "o-2", "Refunds were one faulty batch, since replaced.")
    assert (c.status, c.lender_id, c.contested_at_ns) == (
        ContestStatus.OPEN,
        "bank-rw",
        clock.now_ns(),
    )  # a replay returns the contest
    assert lending.get_offer("bank-rw", "o-2").contested
    with unchanged(lending, sink):
        with pytest.raises(AlreadyContested, match="contested once"):
            lending.contest("m-kigali-2", "o-2", "and another thing")
        with pytest.raises(ReviewerNotIndependent, match="may not review its own"):
            lending.review("bank-rw", "o-2", "m-kigali-2", "upheld", "I say so")
        with pytest.raises(ContestNotFound):  # not in bank-ke's queue
            lending.review("bank-ke", "o-2", "officer-9", "upheld", "no")
        with pytest.raises(InvalidLendingInput, match="needs the new principal"):
            lending.review("bank-rw", "o-2", "officer-1", "overturned", "ok")
        with pytest.raises(InvalidLendingInput, match="within the policy's loan sizes"):
            lending.review(
                "bank-rw", "o-2", "officer-1", "overturned", "ok", new_principal_minor=2_000_001
            )
        with pytest.raises(InvalidLendingInput, match="outcome must be one of"):
            lending.review("bank-rw", "o-2", "officer-1", "maybe", "ok")
        with pytest.raises(InvalidLendingInput, match="reason must not be empty"):
            lending.review("bank-rw", "o-2", "officer-1", "upheld", "  ")
    assert [x.offer_id for x in lending.list_contests("bank-rw", status="open")] == ["o-2"]
    assert lending.list_contests("bank-ke") == []
    done = overturn(lending)
    assert overturn(lending) == done  # a replay returns the review
    with unchanged(lending, sink), pytest.raises(ContestClosed, match="already reviewed"):
        lending.review("bank-rw", "o-2", "officer-2", "upheld", "no")
    with unchanged(lending, sink), pytest.raises(ContestClosed, match="final"):
        lending.contest("m-kigali-2", "o-2-review", "more please")


class _FailingSink(MemorySink):
    """A decision log whose disk is full while ``failing``."""

    failing = False

    def append(self, decisions: Any) -> None:
        if self.failing:
            raise OSError(28, "No space left on device")
        super().append(decisions)


def outbox_ids(lend: Lending) -> list[str]:
    with lend.engine.connect() as conn:
        c = lending_store.decision_outbox.c
        return list(conn.execute(sa.select(c.decision_id).order_by(c.decision_id)).scalars())


def test_a_decision_the_log_cannot_take_now_stands_and_is_logged_later(
    engine: sa.Engine, ledger: Ledger, clock: FakeClock
) -> None:
    """A decision is written to the outbox in the transaction that makes it and appended to
    the log once that has committed: with the log failing, the offer and the review stand
    (the call succeeds) and the deadline pass appends them once the deciding worker's claim
    has lapsed and the log takes them again. The log holds each decision once."""
    sink = _FailingSink()
    lend = Lending(engine, ledger, clock, sink=sink)
    lend.set_policy("bank-rw", policy())
    sink.failing = True
    contested_decline(lend, clock)
    done = overturn(lend)
    offer_log_id = lend.get_offer("m-kigali-2", "o-2").log_id
    assert sink.decisions == []
    assert outbox_ids(lend) == sorted([offer_log_id, done.log_id])
    # the deciding worker's claim has not lapsed: the pass leaves them, and writes nothing
    writes = write_transactions()
    assert lend.log_pending_decisions() == {"decisions_logged": 0, "decisions_waiting": 2}
    assert write_transactions() == writes
    clock.advance(DECISION_GRACE_S)
    # the log still refuses: reported, not raised; claimed again, so waiting a grace more
    assert lend.log_pending_decisions() == {"decisions_logged": 0, "decisions_waiting": 2}
    sink.failing = False
    assert lend.log_pending_decisions()["decisions_logged"] == 0
    clock.advance(DECISION_GRACE_S)
    assert lend.log_pending_decisions() == {"decisions_logged": 2, "decisions_waiting": 0}
    assert sorted(d.decision_id for d in sink.decisions) == sorted([offer_log_id, done.log_id])
    assert outbox_ids(lend) == []
    writes = write_transactions()
    assert lend.log_pending_decisions() == {"decisions_logged": 0, "decisions_waiting": 0}
    assert write_transactions() == writes  # nothing waits: no write turn taken
    assert len(sink.decisions) == 2


def test_a_decision_whose_transaction_fails_is_never_logged(
    lending: Lending, clock: FakeClock, sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The offer's decision was appended to the log before its transaction committed: a
    failure between the two (here storing the offer; a crash, a lost connection) left a
    logged decision that never took effect."""

    def broken(offer: Any) -> dict[str, Any]:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(lending_store, "offer_values", broken)
    with unchanged(lending, sink), pytest.raises(RuntimeError, match="went away"):
        lending.offer("m-kigali-2", "o-2", "bank-rw", poor_history(clock))
    assert outbox_ids(lending) == []


def test_a_decision_left_by_a_dead_worker_is_appended_by_the_pass(
    lending: Lending, clock: FakeClock, sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies after the commit, before appending: the decision waits in the outbox
    and the deadline pass appends it after the grace period, exactly as it was decided."""
    monkeypatch.setattr(Lending, "_publish", lambda self, decisions: None)
    offer = lending.offer("m-kigali-2", "o-2", "bank-rw", poor_history(clock))
    monkeypatch.undo()
    assert sink.decisions == [] and outbox_ids(lending) == [offer.log_id]
    clock.advance(DECISION_GRACE_S)
    assert lending.log_pending_decisions() == {"decisions_logged": 1, "decisions_waiting": 0}
    (logged,) = sink.decisions
    assert logged.decision_id == offer.log_id and logged.outcome == "decline"


def test_a_decision_in_a_joined_unit_of_work_waits_for_its_commit(
    lending: Lending, clock: FakeClock, sink: MemorySink
) -> None:
    """Inside a caller's unit of work the decision is not appended when made (the caller may
    still roll back): the pass appends it once the caller has committed, at once."""
    with UnitOfWork(lending.engine) as uow, lending.joined(uow) as joined:
        rolled = joined.offer("m-kigali-2", "o-2", "bank-rw", poor_history(clock))
    assert sink.decisions == [] and outbox_ids(lending) == []
    with UnitOfWork(lending.engine) as uow:
        with lending.joined(uow) as joined:
            kept = joined.offer("m-kigali-2", "o-3", "bank-rw", poor_history(clock))
        assert sink.decisions == []
        uow.commit()
    assert rolled.log_id != kept.log_id
    assert lending.log_pending_decisions() == {"decisions_logged": 1, "decisions_waiting": 0}
    assert [d.decision_id for d in sink.decisions] == [kept.log_id]


@pytest.mark.parametrize("bad", ["Refunds \x00 fixed", "Refunds \ud800 fixed", "Re\x1bfunds"])
def test_texts_a_database_cannot_keep_are_refused_not_a_crash(
    lending: Lending, clock: FakeClock, sink: MemorySink, bad: str
) -> None:
    """A contest's statement and a review's reason were stored as given: PostgreSQL refuses
    NUL and SQLite cannot encode a lone surrogate (the CLI passes one from a non-UTF-8
    argument), each an unhandled error (an HTTP 500). They are refused as invalid input naming
    the field; tabs and line breaks stay allowed."""
    lending.offer("m-kigali-2", "o-2", "bank-rw", poor_history(clock))
    with unchanged(lending, sink), pytest.raises(InvalidLendingInput) as exc:
        lending.contest("m-kigali-2", "o-2", bad)
    assert exc.value.field == "statement"
    lending.contest("m-kigali-2", "o-2", "Refunds were one faulty batch:\n\tsince replaced.")
    with unchanged(lending, sink), pytest.raises(InvalidLendingInput) as exc:
        lending.review("bank-rw", "o-2", "officer-1", "upheld", bad)
    assert exc.value.field == "reason"
    assert lending.review("bank-rw", "o-2", "officer-1", "upheld", "no").status.value == "upheld"


def test_an_offer_id_kept_for_a_review_cannot_be_asked_for(
    lending: Lending, clock: FakeClock, sink: MemorySink
) -> None:
    """Offer ids are global and an overturn makes ``<id>-review``: any merchant that had asked
    for credit under ``o-2-review`` first made the lender's overturn of o-2 fail on the
    offers' primary key (an HTTP 500), so the contested merchant could never get its
    decision changed. Such ids are refused when asked for; the overturn then always works."""
    contested_decline(lending, clock)
    with unchanged(lending, sink), pytest.raises(InvalidLendingInput) as exc:
        lending.offer("m-kigali-1", "o-2-review", "bank-rw", history(clock))
    assert exc.value.field == "offer_id"
    assert overturn(lending).new_offer_id == "o-2-review"
    assert lending.get_offer("m-kigali-2", "o-2-review").origin == "review"


def test_a_decline_overturned_on_review_becomes_a_new_offer(
    lending: Lending, clock: FakeClock, sink: MemorySink
) -> None:
    contested_decline(lending, clock)
    clock.advance(3 * DAY_S)
    done = overturn(lending)
    assert (done.status, done.reviewer_id, done.new_offer_id, done.new_principal_minor) == (
        ContestStatus.OVERTURNED,
        "officer-1",
        "o-2-review",
        150_000,
    )
    assert (done.reviewed_at_ns, done.review_reason) == (clock.now_ns(), REVIEW_REASON)
    original = lending.get_offer("m-kigali-2", "o-2")
    assert original.state is OfferState.SUPERSEDED
    new = lending.get_offer("m-kigali-2", "o-2-review")
    assert (new.outcome, new.principal_minor, new.fee_minor, new.origin, new.supersedes) == (
        OfferOutcome.OFFER,
        150_000,
        4_500,
        "review",
        "o-2",
    )
    assert new.reasons[0].text == f"overturned on review by officer-1: {REVIEW_REASON}"
    assert (new.history, new.features) == (original.history, original.features)
    logged = sink.decisions[-1]
    assert (logged.model_version, logged.outcome, logged.reasons) == (
        "review:officer-1",
        "overturned",
        (REVIEW_REASON,),
    )
    assert logged.decision_id == done.log_id and logged.inputs["new_offer_id"] == "o-2-review"
    assert logged.inputs["original_decision"] == original.log_id
    assert new.log_id == done.log_id  # the offer names the decision that made it, as any does
    with unchanged(lending, sink), pytest.raises(OfferClosed, match="replaced on review"):
        lending.accept("m-kigali-2", "o-2")
    loan = lending.accept("m-kigali-2", "o-2-review")
    assert (loan.principal_minor, loan.total_due_minor) == (150_000, 154_500)
    assert_book_matches_ledger(lending)


def test_a_contested_offer_waits_for_review_and_upheld_reopens_it(
    lending: Lending, clock: FakeClock, sink: MemorySink
) -> None:
    lending.offer("m-kigali-1", "o-1", "bank-rw", history(clock))
    with pytest.raises(NotYours, match="only merchant"):
        lending.contest("bank-rw", "o-1", "the bank cannot contest for the merchant")
    lending.contest("m-kigali-1", "o-1", "My sales grew 40% last month; the limit is too low.")
    with unchanged(lending, sink), pytest.raises(UnderReview):
        lending.accept("m-kigali-1", "o-1")
    clock.advance(20 * DAY_S)  # past the offer's expiry, but it is under review
    assert lending.process_deadlines()["offers_expired"] == 0
    done = lending.review("bank-rw", "o-1", "officer-1", "upheld", "limit follows the policy")
    assert done.status is ContestStatus.UPHELD and done.new_offer_id is None
    reopened = lending.get_offer("m-kigali-1", "o-1")
    assert (reopened.state, reopened.expires_at_ns) == (
        OfferState.OPEN,
        clock.now_ns() + 14 * DAY_S * 10**9,
    )
    assert sink.decisions[-1].outcome == "upheld"
    assert lending.accept("m-kigali-1", "o-1").principal_minor == PRINCIPAL
    with unchanged(lending, sink), pytest.raises(AlreadyContested):
        lending.contest("m-kigali-1", "o-1", "again")


# --------------------------------------------------------------------------- scoping
def test_callers_see_only_their_own(lending: Lending, clock: FakeClock) -> None:
    offer_and_accept(lending, clock, "o-1")
    lending.offer("m-kigali-2", "o-2", "bank-ke", poor_history(clock))
    lending.contest("m-kigali-2", "o-2", "please look again")
    assert [o.offer_id for o in lending.list_offers("m-kigali-1")] == ["o-1"]
    assert [o.offer_id for o in lending.list_offers("bank-ke")] == ["o-2"]
    assert [o.offer_id for o in lending.list_offers("bank-rw", state="accepted")] == ["o-1"]
    assert [ln.loan_id for ln in lending.list_loans("bank-rw")] == ["o-1"]
    assert lending.list_loans("bank-ke") == lending.list_loans("m-kigali-2") == []
    assert lending.list_loans("m-kigali-1", state=LoanState.LATE) == []
    assert [c.offer_id for c in lending.list_contests("m-kigali-2")] == ["o-2"]
    assert lending.list_contests("bank-rw") == lending.list_contests("m-kigali-1") == []
    for caller in ("bank-ke", "m-kigali-2"):
        with pytest.raises(OfferNotFound):
            lending.get_offer(caller, "o-1")
        with pytest.raises(LoanNotFound):
            lending.get_loan(caller, "o-1")
        with pytest.raises(LoanNotFound):
            lending.loan_events(caller, "o-1")
    with pytest.raises(PolicyNotFound, match="no RWF loan book"):
        lending.loan_book("m-kigali-1", "RWF")
    with pytest.raises(InvalidLendingInput, match="state must be one of"):
        lending.list_loans("bank-rw", state="asleep")
