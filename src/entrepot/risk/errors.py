"""Errors of the risk engine. Every one names the problem; codes are stable snake_case."""

from __future__ import annotations

from entrepot.kernel.errors import InvalidInput


class UnreadableData(InvalidInput):
    """A data file that is missing, not a file, not CSV, or empty."""

    code = "risk_unreadable_data"


class MissingTarget(InvalidInput):
    code = "risk_missing_target"


class TargetNotBinary(InvalidInput):
    code = "risk_target_not_binary"


class BadValueUnknown(InvalidInput):
    """The value that marks a bad loan is not among the target's values (or cannot be guessed)."""

    code = "risk_bad_value_unknown"


class TooLittleData(InvalidInput):
    code = "risk_too_little_data"


class TargetUnreachable(InvalidInput):
    """No PD cut-off gives the approved applicants a bad rate within the target."""

    code = "risk_target_unreachable"


class UnknownModel(InvalidInput):
    code = "risk_unknown_model"


class FeaturesMissing(InvalidInput):
    """Rows to score lack columns the model was trained on."""

    code = "risk_features_missing"


class EmptyName(InvalidInput):
    code = "risk_empty_name"


class InvalidParty(InvalidInput):
    """A party to screen with a malformed date of birth, country or type."""

    code = "risk_invalid_party"


class WatchListInvalid(InvalidInput):
    code = "risk_watch_list_invalid"


class UnknownDecision(InvalidInput):
    code = "risk_unknown_decision"
