"""Payments: an order's escrows are decided through the order, not by their controller directly.

A trade checkout makes the order's escrows with the origin hub as their controller; the hub
could release one straight to itself through ``POST /v1/escrows/{id}/release`` while the
order's dispute was open, and the arbitrator's refund could no longer be carried out. An
escrow now names the context whose use cases alone decide it (``managed_by``); the escrows
of existing orders are marked as trade's.

Revision ID: 0026_escrow_managed_by
Revises: 0025_decision_outbox
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026_escrow_managed_by"
down_revision = "0025_decision_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pay_escrows") as batch:
        batch.add_column(sa.Column("managed_by", sa.String(16), nullable=True))
    op.execute(
        "UPDATE pay_escrows SET managed_by = 'trade' WHERE id IN"
        " (SELECT goods_escrow_id FROM trade_orders"
        " UNION SELECT tax_escrow_id FROM trade_orders WHERE tax_escrow_id IS NOT NULL)"
    )


def downgrade() -> None:
    with op.batch_alter_table("pay_escrows") as batch:
        batch.drop_column("managed_by")
