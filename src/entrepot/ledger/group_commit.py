"""Group commit for single-transfer callers.

An fsync costs about as much as deciding thousands of transfers, so callers that each send one
transfer (an HTTP request, a payment) would be bound by the disk. The committer gathers the
requests that arrive while the previous commit is in flight and decides and commits them
together in one ledger batch: each caller still gets its own results, and nothing is
acknowledged before its commit is durable.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future

from entrepot.kernel.limits import BATCH_EVENTS_MAX
from entrepot.ledger.model import CreateTransferResult, Transfer, TransferFlags
from entrepot.ledger.services import Ledger
from entrepot.ledger.validate import check_transfers

_Request = tuple[Sequence[Transfer], "Future[list[CreateTransferResult]]"]


class GroupCommitter:
    def __init__(self, ledger: Ledger, batch_events_max: int = BATCH_EVENTS_MAX) -> None:
        self.ledger = ledger
        self.batch_events_max = batch_events_max
        self._queue: list[_Request] = []
        self._cond = threading.Condition()
        self._closed = False
        self.commits = 0
        self._thread = threading.Thread(target=self._run, name="ledger-group-commit", daemon=True)
        self._thread.start()

    def create_transfers(self, batch: Sequence[Transfer]) -> list[CreateTransferResult]:
        """Same contract as :meth:`Ledger.create_transfers`; blocks until durable."""
        batch = check_transfers(batch)  # a malformed request fails alone, before queueing
        if not batch:
            return []
        future: Future[list[CreateTransferResult]] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("group committer is closed")
            self._queue.append((batch, future))
            self._cond.notify()
        return future.result()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def __enter__(self) -> GroupCommitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self) -> list[_Request] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            taken: list[_Request] = []
            events = 0
            while self._queue:
                batch, _ = self._queue[0]
                # A request ending inside an open chain must not chain into the next one.
                alone = bool(batch[-1].flags & TransferFlags.LINKED)
                if taken and (alone or events + len(batch) > self.batch_events_max):
                    break
                taken.append(self._queue.pop(0))
                events += len(batch)
                if alone:
                    break
            return taken

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            combined = [t for batch, _ in taken for t in batch]
            try:
                results = self.ledger.create_transfers(combined)
            except BaseException as exc:  # every waiting caller learns of the failure
                for _, future in taken:
                    future.set_exception(exc)
                continue
            self.commits += 1
            start = 0
            for batch, future in taken:
                future.set_result(results[start : start + len(batch)])
                start += len(batch)
