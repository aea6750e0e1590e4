"""Decision outboxes: rows written in the transaction that makes a decision, appended to the
decision log once it has committed. Each table has ``decision_id``, ``record`` (the decision
as JSON), ``created_at`` and ``claimed_until`` (until when one worker or pass appends it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection


def waiting_and_due(conn: Connection, table: sa.Table, now: int) -> tuple[int, bool]:
    """In a read: how many rows wait, and whether any one's claim has lapsed. A pass that
    finds none due takes no write turn (every pass of every worker did, empty or not, in the
    queue with the payments' writes)."""
    c = table.c
    waiting = int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    if not waiting:
        return 0, False
    due = conn.execute(sa.select(c.decision_id).where(c.claimed_until <= now).limit(1)).first()
    return waiting, due is not None


def claim_due(
    conn: Connection, table: sa.Table, now: int, claim_ns: int, limit: int
) -> tuple[int, Sequence[Any]]:
    """In the caller's write transaction: how many rows wait, and the oldest ``limit`` whose
    claim has lapsed (``decision_id``, ``record``), each claimed until ``now + claim_ns`` so
    that another pass at the same time (of another process or host) skips them."""
    c = table.c
    waiting = int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    rows = conn.execute(
        sa.select(c.decision_id, c.record)
        .where(c.claimed_until <= now)
        .order_by(c.created_at, c.decision_id)
        .limit(limit)
    ).all()
    if rows:
        conn.execute(
            sa.update(table)
            .where(c.decision_id.in_([r.decision_id for r in rows]))
            .values(claimed_until=now + claim_ns)
        )
    return waiting, rows
