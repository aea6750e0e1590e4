"""The city brain: sensing, forecasting and traffic-signal control, judged in a simulator.

Owns: scenarios (a SUMO network, its demand, an episode window), the simulator port and its
SUMO adapter, signal controllers (fixed time, SUMO actuated, max-pressure, Entrepot's adaptive
controller), the sensing pipeline (detectors + probe fleet fused into link estimates), link
speed forecasts, and the evaluation of controllers on the same demand and seed.

Invariants:
- Every phase change a controller makes is safe: links losing green show yellow, then
  all-red, before any conflicting link gains green; no green is cut below the controller's
  minimum. The :class:`PhaseMachine` enforces it, a :class:`SafetyMonitor` checks what the
  simulator actually shows.
- A controller changes only the signals it owns (:class:`SignalHandle` refuses the rest).
- Every switch of an adaptive controller is logged as a :class:`Decision` with its reason.
- Probe traces are aggregated to per-link speeds and dropped: no vehicle id, position or
  per-vehicle history is kept after aggregation.
- Bad input (missing or malformed network, routes off the network, unknown controller or
  scenario, impossible probe) raises a DomainError naming the problem, and no simulation is
  left running.
- Randomness is seeded: same scenario, seed and controller, same result.
- Forecast features at minute t use only data up to t (and whole reference days); a forecast
  model's features and hyper-parameters are chosen on validation days cut from the training
  days, never on test days.
"""

from entrepot.city.controllers import (
    CONTROLLERS,
    PhaseMachine,
    SafetyMonitor,
    SignalController,
    SignalHandle,
    make_controller,
)
from entrepot.city.errors import (
    InvalidProbe,
    InvalidSeries,
    NetworkInvalid,
    RoutesInvalid,
    ScenarioInvalid,
    SignalNotOwned,
    SimulatorError,
    UnknownController,
    UnknownScenario,
    UnsafeTransition,
)
from entrepot.city.evaluate import EpisodeResult, run_episode
from entrepot.city.model import (
    Decision,
    EpisodeMetrics,
    Intersection,
    LinkEstimate,
    ProbeRecord,
    Scenario,
    SignalTiming,
    transition_states,
)
from entrepot.city.ports import Simulator
from entrepot.city.sensing import ProbeAggregator, SensingPipeline

__all__ = [
    "CONTROLLERS",
    "Decision",
    "EpisodeMetrics",
    "EpisodeResult",
    "Intersection",
    "InvalidProbe",
    "InvalidSeries",
    "LinkEstimate",
    "NetworkInvalid",
    "PhaseMachine",
    "ProbeAggregator",
    "ProbeRecord",
    "RoutesInvalid",
    "SafetyMonitor",
    "Scenario",
    "ScenarioInvalid",
    "SensingPipeline",
    "SignalController",
    "SignalHandle",
    "SignalNotOwned",
    "SignalTiming",
    "Simulator",
    "SimulatorError",
    "UnknownController",
    "UnknownScenario",
    "UnsafeTransition",
    "make_controller",
    "run_episode",
    "transition_states",
]
