"""Payments: partial indexes of the quotes and transfers still open and the escrows still
held, so that the deadline pass and a quote's acceptance read those rows only, not every quote
and transfer the scheme ever made (a full scan under the write lock, every pass).

Revision ID: 0016_open_state_indexes
Revises: 0015_escrow_event_window_bigint
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_open_state_indexes"
down_revision = "0015_escrow_event_window_bigint"
branch_labels = None
depends_on = None

# (index, table, columns, the rows it holds): as in entrepot.payments.store, written out here
# so that this migration does not change if the module does
INDEXES = (
    ("ix_pay_quotes_open_expiry", "pay_quotes", ["expires_at"], "state IN ('QUOTED', 'ACCEPTED')"),
    (
        "ix_pay_quotes_accepted",
        "pay_quotes",
        ["payer_participant", "source_currency"],
        "state = 'ACCEPTED'",
    ),
    (
        "ix_pay_transfers_open_expiry",
        "pay_transfers",
        ["expires_at"],
        "state IN ('RESERVED', 'HOLD')",
    ),
    ("ix_pay_escrows_held_deadline", "pay_escrows", ["deadline"], "state = 'HELD'"),
)


def upgrade() -> None:
    for name, table, columns, where in INDEXES:
        op.create_index(
            name,
            table,
            columns,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    for name, table, _, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
