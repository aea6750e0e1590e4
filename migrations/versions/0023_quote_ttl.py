"""Payments: a quote keeps the expiry its request asked for.

A cross-currency quote now expires no later than the FX rate it is priced at (a rate posted
for 5 s bound its provider for as long as a payer's quote asked, up to a day). Its
``expires_at`` may then be sooner than the request's ``expirySeconds``, which a resend of the
request is compared with: ``ttl`` keeps it. Quotes before have none (their expiry is the
one asked for).

Revision ID: 0023_quote_ttl
Revises: 0022_business_alias_folded
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023_quote_ttl"
down_revision = "0022_business_alias_folded"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pay_quotes", sa.Column("ttl", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pay_quotes") as batch:
        batch.drop_column("ttl")
