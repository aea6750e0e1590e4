"""Payments: an Idempotency-Key's stored answer keeps its response headers.

A replay had only the status and the body, and guessed the media type from the body: a 201
whose JSON had a ``code`` field (a tracking event) came back as ``application/problem+json``,
an SVG as ``text/plain``. The headers the app sent (``content-type`` among them; not
``content-length``, which is the body's) are stored as a JSON list of pairs. Answers stored
before this revision have none, and are replayed as before, the media type inferred.

Revision ID: 0010_idempotency_headers
Revises: 0009_participants_version
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_idempotency_headers"
down_revision = "0009_participants_version"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pay_idempotency", sa.Column("headers", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pay_idempotency") as batch:
        batch.drop_column("headers")
