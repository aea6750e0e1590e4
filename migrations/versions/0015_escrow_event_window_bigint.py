"""Payments: an escrow event's settlement window id is a 64-bit integer, as the window's own id
and a transfer's ``window_id`` are (it was created as a 32-bit integer, which PostgreSQL
keeps strictly).

Revision ID: 0015_escrow_event_window_bigint
Revises: 0014_outbox_abandoned
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_escrow_event_window_bigint"
down_revision = "0014_outbox_abandoned"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pay_escrow_events") as batch:
        batch.alter_column(
            "window_id", existing_type=sa.Integer, type_=sa.BigInteger, existing_nullable=True
        )


def downgrade() -> None:
    with op.batch_alter_table("pay_escrow_events") as batch:
        batch.alter_column(
            "window_id", existing_type=sa.BigInteger, type_=sa.Integer, existing_nullable=True
        )
