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
