"""Trade model -> response bodies (``schemas_trade``); the CLI prints the same documents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from entrepot.entrypoints.api import schemas_trade as t
from entrepot.entrypoints.api.convert import camel, iso, money
from entrepot.payments.credentials import CredentialInfo
from entrepot.trade import (
    Buyer,
    CustomsFx,
    Dispute,
    Hub,
    Item,
    Merchant,
    Order,
    TradeQuote,
    Warehouse,
)
from entrepot.trade.model import TRACKING_CODES, Ruling, StockLevel, TrackingEvent


def _time(ts_ns: int) -> str:
    return iso(ts_ns) or ""


def hub(h: Hub) -> t.HubOut:
    f, cur = h.freight, h.currency
    return t.HubOut(
        hubId=h.id,
        name=h.name,
        kind=h.kind.value,
        country=h.country,
        currency=cur,
        operator=h.participant_id,
        arbitrators=list(h.arbitrators),
        customsAuthority=h.customs_authority,
        partners=list(h.partners),
        dftz=h.dftz,
        commissionBps=h.commission_bps,
        handlingDays=h.handling_days,
        deliveryDays=h.delivery_days,
        disputeDays=h.dispute_days,
        freight=t.FreightCardOut(
            domesticBase=money(f.domestic_base_minor, cur),
            domesticPerKg=money(f.domestic_per_kg_minor, cur),
            internationalBase=money(f.international_base_minor, cur),
            internationalPerKg=money(f.international_per_kg_minor, cur),
            insuranceBps=f.insurance_bps,
        ),
    )


def warehouse(w: Warehouse) -> t.WarehouseOut:
    return t.WarehouseOut(warehouseId=w.id, hubId=w.hub_id, name=w.name)


def merchant(m: Merchant) -> t.MerchantOut:
    return t.MerchantOut(
        merchantId=m.id,
        hubId=m.hub_id,
        legalName=m.legal_name,
        registrationNumber=m.registration_number,
        country=m.country,
        currencies=list(m.currencies),
        settlement=t.AccountOut(
            partyIdType=m.settlement_alias_type,
            partyIdentifier=m.settlement_alias,
            fspId=m.settlement_participant,
        ),
        state=m.state.value,
        screening=m.screening,
        createdAt=_time(m.created_at_ns),
    )


def merchant_history(h: Any) -> t.MerchantHistoryOut:
    """``TradeNetwork.merchant_history``'s ``MerchantHistory`` (amounts in its currency)."""
    cur = str(h.currency)
    return t.MerchantHistoryOut(
        merchantId=h.merchant_id,
        country=h.country,
        currency=cur,
        asOf=_time(h.as_of_ns),
        tenureDays=h.tenure_days,
        monthlySales=[money(v, cur) for v in h.monthly_sales_minor],
        orderCount=h.order_count,
        refundCount=h.refund_count,
        refunds=money(h.refund_minor, cur),
        disputeCount=h.dispute_count,
        disputesLost=h.disputes_lost,
        settlementWeeks=h.settlement_weeks,
        observedWeeks=h.observed_weeks,
    )


def buyer(b: Buyer) -> t.BuyerOut:
    return t.BuyerOut(
        buyerId=b.id,
        name=b.name,
        country=b.country,
        hubId=b.hub_id,
        currency=b.currency,
        wallet=t.AccountOut(
            partyIdType=b.wallet_alias_type,
            partyIdentifier=b.wallet_alias,
            fspId=b.wallet_participant,
        ),
        walletConsent=b.wallet_consent.value,
        walletConsentAt=None if b.wallet_consent_at_ns is None else _time(b.wallet_consent_at_ns),
        createdAt=_time(b.created_at_ns),
    )


def item(i: Item) -> t.ItemOut:
    return t.ItemOut(
        sku=i.sku,
        merchantId=i.merchant_id,
        title=i.title,
        hsCode=i.hs_code,
        origin=i.origin,
        weightG=i.weight_g,
        dimensionsMm=t.DimensionsMm(length=i.length_mm, width=i.width_mm, height=i.height_mm),
        chargeableG=i.chargeable_g,
        price=money(i.price_minor, i.currency),
        active=i.active,
        customs=None
        if i.customs is None
        else t.CustomsMeasureOut(unit=i.customs.unit, quantityPerPiece=str(i.customs.per_piece)),
    )


def stock(s: StockLevel) -> t.StockOut:
    return t.StockOut(
        sku=s.sku,
        warehouseId=s.warehouse_id,
        onHand=s.on_hand,
        reserved=s.reserved,
        available=s.available,
    )


def availability(sku: str, levels: list[StockLevel]) -> t.StockAvailabilityOut:
    return t.StockAvailabilityOut(
        sku=sku,
        available=sum(max(0, s.available) for s in levels),
        warehouses=[
            t.AvailabilityOut(warehouseId=s.warehouse_id, available=max(0, s.available))
            for s in levels
        ],
    )


def quote(q: TradeQuote) -> t.TradeQuoteOut:
    cur, mcur = q.currency, q.merchant_currency
    return t.TradeQuoteOut(
        quoteId=q.id,
        buyerId=q.buyer_id,
        merchantId=q.merchant_id,
        lines=[
            t.QuoteLineOut(
                sku=ln.sku,
                quantity=ln.quantity,
                warehouseId=ln.warehouse_id,
                unitPrice=money(ln.unit_price_minor, mcur),
                lineTotal=money(ln.line_minor, mcur),
                lineTotalBuyer=money(ln.line_buyer_minor, cur),
                customsQuantity=str(ln.customs_quantity),
                customsUnit=ln.customs_unit,
            )
            for ln in q.lines
        ],
        currency=cur,
        merchantCurrency=mcur,
        fxRate=str(q.fx_rate),
        goodsMerchant=money(q.goods_merchant_minor, mcur),
        goods=money(q.goods_minor, cur),
        freight=money(q.freight_minor, cur),
        insurance=money(q.insurance_minor, cur),
        duty=money(q.duty_minor, cur),
        excise=money(q.excise_minor, cur),
        vat=money(q.vat_minor, cur),
        customsFees=money(q.customs_fees_minor, cur),
        total=money(q.total_minor, cur),
        goodsEscrow=money(q.goods_escrow_minor, cur),
        taxesEscrow=money(q.taxes_minor, cur),
        regime=q.regime,
        dftz=q.dftz,
        explanations=list(q.explanations),
        expiration=_time(q.expires_at_ns),
        createdAt=_time(q.created_at_ns),
        used=q.used,
        customsFx=None if q.customs_fx is None else _customs_fx(q.customs_fx),
    )


def _customs_fx(fx: CustomsFx) -> t.CustomsFxOut:
    c = fx.currency
    return t.CustomsFxOut(
        currency=c,
        rate=str(fx.rate),
        providerId=fx.provider_id,
        spreadBps=fx.spread_bps,
        readAt=_time(fx.read_at_ns),
        freight=money(fx.freight_minor, c),
        insurance=money(fx.insurance_minor, c),
        customsValue=money(fx.customs_value_minor, c),
        duty=money(fx.duty_minor, c),
        excise=money(fx.excise_minor, c),
        vat=money(fx.vat_minor, c),
        customsFees=money(fx.fees_minor, c),
        taxes=money(fx.taxes_minor, c),
    )


def order(o: Order) -> t.OrderOut:
    cur, mcur = o.currency, o.merchant_currency
    return t.OrderOut(
        orderId=o.id,
        quoteId=o.quote_id,
        buyerId=o.buyer_id,
        merchantId=o.merchant_id,
        hubId=o.hub_id,
        destinationHubId=o.destination_hub_id,
        destination=o.destination,
        state=o.state.value,
        total=money(o.total_minor, cur),
        goodsEscrow=t.EscrowRefOut(
            escrowId=o.goods_escrow_id, amount=money(o.goods_escrow_minor, cur)
        ),
        taxesEscrow=t.EscrowRefOut(escrowId=o.tax_escrow_id, amount=money(o.tax_escrow_minor, cur)),
        merchantAmount=money(o.merchant_amount_minor, mcur),
        commission=money(o.commission_minor, mcur),
        merchantNet=money(o.merchant_net_minor, mcur),
        shipBy=_time(o.ship_by_ns),
        deliverBy=_time(o.deliver_by_ns),
        releaseAt=iso(o.release_at_ns),
        createdAt=_time(o.created_at_ns),
    )


def event(e: Mapping[str, Any]) -> t.EventOut:
    """An order or dispute event as the service reports it: seq, kind, actor, at_ns and
    the rest as details (keys in camelCase)."""
    fixed = {"seq", "kind", "actor", "at_ns"}
    detail = {camel(k): v for k, v in e.items() if k not in fixed}
    return t.EventOut(
        seq=int(e["seq"]),
        kind=str(e["kind"]),
        actor=str(e["actor"]),
        at=_time(int(e["at_ns"])),
        detail=detail,
    )


def dispute_event(e: Mapping[str, Any]) -> t.DisputeEventOut:
    return t.DisputeEventOut(
        seq=int(e["seq"]),
        kind=str(e["kind"]),
        actor=str(e["actor"]),
        at=_time(int(e["at_ns"])),
        detail=str(e["detail"]),
    )


def tracking_event(e: TrackingEvent) -> t.TrackingEventOut:
    return t.TrackingEventOut(
        orderId=e.shipment_id,
        seq=e.seq,
        code=e.code,
        description=TRACKING_CODES.get(e.code, ""),
        hubId=e.hub_id,
        actor=e.actor,
        at=_time(e.at_ns),
        note=e.note,
    )


def consolidation(
    consolidation_id: str, code: str, events: list[TrackingEvent]
) -> t.ConsolidationOut:
    return t.ConsolidationOut(
        consolidationId=consolidation_id, code=code, events=[tracking_event(e) for e in events]
    )


def tracking(doc: Mapping[str, Any]) -> t.TrackingOut:
    """``TradeNetwork.tracking``'s document."""
    order_id = str(doc["order_id"])
    clearance = doc.get("clearance")
    return t.TrackingOut(
        orderId=order_id,
        status=str(doc["status"]),
        events=[
            t.TrackingStepOut(
                code=e["code"],
                description=TRACKING_CODES.get(e["code"], ""),
                hubId=e["hub"],
                at=_time(e["at_ns"]),
                note=e["note"],
            )
            for e in doc["events"]
        ],
        clearance=None
        if clearance is None
        else t.ClearanceOut(lane=clearance["lane"], estimatedHours=clearance["estimated_hours"]),
    )


def payout(p: Mapping[str, Any]) -> t.PayoutOut:
    """One of ``TradeNetwork.payouts``' rows."""
    cur, src = str(p["currency"]), str(p["source_currency"])
    return t.PayoutOut(
        transferId=str(p["transfer_id"]),
        amount=money(int(p["amount_minor"]), cur),
        withheld=None if p["withheld_minor"] is None else money(int(p["withheld_minor"]), cur),
        source=money(int(p["source_amount_minor"]), src),
        state=str(p["state"]),
    )


def deadlines(counts: Mapping[str, int]) -> t.DeadlinesOut:
    return t.DeadlinesOut(counts={camel(k): int(v) for k, v in counts.items()})


def _ruling(r: Ruling | None, currency: str) -> t.RulingOut | None:
    if r is None:
        return None
    return t.RulingOut(
        outcome=r.outcome.value,
        refund=money(r.refund_minor, currency),
        by=r.by,
        reason=r.reason,
        at=_time(r.at_ns),
    )


def dispute(d: Dispute, currency: str) -> t.DisputeOut:
    """``currency``: the disputed order's (refunds are of its goods escrow)."""
    offer = None
    if d.offer_refund_minor is not None:
        offer = t.OfferOut(refund=money(d.offer_refund_minor, currency), by=d.offer_by or "")
    return t.DisputeOut(
        disputeId=d.id,
        orderId=d.order_id,
        hubId=d.hub_id,
        reason=d.reason.value,
        state=d.state.value,
        openedBy=d.opened_by,
        claim=d.claim,
        arbitrator=d.arbitrator,
        appealArbitrator=d.appeal_arbitrator,
        ruling=_ruling(d.ruling, currency),
        appealRuling=_ruling(d.appeal_ruling, currency),
        appealedBy=d.appealed_by,
        offer=offer,
        respondBy=iso(d.respond_by_ns),
        negotiateUntil=_time(d.negotiate_until_ns),
        ruleBy=iso(d.rule_by_ns),
        appealUntil=iso(d.appeal_until_ns),
        createdAt=_time(d.created_at_ns),
    )


def credential_info(c: CredentialInfo) -> t.TradeCredentialInfoOut:
    return t.TradeCredentialInfoOut(
        keyId=c.key_id,
        principal=c.participant_id,
        publicKey=c.public_key,
        revoked=c.revoked,
        createdAt=iso(c.created_at_ns),
    )
