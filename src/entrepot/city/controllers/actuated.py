"""SUMO's own actuated control on each signal's phases: the robust baseline."""

from __future__ import annotations

from entrepot.city.controllers.base import ControlContext, SignalController
from entrepot.city.model import Decision
from entrepot.city.sumo import ACTUATED_GREEN_S_MIN, ACTUATED_PROGRAM


class ActuatedController(SignalController):
    """Switches every owned signal to SUMO's gap-based actuated program (green 5-50 s), built
    on the phases of the program the city runs (its network's, or its additional files' that
    SUMO loads over it); a signal whose city program already responds to traffic keeps that
    program. SUMO extends a green while its loops see vehicles closer than the gap, then moves
    on."""

    name = "actuated"
    green_s_min = float(ACTUATED_GREEN_S_MIN)
    needs_actuated_programs = True

    def attach(self, ctx: ControlContext, t_s: float) -> None:
        self._ctx = ctx
        # Signals a city WAUT switches: the baseline follows the schedule, on the actuated
        # variant of each program SUMO switches the signal to.
        self._follow = {
            tl: ctx.baseline_variants.get(tl, {}) for tl in ctx.handle.owned if tl in ctx.wauts
        }
        for tl_id in sorted(ctx.handle.owned):
            city = ctx.city_programs.get(tl_id)
            program = ctx.baseline_programs.get(tl_id, ACTUATED_PROGRAM)
            if tl_id in self._follow:  # the program the WAUT runs now, as SUMO shows it
                city = ctx.sim.signal_program_id(tl_id)
                program = self._follow[tl_id].get(city, program)
            ctx.handle.set_program(tl_id, program)
            if not program.startswith(ACTUATED_PROGRAM):
                reason = f"the city's own actuated program {program!r}"
            elif city is not None:
                reason = f"SUMO actuated program {program} on the phases of program {city!r}"
            else:
                reason = f"SUMO actuated program {program}"
            self.decisions.append(Decision(t_s, tl_id, "program", 0, 0, reason))

    def act(self, t_s: float) -> None:
        for tl_id, variants in self._follow.items():
            shown = self._ctx.sim.signal_program_id(tl_id)
            target = variants.get(shown)
            if target is not None and target != shown:  # the WAUT switched to a city program
                self._ctx.handle.set_program(tl_id, target)
                self.decisions.append(
                    Decision(
                        t_s,
                        tl_id,
                        "program",
                        0,
                        0,
                        f"city WAUT switched to program {shown!r}: SUMO actuated program "
                        f"{target} on its phases",
                    )
                )
