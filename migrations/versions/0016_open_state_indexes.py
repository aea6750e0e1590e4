"""Partial indexes of the rows still open: payments' quotes and transfers still open, escrows
still held, the settlement window open now (unique: one at most); trade's payouts not paid and
disputes not resolved. The deadline pass, a quote's acceptance and every commit read those rows
only, not every one the scheme ever made (full scans, most of them under the write lock).

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
    ("ux_pay_settlement_windows_open", "pay_settlement_windows", ["state"], "state = 'OPEN'"),
    ("ix_trade_payouts_unpaid", "trade_payouts", ["transfer_id"], "state != 'PAID'"),
    ("ix_trade_disputes_open", "trade_disputes", ["id"], "state != 'RESOLVED'"),
)


def upgrade() -> None:
    for name, table, columns, where in INDEXES:
        op.create_index(
            name,
            table,
            columns,
            unique=name.startswith("ux_"),
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    for name, table, _, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
