"""Alembic, driven from code: ``entrepot db upgrade`` and the automatic upgrade on first start
both call :func:`upgrade`. The scripts live in the repository's ``migrations/`` (one linear
history); ``ENTREPOT_MIGRATIONS_DIR`` overrides where they are looked for.

Migrating is one process at a time per database (:func:`_exclusively` on a SQLite file,
:data:`PG_MIGRATION_LOCK` on PostgreSQL): ``entrepot serve``'s workers each upgrade on their
first start, and two of them migrating an empty database at once failed (PostgreSQL:
``duplicate key ... alembic_version``; SQLite: ``expected to match one row when updating
'0002_payments'``): the worker that lost never started."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from entrepot.kernel.errors import ConfigurationError
from entrepot.storage.engine import is_sqlite, sqlite_file


def migrations_dir() -> Path:
    override = os.environ.get("ENTREPOT_MIGRATIONS_DIR")
    candidates = [Path(override)] if override else []
    candidates.append(Path(__file__).resolve().parents[3] / "migrations")
    for path in candidates:
        if (path / "env.py").is_file():
            return path
    raise ConfigurationError(
        "Alembic migrations not found (looked in "
        + ", ".join(str(p) for p in candidates)
        + "); set ENTREPOT_MIGRATIONS_DIR"
    )


def _config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    head = ScriptDirectory(str(migrations_dir())).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        rev = MigrationContext.configure(conn).get_current_revision()
        conn.rollback()
        return rev


#: Taken first in a migration's transaction on PostgreSQL (``migrations/env.py``): keyed by
#: the schema (tests and tenants migrate their own schemas side by side), let go when that
#: transaction ends, so that a killed migrator leaves none.
PG_MIGRATION_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtext('entrepot.migrate'), hashtext(current_schema()))"
)


@contextmanager
def _exclusively(engine: Engine) -> Iterator[None]:
    """Hold this database's migration lock around a whole migration run, on a SQLite file:
    an exclusive ``flock`` of a lock file beside it (let go with the descriptor, so a killed
    migrator leaves none). Waits for a migration in progress. PostgreSQL's lock is taken
    inside the migration's own transaction instead (:data:`PG_MIGRATION_LOCK`)."""
    database = sqlite_file(engine) if is_sqlite(engine) else None
    if database is None:  # in memory, or another backend: one process only
        yield
        return
    fd = os.open(f"{database}-migrate.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # lets the lock go


def downgrade(engine: Engine, revision: str) -> str | None:
    """Undo migrations down to ``revision`` (operators' escape hatch; a migration may refuse
    when it would lose data)."""
    with _exclusively(engine):
        command.downgrade(_config(engine), revision)
        return current_revision(engine)


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision``; return the revision now current. Another
    process's migration in progress is waited for, and what it did is not done again."""
    if revision == "head" and current_revision(engine) == head_revision():
        return head_revision()  # the common start: no lock to take
    with _exclusively(engine):
        if revision == "head" and current_revision(engine) == head_revision():
            return head_revision()
        command.upgrade(_config(engine), revision)
        return current_revision(engine)
