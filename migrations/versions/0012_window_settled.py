"""Payments: what settling a window moved for each participant.

A window's net creditor could spend what it was owed between the window's close and its
settlement (its position counts it until then); settling then could not take it back out of
the position, the whole settlement failed, and no later window could close. A creditor is
now paid what its position can give back, and the rest stays in its position, where the next
window's net counts it again. ``settled`` records what was moved (NULL until the window is
settled, and for windows settled before this revision, which moved their whole nets).

Revision ID: 0012_window_settled
Revises: 0011_transfer_payee_alias
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_window_settled"
down_revision = "0011_transfer_payee_alias"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pay_window_positions", sa.Column("settled", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pay_window_positions") as batch:
        batch.drop_column("settled")
