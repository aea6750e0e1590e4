"""Detector faults in the real simulator: a lane-area detector stuck at 0 (it reports, but
never a vehicle) must not starve the phase that serves its approach."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from entrepot.city import Scenario, run_episode
from entrepot.city.controllers.base import ControlContext, SignalHandle
from entrepot.city.controllers.entrepot import EntrepotController, EntrepotParams
from entrepot.city.model import GREEN, Intersection, LaneReading, Movement
from entrepot.city.ports import Simulator
from entrepot.city.sumo import SumoSimulator

#: The north approach of signal A0 on the small grid; its detectors are stuck at 0.
STUCK_EDGE = "A1A0"
END_S = 900


class _StuckDetectors:
    """SUMO, except that every detector on the lanes of ``edge`` is stuck at 0: its lane-area
    detector reports no vehicle, its gap loop has seen none since the episode began, its
    stop-line loop counts none. Everything else is SUMO's."""

    def __init__(self, inner: SumoSimulator, edge: str) -> None:
        self.inner = inner
        self.edge = edge

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def _stuck(self, lane: str) -> bool:
        return lane.rsplit("_", 1)[0] == self.edge

    def lane_counts(self, lanes: tuple[str, ...]) -> dict[str, tuple[int, int]]:
        counts = self.inner.lane_counts(lanes)
        return {lane: (0, 0) if self._stuck(lane) else c for lane, c in counts.items()}

    def lane_readings(self, lanes: tuple[str, ...]) -> dict[str, LaneReading]:
        readings = self.inner.lane_readings(lanes)
        return {
            lane: replace(r, vehicles=0, halting=0, occupancy_pct=0.0) if self._stuck(lane) else r
            for lane, r in readings.items()
        }

    def loop_gaps_s(self, lanes: tuple[str, ...]) -> dict[str, float]:
        gaps = self.inner.loop_gaps_s(lanes)
        now = self.inner.time_s()
        return {lane: now if self._stuck(lane) else g for lane, g in gaps.items()}

    def loop_counts(self) -> dict[str, int]:
        return {lane: 0 if self._stuck(lane) else n for lane, n in self.inner.loop_counts().items()}


class _RedWhileWaiting:
    """Watches the truth (SUMO itself, not the stuck detectors): the longest spell the stuck
    approach's links stayed red while a vehicle halted on it, and how often they turned green."""

    def __init__(self, inner: SumoSimulator, tl_id: str, edge: str) -> None:
        self.inner = inner
        self.tl_id = tl_id
        self.edge = edge
        self.links: tuple[int, ...] = ()
        self.lanes: tuple[str, ...] = ()
        self.since: float | None = None
        self.longest_s = 0.0
        self.greens = 0
        self._was_green = False

    def __call__(self, t_s: float, sim: Simulator) -> None:
        if not self.links:
            movements = [m for m in self.inner.intersection(self.tl_id).movements if m]
            mine = [m for m in movements if m.in_lane.rsplit("_", 1)[0] == self.edge]
            self.links = tuple(m.index for m in mine)
            self.lanes = tuple(sorted({m.in_lane for m in mine}))
        state = self.inner.signal_state(self.tl_id)
        green = any(state[i] in GREEN for i in self.links)
        self.greens += green and not self._was_green
        self._was_green = green
        halting = sum(h for _, h in self.inner.lane_counts(self.lanes).values())
        if green or not halting:
            self.since = None
            return
        if self.since is None:
            self.since = t_s
        self.longest_s = max(self.longest_s, t_s - self.since)


@pytest.fixture
def stuck_scenario(small_grid: Scenario, tmp_path: Path) -> Scenario:
    """Steady east-west traffic through A0 (both directions) and light north-south traffic that
    reaches A0 only from the north (the stuck approach); A0's south approach is empty."""
    routes = tmp_path / "stuck.rou.xml"
    flow = f'departLane="best" departSpeed="max" begin="0" end="{END_S}"'
    routes.write_text(
        "<routes>\n"
        f'  <flow id="we" from="left0A0" to="B0right0" period="6" {flow}/>\n'
        f'  <flow id="ew" from="right0B0" to="A0left0" period="6" {flow}/>\n'
        f'  <flow id="ns" from="top0A1" to="A0bottom0" period="30" {flow}/>\n'
        "</routes>\n"
    )
    return replace(small_grid, name="stuck-detector", route_files=(routes,), end_s=END_S)


def test_a_detector_stuck_at_zero_does_not_starve_its_phase(stuck_scenario: Scenario) -> None:
    inner = SumoSimulator()
    sim = _StuckDetectors(inner, STUCK_EDGE)
    watch = _RedWhileWaiting(inner, "A0", STUCK_EDGE)
    controller = EntrepotController()
    p = controller.params
    clearance_s = controller.timing.yellow_s + controller.timing.all_red_s

    result = run_episode(stuck_scenario, controller, simulator=sim, hooks=(watch,))  # type: ignore[arg-type]

    # Judged failed after the no-activity time, then served by the starvation guard: no
    # vehicle on the stuck approach waits at a red much past the longer of the two.
    bound_s = max(p.no_activity_s or 0.0, p.red_s_max) + clearance_s + 2.0
    assert watch.longest_s <= bound_s, (watch.longest_s, watch.greens)
    assert watch.greens >= 2
    assert result.metrics.safety_violations == 0
    judged = [d for d in result.decisions if d.tl_id == "A0" and d.action == "detector"]
    assert judged, "the judgement is logged"
    assert f"{STUCK_EDGE}_" in judged[0].reason and "no vehicle" in judged[0].reason


class _OneSignal:
    """The simulator port's detector side for one signal X: phase 0 ("GrG") serves lane n_0,
    phase 1 ("rGr") lane e_0; ``counts`` is what the lane-area detectors report (set by the
    test), every gap loop has seen nothing for 10 s."""

    def __init__(self, counts: dict[str, tuple[int, int]]) -> None:
        self.counts = counts
        self.state = "GrG"
        self.shown: list[tuple[float, str]] = []
        self.t_s = 0.0

    def signal_state(self, tl_id: str) -> str:
        return self.state

    def set_signal_state(self, tl_id: str, state: str) -> None:
        self.state = state
        self.shown.append((self.t_s, state))

    def lane_readings(self, lanes: tuple[str, ...]) -> dict[str, LaneReading]:
        return {lane: LaneReading(0, 0, 0.0, 100.0, 0.0) for lane in lanes}

    def lane_counts(self, lanes: tuple[str, ...]) -> dict[str, tuple[int, int]]:
        return {lane: self.counts.get(lane, (0, 0)) for lane in lanes}

    def loop_gaps_s(self, lanes: tuple[str, ...]) -> dict[str, float]:
        return {lane: 10.0 for lane in lanes}


def _attach(sim: _OneSignal, params: EntrepotParams | None = None) -> EntrepotController:
    moves = (Movement(0, "n_0", "s_0"), Movement(1, "e_0", "w_0"), Movement(2, "n_0", "w_0"))
    tl = Intersection("X", moves, ("GrG", "rGr"))
    ctx = ControlContext(sim, SignalHandle(sim, frozenset({"X"})), {"X": tl})  # type: ignore[arg-type]
    controller = EntrepotController(params=params)
    controller.attach(ctx, 0.0)
    return controller


def _run(sim: _OneSignal, controller: EntrepotController, start: int, end: int) -> None:
    for t in range(start, end):
        sim.t_s = float(t)
        controller.act(float(t))


def test_a_silent_detector_is_judged_failed_then_cleared_when_it_counts_again() -> None:
    sim = _OneSignal({"n_0": (3, 3), "e_0": (0, 0)})  # e_0 stuck at 0, n_0 busy
    controller = _attach(sim)
    limit = controller.params.no_activity_s
    assert limit is not None

    _run(sim, controller, 1, int(limit) + 60)
    judged = [d for d in controller.decisions if d.action == "detector"]
    assert [(d.t_s, d.tl_id) for d in judged] == [(limit, "X")]
    assert "e_0" in judged[0].reason and f"no vehicle for {limit:.0f} s" in judged[0].reason
    assert "1 other detector" in judged[0].reason  # the numbers behind it
    recalled = [t for t, state in sim.shown if state == "rGr"]
    assert recalled and min(recalled) >= limit  # never before the judgement, served after it

    sim.counts["e_0"] = (1, 0)  # the detector counts a vehicle again
    _run(sim, controller, int(limit) + 60, int(limit) + 70)
    cleared = [d for d in controller.decisions if d.action == "detector"][1:]
    assert len(cleared) == 1 and "counts again" in cleared[0].reason
    assert "e_0" not in controller._silent["X"]


def test_no_detector_is_judged_failed_while_the_whole_signal_is_quiet() -> None:
    sim = _OneSignal({})  # night: nothing anywhere
    controller = _attach(sim)

    _run(sim, controller, 1, 1200)

    assert controller.decisions == []
    assert sim.shown == [(0.0, "GrG")]  # taken over, then resting in its green


def test_no_activity_diagnostics_can_be_switched_off() -> None:
    sim = _OneSignal({"n_0": (3, 3), "e_0": (0, 0)})
    controller = _attach(sim, EntrepotParams(no_activity_s=None))

    _run(sim, controller, 1, 1200)

    assert [d for d in controller.decisions if d.action == "detector"] == []
    assert [s for _, s in sim.shown] == ["GrG"]  # e_0 reads empty: never served
