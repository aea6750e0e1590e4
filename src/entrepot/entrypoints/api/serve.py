"""``entrepot serve``: the API under uvicorn, several worker processes, each with a listening
socket of its own (ADR 0007).

uvicorn's ``--workers`` shares one listening socket among its workers. A worker woken for a
new connection accepts every connection then queued, so clients that connect together (a
bank's connection pool, a load balancer's keep-alive connections) all land on one worker:
measured here, 32 of 32 connections on one of two workers, the other idle, the scheme's
throughput that of one process. Here the supervisor binds one socket per worker, all on
the same port with ``SO_REUSEPORT``, and Linux spreads connections over them by address
hash. The supervisor keeps the sockets: a worker that dies or is restarted leaves its
socket listening, and the connections queued on it wait for the replacement instead of
being refused.

uvicorn's own supervisor does the rest (health checks, restarts, SIGHUP reload, SIGTTIN and
SIGTTOU to add or remove a worker, shutdown on SIGINT/SIGTERM, stop on a start-up failure);
only the socket each worker is given differs. ``SO_REUSEPORT`` would also let a second server
started on the same port join the first one's group and take a share of its connections:
the port is first bound without the option, so that a port in use is refused as before.
Where ``SO_REUSEPORT`` does not balance (not Linux), workers share one socket as before."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from entrepot.entrypoints.api.request_metrics import MULTIPROCESS_DIR_ENV

log = logging.getLogger("uvicorn.error")

APP = "entrepot.entrypoints.api.app:create_app_from_env"
BACKLOG = 2048  # uvicorn's default
#: The most bytes a request's head (its request line and headers) may take: the API's own
#: headers (a credential, a signature, an Idempotency-Key) take well under 2 KiB. h11 bounds
#: it (16 KiB), httptools does not: it buffers a header that never ends, before anything has
#: looked at the request's credential.
HEAD_BYTES_MAX = 64 * 1024
#: The most seconds a request's head may take to arrive, from the connection (or, on a
#: kept-alive one, from the head's first byte): uvicorn has no such deadline, and held a
#: connection that sent nothing, or a head a byte a minute, for ever.
HEAD_S_MAX = 30.0
#: The most seconds a request's body may go on coming once the request is answered (a 401,
#: answered before its body is read): each byte put off uvicorn's keep-alive timeout.
DRAIN_S_MAX = 30.0


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with each request's head bounded to ``HEAD_BYTES_MAX``
    bytes: past it, 431 and the connection closed. One connection sending a header without an
    end made a worker hold twice what it sent, 400 MB for 200 MB sent (found by a review), and
    a few such connections, anonymous, got it killed for its memory; every request it was
    serving with it. Counted per request, from the read that starts its head (a head begun in
    a read that also ended the previous request, pipelined, is counted from the next read: it
    may then run one read, at most 256 KiB, past the limit, still bounded).

    Bounded in time too: a head not whole ``HEAD_S_MAX`` seconds after the connection was
    made (or, on a kept-alive connection, after its first byte; between requests uvicorn's
    keep-alive timeout closes an idle one) is answered 408 and the connection closed. A
    connection that sent nothing, or a byte a minute, was held for ever: anyone could open
    them by the thousand, until a worker had no file descriptor left (found by a review).
    So is a body still coming ``DRAIN_S_MAX`` seconds after its request was answered (a 401
    is answered before the body is read): each byte put off the keep-alive timeout, and a
    body declared long, sent a byte at a time, held the connection as long, anonymously."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # a request's head is being read, or the next one awaited
        self._head_bytes = 0
        self._heads = 0  # request heads read whole on this connection
        self._head_began: float | None = None  # when the head being read began (loop time)
        self._head_timer: asyncio.TimerHandle | None = None  # one a connection, re-armed
        self._body_open = False  # the last request's body is still coming
        self._drain_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_began = self.loop.time()
        self._head_timer = self.loop.call_later(HEAD_S_MAX, self._check_head)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self._stop_drain_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_began is None:  # a kept-alive connection's next request
            self._head_began = self.loop.time()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads += 1
        self._body_open = True
        self._head_began = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # the next read starts the next request's head
        self._body_open = False
        self._stop_drain_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The last request answered (not one pipelined behind it, whose answer is to come)
        # while its body still comes: it is not read, and may come only so long.
        cycle = self.cycle
        if (
            self._body_open
            and cycle is not None
            and cycle.response_complete
            and self._drain_deadline is None
            and not self.transport.is_closing()
        ):
            self._drain_deadline = self.loop.call_later(DRAIN_S_MAX, self._body_too_slow)

    def _stop_drain_deadline(self) -> None:
        if self._drain_deadline is not None:
            self._drain_deadline.cancel()
            self._drain_deadline = None

    def _body_too_slow(self) -> None:
        self._drain_deadline = None
        if self._body_open and not self.transport.is_closing():
            self.transport.close()  # answered already: nothing more to say

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _check_head(self) -> None:
        """The connection's one head timer (a timer set and cancelled a request cost each
        request a few microseconds): a head begun ``HEAD_S_MAX`` ago and not whole is
        refused; else the timer is set again for when the head being read (or the next, not
        begun) would be late."""
        self._head_timer = None
        if self.transport.is_closing():
            return
        now, began = self.loop.time(), self._head_began
        if began is None or not self._in_head or now - began < HEAD_S_MAX:
            due = HEAD_S_MAX if began is None else max(began + HEAD_S_MAX - now, 0.0)
            self._head_timer = self.loop.call_later(due or HEAD_S_MAX, self._check_head)
            return
        self._refuse(
            408,
            "request_timeout",
            f"the request line and headers did not arrive within {HEAD_S_MAX:g} s",
        )

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused: what else comes is not read
        in_head, heads = self._in_head, self._heads
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            self._head_bytes = 0
            return
        # Still in a head: the one read or awaited at this read's start, or one begun in
        # this read after a previous request's (counted from the next read).
        self._head_bytes = self._head_bytes + len(data) if in_head and heads == self._heads else 0
        if self._head_bytes > HEAD_BYTES_MAX:
            self._refuse(
                431,
                "request_head_too_large",
                f"the request line and headers take more than {HEAD_BYTES_MAX} bytes, the "
                "most this API reads",
            )

    def _refuse(self, status: int, code: str, detail: str) -> None:
        """Answer ``status`` as a problem and close the connection (its head is not read on)."""
        self._stop_head_timer()
        body = json.dumps(
            {
                "type": f"https://entrepot.dev/problems/{code}",
                "title": code.replace("_", " "),
                "status": status,
                "code": code,
                "detail": detail,
            }
        ).encode()
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/problem+json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()


#: uvicorn's ``http`` for the workers (an import path: a worker process imports it)
HTTP_PROTOCOL = f"{__name__}:{BoundedHeadProtocol.__qualname__}"


def balances_connections() -> bool:
    """Whether the kernel spreads connections over sockets sharing a port (Linux's
    ``SO_REUSEPORT``; elsewhere the option exists with other meanings, or not at all)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def reuseport_sockets(
    host: str, port: int, count: int, backlog: int = BACKLOG
) -> list[socket.socket]:
    """``count`` sockets listening on ``host:port`` with ``SO_REUSEPORT``. Listening from the
    start: connections that arrive before a worker serves its socket wait in its queue, and
    another server probing the port finds it taken. Port 0: the first socket's port, chosen
    by the kernel, for all. A port in use (by another program, or by another server's
    ``SO_REUSEPORT`` group) raises ``OSError``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Without SO_REUSEPORT: fails if anything holds the port, a reuse-port group included.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        port = probe.getsockname()[1]
    return _join_group(family, host, port, count, backlog)


def _join_group(family: int, host: str, port: int, count: int, backlog: int) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


#: How long a replacement worker (SIGHUP) may take to start: importing, migrating, loading the
#: sanctions lists (4 s on an idle 2-core machine, more on a loaded one). uvicorn allows it its
#: health-check timeout (5 s), meant for a running worker's answer to a ping: a restart on a
#: busy server gave up at the first slow replacement and kept the old workers (an error in
#: the log was all that said so).
WORKER_START_S = 120.0


class OwnSocketWorkers(Multiprocess):
    """uvicorn's supervisor, worker ``i`` serving ``sockets[i]`` only: at start, when it is
    found dead or hung and replaced, and when SIGHUP restarts the workers one by one."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        self.processes_num = len(sockets)
        #: a worker failed while starting: the server stopped (exit status STARTUP_FAILURE)
        self.failed_to_start = False
        #: workers that have not answered a health check yet, and when each was started
        self._starting: dict[Process, float] = {}

    def _start(self, index: int) -> Process:
        process = Process(self.config, [self.sockets[index]])
        process.start()
        self._starting[process] = time.monotonic()
        return process

    def _still_starting(self, process: Process) -> bool:
        """Whether ``process`` is a worker still starting, not a hung one: it has not answered
        a health check since it started, less than ``WORKER_START_S`` ago. A new process
        answers only once its interpreter is up and its imports done, which on a loaded
        machine took more than the health check's 5 s: the worker was killed as hung and
        replaced by one that started as slowly (found by a helper running ``entrepot serve``
        at a load of 7 on 2 cores)."""
        since = self._starting.get(process)
        if since is None:
            return False
        if not process.process.is_alive() or process.ping(timeout=0.2):
            del self._starting[process]  # exited (a death, handled as one) or answering
            return False
        if time.monotonic() - since < WORKER_START_S:
            return True
        del self._starting[process]  # too long: checked, and replaced, as a hung one
        return False

    def init_processes(self) -> None:
        self.processes = [self._start(i) for i in range(self.processes_num)]

    def restart_all(self) -> None:
        """Each worker's replacement serves before the worker it replaces stops; a
        replacement that does not become ready within ``WORKER_START_S`` stops the restart,
        the old worker kept."""
        for index, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._start(index)
            if not new.wait_until_ready(WORKER_START_S, self.should_exit):
                self._starting.pop(new, None)
                new.kill()
                new.join()
                if not self.should_exit.is_set():
                    log.error(
                        "worker [%s] was not ready in time: worker [%s] kept, restart stopped",
                        new.pid,
                        old.pid,
                    )
                return
            self._starting.pop(old, None)
            old.terminate()
            old.join()
            self.processes[index] = new

    def keep_subprocess_alive(self) -> None:
        """Replace a worker that died or stopped answering its health check. One that failed
        while starting (the app, its database or its settings are broken: every replacement
        would fail the same way) stops the server instead."""
        if self.should_exit.is_set():
            return
        for index, process in enumerate(self.processes):
            if self._still_starting(process) or process.is_alive(
                timeout=self.config.timeout_worker_healthcheck
            ):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                log.error("worker [%s] failed to start: stopping", process.pid)
                self.failed_to_start = True
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            log.warning("worker [%s] died or hung: replaced", process.pid)
            self.processes[index] = self._start(index)

    def handle_ttin(self) -> None:
        """One worker more, with a socket of its own in the group."""
        first = self.sockets[0]
        host, port = first.getsockname()[:2]
        try:
            (sock,) = _join_group(first.family, host, port, 1, self.config.backlog)
        except OSError as exc:
            log.error("SIGTTIN: cannot add a socket on %s:%s: %s", host, port, exc)
            return
        self.sockets.append(sock)
        self.processes_num += 1
        self.processes.append(self._start(len(self.sockets) - 1))
        log.warning("SIGTTIN: %d workers", self.processes_num)

    def handle_ttou(self) -> None:
        """One worker fewer. Its socket leaves the group first (the supervisor's copy is
        closed, then the worker's as it stops), so new connections go to the others."""
        if self.processes_num <= 1:
            log.warning("SIGTTOU: one worker left, kept")
            return
        self.processes_num -= 1
        process, sock = self.processes.pop(), self.sockets.pop()
        self._starting.pop(process, None)
        sock.close()
        process.terminate()
        process.join()
        log.warning("SIGTTOU: %d workers", self.processes_num)


SCHEDULING = {"batch": getattr(os, "SCHED_BATCH", None), "normal": getattr(os, "SCHED_OTHER", None)}


def set_scheduling(policy: str) -> None:
    """The Linux scheduling policy of this thread, and so of the processes and threads it
    starts afterwards (``batch``: ``SCHED_BATCH``, ``normal``: ``SCHED_OTHER``; nice value
    kept). ``batch`` turns off wake-up preemption: a worker thread that wakes another (a
    group commit's next member, the thread pool's next task) keeps running, instead of being
    switched out for the woken thread while it still holds the interpreter lock, which the
    woken thread then waits for (ADR 0008). No privilege is needed; elsewhere than Linux,
    nothing is done."""
    if policy not in SCHEDULING:
        raise ValueError(f"scheduling policy {policy!r}: expected one of {', '.join(SCHEDULING)}")
    chosen = SCHEDULING[policy]
    if chosen is None or not hasattr(os, "sched_setscheduler"):
        return
    os.sched_setscheduler(0, chosen, os.sched_param(0))


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 2,
    app: str = APP,
    log_level: str = "warning",
    scheduling: str = "batch",
) -> None:
    """Run ``app`` (a factory's import path) until SIGINT or SIGTERM, the workers under the
    ``scheduling`` policy (:func:`set_scheduling`)."""
    set_scheduling(scheduling)
    if workers <= 1:
        uvicorn.run(app, **_uvicorn_options(host, port, workers, log_level))
        return
    # The workers' request counts, summed at each scrape (request_metrics.py): a directory
    # of this run's own, since counts left by an earlier run would be added to this one's.
    shared = tempfile.mkdtemp(prefix="entrepot-metrics-")
    os.environ[MULTIPROCESS_DIR_ENV] = shared
    try:
        _serve_workers(host, port, workers, app, log_level)
    finally:
        os.environ.pop(MULTIPROCESS_DIR_ENV, None)
        shutil.rmtree(shared, ignore_errors=True)


def _uvicorn_options(host: str, port: int, workers: int, log_level: str) -> dict[str, Any]:
    """What every way of starting uvicorn here passes it: the app is a factory, and each
    worker speaks HTTP through :class:`BoundedHeadProtocol`."""
    return {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_level": log_level,
        "http": HTTP_PROTOCOL,
    }


def _serve_workers(host: str, port: int, workers: int, app: str, log_level: str) -> None:
    if not balances_connections():
        uvicorn.run(app, **_uvicorn_options(host, port, workers, log_level))
        return
    config = uvicorn.Config(app, **_uvicorn_options(host, port, workers, log_level))
    try:
        sockets = reuseport_sockets(host, port, workers, config.backlog)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", host, port, exc)
        sys.exit(STARTUP_FAILURE)
    bound = sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    log.info("listening on http://%s:%d, %d workers, a socket each", shown, bound, workers)
    supervisor = OwnSocketWorkers(config, sockets)
    try:
        supervisor.run()
    finally:
        for sock in supervisor.sockets:
            sock.close()
    if supervisor.failed_to_start:
        sys.exit(STARTUP_FAILURE)
