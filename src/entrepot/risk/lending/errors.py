"""Errors of merchant lending. Every one names the problem and means nothing was changed; codes
are stable snake_case, prefixed ``lending_``."""

from __future__ import annotations

from entrepot.kernel.errors import ConfigurationError, Conflict, DomainError, InvalidInput, NotFound


class LendingError(DomainError):
    code = "lending_error"


# ---------------------------------------------------------------------- bad input (422)
class InvalidLendingInput(InvalidInput, LendingError):
    """A malformed id, amount, text or option."""

    code = "lending_invalid_input"


class InvalidHistory(InvalidLendingInput):
    """A merchant history that cannot be true (negative counts, more refunds than orders...)."""

    code = "lending_invalid_history"


class InvalidPolicy(InvalidLendingInput):
    code = "lending_invalid_policy"


class ReviewerNotIndependent(InvalidLendingInput):
    """The reviewer of a contest is the merchant who contested."""

    code = "lending_reviewer_not_independent"


# ---------------------------------------------------------------------- not found (404)
class PolicyNotFound(NotFound, LendingError):
    code = "lending_policy_not_found"


class OfferNotFound(NotFound, LendingError):
    code = "lending_offer_not_found"


class LoanNotFound(NotFound, LendingError):
    code = "lending_loan_not_found"


class ContestNotFound(NotFound, LendingError):
    code = "lending_contest_not_found"


class ReferenceNotFound(NotFound, LendingError):
    code = "lending_reference_not_found"


# ---------------------------------------------------------------------- not allowed (403)
class NotYours(LendingError):
    """The caller is a party to the object but may not do this with it."""

    code = "lending_forbidden"
    http_status = 403


# ---------------------------------------------------------------------- conflicts (409)
class IdConflict(Conflict, LendingError):
    """A client-chosen id replayed with a different payload."""

    code = "lending_id_conflict"


class PolicyChanged(Conflict, LendingError):
    """The lender's policy changed its window while the merchant's history was built: the
    request decided nothing and may be sent again."""

    code = "lending_policy_changed"


class OfferExpired(Conflict, LendingError):
    code = "lending_offer_expired"


class NotAnOffer(Conflict, LendingError):
    """The decision was a decline: there is nothing to accept."""

    code = "lending_not_an_offer"


class OfferClosed(Conflict, LendingError):
    """The offer was accepted or superseded (by a review) already."""

    code = "lending_offer_closed"


class UnderReview(Conflict, LendingError):
    """The offer is contested and waits for a person's review."""

    code = "lending_under_review"


class LoanAlreadyOpen(Conflict, LendingError):
    code = "lending_loan_already_open"


class LoanClosed(Conflict, LendingError):
    code = "lending_loan_closed"


class ExceedsOutstanding(Conflict, LendingError):
    code = "lending_exceeds_outstanding"


class AlreadyContested(Conflict, LendingError):
    code = "lending_already_contested"


class ContestClosed(Conflict, LendingError):
    """The contest was reviewed already, or the decision cannot be contested (final)."""

    code = "lending_contest_closed"


class LedgerRefused(LendingError):
    """The ledger refused a posting for a reason lending did not foresee."""

    code = "lending_ledger_refused"


class ScorerMissing(ConfigurationError, LendingError):
    """The policy has a model cutoff but no credit model was configured."""

    code = "lending_scorer_missing"
