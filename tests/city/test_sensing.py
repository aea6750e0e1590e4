"""Sensing fuses detectors and probes; probe traces are not retained per vehicle."""

from __future__ import annotations

import dataclasses

import pytest

from entrepot.city import LinkEstimate, ProbeAggregator, ProbeRecord, Scenario, run_episode
from entrepot.city.model import Bounds, LaneReading
from entrepot.city.ports import Simulator
from entrepot.city.sensing import DetectorView, SensingPipeline, fuse, in_fleet


def _strings(obj: object, seen: set[int] | None = None) -> set[str]:
    """Every string reachable from an object (attributes, containers, dataclasses)."""
    seen = seen if seen is not None else set()
    if id(obj) in seen:
        return set()
    seen.add(id(obj))
    if isinstance(obj, str):
        return {obj}
    found: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            found |= _strings(k, seen) | _strings(v, seen)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            found |= _strings(v, seen)
    elif dataclasses.is_dataclass(obj) or hasattr(obj, "__dict__"):
        for v in vars(obj).values():
            if not callable(v):
                found |= _strings(v, seen)
    return found


def test_aggregator_keeps_link_sums_only() -> None:
    aggregator = ProbeAggregator(Bounds(0, 0, 1000, 1000), ["L1", "L2"])

    added = aggregator.add(
        [
            ProbeRecord("veh-1", 5.0, 10.0, 10.0, 10.0, "L1"),
            ProbeRecord("veh-2", 5.0, 20.0, 10.0, 6.0, "L1"),
            ProbeRecord("veh-3", 5.0, 30.0, 10.0, 4.0, ":junction_0"),
        ]
    )

    assert added == 2
    assert not {"veh-1", "veh-2", "veh-3"} & _strings(aggregator)
    assert aggregator.drain() == {"L1": (8.0, 2)}
    assert aggregator.drain() == {}


def test_fuse_weights_detectors_and_probes_by_samples() -> None:
    view = DetectorView(speed_weighted_sum=30.0, vehicles=3, halting=1, loop_count=2)

    est = fuse("L1", 10.0, view, (14.0, 1), free_speed_mps=13.9, interval_s=5.0)

    assert est == LinkEstimate("L1", 10.0, 11.0, 1440.0, 1.0, 3, 1)
    empty = fuse("L2", 10.0, DetectorView(0.0, 0, 0, 0), None, 13.9, 5.0)
    assert empty.speed_mps == 13.9 and empty.flow_vph == 0.0


def test_no_per_vehicle_trace_is_retained_after_an_episode(small_grid: Scenario) -> None:
    vehicles: set[str] = set()

    def spy(t_s: float, sim: Simulator) -> None:
        vehicles.update(sim.vehicle_ids())

    sensing = SensingPipeline(fleet_share=0.5, seed=3)
    run_episode(dataclasses.replace(small_grid, end_s=120), "fixed", hooks=(spy, sensing))

    fleet = {v for v in vehicles if in_fleet(v, 0.5, 3)}
    assert fleet, "the fleet sampled some vehicles"
    assert sensing.intervals == 24
    assert sensing.latest and all(isinstance(e, LinkEstimate) for e in sensing.latest.values())
    assert sum(e.probe_samples for e in sensing.latest.values()) > 0
    assert not vehicles & _strings(sensing)
    field_names = {f.name for f in dataclasses.fields(LinkEstimate)}
    assert not {"vehicle_id", "x_m", "y_m"} & field_names


def test_fleet_share_is_roughly_the_sampled_share() -> None:
    members = sum(in_fleet(f"v{i}", 0.1, 42) for i in range(10_000))
    assert 900 <= members <= 1100
    assert in_fleet("v1", 0.1, 42) == in_fleet("v1", 0.1, 42)


def test_sensing_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="fleet share"):
        SensingPipeline(fleet_share=1.5)


class _SimWithDeadLaneDetector:
    """Two links of one lane each; the lane-area detector of ``b_0`` reports nothing."""

    def link_lanes(self) -> dict[str, tuple[str, ...]]:
        return {"a": ("a_0",), "b": ("b_0",)}

    def lane_max_speed_mps(self, lane: str) -> float:
        return 13.89

    def bounds(self) -> Bounds:
        return Bounds(0.0, 0.0, 1000.0, 1000.0)

    def vehicle_ids(self) -> tuple[str, ...]:
        return ()

    def probes(self, vehicle_ids: tuple[str, ...]) -> list[ProbeRecord]:
        return []

    def lane_readings(self, lanes: tuple[str, ...]) -> dict[str, LaneReading]:
        return {lane: LaneReading(4, 2, 5.0, 100.0, 20.0) for lane in lanes if lane != "b_0"}

    def loop_counts(self) -> dict[str, int]:
        return {"a_0": 1}


def test_a_lane_detector_that_reports_nothing_leaves_the_other_estimates_standing() -> None:
    pipeline = SensingPipeline()

    pipeline(5.0, _SimWithDeadLaneDetector())  # type: ignore[arg-type]

    a, b = pipeline.latest["a"], pipeline.latest["b"]
    assert (a.speed_mps, a.queue_veh, a.detector_samples) == (5.0, 2.0, 4)
    assert (b.speed_mps, b.queue_veh, b.detector_samples) == (13.89, 0.0, 0)  # no data: free flow
