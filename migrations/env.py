"""Alembic environment: runs on the engine that storage.migrate passes in.

On PostgreSQL the migration's own transaction first takes a transaction-level advisory lock
keyed by the schema (``storage.migrate.PG_MIGRATION_LOCK``): a second process migrating the
same schema waits for the first to commit, and then reads the version it left. Held by the
transaction itself, it needs no second connection (a one-connection pool would wait for
itself) and holds behind a transaction-pooling proxy such as PgBouncer."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from entrepot.storage.migrate import PG_MIGRATION_LOCK

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text(PG_MIGRATION_LOCK))
        context.run_migrations()
    connection.commit()
