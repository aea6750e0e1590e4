"""Request and response bodies of the trade API (``/v1/trade``), camelCase like the payment
scheme's. Amounts in requests are integers of minor units (``priceMinor``, ``refundMinor``)
with their currency; in responses they are ``{"amount": "450.00", "currency": "MYR",
"minor": 45000}``. Times are ISO 8601 UTC."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from entrepot.entrypoints.api.schemas import (
    CurrencyCode,
    JsonBool,
    JsonInt,
    MoneyOut,
    PayeeIn,
    Strict,
)

TradeId = Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
OptionalTradeId = Field(
    default=None, min_length=1, max_length=48, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
)
ParticipantId = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
Country = Field(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")
Minor = Field(ge=0, le=10**15)
Text = Field(min_length=1, max_length=200)
LongText = Field(min_length=1, max_length=2_000)


# ------------------------------------------------------------------ hubs
class FreightCardIn(Strict):
    """Freight rates in the hub's currency, minor units; insurance in bps of the goods."""

    domesticBaseMinor: JsonInt = Minor
    domesticPerKgMinor: JsonInt = Minor
    internationalBaseMinor: JsonInt = Minor
    internationalPerKgMinor: JsonInt = Minor
    insuranceBps: JsonInt = Field(default=100, ge=0, le=10_000)


class FreightCardOut(BaseModel):
    domesticBase: MoneyOut
    domesticPerKg: MoneyOut
    internationalBase: MoneyOut
    internationalPerKg: MoneyOut
    insuranceBps: int


class HubIn(Strict):
    hubId: str = TradeId
    name: str = Text
    kind: Literal["export", "import", "ehub"]
    country: str = Country
    currency: str = CurrencyCode
    operator: str = ParticipantId
    arbitrators: list[str] = Field(min_length=2, max_length=20)
    customsAuthority: str = ParticipantId
    partners: list[Annotated[str, ParticipantId]] = Field(default_factory=list, max_length=50)
    dftz: JsonBool = False
    commissionBps: JsonInt = 500
    handlingDays: JsonInt = 5
    deliveryDays: JsonInt = 30
    disputeDays: JsonInt = 7
    freight: FreightCardIn


class HubOut(BaseModel):
    hubId: str
    name: str
    kind: str
    country: str
    currency: str
    operator: str
    arbitrators: list[str]
    customsAuthority: str
    partners: list[str]
    dftz: bool
    commissionBps: int
    handlingDays: int
    deliveryDays: int
    disputeDays: int
    freight: FreightCardOut


class WarehouseIn(Strict):
    warehouseId: str = TradeId
    name: str = Text


class WarehouseOut(BaseModel):
    warehouseId: str
    hubId: str
    name: str


# ------------------------------------------------------------------ merchants, buyers
class MerchantIn(Strict):
    merchantId: str = TradeId
    legalName: str = Text
    registrationNumber: str = Field(min_length=1, max_length=64)
    settlement: PayeeIn
    currencies: list[str] = Field(default_factory=list, max_length=20)


class AccountOut(BaseModel):
    """Where money is paid: an alias at a payment participant (fspId)."""

    partyIdType: str
    partyIdentifier: str
    fspId: str


class MerchantOut(BaseModel):
    merchantId: str
    hubId: str
    legalName: str
    registrationNumber: str
    country: str
    currencies: list[str]
    settlement: AccountOut
    state: str
    screening: str | None = Field(
        description="why onboarding screening held it, and the hub's review: to its hub; "
        "null to the merchant itself"
    )
    createdAt: str


class MerchantReviewIn(Strict):
    approve: JsonBool
    reason: str = Text


class MerchantHistoryOut(BaseModel):
    """What the platform knows of a merchant's trade over complete calendar months (oldest
    first), as a partner bank's credit policy reads it."""

    merchantId: str
    country: str
    currency: str
    asOf: str
    tenureDays: int
    monthlySales: list[MoneyOut]
    orderCount: int
    refundCount: int
    refunds: MoneyOut
    disputeCount: int
    disputesLost: int
    settlementWeeks: int
    observedWeeks: int


class BuyerIn(Strict):
    buyerId: str = TradeId
    name: str = Text
    wallet: PayeeIn


class BuyerOut(BaseModel):
    buyerId: str
    name: str
    country: str
    hubId: str
    currency: str
    wallet: AccountOut
    walletConsent: Literal["pending", "granted", "revoked"] = Field(
        description="whether the wallet (`wallet.fspId`) lets the buyer's orders take money "
        "from it; checkout refuses unless granted"
    )
    walletConsentAt: str | None = Field(description="when the wallet last granted or revoked it")
    createdAt: str


class BuyerListOut(BaseModel):
    buyers: list[BuyerOut]
    next: str | None = Field(description="the `after` of the next page; null on the last")


# ------------------------------------------------------------------ catalogue and stock
class DimensionsMm(Strict):
    length: JsonInt = Field(ge=1, le=10_000)
    width: JsonInt = Field(ge=1, le=10_000)
    height: JsonInt = Field(ge=1, le=10_000)


class PriceIn(Strict):
    minor: JsonInt = Field(ge=1, le=10**15)
    currency: str = CurrencyCode


CustomsUnit = Field(
    default=None,
    max_length=16,
    description="the item's customs (supplementary) unit: 'l', 'pair', 'm2'...; "
    "with customsQuantityPerPiece, or neither",
)
CustomsQuantityPerPiece = Field(
    default=None,
    max_length=32,
    description="decimal text: how much of customsUnit one piece is ('0.75' l a bottle)",
)


class ItemIn(Strict):
    sku: str = TradeId
    title: str = Text
    hsCode: str = Field(min_length=1, max_length=12)
    origin: str = Country
    weightG: JsonInt = Field(ge=1, le=1_000_000)
    dimensionsMm: DimensionsMm
    price: PriceIn
    customsUnit: str | None = CustomsUnit
    customsQuantityPerPiece: str | None = CustomsQuantityPerPiece


class ItemPatchIn(Strict):
    """Change the price (minor units of the item's currency), take the item off sale, or
    set its customs unit and per-piece quantity (both; both null clears them)."""

    priceMinor: JsonInt | None = Field(default=None, ge=1, le=10**15)
    active: JsonBool | None = None
    customsUnit: str | None = CustomsUnit
    customsQuantityPerPiece: str | None = CustomsQuantityPerPiece


class CustomsMeasureOut(BaseModel):
    """How one piece is declared to customs besides pieces and kg: 0.75 of 'l'."""

    unit: str
    quantityPerPiece: str


class ItemOut(BaseModel):
    sku: str
    merchantId: str
    title: str
    hsCode: str
    origin: str
    weightG: int
    dimensionsMm: DimensionsMm
    chargeableG: int
    price: MoneyOut
    active: bool
    customs: CustomsMeasureOut | None = Field(
        description="its customs unit and quantity per piece; null: declared in pieces"
    )


class CatalogueOut(BaseModel):
    items: list[ItemOut]


class StockIn(Strict):
    onHand: JsonInt = Field(ge=0, le=10**9)


class StockOut(BaseModel):
    sku: str
    warehouseId: str
    onHand: int
    reserved: int
    available: int


class AvailabilityOut(BaseModel):
    warehouseId: str
    available: int


class StockAvailabilityOut(BaseModel):
    """What buyers may order, per warehouse (on hand less what open orders reserve)."""

    sku: str
    available: int
    warehouses: list[AvailabilityOut]


# ------------------------------------------------------------------ quotes
class QuoteLineIn(Strict):
    sku: str = TradeId
    quantity: JsonInt = Field(ge=1, le=10_000)


class TradeQuoteIn(Strict):
    quoteId: str = TradeId
    lines: list[QuoteLineIn] = Field(min_length=1, max_length=50)
    expirySeconds: JsonInt = Field(default=900, ge=60, le=86_400)


class QuoteLineOut(BaseModel):
    sku: str
    quantity: int
    warehouseId: str
    unitPrice: MoneyOut  # the merchant's currency
    lineTotal: MoneyOut  # the merchant's currency
    lineTotalBuyer: MoneyOut  # the buyer's currency, at the quote's rate
    customsQuantity: str = Field(
        description="what customs is declared: pieces, or pieces x "
        "the item's quantity per piece in customsUnit"
    )
    customsUnit: str = Field(description="'pcs', or the item's customs unit when quoted")


class CustomsFxOut(BaseModel):
    """How customs values an order paid in another currency than its own: at the scheme's
    posted rate read at the quote (kept with it, and recorded on the declaration), with
    customs' figures in its currency."""

    currency: str
    rate: str
    providerId: str
    spreadBps: int
    readAt: str
    freight: MoneyOut
    insurance: MoneyOut
    customsValue: MoneyOut
    duty: MoneyOut
    excise: MoneyOut
    vat: MoneyOut
    customsFees: MoneyOut
    taxes: MoneyOut


class TradeQuoteOut(BaseModel):
    """A landed-cost quote, delivered duty paid, in the buyer's currency."""

    quoteId: str
    buyerId: str
    merchantId: str
    lines: list[QuoteLineOut]
    currency: str
    merchantCurrency: str
    fxRate: str
    goodsMerchant: MoneyOut
    goods: MoneyOut
    freight: MoneyOut
    insurance: MoneyOut
    duty: MoneyOut
    excise: MoneyOut
    vat: MoneyOut
    customsFees: MoneyOut
    total: MoneyOut
    goodsEscrow: MoneyOut
    taxesEscrow: MoneyOut
    regime: str
    dftz: bool
    explanations: list[str]
    expiration: str
    createdAt: str
    used: bool
    customsFx: CustomsFxOut | None = None  # null: the buyer pays in customs' currency


# ------------------------------------------------------------------ orders
class OrderIn(Strict):
    orderId: str = TradeId
    quoteId: str = TradeId


class EscrowRefOut(BaseModel):
    escrowId: str | None
    amount: MoneyOut


class OrderOut(BaseModel):
    orderId: str
    quoteId: str
    buyerId: str
    merchantId: str
    hubId: str
    destinationHubId: str
    destination: str
    state: str
    total: MoneyOut
    goodsEscrow: EscrowRefOut
    taxesEscrow: EscrowRefOut
    merchantAmount: MoneyOut
    commission: MoneyOut
    merchantNet: MoneyOut
    shipBy: str
    deliverBy: str
    releaseAt: str | None
    createdAt: str


class OrderListOut(BaseModel):
    orders: list[OrderOut]


class EventOut(BaseModel):
    """One recorded step of an order or a dispute: who, when, and its details."""

    seq: int
    kind: str
    actor: str
    at: str
    detail: dict[str, Any]


class EventListOut(BaseModel):
    events: list[EventOut]


class TrackingIn(Strict):
    code: str = Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")
    note: str = Field(default="", max_length=400)


class TrackingEventOut(BaseModel):
    orderId: str
    seq: int
    code: str
    description: str
    hubId: str
    actor: str
    at: str
    note: str


class ConsolidationIn(Strict):
    """Parcels moving as one consignment: EXD at the export hub, EMC on departure, EMD on
    arrival; all or none."""

    consolidationId: str = TradeId
    orderIds: list[str] = Field(min_length=1, max_length=10_000)
    code: Literal["EXD", "EMC", "EMD"] = "EXD"


class ConsolidationOut(BaseModel):
    consolidationId: str
    code: str
    events: list[TrackingEventOut]


class ClearanceOut(BaseModel):
    lane: str
    estimatedHours: float


class TrackingStepOut(BaseModel):
    code: str
    description: str
    hubId: str
    at: str
    note: str


class TrackingOut(BaseModel):
    """The parcel's normalised status, its events in order, and its import clearance lane
    once declared."""

    orderId: str
    status: str
    events: list[TrackingStepOut]
    clearance: ClearanceOut | None


class PayoutOut(BaseModel):
    transferId: str
    amount: MoneyOut  # the merchant's currency, before any loan repayment
    # kept to repay the merchant's loan: to the merchant and its hub; null to the others
    withheld: MoneyOut | None
    source: MoneyOut  # what the hub paid, in the order's currency
    state: str


class PayoutListOut(BaseModel):
    payouts: list[PayoutOut]


class ReasonIn(Strict):
    reason: str = Text


class ReturnAnswerIn(Strict):
    accept: JsonBool
    note: str = Field(default="", max_length=200)


# ------------------------------------------------------------------ disputes
class DisputeIn(Strict):
    disputeId: str = TradeId
    orderId: str = TradeId
    reason: Literal["not_received", "not_as_described"]
    claim: str = LongText


class EvidenceIn(Strict):
    text: str = LongText


class OfferIn(Strict):
    refundMinor: JsonInt = Minor


class RulingIn(Strict):
    outcome: Literal["release", "refund", "split"]
    refundMinor: JsonInt = Field(default=0, ge=0, le=10**15)
    reason: str = LongText


class AppealIn(Strict):
    grounds: str = LongText


class RulingOut(BaseModel):
    outcome: str
    refund: MoneyOut
    by: str
    reason: str
    at: str


class OfferOut(BaseModel):
    refund: MoneyOut
    by: str


class DisputeOut(BaseModel):
    disputeId: str
    orderId: str
    hubId: str
    reason: str
    state: str
    openedBy: str
    claim: str
    arbitrator: str | None
    appealArbitrator: str | None
    ruling: RulingOut | None
    appealRuling: RulingOut | None
    appealedBy: str | None
    offer: OfferOut | None
    respondBy: str | None
    negotiateUntil: str
    ruleBy: str | None
    appealUntil: str | None
    createdAt: str


class DisputeEventOut(BaseModel):
    seq: int
    kind: str
    actor: str
    at: str
    detail: str


class DisputeEventListOut(BaseModel):
    events: list[DisputeEventOut]


class DisputeListOut(BaseModel):
    disputes: list[DisputeOut]


# ------------------------------------------------------------------ deadlines, credentials
class DeadlinesOut(BaseModel):
    """How many of each deadline acted in this run."""

    counts: dict[str, int]


class TradeCredentialIn(Strict):
    """Exactly one of merchantId, buyerId, arbitratorId."""

    merchantId: str | None = OptionalTradeId
    buyerId: str | None = OptionalTradeId
    arbitratorId: str | None = OptionalTradeId
    publicKey: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _one_actor(self) -> TradeCredentialIn:
        named = [v for v in (self.merchantId, self.buyerId, self.arbitratorId) if v is not None]
        if len(named) != 1:
            raise ValueError("name exactly one of merchantId, buyerId, arbitratorId")
        return self

    @property
    def principal(self) -> str:
        for prefix, value in (
            ("merchant", self.merchantId),
            ("buyer", self.buyerId),
            ("arbitrator", self.arbitratorId),
        ):
            if value is not None:
                return f"{prefix}:{value}"
        raise AssertionError("validated: one actor is named")


class TradeCredentialOut(BaseModel):
    keyId: str
    secret: str
    token: str
    principal: str


class TradeCredentialInfoOut(BaseModel):
    """A trade actor's credential without its secret (shown once, at issue) or hash."""

    keyId: str
    principal: str
    publicKey: str | None
    revoked: bool
    createdAt: str
