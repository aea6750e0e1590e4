"""The controller interface, the signal handle that enforces ownership, the phase machine that
enforces safe transitions, and the safety monitor that checks what the simulator shows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field

from entrepot.city.errors import SignalNotOwned, UnsafeTransition
from entrepot.city.model import (
    GREEN,
    Decision,
    Intersection,
    SignalTiming,
    transition_states,
)
from entrepot.city.ports import Simulator

#: A link that loses green must not see a conflicting green sooner than this (s).
CLEARANCE_S_MIN = 3.0
#: A yellow must last at least this long (s); ``SignalTiming`` holds controllers to it.
YELLOW_S_MIN = 3.0


class SignalHandle:
    """The only way a controller changes signals: refuses signals it does not own, counts
    every change."""

    def __init__(self, sim: Simulator, owned: frozenset[str]) -> None:
        self._sim = sim
        self.owned = owned
        self.changes: Counter[str] = Counter()

    def _check(self, tl_id: str) -> None:
        if tl_id not in self.owned:
            raise SignalNotOwned(
                f"controller tried to change signal {tl_id!r}, which it does not own "
                f"(it owns {len(self.owned)} signal(s))"
            )

    def set_state(self, tl_id: str, state: str) -> None:
        self._check(tl_id)
        self._sim.set_signal_state(tl_id, state)
        self.changes[tl_id] += 1

    def set_program(self, tl_id: str, program_id: str) -> None:
        self._check(tl_id)
        self._sim.set_signal_program(tl_id, program_id)
        self.changes[tl_id] += 1


@dataclass
class ControlContext:
    sim: Simulator
    handle: SignalHandle
    intersections: dict[str, Intersection]
    #: The programID each signal runs as the scenario defines it (network, then additional files).
    city_programs: dict[str, str] = field(default_factory=dict)
    #: The programID each signal runs under the actuated baseline (``sumo.baseline_program_id``).
    baseline_programs: dict[str, str] = field(default_factory=dict)
    #: signal -> {a city programID as SUMO shows it: the actuated baseline's program for it}.
    baseline_variants: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Signals a city WAUT switches -> the programs it names (``sumo.waut_programs``).
    wauts: dict[str, frozenset[str]] = field(default_factory=dict)


class SignalController(ABC):
    """One policy for the signals it owns. ``act`` is called after every simulation step."""

    name: str = "controller"
    #: Shortest green the controller promises (the safety monitor holds it to this).
    green_s_min: float = 5.0
    #: Whether it needs the adapter's SUMO actuated programs loaded.
    needs_actuated_programs: bool = False

    def __init__(self) -> None:
        self.decisions: list[Decision] = []

    @abstractmethod
    def attach(self, ctx: ControlContext, t_s: float) -> None: ...

    @abstractmethod
    def act(self, t_s: float) -> None: ...


class PhaseMachine:
    """Green -> yellow -> all-red -> green for one signal; a switch cannot skip a stage and
    cannot start before the minimum green has run."""

    def __init__(
        self,
        tl: Intersection,
        timing: SignalTiming,
        handle: SignalHandle,
        log: list[Decision],
        t_s: float,
        current_state: str,
    ) -> None:
        if not tl.green_phases:
            raise UnsafeTransition(f"signal {tl.tl_id!r} has no green phase to serve")
        self.tl = tl
        self.timing = timing
        self._handle = handle
        self._log = log
        self.stage = "green"
        self.stage_since_s = t_s
        self._state = current_state
        self._all_red = current_state
        if current_state in tl.green_phases:
            self.phase = tl.green_phases.index(current_state)
            self.target = self.phase
            # Take the signal over: from now on only this machine changes it.
            handle.set_state(tl.tl_id, current_state)
        else:  # start mid-transition: clear to phase 0 safely
            self.phase = 0
            self._state = ""  # take the signal over even if the clearing state is the shown one
            self._start_transition(t_s, current_state, 0)
        self.last_served_s = [t_s] * len(tl.green_phases)

    def green_elapsed_s(self, t_s: float) -> float:
        return t_s - self.stage_since_s if self.stage == "green" else -1.0

    def can_switch(self, t_s: float) -> bool:
        return self.stage == "green" and self.green_elapsed_s(t_s) >= self.timing.green_s_min

    def switch(self, t_s: float, target: int, reason: str) -> None:
        if not self.can_switch(t_s):
            raise UnsafeTransition(
                f"signal {self.tl.tl_id!r}: switch at t={t_s} would cut the minimum green "
                f"({self.timing.green_s_min} s) or interrupt a transition"
            )
        if target == self.phase:
            return
        self._log.append(Decision(t_s, self.tl.tl_id, "switch", self.phase, target, reason))
        self._start_transition(t_s, self.tl.green_phases[self.phase], target)

    def _start_transition(self, t_s: float, current: str, target: int) -> None:
        self.target = target
        yellow, self._all_red = transition_states(current, self.tl.green_phases[target])
        self._set(yellow)
        self.stage = "yellow"
        self.stage_since_s = t_s

    def tick(self, t_s: float) -> None:
        elapsed = t_s - self.stage_since_s
        if self.stage == "yellow" and elapsed >= self.timing.yellow_s:
            if self.timing.all_red_s > 0:
                self._set(self._all_red)
                self.stage, self.stage_since_s = "all_red", t_s
            else:
                self._enter_green(t_s)
        elif self.stage == "all_red" and elapsed >= self.timing.all_red_s:
            self._enter_green(t_s)
        if self.stage == "green":
            self.last_served_s[self.phase] = t_s

    def _enter_green(self, t_s: float) -> None:
        self.phase = self.target
        self._set(self.tl.green_phases[self.phase])
        self.stage, self.stage_since_s = "green", t_s

    def _set(self, state: str) -> None:
        if state != self._state:
            self._handle.set_state(self.tl.tl_id, state)
        self._state = state


class SafetyMonitor:
    """Watches every signal's shown state each step and counts unsafe changes:
    a link leaving green without yellow, a yellow shorter than ``YELLOW_S_MIN`` (when its start
    was seen), a conflicting green sooner than the clearance after a link left green, a green
    shorter than the controller's promised minimum."""

    def __init__(self, green_s_min: float) -> None:
        self.green_s_min = green_s_min
        self._prev: dict[str, str] = {}
        self._green_since: dict[str, list[float]] = {}
        self._yellow_since: dict[str, list[float]] = {}
        self._last_loss_s: dict[str, float] = {}
        self.violations: Counter[str] = Counter()
        self.examples: list[str] = []

    def observe(self, t_s: float, tl_id: str, state: str) -> None:
        prev = self._prev.get(tl_id)
        self._prev[tl_id] = state
        if prev is None:
            self._green_since[tl_id] = [t_s if c in GREEN else -1.0 for c in state]
            self._yellow_since[tl_id] = [-1.0] * len(state)  # a yellow already shown: start unknown
            return
        if prev == state:
            return
        since = self._green_since[tl_id]
        yellow_since = self._yellow_since[tl_id]
        gained = False
        for i, (was, now) in enumerate(zip(prev, state, strict=True)):
            if was != "y" and now == "y":
                yellow_since[i] = t_s
            elif was == "y" and now != "y":
                if yellow_since[i] >= 0 and t_s - yellow_since[i] < YELLOW_S_MIN:
                    self._flag(
                        "short_yellow", f"t={t_s} {tl_id} link {i} yellow {t_s - yellow_since[i]}s"
                    )
                yellow_since[i] = -1.0
            if was in GREEN and now not in GREEN:
                if now != "y":
                    self._flag("no_yellow", f"t={t_s} {tl_id} link {i}: {was}->{now}")
                if since[i] >= 0 and t_s - since[i] < self.green_s_min:
                    self._flag("short_green", f"t={t_s} {tl_id} link {i} green {t_s - since[i]}s")
                self._last_loss_s[tl_id] = t_s
                since[i] = -1.0
            elif was not in GREEN and now in GREEN:
                gained = True
                since[i] = t_s
        if gained and t_s - self._last_loss_s.get(tl_id, -1e9) < CLEARANCE_S_MIN:
            self._flag("short_clearance", f"t={t_s} {tl_id}: green within clearance")

    def _flag(self, kind: str, example: str) -> None:
        self.violations[kind] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {example}")

    @property
    def total(self) -> int:
        return sum(self.violations.values())
