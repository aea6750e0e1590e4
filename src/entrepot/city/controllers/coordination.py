"""Short-horizon arrival forecast for signal coordination (SCOOT/SCATS style cyclic flow
profiles, built online from detectors only).

What it sees, and nothing else: the stop-line induction loops of every signalised approach
(vehicles counted per loop interval), the states the signals show, the network's movements
(which incoming lane feeds which outgoing lane) and each link's length and speed limit, plus,
as a check, the number of moving vehicles on each lane-area detector. It never reads a
vehicle's position or identity.

How: a vehicle that crosses an *upstream* signal's stop-line loop on lane ``u`` during a loop
interval left over one of ``u``'s movements that could flow in that interval (green, or yellow);
the count is split evenly over those movements and spread evenly over the interval's seconds.
Each release reaches the stop line of the link it entered after the link's free-flow travel
time (``length / speed + travel_delay_s``), dispersed evenly over ``+-spread`` of it
(a simple form of TRANSYT's platoon dispersion). The link's arrivals are shared over its lanes
in proportion to what each lane's own stop-line loop has counted so far (the turning shares,
learned online; one vehicle of prior per lane). Optionally the forecast still pending on a
link is scaled down to the moving vehicles its lane-area detectors see (a released vehicle
that already joined a queue is a halting vehicle, not a future arrival).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from entrepot.city.model import Intersection

#: Letters under which vehicles may cross a stop line (green, green minor, yellow, stop-go).
FLOWING = frozenset("Ggys")


@dataclass(frozen=True)
class ForecastParams:
    """Pinned forecast settings (see docs/city.md)."""

    #: The stop-line loops' aggregation period (the SUMO adapter's ``LOOP_PERIOD_S``).
    loop_period_s: int = 5
    #: Added to ``length / speed``: vehicles leave the upstream stop line from a queue and
    #: cross the junction below the speed limit.
    travel_delay_s: float = 2.0
    #: Arrivals spread evenly over ``travel time * (1 +- spread)`` (platoon dispersion).
    spread: float = 0.15
    #: Scale the pending forecast of a link down to the moving vehicles on its detectors.
    cap_to_moving: bool = True
    #: Moving vehicles on a lane beyond what the releases explain (vehicles that entered the
    #: network on this link, or releases not seen) arrive evenly over the link's travel time.
    unexplained_moving: bool = True


class ArrivalForecast:
    """Per approach lane: vehicles forecast to reach its stop line in the next seconds.

    Feed it ``observe_signals`` every second and ``observe_loops`` when a loop interval has
    just ended; ask ``arrivals(lane, t_s, horizon_s)``.
    """

    def __init__(
        self,
        intersections: Mapping[str, Intersection],
        target_lanes: Iterable[str],
        link_lanes: Mapping[str, tuple[str, ...]],
        lane_length_m: Mapping[str, float],
        lane_speed_mps: Mapping[str, float],
        params: ForecastParams | None = None,
    ) -> None:
        self.params = params or ForecastParams()
        self._edge_of = {lane: edge for edge, lanes in link_lanes.items() for lane in lanes}
        self._edge_lanes = dict(link_lanes)
        self.target_edges = frozenset(
            self._edge_of[lane] for lane in target_lanes if lane in self._edge_of
        )
        # Upstream lane -> its movements (link index, target edge or None) per signal.
        self._feeders: dict[str, dict[str, list[tuple[int, str | None]]]] = {}
        for tl_id, tl in intersections.items():
            by_lane: dict[str, list[tuple[int, str | None]]] = defaultdict(list)
            for m in tl.movements:
                if m is None:
                    continue
                out_edge = self._edge_of.get(m.out_lane)
                by_lane[m.in_lane].append(
                    (m.index, out_edge if out_edge in self.target_edges else None)
                )
            feeding = {
                lane: moves
                for lane, moves in by_lane.items()
                if any(edge is not None for _, edge in moves)
            }
            if feeding:
                self._feeders[tl_id] = feeding
        self.travel_s: dict[str, float] = {}
        for edge in self.target_edges:
            lanes = self._edge_lanes[edge]
            length = max(lane_length_m.get(lane, 0.0) for lane in lanes)
            speed = max(
                (s for lane in lanes if (s := lane_speed_mps.get(lane, math.nan)) == s and s > 0),
                default=13.89,
            )
            self.travel_s[edge] = length / speed + self.params.travel_delay_s
        self._flowed: dict[str, set[int]] = {tl: set() for tl in self._feeders}
        self._profile: dict[str, dict[int, float]] = {e: {} for e in self.target_edges}
        self._lane_count: dict[str, float] = defaultdict(float)
        self._scale: dict[str, float] = dict.fromkeys(self.target_edges, 1.0)
        self._pending: dict[str, float] = dict.fromkeys(self.target_edges, 0.0)
        self._moving: dict[str, int] = {}
        self.released = 0.0

    @property
    def upstream_signals(self) -> tuple[str, ...]:
        """Signals whose releases feed a target link (their states are read, never set)."""
        return tuple(sorted(self._feeders))

    def edge_lanes(self) -> tuple[str, ...]:
        """Every lane of every target link (for the moving-vehicle check)."""
        return tuple(sorted(lane for e in self.target_edges for lane in self._edge_lanes[e]))

    def observe_signals(self, states: Mapping[str, str]) -> None:
        """Remember which links could flow during the running loop interval."""
        for tl_id, flowed in self._flowed.items():
            state = states.get(tl_id)
            if state is not None:
                flowed.update(i for i, c in enumerate(state) if c in FLOWING)

    def observe_loops(self, t_s: float, loop_counts: Mapping[str, int]) -> None:
        """Turn the interval ``[t_s - period, t_s)`` of stop-line counts into arrivals."""
        period = self.params.loop_period_s
        now = int(t_s)
        for tl_id, feeding in self._feeders.items():
            flowed = self._flowed[tl_id]
            for lane, moves in feeding.items():
                n = loop_counts.get(lane, 0)
                if n <= 0:
                    continue
                open_moves = [edge for i, edge in moves if i in flowed] or [e for _, e in moves]
                share = n / len(open_moves)
                for edge in open_moves:
                    if edge is not None:
                        self._release(edge, now - period, period, share)
            flowed.clear()
        for edge in self.target_edges:
            for lane in self._edge_lanes[edge]:
                self._lane_count[lane] += loop_counts.get(lane, 0)
            profile = self._profile[edge]
            for k in [k for k in profile if k <= now]:
                del profile[k]

    def _release(self, edge: str, start_s: int, span_s: int, vehicles: float) -> None:
        """``vehicles`` crossed into ``edge`` evenly over ``[start_s, start_s + span_s)``."""
        self.released += vehicles
        tt = self.travel_s[edge]
        lo = tt * (1.0 - self.params.spread)
        hi = tt * (1.0 + self.params.spread)
        first, last = math.floor(lo), math.ceil(hi)
        width = max(hi - lo, 1e-9)
        # Share of one release falling into each whole second of delay [d, d + 1).
        weights = [
            (d, (min(d + 1.0, hi) - max(float(d), lo)) / width)
            for d in range(first, last)
            if min(d + 1.0, hi) > max(float(d), lo)
        ]
        profile = self._profile[edge]
        per_s = vehicles / span_s
        for s in range(start_s, start_s + span_s):
            for d, w in weights:
                key = s + d + 1  # released during second s -> arrives during second s + d + 1
                profile[key] = profile.get(key, 0.0) + per_s * w

    def update_moving(self, t_s: float, counts: Mapping[str, tuple[int, int]]) -> None:
        """Read the moving vehicles on each lane (lane-area detectors); scale each link's
        pending forecast down to them."""
        now = int(t_s)
        for edge in self.target_edges:
            pending = sum(v for k, v in self._profile[edge].items() if k > now)
            moving = 0
            for lane in self._edge_lanes[edge]:
                if lane in counts:
                    self._moving[lane] = max(counts[lane][0] - counts[lane][1], 0)
                    moving += self._moving[lane]
            scale = 1.0
            if self.params.cap_to_moving and pending > moving:
                scale = moving / pending
            self._scale[edge] = scale
            self._pending[edge] = pending * scale

    def lane_share(self, lane: str) -> float:
        edge = self._edge_of.get(lane)
        if edge is None:
            return 0.0
        lanes = self._edge_lanes[edge]
        return (self._lane_count[lane] + 1.0) / sum(self._lane_count[x] + 1.0 for x in lanes)

    def edge_arrivals(self, edge: str, t_s: float, horizon_s: float) -> float:
        profile = self._profile.get(edge)
        if not profile:
            return 0.0
        now = int(t_s)
        end = now + math.ceil(horizon_s)
        total = sum(profile.get(k, 0.0) for k in range(now + 1, end + 1))
        return total * self._scale[edge]

    def arrivals(self, lane: str, t_s: float, horizon_s: float) -> float:
        """Vehicles forecast to reach ``lane``'s stop line in ``(t_s, t_s + horizon_s]``."""
        edge = self._edge_of.get(lane)
        if edge is None or edge not in self.target_edges:
            return 0.0
        share = self.lane_share(lane)
        coming = self.edge_arrivals(edge, t_s, horizon_s) * share
        if self.params.unexplained_moving:
            extra = self._moving.get(lane, 0) - self._pending[edge] * share
            if extra > 0:
                coming += extra * min(1.0, horizon_s / self.travel_s[edge])
        return coming
