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

Detector diagnostics: a lane-area detector that reports nothing, or that has counted no vehicle
for ``no_activity_s`` while another detector of the same signal counted traffic meanwhile
(NTCIP 1202's "no activity" fault: a detector stuck at 0 reads as an empty approach), may hide
waiting vehicles; the starvation guard serves its phase as if they halted there (a failed
detector's recall). A silent detector is judged failed, and cleared when it counts a vehicle
again; each judgement is logged (a ``detector`` decision) with the numbers behind it.

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
    #: Judge a lane-area detector failed when it has counted no vehicle for this long while
    #: another detector of the same signal counted one meanwhile (a detector stuck at 0; NTCIP
    #: 1202's "no activity" fault); its phase is then recalled like one whose detector reports
    #: nothing, until it counts a vehicle again. None: never. Lanes green in every phase are
    #: not judged (no phase choice can starve them).
    no_activity_s: float | None = 300.0
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
        # Detector diagnostics: per signal, the incoming lanes a phase choice can starve; when
        # each lane's detector last counted a vehicle; the lanes judged failed (silent).
        self._watched: dict[str, tuple[str, ...]] = {}
        for tl, phases in self._phases.items():
            served = [{lane for lane, _ in ph} for ph in phases]
            always = set.intersection(*served) if served else set()
            self._watched[tl] = tuple(sorted(set().union(*served) - always))
        self._last_count_s = {lane: t_s for lanes in self._watched.values() for lane in lanes}
        self._silent: dict[str, set[str]] = {tl: set() for tl in self._machines}
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
        if self.params.no_activity_s is not None:
            self._diagnose(t_s, counts)
        for machine in ready:
            self._decide(machine, t_s, counts)

    def _diagnose(self, t_s: float, counts: dict[str, tuple[int, int]]) -> None:
        """No-activity diagnostics: judge a detector failed when it has counted no vehicle for
        ``no_activity_s`` while another detector of its signal counted one meanwhile; clear it
        when it counts one again. Each judgement is logged."""
        limit = self.params.no_activity_s
        assert limit is not None
        last = self._last_count_s
        for tl_id, lanes in self._watched.items():
            silent = self._silent[tl_id]
            phase = self._machines[tl_id].phase
            for lane in lanes:
                if lane not in counts:  # reports nothing: blind, recalled as such
                    continue
                vehicles = counts[lane][0]
                if vehicles > 0:
                    if lane in silent:
                        silent.discard(lane)
                        reason = (
                            f"detector of {lane} counts again ({vehicles} vehicle(s) after "
                            f"{t_s - last[lane]:.0f} s without one): no longer judged failed"
                        )
                        self.decisions.append(
                            Decision(t_s, tl_id, "detector", phase, phase, reason)
                        )
                    last[lane] = t_s
            for lane in lanes:
                quiet_s = t_s - last[lane]
                if lane in silent or lane not in counts or quiet_s < limit:
                    continue
                active = [o for o in lanes if o != lane and last[o] > last[lane]]
                if not active:  # the whole signal is quiet: no evidence of a fault
                    continue
                silent.add(lane)
                served = [i for i, ph in enumerate(self._phases[tl_id]) if lane in dict(ph)]
                latest = max(last[o] for o in active)
                reason = (
                    f"detector of {lane} judged failed (no activity): it counted no vehicle "
                    f"for {quiet_s:.0f} s >= {limit:.0f} s while {len(active)} other detector(s) "
                    f"of this signal counted traffic (the last {t_s - latest:.0f} s ago); "
                    f"phase(s) {', '.join(map(str, served))} recalled until it counts again"
                )
                self.decisions.append(Decision(t_s, tl_id, "detector", phase, phase, reason))

    def _lane_last_green_s(self, tl_id: str, machine: PhaseMachine) -> dict[str, float]:
        """When each lane of a signal last had green (in any phase that serves it)."""
        out: dict[str, float] = {}
        for i, phase in enumerate(self._phases[tl_id]):
            for lane, _ in phase:
                out[lane] = max(out.get(lane, -1e18), machine.last_served_s[i])
        return out

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
        # A phase with a lane whose detector reports nothing, or has been judged failed (no
        # activity), may hold vehicles: the starvation guard serves it as if they halted
        # there (a failed detector's recall); one that reports nothing is also a candidate
        # at every gap out and max green.
        blind = blind_phases(self._phases[tl_id], counts)
        # A failed lane starves when no phase that serves it has been green for red_s_max
        # (on plans where a lane is green in several phases, serving any of them serves it).
        last_green = self._lane_last_green_s(tl_id, machine)
        failed = {
            i: lanes
            for i, phase in enumerate(self._phases[tl_id])
            if (
                lanes := tuple(
                    lane
                    for lane, _ in phase
                    if lane in self._silent[tl_id] and t_s - last_green[lane] > p.red_s_max
                )
            )
        }
        waiting = [queues[i] > 0 or i in blind for i in range(len(scores))]
        others = [i for i in range(len(scores)) if i != cur and (waiting[i] or scores[i] > 0)]
        # A phase whose detector was judged failed is served by the starvation guard only:
        # chosen at every gap out, it would cycle a quiet signal through an approach that is
        # most likely empty (measured at night: docs/city.md).
        starving = [
            i
            for i in range(len(scores))
            if i != cur
            and (i in failed or (waiting[i] and t_s - machine.last_served_s[i] > p.red_s_max))
        ]
        if not others and not starving:
            return
        best = max(others, key=lambda i: scores[i], default=cur)
        green_s = machine.green_elapsed_s(t_s)
        if starving:
            target = max(starving, key=lambda i: t_s - machine.last_served_s[i])
            if queues[target] > 0:
                what = f"has {queues[target]} halting"
            elif target in blind:
                what = f"has detectors that report nothing ({', '.join(blind[target])})"
            else:
                lanes = failed[target]
                quiet = min(t_s - self._last_count_s[lane] for lane in lanes)
                unserved = min(t_s - last_green[lane] for lane in lanes)
                what = (
                    f"has detectors judged failed, no vehicle for {quiet:.0f} s or more "
                    f"({', '.join(lanes)}), whose lanes have not been green for "
                    f"{unserved:.0f} s"
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
