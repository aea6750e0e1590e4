"""Payments benchmark: prints one JSON object (see entrepot.sim.payments_bench).

.venv/bin/python bench/payments.py [--payments N] [--clients C] [--workers W]
    [--postgres-url postgresql://postgres@127.0.0.1:5432/test] [--plot payments.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from entrepot.sim.payments_bench import run_payments_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payments", type=int, default=2_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bulk-batches", type=int, default=5)
    parser.add_argument("--bulk-size", type=int, default=8_000)
    parser.add_argument("--postgres-url", default=None, help="a new schema of this database")
    parser.add_argument("--plot", type=Path, default=None, help="also draw a PNG here")
    args = parser.parse_args()
    result = run_payments_bench(
        payments=args.payments,
        clients=args.clients,
        workers=args.workers,
        bulk_batches=args.bulk_batches,
        bulk_size=args.bulk_size,
        postgres_url=args.postgres_url,
        plot=args.plot,
    )
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
