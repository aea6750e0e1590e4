"""Payments: a notification the dispatcher gave up on.

Each participant's notices are delivered in order, a later one waiting while an earlier one
is undelivered; a notice its endpoint always refused (a 400 for a body it will not take)
was retried hourly for ever and held every later one back. It is now abandoned (it stays
readable by the participant, ``GET /v1/notifications``) after a refusal that retrying cannot
change, or after ``ATTEMPTS_MAX`` failed attempts; ``abandoned_at`` says when.

Revision ID: 0014_outbox_abandoned
Revises: 0013_request_nonces
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_outbox_abandoned"
down_revision = "0013_request_nonces"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pay_outbox", sa.Column("abandoned_at", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pay_outbox") as batch:
        batch.drop_column("abandoned_at")
