"""Payments: transfers are numbered in the order they are written (``seq``).

``GET /v1/transfers`` paged in transfer id order, and ids are the payer's (UUIDs): a
transfer written between two pages with an id below the cursor was never listed, so a
participant without an endpoint, which reads its transfers to learn of new ones, missed
about half of the payments prepared to it (they expired unheard). Pages now follow ``seq``,
assigned under the scheme's write lock, so a transfer written after a page always comes
after it. Existing transfers are numbered in (created_at, id) order.

Revision ID: 0031_transfer_arrival_seq
Revises: 0030_quote_payee_registration
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0031_transfer_arrival_seq"
down_revision = "0030_quote_payee_registration"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pay_transfers", sa.Column("seq", sa.BigInteger, nullable=True))
    op.execute(
        "UPDATE pay_transfers SET seq = (SELECT COUNT(*) FROM pay_transfers o"
        " WHERE o.created_at < pay_transfers.created_at"
        " OR (o.created_at = pay_transfers.created_at AND o.id <= pay_transfers.id))"
    )
    op.create_index("ix_pay_transfers_seq", "pay_transfers", ["seq"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_pay_transfers_seq", "pay_transfers")
    with op.batch_alter_table("pay_transfers") as batch:
        batch.drop_column("seq")
