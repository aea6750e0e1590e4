"""Merchant credit, the pure part: a merchant's history and the features derived from it, a
partner bank's credit policy, the decision it gives (offer or decline, with reasons), loans,
how a payout is split for repayment, and how a loan's delinquency state moves with time.

Money is ``int`` minor units. Rates are ``Decimal`` rounded to four places, ROUND_HALF_EVEN,
before they are compared with a policy's thresholds (what is recorded is what was compared).
Nothing here reads a clock, a database or the environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from enum import StrEnum
from typing import Any

from entrepot.kernel.clock import NS_PER_S, ns_to_datetime
from entrepot.kernel.countries import is_country
from entrepot.kernel.money import MoneyError, format_amount, get_currency
from entrepot.risk.lending.errors import InvalidHistory, InvalidLendingInput, InvalidPolicy

#: Client-chosen ids (offers, references): short enough that ``<id>-review`` still fits 64.
ID_LEN_MAX = 56
#: The ids of parties (a lender, a merchant, a reviewer): as long as their columns hold, and
#: the scheme's participant ids run (a lender's was checked as an offer id: 57-64 could not lend)
PARTY_ID_LEN_MAX = 64
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
#: Statements, review reasons.
TEXT_LEN_MAX = 2_000
#: What no stored text may hold: C0 controls but tab and line breaks, DEL, lone surrogates
#: (SQLite cannot encode them), non-characters; PostgreSQL refuses NUL. Each was a 500.
_ILLEGAL_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
#: Largest amount lending accepts anywhere (well inside the ledger's signed 64-bit range).
AMOUNT_MINOR_MAX = 10**15
#: Months of sales a history may carry (oldest first).
SALES_MONTHS_MAX = 36
#: Average monthly sales is the mean of at most this many most recent months.
AVERAGE_MONTHS = 6
#: Growth compares the mean of the last GROWTH_MONTHS months with the GROWTH_MONTHS before.
GROWTH_MONTHS = 3
#: Regulation B: more than four reasons are "not likely to be helpful".
REASONS_MAX = 4
BPS = 10_000
#: The highest policy version: the column is a 4-byte integer (PostgreSQL's ``integer``)
POLICY_VERSION_MAX = (1 << 31) - 1
RATE_PLACES = Decimal("0.0001")
NS_PER_DAY = 86_400 * NS_PER_S
TERM_DAYS_MAX = 3_650
DAYS_MAX = 3_650
LIMIT_MULTIPLE_MAX = Decimal(100)


class OfferOutcome(StrEnum):
    OFFER = "offer"
    DECLINE = "decline"


class OfferState(StrEnum):
    OPEN = "open"  # an offer the merchant may accept until it expires
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    DECLINED = "declined"  # a decline: nothing to accept
    SUPERSEDED = "superseded"  # overturned on review by a new decision


class LoanState(StrEnum):
    CURRENT = "current"
    LATE = "late"
    DEFAULTED = "defaulted"
    REPAID = "repaid"


#: Loans that still owe something; a merchant has at most one of these per lender.
OPEN_LOAN_STATES = frozenset({LoanState.CURRENT, LoanState.LATE, LoanState.DEFAULTED})


class ContestStatus(StrEnum):
    OPEN = "open"
    UPHELD = "upheld"
    OVERTURNED = "overturned"


# --------------------------------------------------------------------------- checks
def check_id(
    value: object,
    what: str,
    error: type[InvalidLendingInput] = InvalidLendingInput,
    length_max: int = ID_LEN_MAX,
) -> str:
    """A client-chosen id: 1..56 (``length_max``: a party's, 64) of letters, digits, '-',
    '_', '.', ':' (starting alnum)."""
    if not isinstance(value, str) or not 0 < len(value) <= length_max:
        raise error(f"{what} must be 1-{length_max} characters", field=what)
    if _ID_RE.fullmatch(value) is None:
        raise error(
            f"{what} {value!r} may hold only letters, digits, '-', '_', '.' and ':'", field=what
        )
    return value


def check_amount(value: object, what: str = "amount", *, zero_ok: bool = False) -> int:
    low = 0 if zero_ok else 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidLendingInput(f"{what} must be an integer of minor units", field=what)
    if not low <= value <= AMOUNT_MINOR_MAX:
        raise InvalidLendingInput(
            f"{what} must be {low}..{AMOUNT_MINOR_MAX} minor units, got {value}", field=what
        )
    return value


def check_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidLendingInput(f"{what} must not be empty", field=what)
    if len(value) > TEXT_LEN_MAX:
        raise InvalidLendingInput(f"{what} must be at most {TEXT_LEN_MAX} characters", field=what)
    bad = _ILLEGAL_TEXT.search(value)
    if bad is not None:
        raise InvalidLendingInput(
            f"{what} holds a control character (U+{ord(bad.group()):04X}) at {bad.start()}",
            field=what,
        )
    return value.strip()


def check_currency(code: object, error: type[InvalidLendingInput] = InvalidLendingInput) -> str:
    try:
        return get_currency(code).code  # type: ignore[arg-type]
    except MoneyError as exc:
        raise error(exc.detail, field="currency") from None


def _count(value: object, what: str, error: type[InvalidLendingInput], high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise error(f"{what} must be an integer in 0..{high}, got {value!r}", field=what)
    return value


def _rate(numerator: int, denominator: int) -> Decimal:
    """numerator / denominator rounded to four places, ROUND_HALF_EVEN; 0 when both are 0."""
    if denominator == 0:
        return Decimal(0) if numerator == 0 else Decimal(1)
    with localcontext() as ctx:
        ctx.prec = 60
        return (Decimal(numerator) / Decimal(denominator)).quantize(
            RATE_PLACES, rounding=ROUND_HALF_EVEN
        )


def money_text(amount_minor: int, currency: str) -> str:
    return f"{format_amount(amount_minor, currency)} {currency}"


def day_text(ts_ns: int) -> str:
    return ns_to_datetime(ts_ns).date().isoformat()


# --------------------------------------------------------------------------- history
@dataclass(frozen=True, slots=True)
class MerchantHistory:
    """What the platform knows of a merchant's trade, built by the trade context.

    Counts and amounts cover the same period as ``monthly_sales_minor`` (complete calendar
    months, oldest first, the last being the most recent). ``settlement_weeks`` of the
    ``observed_weeks`` had at least one settlement to the merchant. ``country`` is recorded
    but is never a decision input.
    """

    merchant_id: str
    country: str
    currency: str
    as_of_ns: int
    tenure_days: int
    monthly_sales_minor: tuple[int, ...]
    order_count: int
    refund_count: int
    refund_minor: int
    dispute_count: int
    disputes_lost: int
    settlement_weeks: int
    observed_weeks: int

    def __post_init__(self) -> None:
        check_id(self.merchant_id, "merchant_id", InvalidHistory, PARTY_ID_LEN_MAX)
        c = self.country
        if not is_country(c):  # ZZ is two capitals and no country
            shown = repr(c[:8]) if isinstance(c, str) else type(c).__name__
            raise InvalidHistory(
                f"country {shown} is not an assigned ISO 3166-1 alpha-2 code", field="country"
            )
        check_currency(self.currency, InvalidHistory)
        if isinstance(self.as_of_ns, bool) or not isinstance(self.as_of_ns, int):
            raise InvalidHistory("as_of_ns must be an integer timestamp", field="as_of_ns")
        _count(self.as_of_ns, "as_of_ns", InvalidHistory, (1 << 63) - 1)
        _count(self.tenure_days, "tenure_days", InvalidHistory, 36_500)
        sales = self.monthly_sales_minor
        if not isinstance(sales, tuple | list) or len(sales) > SALES_MONTHS_MAX:
            raise InvalidHistory(
                f"monthly_sales_minor must be a list of at most {SALES_MONTHS_MAX} months",
                field="monthly_sales_minor",
            )
        for i, month in enumerate(sales):
            _count(month, f"monthly_sales_minor[{i}]", InvalidHistory, AMOUNT_MINOR_MAX)
        object.__setattr__(self, "monthly_sales_minor", tuple(sales))
        self._check_counts()

    def _check_counts(self) -> None:
        for name in ("order_count", "refund_count", "dispute_count", "disputes_lost"):
            _count(getattr(self, name), name, InvalidHistory, 10**9)
        _count(self.refund_minor, "refund_minor", InvalidHistory, AMOUNT_MINOR_MAX)
        _count(self.observed_weeks, "observed_weeks", InvalidHistory, 5_300)
        _count(self.settlement_weeks, "settlement_weeks", InvalidHistory, 5_300)
        pairs = (
            ("refund_count", "order_count"),
            ("dispute_count", "order_count"),
            ("disputes_lost", "dispute_count"),
            ("settlement_weeks", "observed_weeks"),
        )
        for part, whole in pairs:
            if getattr(self, part) > getattr(self, whole):
                raise InvalidHistory(
                    f"{part} ({getattr(self, part)}) exceeds {whole} ({getattr(self, whole)})",
                    field=part,
                )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["monthly_sales_minor"] = list(self.monthly_sales_minor)
        return out

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> MerchantHistory:
        """From a mapping with exactly the fields of :class:`MerchantHistory`."""
        names = [f.name for f in fields(MerchantHistory)]
        unknown = sorted(set(raw) - set(names))
        missing = [n for n in names if n not in raw]
        if unknown or missing:
            detail = "; ".join(
                part
                for part in (
                    f"unknown fields: {', '.join(unknown)}" if unknown else "",
                    f"missing fields: {', '.join(missing)}" if missing else "",
                )
                if part
            )
            raise InvalidHistory(f"merchant history: {detail}", field=(missing or unknown)[0])
        values = dict(raw)
        sales = values["monthly_sales_minor"]
        values["monthly_sales_minor"] = tuple(sales) if isinstance(sales, list) else sales
        return MerchantHistory(**values)


@dataclass(frozen=True, slots=True)
class Features:
    """Derived from a :class:`MerchantHistory` by :func:`derive_features` (formulas there)."""

    months_of_sales: int
    avg_monthly_sales_minor: int
    growth: Decimal | None
    refund_rate: Decimal
    refund_amount_rate: Decimal
    dispute_rate: Decimal
    disputes_lost_rate: Decimal
    tenure_days: int
    regularity: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> Features:
        def dec(key: str) -> Decimal:
            return Decimal(str(raw[key]))

        return Features(
            months_of_sales=int(raw["months_of_sales"]),
            avg_monthly_sales_minor=int(raw["avg_monthly_sales_minor"]),
            growth=None if raw.get("growth") is None else dec("growth"),
            refund_rate=dec("refund_rate"),
            refund_amount_rate=dec("refund_amount_rate"),
            dispute_rate=dec("dispute_rate"),
            disputes_lost_rate=dec("disputes_lost_rate"),
            tenure_days=int(raw["tenure_days"]),
            regularity=dec("regularity"),
        )


def derive_features(history: MerchantHistory) -> Features:
    """The features every decision uses, with these formulas:

    - ``avg_monthly_sales_minor``: mean of the last min(6, n) months of sales, rounded down
      (floor division); 0 with no months;
    - ``growth``: (sum of the last 3 months - sum of the 3 months before) / sum of those 3
      before, i.e. the change of the 3-month mean; None with fewer than 6 months or when the
      earlier 3 months sold nothing;
    - ``refund_rate`` = refunds / orders; ``refund_amount_rate`` = refunded amount / sales over
      all months given; ``dispute_rate`` = disputes / orders; ``disputes_lost_rate`` = disputes
      lost / orders (each 0 when both parts are 0, 1 when only the denominator is 0);
    - ``regularity`` = weeks with a settlement / weeks observed;
    - ``tenure_days`` as given.

    Rates are rounded to four places, ROUND_HALF_EVEN.
    """
    sales = history.monthly_sales_minor
    recent = sales[-AVERAGE_MONTHS:]
    avg = sum(recent) // len(recent) if recent else 0
    growth: Decimal | None = None
    if len(sales) >= 2 * GROWTH_MONTHS:
        last = sum(sales[-GROWTH_MONTHS:])
        before = sum(sales[-2 * GROWTH_MONTHS : -GROWTH_MONTHS])
        if before > 0:
            with localcontext() as ctx:
                ctx.prec = 60
                growth = (Decimal(last - before) / Decimal(before)).quantize(
                    RATE_PLACES, rounding=ROUND_HALF_EVEN
                )
    return Features(
        months_of_sales=len(sales),
        avg_monthly_sales_minor=avg,
        growth=growth,
        refund_rate=_rate(history.refund_count, history.order_count),
        refund_amount_rate=_rate(history.refund_minor, sum(sales)),
        dispute_rate=_rate(history.dispute_count, history.order_count),
        disputes_lost_rate=_rate(history.disputes_lost, history.order_count),
        tenure_days=history.tenure_days,
        regularity=_rate(history.settlement_weeks, history.observed_weeks),
    )


# --------------------------------------------------------------------------- policy
@dataclass(frozen=True, slots=True)
class LoanTerms:
    """What a loan is held to; copied from the policy onto each offer and loan, so a later
    policy change never alters a loan already made."""

    term_days: int
    repayment_share_bps: int
    late_after_days: int
    default_after_days: int
    schedule_tolerance_bps: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


_DECIMAL_FIELDS = (
    "max_refund_rate",
    "max_dispute_rate",
    "min_regularity",
    "limit_multiple",
    "min_growth",
    "max_pd",
)


@dataclass(frozen=True, slots=True)
class CreditPolicy:
    """A partner bank's credit policy for one currency. Versions are numbered 1, 2, ... by
    :meth:`Lending.set_policy`; ``version`` 0 is a policy not stored yet.

    Limit = min(``limit_multiple`` x average monthly sales rounded down, ``limit_max_minor``);
    a limit below ``limit_min_minor`` declines. Fee = ``fee_bps`` of the principal rounded half
    up, added to what is owed at disbursement, due within ``term_days``. ``repayment_share_bps``
    of every payout is withheld until repaid. ``max_pd`` (optional) declines when the credit
    model's probability of default is above it. ``min_growth`` (optional) declines when growth
    is below it or cannot be measured. ``history_months``: the complete months of trade the
    lender decides on (the merchant does not choose them: a shorter window left out an older
    month of refunds and disputes, a longer one an early month with no sales).
    """

    lender_id: str
    currency: str
    min_tenure_days: int
    min_avg_monthly_sales_minor: int
    max_refund_rate: Decimal
    max_dispute_rate: Decimal
    min_regularity: Decimal
    limit_multiple: Decimal
    limit_min_minor: int
    limit_max_minor: int
    fee_bps: int
    term_days: int
    repayment_share_bps: int
    offer_valid_days: int = 14
    late_after_days: int = 30
    default_after_days: int = 60
    schedule_tolerance_bps: int = 5_000
    min_growth: Decimal | None = None
    max_pd: Decimal | None = None
    history_months: int = 12
    version: int = 0
    set_at_ns: int = 0

    def __post_init__(self) -> None:
        check_id(self.lender_id, "lender_id", InvalidPolicy, PARTY_ID_LEN_MAX)
        check_currency(self.currency, InvalidPolicy)
        for name in _DECIMAL_FIELDS:
            value = getattr(self, name)
            if value is None and name not in _OPTIONAL_POLICY_FIELDS:
                # stored, a null rate failed every offer of the lender (a rule compared a
                # rate with None; found by a review)
                raise InvalidPolicy(f"{name} must be decimal text like '0.05'", field=name)
            if value is not None:
                object.__setattr__(self, name, _decimal(value, name))
        self._check_ints()
        self._check_rates()

    def _check_ints(self) -> None:
        def between(name: str, low: int, high: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidPolicy(f"{name} must be an integer in {low}..{high}", field=name)

        between("min_tenure_days", 0, DAYS_MAX)
        between("min_avg_monthly_sales_minor", 0, AMOUNT_MINOR_MAX)
        between("limit_min_minor", 1, AMOUNT_MINOR_MAX)
        between("limit_max_minor", self.limit_min_minor, AMOUNT_MINOR_MAX)
        between("fee_bps", 0, BPS)
        between("term_days", 1, TERM_DAYS_MAX)
        between("repayment_share_bps", 1, BPS)
        between("offer_valid_days", 1, 365)
        between("late_after_days", 1, DAYS_MAX)
        between("default_after_days", 1, DAYS_MAX)
        between("schedule_tolerance_bps", 0, BPS)
        between("history_months", 1, SALES_MONTHS_MAX)
        between("version", 0, POLICY_VERSION_MAX)

    def _check_rates(self) -> None:
        for name in ("max_refund_rate", "max_dispute_rate", "min_regularity", "max_pd"):
            value = getattr(self, name)
            if value is not None and not Decimal(0) <= value <= Decimal(1):
                raise InvalidPolicy(f"{name} must be between 0 and 1, got {value}", field=name)
        if not Decimal(0) < self.limit_multiple <= LIMIT_MULTIPLE_MAX:
            raise InvalidPolicy(
                f"limit_multiple must be above 0 and at most {LIMIT_MULTIPLE_MAX}",
                field="limit_multiple",
            )
        if self.min_growth is not None and not Decimal(-1) <= self.min_growth <= Decimal(100):
            raise InvalidPolicy("min_growth must be between -1 and 100", field="min_growth")
        if self.min_growth is not None and self.history_months < 2 * GROWTH_MONTHS:
            raise InvalidPolicy(
                f"min_growth compares two periods of {GROWTH_MONTHS} months: history_months "
                f"must be at least {2 * GROWTH_MONTHS}, got {self.history_months}",
                field="history_months",
            )

    @property
    def terms(self) -> LoanTerms:
        return LoanTerms(
            self.term_days,
            self.repayment_share_bps,
            self.late_after_days,
            self.default_after_days,
            self.schedule_tolerance_bps,
        )

    @property
    def model_version(self) -> str:
        return f"lending-policy:{self.lender_id}:{self.currency}:v{self.version}"

    def rules_dict(self) -> dict[str, Any]:
        """The policy's terms without who, which currency, version and when (for comparing)."""
        out = self.to_dict()
        for key in ("lender_id", "currency", "version", "set_at_ns"):
            out.pop(key)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> CreditPolicy:
        names = {f.name for f in fields(CreditPolicy)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise InvalidPolicy(f"unknown policy fields: {', '.join(unknown)}", field=unknown[0])
        required = [f.name for f in fields(CreditPolicy) if f.name not in _OPTIONAL_POLICY_FIELDS]
        missing = [n for n in required if n not in raw]
        if missing:
            raise InvalidPolicy(f"missing policy fields: {', '.join(missing)}", field=missing[0])
        return CreditPolicy(**dict(raw))


_OPTIONAL_POLICY_FIELDS = frozenset(
    {
        "offer_valid_days",
        "late_after_days",
        "default_after_days",
        "schedule_tolerance_bps",
        "min_growth",
        "max_pd",
        "history_months",
        "version",
        "set_at_ns",
    }
)


def _decimal(value: object, name: str) -> Decimal:
    """Exact decimal from a Decimal, an int or decimal text; floats are refused (inexact)."""
    if isinstance(value, bool | float):
        raise InvalidPolicy(f"{name} must be decimal text like '0.05', not a float", field=name)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise InvalidPolicy(f"{name} {value!r} is not a decimal number", field=name) from None
    else:
        raise InvalidPolicy(f"{name} must be decimal text like '0.05'", field=name)
    if not result.is_finite():
        raise InvalidPolicy(f"{name} must be a finite number", field=name)
    return result


# --------------------------------------------------------------------------- decisions
@dataclass(frozen=True, slots=True)
class Reason:
    """One reason of a decision: the rule, the merchant's value and the threshold, in words."""

    rule: str
    text: str
    value: str = ""
    threshold: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> Reason:
        return Reason(
            str(raw["rule"]),
            str(raw["text"]),
            str(raw.get("value", "")),
            str(raw.get("threshold", "")),
        )


#: A credit model's probability of default is kept to this many decimal places.
PD_PLACES = 12
#: The longest name a credit model gives its version (recorded after the policy's).
MODEL_VERSION_MAX = 64


@dataclass(frozen=True, slots=True)
class ModelScore:
    """A credit model's view of the features: probability of default and its own reasons."""

    model_version: str
    pd: Decimal
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        version = self.model_version
        if (
            not isinstance(version, str)
            or not 1 <= len(version) <= MODEL_VERSION_MAX
            or not version.isprintable()
            or version != version.strip()
        ):
            raise InvalidLendingInput(
                f"model_version must be 1..{MODEL_VERSION_MAX} printable characters, "
                f"got {str(version)[:80]!r}"
            )
        pd = self.pd
        if not isinstance(pd, Decimal) or not pd.is_finite() or not Decimal(0) <= pd <= 1:
            raise InvalidLendingInput(f"pd must be a Decimal in 0..1, got {pd!r}")
        exponent = pd.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -PD_PLACES:
            # a model's float made Decimal (Decimal(0.1) has 55 digits) is stored and shown to
            # 12 places: more says nothing and overflowed the stored score (found by a review)
            object.__setattr__(
                self, "pd", pd.quantize(Decimal(1).scaleb(-PD_PLACES), ROUND_HALF_EVEN).normalize()
            )


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What a policy decided for a set of features."""

    outcome: OfferOutcome
    limit_minor: int
    principal_minor: int
    fee_minor: int
    reasons: tuple[Reason, ...]
    rules_checked: tuple[str, ...]


def credit_limit(policy: CreditPolicy, features: Features) -> int:
    """min(limit_multiple x average monthly sales, rounded down, limit_max_minor)."""
    with localcontext() as ctx:
        ctx.prec = 60
        raw = (Decimal(features.avg_monthly_sales_minor) * policy.limit_multiple).to_integral_value(
            rounding=ROUND_DOWN
        )
    return min(int(raw), policy.limit_max_minor)


def fee_for(principal_minor: int, fee_bps: int) -> int:
    """fee_bps of the principal, rounded half up, in exact integers."""
    return (principal_minor * fee_bps + BPS // 2) // BPS


def _pct(rate: Decimal) -> str:
    return f"{rate * 100:.2f}%"


def _bps_pct(bps: int) -> str:
    return f"{Decimal(bps) / 100:.2f}%"


def _rule_failures(
    policy: CreditPolicy, f: Features, score: ModelScore | None
) -> tuple[list[Reason], list[str]]:
    """Failed rules in the policy's order of priority, and the names of every rule checked."""
    cur = policy.currency
    checks: list[tuple[str, bool, str, str, str]] = [
        (
            "max_dispute_rate",
            f.dispute_rate > policy.max_dispute_rate,
            str(f.dispute_rate),
            str(policy.max_dispute_rate),
            f"dispute rate {f.dispute_rate} is above the maximum {policy.max_dispute_rate}",
        ),
        (
            "max_refund_rate",
            f.refund_rate > policy.max_refund_rate,
            str(f.refund_rate),
            str(policy.max_refund_rate),
            f"refund rate {f.refund_rate} is above the maximum {policy.max_refund_rate}",
        ),
        (
            "min_avg_monthly_sales",
            f.avg_monthly_sales_minor < policy.min_avg_monthly_sales_minor,
            money_text(f.avg_monthly_sales_minor, cur),
            money_text(policy.min_avg_monthly_sales_minor, cur),
            f"average monthly sales {money_text(f.avg_monthly_sales_minor, cur)} are below the "
            f"minimum {money_text(policy.min_avg_monthly_sales_minor, cur)}",
        ),
        (
            "min_tenure_days",
            f.tenure_days < policy.min_tenure_days,
            str(f.tenure_days),
            str(policy.min_tenure_days),
            f"{f.tenure_days} days on the platform, fewer than the minimum "
            f"{policy.min_tenure_days}",
        ),
        (
            "min_regularity",
            f.regularity < policy.min_regularity,
            str(f.regularity),
            str(policy.min_regularity),
            f"settled in {_pct(f.regularity)} of weeks, below the minimum "
            f"{_pct(policy.min_regularity)}",
        ),
    ]
    if policy.min_growth is not None:
        checks.append(_growth_check(policy.min_growth, f))
    if policy.max_pd is not None:
        assert score is not None, "a policy with max_pd needs a model score"
        checks.append(
            (
                "max_pd",
                score.pd > policy.max_pd,
                str(score.pd),
                str(policy.max_pd),
                f"credit model {score.model_version} gives a default probability of {score.pd}, "
                f"above the cutoff {policy.max_pd}",
            )
        )
    failures = [Reason(rule, text, value, limit) for rule, bad, value, limit, text in checks if bad]
    return failures, [c[0] for c in checks]


def _growth_check(min_growth: Decimal, f: Features) -> tuple[str, bool, str, str, str]:
    if f.growth is None:
        return (
            "min_growth",
            True,
            "unknown",
            str(min_growth),
            f"sales growth cannot be measured: it needs {2 * GROWTH_MONTHS} months of sales "
            f"with sales in the earlier {GROWTH_MONTHS}, and there are "
            f"{f.months_of_sales}",
        )
    return (
        "min_growth",
        f.growth < min_growth,
        str(f.growth),
        str(min_growth),
        f"sales growth {_pct(f.growth)} over {GROWTH_MONTHS} months is below the minimum "
        f"{_pct(min_growth)}",
    )


def evaluate(
    policy: CreditPolicy, features: Features, score: ModelScore | None = None
) -> Evaluation:
    """Offer the limit if every rule passes and the limit reaches ``limit_min_minor``; else
    decline with the failed rules (in the policy's order, at most four; a model's own reasons
    follow its cutoff's)."""
    failures, checked = _rule_failures(policy, features, score)
    limit = credit_limit(policy, features)
    cur = policy.currency
    if limit < policy.limit_min_minor:
        failures.append(
            Reason(
                "limit_min_minor",
                f"the credit limit {money_text(limit, cur)} ({policy.limit_multiple} x average "
                f"monthly sales) is below the smallest loan "
                f"{money_text(policy.limit_min_minor, cur)}",
                money_text(limit, cur),
                money_text(policy.limit_min_minor, cur),
            )
        )
    checked.append("limit_min_minor")
    if failures:
        if score is not None and any(r.rule == "max_pd" for r in failures):
            failures += [Reason("model", text) for text in score.reasons]
        return Evaluation(
            OfferOutcome.DECLINE, limit, 0, 0, tuple(failures[:REASONS_MAX]), tuple(checked)
        )
    fee = fee_for(limit, policy.fee_bps)
    return Evaluation(
        OfferOutcome.OFFER,
        limit,
        limit,
        fee,
        offer_reasons(policy, features, limit, fee, len(checked), score),
        tuple(checked),
    )


def offer_reasons(
    policy: CreditPolicy,
    features: Features,
    principal: int,
    fee: int,
    rules_passed: int,
    score: ModelScore | None = None,
) -> tuple[Reason, ...]:
    """Why this amount and these terms (at most four reasons)."""
    cur = policy.currency
    raw_limit = credit_limit(policy, features)
    capped = " (capped at the policy maximum)" if raw_limit == policy.limit_max_minor else ""
    basis = (
        f"limit {money_text(principal, cur)}: {policy.limit_multiple} x average monthly sales "
        f"{money_text(features.avg_monthly_sales_minor, cur)}{capped}"
    )
    passed = f"passed all {rules_passed} rules of policy v{policy.version}"
    if score is not None:
        passed += f"; credit model {score.model_version} default probability {score.pd}"
    return (
        Reason("limit", basis, money_text(principal, cur), money_text(policy.limit_max_minor, cur)),
        *_terms_reasons(policy, fee),
        Reason("policy", passed),
    )


def _terms_reasons(policy: CreditPolicy, fee: int) -> tuple[Reason, Reason]:
    fee_text = (
        f"fee {money_text(fee, policy.currency)} ({_bps_pct(policy.fee_bps)} of the principal), "
        f"all due within {policy.term_days} days"
    )
    share = _bps_pct(policy.repayment_share_bps)
    return (
        Reason("fee", fee_text),
        Reason("repayment", f"{share} of every payout is withheld until the loan is repaid"),
    )


def review_reasons(
    policy: CreditPolicy, original: Offer, principal: int, fee: int, reviewer_id: str, why: str
) -> tuple[Reason, ...]:
    """Why an offer made on review: the reviewer's words, what it replaces, its terms."""
    was = original.outcome.value
    if original.outcome is OfferOutcome.OFFER:
        was += f" of {money_text(original.principal_minor, original.currency)}"
    return (
        Reason(
            "review",
            f"overturned on review by {reviewer_id}: {why}",
            money_text(principal, policy.currency),
        ),
        Reason(
            "replaces",
            f"replaces decision {original.offer_id} ({was}, policy v{original.policy_version})",
        ),
        *_terms_reasons(policy, fee),
    )


# --------------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class Offer:
    """A decision for one merchant by one lender: an offer to accept, or a decline. Either way
    it keeps the exact history, features and policy version it used, and its reasons."""

    offer_id: str
    lender_id: str
    merchant_id: str
    currency: str
    outcome: OfferOutcome
    state: OfferState
    limit_minor: int
    principal_minor: int
    fee_minor: int
    terms: LoanTerms
    reasons: tuple[Reason, ...]
    features: Features
    history: MerchantHistory
    policy_version: int
    model_version: str
    score: Decimal | None
    created_at_ns: int
    expires_at_ns: int
    requested_by: str
    origin: str = "policy"  # "policy", or "review" when a person overturned a decision
    supersedes: str | None = None
    log_id: str = ""  # the decision log's id for this decision
    contested: bool = False

    @property
    def total_due_minor(self) -> int:
        return self.principal_minor + self.fee_minor


@dataclass(frozen=True, slots=True)
class Loan:
    """An accepted offer, disbursed. ``total_due_minor`` and ``repaid_minor`` are read from the
    loan's receivable account on the ledger (debits and credits posted), never kept apart."""

    loan_id: str
    lender_id: str
    merchant_id: str
    currency: str
    principal_minor: int
    fee_minor: int
    terms: LoanTerms
    disbursed_at_ns: int
    due_at_ns: int
    state: LoanState
    state_since_ns: int
    last_repayment_at_ns: int | None
    receivable_account: int
    total_due_minor: int
    repaid_minor: int

    @property
    def outstanding_minor(self) -> int:
        return self.total_due_minor - self.repaid_minor


@dataclass(frozen=True, slots=True)
class LoanEvent:
    loan_id: str
    seq: int
    at_ns: int
    from_state: LoanState | None
    to_state: LoanState
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class Repayment:
    reference: str
    loan_id: str
    amount_minor: int
    source: str  # "withhold" (from a payout) or "direct"
    at_ns: int
    actor: str


@dataclass(frozen=True, slots=True)
class Contest:
    offer_id: str
    merchant_id: str
    lender_id: str
    statement: str
    contested_at_ns: int
    status: ContestStatus
    reviewer_id: str | None = None
    reviewed_at_ns: int | None = None
    review_reason: str | None = None
    new_principal_minor: int | None = None
    new_offer_id: str | None = None
    log_id: str | None = None


# --------------------------------------------------------------------------- repayment
def split_withholding(payout_minor: int, loans: Sequence[tuple[int, int]]) -> list[int]:
    """How much of a payout goes to each loan, given ``(repayment_share_bps, outstanding)``
    per loan in the order they were disbursed: the share of the payout rounded down, capped at
    what the loan still owes and at what is left of the payout."""
    left = payout_minor
    parts = []
    for share_bps, outstanding in loans:
        take = min(payout_minor * share_bps // BPS, outstanding, left)
        parts.append(take)
        left -= take
    return parts


def expected_repaid(loan: Loan, now_ns: int) -> int:
    """What a straight line from disbursement to the due date would have collected by
    ``late_after_days`` ago (that lag is the merchant's grace), rounded down."""
    grace_ns = loan.terms.late_after_days * NS_PER_DAY
    term_ns = loan.due_at_ns - loan.disbursed_at_ns
    elapsed = min(max(now_ns - loan.disbursed_at_ns - grace_ns, 0), term_ns)
    return loan.total_due_minor * elapsed // term_ns


def lateness(loan: Loan, now_ns: int) -> str | None:
    """Why the loan is late now, or None when it is on track."""
    if now_ns >= loan.due_at_ns:
        return (
            f"past the due date {day_text(loan.due_at_ns)} with "
            f"{money_text(loan.outstanding_minor, loan.currency)} outstanding"
        )
    since = loan.last_repayment_at_ns or loan.disbursed_at_ns
    quiet_days = (now_ns - since) // NS_PER_DAY
    if quiet_days >= loan.terms.late_after_days:
        what = "repayment" if loan.last_repayment_at_ns else "repayment since disbursement"
        return f"no {what} for {quiet_days} days (late after {loan.terms.late_after_days})"
    expected = expected_repaid(loan, now_ns)
    tolerance = loan.terms.schedule_tolerance_bps
    if loan.repaid_minor * BPS < expected * (BPS - tolerance):
        return (
            f"repaid {money_text(loan.repaid_minor, loan.currency)}, behind the "
            f"{money_text(expected, loan.currency)} expected by now "
            f"(tolerance {_bps_pct(tolerance)})"
        )
    return None


def assess_loan(loan: Loan, now_ns: int) -> tuple[LoanState, str] | None:
    """The loan's next delinquency state and why, or None when it stays as it is.

    CURRENT -> LATE when past due, quiet for ``late_after_days``, or behind schedule;
    LATE -> DEFAULTED after ``default_after_days`` late; LATE -> CURRENT when none of those
    holds any more; any open state -> REPAID when nothing is outstanding. DEFAULTED and REPAID
    are left only by repaying (DEFAULTED -> REPAID).
    """
    if loan.state is LoanState.REPAID:
        return None
    if loan.outstanding_minor == 0:
        return LoanState.REPAID, "repaid in full"
    if loan.state is LoanState.DEFAULTED:
        return None
    why = lateness(loan, now_ns)
    if loan.state is LoanState.CURRENT:
        return None if why is None else (LoanState.LATE, why)
    if why is None:  # caught up: current, however long it was late (a pass may come late)
        return LoanState.CURRENT, "back on schedule"
    late_days = (now_ns - loan.state_since_ns) // NS_PER_DAY
    if late_days >= loan.terms.default_after_days:
        return LoanState.DEFAULTED, (
            f"late for {late_days} days (default after {loan.terms.default_after_days}); {why}"
        )
    return None


def jsonable(value: Any) -> Any:
    """Decimals as text, tuples as lists: what the stores and the decision log write."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


__all__ = [
    "AMOUNT_MINOR_MAX",
    "ID_LEN_MAX",
    "NS_PER_DAY",
    "OPEN_LOAN_STATES",
    "PARTY_ID_LEN_MAX",
    "REASONS_MAX",
    "Contest",
    "ContestStatus",
    "CreditPolicy",
    "Evaluation",
    "Features",
    "Loan",
    "LoanEvent",
    "LoanState",
    "LoanTerms",
    "MerchantHistory",
    "ModelScore",
    "Offer",
    "OfferOutcome",
    "OfferState",
    "Reason",
    "Repayment",
    "assess_loan",
    "credit_limit",
    "derive_features",
    "evaluate",
    "expected_repaid",
    "fee_for",
    "review_reasons",
    "split_withholding",
]
