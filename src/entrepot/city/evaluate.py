"""Episodes: one scenario, one controller, same demand and seed; metrics for every inserted
vehicle (unfinished ones counted to the episode end)."""

from __future__ import annotations

import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from entrepot.city.controllers import make_controller
from entrepot.city.controllers.base import (
    ControlContext,
    SafetyMonitor,
    SignalController,
    SignalHandle,
)
from entrepot.city.errors import SignalNotOwned
from entrepot.city.model import Decision, EpisodeMetrics, Scenario, average_travel_time_s
from entrepot.city.ports import Simulator
from entrepot.city.sumo import (
    SignalProgram,
    SumoSimulator,
    baseline_program_id,
    baseline_variants,
    loaded_programs,
    read_net,
    running_of,
    waut_programs,
    write_actuated_programs,
    write_detectors,
)

#: Every minute the episode records vehicles running and halting (for the plots).
TIMELINE_S = 60
StepHook = Callable[[float, Simulator], None]
Progress = Callable[[float, float], None]


@dataclass
class EpisodeResult:
    metrics: EpisodeMetrics
    decisions: list[Decision]
    violations: dict[str, int]
    violation_examples: list[str]
    signal_changes: dict[str, int]
    owned: frozenset[str]
    untouched_programs: dict[str, str] = field(default_factory=dict)


def run_episode(
    scenario: Scenario,
    controller_name: str | SignalController,
    *,
    simulator: Simulator | None = None,
    owned: frozenset[str] | None = None,
    hooks: tuple[StepHook, ...] = (),
    progress: Progress | None = None,
    workdir: Path | None = None,
) -> EpisodeResult:
    """Run one episode to ``scenario.end_s``; the simulator is closed whatever happens."""
    controller = (  # unknown names fail before SUMO starts
        make_controller(controller_name) if isinstance(controller_name, str) else controller_name
    )
    sim = simulator or SumoSimulator()
    with tempfile.TemporaryDirectory(prefix="entrepot-city-", dir=workdir) as tmp:
        wd = Path(tmp)
        net = read_net(scenario.net_file)
        # The programs the city runs: the network's, overridden by its additional files' the
        # way SUMO loads them. The actuated baseline is built on these, not on the network's.
        loaded = loaded_programs(net, scenario.additional_files)
        programs = running_of(net, loaded)
        wauts = _as_shown(waut_programs(scenario.additional_files), loaded)
        first: list[Path] = []
        if controller.needs_actuated_programs:
            # Loaded before the city's files, so SUMO starts each signal on the city's program
            # (a WAUT's too) and the controller reads it there; actuated variants of every
            # program a WAUT switches a signal to, so the baseline can follow the schedule.
            also = [p for p in loaded if p.tl_id in wauts]
            first.append(
                write_actuated_programs(programs, wd / "actuated.add.xml", owned, also=also)
            )
        extras = [write_detectors(net, wd / "detectors.add.xml")]
        run = replace(scenario, additional_files=(*first, *scenario.additional_files, *extras))
        started = time.perf_counter()
        sim.start(run, outputs_dir=wd)
        try:
            result = _drive(sim, run, controller, owned, hooks, progress, programs, loaded, wauts)
        finally:
            sim.close()
        waiting, time_loss = _tripinfo_means(wd / "tripinfo.xml")
    m = result.metrics
    result.metrics = replace(
        m,
        avg_waiting_time_s=waiting,
        avg_time_loss_s=time_loss,
        wall_s=time.perf_counter() - started,
    )
    return result


def _as_shown(
    wauts: dict[str, frozenset[str]], loaded: list[SignalProgram]
) -> dict[str, frozenset[str]]:
    """The programs each WAUT names as SUMO shows them: a program of type off is shown as
    ``off``, whatever its id."""
    off = {(p.tl_id, p.program_id) for p in loaded if p.off}
    return {
        tl: frozenset("off" if (tl, pid) in off else pid for pid in names)
        for tl, names in wauts.items()
    }


def _drive(
    sim: Simulator,
    scenario: Scenario,
    controller: SignalController,
    owned: frozenset[str] | None,
    hooks: tuple[StepHook, ...],
    progress: Progress | None,
    programs: dict[str, SignalProgram],
    loaded: list[SignalProgram],
    wauts: dict[str, frozenset[str]],
) -> EpisodeResult:
    signals = sim.signal_ids()
    # A signal the city has off (program type off) is not controlled: every controller leaves
    # it off, as the city runs it; so is one its WAUT switches off at times (SUMO may start it
    # on the off program, and an adaptive controller would switch on a signal the city has off).
    off = frozenset(tl for tl, p in programs.items() if p.off) | frozenset(
        tl for tl, shown in wauts.items() if "off" in shown
    )
    mine = frozenset(signals) - off if owned is None else owned
    unknown = sorted(mine - set(signals))
    if unknown:
        raise SignalNotOwned(f"cannot own signal(s) {', '.join(unknown)}: not in this network")
    dark = sorted(mine & off)
    if dark:
        raise SignalNotOwned(
            f"cannot own signal(s) {', '.join(dark)}: the city's program is off there "
            "(type off, or its WAUT switches it off), and a signal that is off is not "
            "controlled"
        )
    handle = SignalHandle(sim, mine)
    ctx = ControlContext(
        sim,
        handle,
        {tl: sim.intersection(tl) for tl in signals},
        city_programs={tl: p.program_id for tl, p in programs.items()},
        baseline_programs={tl: baseline_program_id(p) for tl, p in programs.items()},
        baseline_variants=baseline_variants(loaded, programs),
        wauts=wauts,
    )
    start_programs = {tl: sim.signal_program_id(tl) for tl in signals if tl not in mine}
    controller.attach(ctx, sim.time_s())
    monitor = SafetyMonitor(controller.green_s_min)
    departs: dict[str, float] = {}
    arrivals: dict[str, float] = {}
    teleports = 0
    timeline: list[tuple[float, int, int]] = []
    t = sim.time_s()
    while t < scenario.end_s:
        events = sim.step()
        t = sim.time_s()
        # Both at the time of the step that just ran, as SUMO's tripinfo records them (its
        # duration = arrival - depart); an arrival stamped at the step's end would add 1 s to
        # every finished trip and none to the unfinished ones.
        for vid in events.departed:
            departs[vid] = t - 1.0
        for vid in events.arrived:
            arrivals[vid] = t - 1.0
        teleports += events.teleports
        for tl in signals:
            monitor.observe(t, tl, sim.signal_state(tl))
        controller.act(t)
        for hook in hooks:
            hook(t, sim)
        if int(t) % TIMELINE_S == 0:
            running, halting = sim.running_and_halting()
            timeline.append((t, running, halting))
        if progress is not None:
            progress(t - scenario.begin_s, scenario.end_s - scenario.begin_s)
    never_inserted = sim.pending_vehicles()
    untouched = {tl: sim.signal_program_id(tl) for tl in start_programs}
    # A signal not owned may change program only as its city's WAUT switches it.
    changed = {
        tl: p
        for tl, p in untouched.items()
        if p != start_programs[tl] and p not in wauts.get(tl, frozenset())
    }
    span_s = scenario.end_s - scenario.begin_s
    metrics = EpisodeMetrics(
        scenario=scenario.name,
        controller=controller.name,
        end_s=scenario.end_s,
        inserted=len(departs),
        arrived=len(arrivals),
        unfinished=len(departs) - len(arrivals),
        never_inserted=never_inserted,
        teleports=teleports,
        avg_travel_time_s=average_travel_time_s(departs, arrivals, float(scenario.end_s)),
        avg_waiting_time_s=0.0,
        avg_time_loss_s=0.0,
        throughput_vph=len(arrivals) * 3600.0 / span_s,
        safety_violations=monitor.total + len(changed),
        decisions=len(controller.decisions),
        wall_s=0.0,
        timeline=tuple(timeline),
    )
    return EpisodeResult(
        metrics,
        controller.decisions,
        dict(monitor.violations),
        monitor.examples,
        dict(handle.changes),
        mine,
        untouched,
    )


def _tripinfo_means(path: Path) -> tuple[float, float]:
    """Mean waiting time and time loss over every tripinfo (unfinished ones included)."""
    if not path.exists():
        return 0.0, 0.0
    n = 0
    waiting = 0.0
    loss = 0.0
    for _, elem in ET.iterparse(path):
        if elem.tag == "tripinfo":
            n += 1
            waiting += float(elem.get("waitingTime", 0))
            loss += float(elem.get("timeLoss", 0))
            elem.clear()
    return (waiting / n, loss / n) if n else (0.0, 0.0)
