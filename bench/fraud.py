"""Fraud benchmark: prints one JSON object (see entrepot.risk.fraud_bench).

.venv/bin/python bench/fraud.py [--seed 7] [--customers 2000] [--terminals 400] [--days 63]
"""

from __future__ import annotations

import argparse
import json

from entrepot.risk.fraud_bench import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--terminals", type=int, default=400)
    parser.add_argument("--days", type=int, default=63)
    parser.add_argument("--train-end-day", type=int, default=42)
    parser.add_argument("--delay-days", type=int, default=7)
    parser.add_argument("--review-share", type=float, default=0.01)
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
