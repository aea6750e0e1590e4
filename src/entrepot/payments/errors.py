"""Payment scheme errors: stable snake_case codes, each mapped to a Mojaloop-style four-digit
family (1xxx communication, 2xxx server, 3xxx client, 4xxx payer, 5xxx payee) and an HTTP
status by the API."""

from __future__ import annotations

from entrepot.kernel.errors import Conflict, DomainError, InvalidInput, NotFound


class PaymentError(DomainError):
    code = "payment_error"
    mojaloop_code = "2001"  # internal server error family unless a subclass says otherwise
    http_status = 400


class InvalidPaymentInput(InvalidInput, PaymentError):
    code = "invalid_input"
    mojaloop_code = "3100"
    http_status = 422


class ParticipantNotFound(NotFound, PaymentError):
    code = "participant_not_found"
    mojaloop_code = "3200"
    http_status = 404


class PartyNotFound(NotFound, PaymentError):
    code = "party_not_found"
    mojaloop_code = "3204"
    http_status = 404


class QuoteNotFound(NotFound, PaymentError):
    code = "quote_not_found"
    mojaloop_code = "3205"
    http_status = 404


class TransferNotFound(NotFound, PaymentError):
    code = "transfer_not_found"
    mojaloop_code = "3208"
    http_status = 404


#: The most characters of an id a not-found error echoes: the longest id the scheme gives
#: (``ID_PATTERN``), as the money and ISO 20022 checks quote what they refuse.
ID_SHOWN_MAX = 64


def shown_id(value: str) -> str:
    """``value`` as a not-found error names it: whole where it could be an id (up to
    ``ID_SHOWN_MAX`` characters); else its first ``ID_SHOWN_MAX``, '...' and its length. The
    id came from a request (a path holds one of any length), and the error goes into the
    answer and every log line recording it: transfer_not_found echoed it whole."""
    if len(value) <= ID_SHOWN_MAX:
        return value
    return f"{value[:ID_SHOWN_MAX]}... ({len(value)} characters)"


class EscrowNotFound(NotFound, PaymentError):
    code = "escrow_not_found"
    mojaloop_code = "3200"
    http_status = 404


class CredentialNotFound(NotFound, PaymentError):
    code = "credential_not_found"
    mojaloop_code = "3200"
    http_status = 404


class WindowNotFound(NotFound, PaymentError):
    code = "settlement_window_not_found"
    mojaloop_code = "3200"
    http_status = 404


class NotYours(PaymentError):
    """The caller may not see or act on this (another participant's data)."""

    code = "forbidden"
    mojaloop_code = "3000"  # generic client error (33xx is "expired")
    http_status = 403


class ControllerNotAllowed(PaymentError):
    """An escrow's controller must be its payer, its payee or an escrow agent (a hub); the
    same answer whether the participant named is another or does not exist."""

    code = "controller_not_allowed"
    mojaloop_code = "3000"  # generic client error, as forbidden
    http_status = 403


class AliasTaken(Conflict, PaymentError):
    code = "alias_taken"
    mojaloop_code = "3003"
    http_status = 409


class ParticipantSuspended(PaymentError):
    code = "participant_suspended"
    mojaloop_code = "3202"
    http_status = 409


class CurrencyNotSupported(PaymentError):
    code = "currency_not_supported"
    mojaloop_code = "3201"
    http_status = 422


class NoFxRate(PaymentError):
    code = "no_fx_rate"
    mojaloop_code = "3200"  # generic "not found": no provider's rate (3208 is a transfer id)
    http_status = 422


class QuoteExpired(PaymentError):
    code = "quote_expired"
    mojaloop_code = "3302"
    http_status = 409


class TransferExpired(PaymentError):
    code = "transfer_expired"
    mojaloop_code = "3303"
    http_status = 409


class NetDebitCapExceeded(PaymentError):
    code = "net_debit_cap_exceeded"
    mojaloop_code = "4001"
    http_status = 409


class FxLiquidityExhausted(PaymentError):
    code = "fx_liquidity_exhausted"
    mojaloop_code = "4001"
    http_status = 409


class InvalidState(Conflict, PaymentError):
    """The request is not allowed in the object's current state (double commit, ...)."""

    code = "invalid_state"
    mojaloop_code = "3106"
    http_status = 409


class DuplicateWithDifferentBody(Conflict, PaymentError):
    code = "duplicate_with_different_body"
    mojaloop_code = "3106"
    http_status = 409


class KeyInUse(Conflict, PaymentError):
    """Another request with the same Idempotency-Key wrote its operation first (servers
    whose in-progress claims do not reach each other: payments/keyed.py). Nothing was done;
    the retry is answered as that request was."""

    code = "request_in_progress"
    mojaloop_code = "3106"
    http_status = 409


class InsufficientEscrow(PaymentError):
    code = "insufficient_escrow"
    mojaloop_code = "4001"
    http_status = 409


class LedgerRefused(PaymentError):
    """The ledger refused a posting for a reason the scheme did not foresee."""

    code = "ledger_refused"
    mojaloop_code = "2001"
    http_status = 409


class TransferBlocked(PaymentError):
    """Fraud screening refused the transfer (strong combined evidence); nothing was reserved."""

    code = "transfer_blocked"
    mojaloop_code = "4400"  # payer blocked error
    http_status = 403


class QrAlreadyPaid(Conflict, PaymentError):
    """A dynamic QR (one payment of its amount) whose payment is under way or made."""

    code = "qr_already_paid"
    mojaloop_code = "3100"
    http_status = 409
