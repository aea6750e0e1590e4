"""``entrepot serve`` acts on deadlines as they pass (entrypoints/api/deadlines.py): an escrow
is refunded at its deadline by the running server, with nobody calling anything; and its
workers close their database connections when it stops."""

from __future__ import annotations

import logging
import os
import signal
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from entrepot.config import load_settings
from entrepot.entrypoints.api.deadlines import DeadlineRunner, run_once
from entrepot.entrypoints.cli.output import open_app
from entrepot.payments import EscrowState
from entrepot.sim.payments_bench import _free_port, setup_scheme, wait_ready
from tests.e2e.test_serve import _wait_workers, start_server


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ENTREPOT_DATABASE_URL": f"sqlite:///{tmp_path / 'd.db'}",
        "ENTREPOT_HOME": str(tmp_path),
    }


def _escrow(env: dict[str, str], escrow_id: str, deadline_s: int) -> None:
    with open_app(load_settings(env)) as app:
        app.payments.create_escrow(
            "wallet-rw", escrow_id, "bank-rw", "RWF", 1_000, "order", deadline_s
        )


def _state(env: dict[str, str], escrow_id: str) -> tuple[EscrowState, int]:
    with open_app(load_settings(env)) as app:
        e = app.payments.get_escrow("wallet-rw", escrow_id)
        return e.state, e.refunded_minor


def test_a_running_server_refunds_an_escrow_at_its_deadline(tmp_path: Path) -> None:
    env = _env(tmp_path)
    setup_scheme(env["ENTREPOT_DATABASE_URL"])
    _escrow(env, "e-serve", 1)
    port = _free_port()
    proc = start_server(env, port, 1, "--deadlines-every", "0.2")
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, timeout_s=120)
        deadline = time.monotonic() + 30
        while _state(env, "e-serve")[0] is EscrowState.HELD and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _state(env, "e-serve") == (EscrowState.CLOSED, 1_000)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_a_failing_pass_is_logged_and_the_others_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env = _env(tmp_path)
    setup_scheme(env["ENTREPOT_DATABASE_URL"])
    _escrow(env, "e-once", 1)
    time.sleep(1.1)
    with open_app(load_settings(env)) as app:

        def broken() -> dict[str, int]:
            raise RuntimeError("trade database unreachable")

        monkeypatch.setattr(app.trade, "process_deadlines", broken)
        with caplog.at_level(logging.ERROR):
            done = run_once(app)
    assert done["payments"]["escrows_resolved"] == 1
    assert "trade" not in done and "lending" in done
    assert "the trade deadlines pass failed" in caplog.text
    assert _state(env, "e-once") == (EscrowState.CLOSED, 1_000)


def test_a_runner_that_cannot_open_the_app_tries_again_at_its_next_period(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The database unreachable as the server started ended the runner for good (logged
    once): no escrow, order or loan deadline acted again while the API served."""
    env = _env(tmp_path)
    setup_scheme(env["ENTREPOT_DATABASE_URL"])
    _escrow(env, "e-late", 1)
    tries: list[float] = []

    def flaky_open() -> AbstractContextManager[Any]:
        tries.append(time.monotonic())
        if len(tries) < 3:
            raise OSError("database unreachable")
        return open_app(load_settings(env))

    with caplog.at_level(logging.ERROR):
        runner = DeadlineRunner(flaky_open, 0.1).start()
        try:
            deadline = time.monotonic() + 30
            while _state(env, "e-late")[0] is EscrowState.HELD and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            runner.stop()
    assert _state(env, "e-late") == (EscrowState.CLOSED, 1_000)
    assert len(tries) == 3 and "opens the app again in 0.1 s" in caplog.text


@pytest.mark.parametrize("every_s", [0, -1.0, float("nan"), float("inf"), 1e300])
def test_a_runner_needs_a_positive_period(every_s: float) -> None:
    """A period a thread cannot wait for (inf, 1e300: Event.wait raises OverflowError) made
    the runner die at its first wait, logged, and no deadline acted while the API served;
    NaN passed the CLI's min=0 and failed only here, as a traceback."""
    with pytest.raises(ValueError, match="more than 0"):
        DeadlineRunner(open_app, every_s)


def test_serve_refuses_a_period_it_cannot_wait_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``entrepot serve --deadlines-every inf`` served with no deadline acting (the runner's
    thread died at its first wait); it is refused before anything starts."""
    import entrepot.entrypoints.api.serve as serving
    from tests.e2e.test_cli import Cli

    served: list[object] = []
    monkeypatch.setattr(serving, "serve", lambda **kw: served.append(kw))
    for every in ("inf", "1e300"):
        result = Cli(tmp_path)(f"serve --deadlines-every {every}", code=2)
        assert "--deadlines-every" in result.stderr and "Traceback" not in result.stderr
    assert served == []


def test_workers_close_their_connections_when_the_server_stops(tmp_path: Path) -> None:
    """The workers left their SQLite connections open at shutdown: no checkpoint, and a WAL
    of tens of MB (after a bench's load) for the next process to read through."""
    import httpx

    env = _env(tmp_path)
    _, tokens = setup_scheme(env["ENTREPOT_DATABASE_URL"])
    port = _free_port()
    proc = start_server(env, port, 2, "--deadlines-every", "0")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, timeout_s=120)
        auth = {"Authorization": f"Bearer {tokens['bank-my']}"}
        for n in range(20):  # some writes, through both workers
            with httpx.Client(base_url=base) as client:
                r = client.put(
                    "/v1/participants/bank-my/endpoint",
                    json={"url": f"http://hooks.example/{n}"},
                    headers=auth,
                )
                assert r.status_code == 200, r.text
        assert (tmp_path / "d.db-wal").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert not (tmp_path / "d.db-wal").exists()


def test_a_server_charges_one_fee_schedule_for_its_life(tmp_path: Path) -> None:
    """Found by a review: each worker read ENTREPOT_FEE_SCHEDULE when it started, so one
    respawned after the operator edited the file charged another schedule than the others,
    and a wrong edit left its socket unserved, the worker respawning in a loop. The server
    now reads the file once and its workers a checked copy, removed when it stops."""
    import httpx

    schedule = tmp_path / "fees.toml"
    schedule.write_text("bps = 30\n")
    env = {**_env(tmp_path), "ENTREPOT_FEE_SCHEDULE": str(schedule)}
    _, tokens = setup_scheme(env["ENTREPOT_DATABASE_URL"])
    port = _free_port()
    proc = start_server(env, port, 2, "--deadlines-every", "0")
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {tokens['bank-my']}"}
    try:
        wait_ready(base, proc, timeout_s=120)
        killed, _ = _wait_workers(proc.pid, port, 2)
        schedule.write_text('bps = 99\n[currencies.USD]\nfixed = "0.105"\n')  # wrong, too
        os.kill(killed, signal.SIGKILL)
        _wait_workers(proc.pid, port, 2, gone=(killed,))  # replaced, and serving
        for _ in range(12):  # new connections, spread over both: one schedule
            r = httpx.get(f"{base}/v1/scheme/fees", headers=auth, timeout=30)
            assert r.status_code == 200 and r.json()["bps"] == 30, r.text
        frozen = list(tmp_path.glob(".fee-schedule-*.toml"))
        assert len(frozen) == 1 and frozen[0].read_text() == "bps = 30\n"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert list(tmp_path.glob(".fee-schedule-*.toml")) == []
    # a wrong file stops the start, naming where, before anything runs
    refused = start_server(env, _free_port(), 1)
    assert refused.wait(timeout=60) == 2
    assert refused.stderr is not None
    assert b"currencies.USD.fixed" in refused.stderr.read()
