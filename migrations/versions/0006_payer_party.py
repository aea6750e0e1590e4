"""Quotes and transfers record the payer party (Mojaloop's payer: its alias at the payer's
participant), which fraud screening uses.

Revision ID: 0006_payer_party
Revises: 0005_escrow_window
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_payer_party"
down_revision = "0005_escrow_window"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("pay_quotes", "pay_transfers"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("payer_alias", sa.String(80)))


def downgrade() -> None:
    for table in ("pay_quotes", "pay_transfers"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("payer_alias")
