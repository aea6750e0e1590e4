"""The risk engine: credit scoring and sanctions screening (fraud and lending live elsewhere).

Owns: credit models (a weight-of-evidence scorecard that decides and a gradient-boosting
challenger, both calibrated and cross-validated, saved with a model card), sanctions screening
against watch lists in OFAC's CSV layout, and the decision log that explains both.

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
- Randomness is seeded: the same data and seed give the same metrics.
"""

from entrepot.risk.credit import (
    DEFAULT_PROTECTED,
    CreditScore,
    TrainingReport,
    load_model,
    protected_columns,
    score_credit,
    train_credit,
)
from entrepot.risk.decisions import (
    Decision,
    JsonlSink,
    MemorySink,
    explain_decision,
    get_decision,
)
from entrepot.risk.errors import (
    BadValueUnknown,
    EmptyName,
    FeaturesMissing,
    InvalidParty,
    MissingTarget,
    TargetNotBinary,
    TooLittleData,
    UnknownDecision,
    UnknownModel,
    UnreadableData,
    WatchListInvalid,
)
from entrepot.risk.sanctions import (
    Candidate,
    Party,
    Screener,
    Screening,
    WatchListIndex,
    load_watch_list,
    make_party,
)

__all__ = [
    "DEFAULT_PROTECTED",
    "BadValueUnknown",
    "Candidate",
    "CreditScore",
    "Decision",
    "EmptyName",
    "FeaturesMissing",
    "InvalidParty",
    "JsonlSink",
    "MemorySink",
    "MissingTarget",
    "Party",
    "Screener",
    "Screening",
    "TargetNotBinary",
    "TooLittleData",
    "TrainingReport",
    "UnknownDecision",
    "UnknownModel",
    "UnreadableData",
    "WatchListIndex",
    "WatchListInvalid",
    "explain_decision",
    "get_decision",
    "load_model",
    "load_watch_list",
    "make_party",
    "protected_columns",
    "score_credit",
    "train_credit",
]
