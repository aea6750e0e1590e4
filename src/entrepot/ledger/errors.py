"""Ledger errors. Per-event outcomes are result codes (see model); these are raised only for a
request that cannot be processed at all, before anything is changed."""

from __future__ import annotations

from entrepot.kernel.errors import DomainError, InvalidInput, NotFound


class LedgerInputError(InvalidInput):
    """A malformed batch: wrong type, value outside its range, or too many events."""

    code = "ledger_invalid_input"


class BatchTooLarge(LedgerInputError):
    code = "batch_too_large"


class AccountNotFound(NotFound):
    code = "account_not_found"


class TransferNotFound(NotFound):
    code = "transfer_not_found"


class HistoryNotEnabled(DomainError):
    code = "history_not_enabled"


class UnknownLedger(NotFound):
    code = "ledger_not_found"
