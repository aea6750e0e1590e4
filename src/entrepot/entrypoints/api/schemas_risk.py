"""Request and response bodies of the risk API (``/v1/risk``), camelCase like the rest of the
API. Amounts in requests are integers of minor units (``amountMinor``, ``limitMinMinor``) in the
currency the resource is in; in responses they are ``{"amount": "1350.00", "currency": "RWF",
"minor": 135000}``. Rates (``maxRefundRate``...) travel as decimal text (``"0.05"``), never as
JSON numbers, so nothing is lost to floating point. Times are ISO 8601 UTC."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from entrepot.entrypoints.api.schemas import JsonInt, MoneyOut, Strict
from entrepot.entrypoints.api.schemas_trade import MerchantHistoryOut

#: Parties per screening request: one is a batch of one.
SCREEN_BATCH_MAX = 1_000

_LENDING_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
LendingId = Field(min_length=1, max_length=56, pattern=_LENDING_ID_PATTERN)
#: A person's or a party's id in lending (a reviewer): 64 characters, as the column holds
LendingPartyId = Field(min_length=1, max_length=64, pattern=_LENDING_ID_PATTERN)
ParticipantId = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
Minor = Field(ge=1, le=10**15)
LongText = Field(min_length=1, max_length=2_000)
Rate = Field(min_length=1, max_length=24, pattern=r"^-?[0-9]+(\.[0-9]+)?$")
OptionalRate = Field(default=None, min_length=1, max_length=24, pattern=r"^-?[0-9]+(\.[0-9]+)?$")


# ------------------------------------------------------------------ sanctions screening
class PartyIn(Strict):
    """A party to screen: its name, and what corroborates or contradicts a listed name."""

    name: str = Field(min_length=1, max_length=200)
    dob: str | None = Field(default=None, max_length=10, description="YYYY-MM-DD")
    country: str | None = Field(default=None, max_length=64, description="ISO 3166 alpha-2")
    type: Literal["individual", "entity"] | None = None


class ScreeningIn(Strict):
    parties: list[PartyIn] = Field(min_length=1, max_length=SCREEN_BATCH_MAX)


class CandidateOut(BaseModel):
    """The listed entry closest to the party, and why it was judged so."""

    entNum: int
    listedName: str
    partyType: str
    programs: str
    nameScore: float
    score: float
    decision: str
    reasons: list[str]


class ScreeningOut(BaseModel):
    name: str
    decision: Literal["clear", "review", "match"]
    score: float
    best: CandidateOut | None
    reasons: list[str]
    listVersion: str
    decisionId: str | None


class ScreeningListOut(BaseModel):
    """One result per party, in the order sent; ``counts`` per decision."""

    listVersion: str
    counts: dict[str, int]
    screenings: list[ScreeningOut]


# ------------------------------------------------------------------ decision log
class DecisionOut(BaseModel):
    """A logged decision as recorded: personal inputs minimised (names and payment aliases as
    digests under the log's key, a date of birth kept as its year, a merchant and its history
    as SHA-256 digests)."""

    decisionId: str
    kind: str
    at: str
    modelVersion: str
    outcome: str
    score: float | None
    reasons: list[str]
    inputs: dict[str, Any]
    explanation: str


class LogHeadOut(BaseModel):
    """The decision log's head, an anchor to record: a later ``entrepot risk verify-log
    --anchor OFFSET:HASH`` shows whether the log still holds it."""

    offset: int = Field(description="the byte offset the log's whole lines end at")
    hash: str = Field(description="SHA-256 (hex) of the last whole line; 64 zeros for none")
    anchor: str = Field(description="OFFSET:HASH, as verify-log's --anchor takes it")


# ------------------------------------------------------------------ lending: policies
class PolicyIn(Strict):
    """A lender's credit policy for one currency (docs/lending.md has each rule)."""

    minTenureDays: JsonInt = Field(ge=0, le=3_650)
    minAvgMonthlySalesMinor: JsonInt = Field(ge=0, le=10**15)
    maxRefundRate: str = Rate
    maxDisputeRate: str = Rate
    minRegularity: str = Rate
    limitMultiple: str = Rate
    limitMinMinor: JsonInt = Minor
    limitMaxMinor: JsonInt = Minor
    feeBps: JsonInt = Field(ge=0, le=10_000)
    termDays: JsonInt = Field(ge=1, le=3_650)
    repaymentShareBps: JsonInt = Field(ge=1, le=10_000)
    offerValidDays: JsonInt = Field(default=14, ge=1, le=365)
    lateAfterDays: JsonInt = Field(default=30, ge=1, le=3_650)
    defaultAfterDays: JsonInt = Field(default=60, ge=1, le=3_650)
    scheduleToleranceBps: JsonInt = Field(default=5_000, ge=0, le=10_000)
    minGrowth: str | None = OptionalRate
    maxPd: str | None = OptionalRate
    historyMonths: JsonInt = Field(default=12, ge=1, le=36)


class PolicyOut(BaseModel):
    lenderId: str
    currency: str
    version: int
    setAt: str
    minTenureDays: int
    minAvgMonthlySalesMinor: int
    maxRefundRate: str
    maxDisputeRate: str
    minRegularity: str
    limitMultiple: str
    limitMinMinor: int
    limitMaxMinor: int
    feeBps: int
    termDays: int
    repaymentShareBps: int
    offerValidDays: int
    lateAfterDays: int
    defaultAfterDays: int
    scheduleToleranceBps: int
    minGrowth: str | None
    maxPd: str | None
    historyMonths: int


# ------------------------------------------------------------------ lending: offers
class OfferIn(Strict):
    """A merchant asks its bank for credit; its trade history over the complete months the
    bank's policy names (``historyMonths``) comes from the trade network. ``offerId`` is the
    client's idempotency key."""

    offerId: str = LendingId
    lenderId: str = ParticipantId


class AcceptIn(Strict):
    """Take the offer, or less of it (at least the policy's smallest loan)."""

    amountMinor: JsonInt | None = Field(default=None, ge=1, le=10**15)


class ContestIn(Strict):
    statement: str = LongText


class TermsOut(BaseModel):
    termDays: int
    repaymentShareBps: int
    lateAfterDays: int
    defaultAfterDays: int
    scheduleToleranceBps: int


class ReasonOut(BaseModel):
    """One reason: the rule, the merchant's value and the threshold, in words."""

    rule: str
    text: str
    value: str
    threshold: str


class OfferOut(BaseModel):
    offerId: str
    lenderId: str
    merchantId: str
    currency: str
    outcome: Literal["offer", "decline"]
    state: str
    limit: MoneyOut
    principal: MoneyOut
    fee: MoneyOut
    totalDue: MoneyOut
    terms: TermsOut
    reasons: list[ReasonOut]
    features: dict[str, Any]
    history: MerchantHistoryOut
    policyVersion: int
    modelVersion: str
    score: str | None
    createdAt: str
    expiresAt: str
    requestedBy: str
    origin: str
    supersedes: str | None
    contested: bool
    decisionId: str | None


class OfferListOut(BaseModel):
    offers: list[OfferOut]
    nextCursor: str | None


# ------------------------------------------------------------------ lending: loans
class LoanOut(BaseModel):
    """A loan; ``totalDue`` and ``repaid`` are its receivable account's debits and credits on
    the ledger, so ``outstanding`` is what the ledger says it owes."""

    loanId: str
    lenderId: str
    merchantId: str
    currency: str
    state: str
    principal: MoneyOut
    fee: MoneyOut
    totalDue: MoneyOut
    repaid: MoneyOut
    outstanding: MoneyOut
    terms: TermsOut
    disbursedAt: str
    dueAt: str
    stateSince: str
    lastRepaymentAt: str | None
    receivableAccount: str


class LoanListOut(BaseModel):
    loans: list[LoanOut]
    nextCursor: str | None


class RepaymentIn(Strict):
    """A repayment made outside payouts; ``reference`` is the idempotency key."""

    amountMinor: JsonInt = Minor
    reference: str = LendingId


class LoanEventOut(BaseModel):
    seq: int
    at: str
    fromState: str | None
    toState: str
    reason: str
    actor: str


class LoanEventListOut(BaseModel):
    events: list[LoanEventOut]


class RepaymentOut(BaseModel):
    reference: str
    amount: MoneyOut
    source: str
    at: str
    actor: str


class RepaymentListOut(BaseModel):
    repayments: list[RepaymentOut]


# ------------------------------------------------------------------ lending: contests
class ReviewIn(Strict):
    """A person at the lender reviews a contest: ``upheld`` (the decision stands) or
    ``overturned`` with ``newPrincipalMinor`` (a new offer ``<offerId>-review``)."""

    reviewerId: str = LendingPartyId
    outcome: Literal["upheld", "overturned"]
    reason: str = LongText
    newPrincipalMinor: JsonInt | None = Field(default=None, ge=1, le=10**15)


class ContestOut(BaseModel):
    offerId: str
    merchantId: str
    lenderId: str
    statement: str
    contestedAt: str
    status: str
    reviewerId: str | None
    reviewedAt: str | None
    reviewReason: str | None
    newPrincipalMinor: int | None
    newOfferId: str | None
    decisionId: str | None


class ContestListOut(BaseModel):
    contests: list[ContestOut]
    nextCursor: str | None


# ------------------------------------------------------------------ lending: the book
class BookOut(BaseModel):
    """A lender's loan book in one currency, reconciled with the ledger: what its loans owe
    equals its funding account's balance plus its fee income."""

    lenderId: str
    currency: str
    loans: int
    byState: dict[str, int]
    principal: MoneyOut
    fees: MoneyOut
    repaid: MoneyOut
    outstanding: MoneyOut
    fundingBalance: MoneyOut
    feeIncome: MoneyOut
    reconciled: bool
