"""Payments: a notice's resource id holds a participant id and a sequence number.

A participant's status-change notice names ``<participant id>/<change number>``: with a
participant id of 63-64 characters (64 are allowed), or 62 from the tenth change on, it did not
fit ``String(64)``; PostgreSQL refused it, and the suspension or resumption failed with it
(SQLite does not enforce lengths). 64 + 1 + 20 digits fit in 128.

Revision ID: 0029_outbox_resource_id
Revises: 0028_lending_decision_outbox
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029_outbox_resource_id"
down_revision = "0028_lending_decision_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pay_outbox") as batch:
        batch.alter_column(
            "resource_id", existing_type=sa.String(64), type_=sa.String(128), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("pay_outbox") as batch:
        batch.alter_column(
            "resource_id", existing_type=sa.String(128), type_=sa.String(64), nullable=False
        )
