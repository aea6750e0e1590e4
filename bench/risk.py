"""Risk benchmark: prints one JSON object (see entrepot.risk.bench).

.venv/bin/python bench/risk.py [--credit FILE] [--sanctions DIR] [--listed N] [--unlisted N]
                               [--seed 42] [--skip-credit]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from entrepot.risk.bench import run_risk_bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credit", type=Path, default=None)
    parser.add_argument("--sanctions", type=Path, default=None)
    parser.add_argument("--listed", type=int, default=1000)
    parser.add_argument("--unlisted", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-credit", action="store_true")
    args = parser.parse_args(argv)
    doc = run_risk_bench(
        credit_path=args.credit,
        sanctions_dir=args.sanctions,
        listed=args.listed,
        unlisted=args.unlisted,
        seed=args.seed,
        skip_credit=args.skip_credit,
    )
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
