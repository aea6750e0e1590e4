"""Errors of the trade network. Every one names the problem; codes are stable snake_case and
the API maps each to an HTTP status (``http_status``)."""

from __future__ import annotations

from entrepot.kernel.errors import Conflict, DomainError, InvalidInput, NotFound


class TradeError(DomainError):
    code = "trade_error"
    http_status = 400


class InvalidTradeInput(InvalidInput, TradeError):
    code = "trade_invalid_input"
    http_status = 422


class UnknownHsCodeForItem(InvalidTradeInput):
    code = "trade_unknown_hs_code"


class CustomsUnitMissing(InvalidTradeInput):
    """An item quoted abroad whose tariff line charges duty per a unit (per litre, per pair)
    that the item declares no quantity in: its merchant sets its customs unit."""

    code = "trade_customs_unit_missing"


class CurrencyNotHeld(InvalidTradeInput):
    """A price in a currency the merchant does not hold (its settlement account's currency
    and the currencies it declared at onboarding)."""

    code = "trade_currency_not_held"


class HubNotFound(NotFound, TradeError):
    code = "trade_hub_not_found"
    http_status = 404


class MerchantNotFound(NotFound, TradeError):
    code = "trade_merchant_not_found"
    http_status = 404


class BuyerNotFound(NotFound, TradeError):
    code = "trade_buyer_not_found"
    http_status = 404


class ItemNotFound(NotFound, TradeError):
    code = "trade_item_not_found"
    http_status = 404


class WarehouseNotFound(NotFound, TradeError):
    code = "trade_warehouse_not_found"
    http_status = 404


class QuoteNotFound(NotFound, TradeError):
    code = "trade_quote_not_found"
    http_status = 404


class OrderNotFound(NotFound, TradeError):
    code = "trade_order_not_found"
    http_status = 404


class DisputeNotFound(NotFound, TradeError):
    code = "trade_dispute_not_found"
    http_status = 404


class Forbidden(TradeError):
    """The caller may not see or act on this: it is another merchant's, buyer's or hub's."""

    code = "trade_forbidden"
    http_status = 403


class WalletConsentMissing(TradeError):
    """The buyer's wallet has not consented (or no longer consents) to pay for its orders."""

    code = "trade_wallet_consent_missing"
    http_status = 403


class AlreadyExists(Conflict, TradeError):
    code = "trade_already_exists"
    http_status = 409


class IdConflict(Conflict, TradeError):
    """A client-chosen id reused with a different request."""

    code = "trade_id_conflict"
    http_status = 409


class InvalidTransition(Conflict, TradeError):
    """Not allowed in the current state (a tracking event out of order, a cancel after
    hand-over, a second appeal...)."""

    code = "trade_invalid_transition"
    http_status = 409


class OutOfStock(Conflict, TradeError):
    code = "trade_out_of_stock"
    http_status = 409


class QuoteExpired(Conflict, TradeError):
    code = "trade_quote_expired"
    http_status = 409


class WindowClosed(Conflict, TradeError):
    """A dispute, return or appeal asked for after its window closed."""

    code = "trade_window_closed"
    http_status = 409


class MerchantNotActive(Conflict, TradeError):
    """The merchant is suspended or its onboarding screening awaits a person's review."""

    code = "trade_merchant_not_active"
    http_status = 409


class PaymentFailed(Conflict, TradeError):
    """The payment scheme refused a posting (cap, suspended participant, no FX rate...)."""

    code = "trade_payment_failed"
    http_status = 409
