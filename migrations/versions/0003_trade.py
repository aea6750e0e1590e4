"""Trade network: hubs, warehouses, merchants, buyers, catalogue and stock, landed-cost quotes,
orders and their events, tracking, customs declarations, disputes and payouts.

Revision ID: 0003_trade
Revises: 0002_payments
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_trade"
down_revision = "0002_payments"
branch_labels = None
depends_on = None

ID = sa.String(64)
metadata = sa.MetaData()

# A frozen copy of the tables as this revision creates them (src/entrepot/trade/store.py holds
# the current ones; later changes are new revisions).
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
)


def upgrade() -> None:
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    metadata.drop_all(op.get_bind())
