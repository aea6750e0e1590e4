"""Engines. SQLite runs in WAL mode with ``synchronous=FULL`` by default (an acknowledged commit
survives a crash of the process and of the machine), foreign keys on, and every transaction
``BEGIN IMMEDIATE`` so that writers queue on the lock instead of failing on upgrade. Writers
queue before that, on a lock per process and a lock file shared by the processes, not in
SQLite's busy handler (see ``_sqlite_engine``)."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from entrepot.config import Settings
from entrepot.storage import metrics

SQLITE_BUSY_TIMEOUT_MS = 120_000
SQLITE_CACHE_KIB = 262_144  # 256 MiB page cache: the ledger's indexes stay in memory
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 16_384  # checkpoint every ~64 MiB of WAL, not every 4 MiB
SQLITE_POOL_SIZE = 40
SQLITE_POOL_OVERFLOW = 20
#: PostgreSQL connections a process keeps open (none more: a server's default allows 100,
#: and ``entrepot serve`` runs several workers). SQLAlchemy's default (5, then 10 opened
#: and closed on return) started a server backend for most requests under load: 20 kept
#: open took the payments bench from 77-100 to 99-132 four-call payments/s (server CPU
#: 7.0-9.8 -> 6.5-7.0 ms a payment). Past 20 at once, a request waits for one.
PG_POOL_SIZE = 20
PG_POOL_OVERFLOW = 0
#: RETURNING (3.35) is used, and a ledger lookup binds up to 1,000 parameters (3.32 raised
#: the limit from 999).
SQLITE_MIN_VERSION = (3, 35, 0)
#: Execution option: this connection only reads (SQLite: a deferred BEGIN, no write lock).
READ_ONLY = "entrepot_read_only"
log = logging.getLogger(__name__)


def create_engine_from_settings(settings: Settings, **kwargs: Any) -> Engine:
    return create_engine_from_url(
        settings.database_url, sqlite_synchronous=settings.sqlite_synchronous, **kwargs
    )


def create_engine_from_url(url: str, *, sqlite_synchronous: str = "FULL", **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url, sqlite_synchronous, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", PG_POOL_SIZE)
    kwargs.setdefault("max_overflow", PG_POOL_OVERFLOW)
    kwargs.setdefault("pool_use_lifo", True)  # the connections in use are the warm ones
    # Writers queue on the ledger's meta row lock (ADR 0002), which holds only under READ
    # COMMITTED: a waiter then reads the row as its holder left it. A server whose default
    # is REPEATABLE READ or SERIALIZABLE failed every writer that waited ("could not
    # serialize access", a 500; found by a review). Reads set their own level.
    kwargs.setdefault("isolation_level", "READ COMMITTED")
    return create_engine(url, **kwargs)


def _sqlite_engine(url: str, synchronous: str, **kwargs: Any) -> Engine:
    if sqlite3.sqlite_version_info < SQLITE_MIN_VERSION:
        need = ".".join(map(str, SQLITE_MIN_VERSION))
        raise RuntimeError(
            f"SQLite {sqlite3.sqlite_version} is too old: Entrepot needs {need} or later "
            "(the library Python's sqlite3 module is linked with)"
        )
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    if _is_file(database) and "poolclass" not in kwargs:
        # As many pooled connections as the API's threadpool runs requests (anyio's 40): the
        # pool's default (5, then 10 overflow connections closed on return) opened and closed
        # a connection, seven pragmas and the WAL index mapping, for most requests under load.
        # Last in, first out: the connections in use are the few whose page caches are warm;
        # the rest are rarely handed out and their caches (which grow only with the pages
        # they read) stay small.
        kwargs.setdefault("pool_size", SQLITE_POOL_SIZE)
        kwargs.setdefault("max_overflow", SQLITE_POOL_OVERFLOW)
        kwargs.setdefault("pool_use_lifo", True)
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    connect_args.setdefault("check_same_thread", False)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            f"PRAGMA synchronous={synchronous}",
            "PRAGMA foreign_keys=ON",
            f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
            f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}",
            f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}",
            "PRAGMA temp_store=MEMORY",
        ):
            cursor.execute(pragma)
        cursor.close()

    # Writers of this process queue on a Python lock before they ask SQLite for its write
    # lock: SQLite's busy handler makes waiting writers sleep and retry (up to 100 ms a try),
    # which under concurrent requests turned milliseconds of work into seconds of latency.
    # Re-entrant, so one thread may hold the write transaction across nested helpers; let go
    # by whichever thread ends the transaction (_Writers).
    writer = _Writers()
    # The processes sharing the file (the API's workers) queue the same way, on a lock file
    # (_ProcessQueue): a writer of another process waits in the kernel and is woken when the
    # lock is let go, instead of sleeping in SQLite's busy handler while this process's next
    # writers, queued on ``writer``, take SQLite's lock again and again.
    queue = _queue_for(Path(f"{database}-writers.lock")) if _is_file(database) else None

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Readers take a snapshot without the write lock; everything else queues for it.
        # On the driver connection: SQLAlchemy's execution of the statement (a result, its
        # events) cost about 50 µs, for a statement SQLite runs in 1-2.
        dbapi_connection: Any = conn.connection.dbapi_connection
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        if read_only:
            _begin(dbapi_connection, "BEGIN")
            return
        key = id(dbapi_connection)
        asked = time.perf_counter()
        writer.enter(key)
        try:
            if queue is not None:
                queue.enter(key, SQLITE_BUSY_TIMEOUT_MS / 1000)
            _begin(dbapi_connection, "BEGIN IMMEDIATE")
        except BaseException:
            metrics.WRITE_WAIT.inc(time.perf_counter() - asked)  # waited, then gave up
            _release(key)
            raise
        writer.began(asked, time.perf_counter())

    def _release(key: int) -> None:
        try:
            if queue is not None:
                queue.leave(key)
        finally:
            writer.leave(key)

    def _key(connection: Any) -> int:
        # the pool hands the dialect its proxy; the proxy knows the driver connection
        return id(getattr(connection, "dbapi_connection", connection))

    # Release only once SQLite has finished the COMMIT (its fsync included) or the ROLLBACK.
    # SQLAlchemy's "commit"/"rollback" events fire *before* the driver call: releasing there
    # let the next writer reach SQLite while the lock was still held, into the busy handler's
    # sleep-and-retry that this lock exists to avoid. The dialect is this engine's own object.
    dialect = engine.dialect
    driver_commit, driver_rollback = dialect.do_commit, dialect.do_rollback

    def _do_commit(dbapi_connection: Any) -> None:
        key = _key(dbapi_connection)
        started = time.perf_counter() if writer.holds(key) else None
        try:
            driver_commit(dbapi_connection)
            if started is not None:
                with suppress(Exception):  # counting never fails a COMMIT that was done
                    metrics.COMMIT_SECONDS.inc(time.perf_counter() - started)
        except BaseException:
            # SQLite keeps a transaction whose COMMIT failed (a deferred constraint, an I/O
            # error) open, and SQLAlchemy returns the connection to the pool as if it had
            # ended: its next user could not begin ("cannot start a transaction within a
            # transaction"). End it here.
            with suppress(Exception):
                driver_rollback(dbapi_connection)
            raise
        finally:
            _release(key)

    def _do_rollback(dbapi_connection: Any) -> None:
        try:
            driver_rollback(dbapi_connection)
        finally:
            _release(_key(dbapi_connection))

    dialect.do_commit = _do_commit  # type: ignore[method-assign]
    dialect.do_rollback = _do_rollback  # type: ignore[method-assign]

    @event.listens_for(engine.pool, "invalidate")
    def _on_invalidate(dbapi_connection: Any, _record: Any, _exc: Any) -> None:
        # An invalidated connection (the driver connection died, an exit exception mid-
        # statement, ``invalidate()``) ends its transaction without the driver's rollback
        # being called: release here, or every other writer of the process waits for ever.
        _release(_key(dbapi_connection))

    return engine


def _begin(dbapi_connection: Any, statement: str) -> None:
    """``statement`` on the driver connection, its error raised as SQLAlchemy would raise it
    (``sqlalchemy.exc.OperationalError`` for "database is locked", ...)."""
    try:
        dbapi_connection.execute(statement)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(statement, (), exc, sqlite3.Error) from exc


def checkpoint_wal(url: str) -> None:
    """Fold SQLite's write-ahead log at ``url`` into the database and empty it, then close:
    run once a server's workers are gone, this connection is the last one out and SQLite
    deletes the log. Each worker closes its connections at shutdown, but the supervisor stops
    them together, and two connections closing at once each see the other still open: neither
    checkpointed, and the log (tens of MB after a bench's load) was left for the next process
    to read through. Best effort: a process still using the file keeps it (and is told
    nothing); not SQLite, nothing is done."""
    if not url.startswith("sqlite"):
        return
    database = make_url(url).database
    if not _is_file(database) or not Path(str(database)).expanduser().is_file():
        return
    try:
        conn = sqlite3.connect(Path(str(database)).expanduser(), timeout=5)
    except sqlite3.Error as exc:
        log.warning("%s: WAL not checkpointed: %s", database, exc)
        return
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.Error as exc:
        log.warning("%s: WAL not checkpointed: %s", database, exc)
    finally:
        conn.close()


def _is_file(database: str | None) -> bool:
    return bool(database) and database != ":memory:" and not str(database).startswith("file:")


def _last_out(keys: set[int], key: int) -> bool:
    """Take ``key`` out of the transactions holding a turn; whether it was the last of them
    (False when it held none: a transaction ended twice, or never queued)."""
    if key not in keys:
        return False
    keys.discard(key)
    return not keys


class _Writers:
    """An engine's write transactions, one at a time: a thread waits its turn; a thread that
    holds it may nest more (``keys``: the driver connections of its transactions), and the
    turn passes on when the last ends, whichever thread ends it (a plain lock, which any
    thread may release; a thread-owned RLock stayed held for ever when a transaction was
    ended by another thread, a pool reset or the collector, than the one that began it)."""

    def __init__(self) -> None:
        self._turn = threading.Lock()
        self._state = threading.Lock()
        self._owner: int | None = None
        self._keys: set[int] = set()
        self._since: float | None = None  # when the turn's first BEGIN IMMEDIATE succeeded
        _WRITERS.add(self)

    def holds(self, key: int) -> bool:
        """Whether ``key``'s transaction is one of the turn's (a write transaction)."""
        return key in self._keys

    def began(self, asked: float, now: float) -> None:
        """A write transaction of the turn has begun at ``now`` (asked for at ``asked``):
        counted, and the lock's hold starts if it is the turn's first."""
        metrics.WRITE_TRANSACTIONS.inc()
        metrics.WRITE_WAIT.inc(now - asked)
        if self._since is None:
            self._since = now

    def enter(self, key: int) -> None:
        me = threading.get_ident()
        with self._state:
            if self._owner == me:
                self._keys.add(key)
                return
        self._turn.acquire()
        with self._state:
            self._owner = me
            self._keys.add(key)

    def leave(self, key: int) -> None:
        with self._state:
            if not _last_out(self._keys, key):
                return
            self._owner = None
            since, self._since = self._since, None
        ended = time.perf_counter()
        self._turn.release()
        if since is not None:  # counted once the turn has passed on: not in the serial part
            with suppress(Exception):
                metrics.WRITE_HELD.inc(ended - since)

    def _after_fork(self) -> None:
        """A forked child has none of its parent's threads: whatever they held is free."""
        self.__init__()  # type: ignore[misc]


_WRITERS: weakref.WeakSet[_Writers] = weakref.WeakSet()


class _ProcessQueue:
    """This process's place in the queue of the processes writing one SQLite file: an
    exclusive ``flock`` of a lock file beside it, taken (after the engine's own writer lock)
    before ``BEGIN IMMEDIATE`` and let go when the last write transaction holding it ends
    (``keys``: its driver connections, so whichever thread ends one releases it, and a nested
    transaction of the same process, through any engine on the file, joins instead of
    waiting for itself). Only a queue: SQLite's own lock still does the excluding, and a
    process that does not queue (another tool) still waits in SQLite's busy handler.

    A waiter blocks in the kernel, which wakes it the moment the holder lets go (a
    sleep-and-retry loop, or a helper thread, loses the turn or costs the handoff). The wait
    is bounded on the holder's side: a hold older than the busy timeout is let go by the
    process's watchdog (``_watchdog``), so a transaction left open keeps the others waiting
    no longer than SQLite's busy handler would have (they then meet it, as before). The lock
    file is opened for each hold and closed after; the kernel lets the lock go if the process
    dies, and a forked child closes the copies it inherits (``_after_fork``). One per lock
    file per process (``_queue_for``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._state = threading.Lock()
        self._fd: int | None = None  # open and locked while this process holds the queue
        self._keys: set[int] = set()  # driver connections whose transactions hold it
        self._opened: set[int] = set()  # every descriptor open on the file (fork: closed)
        self._deadline = 0.0  # monotonic time after which the watchdog lets a hold go
        self._warned = False

    def enter(self, key: int, timeout_s: float) -> None:
        with self._state:
            if not self._keys:  # nobody of this process holds it: wait for our turn
                self._fd = self._lock()
                self._deadline = time.monotonic() + timeout_s
                if self._fd is not None:
                    _start_watchdog()
            self._keys.add(key)

    def leave(self, key: int) -> None:
        with self._state:
            if not _last_out(self._keys, key):
                return
            fd, self._fd = self._fd, None
            if fd is not None:
                self._close(fd)

    def expire(self, now: float) -> None:
        """Let go of a hold older than its deadline (the watchdog's round)."""
        if not self._state.acquire(blocking=False):
            return  # busy entering or leaving: next round
        try:
            if self._fd is not None and now > self._deadline:
                fd, self._fd = self._fd, None
                self._close(fd)
                log.warning(
                    "a write transaction has held %s past the busy timeout: let go, so that "
                    "other processes' writers meet SQLite's busy handler instead of waiting",
                    self.path,
                )
        finally:
            self._state.release()

    def _open(self) -> int | None:
        """The lock file, created if need be (mode as the umask allows, like the database),
        or opened read-only (enough for flock) when another user created it; None when it
        cannot be opened at all (a read-only directory): the writer then does not queue."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "cannot open %s: SQLite writers of this process do not queue", self.path
                    )
                return None
        self._opened.add(fd)
        return fd

    def _close(self, fd: int) -> None:
        self._opened.discard(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)  # let go even if a forked copy is still open
        finally:
            os.close(fd)

    def _lock(self) -> int | None:
        """A descriptor holding the lock (None: the file cannot be opened)."""
        fd = self._open()
        if fd is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits in the kernel, the GIL released
        except BaseException:  # interrupted: nothing held
            self._opened.discard(fd)
            os.close(fd)
            raise
        return fd

    def _after_fork(self) -> None:
        """In a forked child: the parent's hold is not the child's. Close the inherited
        descriptors without unlocking (that would end the parent's hold)."""
        self._state = threading.Lock()
        for fd in self._opened:
            with suppress(OSError):
                os.close(fd)
        self._opened, self._keys, self._fd = set(), set(), None


_WATCHDOG_PERIOD_S = 1.0
_watchdog_started = False


def _start_watchdog() -> None:
    global _watchdog_started
    if not _watchdog_started:
        _watchdog_started = True
        threading.Thread(target=_watchdog, name="sqlite-writers-watchdog", daemon=True).start()


def _watchdog() -> None:
    while True:
        time.sleep(_WATCHDOG_PERIOD_S)
        with _QUEUES_LOCK:
            queues = list(_QUEUES.values())
        now = time.monotonic()
        for queue in queues:
            queue.expire(now)


_QUEUES: dict[str, _ProcessQueue] = {}
_QUEUES_LOCK = threading.Lock()


def _queue_for(path: Path) -> _ProcessQueue:
    """The process's one queue for a lock file, shared by every engine on the database."""
    where = os.path.realpath(path)
    with _QUEUES_LOCK:
        queue = _QUEUES.get(where)
        if queue is None:
            queue = _QUEUES[where] = _ProcessQueue(Path(where))
        return queue


def _forget_queues_after_fork() -> None:
    global _QUEUES_LOCK, _watchdog_started
    _QUEUES_LOCK = threading.Lock()
    _watchdog_started = False  # the parent's watchdog thread is not the child's
    for queue in _QUEUES.values():
        queue._after_fork()
    for writers in list(_WRITERS):
        writers._after_fork()


os.register_at_fork(after_in_child=_forget_queues_after_fork)


class WriteInRead(RuntimeError):
    """A write through ``read_connection`` (a programming error): it was rolled back."""


def sqlite_file(engine: Engine) -> str | None:
    """The file of a SQLite engine's database; None in memory (or a ``file:`` URI)."""
    database = engine.url.database
    return database if database is not None and _is_file(database) else None


def is_sqlite(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "sqlite"


def is_postgres(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "postgresql"


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection for queries: a consistent snapshot that does not block writers.

    SQLite: a deferred ``BEGIN`` (the snapshot is taken at the first read). PostgreSQL:
    ``REPEATABLE READ``, so that every statement of the connection's transaction sees one
    snapshot (the ledger adds unflushed segments to balance columns read in another
    statement; ADR 0003). Read-only transactions never fail to serialise. On PostgreSQL the
    transaction is ``READ ONLY`` and ends with a COMMIT: psycopg drops every prepared
    statement of the connection on a ROLLBACK (``DEALLOCATE ALL``), and pooled connections
    serve reads and writes, so ending each read with one re-planned the payment path's
    statements over and over."""
    conn = engine.connect()
    try:
        if is_postgres(engine):
            conn = conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        conn = conn.execution_options(**{READ_ONLY: True})
        # Begun now: a query through the raw driver cursor (the ledger's hot paths use one) does
        # not begin SQLAlchemy's transaction, and on SQLite would run outside the snapshot.
        conn.begin()
        if is_postgres(engine):
            yield conn
            if conn.in_transaction():
                conn.commit()  # read only: nothing to keep or undo
            return
        # SQLite has no read-only transaction: a write here would run outside the writers'
        # queue and be rolled back unreported when the connection closes. It is rolled back
        # and reported. (``PRAGMA query_only`` would refuse it up front, but setting it
        # expires every prepared statement of the connection: a third more CPU a payment.)
        changes = driver_connection(conn).total_changes
        yield conn
        if driver_connection(conn).total_changes != changes:
            raise WriteInRead(
                "rows were written through a read connection: they are rolled back; "
                "write in a unit of work"
            )
    finally:
        conn.close()  # rolls back whatever is still open


def driver_connection(conn: Connection) -> Any:
    """The DB-API connection under a SQLAlchemy connection, for set-based hot paths
    (executemany, COPY) that SQLAlchemy's per-row parameter processing would slow down."""
    return conn.connection.driver_connection
