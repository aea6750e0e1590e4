"""Signal controllers behind one interface (:class:`SignalController`): fixed time, SUMO's
actuated control, max-pressure and Entrepot's adaptive controller."""

from __future__ import annotations

from collections.abc import Callable

from entrepot.city.controllers.actuated import ActuatedController
from entrepot.city.controllers.base import (
    ControlContext,
    PhaseMachine,
    SafetyMonitor,
    SignalController,
    SignalHandle,
)
from entrepot.city.controllers.entrepot import EntrepotController, EntrepotParams
from entrepot.city.controllers.fixed import FixedTimeController
from entrepot.city.controllers.max_pressure import MaxPressureController
from entrepot.city.errors import UnknownController

CONTROLLERS: dict[str, Callable[[], SignalController]] = {
    "fixed": FixedTimeController,
    "actuated": ActuatedController,
    "max_pressure": MaxPressureController,
    "entrepot": EntrepotController,
}


def make_controller(name: str) -> SignalController:
    factory = CONTROLLERS.get(name)
    if factory is None:
        raise UnknownController(
            f"unknown controller {name!r}; choose one of {', '.join(CONTROLLERS)}",
            field="controller",
        )
    return factory()


__all__ = [
    "CONTROLLERS",
    "ActuatedController",
    "ControlContext",
    "EntrepotController",
    "EntrepotParams",
    "FixedTimeController",
    "MaxPressureController",
    "PhaseMachine",
    "SafetyMonitor",
    "SignalController",
    "SignalHandle",
    "make_controller",
]
