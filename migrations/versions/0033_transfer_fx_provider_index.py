"""Payments: transfers are found by their FX provider.

A cross-currency transfer's FX provider is a party to it (its liquidity runs the target
leg): it reads the transfer and lists the transfers it provides (``GET /v1/transfers``).
The list's condition (payer, payee or FX provider) is answered from one index per column;
without one on ``fx_provider`` every list, each participant's, read the whole table.

Revision ID: 0033_transfer_fx_provider_index
Revises: 0032_dynamic_qr_payments
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0033_transfer_fx_provider_index"
down_revision = "0032_dynamic_qr_payments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_pay_transfers_fx_provider", "pay_transfers", ["fx_provider"])


def downgrade() -> None:
    op.drop_index("ix_pay_transfers_fx_provider", "pay_transfers")
