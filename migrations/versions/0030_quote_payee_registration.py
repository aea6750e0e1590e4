"""Payments: a quote records when the payee alias it priced was registered.

A prepare refuses a quote whose payee alias was removed and registered again since (a new
customer). It compared the alias's registration time with the quote's creation time: two
clock readings, possibly another worker's or host's, so a skew or a clock stepped back could
refuse every quote of a freshly registered alias or miss a re-registration. The quote now
keeps the registration's own stamp, compared as recorded. Null for quotes before this
revision (the old comparison still answers those).

Revision ID: 0030_quote_payee_registration
Revises: 0029_outbox_resource_id
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030_quote_payee_registration"
down_revision = "0029_outbox_resource_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pay_quotes", sa.Column("payee_registered_at", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pay_quotes") as batch:
        batch.drop_column("payee_registered_at")
