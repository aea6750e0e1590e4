"""Errors of the city brain. Every one names the problem; codes are stable snake_case."""

from __future__ import annotations

from entrepot.kernel.errors import DomainError, InvalidInput, NotFound


class ScenarioInvalid(InvalidInput):
    """A network, route or configuration file is missing, malformed or inconsistent."""

    code = "city_scenario_invalid"


class NetworkInvalid(ScenarioInvalid):
    code = "city_network_invalid"


class RoutesInvalid(ScenarioInvalid):
    """Routes that do not parse or that use edges the network does not have."""

    code = "city_routes_invalid"


class UnknownScenario(InvalidInput):
    code = "city_unknown_scenario"


class UnknownController(InvalidInput):
    code = "city_unknown_controller"


class InvalidProbe(InvalidInput):
    """A probe record that cannot be real: impossible coordinates, speed or time."""

    code = "city_invalid_probe"


class InvalidSeries(InvalidInput):
    """A forecasting data set with the wrong shape or too little history."""

    code = "city_invalid_series"


class SignalNotOwned(DomainError):
    """A controller tried to change a signal it was not given."""

    code = "city_signal_not_owned"


class UnsafeTransition(DomainError):
    """A signal change that would skip yellow/all-red or cut a minimum green."""

    code = "city_unsafe_transition"


class SimulatorError(DomainError):
    """The simulator refused to start or failed while running; it has been closed."""

    code = "city_simulator_error"


class SimulatorNotRunning(NotFound):
    code = "city_simulator_not_running"
