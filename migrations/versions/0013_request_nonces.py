"""Payments: the nonces of signed requests, kept while their timestamp is accepted.

A request signed with a credential's Ed25519 key covered only its method, path and body: a
captured request could be sent again at any time (an old FX rate posted again). A signed
request now carries a timestamp (``X-Entrepot-Date``, accepted within 300 s of the server's
clock) and a nonce (``X-Entrepot-Nonce``), both signed; the nonce is recorded here, one row
per credential and nonce, until the timestamp is too old to be accepted anyway, and a second
request with it is refused. In the database, not in a worker's memory or a file under the
home, so that every worker and every server sharing the database refuses the replay.

Revision ID: 0013_request_nonces
Revises: 0012_window_settled
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_request_nonces"
down_revision = "0012_window_settled"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pay_request_nonces",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.BigInteger, nullable=False),  # unix seconds
    )
    op.create_index("ix_pay_request_nonces_expires_at", "pay_request_nonces", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_pay_request_nonces_expires_at", "pay_request_nonces")
    op.drop_table("pay_request_nonces")
