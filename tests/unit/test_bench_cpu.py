"""The payments bench's CPU accounting (sim/payments_bench.py): what a process tree used."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from entrepot.sim.payments_bench import tree_cpu_seconds

# burn ``s`` seconds of CPU, then wait for a line on stdin (so the process stays to be read)
_BURN = (
    "import sys, time\nt = time.process_time()\n"
    "while time.process_time() - t < {s}: pass\nsys.stdin.readline()"
)


def _start(seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _BURN.format(s=seconds)], stdin=subprocess.PIPE)


def _stop(process: subprocess.Popen[bytes]) -> None:
    assert process.stdin is not None
    process.stdin.close()
    process.wait(timeout=30)


def test_a_trees_cpu_holds_its_processes_and_not_its_siblings() -> None:
    busy, idle = _start(0.6), _start(0.0)
    try:
        deadline = time.monotonic() + 60
        while (tree_cpu_seconds(busy.pid) or 0.0) < 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        burnt, rested = tree_cpu_seconds(busy.pid), tree_cpu_seconds(idle.pid)
        mine = tree_cpu_seconds(os.getpid())
        assert burnt is not None and rested is not None and mine is not None
        assert burnt >= 0.5 and rested < 0.4  # a sibling's time is not in the other's tree
        assert mine >= burnt + rested + time.process_time() - 0.05  # both are below this one
    finally:
        _stop(busy)
        _stop(idle)
    assert tree_cpu_seconds(busy.pid) is None  # gone: nothing to read
