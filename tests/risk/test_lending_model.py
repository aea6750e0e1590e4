"""Merchant credit, the pure part: features with their formulas and rounding, policy decisions
with at most four reasons, fees and limits in exact integers, how a payout is split between
loans, and delinquency transitions."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from entrepot.kernel.clock import FakeClock
from entrepot.risk.lending import (
    CreditPolicy,
    InvalidHistory,
    InvalidLendingInput,
    InvalidPolicy,
    Loan,
    LoanState,
    LoanTerms,
    MerchantHistory,
    ModelScore,
    OfferOutcome,
    derive_features,
    evaluate,
)
from entrepot.risk.lending.model import (
    NS_PER_DAY,
    REASONS_MAX,
    assess_loan,
    check_id,
    credit_limit,
    expected_repaid,
    fee_for,
    lateness,
    split_withholding,
)

T0 = FakeClock().now_ns()
SALES = (300_000, 320_000, 310_000, 330_000, 350_000, 360_000)


def history(**changes: Any) -> MerchantHistory:
    base: dict[str, Any] = {
        "merchant_id": "m-kigali-1",
        "country": "RW",
        "currency": "RWF",
        "as_of_ns": T0,
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


def policy(**changes: Any) -> CreditPolicy:
    base: dict[str, Any] = {
        "lender_id": "bank-rw",
        "currency": "RWF",
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
        "version": 1,
    }
    return CreditPolicy(**{**base, **changes})


# --------------------------------------------------------------------------- features
def test_features_follow_their_formulas_exactly() -> None:
    f = derive_features(history())
    assert f.months_of_sales == 6
    assert f.avg_monthly_sales_minor == 328_333  # 1_970_000 / 6 = 328_333.33, rounded down
    assert f.growth == Decimal("0.1183")  # (1_040_000 - 930_000) / 930_000 = 0.11828
    assert f.refund_rate == Decimal("0.0200")  # 10 / 500
    assert f.refund_amount_rate == Decimal("0.0254")  # 50_000 / 1_970_000 = 0.025380
    assert f.dispute_rate == Decimal("0.0080")
    assert f.disputes_lost_rate == Decimal("0.0020")
    assert f.regularity == Decimal("0.8000")
    assert f.tenure_days == 400


def test_average_uses_the_last_six_months_and_growth_needs_six() -> None:
    eight = derive_features(history(monthly_sales_minor=(1, 1, 60, 60, 60, 90, 90, 90)))
    assert eight.avg_monthly_sales_minor == 75  # (3 x 60 + 3 x 90) / 6
    assert eight.growth == Decimal("0.5000")
    short = derive_features(history(monthly_sales_minor=(100, 200, 300)))
    assert (short.avg_monthly_sales_minor, short.growth) == (200, None)
    zero_before = derive_features(history(monthly_sales_minor=(0, 0, 0, 5, 5, 5)))
    assert zero_before.growth is None
    falling = derive_features(history(monthly_sales_minor=(100, 100, 100, 50, 50, 50)))
    assert falling.growth == Decimal("-0.5000")
    new = derive_features(
        history(monthly_sales_minor=(), order_count=0, refund_count=0, dispute_count=0,
                disputes_lost=0, refund_minor=0, settlement_weeks=0, observed_weeks=0)
    )  # fmt: skip
    assert (new.avg_monthly_sales_minor, new.refund_rate, new.regularity) == (0, 0, 0)


def test_rates_round_half_even_to_four_places() -> None:
    assert derive_features(history(order_count=20_000, refund_count=1)).refund_rate == Decimal(
        "0.0000"
    )  # 0.00005 -> even
    assert derive_features(history(order_count=20_000, refund_count=3)).refund_rate == Decimal(
        "0.0002"
    )  # 0.00015 -> even


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"refund_count": 501}, "refund_count"),
        ({"dispute_count": 501}, "dispute_count"),
        ({"disputes_lost": 5}, "disputes_lost"),
        ({"settlement_weeks": 51}, "settlement_weeks"),
        ({"order_count": -1}, "order_count"),
        ({"monthly_sales_minor": (1, -5)}, "monthly_sales_minor[1]"),
        ({"monthly_sales_minor": (1,) * 37}, "monthly_sales_minor"),
        ({"country": "rw"}, "country"),
        ({"country": "ZZ"}, "country"),  # two capitals, no country
        ({"country": 7}, "country"),
        ({"currency": "XXX"}, "currency"),
        ({"merchant_id": ""}, "merchant_id"),
        ({"tenure_days": 1.5}, "tenure_days"),
    ],
)
def test_impossible_histories_are_refused_by_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidHistory) as caught:
        history(**changes)
    assert caught.value.field == field


def test_history_round_trips_and_names_bad_fields() -> None:
    h = history()
    assert MerchantHistory.from_dict(h.to_dict()) == h
    raw = h.to_dict()
    raw.pop("order_count")
    raw["nationality"] = "RW"
    with pytest.raises(InvalidHistory, match="unknown fields: nationality; missing fields: order"):
        MerchantHistory.from_dict(raw)


def test_ids_are_checked() -> None:
    assert check_id("esc-1:release.2", "reference") == "esc-1:release.2"
    for bad in ("", "x" * 57, "-lead", "has space", 7):
        with pytest.raises(InvalidLendingInput):
            check_id(bad, "reference")


# --------------------------------------------------------------------------- policy
def test_policy_validation_names_the_field() -> None:
    cases = [
        ({"max_refund_rate": 0.05}, "max_refund_rate"),  # a float is inexact: refused
        ({"max_refund_rate": "1.5"}, "max_refund_rate"),
        ({"limit_multiple": "0"}, "limit_multiple"),
        ({"limit_max_minor": 10}, "limit_max_minor"),
        ({"repayment_share_bps": 0}, "repayment_share_bps"),
        ({"fee_bps": 10_001}, "fee_bps"),
        ({"term_days": 0}, "term_days"),
        ({"max_pd": "abc"}, "max_pd"),
        ({"currency": "EURO"}, "currency"),
        ({"history_months": 0}, "history_months"),
        ({"history_months": 37}, "history_months"),
        ({"history_months": 5, "min_growth": "0"}, "history_months"),  # growth needs 6
    ]
    for changes, field in cases:
        with pytest.raises(InvalidPolicy) as caught:
            policy(**changes)
        assert caught.value.field == field, changes


def test_policy_from_dict_round_trips_and_lists_missing_fields() -> None:
    p = policy(min_growth="0.05", max_pd="0.2")
    assert CreditPolicy.from_dict(p.to_dict()) == p
    assert p.min_growth == Decimal("0.05")
    with pytest.raises(InvalidPolicy, match="missing policy fields: fee_bps, term_days"):
        CreditPolicy.from_dict({k: v for k, v in p.to_dict().items()
                                if k not in ("fee_bps", "term_days")})  # fmt: skip
    with pytest.raises(InvalidPolicy, match="unknown policy fields: colour"):
        CreditPolicy.from_dict({**p.to_dict(), "colour": "red"})
    # a policy stored before history_months was a field reads as the 12 months it decided on
    stored = {k: v for k, v in p.to_dict().items() if k != "history_months"}
    assert CreditPolicy.from_dict(stored).history_months == 12


def test_an_offer_states_its_limit_fee_and_terms() -> None:
    ev = evaluate(policy(), derive_features(history()))
    assert ev.outcome is OfferOutcome.OFFER
    assert ev.limit_minor == ev.principal_minor == 492_499  # 328_333 x 1.5 = 492_499.5, down
    assert ev.fee_minor == 14_775  # 3% of 492_499 = 14_774.97, half up
    assert [r.rule for r in ev.reasons] == ["limit", "fee", "repayment", "policy"]
    assert ev.reasons[0].text == "limit 492499 RWF: 1.5 x average monthly sales 328333 RWF"
    assert ev.reasons[1].text == "fee 14775 RWF (3.00% of the principal), all due within 90 days"
    assert ev.reasons[2].text == "10.00% of every payout is withheld until the loan is repaid"
    assert ev.reasons[3].text == "passed all 6 rules of policy v1"


def test_the_limit_is_capped_at_the_policy_maximum() -> None:
    ev = evaluate(policy(limit_max_minor=400_000), derive_features(history()))
    assert (ev.principal_minor, ev.fee_minor) == (400_000, 12_000)
    assert ev.reasons[0].text.endswith("(capped at the policy maximum)")


def test_a_decline_gives_at_most_four_reasons_in_the_policy_order() -> None:
    bad = history(tenure_days=10, monthly_sales_minor=(20_000,) * 6, refund_count=100,
                  dispute_count=50, disputes_lost=20, settlement_weeks=5)  # fmt: skip
    ev = evaluate(policy(min_growth="0.1"), derive_features(bad))
    assert ev.outcome is OfferOutcome.DECLINE
    assert (ev.principal_minor, ev.fee_minor) == (0, 0)
    assert len(ev.reasons) == REASONS_MAX  # six rules failed; four reasons given
    assert [r.rule for r in ev.reasons] == [
        "max_dispute_rate",
        "max_refund_rate",
        "min_avg_monthly_sales",
        "min_tenure_days",
    ]
    first = ev.reasons[0]
    assert (first.value, first.threshold) == ("0.1000", "0.02")
    assert first.text == "dispute rate 0.1000 is above the maximum 0.02"
    assert ev.reasons[2].text == (
        "average monthly sales 20000 RWF are below the minimum 100000 RWF"
    )


def test_a_limit_below_the_smallest_loan_declines() -> None:
    h = history(monthly_sales_minor=(110_000,) * 6)
    ev = evaluate(policy(limit_multiple="0.4"), derive_features(h))
    assert ev.outcome is OfferOutcome.DECLINE
    assert [(r.rule, r.value, r.threshold) for r in ev.reasons] == [
        ("limit_min_minor", "44000 RWF", "50000 RWF")
    ]


def test_growth_that_cannot_be_measured_declines_when_the_policy_asks_for_it() -> None:
    h = history(monthly_sales_minor=(300_000,) * 4)
    ev = evaluate(policy(min_growth="0"), derive_features(h))
    assert ev.outcome is OfferOutcome.DECLINE
    assert ev.reasons[0].rule == "min_growth" and ev.reasons[0].value == "unknown"
    assert evaluate(policy(), derive_features(h)).outcome is OfferOutcome.OFFER


def test_a_model_cutoff_declines_with_the_models_reasons() -> None:
    f = derive_features(history())
    high = ModelScore("merchant-gbm-7", Decimal("0.31"), ("refund_rate high", "short tenure"))
    ev = evaluate(policy(max_pd="0.2"), f, high)
    assert ev.outcome is OfferOutcome.DECLINE
    assert [r.rule for r in ev.reasons] == ["max_pd", "model", "model"]
    assert ev.reasons[0].text == (
        "credit model merchant-gbm-7 gives a default probability of 0.31, above the cutoff 0.2"
    )
    low = evaluate(policy(max_pd="0.2"), f, ModelScore("merchant-gbm-7", Decimal("0.05")))
    assert low.outcome is OfferOutcome.OFFER
    assert low.reasons[3].text.endswith("credit model merchant-gbm-7 default probability 0.05")


def test_a_model_score_is_kept_to_twelve_places_and_a_bad_one_refused() -> None:
    """A model's float made Decimal has 55 digits, more than the stored score holds (it
    overflowed on PostgreSQL: found by a review): kept to 12 places, and shown short."""
    tenth, long = float("0.1"), float("0.123456789012345")  # what a model's float gives
    assert ModelScore("gbm-7", Decimal(tenth)).pd == Decimal("0.1")
    assert str(ModelScore("gbm-7", Decimal(long)).pd) == "0.123456789012"
    assert ModelScore("gbm-7", Decimal("1E-15")).pd == 0
    assert str(ModelScore("gbm-7", Decimal("0.05")).pd) == "0.05"
    for version, pd in [
        ("", Decimal("0.1")),
        ("x" * 65, Decimal("0.1")),
        ("gbm\n7", Decimal("0.1")),
        (" gbm", Decimal("0.1")),
        ("gbm-7", Decimal("NaN")),
        ("gbm-7", Decimal("1.01")),
        ("gbm-7", 0.1),
    ]:
        with pytest.raises(InvalidLendingInput):
            ModelScore(version, pd)  # type: ignore[arg-type]


def test_fees_round_half_up_in_integers() -> None:
    assert [fee_for(p, 100) for p in (49, 50, 150, 250, 0)] == [0, 1, 2, 3, 0]
    assert fee_for(10**15, 10_000) == 10**15


@settings(max_examples=200, deadline=None)
@given(
    sales=hs.lists(hs.integers(0, 10**9), max_size=12),
    orders=hs.integers(0, 1000),
    refunds=hs.integers(0, 1000),
    disputes=hs.integers(0, 1000),
    tenure=hs.integers(0, 2000),
    weeks=hs.integers(0, 60),
    multiple=hs.decimals("0.1", "5", places=2, allow_nan=False, allow_infinity=False),
    fee_bps=hs.integers(0, 2000),
    limit_max=hs.integers(50_000, 10**10),
)
def test_every_decision_is_exact_and_explained(
    sales: list[int], orders: int, refunds: int, disputes: int, tenure: int, weeks: int,
    multiple: Decimal, fee_bps: int, limit_max: int,
) -> None:  # fmt: skip
    h = history(monthly_sales_minor=tuple(sales), order_count=orders,
                refund_count=min(refunds, orders), dispute_count=min(disputes, orders),
                disputes_lost=0, tenure_days=tenure, observed_weeks=weeks,
                settlement_weeks=weeks // 2)  # fmt: skip
    p = policy(limit_multiple=multiple, fee_bps=fee_bps, limit_max_minor=limit_max)
    f = derive_features(h)
    ev = evaluate(p, f)
    assert 1 <= len(ev.reasons) <= REASONS_MAX
    limit = min(int(f.avg_monthly_sales_minor * multiple), limit_max)  # int() truncates: down
    assert ev.limit_minor == credit_limit(p, f) == limit
    if ev.outcome is OfferOutcome.OFFER:
        assert p.limit_min_minor <= ev.principal_minor == limit <= p.limit_max_minor
        assert ev.fee_minor * 10_000 - limit * fee_bps in range(-4_999, 5_001)
    else:
        assert (ev.principal_minor, ev.fee_minor) == (0, 0)
        assert all(r.rule in ev.rules_checked and r.text for r in ev.reasons)


# --------------------------------------------------------------------------- repayment
def test_a_payout_is_split_oldest_loan_first() -> None:
    assert split_withholding(10_009, [(1_000, 50_000)]) == [1_000]  # 10% of 10_009, down
    assert split_withholding(10_000, [(1_000, 400)]) == [400]  # capped at what is owed
    assert split_withholding(10_000, [(6_000, 10**6), (6_000, 10**6)]) == [6_000, 4_000]
    assert split_withholding(0, [(1_000, 5)]) == [0]
    assert split_withholding(10_000, []) == []


@settings(max_examples=300, deadline=None)
@given(
    payout=hs.integers(0, 10**12),
    loans=hs.lists(hs.tuples(hs.integers(1, 10_000), hs.integers(0, 10**12)), max_size=4),
)
def test_withholding_never_exceeds_share_debt_or_payout(
    payout: int, loans: list[tuple[int, int]]
) -> None:
    parts = split_withholding(payout, loans)
    assert sum(parts) <= payout
    for part, (share, owed) in zip(parts, loans, strict=True):
        assert 0 <= part <= min(owed, payout * share // 10_000)


# --------------------------------------------------------------------------- delinquency
def loan(**changes: Any) -> Loan:
    base: dict[str, Any] = {
        "loan_id": "o-1",
        "lender_id": "bank-rw",
        "merchant_id": "m-kigali-1",
        "currency": "RWF",
        "principal_minor": 90_000,
        "fee_minor": 0,
        "terms": LoanTerms(90, 1_000, 30, 60, 5_000),
        "disbursed_at_ns": T0,
        "due_at_ns": T0 + 90 * NS_PER_DAY,
        "state": LoanState.CURRENT,
        "state_since_ns": T0,
        "last_repayment_at_ns": None,
        "receivable_account": 1,
        "total_due_minor": 90_000,
        "repaid_minor": 0,
    }
    return Loan(**{**base, **changes})


def day(n: float) -> int:
    return T0 + int(n * NS_PER_DAY)


def test_a_quiet_loan_goes_late_then_defaults() -> None:
    assert assess_loan(loan(), day(29.9)) is None
    assert assess_loan(loan(), day(30)) == (
        LoanState.LATE,
        "no repayment since disbursement for 30 days (late after 30)",
    )
    late = loan(state=LoanState.LATE, state_since_ns=day(30))
    assert assess_loan(late, day(89)) is None
    state, why = assess_loan(late, day(90)) or (None, "")
    assert state is LoanState.DEFAULTED
    assert why.startswith("late for 60 days (default after 60); past the due date 2026-04-01")
    assert assess_loan(dataclasses.replace(late, state=LoanState.DEFAULTED), day(200)) is None


def test_behind_schedule_is_late_and_catching_up_cures() -> None:
    # At day 70 the schedule (lagged by the 30-day grace) expects 40/90 of 90_000 = 40_000.
    assert expected_repaid(loan(), day(70)) == 40_000
    behind = loan(repaid_minor=19_999, last_repayment_at_ns=day(65))
    assert assess_loan(behind, day(70)) == (
        LoanState.LATE,
        "repaid 19999 RWF, behind the 40000 RWF expected by now (tolerance 50.00%)",
    )
    assert assess_loan(loan(repaid_minor=20_000, last_repayment_at_ns=day(65)), day(70)) is None
    late = loan(state=LoanState.LATE, state_since_ns=day(60), repaid_minor=20_000,
                last_repayment_at_ns=day(65))  # fmt: skip
    assert assess_loan(late, day(70)) == (LoanState.CURRENT, "back on schedule")
    # Found by a review: caught up before a pass that came after the default's day, the
    # loan was defaulted ("late for 61 days") though it was on track when the pass ran.
    year = loan(terms=LoanTerms(365, 1_000, 30, 60, 5_000), due_at_ns=day(365),
                state=LoanState.LATE, state_since_ns=day(60), repaid_minor=20_000,
                last_repayment_at_ns=day(124))  # fmt: skip
    assert lateness(year, day(125)) is None
    assert assess_loan(year, day(125)) == (LoanState.CURRENT, "back on schedule")


def test_nothing_outstanding_is_repaid_even_after_default() -> None:
    assert assess_loan(loan(state=LoanState.DEFAULTED, repaid_minor=90_000), day(400)) == (
        LoanState.REPAID,
        "repaid in full",
    )
    assert assess_loan(loan(state=LoanState.REPAID, repaid_minor=90_000), day(400)) is None
