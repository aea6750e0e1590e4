"""Appending to the decision log, as a payment's screening does: prints one JSON object.

    .venv/bin/python bench/decision_append.py [--appends 3000] [--batch 1] [--baseline-src DIR]

Each append is one batch of ``--batch`` sanctions decisions (a prepare logs one; a bulk one
per payee) through ``JsonlSink.append``: written, chained to the line before (``prev``, under
the file lock) and fsynced. Reports the CPU time an append costs this process (the fsync's
wait is not CPU) and the wall time, medians over ``--appends``. ``--baseline-src DIR`` (another
checkout's ``src``, e.g. a ``git worktree`` of the commit before the chain) runs the same
appends with that code in a subprocess in the same run, so the JSON holds both and the ratio;
the machine's noise moves both alike. ``user_us_mean`` is the user-space CPU alone (the
Python of an append: serialising, chaining), without the kernel's write and fsync (a mean:
the clock counts in 10 ms ticks). Then it times :func:`verify_log` over the log written.
Instructions, which repeat where times drift (once per checkout, with ``PYTHONPATH``)::

    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python bench/decision_append.py \\
        --callgrind --appends 500
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def measure(appends: int, batch: int, callgrind: bool = False) -> dict[str, Any]:
    from entrepot.risk import decisions as d

    with tempfile.TemporaryDirectory() as folder:
        sink = d.JsonlSink(Path(folder))
        batches = [
            [
                d.make_decision(
                    "sanctions",
                    model_version="ofac-2026-11-30",
                    outcome="clear",
                    score=0.42,
                    reasons=["best candidate 0.42 under 0.80"],
                    inputs={"name": "ab" * 32, "requested_by": "mtn-rw", "n": n * batch + i},
                )
                for i in range(batch)
            ]
            for n in range(appends)
        ]
        cpu, user, wall = [], [], []
        if callgrind:
            subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], check=False)
        for one in batches:
            c0, u0, w0 = time.process_time(), os.times().user, time.perf_counter()
            sink.append(one)
            cpu.append(time.process_time() - c0)
            user.append(os.times().user - u0)
            wall.append(time.perf_counter() - w0)
        if callgrind:
            subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], check=False)
        result: dict[str, Any] = {
            "cpu_us_median": round(statistics.median(cpu) * 1e6, 1),
            # the process's own code (no kernel: the write, the fsync, the lock), mean
            "user_us_mean": round(statistics.fmean(user) * 1e6, 1),
            "wall_us_median": round(statistics.median(wall) * 1e6, 1),
        }
        verify = getattr(d, "verify_log", None)
        if verify is not None:
            began = time.perf_counter()
            check = verify(sink.path)
            result["verify_lines_per_s"] = round(check.lines / (time.perf_counter() - began))
            result["verify_intact"] = check.intact
        sink.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=3_000)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--baseline-src", default=None, help="another checkout's src directory")
    parser.add_argument("--callgrind", action="store_true", help="count the appends' instructions")
    parser.add_argument("--only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"appends": args.appends, "batch": args.batch}
    result["this"] = measure(args.appends, args.batch, args.callgrind)
    if args.baseline_src and not args.only:
        env = {**os.environ, "PYTHONPATH": args.baseline_src}
        argv_b = [sys.executable, __file__, "--only", "--appends", str(args.appends),
                  "--batch", str(args.batch)]  # fmt: skip
        out = subprocess.run(argv_b, env=env, capture_output=True, text=True, check=True)
        result["baseline"] = json.loads(out.stdout)["this"]
        for key in ("cpu_us_median", "user_us_mean", "wall_us_median"):
            result[f"{key}_this_vs_baseline"] = round(
                result["this"][key] / max(result["baseline"][key], 0.1), 2
            )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
