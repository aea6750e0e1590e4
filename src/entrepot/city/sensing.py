"""Sensing: detector counts and occupancy, signal states and probe traces from a sampled share
of vehicles (the ride-hailing fleet), fused into per-link speed, flow and queue estimates every
few seconds.

Privacy invariant: probe records are checked, folded into per-link sums and dropped. The
aggregator keeps no vehicle id, no position and no per-vehicle history; fleet membership is a
keyed hash of the vehicle id, recomputed each time, not a stored list.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from entrepot.city.errors import InvalidProbe
from entrepot.city.model import Bounds, LinkEstimate, ProbeRecord, check_probe
from entrepot.city.ports import Simulator
from entrepot.city.sumo import LOOP_PERIOD_S

#: Seconds between fused estimates (the loops aggregate over the same period).
SENSING_INTERVAL_S = LOOP_PERIOD_S
#: Share of vehicles that report GPS probes (a ride-hailing fleet).
FLEET_SHARE = 0.10
EstimateListener = Callable[[float, dict[str, LinkEstimate]], None]


def in_fleet(vehicle_id: str, share: float, seed: int) -> bool:
    """Whether a vehicle belongs to the probe fleet: a stable keyed hash, nothing stored."""
    digest = hashlib.blake2b(f"{seed}:{vehicle_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2**64


class ProbeAggregator:
    """Folds probe records into per-link speed sums. A batch is checked whole before any of it
    is added: one impossible record refuses the batch and changes nothing."""

    def __init__(self, bounds: Bounds, links: Iterable[str]) -> None:
        self._bounds = bounds
        self._links = frozenset(links)
        self._speed_sum: dict[str, float] = {}
        self._samples: dict[str, int] = {}

    def add(self, records: Iterable[ProbeRecord]) -> int:
        batch = list(records)
        for record in batch:
            check_probe(record, self._bounds)
            if not record.link_id:
                raise InvalidProbe(f"probe at t={record.t_s} names no link", field="link_id")
        added = 0
        for record in batch:
            if record.link_id not in self._links:  # inside a junction: no link to credit
                continue
            self._speed_sum[record.link_id] = (
                self._speed_sum.get(record.link_id, 0.0) + record.speed_mps
            )
            self._samples[record.link_id] = self._samples.get(record.link_id, 0) + 1
            added += 1
        return added

    def drain(self) -> dict[str, tuple[float, int]]:
        """Mean probe speed and sample count per link since the last drain; then forget."""
        out = {link: (self._speed_sum[link] / n, n) for link, n in self._samples.items() if n > 0}
        self._speed_sum = {}
        self._samples = {}
        return out


@dataclass(frozen=True)
class DetectorView:
    """Detector readings of one link summed over its lanes."""

    speed_weighted_sum: float
    vehicles: int
    halting: int
    loop_count: int


def fuse(
    link_id: str,
    t_s: float,
    detectors: DetectorView,
    probe: tuple[float, int] | None,
    free_speed_mps: float,
    interval_s: float,
) -> LinkEstimate:
    """Vehicle-weighted mean of detector and probe speeds; free-flow speed on an empty link."""
    probe_speed, probe_n = probe if probe is not None else (0.0, 0)
    total = detectors.vehicles + probe_n
    speed = (
        (detectors.speed_weighted_sum + probe_speed * probe_n) / total
        if total > 0
        else free_speed_mps
    )
    return LinkEstimate(
        link_id=link_id,
        t_s=t_s,
        speed_mps=min(max(speed, 0.0), free_speed_mps * 1.5),
        flow_vph=detectors.loop_count * 3600.0 / interval_s,
        queue_veh=float(detectors.halting),
        detector_samples=detectors.vehicles,
        probe_samples=probe_n,
    )


class SensingPipeline:
    """A step hook for an episode: samples probes and fuses link estimates every interval."""

    def __init__(
        self,
        *,
        interval_s: int = SENSING_INTERVAL_S,
        fleet_share: float = FLEET_SHARE,
        seed: int = 42,
        listeners: tuple[EstimateListener, ...] = (),
    ) -> None:
        if interval_s != LOOP_PERIOD_S:
            raise ValueError(f"sensing interval must equal the loop period ({LOOP_PERIOD_S} s)")
        if not 0 <= fleet_share <= 1:
            raise ValueError(f"fleet share {fleet_share} is not between 0 and 1")
        self.interval_s = interval_s
        self.fleet_share = fleet_share
        self.seed = seed
        self.listeners = listeners
        self.latest: dict[str, LinkEstimate] = {}
        self.intervals = 0
        self._aggregator: ProbeAggregator | None = None
        self._lanes: dict[str, tuple[str, ...]] = {}
        self._free: dict[str, float] = {}

    def _setup(self, sim: Simulator) -> ProbeAggregator:
        self._lanes = sim.link_lanes()
        self._free = {
            link: max(sim.lane_max_speed_mps(lane) for lane in lanes)
            for link, lanes in self._lanes.items()
        }
        return ProbeAggregator(sim.bounds(), self._lanes)

    def __call__(self, t_s: float, sim: Simulator) -> None:
        if self._aggregator is None:
            self._aggregator = self._setup(sim)
        if int(t_s) % self.interval_s:
            return
        fleet = tuple(v for v in sim.vehicle_ids() if in_fleet(v, self.fleet_share, self.seed))
        self._aggregator.add(sim.probes(fleet))
        self.latest = self._estimate(t_s, sim, self._aggregator.drain())
        self.intervals += 1
        for listener in self.listeners:
            listener(t_s, self.latest)

    def _estimate(
        self, t_s: float, sim: Simulator, probes: dict[str, tuple[float, int]]
    ) -> dict[str, LinkEstimate]:
        all_lanes = tuple(lane for lanes in self._lanes.values() for lane in lanes)
        readings = sim.lane_readings(all_lanes)
        loops = sim.loop_counts()
        out = {}
        for link, lanes in self._lanes.items():
            # A lane whose detector reports nothing adds no sample (as its loop adds no count).
            seen = [readings[lane] for lane in lanes if lane in readings]
            view = DetectorView(
                speed_weighted_sum=sum(
                    r.mean_speed_mps * r.vehicles
                    for r in seen
                    if r.vehicles > 0 and math.isfinite(r.mean_speed_mps)
                ),
                vehicles=sum(r.vehicles for r in seen),
                halting=sum(r.halting for r in seen),
                loop_count=sum(loops.get(lane, 0) for lane in lanes),
            )
            out[link] = fuse(
                link, t_s, view, probes.get(link), self._free[link], float(self.interval_s)
            )
        return out
