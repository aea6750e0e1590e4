"""/v1/trade routes: the trade network over HTTP. Each route builds the use case's arguments
from the validated body and calls one ``TradeNetwork`` method with the authenticated caller,
which scopes every read and write (a hub operator is its payment participant; merchants,
buyers and arbitrators authenticate as ``merchant:<id>``, ``buyer:<id>``,
``arbitrator:<id>``). Idempotency-Key on POST and PUT is handled by the security middleware.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as ApiPath

from entrepot.entrypoints.api import convert_trade as cv
from entrepot.entrypoints.api import schemas_trade as t
from entrepot.entrypoints.api.schemas import Problem
from entrepot.entrypoints.api.security import caller_dependency
from entrepot.kernel.errors import FieldsNamed
from entrepot.payments import SCHEME
from entrepot.trade import KEEP, Dispute, FreightCard, TradeNetwork
from entrepot.trade.credentials import (
    issue_actor_credential,
    list_actor_credentials,
    revoke_actor_credential,
)
from entrepot.trade.errors import Forbidden, OrderNotFound

_PROBLEM: dict[str, object] = {
    "description": "An error: application/problem+json with a stable code",
    "content": {"application/problem+json": {"schema": Problem.model_json_schema()}},
}
router = APIRouter(
    prefix="/v1/trade",
    tags=["trade"],
    responses={status: _PROBLEM for status in (400, 401, 403, 404, 409, 422)},
)
Caller = Annotated[str, Depends(caller_dependency)]
StateFilter = Annotated[str | None, Query(max_length=32, pattern=r"^[A-Z_]+$")]
Limit = Annotated[int, Query(ge=1, le=1000)]


async def trade_of(request: Request) -> TradeNetwork:
    trade = request.app.state.trade
    assert isinstance(trade, TradeNetwork)
    return trade


Trade = Annotated[TradeNetwork, Depends(trade_of)]


# ------------------------------------------------------------------ hubs
@router.get("/hubs", response_model=list[t.HubOut])
def list_hubs(caller: Caller, trade: Trade) -> list[t.HubOut]:
    """The network's hubs (public to every authenticated caller)."""
    return [cv.hub(h) for h in trade.list_hubs()]


@router.post("/hubs", status_code=201, response_model=t.HubOut)
def create_hub(body: t.HubIn, caller: Caller, trade: Trade) -> t.HubOut:
    """The scheme operator adds a hub run by an existing payment participant."""
    f = body.freight
    return cv.hub(
        trade.create_hub(
            caller,
            body.hubId,
            body.name,
            body.kind,
            body.country,
            body.currency,
            body.operator,
            arbitrators=body.arbitrators,
            customs_authority=body.customsAuthority,
            partners=body.partners,
            dftz=body.dftz,
            commission_bps=body.commissionBps,
            handling_days=body.handlingDays,
            delivery_days=body.deliveryDays,
            dispute_days=body.disputeDays,
            freight=FreightCard(
                f.domesticBaseMinor,
                f.domesticPerKgMinor,
                f.internationalBaseMinor,
                f.internationalPerKgMinor,
                f.insuranceBps,
            ),
        )
    )


@router.get("/hubs/{hub_id}", response_model=t.HubOut)
def get_hub(hub_id: str, caller: Caller, trade: Trade) -> t.HubOut:
    return cv.hub(trade.get_hub(hub_id))


@router.get("/hubs/{hub_id}/warehouses", response_model=list[t.WarehouseOut])
def list_warehouses(hub_id: str, caller: Caller, trade: Trade) -> list[t.WarehouseOut]:
    trade.get_hub(hub_id)  # 404 for an unknown hub rather than an empty list
    return [cv.warehouse(w) for w in trade.list_warehouses(hub_id)]


@router.post("/hubs/{hub_id}/warehouses", status_code=201, response_model=t.WarehouseOut)
def add_warehouse(hub_id: str, body: t.WarehouseIn, caller: Caller, trade: Trade) -> t.WarehouseOut:
    """The hub's operator adds a fulfilment centre to its hub."""
    if trade.get_hub(hub_id).participant_id != caller:
        raise Forbidden(f"only the operator of hub {hub_id} adds its warehouses")
    return cv.warehouse(trade.add_warehouse(caller, body.warehouseId, body.name))


# ------------------------------------------------------------------ merchants, buyers
@router.post("/merchants", status_code=201, response_model=t.MerchantOut)
def onboard_merchant(body: t.MerchantIn, caller: Caller, trade: Trade) -> t.MerchantOut:
    """An eHub operator onboards a business paid at one of its partner banks or wallets."""
    return cv.merchant(
        trade.onboard_merchant(
            caller,
            body.merchantId,
            body.legalName,
            body.registrationNumber,
            body.settlement.partyIdType,
            body.settlement.partyIdentifier,
            currencies=body.currencies,
        )
    )


@router.get("/merchants/{merchant_id}", response_model=t.MerchantOut)
def get_merchant(merchant_id: str, caller: Caller, trade: Trade) -> t.MerchantOut:
    return cv.merchant(trade.get_merchant(caller, merchant_id))


@router.post("/merchants/{merchant_id}/review", response_model=t.MerchantOut)
def review_merchant(
    merchant_id: str, body: t.MerchantReviewIn, caller: Caller, trade: Trade
) -> t.MerchantOut:
    """The merchant's hub clears it (approve) or suspends it after a screening review."""
    return cv.merchant(trade.review_merchant(caller, merchant_id, body.approve, body.reason))


@router.get("/merchants/{merchant_id}/history", response_model=t.MerchantHistoryOut)
def merchant_history(
    merchant_id: str,
    caller: Caller,
    trade: Trade,
    months: Annotated[int, Query(ge=1, le=36)] = 12,
) -> t.MerchantHistoryOut:
    """The merchant's trade record for a lender's credit policy (the merchant or its hub)."""
    return cv.merchant_history(trade.merchant_history(caller, merchant_id, months))


@router.post("/buyers", status_code=201, response_model=t.BuyerOut)
def register_buyer(body: t.BuyerIn, caller: Caller, trade: Trade) -> t.BuyerOut:
    return cv.buyer(
        trade.register_buyer(
            caller, body.buyerId, body.name, body.wallet.partyIdType, body.wallet.partyIdentifier
        )
    )


@router.get("/buyers", response_model=t.BuyerListOut)
def list_buyers(
    caller: Caller,
    trade: Trade,
    wallet_consent: Annotated[
        Literal["pending", "granted", "revoked"] | None, Query(alias="walletConsent")
    ] = None,
    limit: Limit = 100,
    after: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> t.BuyerListOut:
    """A hub operator's buyers and a wallet's (those paying from it), in id order, `limit`
    at a time (`next`: the `after` of the next page); a wallet finds those waiting for its
    consent with `walletConsent=pending`."""
    buyers = trade.list_buyers(caller, wallet_consent, limit, after)
    return t.BuyerListOut(
        buyers=[cv.buyer(b) for b in buyers],
        next=buyers[-1].id if len(buyers) == limit else None,
    )


@router.get("/buyers/{buyer_id}", response_model=t.BuyerOut)
def get_buyer(buyer_id: str, caller: Caller, trade: Trade) -> t.BuyerOut:
    """The buyer, its hub's operator, or the wallet it pays from."""
    return cv.buyer(trade.get_buyer(caller, buyer_id))


@router.post("/buyers/{buyer_id}/wallet-consent", response_model=t.BuyerOut)
def grant_wallet_consent(buyer_id: str, caller: Caller, trade: Trade) -> t.BuyerOut:
    """The wallet the buyer pays from (only it) lets the buyer's orders take money from it,
    for its customer behind the alias; until then checkout is refused (403
    `trade_wallet_consent_missing`). Granting it again changes nothing."""
    return cv.buyer(trade.grant_wallet_consent(caller, buyer_id))


@router.delete("/buyers/{buyer_id}/wallet-consent", response_model=t.BuyerOut)
def revoke_wallet_consent(buyer_id: str, caller: Caller, trade: Trade) -> t.BuyerOut:
    """The wallet withdraws its consent: no new orders; open ones run their course."""
    return cv.buyer(trade.revoke_wallet_consent(caller, buyer_id))


# ------------------------------------------------------------------ catalogue and stock
@router.get("/items", response_model=t.CatalogueOut)
def catalogue(
    caller: Caller,
    trade: Trade,
    merchant_id: Annotated[
        str | None, Query(alias="merchantId", min_length=1, max_length=48)
    ] = None,
    limit: Limit = 100,
) -> t.CatalogueOut:
    """The public catalogue: items on sale, optionally of one merchant."""
    return t.CatalogueOut(items=[cv.item(i) for i in trade.catalogue(merchant_id, limit)])


@router.post("/items", status_code=201, response_model=t.ItemOut)
def add_item(body: t.ItemIn, caller: Caller, trade: Trade) -> t.ItemOut:
    """A merchant lists an item with its HS 2022 code, priced in a currency it holds."""
    d = body.dimensionsMm
    return cv.item(
        trade.add_item(
            caller,
            body.sku,
            body.title,
            body.hsCode,
            body.origin,
            weight_g=body.weightG,
            dimensions_mm=(d.length, d.width, d.height),
            price_minor=body.price.minor,
            currency=body.price.currency,
            customs_unit=body.customsUnit,
            customs_quantity_per_piece=body.customsQuantityPerPiece,
        )
    )


@router.patch("/items/{sku}", response_model=t.ItemOut)
def update_item(sku: str, body: t.ItemPatchIn, caller: Caller, trade: Trade) -> t.ItemOut:
    """The merchant changes its item: a key left out is kept; the customs unit and quantity
    per piece go together, and both null clears them."""
    given = body.model_fields_set
    return cv.item(
        trade.update_item(
            caller,
            sku,
            price_minor=body.priceMinor,
            active=body.active,
            customs_unit=body.customsUnit if "customsUnit" in given else KEEP,
            customs_quantity_per_piece=(
                body.customsQuantityPerPiece if "customsQuantityPerPiece" in given else KEEP
            ),
        )
    )


@router.get("/items/{sku}", response_model=t.ItemOut)
def get_item(sku: str, caller: Caller, trade: Trade) -> t.ItemOut:
    """An item on sale (public, like the catalogue); one off sale only to its merchant."""
    return cv.item(trade.get_item(caller, sku))


@router.get("/items/{sku}/stock", response_model=t.StockAvailabilityOut)
def get_stock(sku: str, caller: Caller, trade: Trade) -> t.StockAvailabilityOut:
    """What may be ordered, per warehouse (public, like the catalogue); an item off sale only
    to its merchant, as the item itself."""
    return cv.availability(sku, trade.stock(sku, caller))


@router.put("/items/{sku}/stock/{warehouse_id}", response_model=t.StockOut)
def set_stock(
    sku: str, warehouse_id: str, body: t.StockIn, caller: Caller, trade: Trade
) -> t.StockOut:
    """The item's merchant sets what a warehouse of its hub holds."""
    return cv.stock(trade.set_stock(caller, sku, warehouse_id, body.onHand))


# ------------------------------------------------------------------ quotes and orders
@router.post("/quotes", status_code=201, response_model=t.TradeQuoteOut)
def create_quote(body: t.TradeQuoteIn, caller: Caller, trade: Trade) -> t.TradeQuoteOut:
    """A buyer's landed-cost quote, delivered duty paid, in its own currency."""
    lines = [(ln.sku, ln.quantity) for ln in body.lines]
    return cv.quote(trade.quote(caller, body.quoteId, lines, ttl_s=body.expirySeconds))


@router.get("/quotes/{quote_id}", response_model=t.TradeQuoteOut)
def get_quote(quote_id: str, caller: Caller, trade: Trade) -> t.TradeQuoteOut:
    return cv.quote(trade.get_quote(caller, quote_id))


@router.post("/orders", status_code=201, response_model=t.OrderOut)
def checkout(body: t.OrderIn, caller: Caller, trade: Trade) -> t.OrderOut:
    """The buyer pays a quote into escrow (idempotent by orderId)."""
    return cv.order(trade.checkout(caller, body.orderId, body.quoteId))


@router.get("/orders", response_model=t.OrderListOut)
def list_orders(
    caller: Caller, trade: Trade, state: StateFilter = None, limit: Limit = 100
) -> t.OrderListOut:
    """The caller's orders: a buyer's, a merchant's, or those passing through a hub."""
    return t.OrderListOut(orders=[cv.order(o) for o in trade.list_orders(caller, state, limit)])


@router.get("/orders/{order_id}", response_model=t.OrderOut)
def get_order(order_id: str, caller: Caller, trade: Trade) -> t.OrderOut:
    return cv.order(trade.get_order(caller, order_id))


@router.get("/orders/{order_id}/events", response_model=t.EventListOut)
def order_events(order_id: str, caller: Caller, trade: Trade) -> t.EventListOut:
    return t.EventListOut(events=[cv.event(e) for e in trade.order_events(caller, order_id)])


@router.get("/orders/{order_id}/tracking", response_model=t.TrackingOut)
def get_tracking(order_id: str, caller: Caller, trade: Trade) -> t.TrackingOut:
    return cv.tracking(trade.tracking(caller, order_id))


@router.get("/orders/{order_id}/tracking/{seq}", response_model=t.TrackingEventOut)
def get_tracking_event(
    order_id: str, seq: Annotated[int, ApiPath(ge=0, le=10_000)], caller: Caller, trade: Trade
) -> t.TrackingEventOut:
    """One event of the parcel, by its number (0 first): what its POST answered."""
    return cv.tracking_event(trade.tracking_event(caller, order_id, seq))


@router.post("/orders/{order_id}/tracking", status_code=201, response_model=t.TrackingEventOut)
def track(order_id: str, body: t.TrackingIn, caller: Caller, trade: Trade) -> t.TrackingEventOut:
    """A hub operator records a postal event (EMA ... EMI) for a parcel on its leg."""
    return cv.tracking_event(trade.track(caller, order_id, body.code, body.note))


@router.post("/consolidations", status_code=201, response_model=t.ConsolidationOut)
def consolidate(body: t.ConsolidationIn, caller: Caller, trade: Trade) -> t.ConsolidationOut:
    """A hub operator moves many parcels as one consignment (EXD, EMC or EMD): all or none."""
    events = trade.consolidate(caller, body.consolidationId, body.orderIds, body.code)
    return cv.consolidation(body.consolidationId, body.code, events)


@router.get("/orders/{order_id}/declaration")
def declaration(order_id: str, caller: Caller, trade: Trade) -> dict[str, Any]:
    """The WCO-style import declaration lodged for the order's parcel (404 before EDB)."""
    found = trade.declaration(caller, order_id)
    if found is None:
        raise OrderNotFound(f"no declaration lodged yet for order {order_id}", field="order")
    return found


@router.get("/orders/{order_id}/payouts", response_model=t.PayoutListOut)
def payouts(order_id: str, caller: Caller, trade: Trade) -> t.PayoutListOut:
    return t.PayoutListOut(payouts=[cv.payout(p) for p in trade.payouts(caller, order_id)])


@router.post("/orders/{order_id}/cancel", response_model=t.OrderOut)
def cancel(order_id: str, body: t.ReasonIn, caller: Caller, trade: Trade) -> t.OrderOut:
    return cv.order(trade.cancel(caller, order_id, body.reason))


@router.post("/orders/{order_id}/confirm", response_model=t.OrderOut)
def confirm_receipt(order_id: str, caller: Caller, trade: Trade) -> t.OrderOut:
    """The buyer confirms receipt: the escrow is released and the merchant paid."""
    return cv.order(trade.confirm_receipt(caller, order_id))


@router.post("/orders/{order_id}/return", response_model=t.OrderOut)
def request_return(order_id: str, body: t.ReasonIn, caller: Caller, trade: Trade) -> t.OrderOut:
    return cv.order(trade.request_return(caller, order_id, body.reason))


@router.post("/orders/{order_id}/return/answer", response_model=t.OrderOut)
def answer_return(
    order_id: str, body: t.ReturnAnswerIn, caller: Caller, trade: Trade
) -> t.OrderOut:
    return cv.order(trade.answer_return(caller, order_id, body.accept, body.note))


# ------------------------------------------------------------------ disputes
def _dispute(trade: TradeNetwork, caller: str, d: Dispute) -> t.DisputeOut:
    return cv.dispute(d, trade.get_order(caller, d.order_id).currency)


@router.post("/disputes", status_code=201, response_model=t.DisputeOut)
def open_dispute(body: t.DisputeIn, caller: Caller, trade: Trade) -> t.DisputeOut:
    d = trade.open_dispute(caller, body.disputeId, body.orderId, body.reason, body.claim)
    return _dispute(trade, caller, d)


@router.get("/disputes", response_model=t.DisputeListOut)
def list_disputes(caller: Caller, trade: Trade, state: StateFilter = None) -> t.DisputeListOut:
    """An arbitrator's cases, a hub's disputes, or a buyer's or merchant's own."""
    found = trade.list_disputes(caller, state)
    return t.DisputeListOut(disputes=[_dispute(trade, caller, d) for d in found])


@router.get("/disputes/{dispute_id}", response_model=t.DisputeOut)
def get_dispute(dispute_id: str, caller: Caller, trade: Trade) -> t.DisputeOut:
    return _dispute(trade, caller, trade.get_dispute(caller, dispute_id))


@router.get("/disputes/{dispute_id}/events", response_model=t.DisputeEventListOut)
def dispute_events(dispute_id: str, caller: Caller, trade: Trade) -> t.DisputeEventListOut:
    events = trade.dispute_events(caller, dispute_id)
    return t.DisputeEventListOut(events=[cv.dispute_event(e) for e in events])


@router.post("/disputes/{dispute_id}/evidence", response_model=t.DisputeOut)
def add_evidence(dispute_id: str, body: t.EvidenceIn, caller: Caller, trade: Trade) -> t.DisputeOut:
    return _dispute(trade, caller, trade.add_evidence(caller, dispute_id, body.text))


@router.post("/disputes/{dispute_id}/offer", response_model=t.DisputeOut)
def offer_settlement(
    dispute_id: str, body: t.OfferIn, caller: Caller, trade: Trade
) -> t.DisputeOut:
    """Either side proposes a refund of the goods escrow (minor units of the order)."""
    return _dispute(trade, caller, trade.offer_settlement(caller, dispute_id, body.refundMinor))


@router.post("/disputes/{dispute_id}/accept", response_model=t.DisputeOut)
def accept_settlement(
    dispute_id: str,
    caller: Caller,
    trade: Trade,
    refund_minor: Annotated[
        int | None,
        Query(
            alias="refundMinor",
            ge=0,
            le=2**63 - 1,
            description="the refund being accepted (must match)",
        ),
    ] = None,
) -> t.DisputeOut:
    return _dispute(trade, caller, trade.accept_settlement(caller, dispute_id, refund_minor))


@router.post("/disputes/{dispute_id}/escalate", response_model=t.DisputeOut)
def escalate(dispute_id: str, caller: Caller, trade: Trade) -> t.DisputeOut:
    return _dispute(trade, caller, trade.escalate(caller, dispute_id))


@router.post("/disputes/{dispute_id}/ruling", response_model=t.DisputeOut)
def rule(dispute_id: str, body: t.RulingIn, caller: Caller, trade: Trade) -> t.DisputeOut:
    """The assigned arbitrator rules: release, refund, or split (refundMinor to the buyer)."""
    d = trade.rule(caller, dispute_id, body.outcome, body.refundMinor, body.reason)
    return _dispute(trade, caller, d)


@router.post("/disputes/{dispute_id}/appeal", response_model=t.DisputeOut)
def appeal(dispute_id: str, body: t.AppealIn, caller: Caller, trade: Trade) -> t.DisputeOut:
    return _dispute(trade, caller, trade.appeal(caller, dispute_id, body.grounds))


# ------------------------------------------------------------------ operations
@router.post("/deadlines", response_model=t.DeadlinesOut)
def process_deadlines(caller: Caller, trade: Trade) -> t.DeadlinesOut:
    """The scheme operator runs every trade deadline that has passed."""
    if caller != SCHEME:
        raise Forbidden("only the scheme operator runs the trade deadlines")
    return cv.deadlines(trade.process_deadlines())


@router.post("/credentials", status_code=201, response_model=t.TradeCredentialOut)
def issue_credentials(
    body: t.TradeCredentialIn, caller: Caller, trade: Trade, response: Response
) -> t.TradeCredentialOut:
    """API credentials for a merchant, buyer or arbitrator, issued by the scheme operator or
    the actor's hub operator; the secret is shown once."""
    response.headers["Cache-Control"] = "no-store"  # a secret: kept nowhere (security.py)
    issued = issue_actor_credential(trade, caller, body.principal, public_key_b64=body.publicKey)
    return t.TradeCredentialOut(
        keyId=issued.key_id, secret=issued.secret, token=issued.token, principal=body.principal
    )


@router.get("/credentials", response_model=list[t.TradeCredentialInfoOut])
def list_credentials(
    principal: Annotated[str, Query(min_length=3, max_length=80)], caller: Caller, trade: Trade
) -> list[t.TradeCredentialInfoOut]:
    """A merchant's, buyer's or arbitrator's credentials, revoked ones too, never a secret:
    for the actor itself, its hub operator or the scheme operator."""
    with _AS_PRINCIPAL:  # the principal's checks name its role (or "caller"): the query's name
        found = list_actor_credentials(trade, caller, principal)
    return [cv.credential_info(c) for c in found]


#: What a principal's checks name (``parse_principal``: ``caller``; ``check_id``: its role, as
#: ``actor_hubs``' not-found does) as the credentials list's query spells it
_AS_PRINCIPAL = FieldsNamed(
    {name: "principal" for name in ("caller", "merchant", "buyer", "arbitrator")}
)


@router.delete("/credentials/{key_id}", response_model=t.TradeCredentialInfoOut)
def revoke_credentials(key_id: str, caller: Caller, trade: Trade) -> t.TradeCredentialInfoOut:
    """Revoke a trade actor's credential (a lost phone, a departed clerk): refused from the
    next request on, in every worker. By the actor, its hub operator or the scheme."""
    return cv.credential_info(revoke_actor_credential(trade, caller, key_id))
