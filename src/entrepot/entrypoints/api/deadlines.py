"""Deadlines that act by themselves while the API serves.

Quotes and transfers expire, escrows are released or refunded at their deadline, trade orders
are cancelled, refunded or released, loans fall due: each context's ``process_deadlines``
does it, and nothing did while ``entrepot serve`` ran unless an operator ran the CLI's
``deadlines`` commands on a schedule. ``entrepot serve`` now runs them itself, in one thread of
its supervising process (one runner whatever the number of workers; each pass is idempotent,
so a runner of another host on the same database, or an operator's run, does no harm)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

log = logging.getLogger(__name__)

# Often enough for deadlines set in minutes to days (quotes and transfers expire on their own
# when next read or decided, escrows when decided); a payout that keeps failing (its payee
# is suspended) is retried at each pass, so not every second.
DEFAULT_EVERY_S = 30.0


def passes(app: Any) -> Iterator[tuple[str, Callable[[], dict[str, int]]]]:
    """Each context's deadline pass, in the order they run (payments first: an order's
    escrow may have expired on its own)."""
    yield "payments", app.payments.process_deadlines
    # reviewers' verdicts that took effect but did not reach the decision log then
    yield "decision log", app.payments.log_pending_verdicts
    yield "trade", app.trade.process_deadlines
    yield "lending", app.lending.process_deadlines
    # credit decisions that took effect but did not reach the decision log then
    yield "lending decision log", app.lending.log_pending_decisions
    # answers of Idempotency-Keys past their retention period (every context's keyed writes)
    yield "idempotency", app.payments.purge_idempotency


def run_once(app: Any) -> dict[str, dict[str, int]]:
    """One pass over every context; a context that fails is logged and the others still run
    (its deadlines are retried at the next pass)."""
    done: dict[str, dict[str, int]] = {}
    for name, run in passes(app):
        try:
            done[name] = run()
        except Exception:
            log.exception("the %s deadlines pass failed; retried at the next one", name)
            continue
        if any(done[name].values()):
            log.info("%s deadlines: %s", name, done[name])
    return done


class DeadlineRunner:
    """Runs :func:`run_once` every ``every_s`` seconds in a daemon thread, on an app from
    ``open_app`` (opened in the thread, closed when stopped)."""

    def __init__(self, open_app: Callable[[], AbstractContextManager[Any]], every_s: float):
        # A period the thread cannot wait for (inf: Event.wait raises OverflowError) would end
        # the runner at its first wait, and no deadline would act while the API serves.
        if not 0 < every_s <= threading.TIMEOUT_MAX:
            raise ValueError(
                "deadlines run every so many seconds, more than 0 and at most "
                f"{threading.TIMEOUT_MAX:.0f}: {every_s!r}"
            )
        self.every_s = every_s
        self._open_app = open_app
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)

    def start(self) -> DeadlineRunner:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        # An app that cannot be opened (the database unreachable as the server starts, a
        # PostgreSQL restart under it) is opened again at the next period: the runner gave
        # up at the first failure, and no deadline acted again while the API served.
        while not self._stop.is_set():
            try:
                with self._open_app() as app:
                    while not self._stop.wait(self.every_s):
                        run_once(app)
                return
            except Exception:  # the API still serves; say why deadlines wait
                log.exception(
                    "the deadline runner could not run; it opens the app again in %g s",
                    self.every_s,
                )
            self._stop.wait(self.every_s)


__all__ = ["DEFAULT_EVERY_S", "DeadlineRunner", "run_once"]
