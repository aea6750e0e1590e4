"""Payments: Idempotency-Key answers are kept for a retention period, then purged.

Every keyed write's answer (its whole response text) and marker was kept for ever; the
deadline pass now deletes those older than the retention period (``keyed.purge_answers``),
found through this index on when they were written.

Revision ID: 0024_idempotency_retention
Revises: 0023_quote_ttl
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0024_idempotency_retention"
down_revision = "0023_quote_ttl"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_pay_idempotency_created_at", "pay_idempotency", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_pay_idempotency_created_at", table_name="pay_idempotency")
