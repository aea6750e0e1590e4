"""Payments: a bulk item's transfer keeps the payee alias it named.

A resent bulk is answered item by item by transfer id (ADR 0009): an item is the same as the
one paid if it names the same payee. The row kept only the payee's participant, so an alias
that moved to another participant since (a ported number) made a paid item look like
another request, and an alias that named nobody could not be told from the one paid. Bulk
rows now keep the alias (``TYPE:value``, normalised, as ``payer_alias`` keeps the payer's);
a quoted transfer's payee alias is on its quote, and its row leaves this NULL, as do rows
written before this revision.

Revision ID: 0011_transfer_payee_alias
Revises: 0010_idempotency_headers
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_transfer_payee_alias"
down_revision = "0010_idempotency_headers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pay_transfers", sa.Column("payee_alias", sa.String(80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pay_transfers") as batch:
        batch.drop_column("payee_alias")
