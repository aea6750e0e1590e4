"""Payments: business ids kept as the directory now writes them, upper case and one space
between words (payments/aliases.py ``business_id``).

A business id registered before was kept as typed: "acme ltd 12345" and "ACME  Ltd 12345"
were two parties, possibly at two participants. Lookups now fold the id typed, so one
registered in another spelling could no longer be found or removed by its participant. Each
is rewritten to its folded form, unless another registration already holds that form (two
spellings of one business at once): those stay as they were, reported in the log, for the
operator to settle with the participants. Where two spellings fold alike and neither is folded
yet, the one registered first takes the folded form (then the lower code points: never the
database's collation, which on PostgreSQL gave it to another participant than on SQLite).
Nothing is deleted; the downgrade keeps the folded forms (the spelling each was typed in is
not kept, and names the same business).

Revision ID: 0022_business_alias_folded
Revises: 0021_idempotency_marker_token
Create Date: 2026-12-03
"""

from __future__ import annotations

import logging
import re

import sqlalchemy as sa
from alembic import op

revision = "0022_business_alias_folded"
down_revision = "0021_idempotency_marker_token"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

_aliases = sa.table(
    "pay_aliases",
    sa.column("alias_type", sa.String),
    sa.column("alias", sa.String),
    sa.column("participant_id", sa.String),
    sa.column("created_at", sa.BigInteger),
)


def _folded(alias: str) -> str:  # as payments/aliases.py business_id, frozen here
    return re.sub(" +", " ", alias).upper()


def upgrade() -> None:
    conn = op.get_bind()
    found = conn.execute(
        sa.select(_aliases.c.created_at, _aliases.c.alias, _aliases.c.participant_id).where(
            _aliases.c.alias_type == "BUSINESS"
        )
    ).all()
    rows = [(alias, participant) for _, alias, participant in sorted(found)]
    held = {alias for alias, _ in rows}
    for alias, participant in rows:
        folded = _folded(alias)
        if folded == alias:
            continue
        if folded in held:
            log.warning(
                "business id %r (%s) left as it is: %r is registered too; the participants "
                "hold two spellings of one business",
                alias,
                participant,
                folded,
            )
            continue
        conn.execute(
            sa.update(_aliases)
            .where(_aliases.c.alias_type == "BUSINESS", _aliases.c.alias == alias)
            .values(alias=folded)
        )
        held.discard(alias)
        held.add(folded)


def downgrade() -> None:
    pass  # the folded form names the same business; the spelling typed was not kept
