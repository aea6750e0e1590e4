"""Lending: an offer's or a review's decision is logged after its transaction commits.

Credit decisions were appended to the decision log before their transaction's COMMIT: a crash
or a failed commit between the two left a logged decision that never took effect (an offer
that was never stored, a review that never happened). They are now written here in that
transaction and appended to the log once it has committed; the deadline pass appends what a
crash or a refusing log left, each row claimed first (``claimed_until``), as the payment
scheme's reviewers' verdicts are (0025, 0027).

Revision ID: 0028_lending_decision_outbox
Revises: 0027_decision_outbox_claims
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028_lending_decision_outbox"
down_revision = "0027_decision_outbox_claims"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lend_decision_outbox",
        sa.Column("decision_id", sa.String(32), primary_key=True),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("claimed_until", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_lend_decision_outbox_claimed_until", "lend_decision_outbox", ["claimed_until"]
    )


def downgrade() -> None:
    op.drop_index("ix_lend_decision_outbox_claimed_until", table_name="lend_decision_outbox")
    op.drop_table("lend_decision_outbox")
