"""The risk engine: credit scoring, sanctions screening and real-time fraud screening.

Lending to merchants on the platform (partner-bank policies, offers and declines with reasons,
disbursement and repayment on the ledger, delinquency, contest and review) is
:mod:`entrepot.risk.lending` (docs/lending.md).

Owns: credit models (a weight-of-evidence scorecard that decides and a gradient-boosting
challenger, both calibrated and cross-validated, saved with a model card), sanctions screening
against watch lists in OFAC's CSV layout, fraud screening of payments (rules plus a model,
approve / review / block with reasons, a review queue; trained on a seeded transaction
simulator), and the decision log that explains every decision.

Invariants:
- Protected attributes (the declared list plus any column named with sex, gender, age, marital,
  nationality, race, religion or foreign) are never model features; what excluding them cost in
  AUC is measured and written on the model card.
- A credit decline carries at most four reasons, taken from the model that decided.
- A sanctions ``match`` needs a strong name match AND a corroborating DOB or nationality with
  nothing contradicting; a name-only hit is ``review`` (a person decides), never a block.
- Every decision is appended to the decision log with its model or list version, score and
  reasons; personal inputs are hashed or minimised.
- Bad input (a missing or unreadable file, no target column, a target that is not binary, an
  unknown model, an empty name) raises an InvalidInput naming the problem; nothing is written.
- Fraud features are causal: a payment's features use only earlier payments and labels known
  after the label delay. Block needs strong combined evidence; otherwise review.
- Randomness is seeded: the same data and seed give the same metrics.

Submodules load on first use (pandas and scikit-learn take seconds to import), so importing
``entrepot.risk.sanctions`` does not pull the credit stack in.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "entrepot.risk.credit": (
        "DEFAULT_PROTECTED",
        "CreditScore",
        "TrainingReport",
        "load_model",
        "protected_columns",
        "score_credit",
        "train_credit",
    ),
    "entrepot.risk.decisions": (
        "Decision",
        "JsonlSink",
        "MemorySink",
        "explain_decision",
        "get_decision",
    ),
    "entrepot.risk.errors": (
        "BadValueUnknown",
        "EmptyName",
        "FeaturesMissing",
        "InvalidParty",
        "MissingTarget",
        "TargetNotBinary",
        "TooLittleData",
        "UnknownDecision",
        "UnknownModel",
        "UnreadableData",
        "WatchListInvalid",
    ),
    "entrepot.risk.sanctions": (
        "Candidate",
        "Party",
        "Screener",
        "Screening",
        "WatchListIndex",
        "load_watch_list",
        "make_party",
    ),
    "entrepot.risk.fraud": (
        "FEATURES",
        "RULES",
        "FeatureState",
        "FraudDecision",
        "FraudModel",
        "FraudScreener",
        "InvalidPayment",
        "InvalidReview",
        "Payment",
        "ReviewAlreadyResolved",
        "ReviewItem",
        "ReviewQueue",
        "Thresholds",
        "UnknownReviewItem",
        "load_fraud_model",
        "make_payment",
        "payments_from_frame",
        "precision_top_k_per_day",
        "replay_features",
        "train_fraud_model",
    ),
    "entrepot.risk.fraud_sim": ("PATTERNS", "SimConfig", "simulate", "time_split"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'entrepot.risk' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
