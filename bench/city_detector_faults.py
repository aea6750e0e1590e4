"""What Entrepot's no-activity detector diagnostics win and cost, with them on and off.

    .venv/bin/python bench/city_detector_faults.py [--end 3600] [--no-activity-s 300]

On the 2x2 test grid (200 m blocks, 2 lanes), signal A0:

- ``stuck``: east-west traffic through A0 every 6 s each way, north-south traffic every 30 s
  entering A0 only from the north, whose detectors (lane-area detector, gap loop, stop-line
  loop) are stuck at 0: what the diagnostics are for;
- ``night``: only east-west traffic, one vehicle a minute each way, no fault: every north-south
  approach is genuinely empty and is judged failed and recalled, which costs the east-west
  vehicles green time (what the diagnostics cost);
- ``night-sparse``: the same plus one north-south vehicle every 10 minutes from the north.

Prints one JSON object: per case and setting, average travel time, waiting and time loss,
teleports, the longest red the north approach of A0 showed while a vehicle halted on it (read
from SUMO itself), detector judgements and switches the diagnostics caused.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from entrepot.city import run_episode
from entrepot.city.controllers.entrepot import EntrepotController, EntrepotParams
from entrepot.city.model import GREEN, LaneReading, Scenario
from entrepot.city.ports import Simulator
from entrepot.city.sumo import SumoSimulator, build_grid

NORTH = "A1A0"  # the north approach of A0
CASES = {  # name -> (flows: id, from, to, period s), stuck edge or None
    "stuck": (
        (("we", "left0A0", "B0right0", 6), ("ew", "right0B0", "A0left0", 6)),
        (("ns", "top0A1", "A0bottom0", 30),),
        NORTH,
    ),
    "night": ((("we", "left0A0", "B0right0", 60), ("ew", "right0B0", "A0left0", 60)), (), None),
    "night-sparse": (
        (("we", "left0A0", "B0right0", 60), ("ew", "right0B0", "A0left0", 60)),
        (("ns", "top0A1", "A0bottom0", 600),),
        None,
    ),
}


class _Stuck:
    """SUMO with every detector on the lanes of ``edge`` stuck at 0."""

    def __init__(self, inner: SumoSimulator, edge: str | None) -> None:
        self.inner = inner
        self.edge = edge

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _stuck(self, lane: str) -> bool:
        return lane.rsplit("_", 1)[0] == self.edge

    def lane_counts(self, lanes: tuple[str, ...]) -> dict[str, tuple[int, int]]:
        return {
            k: (0, 0) if self._stuck(k) else v for k, v in self.inner.lane_counts(lanes).items()
        }

    def lane_readings(self, lanes: tuple[str, ...]) -> dict[str, LaneReading]:
        return {
            k: replace(r, vehicles=0, halting=0, occupancy_pct=0.0) if self._stuck(k) else r
            for k, r in self.inner.lane_readings(lanes).items()
        }

    def loop_gaps_s(self, lanes: tuple[str, ...]) -> dict[str, float]:
        now = self.inner.time_s()
        return {k: now if self._stuck(k) else g for k, g in self.inner.loop_gaps_s(lanes).items()}

    def loop_counts(self) -> dict[str, int]:
        return {k: 0 if self._stuck(k) else n for k, n in self.inner.loop_counts().items()}


class _Watch:
    """Longest red of A0's north approach while a vehicle halted on it (SUMO's truth)."""

    def __init__(self, inner: SumoSimulator) -> None:
        self.inner = inner
        self.links: tuple[int, ...] = ()
        self.lanes: tuple[str, ...] = ()
        self.since: float | None = None
        self.longest_s = 0.0

    def __call__(self, t_s: float, sim: Simulator) -> None:
        if not self.links:
            mine = [
                m
                for m in self.inner.intersection("A0").movements
                if m is not None and m.in_lane.rsplit("_", 1)[0] == NORTH
            ]
            self.links = tuple(m.index for m in mine)
            self.lanes = tuple(sorted({m.in_lane for m in mine}))
        state = self.inner.signal_state("A0")
        halting = sum(h for _, h in self.inner.lane_counts(self.lanes).values())
        if any(state[i] in GREEN for i in self.links) or not halting:
            self.since = None
        else:
            self.since = t_s if self.since is None else self.since
            self.longest_s = max(self.longest_s, t_s - self.since)


def _scenario(grid: Scenario, workdir: Path, case: str, end_s: int) -> Scenario:
    main, minor, _ = CASES[case]
    attrs = f'departLane="best" departSpeed="max" begin="0" end="{end_s}"'
    flows = "".join(
        f'<flow id="{i}" from="{a}" to="{b}" period="{p}" {attrs}/>' for i, a, b, p in main + minor
    )
    routes = workdir / f"{case}.rou.xml"
    routes.write_text(f"<routes>{flows}</routes>\n")
    return replace(grid, name=case, route_files=(routes,), end_s=end_s)


def _run(scenario: Scenario, stuck: str | None, no_activity_s: float | None) -> dict[str, Any]:
    inner = SumoSimulator()
    watch = _Watch(inner)
    ctrl = EntrepotController(params=EntrepotParams(no_activity_s=no_activity_s))
    r = run_episode(scenario, ctrl, simulator=_Stuck(inner, stuck), hooks=(watch,))  # type: ignore[arg-type]
    m = r.metrics
    judged = [d for d in r.decisions if d.action == "detector" and "(no activity)" in d.reason]
    recalls = [d for d in r.decisions if d.action == "switch" and "judged failed" in d.reason]
    switches = [d for d in r.decisions if d.action == "switch"]
    return {
        "avg_travel_time_s": round(m.avg_travel_time_s, 2),
        "avg_waiting_time_s": round(m.avg_waiting_time_s, 2),
        "avg_time_loss_s": round(m.avg_time_loss_s, 2),
        "arrived": m.arrived,
        "teleports": m.teleports,
        "north_longest_red_while_waiting_s": watch.longest_s,
        "switches": len(switches),
        "starvation_guard_switches_for_failed_detectors": len(recalls),
        "detectors_judged_failed": len(judged),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--end", type=int, default=3600)
    ap.add_argument("--no-activity-s", type=float, default=EntrepotParams().no_activity_s)
    args = ap.parse_args()
    out: dict[str, Any] = {"end_s": args.end, "no_activity_s": args.no_activity_s, "cases": {}}
    with tempfile.TemporaryDirectory(prefix="entrepot-faults-") as tmp:
        wd = Path(tmp)
        grid = build_grid(wd, size=2, block_m=200.0, rates_vph=(1800.0,), end_s=240, seed=7)
        for case, (_, _, stuck) in CASES.items():
            scenario = _scenario(grid, wd, case, args.end)
            out["cases"][case] = {
                "off": _run(scenario, stuck, None),
                "on": _run(scenario, stuck, args.no_activity_s),
            }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
