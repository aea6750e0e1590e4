"""Trade network tables (SQLAlchemy Core) and the rows <-> model mapping.

Migration ``0003_trade`` creates these tables; keep the two in step.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from entrepot.trade.model import (
    Buyer,
    CustomsFx,
    CustomsMeasure,
    Dispute,
    DisputeReason,
    DisputeState,
    FreightCard,
    Hub,
    HubKind,
    Item,
    Merchant,
    MerchantState,
    Order,
    OrderState,
    Outcome,
    QuoteLine,
    Ruling,
    TradeQuote,
    WalletConsent,
    Warehouse,
)

metadata = sa.MetaData()
ID = sa.String(64)

# BEGIN TABLES (copied verbatim into migrations/versions/0003_trade.py)
#: A payout not paid yet, a dispute not resolved: the deadline pass (every 30 s under
#: ``entrepot serve``) reads them through partial indexes of only those rows, not every payout
#: and dispute there ever was. A query states the condition as this same literal text, from
#: which the database proves the index's (PostgreSQL's generic plan of a prepared statement
#: cannot from a bound value).
UNPAID_PAYOUT = "state != 'PAID'"
OPEN_DISPUTE = "state != 'RESOLVED'"


hubs = sa.Table(
    "trade_hubs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("participant_id", ID, nullable=False, unique=True),
    sa.Column("arbitrators", sa.Text, nullable=False),
    sa.Column("customs_authority", ID, nullable=False),
    sa.Column("partners", sa.Text, nullable=False),
    sa.Column("dftz", sa.Boolean, nullable=False),
    sa.Column("commission_bps", sa.Integer, nullable=False),
    sa.Column("handling_days", sa.Integer, nullable=False),
    sa.Column("delivery_days", sa.Integer, nullable=False),
    sa.Column("dispute_days", sa.Integer, nullable=False),
    sa.Column("freight", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
warehouses = sa.Table(
    "trade_warehouses",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("hub_id", ID, sa.ForeignKey("trade_hubs.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
)
merchants = sa.Table(
    "trade_merchants",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("hub_id", ID, sa.ForeignKey("trade_hubs.id"), nullable=False),
    sa.Column("legal_name", sa.String(200), nullable=False),
    sa.Column("registration_number", sa.String(64), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("currencies", sa.String(64), nullable=False),
    sa.Column("settlement_alias_type", sa.String(16), nullable=False),
    sa.Column("settlement_alias", sa.String(64), nullable=False),
    sa.Column("settlement_participant", ID, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("screening", sa.String(400), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("country", "registration_number", name="uq_trade_merchant_reg"),
)
buyers = sa.Table(
    "trade_buyers",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("hub_id", ID, sa.ForeignKey("trade_hubs.id"), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("wallet_alias_type", sa.String(16), nullable=False),
    sa.Column("wallet_alias", sa.String(64), nullable=False),
    sa.Column("wallet_participant", ID, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # the wallet's mandate for the buyer's orders (WalletConsent), and when it last changed
    sa.Column("wallet_consent", sa.String(8), nullable=False, server_default="pending"),
    sa.Column("wallet_consent_at", sa.BigInteger, nullable=True),
    sa.Column("wallet_consent_alias_at", sa.BigInteger, nullable=True),
    sa.Index("ix_trade_buyers_wallet", "wallet_participant", "id"),
)
items = sa.Table(
    "trade_items",
    metadata,
    sa.Column("sku", ID, primary_key=True),
    sa.Column("merchant_id", ID, sa.ForeignKey("trade_merchants.id"), nullable=False, index=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("hs_code", sa.String(6), nullable=False),
    sa.Column("origin", sa.String(2), nullable=False),
    sa.Column("weight_g", sa.Integer, nullable=False),
    sa.Column("length_mm", sa.Integer, nullable=False),
    sa.Column("width_mm", sa.Integer, nullable=False),
    sa.Column("height_mm", sa.Integer, nullable=False),
    sa.Column("price", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # migration 0018: the customs unit and quantity per piece (decimal text), both or neither
    sa.Column("customs_unit", sa.String(16), nullable=True),
    sa.Column("customs_per_piece", sa.String(32), nullable=True),
)
stock = sa.Table(
    "trade_stock",
    metadata,
    sa.Column("sku", ID, sa.ForeignKey("trade_items.sku"), primary_key=True),
    sa.Column("warehouse_id", ID, sa.ForeignKey("trade_warehouses.id"), primary_key=True),
    sa.Column("on_hand", sa.BigInteger, nullable=False),
    sa.Column("reserved", sa.BigInteger, nullable=False),
    sa.CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="ck_trade_stock_reserved"),
)
quotes = sa.Table(
    "trade_quotes",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("buyer_id", ID, nullable=False, index=True),
    sa.Column("merchant_id", ID, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("used", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
orders = sa.Table(
    "trade_orders",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("quote_id", ID, nullable=False, unique=True),
    sa.Column("buyer_id", ID, nullable=False, index=True),
    sa.Column("merchant_id", ID, nullable=False, index=True),
    sa.Column("hub_id", ID, nullable=False, index=True),
    sa.Column("destination_hub_id", ID, nullable=False),
    sa.Column("destination", sa.String(2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("goods_escrow_id", ID, nullable=False),
    sa.Column("goods_escrow", sa.BigInteger, nullable=False),
    sa.Column("tax_escrow_id", ID),
    sa.Column("tax_escrow", sa.BigInteger, nullable=False),
    sa.Column("merchant_currency", sa.String(3), nullable=False),
    sa.Column("merchant_amount", sa.BigInteger, nullable=False),
    sa.Column("commission", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(24), nullable=False, index=True),
    sa.Column("ship_by", sa.BigInteger, nullable=False),
    sa.Column("deliver_by", sa.BigInteger, nullable=False),
    sa.Column("release_at", sa.BigInteger),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
order_lines = sa.Table(
    "trade_order_lines",
    metadata,
    sa.Column("order_id", ID, sa.ForeignKey("trade_orders.id"), primary_key=True),
    sa.Column("line", sa.Integer, primary_key=True),
    sa.Column("sku", ID, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("warehouse_id", ID, nullable=False),
    sa.Column("unit_price", sa.BigInteger, nullable=False),
)
order_events = sa.Table(
    "trade_order_events",
    metadata,
    sa.Column("order_id", ID, sa.ForeignKey("trade_orders.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", ID, nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)
tracking = sa.Table(
    "trade_tracking",
    metadata,
    sa.Column("shipment_id", ID, sa.ForeignKey("trade_orders.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(3), nullable=False),
    sa.Column("hub_id", ID, nullable=False),
    sa.Column("actor", ID, nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("note", sa.String(400), nullable=False),
)
#: One step (EXD, EMC or EMD) of a consignment, recorded with its parcels' events: its
#: retry, by its id, is answered with those events rather than run again (migration 0020)
consolidations = sa.Table(
    "trade_consolidations",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("code", sa.String(3), primary_key=True),
    sa.Column("hub_id", ID, nullable=False),
    sa.Column("order_ids", sa.Text, nullable=False),  # JSON list, in the request's order
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
declarations = sa.Table(
    "trade_declarations",
    metadata,
    sa.Column("shipment_id", ID, primary_key=True),
    sa.Column("declaration_id", sa.String(80), nullable=False),
    sa.Column("destination", sa.String(2), nullable=False),
    sa.Column("lane", sa.String(8), nullable=False),
    sa.Column("clearance_hours", sa.Integer, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
disputes = sa.Table(
    "trade_disputes",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("order_id", ID, sa.ForeignKey("trade_orders.id"), nullable=False, unique=True),
    sa.Column("hub_id", ID, nullable=False, index=True),
    sa.Column("reason", sa.String(24), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("opened_by", ID, nullable=False),
    sa.Column("claim", sa.String(2000), nullable=False),
    sa.Column("arbitrator", ID),
    sa.Column("appeal_arbitrator", ID),
    sa.Column("ruling", sa.Text),
    sa.Column("appeal_ruling", sa.Text),
    sa.Column("appealed_by", ID),
    sa.Column("respond_by", sa.BigInteger),
    sa.Column("negotiate_until", sa.BigInteger, nullable=False),
    sa.Column("rule_by", sa.BigInteger),
    sa.Column("appeal_until", sa.BigInteger),
    sa.Column("offer_refund", sa.BigInteger),
    sa.Column("offer_by", ID),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index(
        "ix_trade_disputes_open",
        "id",
        sqlite_where=sa.text(OPEN_DISPUTE),
        postgresql_where=sa.text(OPEN_DISPUTE),
    ),
)
dispute_events = sa.Table(
    "trade_dispute_events",
    metadata,
    sa.Column("dispute_id", ID, sa.ForeignKey("trade_disputes.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", ID, nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)
payouts = sa.Table(
    "trade_payouts",
    metadata,
    sa.Column("transfer_id", ID, primary_key=True),
    sa.Column("order_id", ID, sa.ForeignKey("trade_orders.id"), nullable=False, index=True),
    sa.Column("merchant_id", ID, nullable=False, index=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("source_currency", sa.String(3), nullable=False),
    sa.Column("source_amount", sa.BigInteger, nullable=False),
    sa.Column("withheld", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index(
        "ix_trade_payouts_unpaid",
        "transfer_id",
        sqlite_where=sa.text(UNPAID_PAYOUT),
        postgresql_where=sa.text(UNPAID_PAYOUT),
    ),
)
# END TABLES


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def hub_from_row(r: Any) -> Hub:
    f = json.loads(r.freight)
    return Hub(
        r.id,
        r.name,
        HubKind(r.kind),
        r.country,
        r.currency,
        r.participant_id,
        tuple(json.loads(r.arbitrators)),
        r.customs_authority,
        tuple(json.loads(r.partners)),
        bool(r.dftz),
        r.commission_bps,
        r.handling_days,
        r.delivery_days,
        r.dispute_days,
        FreightCard(**f),
    )


def hub_values(h: Hub, now: int) -> dict[str, Any]:
    fc = h.freight
    return {
        "id": h.id,
        "name": h.name,
        "kind": h.kind.value,
        "country": h.country,
        "currency": h.currency,
        "participant_id": h.participant_id,
        "arbitrators": dumps(list(h.arbitrators)),
        "customs_authority": h.customs_authority,
        "partners": dumps(list(h.partners)),
        "dftz": h.dftz,
        "commission_bps": h.commission_bps,
        "handling_days": h.handling_days,
        "delivery_days": h.delivery_days,
        "dispute_days": h.dispute_days,
        "freight": dumps(
            {
                "domestic_base_minor": fc.domestic_base_minor,
                "domestic_per_kg_minor": fc.domestic_per_kg_minor,
                "international_base_minor": fc.international_base_minor,
                "international_per_kg_minor": fc.international_per_kg_minor,
                "insurance_bps": fc.insurance_bps,
            }
        ),
        "created_at": now,
    }


def warehouse_from_row(r: Any) -> Warehouse:
    return Warehouse(r.id, r.hub_id, r.name)


def merchant_from_row(r: Any) -> Merchant:
    return Merchant(
        r.id,
        r.hub_id,
        r.legal_name,
        r.registration_number,
        r.country,
        tuple(r.currencies.split(",")),
        r.settlement_alias_type,
        r.settlement_alias,
        r.settlement_participant,
        MerchantState(r.state),
        r.screening,
        r.created_at,
    )


def buyer_from_row(r: Any) -> Buyer:
    return Buyer(
        r.id,
        r.name,
        r.country,
        r.hub_id,
        r.currency,
        r.wallet_alias_type,
        r.wallet_alias,
        r.wallet_participant,
        r.created_at,
        WalletConsent(r.wallet_consent),
        r.wallet_consent_at,
        r.wallet_consent_alias_at,
    )


def item_from_row(r: Any) -> Item:
    return Item(
        r.sku,
        r.merchant_id,
        r.title,
        r.hs_code,
        r.origin,
        r.weight_g,
        r.length_mm,
        r.width_mm,
        r.height_mm,
        r.price,
        r.currency,
        bool(r.active),
        _customs_measure(r.customs_unit, r.customs_per_piece),
    )


def _customs_measure(unit: str | None, per_piece: str | None) -> CustomsMeasure | None:
    return None if unit is None or per_piece is None else CustomsMeasure(unit, Decimal(per_piece))


def customs_values(c: CustomsMeasure | None) -> dict[str, str | None]:
    """The item columns of its customs measure."""
    return {
        "customs_unit": None if c is None else c.unit,
        "customs_per_piece": None if c is None else str(c.per_piece),
    }


def _quote_line(ln: QuoteLine) -> list[object]:
    row: list[object] = [
        ln.sku,
        ln.quantity,
        ln.warehouse_id,
        ln.unit_price_minor,
        ln.line_minor,
        ln.line_buyer_minor,
    ]
    # only when the item declared one: every other quote's body stays as it was
    if ln.customs is not None:
        row += [ln.customs.unit, str(ln.customs.per_piece)]
    return row


def _quote_line_from(row: list[Any]) -> QuoteLine:
    customs = _customs_measure(*row[6:8]) if len(row) > 6 else None
    sku, quantity, warehouse, unit_price, line, line_buyer = row[:6]
    return QuoteLine(sku, quantity, warehouse, unit_price, line, line_buyer, customs)


def quote_body(q: TradeQuote) -> str:
    return dumps(
        {
            "lines": [_quote_line(ln) for ln in q.lines],
            "merchant_currency": q.merchant_currency,
            "fx_rate": str(q.fx_rate),
            "goods_merchant": q.goods_merchant_minor,
            "goods": q.goods_minor,
            "freight": q.freight_minor,
            "insurance": q.insurance_minor,
            "duty": q.duty_minor,
            "excise": q.excise_minor,
            "vat": q.vat_minor,
            "customs_fees": q.customs_fees_minor,
            "regime": q.regime,
            "dftz": q.dftz,
            "explanations": list(q.explanations),
            # only when the buyer pays in another currency than customs': the key's absence
            # keeps every other quote's body as it was (and quotes from before it readable)
            **({"customs_fx": _customs_fx_body(q.customs_fx)} if q.customs_fx else {}),
        }
    )


def _customs_fx_body(fx: CustomsFx) -> dict[str, Any]:
    body = asdict(fx)
    body["rate"] = str(fx.rate)  # a Decimal kept exactly, as text
    return body


def _customs_fx(body: dict[str, Any] | None) -> CustomsFx | None:
    if body is None:
        return None
    return CustomsFx(**{**body, "rate": Decimal(body["rate"])})


def quote_from_row(r: Any) -> TradeQuote:
    b = json.loads(r.body)
    return TradeQuote(
        r.id,
        r.buyer_id,
        r.merchant_id,
        tuple(_quote_line_from(ln) for ln in b["lines"]),
        r.currency,
        b["merchant_currency"],
        Decimal(b["fx_rate"]),
        b["goods_merchant"],
        b["goods"],
        b["freight"],
        b["insurance"],
        b["duty"],
        b["excise"],
        b["vat"],
        b["customs_fees"],
        r.total,
        b["regime"],
        b["dftz"],
        tuple(b["explanations"]),
        r.expires_at,
        r.created_at,
        bool(r.used),
        _customs_fx(b.get("customs_fx")),
    )


def order_from_row(r: Any) -> Order:
    return Order(
        r.id,
        r.quote_id,
        r.buyer_id,
        r.merchant_id,
        r.hub_id,
        r.destination_hub_id,
        r.destination,
        r.currency,
        r.total,
        r.goods_escrow_id,
        r.goods_escrow,
        r.tax_escrow_id,
        r.tax_escrow,
        r.merchant_currency,
        r.merchant_amount,
        r.commission,
        OrderState(r.state),
        r.ship_by,
        r.deliver_by,
        r.release_at,
        r.created_at,
    )


def order_values(o: Order) -> dict[str, Any]:
    return {
        "id": o.id,
        "quote_id": o.quote_id,
        "buyer_id": o.buyer_id,
        "merchant_id": o.merchant_id,
        "hub_id": o.hub_id,
        "destination_hub_id": o.destination_hub_id,
        "destination": o.destination,
        "currency": o.currency,
        "total": o.total_minor,
        "goods_escrow_id": o.goods_escrow_id,
        "goods_escrow": o.goods_escrow_minor,
        "tax_escrow_id": o.tax_escrow_id,
        "tax_escrow": o.tax_escrow_minor,
        "merchant_currency": o.merchant_currency,
        "merchant_amount": o.merchant_amount_minor,
        "commission": o.commission_minor,
        "state": o.state.value,
        "ship_by": o.ship_by_ns,
        "deliver_by": o.deliver_by_ns,
        "release_at": o.release_at_ns,
        "created_at": o.created_at_ns,
    }


def _ruling(text: str | None) -> Ruling | None:
    if text is None:
        return None
    d = json.loads(text)
    return Ruling(Outcome(d["outcome"]), d["refund_minor"], d["by"], d["reason"], d["at_ns"])


def ruling_json(r: Ruling | None) -> str | None:
    if r is None:
        return None
    return dumps(
        {
            "outcome": r.outcome.value,
            "refund_minor": r.refund_minor,
            "by": r.by,
            "reason": r.reason,
            "at_ns": r.at_ns,
        }
    )


def dispute_from_row(r: Any) -> Dispute:
    return Dispute(
        r.id,
        r.order_id,
        r.hub_id,
        DisputeReason(r.reason),
        DisputeState(r.state),
        r.opened_by,
        r.claim,
        r.arbitrator,
        r.appeal_arbitrator,
        _ruling(r.ruling),
        _ruling(r.appeal_ruling),
        r.appealed_by,
        r.respond_by,
        r.negotiate_until,
        r.rule_by,
        r.appeal_until,
        r.offer_refund,
        r.offer_by,
        r.created_at,
    )


def dispute_values(d: Dispute) -> dict[str, Any]:
    return {
        "id": d.id,
        "order_id": d.order_id,
        "hub_id": d.hub_id,
        "reason": d.reason.value,
        "state": d.state.value,
        "opened_by": d.opened_by,
        "claim": d.claim,
        "arbitrator": d.arbitrator,
        "appeal_arbitrator": d.appeal_arbitrator,
        "ruling": ruling_json(d.ruling),
        "appeal_ruling": ruling_json(d.appeal_ruling),
        "appealed_by": d.appealed_by,
        "respond_by": d.respond_by_ns,
        "negotiate_until": d.negotiate_until_ns,
        "rule_by": d.rule_by_ns,
        "appeal_until": d.appeal_until_ns,
        "offer_refund": d.offer_refund_minor,
        "offer_by": d.offer_by,
        "created_at": d.created_at_ns,
    }


def next_seq(conn: Connection, table: sa.Table, key_column: str, key: str) -> int:
    col = table.c[key_column]
    return int(
        conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(table.c.seq), -1) + 1).where(col == key)
        ).scalar_one()
    )


def last_event_is(
    conn: Connection, table: sa.Table, key_column: str, key: str, kind: str, detail: str
) -> bool:
    """Whether the log of ``key`` (an order's, a dispute's) ends with this event already."""
    last = conn.execute(
        sa.select(table.c.kind, table.c.detail)
        .where(table.c[key_column] == key)
        .order_by(table.c.seq.desc())
        .limit(1)
    ).first()
    return last is not None and (last.kind, last.detail) == (kind, detail)
