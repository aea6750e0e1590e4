"""Trade: each consolidation step is recorded by its id, so that its retry is answered.

A consolidation (EXD, EMC or EMD for many parcels at once) left only its parcels' tracking
events, with its id in their notes: its retry after a lost answer ran it again (and was
refused, "EXD cannot follow EXD", for a step that was done), and the same id could be used
again for other parcels. A row per step (id, code) keeps what it was asked: the same request
again is answered with the events it recorded; another with its id is refused. Steps before
this migration have no row.

Revision ID: 0020_trade_consolidations
Revises: 0019_participant_status
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_trade_consolidations"
down_revision = "0019_participant_status"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trade_consolidations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("code", sa.String(3), primary_key=True),
        sa.Column("hub_id", sa.String(64), nullable=False),
        sa.Column("order_ids", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("trade_consolidations")
