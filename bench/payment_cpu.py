"""The CPU of one four-call pay-by-QR payment through the API app, in process: prints JSON.

    .venv/bin/python bench/payment_cpu.py [--payments N] [--baseline-src DIR]

Each payment is the four requests the payments bench's clients send (party lookup, quote,
prepare, the payee's commit), run through the same ASGI app ``entrepot serve``'s workers run
(security middleware, direct dispatch, FastAPI for the rest, the scheme, screening, the
decision log), one request after another, on a new SQLite file; no sockets, so uvicorn's
HTTP parsing is not counted. Reports the CPU a payment (median of blocks of 50) and which
request of the four costs what, and the serial section: how long each call held SQLite's
write lock (wall time, its COMMIT's fsync reported apart: under load a batch of writes
shares one). ``--baseline-src DIR`` runs the same with another checkout's
code in a subprocess in the same run. For small changes, count instructions (they repeat to
about 0.1 % here, where time drifts by ±25 %):

    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python bench/payment_cpu.py \\
        --callgrind --payments 200

(the instrumentation is on for the measured payments only; divide the ``totals:`` line of the
``callgrind.out.*`` file by ``--payments``.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CALLS = ("lookup", "quote", "prepare", "commit")


class _Asgi:
    """Requests straight into an ASGI app, as uvicorn would hand them over."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(
        self, method: str, path: str, token: str, body: Any = None
    ) -> tuple[int, bytes]:
        raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())]
        if body is not None:
            headers.append((b"content-type", b"application/json"))
        headers.append((b"content-length", str(len(raw)).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)  # a disconnect would only come if the client left
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        reply = b"".join(chunks)
        if status >= 400:
            raise RuntimeError(f"{method} {path} -> {status}: {reply[:400]!r}")
        return status, reply


def _held() -> tuple[float, float]:
    """Seconds this process has held SQLite's write lock, and spent in COMMITs, so far."""
    from entrepot.storage import metrics

    return metrics.WRITE_HELD._value.get(), metrics.COMMIT_SECONDS._value.get()


async def _payment(
    call: _Asgi,
    tokens: dict[str, str],
    n: int,
    cpu: list[float],
    held: list[float],
    commit: list[float],
) -> None:
    """One payment; each call's CPU, write-lock time and COMMIT time added to ``cpu``,
    ``held`` and ``commit``."""
    from entrepot.sim.payments_bench import MERCHANTS

    till = f"till-{n % MERCHANTS}"
    payee = "bank-my" if n % MERCHANTS % 2 == 0 else "bank-rw"
    payer = tokens["wallet-rw"]
    t: list[tuple[float, float, float]] = []

    def mark() -> None:
        t.append((time.process_time(), *_held()))

    mark()
    _, party = await call("GET", f"/v1/parties/MERCHANT/{till}", payer)
    mark()
    currency = json.loads(party)["currency"]
    amount = "12.50" if currency == "MYR" else "1000"
    quote = {
        "quoteId": f"q{n}",
        "payee": {"partyIdType": "MERCHANT", "partyIdentifier": till},
        "amountType": "RECEIVE",
        "amount": {"amount": amount, "currency": currency},
        "sourceCurrency": "RWF",
    }
    await call("POST", "/v1/quotes", payer, quote)
    mark()
    await call("POST", "/v1/transfers", payer, {"transferId": f"t{n}", "quoteId": f"q{n}"})
    mark()
    _, done = await call("POST", f"/v1/transfers/t{n}/commit", tokens[payee])
    mark()
    if json.loads(done)["state"] != "COMMITTED":
        raise RuntimeError(f"payment {n} did not commit: {done[:300]!r}")
    for k in range(4):
        for total, what in ((cpu, 0), (held, 1), (commit, 2)):
            total[k] += t[k + 1][what] - t[k][what]


def measure(payments: int, warm: int, callgrind: bool) -> dict[str, Any]:
    import uvloop

    from entrepot.sim.payments_bench import setup_scheme

    home = Path(tempfile.mkdtemp(prefix="entrepot-paycpu-"))
    url = f"sqlite:///{home / 'pay.db'}"
    _, tokens = setup_scheme(url)
    os.environ["ENTREPOT_DATABASE_URL"] = url
    os.environ["ENTREPOT_HOME"] = str(home)
    from entrepot.entrypoints.api.app import create_app_from_env

    app = create_app_from_env()  # as a worker of ``entrepot serve`` builds it (gc frozen too)
    call = _Asgi(app)
    block = 50
    per_call = [0.0] * 4
    held = [0.0] * 4  # the write lock held (wall time), of which COMMITs (their fsync)
    commit = [0.0] * 4
    blocks: list[float] = []

    async def run() -> None:
        for n in range(warm):
            await _payment(call, tokens, n, [0.0] * 4, [0.0] * 4, [0.0] * 4)
        if callgrind:
            subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], check=False)
        done = 0
        while done < payments:
            size = min(block, payments - done)
            c0 = time.process_time()
            for n in range(warm + done, warm + done + size):
                await _payment(call, tokens, n, per_call, held, commit)
            blocks.append((time.process_time() - c0) / size)
            done += size
        if callgrind:
            subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], check=False)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())
    blocks.sort()
    return {
        "payments": payments,
        "cpu_ms_per_payment_median": round(blocks[len(blocks) // 2] * 1000, 3),
        "cpu_ms_per_call_mean": {
            name: round(per_call[k] / payments * 1000, 3) for k, name in enumerate(CALLS)
        },
        # the serial section: what each call runs holding SQLite's write lock, the
        # COMMIT's fsync left out (it is shared by a batch's writes under load)
        "lock_held_ms_per_call_mean": {
            name: round((held[k] - commit[k]) / payments * 1000, 3) for k, name in enumerate(CALLS)
        },
        "lock_held_ms_per_payment": round((sum(held) - sum(commit)) / payments * 1000, 3),
        "commit_ms_per_payment": round(sum(commit) / payments * 1000, 3),
        "python": sys.version.split()[0],
        "gc_frozen": gc.get_freeze_count() > 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payments", type=int, default=1_000)
    parser.add_argument("--warm", type=int, default=100)
    parser.add_argument("--baseline-src", default=None, help="another checkout's src directory")
    parser.add_argument("--callgrind", action="store_true", help="run under callgrind")
    parser.add_argument("--only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.payments < 1 or args.warm < 0:
        parser.error("--payments must be at least 1 and --warm at least 0")
    if args.callgrind and args.baseline_src:
        parser.error("--callgrind counts this process only: run each checkout on its own")
    from entrepot.config import shared_data_dir

    # this checkout's reference data for both sides: a baseline's worktree elsewhere would
    # find none, and would run without sanctions screening
    os.environ.setdefault("ENTREPOT_DATA_DIR", str(shared_data_dir()))
    result: dict[str, Any] = {"benchmark": "payment_cpu"}
    result["this"] = measure(args.payments, args.warm, args.callgrind)
    if args.baseline_src and not args.only:
        env = {**os.environ, "PYTHONPATH": args.baseline_src}
        cmd = [sys.executable, __file__, "--only", "--payments", str(args.payments)]
        out = subprocess.run(
            [*cmd, "--warm", str(args.warm)], env=env, capture_output=True, text=True
        )
        if out.returncode:
            sys.exit(f"the baseline failed:\n{out.stderr[-3000:]}")
        result["baseline"] = json.loads(out.stdout)["this"]
        result["cpu_this_vs_baseline"] = round(
            result["this"]["cpu_ms_per_payment_median"]
            / result["baseline"]["cpu_ms_per_payment_median"],
            3,
        )
        if "lock_held_ms_per_payment" in result["baseline"]:
            result["lock_held_this_vs_baseline"] = round(
                result["this"]["lock_held_ms_per_payment"]
                / result["baseline"]["lock_held_ms_per_payment"],
                3,
            )
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
