"""Several processes starting at once on an empty database (``entrepot serve``'s workers each
migrate on their first start) all end up at the head, none failing on the tables another is
creating."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from entrepot.storage.engine import create_engine_from_url
from entrepot.storage.migrate import current_revision, head_revision, upgrade

STARTS = 3
_UPGRADE = (
    "import sys\n"
    "from entrepot.storage.engine import create_engine_from_url\n"
    "from entrepot.storage.migrate import upgrade\n"
    "sys.stdin.read()\n"  # released together
    "print(upgrade(create_engine_from_url(sys.argv[1])))\n"
)


def test_first_starts_at_once_all_reach_the_head(database_url: str, tmp_path: Path) -> None:
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", _UPGRADE, database_url],
            stdin=subprocess.PIPE,
            stdout=(tmp_path / f"out{i}").open("w"),
            stderr=(tmp_path / f"err{i}").open("w"),
            text=True,
            env=env,
        )
        for i in range(STARTS)
    ]
    for start in starts:  # all imported and waiting: let them go together
        assert start.stdin is not None
        start.stdin.close()
    head = head_revision()
    for i, start in enumerate(starts):
        assert start.wait(timeout=120) == 0, (tmp_path / f"err{i}").read_text()
        assert (tmp_path / f"out{i}").read_text().strip() == head
    engine = create_engine_from_url(database_url)
    try:
        assert current_revision(engine) == head
        with engine.connect() as conn:  # one version row, not one per start
            rows = conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one()
        assert rows == 1
    finally:
        engine.dispose()


def test_an_engine_of_one_connection_migrates(database_url: str) -> None:
    """The lock was held on a connection of its own while the migration took another from
    the same pool: a pool of one waited for itself (until the pool's timeout). It is now
    taken inside the migration's own transaction (PostgreSQL) or on a file (SQLite)."""
    engine = create_engine_from_url(database_url, pool_size=1, max_overflow=0, pool_timeout=5)
    try:
        assert upgrade(engine) == head_revision()
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
