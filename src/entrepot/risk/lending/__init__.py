"""Merchant credit on the platform: partner banks lend to merchants from their trade history.

Owns: partner banks' credit policies (versioned data per lender and currency), the features
derived from a merchant's history, offers and declines with their reasons and the exact data
they used, acceptance and disbursement through the ledger, repayment withheld from the
merchant's payouts (or paid directly), delinquency states, and contests reviewed by a person.
The trade context builds a :class:`MerchantHistory` and calls :meth:`Lending.offer` and, at
each payout, :meth:`Lending.withhold` inside its own unit of work.

Invariants:
- The ledger holds the loan book: what a loan owes is its receivable account's debits minus
  credits, never a balance kept apart; the account's ``credits_must_not_exceed_debits`` flag
  makes the ledger itself refuse an over-repayment. Per lender and currency, the funding
  account's balance plus fee income equals what its loans owe.
- Lending's rows and its ledger postings commit in one unit of work, or neither does.
- Every offer or decline carries at most four reasons, each naming the rule, the merchant's
  value and the threshold; it stores the history, features and policy version it used, and is
  appended to the risk decision log (kind ``credit``; the merchant and its history hashed).
- Amounts are int minor units; limits round down, fees round half up, withholdings round down;
  rates are Decimals rounded half-even to four places.
- Ids are client-chosen idempotency keys (offer ids, payout and repayment references): a replay
  returns the first result; the same id for something else raises ``lending_id_conflict``.
- One open loan per merchant per lender (also a unique key in the database). A decision is
  contested at most once; the reviewer is never the merchant; a review's decision is final.
- Callers see only their own offers, loans and contests (as lender or as merchant).
- Bad input raises an error naming the problem, and nothing is changed.
- ``country`` is recorded with a history but never used to decide.
"""

from entrepot.risk.lending.errors import (
    AlreadyContested,
    ContestClosed,
    ContestNotFound,
    ExceedsOutstanding,
    IdConflict,
    InvalidHistory,
    InvalidLendingInput,
    InvalidPolicy,
    LedgerRefused,
    LendingError,
    LoanAlreadyOpen,
    LoanClosed,
    LoanNotFound,
    NotAnOffer,
    NotYours,
    OfferClosed,
    OfferExpired,
    OfferNotFound,
    PolicyChanged,
    PolicyNotFound,
    ReferenceNotFound,
    ReviewerNotIndependent,
    ScorerMissing,
    UnderReview,
)
from entrepot.risk.lending.model import (
    Contest,
    ContestStatus,
    CreditPolicy,
    Features,
    Loan,
    LoanEvent,
    LoanState,
    LoanTerms,
    MerchantHistory,
    ModelScore,
    Offer,
    OfferOutcome,
    OfferState,
    Reason,
    Repayment,
    derive_features,
    evaluate,
)
from entrepot.risk.lending.services import Code, Lending, Scorer, ledger_id

__all__ = [
    "AlreadyContested",
    "Code",
    "Contest",
    "ContestClosed",
    "ContestNotFound",
    "ContestStatus",
    "CreditPolicy",
    "ExceedsOutstanding",
    "Features",
    "IdConflict",
    "InvalidHistory",
    "InvalidLendingInput",
    "InvalidPolicy",
    "LedgerRefused",
    "Lending",
    "LendingError",
    "Loan",
    "LoanAlreadyOpen",
    "LoanClosed",
    "LoanEvent",
    "LoanNotFound",
    "LoanState",
    "LoanTerms",
    "MerchantHistory",
    "ModelScore",
    "NotAnOffer",
    "NotYours",
    "Offer",
    "OfferClosed",
    "OfferExpired",
    "OfferNotFound",
    "OfferOutcome",
    "OfferState",
    "PolicyChanged",
    "PolicyNotFound",
    "Reason",
    "ReferenceNotFound",
    "Repayment",
    "ReviewerNotIndependent",
    "Scorer",
    "ScorerMissing",
    "UnderReview",
    "derive_features",
    "evaluate",
    "ledger_id",
]
