"""Payments: a version of the participants, bumped by triggers on every change.

The participants here are their rows, their currencies (caps, accounts) and their callback
endpoints.

Each API worker keeps the participants it has read (with their currencies, caps and state) and
checks this one number, once per transaction, instead of reading a participant again for
every check of a payment. Triggers, not the scheme's code, bump it: a change made by any path,
another process or an operator's SQL, is seen by every cache.

Revision ID: 0009_participants_version
Revises: 0008_ledger_segments
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_participants_version"
down_revision = "0008_ledger_segments"
branch_labels = None
depends_on = None

TABLES = ("pay_participants", "pay_participant_currencies", "pay_endpoints")
EVENTS = ("INSERT", "UPDATE", "DELETE")
BUMP = "UPDATE pay_versions SET version = version + 1 WHERE name = 'participants'"


def upgrade() -> None:
    op.create_table(
        "pay_versions",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO pay_versions (name, version) VALUES ('participants', 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION pay_participants_changed() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION pay_participants_changed()"
            )
        return
    for table in TABLES:  # SQLite: one trigger per event, per row
        for event in EVENTS:
            op.execute(
                f"CREATE TRIGGER {table}_version_{event.lower()} AFTER {event} ON {table} "
                f"BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER {table}_version ON {table}")
        op.execute("DROP FUNCTION pay_participants_changed()")
    else:
        for table in TABLES:
            for event in EVENTS:
                op.execute(f"DROP TRIGGER {table}_version_{event.lower()}")
    op.drop_table("pay_versions")
