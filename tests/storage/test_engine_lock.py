"""The per-process SQLite writer lock is released however a write transaction ends."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from entrepot.storage.engine import create_engine_from_url


def _other_thread_can_write(engine: sa.Engine) -> bool:
    done = threading.Event()

    def write() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (9)")
        done.set()

    threading.Thread(target=write, daemon=True).start()
    return done.wait(10)


@pytest.mark.parametrize("ending", ["commit", "rollback", "error", "invalidate", "dead_driver"])
def test_writer_lock_is_released_however_the_transaction_ends(tmp_path: Path, ending: str) -> None:
    engine = create_engine_from_url(f"sqlite:///{tmp_path / 'lock.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    # this test's own (main) thread takes the lock: a leak would block every other thread
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            if ending == "commit":
                conn.commit()
            elif ending == "rollback":
                conn.rollback()
            elif ending == "error":
                conn.exec_driver_sql("INSERT INTO nowhere VALUES (1)")
            elif ending == "invalidate":
                conn.invalidate()
            else:  # the driver connection dies under the transaction
                conn.connection.dbapi_connection.close()  # type: ignore[union-attr]
                conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    except (sa.exc.DBAPIError, sqlite3.Error):
        pass
    assert _other_thread_can_write(engine)
    engine.dispose()


def test_a_file_database_keeps_a_connection_per_concurrent_request(tmp_path: Path) -> None:
    """The API serves up to 40 requests at once (anyio's threadpool); each connection they
    return stays open for the next (the default pool closed all but five, so most requests
    under load opened a new connection and ran its pragmas)."""
    from entrepot.storage.engine import SQLITE_POOL_SIZE

    engine = create_engine_from_url(f"sqlite:///{tmp_path / 'pool.db'}")
    opened: list[object] = []
    sa.event.listen(engine, "connect", lambda *_: opened.append(1))
    held = [engine.connect() for _ in range(SQLITE_POOL_SIZE)]
    for conn in held:
        conn.close()
    assert len(opened) == SQLITE_POOL_SIZE
    again = [engine.connect() for _ in range(SQLITE_POOL_SIZE)]
    for conn in again:
        conn.close()
    assert len(opened) == SQLITE_POOL_SIZE  # none opened twice
    engine.dispose()


def test_an_in_memory_database_still_gets_its_own_pool() -> None:
    engine = create_engine_from_url("sqlite://")
    with engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    engine.dispose()
