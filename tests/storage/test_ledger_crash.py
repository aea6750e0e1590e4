"""Kill -9 a writer mid-stream: every acknowledged transfer survives, none is half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from entrepot.ledger import Account, AccountFlags, Ledger, Transfer, TransferFlags
from entrepot.storage.engine import create_engine_from_url
from tests.storage.ledger_workers import ACCOUNTS, FUNDING_ACCOUNT, LEDGER

pytestmark = pytest.mark.slow

SIZE = 300
ACKS_BEFORE_KILL = 8


def _wait_for_acks(path: Path, count: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        if proc.poll() is not None:
            raise AssertionError(
                f"writer exited early: {proc.stderr.read() if proc.stderr else ''}"
            )
        time.sleep(0.02)
    raise AssertionError("writer acknowledged too little in 60 s")


@pytest.mark.parametrize("round_", [1, 2])
def test_kill_minus_nine_keeps_every_acknowledged_transfer(
    ledger: Ledger, database_url: str, tmp_path: Path, round_: int
) -> None:
    flags = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    ledger.create_accounts(
        [Account(i, LEDGER, 1, flags=flags if i <= 6 else 0) for i in range(1, ACCOUNTS + 1)]
    )
    ledger.create_transfers(
        [Transfer(900 + i, FUNDING_ACCOUNT, i, 5_000, ledger=LEDGER, code=1) for i in range(1, 7)]
    )
    acks = tmp_path / "acks.jsonl"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.ledger_workers", database_url, str(acks), str(SIZE)],
        cwd=root,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_acks(acks, ACKS_BEFORE_KILL * round_, proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    lines = [json.loads(line) for line in acks.read_text().splitlines() if line.strip()]
    acknowledged = [tuple(t) for batch in lines for t in batch["ok"]]
    assert len(lines) >= ACKS_BEFORE_KILL * round_

    engine = create_engine_from_url(database_url)  # reopen, as after a restart
    reopened = Ledger(engine)
    stored = {t.id: t for t in reopened.lookup_transfers([t[0] for t in acknowledged])}
    for tid, dr, cr, amount, flags in acknowledged:
        t = stored[tid]
        assert (t.debit_account_id, t.credit_account_id, t.flags) == (dr, cr, flags)
        if flags & TransferFlags.BALANCING_DEBIT:
            assert t.amount <= amount  # moved at most what the limit allowed
        else:
            assert t.amount == amount
    # The batch in flight at the kill is either wholly there or wholly absent.
    in_flight_first = max(b["first_id"] for b in lines) + SIZE
    in_flight = reopened.lookup_transfers(list(range(in_flight_first, in_flight_first + SIZE)))
    with engine.connect() as conn:
        count = reopened.store.counts(conn)[1]  # rows and segments (ADR 0003)
        segments = conn.exec_driver_sql(
            "SELECT COUNT(*) FROM ledger_transfer_segments"
        ).scalar_one()
    assert segments > 0  # plain batches took the fast path
    assert count == len(acknowledged) + 6 + len(in_flight)
    if in_flight:  # committed but not yet acknowledged when killed: one whole batch
        stamps = [t.timestamp for t in in_flight]
        assert max(stamps) - min(stamps) < SIZE
    report = reopened.check_invariants()
    assert report.ok, report.violations
    engine.dispose()
