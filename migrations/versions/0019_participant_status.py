"""Payments: each suspension and resumption of a participant is recorded, with its reason.

The operator suspended a bank or wallet (it could neither send nor receive) with one flag
and no record: not when, not by whom, not why, and the participant was not told. Each change
of the flag is now a row here (the reason the operator gave, the actor, the time), which the
participant and the operator read back. Participants suspended before this migration have no
row: nothing recorded why.

Revision ID: 0019_participant_status
Revises: 0018_item_customs_unit
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_participant_status"
down_revision = "0018_item_customs_unit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pay_participant_status",
        sa.Column("participant_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("reason", sa.String(200)),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pay_participant_status")
