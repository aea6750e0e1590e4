"""Alembic, driven from code: ``entrepot db upgrade`` and the automatic upgrade on first start
both call :func:`upgrade`. The scripts live in the repository's ``migrations/`` (one linear
history); ``ENTREPOT_MIGRATIONS_DIR`` overrides where they are looked for."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from entrepot.kernel.errors import ConfigurationError


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


def downgrade(engine: Engine, revision: str) -> str | None:
    """Undo migrations down to ``revision`` (operators' escape hatch; a migration may refuse
    when it would lose data)."""
    command.downgrade(_config(engine), revision)
    return current_revision(engine)


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision``; return the revision now current."""
    if revision == "head" and current_revision(engine) == head_revision():
        return head_revision()
    command.upgrade(_config(engine), revision)
    return current_revision(engine)
