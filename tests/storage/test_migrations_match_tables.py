"""The migrations build the tables the code declares (``*/store.py``'s SQLAlchemy tables):
columns, types, nullability, indexes and keys, on SQLite and on PostgreSQL. A migration that
creates a column the code reads differently (an int4 where the code writes an int8) passes
every other test on SQLite, whose columns take any integer."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from entrepot.ledger import store as ledger_store
from entrepot.payments import store as payments_store
from entrepot.risk.lending import store as lending_store
from entrepot.storage.migrate import downgrade, head_revision, upgrade
from entrepot.trade import store as trade_store

DECLARED = (ledger_store, payments_store, trade_store, lending_store)


def _declared() -> sa.MetaData:
    merged = sa.MetaData()
    for module in DECLARED:
        for table in module.metadata.tables.values():
            table.to_metadata(merged)
    return merged


def _differences(engine: sa.Engine) -> list[Any]:
    declared = _declared()
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"compare_type": True},
        )
        return compare_metadata(context, declared)


def test_the_migrations_build_the_declared_tables(engine: sa.Engine) -> None:
    assert _differences(engine) == []


def test_the_last_migration_goes_down_and_up_again(engine: sa.Engine) -> None:
    previous = downgrade(engine, "-1")
    assert previous is not None and previous != head_revision()
    assert upgrade(engine) == head_revision()
    assert _differences(engine) == []
