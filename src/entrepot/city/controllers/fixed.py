"""Fixed time: the network's own signal plans, untouched."""

from __future__ import annotations

from entrepot.city.controllers.base import ControlContext, SignalController


class FixedTimeController(SignalController):
    """Runs each signal's plan as the network file defines it; changes nothing."""

    name = "fixed"

    def __init__(self, green_s_min: float = 5.0) -> None:
        super().__init__()
        self.green_s_min = green_s_min

    def attach(self, ctx: ControlContext, t_s: float) -> None:
        self._ctx = ctx

    def act(self, t_s: float) -> None:
        return None
