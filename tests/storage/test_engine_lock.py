"""The per-process SQLite writer lock is released however a write transaction ends."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
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
    # the processes' queue (a lock file; another thread of this process would not see a
    # leak, flock being held per open file) is free for another process too
    assert _other_process_can_take_the_queue(tmp_path / "lock.db")
    engine.dispose()


def _other_process_can_take_the_queue(database: Path) -> bool:
    """Whether another process gets the writers' lock file at once (non-blocking)."""
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "try:\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(1)\n"
    )
    lock = f"{database}-writers.lock"
    return subprocess.run([sys.executable, "-c", probe, lock], timeout=30).returncode == 0


def test_a_write_transaction_holds_the_processes_queue_until_it_ends(tmp_path: Path) -> None:
    engine = create_engine_from_url(f"sqlite:///{tmp_path / 'q.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        assert not _other_process_can_take_the_queue(tmp_path / "q.db")
    assert _other_process_can_take_the_queue(tmp_path / "q.db")
    with engine.connect().execution_options(entrepot_read_only=True) as conn:
        conn.begin()  # a reader does not queue
        assert _other_process_can_take_the_queue(tmp_path / "q.db")
        conn.rollback()
    engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_writer_killed_mid_transaction_frees_the_queue(tmp_path: Path) -> None:
    """Another process's writer dies holding both locks: the kernel lets them go, and this
    process writes; the dead writer's uncommitted row is not there."""
    url = f"sqlite:///{tmp_path / 'k.db'}"
    engine = create_engine_from_url(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from entrepot.storage.engine import create_engine_from_url\n"
            "conn = create_engine_from_url(sys.argv[1]).connect()\n"
            "conn.exec_driver_sql('INSERT INTO t VALUES (7)')\n"
            "print('holding', flush=True)\n"
            "time.sleep(600)\n",
            url,
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"holding"
        assert not _other_process_can_take_the_queue(tmp_path / "k.db")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (8)")
    with engine.connect() as conn:
        assert [r[0] for r in conn.exec_driver_sql("SELECT x FROM t")] == [8]
    engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_writers_of_two_processes_and_threads_all_commit(tmp_path: Path) -> None:
    """Four writer threads in each of two processes, 50 increments each: every one lands."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = create_engine_from_url(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE c (n INTEGER)")
        conn.exec_driver_sql("INSERT INTO c VALUES (0)")
    script = (
        "import sys, threading\n"
        "from entrepot.storage.engine import create_engine_from_url\n"
        "engine = create_engine_from_url(sys.argv[1])\n"
        "def work():\n"
        "    for _ in range(50):\n"
        "        with engine.begin() as conn:\n"
        "            n = conn.exec_driver_sql('SELECT n FROM c').scalar()\n"
        "            conn.exec_driver_sql(f'UPDATE c SET n = {n + 1}')\n"
        "threads = [threading.Thread(target=work) for _ in range(4)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, url]) for _ in range(2)]
    try:
        assert [p.wait(120) for p in procs] == [0, 0]
    finally:
        for p in procs:
            p.kill()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT n FROM c").scalar() == 2 * 4 * 50
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


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///file:mem?mode=memory&uri=true"])
def test_an_in_memory_database_still_gets_its_own_pool(url: str) -> None:
    engine = create_engine_from_url(url)
    with engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    engine.dispose()
