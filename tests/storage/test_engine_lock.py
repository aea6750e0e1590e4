"""The per-process SQLite writer lock is released however a write transaction ends."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def _with_table_t(url: str) -> sa.Engine:
    """An engine on ``url``, whose database has the table ``t (x INTEGER)``."""
    engine = create_engine_from_url(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    return engine


@pytest.mark.parametrize("ending", ["commit", "rollback", "error", "invalidate", "dead_driver"])
def test_writer_lock_is_released_however_the_transaction_ends(tmp_path: Path, ending: str) -> None:
    engine = _with_table_t(f"sqlite:///{tmp_path / 'lock.db'}")
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


@contextmanager
def _writer_left_open(
    url: str, busy_timeout_ms: int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Another process that has begun a write (an uncommitted row 7 in ``t``) and never ends
    it; killed on the way out."""
    setting = f"e.SQLITE_BUSY_TIMEOUT_MS = {busy_timeout_ms}\n" if busy_timeout_ms else ""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from entrepot.storage import engine as e\n"
            f"{setting}"
            "conn = e.create_engine_from_url(sys.argv[1]).connect()\n"
            "conn.exec_driver_sql('INSERT INTO t VALUES (7)')\n"
            "print('holding', flush=True)\n"
            "time.sleep(600)\n",
            url,
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"holding"
        yield child
    finally:
        child.kill()
        child.wait(30)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_writer_killed_mid_transaction_frees_the_queue(tmp_path: Path) -> None:
    """Another process's writer dies holding both locks: the kernel lets them go, and this
    process writes; the dead writer's uncommitted row is not there."""
    url = f"sqlite:///{tmp_path / 'k.db'}"
    engine = _with_table_t(url)
    with _writer_left_open(url) as child:
        assert not _other_process_can_take_the_queue(tmp_path / "k.db")
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


def test_a_transaction_ended_by_another_thread_frees_the_queue(tmp_path: Path) -> None:
    engine = _with_table_t(f"sqlite:///{tmp_path / 'x.db'}")
    conn = engine.connect()
    begun = threading.Thread(target=lambda: conn.exec_driver_sql("INSERT INTO t VALUES (1)"))
    begun.start()
    begun.join(30)
    assert not _other_process_can_take_the_queue(tmp_path / "x.db")
    conn.commit()  # on this thread, not the one that began
    assert _other_process_can_take_the_queue(tmp_path / "x.db")
    assert _other_thread_can_write(engine)  # the process's own lock is free too
    conn.close()
    engine.dispose()


@pytest.mark.timeout(120)
def test_a_nested_write_through_a_second_engine_fails_instead_of_waiting_for_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It joins its process's place in the queue, then SQLite's busy handler fails it after
    the busy timeout (as before the queue), rather than waiting for itself for ever."""
    from entrepot.storage import engine as engine_module

    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 500)
    url = f"sqlite:///{tmp_path / 'n.db'}"
    outer = create_engine_from_url(url)
    inner = create_engine_from_url(url)
    with outer.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with outer.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        with pytest.raises(sa.exc.OperationalError, match="locked"), inner.begin() as other:
            other.exec_driver_sql("INSERT INTO t VALUES (2)")
    assert _other_process_can_take_the_queue(tmp_path / "n.db")
    outer.dispose()
    inner.dispose()


@pytest.mark.timeout(120)
def test_a_transaction_left_open_in_another_process_fails_writers_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process begins a write and never ends it. Its watchdog lets the queue go after
    the busy timeout, and this process's writer then meets SQLite's busy handler, which
    fails it (as before the queue) instead of every process waiting for ever."""
    from entrepot.storage import engine as engine_module

    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 1_000)
    url = f"sqlite:///{tmp_path / 'g.db'}"
    engine = _with_table_t(url)
    with _writer_left_open(url, busy_timeout_ms=1_000):
        assert not _other_process_can_take_the_queue(tmp_path / "g.db")
        with pytest.raises(sa.exc.OperationalError, match="locked"), engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        assert _other_process_can_take_the_queue(tmp_path / "g.db")  # let go, still open
    engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_forked_child_does_not_keep_its_dead_parents_hold(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    _with_table_t(url).dispose()
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, signal, sys, time\n"
            "from entrepot.storage.engine import create_engine_from_url\n"
            "conn = create_engine_from_url(sys.argv[1]).connect()\n"
            "conn.exec_driver_sql('INSERT INTO t VALUES (1)')\n"  # holds the queue
            "child = os.fork()\n"
            "if child == 0:\n"
            "    time.sleep(600)\n"
            "    os._exit(0)\n"
            "print(child, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n",
            url,
        ],
        stdout=subprocess.PIPE,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        parent.wait(30)
        assert _other_process_can_take_the_queue(tmp_path / "f.db")
    finally:
        os.kill(child, signal.SIGKILL)


def test_engines_leave_no_descriptor_open_between_writes(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for n in range(50):
        engine = create_engine_from_url(f"sqlite:///{tmp_path / f'd{n}.db'}")
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        engine.dispose()
    assert len(os.listdir("/proc/self/fd")) - before < 10


@pytest.mark.parametrize("openable", ["read_only", "not_at_all"])
def test_a_lock_file_that_cannot_be_created_does_not_stop_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, openable: str
) -> None:
    """Another user created the lock file (read-only for us: flock still works), or the
    directory cannot hold it (writes go on without queueing, with a warning)."""
    from entrepot.storage import engine as engine_module

    real_open = os.open

    def guarded_open(path: Any, flags: int, *args: Any) -> int:
        if str(path).endswith("-writers.lock") and (openable == "not_at_all" or flags & os.O_CREAT):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    (tmp_path / "p.db-writers.lock").touch()
    monkeypatch.setattr(engine_module.os, "open", guarded_open)
    engine = create_engine_from_url(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        held = not _other_process_can_take_the_queue(tmp_path / "p.db")
    assert held == (openable == "read_only")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    engine.dispose()


def test_a_forked_child_does_not_inherit_its_parents_turn() -> None:
    """After fork the child has none of the parent's threads: a turn one of them held is
    free in the child (SQLite itself is not fork-safe with open connections, so this is the
    engine's lock alone, as the at-fork hook resets it)."""
    from entrepot.storage.engine import _Writers

    writers = _Writers()
    entered, finish = threading.Event(), threading.Event()

    def hold() -> None:  # alive throughout, so no other thread can reuse its ident
        writers.enter(1)
        entered.set()
        finish.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert entered.wait(10)
    writers._after_fork()  # what the at-fork hook does in the child
    took = threading.Event()

    def take() -> None:
        writers.enter(2)
        took.set()

    threading.Thread(target=take, daemon=True).start()
    assert took.wait(10)
    writers.leave(2)
    finish.set()


def test_the_turn_passes_when_another_thread_ends_the_transaction() -> None:
    from entrepot.storage.engine import _Writers

    writers = _Writers()
    writers.enter(1)
    writers.enter(2)  # nested on this (main, living) thread
    ended = threading.Thread(target=lambda: (writers.leave(1), writers.leave(2)))
    ended.start()
    ended.join(10)
    took = threading.Event()
    threading.Thread(target=lambda: (writers.enter(3), took.set()), daemon=True).start()
    assert took.wait(10)
    writers.leave(3)


def test_the_write_locks_hold_and_wait_are_counted_for_the_operator(tmp_path: Path) -> None:
    """``/v1/metrics`` tells how busy SQLite's one writer is (storage/metrics.py): each write
    transaction counted once, how long the lock was held (rolled back or committed), what
    the COMMITs took, and what a writer queued behind another paid; reads count nothing."""
    import time

    from entrepot.storage.engine import read_connection
    from entrepot.storage.metrics import REGISTRY

    names = (
        "entrepot_db_write_transactions_total",
        "entrepot_db_write_held_seconds_total",
        "entrepot_db_write_wait_seconds_total",
        "entrepot_db_commit_seconds_total",
    )
    engine = _with_table_t(f"sqlite:///{tmp_path / 'count.db'}")

    def counted() -> dict[str, float]:
        return {n: REGISTRY.get_sample_value(n) or 0.0 for n in names}

    try:
        before = counted()
        with read_connection(engine) as conn:
            conn.exec_driver_sql("SELECT count(*) FROM t").scalar()
        assert counted() == before
        holding = threading.Event()

        def holder() -> None:
            with engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
                holding.set()
                time.sleep(0.05)

        t = threading.Thread(target=holder)
        t.start()
        assert holding.wait(10)
        with engine.connect() as conn:  # queues behind the holder
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
            conn.rollback()
        t.join(10)
        after = counted()
        delta = {n: after[n] - before[n] for n in names}
        assert delta["entrepot_db_write_transactions_total"] == 2
        assert 0.05 <= delta["entrepot_db_write_held_seconds_total"] < 10
        assert 0.01 <= delta["entrepot_db_write_wait_seconds_total"] < 10
        assert 0 < delta["entrepot_db_commit_seconds_total"] < 10  # the holder's only
    finally:
        engine.dispose()


def test_a_writer_that_gave_up_waiting_is_counted_as_having_waited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer whose BEGIN IMMEDIATE meets the busy timeout (another process holds SQLite's
    lock without queueing: the CLI, `payments deliver`, sqlite3) waited as long as any:
    the wait counter must say so (it counted nothing)."""
    from entrepot.storage import engine as engine_module
    from entrepot.storage.metrics import REGISTRY

    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 300)
    engine = _with_table_t(f"sqlite:///{tmp_path / 'gaveup.db'}")
    name = "entrepot_db_write_wait_seconds_total"
    holder = sqlite3.connect(tmp_path / "gaveup.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        before = REGISTRY.get_sample_value(name) or 0.0
        with pytest.raises(sa.exc.OperationalError), engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert (REGISTRY.get_sample_value(name) or 0.0) - before >= 0.25
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()


def test_an_sqlite_too_old_is_refused_with_what_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(RuntimeError, match=r"SQLite 3\.31\.1 is too old: .* needs 3\.35\.0"):
        create_engine_from_url(f"sqlite:///{tmp_path / 'old.db'}")
    assert not (tmp_path / "old.db").exists()
