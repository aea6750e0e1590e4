"""Payments: a reviewer's verdict is logged after its transaction commits, through an outbox.

The verdict on a held transfer was appended to the decision log inside the review's
transaction, before its COMMIT: a crash or a failed commit between the two left a logged
verdict that never took effect. The decisions are now written here in that transaction and
appended to the log once it has committed (the deadline pass appends what a crash left).

Revision ID: 0025_decision_outbox
Revises: 0024_idempotency_retention
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025_decision_outbox"
down_revision = "0024_idempotency_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pay_decision_outbox",
        sa.Column("decision_id", sa.String(32), primary_key=True),
        sa.Column("transfer_id", sa.String(64), nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_pay_decision_outbox_created_at", "pay_decision_outbox", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_pay_decision_outbox_created_at", table_name="pay_decision_outbox")
    op.drop_table("pay_decision_outbox")
