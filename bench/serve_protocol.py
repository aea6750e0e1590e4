"""What ``entrepot serve``'s bounded request head costs a request: prints one JSON object.

    .venv/bin/python bench/serve_protocol.py [--requests 20000] [--rounds 3]

uvicorn serves a trivial ASGI app (200, two bytes) with its own httptools protocol and with
``serve.BoundedHeadProtocol`` (a head bounded to 64 KiB and 30 s, a body still coming 30 s
after its answer: a connection closed), alternately, ``--rounds`` times each; one keep-alive
client sends ``--requests`` GETs with a bearer token. Reports the server process's CPU time
a request (user + system, from /proc: what the protocol costs, less moved by the machine's
load than the rate) and the rate, each round, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""
PROTOCOLS = {
    "httptools": "httptools",
    "bounded": "entrepot.entrypoints.api.serve:BoundedHeadProtocol",
}


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_round(folder: str, protocol: str, requests: int) -> tuple[float, float]:
    port = _free_port()
    code = (
        f"import uvicorn; uvicorn.run('app:app', port={port}, http={protocol!r}, "
        "log_level='warning', access_log=False)"
    )
    server = subprocess.Popen([sys.executable, "-c", code], cwd=folder)
    try:
        for _ in range(200):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port)
                conn.request("GET", "/")
                conn.getresponse().read()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("the server did not start")
        headers = {"Authorization": "Bearer " + "x" * 60}
        cpu0, t0 = _cpu_s(server.pid), time.perf_counter()
        for _ in range(requests):
            conn.request("GET", "/v1/transfers/t-1", headers=headers)
            conn.getresponse().read()
        wall = time.perf_counter() - t0
        return (_cpu_s(server.pid) - cpu0) / requests * 1e6, requests / wall
    finally:
        server.terminate()
        server.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"requests": args.requests}
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "app.py").write_text(APP)
        for _ in range(args.rounds):
            for name, protocol in PROTOCOLS.items():
                us, rate = one_round(folder, protocol, args.requests)
                result.setdefault(f"{name}_server_cpu_us", []).append(round(us, 1))
                result.setdefault(f"{name}_requests_per_s", []).append(round(rate))
    result["bounded_vs_httptools_cpu"] = round(
        statistics.median(result["bounded_server_cpu_us"])
        / statistics.median(result["httptools_server_cpu_us"]),
        3,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
