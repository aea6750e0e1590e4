"""Ledger: ledgers, accounts, transfers, pending, failed ids, history, meta.

Revision ID: 0001_ledger
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid
ID = sa.LargeBinary(16)


def _balances() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column(name, sa.BigInteger, nullable=False)
        for name in ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
    ]


def upgrade() -> None:
    op.create_table(
        "ledger_ledgers",
        sa.Column("ledger", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
    )
    op.create_table(
        "ledger_accounts",
        sa.Column("timestamp", TS, primary_key=True, autoincrement=False),
        sa.Column("id", ID, nullable=False, unique=True),
        sa.Column("ledger", sa.BigInteger, sa.ForeignKey("ledger_ledgers.ledger"), nullable=False),
        sa.Column("code", sa.Integer, nullable=False),
        sa.Column("flags", sa.Integer, nullable=False),
        sa.Column("user_data_128", ID),
        sa.Column("user_data_64", sa.BigInteger, nullable=False),
        sa.Column("user_data_32", sa.BigInteger, nullable=False),
        *_balances(),
        sa.CheckConstraint(
            "debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 "
            "AND credits_posted >= 0",
            name="ck_ledger_accounts_balances_non_negative",
        ),
    )
    op.create_index("ix_ledger_accounts_ledger_code", "ledger_accounts", ["ledger", "code"])
    if op.get_bind().dialect.name == "postgresql":
        # Balances are rewritten every batch: leave room on each page for HOT updates.
        op.execute("ALTER TABLE ledger_accounts SET (fillfactor = 50)")
    op.create_table(
        "ledger_transfers",
        sa.Column("timestamp", TS, primary_key=True, autoincrement=False),
        sa.Column("id", ID, nullable=False, unique=True),
        sa.Column("debit_account_id", ID, nullable=False),
        sa.Column("credit_account_id", ID, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("pending_id", ID),
        sa.Column("user_data_128", ID),
        sa.Column("user_data_64", sa.BigInteger, nullable=False),
        sa.Column("user_data_32", sa.BigInteger, nullable=False),
        sa.Column("timeout", sa.BigInteger, nullable=False),
        sa.Column("ledger", sa.BigInteger, nullable=False),
        sa.Column("code", sa.Integer, nullable=False),
        sa.Column("flags", sa.Integer, nullable=False),
        sa.CheckConstraint("amount >= 0", name="ck_ledger_transfers_amount_non_negative"),
    )
    # Per-account history: runs of transfer timestamps per account, merged from the newest
    # transfers every few tens of thousands (ADR 0002) instead of two random-access indexes.
    op.create_table(
        "ledger_postings",
        sa.Column("account_id", ID, primary_key=True),
        sa.Column("last_timestamp", sa.BigInteger, primary_key=True),
        sa.Column("first_timestamp", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("timestamps", sa.LargeBinary, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "ledger_pending",
        sa.Column("timestamp", TS, primary_key=True, autoincrement=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("resolved_timestamp", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_ledger_pending_due",
        "ledger_pending",
        ["expires_at"],
        sqlite_where=sa.text("status = 'pending' AND expires_at > 0"),
        postgresql_where=sa.text("status = 'pending' AND expires_at > 0"),
    )
    op.create_table(
        "ledger_failed_transfers",
        sa.Column("id", ID, primary_key=True),
        sa.Column("result", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ledger_account_history",
        sa.Column("account_id", ID, primary_key=True),
        sa.Column("timestamp", sa.BigInteger, primary_key=True),
        *_balances(),
    )
    meta = op.create_table(
        "ledger_meta",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("last_timestamp", sa.BigInteger, nullable=False),
        sa.Column("max_transfer_id", ID, nullable=False),
        sa.Column("indexed_upto", sa.BigInteger, nullable=False),
        sa.Column("unindexed_count", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_ledger_meta_single_row"),
    )
    op.bulk_insert(
        meta,
        [
            {
                "id": 1,
                "version": 0,
                "last_timestamp": 0,
                "max_transfer_id": bytes(16),
                "indexed_upto": 0,
                "unindexed_count": 0,
            }
        ],
    )


def downgrade() -> None:
    for table in (
        "ledger_meta",
        "ledger_account_history",
        "ledger_postings",
        "ledger_failed_transfers",
        "ledger_pending",
        "ledger_transfers",
        "ledger_accounts",
        "ledger_ledgers",
    ):
        op.drop_table(table)
