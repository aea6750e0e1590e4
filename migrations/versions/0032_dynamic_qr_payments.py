"""Payments: a dynamic QR is paid once (``pay_qr_payments``).

A dynamic QR (EMVCo tag 01 = 12) is one payment of its amount, yet ``POST /v1/qr/pay`` paid
it again and again, each a RESERVED transfer to the merchant: a payer scanning twice, or a
receipt's QR photographed, paid the sale twice. Each dynamic QR paid is recorded here by the
digest of its text, with the transfer paying it; a second payment is refused while that
transfer is not aborted.

Revision ID: 0032_dynamic_qr_payments
Revises: 0031_transfer_arrival_seq
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0032_dynamic_qr_payments"
down_revision = "0031_transfer_arrival_seq"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pay_qr_payments",
        sa.Column("qr_digest", sa.String(64), primary_key=True),
        sa.Column("transfer_id", sa.String(64), nullable=False),
        sa.Column("paid_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pay_qr_payments")
