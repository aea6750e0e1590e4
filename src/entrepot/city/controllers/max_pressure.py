"""Max-pressure (Varaiya) on the network's own green phases, with safe transitions."""

from __future__ import annotations

from entrepot.city.controllers.base import ControlContext, PhaseMachine, SignalController
from entrepot.city.model import GREEN, Intersection, SignalTiming

#: A phase with a lane whose detector reports nothing has unknown pressure: it is served once
#: it has not been green for this long (s), as an actuated controller recalls a phase whose
#: detector failed (below SUMO's 300 s teleport time).
BLIND_RECALL_S = 240.0

#: Pinned: a controller's timing alone moves travel time by tens of seconds.
MAX_PRESSURE_TIMING = SignalTiming(
    green_s_min=10.0, green_s_max=1e9, yellow_s=3.0, all_red_s=2.0, decision_s=5.0
)


def blind_phases(
    phases: list[list[tuple[str, tuple[str, ...]]]], counts: dict[str, tuple[int, int]]
) -> dict[int, tuple[str, ...]]:
    """Phases with an incoming lane whose detector reported nothing, with those lanes."""
    out = {}
    for i, phase in enumerate(phases):
        missing = tuple(lane for lane, _ in phase if lane not in counts)
        if missing:
            out[i] = missing
    return out


def phase_movements(tl: Intersection) -> list[list[tuple[str, tuple[str, ...]]]]:
    """Per green phase: each served incoming lane with the outgoing lanes it feeds."""
    result = []
    for state in tl.green_phases:
        served: dict[str, set[str]] = {}
        for movement, letter in zip(tl.movements, state, strict=True):
            if movement is not None and letter in GREEN:
                served.setdefault(movement.in_lane, set()).add(movement.out_lane)
        result.append([(lane, tuple(sorted(outs))) for lane, outs in sorted(served.items())])
    return result


class MaxPressureController(SignalController):
    """Every ``decision_s`` after the minimum green, serve the phase with the highest pressure:
    vehicles on its incoming lanes minus (the mean of) vehicles on the lanes they feed."""

    name = "max_pressure"

    def __init__(self, timing: SignalTiming = MAX_PRESSURE_TIMING) -> None:
        super().__init__()
        self.timing = timing
        self.green_s_min = timing.green_s_min

    def attach(self, ctx: ControlContext, t_s: float) -> None:
        self._ctx = ctx
        self._machines = {
            tl_id: PhaseMachine(
                ctx.intersections[tl_id],
                self.timing,
                ctx.handle,
                self.decisions,
                t_s,
                ctx.sim.signal_state(tl_id),
            )
            for tl_id in sorted(ctx.handle.owned)
        }
        self._phases = {tl: phase_movements(ctx.intersections[tl]) for tl in self._machines}
        lanes = set()
        for phases in self._phases.values():
            for phase in phases:
                for lane, outs in phase:
                    lanes.add(lane)
                    lanes.update(outs)
        self._lanes = tuple(sorted(lanes))

    def act(self, t_s: float) -> None:
        for machine in self._machines.values():
            machine.tick(t_s)
        if int(t_s) % int(self.timing.decision_s):
            return
        ready = [m for m in self._machines.values() if m.can_switch(t_s)]
        if not ready:
            return
        counts = self._ctx.sim.lane_counts(self._lanes)
        for machine in ready:
            phases = self._phases[machine.tl.tl_id]
            blind = blind_phases(phases, counts)
            recall = [
                i
                for i in blind
                if i != machine.phase and t_s - machine.last_served_s[i] > BLIND_RECALL_S
            ]
            if recall:
                target = max(recall, key=lambda i: t_s - machine.last_served_s[i])
                machine.switch(
                    t_s,
                    target,
                    f"detector recall: the detectors of phase {target} report nothing "
                    f"({', '.join(blind[target])}) and it has not been green for "
                    f"{t_s - machine.last_served_s[target]:.0f} s > {BLIND_RECALL_S:.0f} s",
                )
                continue
            # A lane whose detector reports nothing counts as empty (its phase is recalled).
            pressures = [
                sum(
                    counts.get(lane, (0, 0))[0]
                    - sum(counts.get(o, (0, 0))[0] for o in outs) / len(outs)
                    for lane, outs in phase
                )
                for phase in phases
            ]
            best = max(range(len(pressures)), key=lambda i: (pressures[i], i == machine.phase))
            if best != machine.phase and pressures[best] > pressures[machine.phase]:
                machine.switch(
                    t_s,
                    best,
                    f"max pressure: phase {best} {pressures[best]:.1f} > "
                    f"current phase {machine.phase} {pressures[machine.phase]:.1f}",
                )
