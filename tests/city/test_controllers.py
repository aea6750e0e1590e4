"""Every controller keeps safe transitions and touches only the signals it owns."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from entrepot.city import CONTROLLERS, Scenario, run_episode
from entrepot.city.controllers import PhaseMachine, SafetyMonitor, SignalHandle, make_controller
from entrepot.city.controllers.base import ControlContext
from entrepot.city.controllers.entrepot import ENTREPOT_TIMING, EntrepotController, EntrepotParams
from entrepot.city.errors import SignalNotOwned, UnsafeTransition
from entrepot.city.model import (
    Decision,
    Intersection,
    LaneReading,
    Movement,
    SignalTiming,
    transition_states,
)
from entrepot.city.sumo import read_net


@pytest.mark.parametrize("name", list(CONTROLLERS))
def test_every_controller_keeps_safe_transitions(small_grid: Scenario, name: str) -> None:
    result = run_episode(small_grid, name)

    assert result.violations == {}, result.violation_examples
    assert result.metrics.safety_violations == 0
    assert result.metrics.inserted > 0
    assert result.metrics.arrived > 0
    assert all(d.reason for d in result.decisions)


@pytest.mark.parametrize("name", ["max_pressure", "entrepot", "actuated"])
def test_controller_changes_only_signals_it_owns(small_grid: Scenario, name: str) -> None:
    owned = frozenset({"A0", "B1"})

    result = run_episode(small_grid, name, owned=owned)

    assert set(result.signal_changes) <= owned
    assert result.signal_changes  # it did control its own
    assert result.untouched_programs == {"A1": "0", "B0": "0"}
    assert result.metrics.safety_violations == 0


def test_adaptive_controllers_explain_every_switch(small_grid: Scenario) -> None:
    result = run_episode(small_grid, "entrepot")

    switches = [d for d in result.decisions if d.action == "switch"]
    assert switches
    for d in switches:
        assert d.from_phase != d.to_phase
        assert any(
            word in d.reason for word in ("gap out", "queue", "max green", "starvation", "pressure")
        )


class FakeSignals:
    """A fake of the simulator port's signal side: records what was shown."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, str]] = []

    def set_signal_state(self, tl_id: str, state: str) -> None:
        self.shown.append((tl_id, state))

    def set_signal_program(self, tl_id: str, program_id: str) -> None:
        self.shown.append((tl_id, program_id))


def _intersection() -> Intersection:
    moves = (Movement(0, "n_0", "s_0"), Movement(1, "e_0", "w_0"), Movement(2, "n_0", "w_0"))
    return Intersection("X", moves, ("GrG", "rGr"))


def test_signal_handle_refuses_a_signal_it_does_not_own() -> None:
    fake = FakeSignals()
    handle = SignalHandle(fake, frozenset({"X"}))  # type: ignore[arg-type]

    with pytest.raises(SignalNotOwned, match="'Y'"):
        handle.set_state("Y", "GrG")

    assert fake.shown == []
    assert handle.changes == {}


def test_phase_machine_goes_green_yellow_all_red_green() -> None:
    fake = FakeSignals()
    handle = SignalHandle(fake, frozenset({"X"}))  # type: ignore[arg-type]
    timing = SignalTiming(green_s_min=10, green_s_max=60, yellow_s=3, all_red_s=2, decision_s=1)
    log: list[Decision] = []
    machine = PhaseMachine(_intersection(), timing, handle, log, 0.0, "GrG")

    with pytest.raises(UnsafeTransition, match="minimum green"):
        machine.switch(9.0, 1, "too early")
    machine.switch(10.0, 1, "test")
    for t in range(11, 16):
        machine.tick(float(t))

    assert [s for _, s in fake.shown] == ["GrG", "yry", "rrr", "rGr"]
    assert machine.phase == 1 and machine.stage == "green" and machine.stage_since_s == 15.0
    assert [(d.from_phase, d.to_phase, d.reason) for d in log] == [(0, 1, "test")]


def test_phase_machine_without_all_red_still_shows_yellow() -> None:
    fake = FakeSignals()
    handle = SignalHandle(fake, frozenset({"X"}))  # type: ignore[arg-type]
    timing = SignalTiming(green_s_min=5, green_s_max=50, yellow_s=3, all_red_s=0, decision_s=1)
    machine = PhaseMachine(_intersection(), timing, handle, [], 0.0, "GrG")

    machine.switch(5.0, 1, "test")
    for t in range(6, 10):
        machine.tick(float(t))

    assert [s for _, s in fake.shown] == ["GrG", "yry", "rGr"]
    assert machine.stage_since_s == 8.0  # green 3 s after the yellow began: the clearance


def test_entrepot_all_red_follows_the_network_plan() -> None:
    moves = _intersection().movements
    with_all_red = Intersection("X", moves, ("GrG", "rGr"), plan_all_red_s=5.0)
    without = Intersection("X", moves, ("GrG", "rGr"))
    ctrl = EntrepotController()
    pinned = EntrepotController(params=EntrepotParams(plan_all_red=False))

    assert ctrl._timing_for(with_all_red).all_red_s == ENTREPOT_TIMING.all_red_s
    assert ctrl._timing_for(without).all_red_s == 0.0
    assert ctrl._timing_for(without).yellow_s == ENTREPOT_TIMING.yellow_s
    assert pinned._timing_for(without).all_red_s == ENTREPOT_TIMING.all_red_s


def test_transition_keeps_common_greens_and_yellows_the_rest() -> None:
    assert transition_states("GGrrs", "GrGrs") == ("Gyrrs", "Grrrs")
    with pytest.raises(UnsafeTransition, match="length"):
        transition_states("GG", "G")


def test_phase_machine_taking_over_mid_yellow_keeps_the_yellow() -> None:
    # An episode that begins while the network's plan shows yellow (a .sumocfg whose begin
    # falls in a yellow): the links already yellow must not turn red at once.
    fake = FakeSignals()
    handle = SignalHandle(fake, frozenset({"X"}))  # type: ignore[arg-type]
    timing = SignalTiming(green_s_min=5, green_s_max=50, yellow_s=3, all_red_s=1, decision_s=1)
    machine = PhaseMachine(_intersection(), timing, handle, [], 100.0, "yry")

    for t in range(101, 106):
        machine.tick(float(t))

    assert [s for _, s in fake.shown] == ["yry", "rrr", "GrG"]
    assert machine.phase == 0 and machine.stage_since_s == 104.0


def test_transition_from_a_yellow_state_keeps_yellow_links_yellow() -> None:
    assert transition_states("yyrG", "GrGr") == ("yyry", "rrrr")


def test_safety_monitor_flags_a_yellow_cut_short() -> None:
    monitor = SafetyMonitor(green_s_min=5.0)
    for t, state in ((0.0, "Gr"), (10.0, "yr"), (11.0, "rr"), (14.0, "rG")):
        monitor.observe(t, "X", state)

    assert monitor.violations == {"short_yellow": 1}
    assert monitor.examples == ["short_yellow: t=11.0 X link 0 yellow 1.0s"]


def test_safety_monitor_accepts_a_full_yellow_and_a_plans_own_transitions() -> None:
    monitor = SafetyMonitor(green_s_min=5.0)
    # full yellow; a yellow already showing when watching began (its start unknown)
    for t, state in ((0.0, "Gry"), (10.0, "yrr"), (13.0, "rrr"), (14.0, "rGr")):
        monitor.observe(t, "X", state)

    assert monitor.violations == {}


def test_actuated_baseline_runs_on_plans_that_carry_params(
    small_grid: Scenario, tmp_path: Path
) -> None:
    # SUMO allows <param> elements inside a <tlLogic>; they are not phases.
    net = tmp_path / "params.net.xml"
    net.write_text(
        small_grid.net_file.read_text().replace(
            'offset="0">', 'offset="0">\n        <param key="note" value="city plan"/>'
        )
    )

    result = run_episode(replace(small_grid, net_file=net, end_s=60), "actuated")

    assert read_net(net).tl_programs["A0"][0] == ("GGGgrrrrGGGgrrrr", 42.0)
    assert result.metrics.inserted > 0
    assert result.metrics.safety_violations == 0


class _SimWithDeadDetector:
    """The simulator port's detector side for one signal; the detectors of ``dead`` lanes
    report nothing (a field detector that failed), every other lane holds 3 halting vehicles
    and its gap loop has seen nothing for 10 s."""

    def __init__(self, dead: set[str]) -> None:
        self.dead = dead
        self.state = "GrG"
        self.served: set[str] = set()

    def signal_state(self, tl_id: str) -> str:
        return self.state

    def set_signal_state(self, tl_id: str, state: str) -> None:
        self.state = state
        self.served.add(state)

    def lane_readings(self, lanes: tuple[str, ...]) -> dict[str, LaneReading]:
        return {lane: LaneReading(0, 0, 0.0, 100.0, 0.0) for lane in lanes}

    def lane_counts(self, lanes: tuple[str, ...]) -> dict[str, tuple[int, int]]:
        return {lane: (3, 3) for lane in lanes if lane not in self.dead}

    def loop_gaps_s(self, lanes: tuple[str, ...]) -> dict[str, float]:
        return {lane: 10.0 for lane in lanes if lane not in self.dead}


@pytest.mark.parametrize("name", ["entrepot", "max_pressure"])
def test_a_detector_that_reports_nothing_neither_stops_the_controller_nor_starves_its_phase(
    name: str,
) -> None:
    sim = _SimWithDeadDetector({"e_0"})  # the only lane of phase 1 ("rGr")
    ctx = ControlContext(sim, SignalHandle(sim, frozenset({"X"})), {"X": _intersection()})  # type: ignore[arg-type]
    controller = make_controller(name)
    controller.attach(ctx, 0.0)

    for t in range(1, 600):
        controller.act(float(t))

    assert "rGr" in sim.served  # the approach whose detector failed still gets its green
