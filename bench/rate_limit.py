"""What counting each participant's requests across the workers costs: prints one JSON object.

    .venv/bin/python bench/rate_limit.py [--admits 200000] [--participants 100] [--rounds 3]

``RateLimiter.admit`` (entrypoints/api/rate_limit.py) on the home's shared table (a mapped
file, each admit under an open-file-description lock) against the same algorithm on a table
in the process's own memory (what a per-worker limit would cost: the baseline), alternately,
``--rounds`` times each, in one process and then in two processes hammering the same table
together (the lock's contention: the two workers of ``entrepot serve`` on 2 cores). The
limit is set too high to refuse anything, so every admit moves a count, as a served request's
does. Reports microseconds an admit (median of the rounds) and the ratio shared/memory.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from entrepot.entrypoints.api.rate_limit import RateLimit, RateLimiter

LIMIT = RateLimit(1_000_000_000.0, 1_000_000)  # never refuses: every admit moves a count


def _run(path: str | None, admits: int, participants: int, start: Any = None) -> float:
    """Seconds for ``admits`` admits spread over ``participants`` (after ``start``, a barrier
    the other process waits at too, where there is one)."""
    limiter = RateLimiter(LIMIT, Path(path) if path else None)
    names = [f"participant-{i}" for i in range(participants)]
    try:
        limiter.admit(names[0])  # the table opened and mapped outside the timing
        if start is not None:
            start.wait()
        started = time.perf_counter()
        for i in range(admits):
            if limiter.admit(names[i % participants]) is not None:
                raise SystemExit("refused: the bench's limit must never refuse")
        return time.perf_counter() - started
    finally:
        limiter.close()


def _worker(path: str | None, admits: int, participants: int, start: Any, out: Any) -> None:
    out.put(_run(path, admits, participants, start))


def _two_processes(path: str | None, admits: int, participants: int) -> float:
    """Wall seconds for two processes doing ``admits`` each (so 2 x admits in all)."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_worker, args=(path, admits, participants, start, out)) for _ in "ab"
    ]
    for proc in procs:
        proc.start()
    # both timed loops start together at the barrier; the longer of the two counts
    seconds: float = max(out.get() for _ in procs)
    for proc in procs:
        proc.join()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admits", type=int, default=200_000)
    parser.add_argument("--participants", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        table = str(Path(folder) / "rate-limits.table")
        one: dict[str, list[float]] = {"shared": [], "memory": []}
        two: dict[str, list[float]] = {"shared": [], "memory": []}
        for _ in range(a.rounds):
            for name, path in (("memory", None), ("shared", table)):
                one[name].append(_run(path, a.admits, a.participants) / a.admits * 1e6)
                # two processes: microseconds of wall time an admit, the two together
                seconds = _two_processes(path, a.admits, a.participants)
                two[name].append(seconds / (2 * a.admits) * 1e6)
                print(
                    f"{name}: one {one[name][-1]:.2f} us, two {two[name][-1]:.2f} us",
                    file=sys.stderr,
                )
    med = {k: statistics.median(v) for k, v in one.items()}
    med2 = {k: statistics.median(v) for k, v in two.items()}
    print(
        json.dumps(
            {
                "benchmark": "rate_limit",
                "admits": a.admits,
                "participants": a.participants,
                "rounds": a.rounds,
                "one_process_us_per_admit": {k: [round(x, 3) for x in v] for k, v in one.items()},
                "two_processes_us_per_admit": {k: [round(x, 3) for x in v] for k, v in two.items()},
                "one_process_shared_us": round(med["shared"], 3),
                "one_process_memory_us": round(med["memory"], 3),
                "one_process_shared_vs_memory": round(med["shared"] / med["memory"], 2),
                "two_processes_shared_us": round(med2["shared"], 3),
                "two_processes_memory_us": round(med2["memory"], 3),
                "two_processes_shared_vs_memory": round(med2["shared"] / med2["memory"], 2),
                "machine": f"{platform.machine()}, {multiprocessing.cpu_count()} cores, "
                f"Python {platform.python_version()}",
            }
        )
    )


if __name__ == "__main__":
    main()
