"""Payments: a waiting verdict is claimed before it is appended to the decision log.

Two deadline passes at once (two hosts, an operator's beside the server's) each appended the
decision outbox's rows they read: a verdict was logged twice. A row now says until when one
worker or pass appends it (``claimed_until``: the reviewing worker's, for a minute after the
review; then a pass's, claimed in a write). Rows waiting already are claimable at once.

Revision ID: 0027_decision_outbox_claims
Revises: 0026_escrow_managed_by
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027_decision_outbox_claims"
down_revision = "0026_escrow_managed_by"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pay_decision_outbox") as batch:
        batch.add_column(sa.Column("claimed_until", sa.BigInteger, nullable=True))
    op.execute("UPDATE pay_decision_outbox SET claimed_until = created_at")
    with op.batch_alter_table("pay_decision_outbox") as batch:
        batch.alter_column("claimed_until", existing_type=sa.BigInteger, nullable=False)
        batch.drop_index("ix_pay_decision_outbox_created_at")
        batch.create_index("ix_pay_decision_outbox_claimed_until", ["claimed_until"])


def downgrade() -> None:
    with op.batch_alter_table("pay_decision_outbox") as batch:
        batch.drop_index("ix_pay_decision_outbox_claimed_until")
        batch.create_index("ix_pay_decision_outbox_created_at", ["created_at"])
        batch.drop_column("claimed_until")
