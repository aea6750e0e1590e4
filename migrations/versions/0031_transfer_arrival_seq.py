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
    # One numbering pass (a window over the table, joined back by id): counting, for each
    # row, the rows before it read the table once a row, hours on a scheme's millions.
    # UPDATE ... FROM: PostgreSQL, and SQLite from 3.33.
    op.execute(
        "UPDATE pay_transfers SET seq = r.n FROM (SELECT id, ROW_NUMBER() OVER"
        " (ORDER BY created_at, id) AS n FROM pay_transfers) AS r WHERE r.id = pay_transfers.id"
    )
    op.create_index("ix_pay_transfers_seq", "pay_transfers", ["seq"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_pay_transfers_seq", "pay_transfers")
    with op.batch_alter_table("pay_transfers") as batch:
        batch.drop_column("seq")
