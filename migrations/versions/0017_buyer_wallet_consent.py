"""Trade: a buyer's wallet consents to pay for the buyer's orders.

A hub registers a buyer with a partner wallet's alias of the hub's choosing, and checkout
takes the order's money from that wallet: the wallet now grants (and may revoke) a mandate
for each buyer, and checkout refuses without one. Buyers registered before this migration
start without it (``pending``): nothing showed that their wallets agreed. A consent is given
for the alias as the wallet registered it then (``wallet_consent_alias_at``): registered
again, for a new customer, it needs a new one.

Revision ID: 0017_buyer_wallet_consent
Revises: 0016_open_state_indexes
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_buyer_wallet_consent"
down_revision = "0016_open_state_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trade_buyers") as batch:
        batch.add_column(
            sa.Column("wallet_consent", sa.String(8), nullable=False, server_default="pending")
        )
        batch.add_column(sa.Column("wallet_consent_at", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("wallet_consent_alias_at", sa.BigInteger, nullable=True))
    op.create_index("ix_trade_buyers_wallet", "trade_buyers", ["wallet_participant", "id"])


def downgrade() -> None:
    op.drop_index("ix_trade_buyers_wallet", table_name="trade_buyers")
    with op.batch_alter_table("trade_buyers") as batch:
        batch.drop_column("wallet_consent_alias_at")
        batch.drop_column("wallet_consent_at")
        batch.drop_column("wallet_consent")
