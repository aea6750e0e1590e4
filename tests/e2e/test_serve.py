"""``entrepot serve``: workers with a listening socket each (entrypoints/api/serve.py).

A real server in a subprocess; which worker holds which connection is read from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrepot.entrypoints.api.serve import HEAD_BYTES_MAX, balances_connections, reuseport_sockets
from entrepot.sim.payments_bench import wait_ready

pytestmark = pytest.mark.skipif(
    not balances_connections(), reason="SO_REUSEPORT spreads connections on Linux only"
)

_LISTEN, _ESTABLISHED = "0A", "01"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _socket_inodes(pid: int) -> set[str]:
    """The sockets ``pid`` holds (none once it has exited: workers come and go)."""
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _tcp_rows(port: int, state: str) -> dict[str, int]:
    """This host's TCP sockets whose local port is ``port``, in ``state``: inode -> the
    remote port."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                found[fields[9]] = int(fields[2].rsplit(":", 1)[1], 16)
    return found


def _tcp(port: int, state: str) -> set[str]:
    return set(_tcp_rows(port, state))


def _workers(server: int, port: int) -> list[int]:
    """The server's children that listen on ``port`` (its workers)."""
    listening = _tcp(port, _LISTEN)
    return [c for c in _children(server) if _socket_inodes(c) & listening]


def _listening_per_worker(server: int, port: int) -> dict[int, set[str]]:
    listening = _tcp(port, _LISTEN)
    return {w: _socket_inodes(w) & listening for w in _workers(server, port)}


def _wait_workers(
    server: int, port: int, count: int, gone: tuple[int, ...] = ()
) -> dict[int, set[str]]:
    """Wait until ``count`` workers serve, none of ``gone``; each holds one listening
    socket, and no two the same one. A starting worker is seen by /proc a moment before its
    socket is (the listing is read in several steps): it is waited for, not taken as the
    state, until the deadline."""
    deadline = time.monotonic() + 90
    while True:
        held = _listening_per_worker(server, port)
        settled = (
            len(held) == count
            and not set(gone) & set(held)
            and all(len(inodes) == 1 for inodes in held.values())
            and len(set().union(*held.values())) == count
        )
        if settled:
            return held
        assert time.monotonic() < deadline, (held, gone)
        time.sleep(0.2)


def _connections_per_worker(server: int, port: int, clients: list[socket.socket]) -> dict[int, int]:
    """How many of ``clients``' connections each worker holds."""
    mine = {c.getsockname()[1] for c in clients}
    established = {i for i, peer in _tcp_rows(port, _ESTABLISHED).items() if peer in mine}
    return {w: len(_socket_inodes(w) & established) for w in _workers(server, port)}


def _spread(server: int, port: int, n: int, *, stopped: int | None = None) -> dict[int, int]:
    """How many of ``n`` connections opened together (:func:`_open_together`) each worker
    accepted, read once every one was accepted and before any request went on them (an
    answered connection left idle is closed by the server after its 5 s keep-alive: on a
    loaded machine the first ones answered went before the last answer came); then each is
    served, and closed."""
    clients = _open_together(port, n, stopped=stopped)
    try:
        deadline = time.monotonic() + 90
        while True:
            held = _connections_per_worker(server, port, clients)
            if sum(held.values()) == n:
                break
            assert time.monotonic() < deadline, held
            time.sleep(0.05)
        _served(clients)
        return held
    finally:
        for c in clients:
            c.close()


def start_server(
    env: dict[str, str], port: int, workers: int, *extra: str, new_session: bool = False
) -> subprocess.Popen[bytes]:
    """``entrepot serve`` on ``port`` with ``env`` (its database and home), as an operator
    runs it; ``new_session``: in a process group of its own (to kill it whole)."""
    cmd = [sys.executable, "-m", "entrepot", "serve", "--port", str(port)]
    return subprocess.Popen(
        [*cmd, "--workers", str(workers), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=new_session,
    )


def _serve(tmp_path: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ENTREPOT_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "ENTREPOT_HOME": str(tmp_path),
    }
    return start_server(env, port, workers)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = _free_port()
    proc = _serve(tmp_path_factory.mktemp("serve"), port, workers=2)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, timeout_s=120)
        deadline = time.monotonic() + 60
        while len(_workers(proc.pid, port)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # one answered: the other may still be starting
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _open_together(port: int, n: int, *, stopped: int | None = None) -> list[socket.socket]:
    """``n`` connections opened at once, as a client's pool opens them. ``stopped``: a worker
    paused (SIGSTOP) while they arrive, as one busy with other work would be."""
    if stopped is not None:
        os.kill(stopped, signal.SIGSTOP)
    try:
        conns = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(n)]
        if stopped is not None:
            time.sleep(0.5)  # time for the other workers to accept whatever they can
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
    return conns


def _served(conns: list[socket.socket]) -> None:
    """A request sent on each connection, then every answer read: all are served."""
    for c in conns:
        c.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
    for c in conns:
        answer = c.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer


def _connect_together(port: int, n: int) -> list[socket.socket]:
    """``n`` connections opened at once, each served (:func:`_served`)."""
    conns = _open_together(port, n)
    _served(conns)
    return conns


def test_sockets_share_a_port_the_kernel_chose() -> None:
    sockets = reuseport_sockets("127.0.0.1", 0, 3)
    try:
        ports = {s.getsockname()[1] for s in sockets}
        assert len(ports) == 1 and ports != {0}
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in sockets)
    finally:
        for s in sockets:
            s.close()


def test_a_port_held_by_another_program_is_refused_and_nothing_stays_bound() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(OSError):
            reuseport_sockets("127.0.0.1", port, 2)
    again = reuseport_sockets("127.0.0.1", port, 2)  # the failed attempt kept nothing
    for s in again:
        s.close()


def test_a_group_holds_its_port_before_any_worker_serves_it() -> None:
    """The supervisor's sockets listen from the start: another server's probe finds the
    port taken while the workers are still starting (and early connections wait)."""
    sockets = reuseport_sockets("127.0.0.1", 0, 2)
    try:
        with pytest.raises(OSError):
            reuseport_sockets("127.0.0.1", sockets[0].getsockname()[1], 2)
        with socket.create_connection(sockets[0].getsockname(), timeout=5):
            pass  # queued, not refused
    finally:
        for s in sockets:
            s.close()


def test_serve_on_a_port_in_use_exits_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        proc = _serve(tmp_path, other.getsockname()[1], workers=2)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err.decode()
    assert b"cannot listen on 127.0.0.1" in err


@pytest.mark.parametrize("busy", [False, True])
def test_connections_made_together_spread_over_the_workers(
    server: tuple[subprocess.Popen[bytes], int], busy: bool
) -> None:
    """Each worker gets some of 32 connections (all on one: a chance of 2 in 2**32), also
    when one of them is busy as they arrive: with uvicorn's shared socket the idle worker
    accepted all 32, and the busy one then had nothing to do for as long as they lasted."""
    proc, port = server
    workers = _workers(proc.pid, port)
    per_worker = _spread(proc.pid, port, 32, stopped=workers[0] if busy else None)
    assert len(per_worker) == 2, per_worker
    assert sum(per_worker.values()) == 32, per_worker
    assert min(per_worker.values()) > 0, per_worker


def test_a_killed_worker_is_replaced_and_connections_meanwhile_wait_for_it(
    server: tuple[subprocess.Popen[bytes], int],
) -> None:
    """The supervisor keeps the dead worker's socket listening: connections hashed to it
    while no process serves it queue there and are answered by the replacement."""
    proc, port = server
    before = _workers(proc.pid, port)
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    clients = _connect_together(port, 32)  # some wait on the dead worker's socket
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = _workers(proc.pid, port)
            if len(now) == 2 and before[0] not in now:
                break
            time.sleep(0.2)
        assert before[0] not in now and before[1] in now and len(now) == 2, (before, now)
    finally:
        for c in clients:
            c.close()


def test_sigterm_stops_the_supervisor_and_its_workers(tmp_path: Path) -> None:
    port = _free_port()
    proc = _serve(tmp_path, port, workers=2)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, timeout_s=120)
        workers = list(_wait_workers(proc.pid, port, 2))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    for w in workers:
        deadline = time.monotonic() + 30
        while not _gone(w):  # exited with the supervisor; its reaping may take a moment
            assert time.monotonic() < deadline, w
            time.sleep(0.1)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # exited, not yet reaped


def test_a_second_server_on_the_same_port_is_refused(
    server: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    """Each worker's socket has SO_REUSEPORT, which would let a second server of the same
    user join the group and take a share of the first one's connections."""
    _, port = server
    with pytest.raises(OSError):
        reuseport_sockets("127.0.0.1", port, 2)
    second = _serve(tmp_path, port, workers=2)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 3, err.decode()
    assert b"cannot listen on 127.0.0.1" in err


def test_sighup_replaces_each_worker_on_its_own_socket(
    server: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = server
    before = _wait_workers(proc.pid, port, 2)
    os.kill(proc.pid, signal.SIGHUP)
    after = _wait_workers(proc.pid, port, 2, gone=tuple(before))
    assert set().union(*after.values()) == set().union(*before.values())  # the same sockets
    assert min(_spread(proc.pid, port, 32, stopped=next(iter(after))).values()) > 0


def test_sigttin_and_sigttou_add_and_remove_a_worker_with_its_socket(
    server: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = server
    before = _wait_workers(proc.pid, port, 2)
    os.kill(proc.pid, signal.SIGTTIN)
    three = _wait_workers(proc.pid, port, 3)
    (added,) = set(three) - set(before)
    try:
        assert min(_spread(proc.pid, port, 48, stopped=added).values()) > 0
    finally:  # back to two workers whatever happened: the module's other tests share them
        os.kill(proc.pid, signal.SIGTTOU)
    after = _wait_workers(proc.pid, port, 2, gone=(added,))
    assert _tcp(port, _LISTEN) == set().union(*after.values())  # its socket listens no more
    for c in _connect_together(port, 32):
        c.close()


def _serve_command(app_dir: Path, app: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The command and environment that serve ``app`` (a factory in a module of ``app_dir``)
    with two workers on ``port``."""
    code = (
        "from entrepot.entrypoints.api.serve import serve; "
        f"serve(app={app!r}, port={port}, workers=2)"
    )
    path = f"{app_dir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    return [sys.executable, "-c", code], {**os.environ, "PYTHONPATH": path}


def test_sighup_waits_for_replacements_that_start_slowly(tmp_path: Path) -> None:
    """A worker starts in seconds (imports, migrations, the sanctions lists), more on a busy
    machine: uvicorn's 5 s allowance gave up after the first slow replacement and kept the old
    workers, saying so only in the log."""
    marker = tmp_path / "slow"
    (tmp_path / "slow_app.py").write_text(
        "import time\n"
        "from contextlib import asynccontextmanager\n"
        "from pathlib import Path\n"
        "from fastapi import FastAPI\n"
        "@asynccontextmanager\n"
        "async def lifespan(app):\n"
        f"    if Path({str(marker)!r}).exists():\n"
        "        time.sleep(6)\n"
        "    yield\n"
        "def make():\n"
        "    app = FastAPI(lifespan=lifespan)\n"
        "    app.get('/health')(lambda: {'status': 'ok'})\n"
        "    return app\n"
    )
    port = _free_port()
    command, env = _serve_command(tmp_path, "slow_app:make", port)
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, timeout_s=120)
        before = _wait_workers(proc.pid, port, 2)
        marker.touch()
        os.kill(proc.pid, signal.SIGHUP)
        after = _wait_workers(proc.pid, port, 2, gone=tuple(before))
        assert set().union(*after.values()) == set().union(*before.values())
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_workers_slow_to_start_are_waited_for_not_killed_as_hung(tmp_path: Path) -> None:
    """A worker answers the supervisor's health check once its interpreter is up and its
    imports done: on a loaded machine that took more than the check's 5 s, and the worker
    was killed as hung and replaced by one that started as slowly (the log said "died or
    hung: replaced"; with every start that slow, no worker ever served). Here every worker
    process sleeps 7 s before it runs anything (``sitecustomize``, in spawned children only):
    the workers first started are the ones that serve."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys, time\nif '--multiprocessing-fork' in sys.argv:\n    time.sleep(7)\n"
    )
    (tmp_path / "plain_app.py").write_text(
        "from fastapi import FastAPI\n"
        "def make():\n"
        "    app = FastAPI()\n"
        "    app.get('/health')(lambda: {'status': 'ok'})\n"
        "    return app\n"
    )
    port = _free_port()
    command, env = _serve_command(tmp_path, "plain_app:make", port)
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    try:
        first = set(_children_after(proc.pid, 2))
        wait_ready(f"http://127.0.0.1:{port}", proc, timeout_s=120)
        assert set(_wait_workers(proc.pid, port, 2)) <= first
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert b"died or hung" not in err, err.decode()[-2000:]


def _children_after(pid: int, count: int) -> list[int]:
    """The first ``count`` worker processes ``pid`` starts (its resource tracker aside)."""
    deadline = time.monotonic() + 30
    while True:
        workers = [c for c in _children(pid) if b"--multiprocessing-fork" in _cmdline(c)]
        if len(workers) >= count:
            return workers
        assert time.monotonic() < deadline, workers
        time.sleep(0.05)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_a_worker_that_fails_to_start_stops_the_server(tmp_path: Path) -> None:
    """Every replacement would fail the same way: the server stops, exit status 3."""
    (tmp_path / "failing_app.py").write_text(
        "from contextlib import asynccontextmanager\n"
        "from fastapi import FastAPI\n"
        "@asynccontextmanager\n"
        "async def lifespan(app):\n"
        "    raise RuntimeError('no database')\n"
        "    yield\n"
        "def make():\n"
        "    return FastAPI(lifespan=lifespan)\n"
    )
    command, env = _serve_command(tmp_path, "failing_app:make", _free_port())
    done = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert done.returncode == 3, done.stderr.decode()[-2000:]


def test_workers_run_without_wake_up_preemption_by_default(
    server: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = server
    for worker in _wait_workers(proc.pid, port, 2):
        assert os.sched_getscheduler(worker) == os.SCHED_BATCH


@pytest.mark.parametrize(
    ("policy", "expected"), [("batch", "SCHED_BATCH"), ("normal", "SCHED_OTHER")]
)
def test_set_scheduling_applies_to_what_the_process_starts_next(policy: str, expected: str) -> None:
    code = (
        "import os, subprocess, sys\n"
        "from entrepot.entrypoints.api.serve import set_scheduling\n"
        "os.sched_setscheduler(0, os.SCHED_IDLE if sys.argv[1] == 'normal' else os.SCHED_OTHER,"
        " os.sched_param(0))\n"
        "set_scheduling(sys.argv[1])\n"
        "probe = 'import os; print(os.sched_getscheduler(0))'\n"
        "child = subprocess.run([sys.executable, '-c', probe],"
        " capture_output=True, text=True, check=True)\n"
        "print(child.stdout.strip())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, policy], capture_output=True, text=True, check=True
    )
    assert int(done.stdout) == getattr(os, expected)


def test_an_unknown_scheduling_policy_is_refused_before_anything_starts(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "entrepot", "serve", "--scheduling", "fifo"],
        env={**os.environ, "ENTREPOT_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "expected one of batch, normal" in done.stderr
    assert not (tmp_path / "entrepot.db").exists()


def _quote(quote_id: str) -> dict[str, object]:
    """A quote the bench's wallet asks to pay one of its merchants."""
    return {
        "quoteId": quote_id,
        "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "till-1"},
        "amountType": "RECEIVE",
        "amount": {"amount": "1000", "currency": "RWF"},
        "sourceCurrency": "RWF",
    }


def test_request_counts_are_every_workers_whichever_worker_a_scrape_reaches(
    tmp_path: Path,
) -> None:
    """A scrape reaches one worker; the request counts it reports are all workers' (they
    share them through a directory of the server's own, request_metrics.py), so the rate
    an operator reads does not halve, or jump, with the worker that answered. After a
    worker is killed and replaced, what it had counted stays counted."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from entrepot.payments.credentials import issue_credential
    from entrepot.sim.payments_bench import setup_scheme
    from entrepot.storage.engine import create_engine_from_url

    url = f"sqlite:///{tmp_path / 'serve.db'}"
    _, tokens = setup_scheme(url)
    engine = create_engine_from_url(url)
    operator = {"Authorization": f"Bearer {issue_credential(engine, 'scheme').token}"}
    engine.dispose()
    payer = {"Authorization": f"Bearer {tokens['wallet-rw']}"}
    port = _free_port()
    proc = _serve(tmp_path, port, workers=2)
    base = f"http://127.0.0.1:{port}"
    route = "/v1/parties/{party_type}/{party_id}"

    def counted(name: str = "entrepot_http_requests_total") -> float:
        with httpx.Client(base_url=base, timeout=60) as c:  # a new connection: any worker
            text = c.get("/v1/metrics", headers=operator).text
        return sum(
            m.value
            for family in text_string_to_metric_families(text)
            for m in family.samples
            if m.name == name and m.labels.get("route", route) == route
        )

    def lookups(n: int) -> set[int]:
        """``n`` lookups, each on a connection of its own: the workers that answered."""
        conns = _open_together(port, n)
        try:
            deadline = time.monotonic() + 90
            while sum((held := _connections_per_worker(proc.pid, port, conns)).values()) < n:
                assert time.monotonic() < deadline, held
                time.sleep(0.05)
            request = (
                b"GET /v1/parties/MERCHANT/till-1 HTTP/1.1\r\nHost: t\r\n"
                b"Authorization: " + payer["Authorization"].encode() + b"\r\n\r\n"
            )
            for c in conns:
                c.sendall(request)
            for c in conns:
                assert c.recv(65536).startswith(b"HTTP/1.1 200")
        finally:
            for c in conns:
                c.close()
        return {w for w, k in held.items() if k}

    try:
        wait_ready(base, proc, timeout_s=120)
        first = sorted(_wait_workers(proc.pid, port, 2))
        assert len(lookups(24)) == 2, "both workers answered lookups"
        assert {counted() for _ in range(8)} == {24.0}
        # the writer's counters too (storage/metrics.py): the batches of both workers' quotes
        batches = counted("entrepot_group_commit_batches_total")
        quotes = []
        for n in range(8):
            with httpx.Client(base_url=base, timeout=60) as c:  # any worker
                quotes.append(c.post("/v1/quotes", headers=payer, json=_quote(f"q-serve-{n}")))
        assert [q.status_code for q in quotes] == [201] * 8, [q.text for q in quotes]
        assert {counted("entrepot_group_commit_batches_total") for _ in range(8)} == {batches + 8}
        os.kill(first[0], signal.SIGKILL)
        _wait_workers(proc.pid, port, 2, gone=(first[0],))
        lookups(6)
        assert {counted() for _ in range(8)} == {30.0}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_a_participants_requests_are_counted_once_whichever_worker_takes_them(
    tmp_path: Path,
) -> None:
    """With a rate limit set, the workers share each participant's count (rate_limit.py,
    ADR 0016): twelve lookups on twelve connections spread over both workers, a burst of
    five admitted, so five are answered and seven refused 429, whichever worker took each;
    a limit kept per worker would have admitted up to five on each."""
    from entrepot.sim.payments_bench import setup_scheme

    url = f"sqlite:///{tmp_path / 'serve.db'}"
    _, tokens = setup_scheme(url)
    env = {
        **os.environ,
        "ENTREPOT_DATABASE_URL": url,
        "ENTREPOT_HOME": str(tmp_path),
        "ENTREPOT_RATE_LIMIT": "0.01",  # one request every 100 s: none more in the test
        "ENTREPOT_RATE_BURST": "5",
    }
    port = _free_port()
    proc = start_server(env, port, 2)
    request = (
        b"GET /v1/parties/MERCHANT/till-1 HTTP/1.1\r\nHost: t\r\n"
        b"Authorization: Bearer " + tokens["wallet-rw"].encode() + b"\r\n\r\n"
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, timeout_s=120)
        _wait_workers(proc.pid, port, 2)
        conns = _open_together(port, 12)
        try:
            deadline = time.monotonic() + 90
            while sum((held := _connections_per_worker(proc.pid, port, conns)).values()) < 12:
                assert time.monotonic() < deadline, held
                time.sleep(0.05)
            assert len([w for w, k in held.items() if k]) == 2, "both workers hold some"
            for c in conns:
                c.sendall(request)
            statuses = [_answer_head(c).split(b" ", 2)[1] for c in conns]
        finally:
            for c in conns:
                c.close()
        assert sorted(statuses) == [b"200"] * 5 + [b"429"] * 7, statuses
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _answer_head(conn: socket.socket) -> bytes:
    """The status line and headers of the answer on ``conn`` (read until the blank line, or
    the connection's end), its body read past too (by its Content-Length), so that the next
    answer on a kept-alive connection is read from its start: the body could come in a read
    of its own and was taken for the next answer's head."""
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = conn.recv(65536)
        if not chunk:
            return got
        got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")[1:]
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n"


def test_a_request_head_past_the_limit_is_refused_not_buffered_without_end(
    server: tuple[subprocess.Popen[bytes], int],
) -> None:
    """httptools buffers a header that never ends without a bound: one connection, before any
    credential is looked at, made a worker hold twice what it sent (200 MB sent, 400 MB
    held; found by a review), a few such connections and the worker was killed for memory.
    A head past ``HEAD_BYTES_MAX`` is answered 431 and the connection closed; a head under
    it is served, each request of a kept-alive connection counted on its own."""
    _, port = server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        start = b"GET /v1/transfers HTTP/1.1\r\nHost: test\r\nX-Big: "
        conn.sendall(start)
        for _ in range(HEAD_BYTES_MAX // 8192):
            conn.sendall(b"a" * 8192)
        conn.sendall(b"a")  # one byte past the limit, all read: the answer is not reset
        head = _answer_head(conn)
        assert head.startswith(b"HTTP/1.1 431 "), head[:200]
        assert b"connection: close" in head.lower()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        large = b"X-Large: " + b"b" * (HEAD_BYTES_MAX * 3 // 4) + b"\r\n"
        for _ in range(2):  # together past the limit: each head is counted on its own
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n" + large + b"\r\n")
            head = _answer_head(conn)
            assert head.startswith(b"HTTP/1.1 200 "), head[:200]
