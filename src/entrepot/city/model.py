"""Values of the city brain: scenarios, signal timings and safe transitions, estimates, results.

Pure: no simulator, no files. Signal states use SUMO's letters, one per controlled link:
``G`` priority green, ``g`` permissive green, ``y`` yellow, ``r`` red, ``s`` stop-then-go
(right turn on red after stopping), ``o``/``O`` off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from entrepot.city.errors import InvalidProbe, UnsafeTransition

GREEN = frozenset("Gg")
#: Letters a controller may show; anything else in a state string is refused.
SIGNAL_LETTERS = frozenset("GgyrsuoO")


def is_green(letter: str) -> bool:
    return letter in GREEN


def green_links(state: str) -> frozenset[int]:
    return frozenset(i for i, letter in enumerate(state) if letter in GREEN)


def is_all_red_phase(state: str) -> bool:
    """A clearance phase: no link green, nothing yellow."""
    return not any(c in GREEN or c in "yY" for c in state)


def is_green_phase(state: str) -> bool:
    """A phase that serves traffic: some link green, nothing yellow (not a transition)."""
    return any(c in GREEN for c in state) and "y" not in state


@dataclass(frozen=True)
class SignalTiming:
    """Pinned timing of an adaptive controller (seconds)."""

    green_s_min: float
    green_s_max: float
    yellow_s: float
    all_red_s: float
    decision_s: float

    def __post_init__(self) -> None:
        assert self.yellow_s >= 3, "yellow shorter than 3 s is unsafe at 50 km/h"
        assert self.all_red_s >= 0
        assert 0 < self.green_s_min <= self.green_s_max
        assert self.decision_s > 0


def transition_states(current: str, target: str) -> tuple[str, str]:
    """The yellow and all-red states between two green phases.

    Links green in both stay green (they do not conflict with either phase); links that lose
    green show yellow, then red; nothing gains green before the all-red ends. A link already
    yellow (a transition taken over midway) stays yellow: turning it red at once would cut
    its yellow short.
    """
    if len(current) != len(target):
        raise UnsafeTransition(
            f"signal states differ in length ({len(current)} vs {len(target)} links)"
        )
    yellow = []
    all_red = []
    for now, nxt in zip(current, target, strict=True):
        if now in GREEN and nxt in GREEN:
            yellow.append(now)
            all_red.append(now)
        elif now in GREEN or now == "y":
            yellow.append("y")
            all_red.append("r")
        else:
            keep = now if now == nxt and now in "sr" else "r"
            yellow.append(keep)
            all_red.append(keep)
    return "".join(yellow), "".join(all_red)


@dataclass(frozen=True)
class Scenario:
    """A network, its demand, and the episode to simulate."""

    name: str
    net_file: Path
    route_files: tuple[Path, ...]
    additional_files: tuple[Path, ...] = ()
    begin_s: int = 0
    end_s: int = 3600
    seed: int = 42
    description: str = ""
    #: Seconds a vehicle may stand still before SUMO teleports it (SUMO's default; a
    #: ``.sumocfg``'s own ``time-to-teleport``).
    time_to_teleport_s: float = 300
    #: The city's ``.sumocfg``: SUMO is started on it (``-c``), so every setting in it applies;
    #: the fields above override what the evaluation controls.
    config_file: Path | None = None
    #: Output options of ``config_file`` sent to ``NUL``: an episode writes no city output file.
    silenced_outputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        assert self.end_s > self.begin_s >= 0, "an episode must last at least one second"


@dataclass(frozen=True)
class Movement:
    """One controlled link of a signal: from an incoming lane to an outgoing lane."""

    index: int
    in_lane: str
    out_lane: str


@dataclass(frozen=True)
class Intersection:
    """A signalised junction as the controllers see it."""

    tl_id: str
    movements: tuple[Movement | None, ...]
    #: The network's own green phases (transitions removed, duplicates dropped), in order.
    green_phases: tuple[str, ...]
    #: Longest all-red (no green, no yellow) phase of the network's own plan, in seconds; 0 when
    #: the plan goes from yellow straight to the next green.
    plan_all_red_s: float = 0.0

    @property
    def n_links(self) -> int:
        return len(self.movements)

    def in_lanes(self) -> tuple[str, ...]:
        return tuple(sorted({m.in_lane for m in self.movements if m is not None}))

    def out_lanes(self) -> tuple[str, ...]:
        return tuple(sorted({m.out_lane for m in self.movements if m is not None}))


@dataclass(frozen=True)
class Decision:
    """One explained phase decision of an adaptive controller."""

    t_s: float
    tl_id: str
    action: str  # "switch" | "hold" | "extend" | "detector" (a detector judged failed / cleared)
    from_phase: int
    to_phase: int
    reason: str


@dataclass(frozen=True)
class LaneReading:
    """What the lane-area detector of one lane reports this step."""

    vehicles: int
    halting: int
    mean_speed_mps: float
    length_m: float
    occupancy_pct: float


@dataclass(frozen=True)
class ProbeRecord:
    """One GPS fix of a fleet vehicle. It is aggregated, then dropped; never stored."""

    vehicle_id: str
    t_s: float
    x_m: float
    y_m: float
    speed_mps: float
    link_id: str


@dataclass(frozen=True)
class Bounds:
    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def contains(self, x: float, y: float, margin_m: float = 0.0) -> bool:
        return (
            self.x_min - margin_m <= x <= self.x_max + margin_m
            and self.y_min - margin_m <= y <= self.y_max + margin_m
        )


#: Faster than any road vehicle; a probe above it is a GPS glitch, not traffic.
PROBE_SPEED_MPS_MAX = 70.0


def check_probe(record: ProbeRecord, bounds: Bounds, *, margin_m: float = 50.0) -> None:
    """Raise InvalidProbe if the record cannot be a real fix on this network."""
    where = f"probe at t={record.t_s}"
    if not (math.isfinite(record.x_m) and math.isfinite(record.y_m)):
        raise InvalidProbe(f"{where}: coordinates are not finite numbers", field="x_m,y_m")
    if not bounds.contains(record.x_m, record.y_m, margin_m):
        raise InvalidProbe(
            f"{where}: coordinates ({record.x_m:.1f}, {record.y_m:.1f}) lie outside the network "
            f"({bounds.x_min:.0f}..{bounds.x_max:.0f}, {bounds.y_min:.0f}..{bounds.y_max:.0f})",
            field="x_m,y_m",
        )
    if not (math.isfinite(record.speed_mps) and 0 <= record.speed_mps <= PROBE_SPEED_MPS_MAX):
        raise InvalidProbe(f"{where}: speed {record.speed_mps} m/s is impossible", field="speed")
    if not math.isfinite(record.t_s) or record.t_s < 0:
        raise InvalidProbe(f"probe time {record.t_s} is not a valid time", field="t_s")


@dataclass(frozen=True)
class LinkEstimate:
    """Fused state of one link (a road edge) over the last sensing interval."""

    link_id: str
    t_s: float
    speed_mps: float
    flow_vph: float
    queue_veh: float
    detector_samples: int
    probe_samples: int


@dataclass(frozen=True)
class EpisodeMetrics:
    """The outcome of one episode; unfinished vehicles count up to the episode end."""

    scenario: str
    controller: str
    end_s: int
    inserted: int
    arrived: int
    unfinished: int
    never_inserted: int
    teleports: int
    avg_travel_time_s: float
    avg_waiting_time_s: float
    avg_time_loss_s: float
    throughput_vph: float
    safety_violations: int
    decisions: int
    wall_s: float
    #: (t_s, vehicles running, vehicles halting) sampled every minute.
    timeline: tuple[tuple[float, int, int], ...] = field(default=(), repr=False)

    def summary(self) -> dict[str, float | int | str]:
        return {
            "avg_travel_time_s": round(self.avg_travel_time_s, 2),
            "avg_waiting_time_s": round(self.avg_waiting_time_s, 2),
            "avg_time_loss_s": round(self.avg_time_loss_s, 2),
            "throughput_vph": round(self.throughput_vph, 1),
            "inserted": self.inserted,
            "arrived": self.arrived,
            "unfinished": self.unfinished,
            "never_inserted": self.never_inserted,
            "teleports": self.teleports,
            "safety_violations": self.safety_violations,
            "decisions": self.decisions,
            "wall_s": round(self.wall_s, 1),
        }


def average_travel_time_s(
    departs: dict[str, float], arrivals: dict[str, float], end_s: float
) -> float:
    """Mean travel time of every inserted vehicle; one still driving counts until ``end_s``."""
    if not departs:
        return 0.0
    total = sum(arrivals.get(vid, end_s) - t for vid, t in departs.items())
    return total / len(departs)
