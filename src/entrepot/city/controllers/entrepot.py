"""Entrepot's adaptive controller: actuated-style gap-out decides *when* a green ends,
queue-weighted pressure with spill-back protection decides *which* phase comes next, with a
maximum green and a starvation guard. Every switch is logged with the numbers behind it.

Each second after the minimum green it scores every green phase of a signal from the
lane-area detectors: ``score = sum over served lanes of (halting + w_moving * moving) *
open_share - w_downstream * downstream vehicles``, where ``open_share`` drops the movements
whose outgoing lane is nearly full (serving them would only block the junction: spill-back
protection). It keeps the current green while vehicles still cross its stop lines; it switches
to the best-scoring phase with demand when no vehicle crossed for ``max_gap_s`` (gap out),
at the maximum green, or, first of all, to a phase with halting vehicles that has not been
served for ``red_s_max`` (no approach starves).

Coordination: an :class:`~entrepot.city.controllers.coordination.ArrivalForecast` turns the
vehicles counted leaving the upstream signals' stop lines into arrivals at this signal's stop
lines. A green that gaps out is extended while a platoon at least as large as what the next
phase would serve is forecast within ``extend_horizon_s`` (logged as an ``extend`` decision);
optionally (``w_forecast``) forecast arrivals also enter the phase scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from entrepot.city.controllers.base import ControlContext, PhaseMachine, SignalController
from entrepot.city.controllers.coordination import ArrivalForecast, ForecastParams
from entrepot.city.controllers.max_pressure import blind_phases, phase_movements
from entrepot.city.model import Decision, Intersection, SignalTiming

ENTREPOT_TIMING = SignalTiming(
    green_s_min=5.0, green_s_max=50.0, yellow_s=3.0, all_red_s=1.0, decision_s=1.0
)
#: Effective length a stopped vehicle takes in a queue (m): 5 m car plus 2.5 m gap.
VEHICLE_SPACE_M = 7.5


@dataclass(frozen=True)
class EntrepotParams:
    """Pinned parameters (tuned once on the 4x4 grid and Hangzhou; see docs/city.md)."""

    w_moving: float = 0.2
    w_downstream: float = 0.2
    spillback_fill: float = 0.85
    #: Gap out when no vehicle crossed any served stop line for this long (0: off).
    max_gap_s: float = 2.5
    #: Serve a phase with halting vehicles that has not been green for this long (the time
    #: since its last green, not how long its vehicles waited; below SUMO's 300 s
    #: teleport time, so a starved approach is served before it gridlocks).
    red_s_max: float = 240.0
    #: Cut a discharging green when another phase scores this much higher (None: never).
    #: Off by default: on the grid it costs more lost time than it wins.
    preempt_ratio: float | None = None
    preempt_margin_veh: float = 2.0
    #: Also end a green once its lanes hold no halting vehicle (before the gap loop says so).
    end_on_cleared_queue: bool = False
    #: Show an all-red only at signals whose own plan has one (the yellow is always shown).
    plan_all_red: bool = True
    #: Coordination (platoon-driven green extension): do not gap out while at least
    #: ``extend_min_veh`` vehicles are forecast to reach the current phase's stop lines within
    #: ``extend_horizon_s``; max green and the starvation guard still end the green. Off by
    #: default: its gain is within the seed-to-seed spread and on two grid seeds it kept
    #: vehicles from entering (docs/city.md, "Arrival forecast and coordination").
    extend_on_platoon: bool = False
    extend_horizon_s: float = 4.0
    extend_min_veh: float = 1.0
    #: ... and at least this share of the demand the next phase would serve (its halting
    #: vehicles plus its forecast arrivals within the same horizon): an extension delays them
    #: all, the platoon it serves skips a red.
    extend_queue_ratio: float = 1.0
    #: Forecast arrivals within the next minimum green + clearance added to each phase's
    #: score with this weight (0: off).
    w_forecast: float = 0.0
    #: The arrival forecast both rules read (upstream stop-line loops -> travel-time-shifted
    #: arrivals; see :mod:`entrepot.city.controllers.coordination`).
    forecast: ForecastParams = field(default_factory=ForecastParams)

    @property
    def uses_forecast(self) -> bool:
        return self.extend_on_platoon or self.w_forecast > 0


class EntrepotController(SignalController):
    name = "entrepot"

    def __init__(
        self, timing: SignalTiming = ENTREPOT_TIMING, params: EntrepotParams | None = None
    ) -> None:
        super().__init__()
        self.timing = timing
        self.params = params or EntrepotParams()
        self.green_s_min = timing.green_s_min

    def attach(self, ctx: ControlContext, t_s: float) -> None:
        self._ctx = ctx
        self._machines = {
            tl_id: PhaseMachine(
                ctx.intersections[tl_id],
                self._timing_for(ctx.intersections[tl_id]),
                ctx.handle,
                self.decisions,
                t_s,
                ctx.sim.signal_state(tl_id),
            )
            for tl_id in sorted(ctx.handle.owned)
        }
        self._phases = {tl: phase_movements(ctx.intersections[tl]) for tl in self._machines}
        lanes: set[str] = set()
        for phases in self._phases.values():
            for phase in phases:
                for lane, outs in phase:
                    lanes.add(lane)
                    lanes.update(outs)
        self._lanes = tuple(sorted(lanes))
        readings = ctx.sim.lane_readings(self._lanes)
        self._capacity = {
            lane: max(r.length_m / VEHICLE_SPACE_M, 1.0) for lane, r in readings.items()
        }
        self.forecast: ArrivalForecast | None = None
        self._extended_at: dict[str, float] = {}
        if self.params.uses_forecast:
            self._attach_forecast(ctx)

    def _attach_forecast(self, ctx: ControlContext) -> None:
        in_lanes = {lane for phases in self._phases.values() for ph in phases for lane, _ in ph}
        link_lanes = ctx.sim.link_lanes()
        all_lanes = tuple(sorted({lane for lanes in link_lanes.values() for lane in lanes}))
        lengths = {lane: r.length_m for lane, r in ctx.sim.lane_readings(all_lanes).items()}
        speeds = {lane: ctx.sim.lane_max_speed_mps(lane) for lane in all_lanes}
        self.forecast = ArrivalForecast(
            ctx.intersections, in_lanes, link_lanes, lengths, speeds, self.params.forecast
        )
        # Counts are read for the forecast's links too (the moving-vehicle check).
        self._lanes = tuple(sorted({*self._lanes, *self.forecast.edge_lanes()}))

    def _timing_for(self, tl: Intersection) -> SignalTiming:
        """Always a yellow; an all-red only where the network's own plan has one, and no
        longer than the pinned one (``plan_all_red=False``: always the pinned all-red)."""
        if not self.params.plan_all_red:
            return self.timing
        return replace(self.timing, all_red_s=min(self.timing.all_red_s, tl.plan_all_red_s))

    def act(self, t_s: float) -> None:
        for machine in self._machines.values():
            machine.tick(t_s)
        fc = self.forecast
        if fc is not None:
            sim = self._ctx.sim
            fc.observe_signals({tl: sim.signal_state(tl) for tl in fc.upstream_signals})
            if int(t_s) % fc.params.loop_period_s == 0:
                fc.observe_loops(t_s, sim.loop_counts())
        ready = [m for m in self._machines.values() if m.can_switch(t_s)]
        if not ready:
            return
        counts = self._ctx.sim.lane_counts(self._lanes)
        if fc is not None:
            fc.update_moving(t_s, counts)
        for machine in ready:
            self._decide(machine, t_s, counts)

    def _open_share(self, outs: tuple[str, ...], counts: dict[str, tuple[int, int]]) -> float:
        """Share of a lane's movements whose outgoing lane is below the spill-back fill."""
        fill = self.params.spillback_fill
        # An outgoing lane whose detector reports nothing is taken as open.
        return sum(counts.get(o, (0, 0))[0] < fill * self._capacity[o] for o in outs) / len(outs)

    def _forecast(
        self,
        tl_id: str,
        phase: int,
        t_s: float,
        horizon_s: float,
        counts: dict[str, tuple[int, int]],
    ) -> float:
        """Vehicles forecast at the stop lines of ``phase`` within ``horizon_s``, counted only
        for the share of their movements that can leave the junction (spill-back)."""
        if self.forecast is None:
            return 0.0
        return sum(
            self.forecast.arrivals(lane, t_s, horizon_s) * self._open_share(outs, counts)
            for lane, outs in self._phases[tl_id][phase]
        )

    def _scores(
        self, tl_id: str, counts: dict[str, tuple[int, int]], t_s: float = 0.0
    ) -> tuple[list[float], list[int]]:
        p = self.params
        scores = []
        queues = []
        use_fc = self.forecast is not None and p.w_forecast > 0
        horizon = self.timing.green_s_min + self.timing.yellow_s + self.timing.all_red_s
        for phase in self._phases[tl_id]:
            score = 0.0
            queue = 0
            for lane, outs in phase:
                vehicles, halting = counts.get(lane, (0, 0))  # reports nothing: empty
                share = self._open_share(outs, counts)
                demand = halting + p.w_moving * (vehicles - halting)
                if use_fc:
                    assert self.forecast is not None
                    demand += p.w_forecast * self.forecast.arrivals(lane, t_s, horizon)
                downstream = sum(counts.get(o, (0, 0))[0] for o in outs) / len(outs)
                score += demand * share - p.w_downstream * downstream
                queue += halting if share > 0 else 0
            scores.append(score)
            queues.append(queue)
        return scores, queues

    def _gapped_out(self, tl_id: str, phase: int) -> bool:
        lanes = tuple(lane for lane, _ in self._phases[tl_id][phase])
        gaps = self._ctx.sim.loop_gaps_s(lanes)
        return min(gaps.values(), default=1e9) >= self.params.max_gap_s

    def _decide(
        self, machine: PhaseMachine, t_s: float, counts: dict[str, tuple[int, int]]
    ) -> None:
        p = self.params
        tl_id = machine.tl.tl_id
        scores, queues = self._scores(tl_id, counts, t_s)
        cur = machine.phase
        # A phase with a lane whose detector reports nothing may hold vehicles: the
        # starvation guard serves it as if they halted there (a failed detector's recall).
        blind = blind_phases(self._phases[tl_id], counts)
        waiting = [queues[i] > 0 or i in blind for i in range(len(scores))]
        others = [i for i in range(len(scores)) if i != cur and (waiting[i] or scores[i] > 0)]
        if not others:
            return
        best = max(others, key=lambda i: scores[i])
        starving = [
            i for i in others if waiting[i] and t_s - machine.last_served_s[i] > p.red_s_max
        ]
        green_s = machine.green_elapsed_s(t_s)
        if starving:
            target = max(starving, key=lambda i: t_s - machine.last_served_s[i])
            what = (
                f"has {queues[target]} halting"
                if queues[target] > 0
                else f"has detectors that report nothing ({', '.join(blind[target])})"
            )
            reason = (
                f"starvation guard: phase {target} {what} and has not "
                f"been green for {t_s - machine.last_served_s[target]:.0f} s > "
                f"{p.red_s_max:.0f} s"
            )
        elif green_s >= self.timing.green_s_max:
            target = best
            reason = (
                f"max green {self.timing.green_s_max:.0f} s; phase {best} scores {scores[best]:.1f}"
            )
        elif p.max_gap_s > 0 and self._gapped_out(tl_id, cur):
            if p.extend_on_platoon and self._extend(machine, t_s, best, queues[best], counts):
                return
            target = best
            reason = (
                f"gap out: no vehicle crossed a stop line of phase {cur} for {p.max_gap_s:g} s;"
                f" phase {best} scores {scores[best]:.1f}"
            )
        elif scores[best] <= 0:
            return
        elif p.end_on_cleared_queue and queues[cur] == 0 and scores[best] > scores[cur]:
            target = best
            reason = f"queue of phase {cur} cleared; phase {best} scores {scores[best]:.1f}"
        elif p.preempt_ratio is not None and scores[best] > max(
            scores[cur] * p.preempt_ratio, scores[cur] + p.preempt_margin_veh
        ):
            target = best
            reason = (
                f"pressure: phase {best} scores {scores[best]:.1f} > current phase {cur} "
                f"{scores[cur]:.1f} by more than the switch margin"
            )
        else:
            return
        machine.switch(t_s, target, reason)

    def _extend(
        self,
        machine: PhaseMachine,
        t_s: float,
        best: int,
        best_queue: int,
        counts: dict[str, tuple[int, int]],
    ) -> bool:
        """Hold a gapped-out green for a platoon forecast to reach its stop lines; log the
        start of each extension."""
        p = self.params
        tl_id, cur = machine.tl.tl_id, machine.phase
        coming = self._forecast(tl_id, cur, t_s, p.extend_horizon_s, counts)
        waiting = best_queue + self._forecast(tl_id, best, t_s, p.extend_horizon_s, counts)
        if coming < max(p.extend_min_veh, p.extend_queue_ratio * waiting):
            return False
        if self._extended_at.get(tl_id) != t_s - 1.0:
            reason = (
                f"green extended: {coming:.1f} vehicles forecast at the stop lines of phase "
                f"{cur} within {p.extend_horizon_s:g} s (no vehicle crossed for "
                f"{p.max_gap_s:g} s; phase {best} has {best_queue} halting and "
                f"{waiting - best_queue:.1f} forecast)"
            )
            self.decisions.append(Decision(t_s, tl_id, "extend", cur, cur, reason))
        self._extended_at[tl_id] = t_s
        return True
