"""A server's last step: the WAL its workers left behind folded into the database."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from entrepot.storage.engine import checkpoint_wal

_LEAVE_A_WAL = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("CREATE TABLE t (x INTEGER)")
conn.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(1000)])
os._exit(0)  # as a worker stopped without closing its connection
"""


def test_a_wal_left_behind_is_folded_in_and_removed(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    subprocess.run([sys.executable, "-c", _LEAVE_A_WAL, str(db)], check=True)
    wal = tmp_path / "d.db-wal"
    assert wal.exists() and wal.stat().st_size > 0

    checkpoint_wal(f"sqlite:///{db}")

    assert not wal.exists()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*), sum(x) FROM t").fetchone() == (1000, 499500)
    finally:
        conn.close()


def test_a_database_in_use_is_left_as_it_is(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("PRAGMA journal_mode=WAL")
        other.execute("CREATE TABLE t (x INTEGER)")
        other.execute("INSERT INTO t VALUES (1)")
        checkpoint_wal(f"sqlite:///{db}")
        assert other.execute("SELECT x FROM t").fetchall() == [(1,)]
        other.execute("INSERT INTO t VALUES (2)")  # the other process goes on writing
        assert other.execute("SELECT count(*) FROM t").fetchone() == (2,)
    finally:
        other.close()


def test_no_database_file_nothing_is_created(tmp_path: Path) -> None:
    checkpoint_wal(f"sqlite:///{tmp_path / 'none.db'}")
    checkpoint_wal("sqlite://")
    checkpoint_wal("postgresql://postgres@127.0.0.1:5432/test")
    assert list(tmp_path.iterdir()) == []
