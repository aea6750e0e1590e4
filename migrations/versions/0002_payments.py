"""Payment scheme: participants, directory, FX rates, quotes, transfers, escrows, settlement
windows, API credentials and idempotency records.

Revision ID: 0002_payments
Revises: 0001_ledger
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_payments"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None

ACCOUNT_ID = sa.LargeBinary(16)

TABLES = (
    "pay_idempotency",
    "pay_credentials",
    "pay_window_positions",
    "pay_settlement_windows",
    "pay_escrow_events",
    "pay_escrows",
    "pay_transfers",
    "pay_quotes",
    "pay_fx_rates",
    "pay_aliases",
    "pay_scheme_accounts",
    "pay_participant_currencies",
    "pay_participants",
)


def upgrade() -> None:
    op.create_table(
        "pay_participants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("bic", sa.String(11)),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pay_participant_currencies",
        sa.Column("participant_id", sa.String(64), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("ledger", sa.BigInteger, nullable=False),
        sa.Column("position_account", ACCOUNT_ID, nullable=False),
        sa.Column("settlement_account", ACCOUNT_ID, nullable=False),
        sa.Column("net_debit_cap", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pay_scheme_accounts",
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("account_id", ACCOUNT_ID, nullable=False),
    )
    op.create_table(
        "pay_aliases",
        sa.Column("alias_type", sa.String(16), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("participant_id", sa.String(64), nullable=False, index=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pay_fx_rates",
        sa.Column("provider_id", sa.String(64), primary_key=True),
        sa.Column("source_currency", sa.String(3), primary_key=True),
        sa.Column("target_currency", sa.String(3), primary_key=True),
        sa.Column("rate", sa.String(64), nullable=False),
        sa.Column("spread_bps", sa.Integer, nullable=False),
        sa.Column("valid_until", sa.BigInteger, nullable=False),
        sa.Column("posted_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pay_quotes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("payer_participant", sa.String(64), nullable=False, index=True),
        sa.Column("payee_participant", sa.String(64), nullable=False),
        sa.Column("payee_alias_type", sa.String(16), nullable=False),
        sa.Column("payee_alias", sa.String(64), nullable=False),
        sa.Column("amount_type", sa.String(8), nullable=False),
        sa.Column("source_currency", sa.String(3), nullable=False),
        sa.Column("target_currency", sa.String(3), nullable=False),
        sa.Column("source_amount", sa.BigInteger, nullable=False),
        sa.Column("fee", sa.BigInteger, nullable=False),
        sa.Column("target_amount", sa.BigInteger, nullable=False),
        sa.Column("fx_provider", sa.String(64)),
        sa.Column("fx_rate", sa.String(64)),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pay_transfers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("quote_id", sa.String(64), nullable=False, unique=True),
        sa.Column("payer_participant", sa.String(64), nullable=False, index=True),
        sa.Column("payee_participant", sa.String(64), nullable=False, index=True),
        sa.Column("source_currency", sa.String(3), nullable=False),
        sa.Column("target_currency", sa.String(3), nullable=False),
        sa.Column("source_amount", sa.BigInteger, nullable=False),
        sa.Column("fee", sa.BigInteger, nullable=False),
        sa.Column("target_amount", sa.BigInteger, nullable=False),
        sa.Column("fx_provider", sa.String(64)),
        sa.Column("fx_rate", sa.String(64)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("window_id", sa.BigInteger, index=True),
        sa.Column("reason", sa.String(200)),
        sa.Column("note", sa.String(200)),
    )
    op.create_table(
        "pay_escrows",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("payer_participant", sa.String(64), nullable=False, index=True),
        sa.Column("payee_participant", sa.String(64), nullable=False, index=True),
        sa.Column("controller", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("released", sa.BigInteger, nullable=False),
        sa.Column("refunded", sa.BigInteger, nullable=False),
        sa.Column("purpose", sa.String(200), nullable=False),
        sa.Column("deadline", sa.BigInteger, nullable=False),
        sa.Column("on_deadline", sa.String(8), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pay_escrow_events",
        sa.Column("escrow_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pay_settlement_windows",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("opened_at", sa.BigInteger, nullable=False),
        sa.Column("closed_at", sa.BigInteger),
        sa.Column("settled_at", sa.BigInteger),
    )
    op.create_table(
        "pay_window_positions",
        sa.Column("window_id", sa.BigInteger, primary_key=True),
        sa.Column("participant_id", sa.String(64), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("sent", sa.BigInteger, nullable=False),
        sa.Column("received", sa.BigInteger, nullable=False),
        sa.Column("net", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pay_credentials",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("participant_id", sa.String(64), nullable=False, index=True),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("public_key", sa.String(128)),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pay_idempotency",
        sa.Column("caller", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
