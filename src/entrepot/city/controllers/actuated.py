"""SUMO's own actuated control on each signal's phases: the robust baseline."""

from __future__ import annotations

from entrepot.city.controllers.base import ControlContext, SignalController
from entrepot.city.model import Decision
from entrepot.city.sumo import ACTUATED_GREEN_S_MIN, ACTUATED_PROGRAM


class ActuatedController(SignalController):
    """Switches every owned signal to SUMO's gap-based actuated program (green 5-50 s).
    SUMO extends a green while its loops see vehicles closer than the gap, then moves on."""

    name = "actuated"
    green_s_min = float(ACTUATED_GREEN_S_MIN)
    needs_actuated_programs = True

    def attach(self, ctx: ControlContext, t_s: float) -> None:
        for tl_id in sorted(ctx.handle.owned):
            ctx.handle.set_program(tl_id, ACTUATED_PROGRAM)
            self.decisions.append(
                Decision(t_s, tl_id, "program", 0, 0, f"SUMO actuated program {ACTUATED_PROGRAM}")
            )

    def act(self, t_s: float) -> None:
        return None
