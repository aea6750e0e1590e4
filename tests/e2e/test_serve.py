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

import httpx
import pytest

from entrepot.entrypoints.api.serve import balances_connections, reuseport_sockets

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
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _tcp(port: int, state: str) -> set[str]:
    """Inodes of this host's TCP sockets whose local port is ``port``, in ``state``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                found.add(fields[9])
    return found


def _workers(server: int, port: int) -> list[int]:
    """The server's children that listen on ``port`` (its workers)."""
    listening = _tcp(port, _LISTEN)
    return [c for c in _children(server) if _socket_inodes(c) & listening]


def _connections_per_worker(server: int, port: int) -> dict[int, int]:
    established = _tcp(port, _ESTABLISHED)
    return {w: len(_socket_inodes(w) & established) for w in _workers(server, port)}


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("the server did not start")


def _serve(tmp_path: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ENTREPOT_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "ENTREPOT_HOME": str(tmp_path),
    }
    cmd = [sys.executable, "-m", "entrepot", "serve", "--port", str(port)]
    return subprocess.Popen(
        [*cmd, "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = _free_port()
    proc = _serve(tmp_path_factory.mktemp("serve"), port, workers=2)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", proc)
        deadline = time.monotonic() + 60
        while len(_workers(proc.pid, port)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # one answered: the other may still be starting
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _connect_together(port: int, n: int, *, stopped: int | None = None) -> list[socket.socket]:
    """``n`` connections opened at once (as a client's pool opens them), a request sent on
    each, then every answer read: all are accepted and served. ``stopped``: a worker paused
    (SIGSTOP) while the connections arrive, as one busy with other work would be."""
    if stopped is not None:
        os.kill(stopped, signal.SIGSTOP)
    try:
        conns = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(n)]
        for c in conns:
            c.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        if stopped is not None:
            time.sleep(0.5)  # time for the other workers to accept whatever they can
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
    for c in conns:
        answer = c.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer
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
    clients = _connect_together(port, 32, stopped=workers[0] if busy else None)
    try:
        per_worker = _connections_per_worker(proc.pid, port)
        assert len(per_worker) == 2, per_worker
        assert sum(per_worker.values()) == 32, per_worker
        assert min(per_worker.values()) > 0, per_worker
    finally:
        for c in clients:
            c.close()


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
        _wait_ready(f"http://127.0.0.1:{port}", proc)
        workers = _children(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert workers
    for w in workers:
        assert _gone(w), w


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # exited, not yet reaped
