"""Trade benchmark: prints one JSON object and saves it (see entrepot.sim.trade_bench).

.venv/bin/python bench/trade.py [--orders N] [--rounds R] [--demo-days D] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from entrepot.sim.trade_bench import (
    DEMO_DAYS_DEFAULT,
    ORDERS_DEFAULT,
    ROUNDS_DEFAULT,
    run_trade_bench,
)

RESULT = Path(__file__).parent / "results" / "trade.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=ORDERS_DEFAULT)
    parser.add_argument("--rounds", type=int, default=ROUNDS_DEFAULT)
    parser.add_argument("--demo-days", type=int, default=DEMO_DAYS_DEFAULT)
    parser.add_argument("--out", type=Path, default=RESULT, help="where to save the result")
    args = parser.parse_args()
    result = run_trade_bench(orders=args.orders, rounds=args.rounds, demo_days=args.demo_days)
    text = json.dumps(result, indent=2) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
