"""The deadline pass against a scheme's history: prints JSON.

    .venv/bin/python bench/deadlines.py [--transfers N] [--passes P]

``entrepot serve`` runs ``PaymentScheme.process_deadlines`` every 30 s while holding the
write lock for its reads, so its time is a stall for every payment in flight. This builds a
scheme with N committed transfers (bulk, so it is quick) and a few open ones, then times P
passes with the partial indexes of migration 0016 and, as the baseline in the same run, on a
copy of the same file with those indexes dropped (what every pass did before them). Also
times a scrape of the operator's metrics on both.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from entrepot.kernel.clock import SystemClock
from entrepot.ledger import Ledger
from entrepot.payments import PaymentScheme
from entrepot.payments.bulk import bulk_transfers
from entrepot.payments.monitoring import scheme_snapshot
from entrepot.sim.payments_bench import MERCHANTS, _bulk_items, add_bulk_payer, setup_scheme
from entrepot.storage.engine import create_engine_from_url

INDEXES = (
    "ix_pay_quotes_open_expiry",
    "ix_pay_quotes_accepted",
    "ix_pay_transfers_open_expiry",
    "ix_pay_escrows_held_deadline",
)


def _time(scheme: PaymentScheme, passes: int) -> dict[str, float]:
    deadline, scrape = [], []
    for _ in range(passes):
        t0 = time.perf_counter()
        scheme.process_deadlines()
        deadline.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        scheme_snapshot(scheme)
        scrape.append(time.perf_counter() - t0)
    return {
        "deadline_pass_ms_median": round(statistics.median(deadline) * 1000, 2),
        "metrics_scrape_ms_median": round(statistics.median(scrape) * 1000, 2),
    }


def _scheme(path: Path) -> PaymentScheme:
    engine = create_engine_from_url(f"sqlite:///{path}")
    return PaymentScheme(engine, Ledger(engine, SystemClock()), SystemClock())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transfers", type=int, default=400_000)
    parser.add_argument("--passes", type=int, default=7)
    args = parser.parse_args()
    if args.transfers < 8_000 or args.passes < 1:
        parser.error("--transfers must be at least 8000 and --passes at least 1")
    home = Path(tempfile.mkdtemp(prefix="entrepot-deadlines-"))
    try:
        url = f"sqlite:///{home / 'with.db'}"
        scheme, _ = setup_scheme(url)
        add_bulk_payer(scheme)
        batches = args.transfers // 8_000
        for b in range(batches):
            bulk_transfers(scheme, "bank-my", f"b{b}", "RWF", _bulk_items(b, 8_000))
            print(f"\rbuilding history: {b + 1}/{batches} bulks", end="", file=sys.stderr)
        print(file=sys.stderr)
        for n in range(20):  # a few payments left open: the pass has something to look at
            till = f"till-{n % MERCHANTS}"
            q = scheme.create_quote("wallet-rw", f"q{n}", "MERCHANT", till, 1000, "SEND", "RWF")
            scheme.prepare_transfer("wallet-rw", f"t{n}", q.id)
        scheme.engine.dispose()
        shutil.copy(home / "with.db", home / "without.db")
        without = _scheme(home / "without.db")
        with without.engine.begin() as conn:
            for name in INDEXES:
                conn.exec_driver_sql(f"DROP INDEX {name}")
        result: dict[str, Any] = {
            "benchmark": "deadlines",
            "transfers": batches * 8_000,
            "passes": args.passes,
        }
        with_indexes = _scheme(home / "with.db")
        result["with_partial_indexes"] = _time(with_indexes, args.passes)
        result["baseline_without"] = _time(without, args.passes)
        result["deadline_pass_speedup"] = round(
            result["baseline_without"]["deadline_pass_ms_median"]
            / max(result["with_partial_indexes"]["deadline_pass_ms_median"], 1e-3),
            1,
        )
        with_indexes.engine.dispose()
        without.engine.dispose()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
