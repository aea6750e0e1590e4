"""Merchant lending: partner banks' credit policies, offers and declines with their reasons and
data, loans (their balances live on the ledger), delinquency events, repayments and withholdings
from payouts, contests and their reviews.

Revision ID: 0004_lending
Revises: 0003_trade
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_lending"
down_revision = "0003_trade"
branch_labels = None
depends_on = None

# A frozen copy of the tables as this revision creates them (src/entrepot/risk/lending/store.py
# holds the current ones; later changes are new revisions).
metadata = sa.MetaData()
ACCOUNT_ID = sa.LargeBinary(16)
ID = sa.String(64)

policies = sa.Table(
    "lend_policies",
    metadata,
    sa.Column("lender_id", ID, primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("rules", sa.Text, nullable=False),
    sa.Column("set_at", sa.BigInteger, nullable=False),
)
lender_accounts = sa.Table(
    "lend_lender_accounts",
    metadata,
    sa.Column("lender_id", ID, primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("ledger", sa.BigInteger, nullable=False),
    sa.Column("funding_account", ACCOUNT_ID, nullable=False),
    sa.Column("fee_account", ACCOUNT_ID, nullable=False),
)
offers = sa.Table(
    "lend_offers",
    metadata,
    sa.Column("offer_id", ID, primary_key=True),
    sa.Column("lender_id", ID, nullable=False, index=True),
    sa.Column("merchant_id", ID, nullable=False, index=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("limit_minor", sa.BigInteger, nullable=False),
    sa.Column("principal_minor", sa.BigInteger, nullable=False),
    sa.Column("fee_minor", sa.BigInteger, nullable=False),
    sa.Column("terms", sa.Text, nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("history", sa.Text, nullable=False),
    sa.Column("policy_version", sa.Integer, nullable=False),
    sa.Column("model_version", sa.String(200), nullable=False),
    sa.Column("score", sa.String(32)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("requested_by", ID, nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("supersedes", ID),
    sa.Column("log_id", sa.String(32), nullable=False),
)
loans = sa.Table(
    "lend_loans",
    metadata,
    sa.Column("loan_id", ID, primary_key=True),
    sa.Column("lender_id", ID, nullable=False, index=True),
    sa.Column("merchant_id", ID, nullable=False, index=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("ledger", sa.BigInteger, nullable=False),
    sa.Column("receivable_account", ACCOUNT_ID, nullable=False, unique=True),
    sa.Column("principal_minor", sa.BigInteger, nullable=False),
    sa.Column("fee_minor", sa.BigInteger, nullable=False),
    sa.Column("terms", sa.Text, nullable=False),
    sa.Column("disbursed_at", sa.BigInteger, nullable=False),
    sa.Column("due_at", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("state_since", sa.BigInteger, nullable=False),
    sa.Column("last_repayment_at", sa.BigInteger),
    # "<lender>/<merchant>" while the loan is open, NULL once repaid: the database itself
    # refuses a second open loan per merchant and lender (NULLs never collide).
    sa.Column("open_key", sa.String(130), unique=True),
)
loan_events = sa.Table(
    "lend_loan_events",
    metadata,
    sa.Column("loan_id", ID, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("from_state", sa.String(16)),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", ID, nullable=False),
)
repayments = sa.Table(
    "lend_repayments",
    metadata,
    sa.Column("reference", ID, primary_key=True),
    sa.Column("loan_id", ID, primary_key=True),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("actor", ID, nullable=False),
    sa.Column("transfer_id", ACCOUNT_ID, nullable=False),
)
withholdings = sa.Table(
    "lend_withholdings",
    metadata,
    sa.Column("reference", ID, primary_key=True),
    sa.Column("merchant_id", ID, nullable=False, index=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("payout_minor", sa.BigInteger, nullable=False),
    sa.Column("withheld_minor", sa.BigInteger, nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
)
contests = sa.Table(
    "lend_contests",
    metadata,
    sa.Column("offer_id", ID, primary_key=True),
    sa.Column("merchant_id", ID, nullable=False, index=True),
    sa.Column("lender_id", ID, nullable=False, index=True),
    sa.Column("statement", sa.Text, nullable=False),
    sa.Column("contested_at", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reviewer_id", ID),
    sa.Column("reviewed_at", sa.BigInteger),
    sa.Column("review_reason", sa.Text),
    sa.Column("new_principal_minor", sa.BigInteger),
    sa.Column("new_offer_id", ID),
    sa.Column("log_id", sa.String(32)),
)


def upgrade() -> None:
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    metadata.drop_all(op.get_bind())
