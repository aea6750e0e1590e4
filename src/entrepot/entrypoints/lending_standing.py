"""Who may lend and borrow on the platform: the checks the HTTP API and the CLI both make
before lending decides or disburses (docs/risk-api.md, docs/lending.md).

Lending keeps no merchant registry (trade vouches for merchant ids), so whichever entry point
asks it for credit first makes sure that the merchant exists on the trade network and is in
good standing, that the lender is the merchant's own bank (loans are repaid by withholding from
payouts, which trade pays to that bank), and that only a bank or a wallet sets a policy.
"""

from __future__ import annotations

from entrepot.kernel.errors import InvalidInput
from entrepot.payments import PaymentScheme
from entrepot.risk.lending import NotYours
from entrepot.trade import TradeNetwork
from entrepot.trade.errors import MerchantNotActive
from entrepot.trade.model import Merchant, MerchantState

#: Participants that may lend (set a credit policy): those that hold merchants' accounts.
LENDER_KINDS = frozenset({"bank", "wallet"})


class LenderNotMerchantsBank(InvalidInput):
    """Payouts repay a loan through the merchant's own bank, so only it may lend."""

    code = "risk_lender_not_merchants_bank"


def check_lender_kind(scheme: PaymentScheme, lender_id: str) -> None:
    """Only a participant of kind bank or wallet lends (an unknown one is not found)."""
    kind = scheme.get_participant(lender_id).kind.value
    if kind not in LENDER_KINDS:
        raise NotYours(f"{lender_id} is a {kind} participant: only a bank or a wallet lends")


def active_merchant(trade: TradeNetwork, merchant_id: str) -> Merchant:
    """The merchant as it reads itself, if it exists and is in good standing: suspended, or
    with its onboarding screening in review, it gets no credit (neither an offer nor the money
    of one made before). An unknown id is ``trade_merchant_not_found``."""
    merchant = trade.get_merchant(f"merchant:{merchant_id}", merchant_id)
    if merchant.state is not MerchantState.ACTIVE:
        raise MerchantNotActive(f"merchant {merchant_id} is {merchant.state.value}: no credit")
    return merchant


def check_merchants_bank(merchant: Merchant, lender_id: str, field: str = "lender_id") -> None:
    """The lender must be the participant the merchant's payouts settle at."""
    if lender_id != merchant.settlement_participant:
        raise LenderNotMerchantsBank(
            f"loans are repaid from payouts through the merchant's own bank "
            f"{merchant.settlement_participant}; {lender_id} cannot lend to it",
            field=field,
        )
