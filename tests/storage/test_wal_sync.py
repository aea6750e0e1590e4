"""synchronous=FULL on a database file: SQLite runs NORMAL and the engine syncs the write-ahead
log after each write's COMMIT, once the write lock is let go, before the commit returns
(storage/engine.py, ADR 0014)."""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from entrepot.storage import metrics
from entrepot.storage.engine import create_engine_from_url, sync_wal
from entrepot.storage.group import GroupCommit, GroupCommitFailed


def _engine(db: Path, synchronous: str = "FULL") -> sa.Engine:
    engine = create_engine_from_url(f"sqlite:///{db}", sqlite_synchronous=synchronous)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    return engine


def _synchronous(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


def _rows(db: Path) -> int:
    other = sqlite3.connect(db, timeout=0)
    try:
        return int(other.execute("SELECT count(*) FROM t").fetchone()[0])
    finally:
        other.close()


def _lock_is_free(db: Path) -> bool:
    """Another connection begins a write at once (no busy wait: timeout 0)."""
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


def test_full_syncs_the_log_after_letting_the_lock_go_and_before_the_commit_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "full.db"
    engine = _engine(db)
    assert _synchronous(engine) == 1  # SQLite's NORMAL: no sync inside COMMIT
    real = os.fdatasync
    seen: list[tuple[str, bool, int]] = []

    def spy(fd: int) -> None:
        # the moment of the sync: committed (another reader sees the row), the write lock
        # already free for the next writer, the caller not yet returned to
        seen.append((os.readlink(f"/proc/self/fd/{fd}"), _lock_is_free(db), _rows(db)))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", spy)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert seen == []  # nothing synced before the COMMIT
    assert seen == [(f"{db}-wal", True, 1)]
    with engine.connect() as conn:  # a read commits nothing and syncs nothing
        conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one()
        conn.rollback()
    assert len(seen) == 1
    engine.dispose()


def test_a_failed_sync_fails_the_commit_and_frees_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "eio.db"
    engine = _engine(db)

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(OSError, match="input/output error"), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    monkeypatch.undo()
    # not told it committed (it may have: as a COMMIT whose answer was lost); the next writer
    # of this engine and of another connection go on
    assert _lock_is_free(db)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    assert _rows(db) == 2
    engine.dispose()


@pytest.mark.parametrize(("asked", "pragma"), [("EXTRA", 3), ("NORMAL", 1), ("OFF", 0)])
def test_other_modes_are_sqlites_own_and_the_engine_syncs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, asked: str, pragma: int
) -> None:
    engine = _engine(tmp_path / f"{asked}.db", asked)
    assert _synchronous(engine) == pragma
    calls: list[int] = []
    monkeypatch.setattr(os, "fdatasync", calls.append)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    assert calls == []
    engine.dispose()


def test_the_logs_directory_is_synced_once_and_the_time_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "dir.db"
    engine = _engine(db)  # its first commit (the table) synced the log and its directory
    synced: list[str] = []
    real = os.fsync

    def spy(fd: Any) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    before = metrics.WAL_SYNC_SECONDS._value.get()
    for x in range(3):
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (?)", (x,))
    assert synced == []  # the directory was synced with the log's first sync only
    assert metrics.WAL_SYNC_SECONDS._value.get() > before
    engine.dispose()  # the last connection closes: SQLite checkpoints and deletes the log
    assert not Path(f"{db}-wal").exists()
    sync_wal(Path(f"{db}-wal"))  # no log: its commits are in the database file; nothing to do
    engine = create_engine_from_url(f"sqlite:///{db}")
    with engine.begin() as conn:  # a new log (a new file): its directory is synced again
        conn.exec_driver_sql("INSERT INTO t VALUES (9)")
    assert synced == [str(tmp_path)]
    engine.dispose()


def test_an_in_memory_database_syncs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(os, "fdatasync", calls.append)
    engine = create_engine_from_url("sqlite://")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    assert calls == []


def test_a_group_commit_tells_its_members_once_synced_and_times_the_lock_without_the_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "group.db"
    engine = _engine(db)

    def begin(conn: sa.Connection) -> None:
        conn.begin()

    group = GroupCommit(engine, begin)
    real = os.fdatasync
    at_sync: list[tuple[bool, int]] = []

    def slow(fd: int) -> None:
        at_sync.append((_lock_is_free(db), _rows(db)))
        time.sleep(0.3)  # a slow disk: the lock is not held meanwhile
        real(fd)

    monkeypatch.setattr(os, "fdatasync", slow)
    held = metrics.GROUP_HELD._value.get()
    started = time.monotonic()
    with group.unit() as uow:
        uow.connection.exec_driver_sql("INSERT INTO t VALUES (1)")
    told = time.monotonic() - started
    assert at_sync == [(True, 1)]  # synced once, committed and the lock let go first
    assert told >= 0.3  # the member was told only after the sync
    assert metrics.GROUP_HELD._value.get() - held < 0.3  # the lock's hold ends at COMMIT

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(GroupCommitFailed, match="input/output error"), group.unit() as uow:
        uow.connection.exec_driver_sql("INSERT INTO t VALUES (2)")
    assert _lock_is_free(db)  # and the group goes on
    monkeypatch.setattr(os, "fdatasync", real)
    with group.unit() as uow:
        uow.connection.exec_driver_sql("INSERT INTO t VALUES (3)")
    assert _rows(db) == 3  # the unsynced commit was made: its member was not told so
    engine.dispose()
