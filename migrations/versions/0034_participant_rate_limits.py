"""Payments: a participant's own request rate limit (``pay_participant_rate_limits``).

The API limits each participant's requests (``ENTREPOT_RATE_LIMIT``, ADR 0016), one limit for
every participant. A large bank sends more than a small wallet, and an operator throttling a
participant that misbehaves must not restart every server nor throttle everyone: the
operator sets a participant's own limit here, which every API worker applies within a
second (no restart). Who set it and when is kept with it.

Revision ID: 0034_participant_rate_limits
Revises: 0033_transfer_fx_provider_index
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0034_participant_rate_limits"
down_revision = "0033_transfer_fx_provider_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pay_participant_rate_limits",
        sa.Column("participant_id", sa.String(64), primary_key=True),
        sa.Column("per_s", sa.Float, nullable=False),
        sa.Column("burst", sa.Integer, nullable=False),
        sa.Column("set_by", sa.String(64), nullable=False),
        sa.Column("set_at", sa.BigInteger, nullable=False),
        # what the API reads with every request of the participant's: never a limit it
        # cannot apply (rate_limits.check_rate_limit's bounds)
        sa.CheckConstraint("per_s >= 0.01 AND per_s <= 1000000", name="ck_rate_limit_per_s"),
        sa.CheckConstraint("burst >= 1 AND burst <= 1000000", name="ck_rate_limit_burst"),
    )


def downgrade() -> None:
    op.drop_table("pay_participant_rate_limits")
