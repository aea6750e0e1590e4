"""A statement of a recent period on an account with a long history: prints one JSON object.

    .venv/bin/python bench/statement.py [--history 50000] [--recent 10] [--repeat 5]

Builds a new SQLite ledger, posts ``--history`` transfers to one account (plain batches of
1,000, as a payroll or the scheme's settlement would) and then ``--recent`` single ones, and
times the statement's opening balance for the period of the recent ones, both ways in the
same run (the machine's noise cancels in the ratio): summing every earlier transfer (the
baseline, what ``statement()`` did) and subtracting the period's transfers from the
balance now (what it does where that side is the smaller). Each the best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from entrepot.kernel.clock import SystemClock
from entrepot.ledger import Account, Ledger, Transfer
from entrepot.storage.engine import create_engine_from_url, read_connection
from entrepot.storage.migrate import upgrade

LEDGER = 978


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=50_000)
    parser.add_argument("--recent", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="entrepot-statement-"))
    engine = create_engine_from_url(f"sqlite:///{home / 'ledger.db'}")
    upgrade(engine)
    ledger = Ledger(engine, SystemClock())
    ledger.define_ledger(LEDGER, "EUR")
    ledger.create_accounts([Account(1, LEDGER, 1), Account(2, LEDGER, 1)])
    next_id = 1
    for start in range(0, args.history, 1_000):
        size = min(1_000, args.history - start)
        batch = [Transfer(next_id + i, 1, 2, 5, ledger=LEDGER, code=1) for i in range(size)]
        results = ledger.create_transfers(batch)
        if set(results) != {"ok"}:
            raise RuntimeError(f"the history's batch was refused: {set(results)}")
        next_id += size
    for _ in range(args.recent):
        ledger.create_transfers([Transfer(next_id, 1, 2, 7, ledger=LEDGER, code=1)])
        next_id += 1
    since = ledger.get_account_transfers(1, reverse=True, limit=args.recent)[-1].timestamp

    def opening(from_balance: bool) -> tuple[float, tuple[int, int]]:
        with read_connection(engine) as conn:
            account = ledger.store.load_accounts(conn, [1])[0]
            posted = (account.debits_posted, account.credits_posted) if from_balance else None
            began = time.perf_counter()
            sums = ledger.store.posted_sums_before(conn, 1, since, posted)
            return time.perf_counter() - began, sums

    timings: dict[bool, list[float]] = {False: [], True: []}
    answers = set()
    for _ in range(args.repeat + 1):  # the first of each warms the caches
        for way in (False, True):
            took, sums = opening(way)
            timings[way].append(took)
            answers.add(sums)
    if len(answers) != 1:
        raise RuntimeError(f"the two ways disagree: {answers}")
    forward, back = min(timings[False][1:]), min(timings[True][1:])
    print(
        json.dumps(
            {
                "benchmark": "statement_opening_balance",
                "history_transfers": args.history,
                "period_transfers": len(ledger.statement(1, since_ns=since).lines),
                "baseline_sum_of_history_ms": round(forward * 1000, 2),
                "from_balance_ms": round(back * 1000, 2),
                "speedup": round(forward / back, 1),
            }
        )
    )
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
