"""Notifications: participants' callback endpoints and the outbox of transfer events.

Revision ID: 0007_notifications
Revises: 0006_payer_party
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_notifications"
down_revision = "0006_payer_party"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pay_endpoints",
        sa.Column("participant_id", sa.String(64), primary_key=True),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pay_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("participant_id", sa.String(64), nullable=False, index=True),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("delivered_at", sa.BigInteger),
        sa.Column("last_error", sa.String(300)),
    )
    op.create_index("ix_pay_outbox_due", "pay_outbox", ["delivered_at", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("pay_outbox")
    op.drop_table("pay_endpoints")
