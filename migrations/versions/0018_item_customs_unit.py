"""Trade: an item may declare its customs (supplementary) unit and the quantity of it in one
piece (0.75 ``l`` a bottle of wine, 1 ``pair`` of shoes).

Every order line was declared to customs in pieces, so a tariff line with a duty per litre,
per pair or per square metre (the EU's EUR 0.131 per litre of wine) refused every quote of
such goods (``customs_unit_mismatch``). A line of n pieces is now declared as n x the
per-piece quantity in the item's unit. Both columns are null or both set (the service checks
it); items listed before this migration have neither, and are declared in pieces as before.
The quantity is decimal text, as the code writes it: exact on SQLite and PostgreSQL alike.

Revision ID: 0018_item_customs_unit
Revises: 0017_buyer_wallet_consent
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_item_customs_unit"
down_revision = "0017_buyer_wallet_consent"
branch_labels = None
depends_on = None


COLUMNS = ("customs_unit", "customs_per_piece")


def upgrade() -> None:
    op.add_column("trade_items", sa.Column("customs_unit", sa.String(16), nullable=True))
    op.add_column("trade_items", sa.Column("customs_per_piece", sa.String(32), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN on both (SQLite 3.35+): a batch copy of trade_items would
    # drop the table that trade_stock's foreign key points at, refused once stock exists
    for column in reversed(COLUMNS):
        op.drop_column("trade_items", column)
