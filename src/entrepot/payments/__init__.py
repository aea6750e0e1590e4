"""The payment scheme: one interoperable scheme shared by banks, wallets and FX providers in
many countries, on the Entrepot ledger.

Owns: participants (with a position and a settlement account per currency and a net debit
cap), the directory of aliases, FX rates, quotes, two-phase transfers, escrows, settlement
windows, merchant QR codes (EMVCo) and ISO 20022 messages.

Invariants: a participant never sends beyond its net debit cap (enforced by the ledger's limit
on its position account); a suspended participant neither sends nor receives; both legs of a
cross-currency transfer commit or neither; an accepted quote's rate is backed by reserved FX
liquidity until it expires; a participant sees and acts on only its own data; every write is
idempotent by a client-chosen id.
"""

from entrepot.payments.fees import FeeRule, FeeSchedule, load_fee_schedule
from entrepot.payments.model import (
    AliasType,
    AmountType,
    DeadlineAction,
    Escrow,
    EscrowState,
    FxRate,
    NetPosition,
    Participant,
    ParticipantKind,
    Party,
    PaymentTransfer,
    Quote,
    QuoteState,
    SettlementWindow,
    TransferState,
    WindowState,
)
from entrepot.payments.services import (
    SCHEME,
    PaymentScheme,
    Screening,
    ScreeningDecision,
)

__all__ = [
    "SCHEME",
    "AliasType",
    "AmountType",
    "DeadlineAction",
    "Escrow",
    "EscrowState",
    "FeeRule",
    "FeeSchedule",
    "FxRate",
    "NetPosition",
    "Participant",
    "ParticipantKind",
    "Party",
    "PaymentScheme",
    "PaymentTransfer",
    "Quote",
    "QuoteState",
    "Screening",
    "ScreeningDecision",
    "SettlementWindow",
    "TransferState",
    "WindowState",
    "load_fee_schedule",
]
