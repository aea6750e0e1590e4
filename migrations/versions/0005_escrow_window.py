"""Escrow events carry the settlement window they happened in, so a window's gross value counts
each escrow move once.

Revision ID: 0005_escrow_window
Revises: 0004_lending
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_escrow_window"
down_revision = "0004_lending"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pay_escrow_events") as batch:
        batch.add_column(sa.Column("window_id", sa.Integer))
        batch.create_index("ix_pay_escrow_events_window_id", ["window_id"])


def downgrade() -> None:
    with op.batch_alter_table("pay_escrow_events") as batch:
        batch.drop_index("ix_pay_escrow_events_window_id")
        batch.drop_column("window_id")
