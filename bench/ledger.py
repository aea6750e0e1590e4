"""Ledger benchmark: prints one JSON object (see entrepot.ledger.bench).

    .venv/bin/python bench/ledger.py [--transfers N] [--postgres-url URL] [--out FILE]

With ENTREPOT_DATABASE_URL naming PostgreSQL (or --postgres-url), PostgreSQL is measured too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from entrepot.ledger.bench import run_ledger_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--transfers", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=8_190)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    url = args.postgres_url
    env_url = os.environ.get("ENTREPOT_DATABASE_URL", "")
    if url is None and env_url.startswith("postgres"):
        url = env_url
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeRemainingColumn(),
        transient=True,
        console=None,
        redirect_stdout=False,
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done)

        result = run_ledger_bench(
            args.accounts, args.transfers, args.batch_size, url, args.clients, progress
        )
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
