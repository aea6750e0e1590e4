"""Kill -9 the API server mid-load: every payment step it acknowledged (201 to a prepare,
200 to a commit) is in the database after a restart, in that state or a later one, and the
ledger is whole. The group commit acknowledges a step only once its COMMIT is durable."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest

from entrepot.kernel.clock import SystemClock
from entrepot.ledger import Ledger
from entrepot.payments import PaymentScheme, TransferState
from entrepot.sim.http_load import LoadClient
from entrepot.sim.payments_bench import MERCHANTS, _free_port, setup_scheme, wait_ready
from entrepot.storage.engine import create_engine_from_url
from tests.e2e.test_serve import start_server

pytestmark = pytest.mark.slow

KILL_AFTER_COMMITS = 60


async def _load(base: str, tokens: dict[str, str], acked: dict[str, str], kill: int) -> None:
    """16 clients pay in four calls until ``KILL_AFTER_COMMITS`` commits are acknowledged;
    then the server's whole process group is killed, with requests in flight."""
    payer = {"Authorization": f"Bearer {tokens['wallet-rw']}"}
    counter = iter(range(10_000))
    killed = asyncio.Event()

    async def client(conn: LoadClient) -> None:
        for n in counter:
            if killed.is_set():
                return
            till = f"till-{n % MERCHANTS}"
            payee = "bank-my" if n % MERCHANTS % 2 == 0 else "bank-rw"
            try:
                party = (await conn.get(f"/v1/parties/MERCHANT/{till}", headers=payer)).json()
                amount = "12.50" if party["currency"] == "MYR" else "1000"
                await conn.post(
                    "/v1/quotes",
                    headers=payer,
                    json_body={
                        "quoteId": f"q{n}",
                        "payee": {"partyIdType": "MERCHANT", "partyIdentifier": till},
                        "amountType": "RECEIVE",
                        "amount": {"amount": amount, "currency": party["currency"]},
                        "sourceCurrency": "RWF",
                    },
                )
                r = await conn.post(
                    "/v1/transfers",
                    headers=payer,
                    json_body={"transferId": f"t{n}", "quoteId": f"q{n}"},
                )
                acked[f"t{n}"] = r.json()["state"]
                r = await conn.post(
                    f"/v1/transfers/t{n}/commit",
                    headers={"Authorization": f"Bearer {tokens[payee]}"},
                )
                acked[f"t{n}"] = r.json()["state"]
            except (OSError, ConnectionError, asyncio.IncompleteReadError):
                return  # the server is gone
            done = sum(1 for s in acked.values() if s == "COMMITTED")
            if done >= KILL_AFTER_COMMITS and not killed.is_set():
                killed.set()
                os.killpg(kill, signal.SIGKILL)

    async with LoadClient(base, 16, timeout_s=30) as conn:
        await asyncio.gather(*(client(conn) for _ in range(16)), return_exceptions=True)


def test_kill_minus_nine_keeps_every_acknowledged_payment_step(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    _, tokens = setup_scheme(url)
    env = {**os.environ, "ENTREPOT_DATABASE_URL": url, "ENTREPOT_HOME": str(tmp_path)}
    port = _free_port()
    # in a process group of its own: the workers die with it
    proc = start_server(env, port, 2, "--deadlines-every", "0", new_session=True)
    acked: dict[str, str] = {}
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, timeout_s=120)
        asyncio.run(_load(f"http://127.0.0.1:{port}", tokens, acked, proc.pid))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    committed = [t for t, s in acked.items() if s == "COMMITTED"]
    assert len(committed) >= KILL_AFTER_COMMITS

    engine = create_engine_from_url(url)  # reopened, as after a restart
    scheme = PaymentScheme(engine, Ledger(engine, SystemClock()), SystemClock())
    for transfer_id, state in acked.items():
        stored = scheme.get_transfer("wallet-rw", transfer_id).state
        if state == "COMMITTED":
            assert stored is TransferState.COMMITTED, transfer_id
        else:  # RESERVED when acknowledged: its commit may have landed unacknowledged
            assert stored in (TransferState.RESERVED, TransferState.COMMITTED), transfer_id
    report = scheme.ledger.check_invariants()
    assert report.ok, report.violations
    engine.dispose()
