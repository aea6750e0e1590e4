"""Ledger: plain batches stored as packed segments, balances checkpointed (ADR 0003).

Revision ID: 0008_ledger_segments
Revises: 0007_notifications
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_ledger_segments"
down_revision = "0007_notifications"
branch_labels = None
depends_on = None

ID = sa.LargeBinary(16)
TS = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid


def upgrade() -> None:
    op.create_table(
        "ledger_transfer_segments",
        sa.Column("first_timestamp", TS, primary_key=True, autoincrement=False),
        sa.Column("last_timestamp", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("min_id", ID, nullable=False, unique=True),
        sa.Column("max_id", ID, nullable=False),
        sa.Column("accounts", sa.LargeBinary, nullable=False),
        sa.Column("debit_index", sa.LargeBinary, nullable=False),
        sa.Column("credit_index", sa.LargeBinary, nullable=False),
        sa.Column("ids", sa.LargeBinary, nullable=False),
        sa.Column("amounts", sa.LargeBinary, nullable=False),
        sa.Column("ledgers", sa.LargeBinary, nullable=False),
        sa.Column("codes", sa.LargeBinary, nullable=False),
        sa.Column("user_data_128", sa.LargeBinary),
        sa.Column("user_data_64", sa.LargeBinary),
        sa.Column("user_data_32", sa.LargeBinary),
    )
    for column in (
        "unindexed_plain",
        "segments_upto",
        "balances_upto",
        "unindexed_segments",
        "unflushed_segments",
    ):
        op.add_column(
            "ledger_meta", sa.Column(column, sa.BigInteger, nullable=False, server_default="0")
        )


def downgrade() -> None:
    # Transfers in segments exist nowhere else, and their balances may not be in the accounts'
    # rows yet: dropping the table would lose acknowledged transfers. Refuse.
    segments = (
        op.get_bind().execute(sa.text("SELECT COUNT(*) FROM ledger_transfer_segments")).scalar_one()
    )
    if segments:
        raise RuntimeError(
            f"cannot downgrade below 0008: {segments} segment(s) of plain transfers would be "
            "lost (the older schema stores every transfer as a row); restore a backup instead"
        )
    with op.batch_alter_table("ledger_meta") as batch:
        batch.drop_column("unflushed_segments")
        batch.drop_column("unindexed_segments")
        batch.drop_column("balances_upto")
        batch.drop_column("segments_upto")
        batch.drop_column("unindexed_plain")
    op.drop_table("ledger_transfer_segments")
