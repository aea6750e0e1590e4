"""The work of one bulk of transfers through the API's route, in process: prints one JSON object.

    .venv/bin/python bench/bulk_cpu.py [--bulks N] [--size 8000] [--baseline-src DIR]

Each bulk is the body a payer sends to ``/v1/transfers/bulk``, run through the route's own
function (parse, service, reply; no sockets), all of a run's bulks on one new SQLite file (so
later bulks find bigger tables, for either side alike): the median CPU and wall time.
``--baseline-src DIR`` (another checkout's ``src``, e.g. a ``git worktree`` of the commit to
compare with) runs the same bulks with that code in a subprocess in the same run, so the JSON
holds both and their ratio. Time on this shared machine drifts by ±25 %; for small changes,
count instructions instead, which repeat to 0.1 %:

    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python bench/bulk_cpu.py --callgrind

(``--callgrind`` switches the instrumentation on for the measured bulks only; the total in
the ``callgrind.out.*`` files, ``grep -h '^summary:\\|^totals:' callgrind.out.*``, covers all
``--bulks`` of them: divide by it. valgrind does not follow the baseline's subprocess, so
``--callgrind`` runs this code only: run it once per checkout, with ``PYTHONPATH``.)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any


def measure(bulks: int, size: int, callgrind: bool) -> dict[str, Any]:
    from entrepot.entrypoints.api.routes import _bulk
    from entrepot.kernel.clock import SystemClock
    from entrepot.ledger import Ledger
    from entrepot.payments import PaymentScheme
    from entrepot.sim.payments_bench import _payee_msisdn, setup_scheme
    from entrepot.storage.engine import create_engine_from_url

    # The payer and the bodies are built here, not by payments_bench's add_bulk_payer and
    # bulk_body: --baseline-src runs this file against older checkouts, which lack them.
    url = f"sqlite:///{tempfile.mkdtemp(prefix='entrepot-bulkcpu-')}/bulk.db"
    setup_scheme(url)
    engine = create_engine_from_url(url)
    scheme = PaymentScheme(engine, Ledger(engine, SystemClock()), SystemClock())
    scheme.add_currency("bank-my", "RWF")
    scheme.deposit("bank-my", "RWF", 10**12, "dep-bulk")
    scheme.set_net_debit_cap("bank-my", "RWF", 10**12)
    warm = 2
    bodies = [
        json.dumps(
            {
                "bulkId": f"bulk-{b}",
                "transfers": [
                    {
                        "transferId": f"bk{b}-{i}",
                        "payee": {"partyIdType": "MSISDN", "partyIdentifier": _payee_msisdn(i)},
                        "amount": {"amount": "1000", "currency": "RWF"},
                    }
                    for i in range(size)
                ],
            }
        ).encode()
        for b in range(warm + bulks)
    ]
    gc.collect()
    gc.freeze()  # as the API's workers do after start-up
    cpu, wall = [], []
    for k, raw in enumerate(bodies):
        if callgrind and k == warm:
            subprocess.run(
                ["callgrind_control", "-i", "on", str(os.getpid())],
                check=False,
                capture_output=True,
            )
        c0, w0 = time.process_time(), time.perf_counter()
        reply = _bulk(raw, "bank-my", scheme)
        c1, w1 = time.process_time(), time.perf_counter()
        if callgrind and k == len(bodies) - 1:
            subprocess.run(
                ["callgrind_control", "-i", "off", str(os.getpid())],
                check=False,
                capture_output=True,
            )
        assert f'"committed":{size}'.encode() in bytes(reply.body), bytes(reply.body)[:300]
        if k >= warm:
            cpu.append(c1 - c0)
            wall.append(w1 - w0)
    engine.dispose()
    cpu.sort()
    wall.sort()
    return {
        "bulks": bulks,
        "size": size,
        "cpu_ms_median": round(cpu[len(cpu) // 2] * 1000, 1),
        "wall_ms_median": round(wall[len(wall) // 2] * 1000, 1),
        "transfers_per_cpu_s": round(size / cpu[len(cpu) // 2]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bulks", type=int, default=10)
    parser.add_argument("--size", type=int, default=8_000)
    parser.add_argument("--baseline-src", default=None, help="another checkout's src directory")
    parser.add_argument("--callgrind", action="store_true", help="run under callgrind")
    parser.add_argument("--only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.callgrind and args.baseline_src:
        parser.error("--callgrind counts this process only: run each checkout on its own")
    result: dict[str, Any] = {"benchmark": "bulk_cpu"}
    result["this"] = measure(args.bulks, args.size, args.callgrind)
    if args.baseline_src and not args.only:
        env = {**os.environ, "PYTHONPATH": args.baseline_src}
        cmd = [sys.executable, __file__, "--only", "--bulks", str(args.bulks)]
        out = subprocess.run(
            [*cmd, "--size", str(args.size)], env=env, capture_output=True, text=True, check=True
        )
        result["baseline"] = json.loads(out.stdout)["this"]
        result["cpu_this_vs_baseline"] = round(
            result["this"]["cpu_ms_median"] / result["baseline"]["cpu_ms_median"], 2
        )
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
