"""The ledger: double-entry accounts and transfers with TigerBeetle's semantics.

Owns: ledgers (one currency each), accounts with their four balances, transfers (single-phase,
pending with timeout, post/void, linked chains, balancing), failed ids, per-account history.

Invariants: for every ledger the sum of debits equals the sum of credits (pending and posted);
every balance equals the sum of its transfers; no limit flag is ever exceeded; a pending
transfer resolves at most once; a transfer id is an idempotency key whose outcome never flips;
an acknowledged write survives a crash. Every context that moves value posts here.
"""

from entrepot.ledger.errors import (
    AccountNotFound,
    BatchTooLarge,
    HistoryNotEnabled,
    LedgerInputError,
    TransferNotFound,
    UnknownLedger,
)
from entrepot.ledger.model import (
    AMOUNT_FULL,
    TIME_MAX,
    Account,
    AccountBalance,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    LedgerDefinition,
    Statement,
    StatementLine,
    Transfer,
    TransferFlags,
    ledger_for_currency,
)
from entrepot.ledger.services import InvariantReport, Ledger
from entrepot.ledger.validate import chain_batches

__all__ = [
    "AMOUNT_FULL",
    "TIME_MAX",
    "Account",
    "AccountBalance",
    "AccountFlags",
    "AccountNotFound",
    "BatchTooLarge",
    "CreateAccountResult",
    "CreateTransferResult",
    "HistoryNotEnabled",
    "InvariantReport",
    "Ledger",
    "LedgerDefinition",
    "LedgerInputError",
    "Statement",
    "StatementLine",
    "Transfer",
    "TransferFlags",
    "TransferNotFound",
    "UnknownLedger",
    "chain_batches",
    "ledger_for_currency",
]
