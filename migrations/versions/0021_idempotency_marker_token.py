"""Payments: a key's marker carries the token of the request that wrote it.

A request with an Idempotency-Key writes a marker of the key with its operation (payments/
keyed.py) and fills it in with its answer. A marker can be rolled back with its transaction
(pay-by-QR's quote marks the key, its prepare is refused), and another server's request with
the key write one meanwhile: the request then took that marker for its own, filled it in
with its refusal, and would write on under the key. The token (random, per request) says
whose a marker is. Rows written before have none: no request running now wrote them.

Revision ID: 0021_idempotency_marker_token
Revises: 0020_trade_consolidations
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_idempotency_marker_token"
down_revision = "0020_trade_consolidations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pay_idempotency", sa.Column("token", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pay_idempotency") as batch:
        batch.drop_column("token")
