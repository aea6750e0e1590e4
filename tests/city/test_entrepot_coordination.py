"""Entrepot's coordination: the arrival forecast built from upstream stop-line loops, the
platoon-driven green extension and the forecast term in the phase scores."""

from __future__ import annotations

import pytest

from entrepot.city import Scenario, run_episode
from entrepot.city.controllers.coordination import ArrivalForecast, ForecastParams
from entrepot.city.controllers.entrepot import ENTREPOT_TIMING, EntrepotController, EntrepotParams
from entrepot.city.evaluate import EpisodeResult
from entrepot.city.model import Intersection, Movement
from entrepot.city.ports import Simulator
from entrepot.city.sumo import LOOP_PERIOD_S

# --- the forecast itself: a pure computation on what the detectors report ---------------

#: Upstream signal U: lane u_0 feeds link L (straight, link 0) and link M (turn, link 1).
#: Downstream signal D serves link L's two lanes. L: 139 m at 13.9 m/s -> 10 s + 2 s delay.
UPSTREAM = Intersection("U", (Movement(0, "u_0", "L_0"), Movement(1, "u_0", "M_0")), ("Gr", "rG"))
DOWNSTREAM = Intersection("D", (Movement(0, "L_0", "x_0"), Movement(1, "L_1", "y_0")), ("GG",))
LINKS = {"u": ("u_0",), "L": ("L_0", "L_1"), "M": ("M_0",), "x": ("x_0",), "y": ("y_0",)}
LENGTH = {"u_0": 100.0, "L_0": 139.0, "L_1": 139.0, "M_0": 139.0, "x_0": 100.0, "y_0": 100.0}
SPEED = dict.fromkeys(LENGTH, 13.9)


def _forecast(**params: object) -> ArrivalForecast:
    return ArrivalForecast(
        {"U": UPSTREAM, "D": DOWNSTREAM},
        target_lanes=("L_0", "L_1"),
        link_lanes=LINKS,
        lane_length_m=LENGTH,
        lane_speed_mps=SPEED,
        params=ForecastParams(**params),  # type: ignore[arg-type]
    )


def _total(fc: ArrivalForecast, t_s: float, horizon_s: float) -> float:
    return fc.arrivals("L_0", t_s, horizon_s) + fc.arrivals("L_1", t_s, horizon_s)


def test_forecast_loop_period_matches_the_adapter() -> None:
    assert ForecastParams().loop_period_s == LOOP_PERIOD_S


def test_forecast_predicts_arrivals_after_an_upstream_release() -> None:
    fc = _forecast(cap_to_moving=False, unexplained_moving=False)
    assert fc.upstream_signals == ("U",)
    assert fc.travel_s["L"] == pytest.approx(12.0)
    assert _total(fc, 100.0, 60.0) == 0.0  # nothing released, nothing forecast

    for _ in range(5):
        fc.observe_signals({"U": "Gr", "D": "GG"})  # only the movement into L flows
    fc.observe_loops(100.0, {"u_0": 4})  # 4 vehicles crossed u_0's stop line in [95, 100)

    # Released 95-100 s, 12 s of travel (+-15 %): they reach L's stop line 106-114 s.
    assert _total(fc, 100.0, 5.0) == pytest.approx(0.0)
    assert _total(fc, 100.0, 30.0) == pytest.approx(4.0)
    assert 0.0 < _total(fc, 105.0, 5.0) < 4.0
    assert _total(fc, 116.0, 30.0) == pytest.approx(0.0)
    # Split over L's lanes evenly until L's own stop-line loops have counted something.
    assert fc.arrivals("L_0", 100.0, 30.0) == pytest.approx(2.0)
    assert fc.arrivals("x_0", 100.0, 30.0) == 0.0  # not a forecast link


def test_forecast_splits_over_movements_that_could_flow_and_learns_lane_shares() -> None:
    fc = _forecast(cap_to_moving=False, unexplained_moving=False)
    fc.observe_signals({"U": "GG"})  # both movements of u_0 flowed: half goes to M
    fc.observe_loops(100.0, {"u_0": 4, "L_0": 3, "L_1": 1})

    assert _total(fc, 100.0, 30.0) == pytest.approx(2.0)
    # L's stop-line loops counted 3 and 1: shares (3 + 1) / 6 and (1 + 1) / 6.
    assert fc.arrivals("L_0", 100.0, 30.0) == pytest.approx(2.0 * 4 / 6)

    fc.observe_signals({"U": "rr"})
    fc.observe_loops(105.0, {})  # the green links are forgotten each interval
    released = fc.released
    fc.observe_signals({"U": "rG"})
    fc.observe_loops(110.0, {"u_0": 5})  # all of it went to M (not forecast), none to L
    assert fc.released == released
    assert _total(fc, 115.0, 30.0) == pytest.approx(0.0)


def test_forecast_is_capped_to_moving_vehicles_and_adds_unexplained_ones() -> None:
    fc = _forecast()
    fc.observe_signals({"U": "Gr"})
    fc.observe_loops(100.0, {"u_0": 4})

    # The detectors see only 2 vehicles moving on L (the others joined a queue): scaled to 2.
    fc.update_moving(100.0, {"L_0": (3, 2), "L_1": (1, 0)})
    assert _total(fc, 100.0, 30.0) == pytest.approx(2.0)

    # No release seen, but 6 vehicles moving on L: spread evenly over its 12 s of travel.
    fresh = _forecast()
    fresh.update_moving(100.0, {"L_0": (6, 0), "L_1": (0, 0)})
    assert fresh.arrivals("L_0", 100.0, 3.0) == pytest.approx(6 * 3 / 12)
    assert _forecast(unexplained_moving=False).arrivals("L_0", 100.0, 3.0) == 0.0


# --- the controller in SUMO -----------------------------------------------------------------

#: Rules on and loosened so that the small grid's light traffic triggers them.
EAGER = EntrepotParams(
    extend_on_platoon=True, extend_min_veh=0.2, extend_queue_ratio=0.0, w_forecast=1.0
)


class GreenWatch:
    """Step hook: the longest unbroken green each signal showed (s)."""

    def __init__(self, signals: dict[str, Intersection]) -> None:
        self.signals = signals
        self.since: dict[str, tuple[str, float]] = {}
        self.longest: dict[str, float] = {}

    def __call__(self, t_s: float, sim: Simulator) -> None:
        for tl_id, tl in self.signals.items():
            state = sim.signal_state(tl_id)
            if state not in tl.green_phases:
                self.since.pop(tl_id, None)
                continue
            start = self.since.setdefault(tl_id, (state, t_s))
            if start[0] != state:
                self.since[tl_id] = (state, t_s)
                start = self.since[tl_id]
            self.longest[tl_id] = max(self.longest.get(tl_id, 0.0), t_s - start[1])


@pytest.fixture(scope="module")
def eager_run(small_grid: Scenario) -> tuple[EntrepotController, EpisodeResult, GreenWatch]:
    ctl = EntrepotController(params=EAGER)
    watch = GreenWatch({})

    def hook(t_s: float, sim: Simulator) -> None:
        if not watch.signals:
            watch.signals = {tl: sim.intersection(tl) for tl in sim.signal_ids()}
        watch(t_s, sim)

    result = run_episode(small_grid, ctl, hooks=(hook,))
    return ctl, result, watch


def test_forecast_sees_upstream_releases_in_sumo(
    eager_run: tuple[EntrepotController, EpisodeResult, GreenWatch],
) -> None:
    ctl, _, _ = eager_run
    assert ctl.forecast is not None
    assert ctl.forecast.released > 10  # vehicles counted leaving upstream signals
    assert ctl.forecast.target_edges  # the links between the grid's signals


def test_green_extension_is_logged_with_its_reason(
    eager_run: tuple[EntrepotController, EpisodeResult, GreenWatch],
) -> None:
    _, result, _ = eager_run
    extends = [d for d in result.decisions if d.action == "extend"]
    assert extends
    for d in extends:
        assert d.from_phase == d.to_phase
        assert "green extended:" in d.reason
        assert "vehicles forecast at the stop lines of phase" in d.reason


def test_new_rules_keep_transitions_safe_and_greens_bounded(
    eager_run: tuple[EntrepotController, EpisodeResult, GreenWatch],
) -> None:
    _, result, watch = eager_run
    assert result.violations == {}, result.violation_examples
    assert result.metrics.safety_violations == 0
    # An extension never outlasts the maximum green (one decision step of slack).
    assert watch.longest
    assert max(watch.longest.values()) <= ENTREPOT_TIMING.green_s_max + 1.0
    for d in result.decisions:
        if d.action == "switch":
            assert d.from_phase != d.to_phase and d.reason


def test_coordinating_controller_changes_only_signals_it_owns(small_grid: Scenario) -> None:
    owned = frozenset({"A0", "B1"})

    result = run_episode(small_grid, EntrepotController(params=EAGER), owned=owned)

    assert set(result.signal_changes) <= owned
    assert result.signal_changes
    assert result.untouched_programs == {"A1": "0", "B0": "0"}
    assert result.metrics.safety_violations == 0
    assert all(d.tl_id in owned for d in result.decisions)


def test_rules_off_means_no_forecast_and_no_extension(small_grid: Scenario) -> None:
    off = EntrepotParams(extend_on_platoon=False, w_forecast=0.0)
    ctl = EntrepotController(params=off)

    result = run_episode(small_grid, ctl)

    assert ctl.forecast is None
    assert not [d for d in result.decisions if d.action == "extend"]
