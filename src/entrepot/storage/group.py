"""Group commit for units of work: concurrent writers share one transaction, each in its own
savepoint, and one COMMIT (one fsync, one turn of the write lock) makes them all durable.

Writers of one database are serialised anyway (SQLite has one writer; the ledger's meta row
lock serialises PostgreSQL's). Under load each of them paid, on its own, the write lock's
handoff, ``BEGIN``, the commit's fsync and, while it held the lock, the interpreter lock's
sharing with the process's other requests. Here a writer that finishes while others wait for
their turn hands the open transaction on instead of committing it; the last one of a batch
commits, and only then does any of them return. Each one still runs its own code in its own
thread (its context variables, its stack), one at a time.

Guarantees, as for a transaction of one's own:
- nothing is acknowledged before its COMMIT is durable: a member that finished waits for the
  batch's commit, and learns of its failure (``GroupCommitFailed``, the cause chained);
- a member that fails is undone alone (ROLLBACK TO its savepoint) and fails at once, without
  waiting;
- a member that commits part of its work before failing (``commit()`` then raise: an abort
  recorded before the error is reported) keeps that part, and waits for it to be durable;
- members see the writes of the members before them in the batch, as if run one after
  another in that order (they were).

A batch is bounded in members and in age, so that a member waits for at most a bounded
amount of other work, and the write lock is never held near the busy timeout."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import Connection, Engine

from entrepot.storage import metrics
from entrepot.storage.driver import Fast
from entrepot.storage.uow import UnitOfWork

log = logging.getLogger(__name__)

BATCH_MEMBERS_MAX = 32
BATCH_AGE_MAX_S = 0.02


class GroupCommitFailed(RuntimeError):
    """The transaction a member's finished work was in did not commit (its COMMIT failed,
    or another member broke it): none of that work is kept. The cause is chained."""


class _Member:
    __slots__ = ("done", "error", "on_done")

    def __init__(self, on_done: Callable[[BaseException | None], None] | None = None) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.on_done = on_done

    def settle(self, error: BaseException | None) -> None:
        self.error = error
        self.done.set()
        if self.on_done is not None:
            try:
                self.on_done(error)
            except Exception:  # the committer's other members are still to be told
                log.exception("a group commit's completion callback failed")


class _Batch:
    """One open transaction and the members waiting for its commit."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.opened = time.monotonic()  # the write lock taken (``_open`` has begun)
        self.waiting: list[_Member] = []  # finished, their work to be committed
        self.members = 0


class _Savepoint:
    """A savepoint issued on the driver connection. SQLAlchemy's nested transaction costs
    about 125 µs to begin and release (its bookkeeping; the two statements take about 3 µs),
    and a batch runs them under the write lock. SQLAlchemy does not know of this one; the
    shared transaction's COMMIT or ROLLBACK ends it with the rest.

    Every member's savepoint has the same name: members' savepoints follow one another,
    never nest (each is released or rolled back before the turn passes), and a name refers
    to the latest savepoint that has it. The driver then prepares the three statements once
    per connection; a name of its own per member was a new statement to prepare each time,
    and three more entries through the driver's statement cache, for every member."""

    NAME = "group_member"
    _BEGIN = Fast(f"SAVEPOINT {NAME}")
    _RELEASE = Fast(f"RELEASE SAVEPOINT {NAME}")
    _ROLLBACK = Fast(f"ROLLBACK TO SAVEPOINT {NAME}")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._BEGIN.execute(conn)
        self.active = True

    def release(self) -> None:
        self.active = False
        self._RELEASE.execute(self._conn)

    def rollback(self) -> None:
        self.active = False
        self._ROLLBACK.execute(self._conn)
        self._RELEASE.execute(self._conn)

    def undone(self) -> bool:
        """Roll back to this savepoint if it is still active; False if even that fails (the
        transaction is broken)."""
        try:
            if self.active:
                self.rollback()
        except Exception:
            return False
        return True


class MemberUnitOfWork(UnitOfWork):
    """A member's view of the shared transaction. A member that joins others' work runs in a
    savepoint; the member that opens the transaction runs in it directly (nobody else's work
    is in it yet: if it fails, the whole transaction goes, and a savepoint would only cost
    two statements). ``commit()`` keeps the work so far (it is committed with the batch, even
    if the member then fails) and opens a savepoint for whatever follows; ``rollback()``
    undoes the member's work since then."""

    def __init__(self, shared: UnitOfWork, *, first: bool, begin: Callable[[Connection], Any]):
        super().__init__(shared.engine)
        self._connection = shared.connection
        self._begin = begin
        self._savepoint = None if first else _Savepoint(self._connection)
        self.kept = False

    def commit(self) -> None:
        if self._savepoint is not None:
            self._savepoint.release()
        self.kept = True
        self._savepoint = _Savepoint(self.connection)

    def rollback(self) -> None:
        if self._savepoint is not None:
            self._savepoint.rollback()
        else:  # the transaction is this member's alone: start it again
            self.connection.rollback()
            self._begin(self.connection)
        self._savepoint = _Savepoint(self.connection)

    def _release(self) -> None:
        if self._savepoint is not None:
            self._savepoint.release()

    def _undo(self) -> bool:
        """Undo this member's work; False when that takes the whole transaction (the member
        opened it and kept nothing)."""
        if self._savepoint is None:
            return False
        if self._savepoint.active:
            self._savepoint.rollback()
        return True

    def __exit__(self, *exc: object) -> None:  # the shared transaction's owner closes it
        self._connection = None


class GroupCommit:
    """``with group.unit() as uow: ...``: ``uow`` behaves as a unit of work of one's own
    that commits when the block ends without an exception (see the module's docstring).
    ``begin`` starts each shared transaction (takes the write lock)."""

    def __init__(
        self,
        engine: Engine,
        begin: Callable[[Connection], Any],
        *,
        members_max: int = BATCH_MEMBERS_MAX,
        age_max_s: float = BATCH_AGE_MAX_S,
    ) -> None:
        self.engine = engine
        self._begin = begin
        self.members_max = members_max
        self.age_max_s = age_max_s
        self._turn = threading.Lock()  # held by the member whose work runs now
        self._count = threading.Lock()
        self._queued = 0  # members waiting for the turn
        self._batch: _Batch | None = None
        self._holder: int | None = None  # the thread whose member holds the turn
        # writes to run just before the next COMMIT (``write_with_next``), guarded by _count
        self._later: list[tuple[Callable[[Connection], Any], _Member]] = []
        #: batches committed (for tests and benchmarks)
        self.commits = 0

    @contextmanager
    def unit(self) -> Iterator[UnitOfWork]:
        if self._holder == threading.get_ident():
            raise RuntimeError(
                "a unit of work inside another on the same thread would wait for itself: "
                "join the outer one instead"
            )
        with self._count:
            self._queued += 1
        try:
            self._turn.acquire()
        finally:
            with self._count:
                self._queued -= 1
        self._holder = threading.get_ident()
        batch = self._batch
        try:
            first = batch is None
            batch = batch or self._open()
            batch.members += 1
            member_uow = MemberUnitOfWork(batch.uow, first=first, begin=self._begin)
        except BaseException as exc:
            if batch is not None and batch is self._batch:
                self._fail_batch(exc)  # a savepoint could not begin: the transaction is broken
            else:  # no transaction: the writes queued for it write on their own
                self._fail_later(exc)
                self._holder = None
                self._turn.release()
            raise
        me = _Member()
        try:
            yield member_uow
        except BaseException as exc:
            failed: BaseException | None = exc
        else:
            failed = None
        # The turn is still ours: settle this member's savepoint, then commit or pass on.
        whole = False
        try:
            if failed is None:
                member_uow._release()
            else:
                whole = not member_uow._undo()  # alone in it: the whole transaction goes
        except BaseException as exc:
            self._fail_batch(exc)  # the transaction itself is broken: nobody's work holds
            raise
        if whole:
            assert failed is not None
            self._fail_batch(failed)  # lets the turn go, once
            raise failed
        keep = failed is None or member_uow.kept
        self._end_turn(batch, me if keep else None)
        if keep:
            self._wait(batch, me)
            if me.error is not None:  # each member its own exception, the cause chained
                raise GroupCommitFailed(
                    f"the shared transaction failed: {me.error!r}"
                ) from me.error
        if failed is not None:
            raise failed

    def write_with_next(
        self,
        write: Callable[[Connection], Any],
        on_done: Callable[[BaseException | None], None],
    ) -> bool:
        """Run ``write`` in the transaction of the batch that commits next, just before its
        COMMIT, without a turn of its own (no thread to wait in, no savepoint of its own
        among the members): ``on_done(None)`` once it is durable, ``on_done(error)`` if it
        was not kept (the error a ``GroupCommitFailed`` or the write's own). ``on_done`` is
        called on the committing thread. Only when a batch is sure to commit after it: one
        is open and not yet committing, or a member is waiting for the turn (and will open
        one); otherwise nothing is queued and False is returned, and the caller writes on
        its own. For small writes that go with the members' (an answer to be replayed)."""
        with self._count:
            # A batch's commit forgets it (``_batch = None``) before it takes the queue.
            if self._batch is None and not self._queued:
                return False
            self._later.append((write, _Member(on_done)))
            return True

    def _wait(self, batch: _Batch, me: _Member) -> None:
        """Wait for the batch's commit. The member that was to continue it always ends its
        turn by committing or passing it on; should the turn ever be free with the batch
        still open (a waiter for the turn that never took it), a waiting member commits."""
        while not me.done.wait(self.age_max_s * 5):
            if self._turn.acquire(blocking=False):
                try:
                    if self._batch is batch:
                        self._commit(batch)
                finally:
                    self._turn.release()

    def _open(self) -> _Batch:
        uow = UnitOfWork(self.engine)
        uow.__enter__()
        try:
            self._begin(uow.connection)
        except BaseException:
            uow.__exit__(None, None, None)
            raise
        self._batch = _Batch(uow)
        return self._batch

    def _end_turn(self, batch: _Batch, member: _Member | None) -> None:
        """With the turn held: enlist ``member`` (if any) for the batch's commit, and commit
        now unless another member is waiting for the turn and the batch has room; then let
        the turn go."""
        try:
            if member is not None:
                batch.waiting.append(member)
            with self._count:
                others = self._queued
            full = (
                batch.members >= self.members_max
                or time.monotonic() - batch.opened >= self.age_max_s
            )
            if others and not full:
                return  # the next member continues the transaction
            self._commit(batch)
        finally:
            self._holder = None
            self._turn.release()

    def _commit(self, batch: _Batch) -> None:
        self._batch = None
        error: BaseException | None = None
        committed: float | None = None  # the lock let go with the COMMIT
        try:
            self._run_later(batch)
            if batch.waiting:  # else every member failed: nothing to keep, nothing to fsync
                batch.uow.commit()
                committed = time.monotonic()
                self.commits += 1
        except BaseException as exc:
            error = exc
        finally:
            try:
                _close(batch.uow)  # rolls back what was not committed
            finally:  # whatever closing did, nobody waits for ever
                with suppress(Exception):  # counting never fails a batch, nor hangs one
                    ended = time.monotonic() if committed is None else committed
                    metrics.GROUP_HELD.inc(ended - batch.opened)
                    if committed is not None:
                        metrics.GROUP_BATCHES.inc()
                        metrics.GROUP_MEMBERS.inc(len(batch.waiting))
                for waiting in batch.waiting:
                    waiting.settle(error)

    def _run_later(self, batch: _Batch) -> None:
        """The writes queued to go with this commit, in a savepoint of their own: one that
        fails undoes them all (each is told, and writes on its own), not the members' work."""
        with self._count:
            later, self._later = self._later, []
        if not later:
            return
        savepoint: _Savepoint | None = None
        try:
            conn = batch.uow.connection
            savepoint = _Savepoint(conn)
            for write, _ in later:
                write(conn)
        except BaseException as exc:
            for _, member in later:  # taken off the queue: told here, or never
                member.settle(exc)
            if savepoint is None or not isinstance(exc, Exception) or not savepoint.undone():
                raise  # the transaction itself is broken: every member's work goes
            return
        try:
            savepoint.release()
        except BaseException as exc:
            for _, member in later:
                member.settle(exc)
            raise
        batch.waiting.extend(member for _, member in later)

    def _fail_later(self, exc: BaseException) -> None:
        """Nobody is sure to commit the writes queued for the next commit now: each is told,
        and writes on its own."""
        with self._count:
            later, self._later = self._later, []
        for _, member in later:
            member.settle(exc)

    def _fail_batch(self, exc: BaseException) -> None:
        """The shared transaction cannot go on: roll it back, fail every member waiting for
        it, let the turn go."""
        batch, self._batch = self._batch, None
        try:
            if batch is not None:
                try:
                    _close(batch.uow)  # rolls back
                finally:  # whatever closing did, nobody waits for ever
                    with suppress(Exception):  # nor does a failed count keep them waiting
                        metrics.GROUP_HELD.inc(time.monotonic() - batch.opened)
                    for waiting in batch.waiting:
                        waiting.settle(exc)
            self._fail_later(exc)
        finally:
            self._holder = None
            self._turn.release()


def _close(uow: UnitOfWork) -> None:
    """End the shared transaction's connection (rolling back what is not committed). A
    connection that is gone (the server restarted, the network dropped) fails to roll back:
    the pool discards it, and the members learn of the failure that broke it."""
    try:
        uow.__exit__(None, None, None)
    except Exception:
        log.warning("closing a group commit's connection failed", exc_info=True)
