"""Ledger records, flags and result codes (TigerBeetle's semantics, Pythonic names).

Records are immutable ``NamedTuple``s rather than frozen dataclasses: the ledger builds and
compares millions of them per second and a tuple is several times cheaper (ADR 0002).
Amounts and balances are ``int`` minor units in ``[0, AMOUNT_MAX]``.
"""

from __future__ import annotations

from enum import IntFlag, StrEnum
from typing import NamedTuple

from entrepot.kernel.limits import AMOUNT_MAX
from entrepot.kernel.money import Currency, get_currency


class AccountFlags(IntFlag):
    NONE = 0
    LINKED = 1 << 0
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1 << 1
    CREDITS_MUST_NOT_EXCEED_DEBITS = 1 << 2
    HISTORY = 1 << 3


class TransferFlags(IntFlag):
    NONE = 0
    LINKED = 1 << 0
    PENDING = 1 << 1
    POST_PENDING_TRANSFER = 1 << 2
    VOID_PENDING_TRANSFER = 1 << 3
    BALANCING_DEBIT = 1 << 4
    BALANCING_CREDIT = 1 << 5


ACCOUNT_FLAGS_ALL = int(
    AccountFlags.LINKED
    | AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
    | AccountFlags.HISTORY
)
TRANSFER_FLAGS_ALL = int(
    TransferFlags.LINKED
    | TransferFlags.PENDING
    | TransferFlags.POST_PENDING_TRANSFER
    | TransferFlags.VOID_PENDING_TRANSFER
    | TransferFlags.BALANCING_DEBIT
    | TransferFlags.BALANCING_CREDIT
)


class CreateAccountResult(StrEnum):
    """One per event, in order of precedence (the first that applies is returned)."""

    OK = "ok"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    TIMESTAMP_MUST_BE_ZERO = "timestamp_must_be_zero"
    RESERVED_FLAG = "reserved_flag"
    ID_MUST_NOT_BE_ZERO = "id_must_not_be_zero"
    ID_MUST_NOT_BE_INT_MAX = "id_must_not_be_int_max"
    EXISTS_WITH_DIFFERENT_FLAGS = "exists_with_different_flags"
    EXISTS_WITH_DIFFERENT_USER_DATA_128 = "exists_with_different_user_data_128"
    EXISTS_WITH_DIFFERENT_USER_DATA_64 = "exists_with_different_user_data_64"
    EXISTS_WITH_DIFFERENT_USER_DATA_32 = "exists_with_different_user_data_32"
    EXISTS_WITH_DIFFERENT_LEDGER = "exists_with_different_ledger"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    EXISTS = "exists"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    DEBITS_PENDING_MUST_BE_ZERO = "debits_pending_must_be_zero"
    DEBITS_POSTED_MUST_BE_ZERO = "debits_posted_must_be_zero"
    CREDITS_PENDING_MUST_BE_ZERO = "credits_pending_must_be_zero"
    CREDITS_POSTED_MUST_BE_ZERO = "credits_posted_must_be_zero"
    LEDGER_MUST_NOT_BE_ZERO = "ledger_must_not_be_zero"
    CODE_MUST_NOT_BE_ZERO = "code_must_not_be_zero"
    LEDGER_NOT_FOUND = "ledger_not_found"


class CreateTransferResult(StrEnum):
    """One per event, in order of precedence (the first that applies is returned)."""

    OK = "ok"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    TIMESTAMP_MUST_BE_ZERO = "timestamp_must_be_zero"
    RESERVED_FLAG = "reserved_flag"
    ID_MUST_NOT_BE_ZERO = "id_must_not_be_zero"
    ID_MUST_NOT_BE_INT_MAX = "id_must_not_be_int_max"
    EXISTS_WITH_DIFFERENT_FLAGS = "exists_with_different_flags"
    EXISTS_WITH_DIFFERENT_PENDING_ID = "exists_with_different_pending_id"
    EXISTS_WITH_DIFFERENT_TIMEOUT = "exists_with_different_timeout"
    EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID = "exists_with_different_debit_account_id"
    EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID = "exists_with_different_credit_account_id"
    EXISTS_WITH_DIFFERENT_AMOUNT = "exists_with_different_amount"
    EXISTS_WITH_DIFFERENT_USER_DATA_128 = "exists_with_different_user_data_128"
    EXISTS_WITH_DIFFERENT_USER_DATA_64 = "exists_with_different_user_data_64"
    EXISTS_WITH_DIFFERENT_USER_DATA_32 = "exists_with_different_user_data_32"
    EXISTS_WITH_DIFFERENT_LEDGER = "exists_with_different_ledger"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    EXISTS = "exists"
    ID_ALREADY_FAILED = "id_already_failed"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO = "debit_account_id_must_not_be_zero"
    DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX = "debit_account_id_must_not_be_int_max"
    CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO = "credit_account_id_must_not_be_zero"
    CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX = "credit_account_id_must_not_be_int_max"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    PENDING_ID_MUST_BE_ZERO = "pending_id_must_be_zero"
    PENDING_ID_MUST_NOT_BE_ZERO = "pending_id_must_not_be_zero"
    PENDING_ID_MUST_NOT_BE_INT_MAX = "pending_id_must_not_be_int_max"
    PENDING_ID_MUST_BE_DIFFERENT = "pending_id_must_be_different"
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = "timeout_reserved_for_pending_transfer"
    LEDGER_MUST_NOT_BE_ZERO = "ledger_must_not_be_zero"
    CODE_MUST_NOT_BE_ZERO = "code_must_not_be_zero"
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER = "accounts_must_have_the_same_ledger"
    TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS = (
        "transfer_must_have_the_same_ledger_as_accounts"
    )
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID = (
        "pending_transfer_has_different_debit_account_id"
    )
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID = (
        "pending_transfer_has_different_credit_account_id"
    )
    PENDING_TRANSFER_HAS_DIFFERENT_LEDGER = "pending_transfer_has_different_ledger"
    PENDING_TRANSFER_HAS_DIFFERENT_CODE = "pending_transfer_has_different_code"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = "pending_transfer_has_different_amount"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    OVERFLOWS_DEBITS_PENDING = "overflows_debits_pending"
    OVERFLOWS_CREDITS_PENDING = "overflows_credits_pending"
    OVERFLOWS_DEBITS_POSTED = "overflows_debits_posted"
    OVERFLOWS_CREDITS_POSTED = "overflows_credits_posted"
    OVERFLOWS_DEBITS = "overflows_debits"
    OVERFLOWS_CREDITS = "overflows_credits"
    OVERFLOWS_TIMEOUT = "overflows_timeout"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"


#: Failures that depend on state which may change later. Their ids are remembered so that a
#: retry returns ``id_already_failed`` and never flips the outcome (TigerBeetle's rule).
TRANSIENT_TRANSFER_RESULTS = frozenset(
    {
        CreateTransferResult.DEBIT_ACCOUNT_NOT_FOUND,
        CreateTransferResult.CREDIT_ACCOUNT_NOT_FOUND,
        CreateTransferResult.PENDING_TRANSFER_NOT_FOUND,
        CreateTransferResult.EXCEEDS_CREDITS,
        CreateTransferResult.EXCEEDS_DEBITS,
        CreateTransferResult.OVERFLOWS_DEBITS_PENDING,
        CreateTransferResult.OVERFLOWS_CREDITS_PENDING,
        CreateTransferResult.OVERFLOWS_DEBITS_POSTED,
        CreateTransferResult.OVERFLOWS_CREDITS_POSTED,
        CreateTransferResult.OVERFLOWS_DEBITS,
        CreateTransferResult.OVERFLOWS_CREDITS,
    }
)


class PendingStatus(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


class Account(NamedTuple):
    id: int
    ledger: int
    code: int
    flags: int = 0
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    timestamp: int = 0

    @property
    def balance_debit_normal(self) -> int:
        """Posted balance of an asset/expense account (debits - credits)."""
        return self.debits_posted - self.credits_posted

    @property
    def balance_credit_normal(self) -> int:
        """Posted balance of a liability/equity/income account (credits - debits)."""
        return self.credits_posted - self.debits_posted


class Transfer(NamedTuple):
    id: int
    debit_account_id: int = 0
    credit_account_id: int = 0
    amount: int = 0
    pending_id: int = 0
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    timeout: int = 0
    ledger: int = 0
    code: int = 0
    flags: int = 0
    timestamp: int = 0


class AccountBalance(NamedTuple):
    """An account's four balances just after one of its transfers (``history`` accounts)."""

    account_id: int
    transfer_timestamp: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int


class StatementLine(NamedTuple):
    transfer: Transfer
    debit_minor: int
    credit_minor: int
    balance_minor: int


class Statement(NamedTuple):
    """Posted movements of one account over ``[since_ns, until_ns]`` with a running balance.

    ``balance`` is credits minus debits when ``credit_normal`` else debits minus credits.
    A ``truncated`` statement stops at its row limit; ``next_since_ns`` (its last row's
    timestamp + 1, None when not truncated) is where the next page starts. It is not the last
    line's: pending and voiding rows count toward the limit but make no line, so a page may
    end on them, or hold nothing else.
    """

    account: Account
    since_ns: int
    until_ns: int
    credit_normal: bool
    opening_balance_minor: int
    lines: list[StatementLine]
    closing_balance_minor: int
    truncated: bool
    next_since_ns: int | None = None


class LedgerDefinition(NamedTuple):
    ledger: int
    currency: str
    name: str


#: Post or void "the whole pending amount" (TigerBeetle's AMOUNT_MAX sentinel).
AMOUNT_FULL = AMOUNT_MAX
#: Upper bound of every time-range query (nanoseconds since the epoch).
TIME_MAX = (1 << 63) - 1


def ledger_for_currency(currency: Currency | str) -> int:
    """By convention a currency's ledger number is its ISO 4217 numeric code (EUR -> 978)."""
    resolved = currency if isinstance(currency, Currency) else get_currency(currency)
    return int(resolved.numeric)


#: Flags of a transfer that resolves a pending one.
RESOLVE_FLAGS = int(TransferFlags.POST_PENDING_TRANSFER | TransferFlags.VOID_PENDING_TRANSFER)
#: Transfers that move no posted amount: reservations and their voids.
NON_POSTING_FLAGS = int(TransferFlags.PENDING | TransferFlags.VOID_PENDING_TRANSFER)
