"""Eclipse SUMO adapter: the :class:`~entrepot.city.ports.Simulator` port over libsumo (in
process, fastest, one simulation per process) or TraCI (a SUMO subprocess per simulation), plus
the files SUMO needs: network checks, detector and actuated-signal additionals, generated grids.

SUMO runs headless from the ``eclipse-sumo`` wheel; SUMO_HOME is not needed.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from entrepot.city.errors import (
    NetworkInvalid,
    RoutesInvalid,
    ScenarioInvalid,
    SignalNotOwned,
    SimulatorError,
    SimulatorNotRunning,
)
from entrepot.city.model import (
    SIGNAL_LETTERS,
    Bounds,
    Intersection,
    LaneReading,
    Movement,
    ProbeRecord,
    Scenario,
    is_all_red_phase,
    is_green_phase,
)

#: programID of the actuated programs this adapter writes for SUMO's actuated baseline.
ACTUATED_PROGRAM = "entrepot_actuated"
ACTUATED_GREEN_S_MIN = 5
ACTUATED_GREEN_S_MAX = 50
#: Induction loops sit this far before the stop line and aggregate over this period.
LOOP_SETBACK_M = 1.0
LOOP_PERIOD_S = 5
GAP_LOOP_S = 2.0
_labels = itertools.count()


def sumo_home() -> Path:
    import sumo

    return Path(sumo.SUMO_HOME)


def sumo_binary(name: str = "sumo") -> str:
    path = sumo_home() / "bin" / name
    if not path.exists():
        raise SimulatorError(f"SUMO binary {name!r} not found at {path}; install eclipse-sumo")
    return str(path)


# ---------------------------------------------------------------------------- network files


@dataclass(frozen=True)
class LaneFacts:
    lane_id: str
    edge_id: str
    length_m: float
    speed_mps: float


#: SUMO program types that already respond to traffic: a city running one of these has its own
#: actuated control, which is then its baseline as it stands.
TRAFFIC_RESPONSIVE_TYPES = frozenset({"actuated", "delay_based", "NEMA"})


@dataclass(frozen=True)
class SignalProgram:
    """One ``<tlLogic>``: a signal's program as SUMO loads it from a network or additional file."""

    tl_id: str
    program_id: str
    #: SUMO's ``type``: static, actuated, delay_based, NEMA, ...
    kind: str
    phases: tuple[tuple[str, float], ...]
    source: Path

    @property
    def responsive(self) -> bool:
        return self.kind in TRAFFIC_RESPONSIVE_TYPES

    @property
    def off(self) -> bool:
        """A program of type ``off``: SUMO runs it as its program ``off`` (every link ``O``,
        yield to the right of way), whatever phases it lists. Such a signal is not controlled."""
        return self.kind == "off"


@dataclass(frozen=True)
class NetFacts:
    """What the city brain reads from a network file without starting SUMO."""

    path: Path
    lanes: tuple[LaneFacts, ...]
    edges: frozenset[str]
    #: Every signal program in the network file, in file order.
    programs: tuple[SignalProgram, ...]
    bounds: Bounds

    @property
    def tl_programs(self) -> dict[str, tuple[tuple[str, float], ...]]:
        """Each signal's phases in the program SUMO runs from this network alone."""
        return {tl: p.phases for tl, p in running_programs(self, ()).items()}


def read_net(path: Path) -> NetFacts:
    """Parse and check a SUMO ``.net.xml``; raise NetworkInvalid naming what is wrong."""
    if not path.is_file():
        raise NetworkInvalid(f"network file {path} does not exist", field="net_file")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise NetworkInvalid(
            f"network file {path} is not well-formed XML ({exc})", field="net_file"
        ) from exc
    if root.tag != "net":
        raise NetworkInvalid(
            f"{path} is not a SUMO network: its root element is <{root.tag}>, not <net>",
            field="net_file",
        )
    try:
        return _net_facts(root, path)
    except ValueError as exc:  # a length, speed, duration or boundary that is not a number
        raise NetworkInvalid(
            f"network file {path} has a value that is not a number ({exc})", field="net_file"
        ) from exc


def _net_facts(root: ET.Element, path: Path) -> NetFacts:
    lanes: list[LaneFacts] = []
    edges: set[str] = set()
    for edge in root.iter("edge"):
        if edge.get("function") == "internal":
            continue
        edge_id = edge.get("id", "")
        edges.add(edge_id)
        for lane in edge.iter("lane"):
            lanes.append(
                LaneFacts(
                    lane.get("id", ""),
                    edge_id,
                    float(lane.get("length", 0)),
                    float(lane.get("speed", 13.89)),
                )
            )
    if not lanes:
        raise NetworkInvalid(f"network file {path} has no roads (no <edge> with lanes)")
    programs = tuple(_signal_program(logic, path) for logic in root.iter("tlLogic"))
    return NetFacts(path, tuple(lanes), frozenset(edges), programs, _bounds(root, path))


def _signal_program(logic: ET.Element, source: Path) -> SignalProgram:
    return SignalProgram(
        tl_id=logic.get("id", ""),
        program_id=logic.get("programID", ""),
        kind=logic.get("type", "static"),
        phases=tuple(  # only <phase>: a plan may also carry <param> elements
            (p.get("state", ""), float(p.get("duration", 0))) for p in logic.iter("phase")
        ),
        source=source,
    )


def running_programs(net: NetFacts, additional_files: Iterable[Path]) -> dict[str, SignalProgram]:
    """The program each signal runs when SUMO starts (:func:`running_of` the programs the
    scenario loads)."""
    return running_of(net, loaded_programs(net, additional_files))


def running_of(net: NetFacts, loaded: Iterable[SignalProgram]) -> dict[str, SignalProgram]:
    """The program each signal runs when SUMO starts, of the programs the scenario loads
    (``loaded_programs``, in loading order), found the way SUMO loads programs.

    SUMO (1.28, checked against it in the tests) reads the network's ``<tlLogic>`` elements,
    then each additional file's, in order; every one is added to its signal's programs and the
    one loaded last is the one the signal runs. A program never replaces another: a second one
    with the same signal and ``programID`` makes SUMO refuse the scenario, and so does a program
    for a signal the network does not have. Both raise :class:`ScenarioInvalid` here, naming the
    file, before SUMO starts.
    """
    seen: set[tuple[str, str]] = set()
    running: dict[str, SignalProgram] = {}
    signals = {p.tl_id for p in net.programs}

    def load(program: SignalProgram) -> None:
        key = (program.tl_id, program.program_id)
        if sum(duration for _, duration in program.phases) <= 0:
            raise ScenarioInvalid(
                f"{program.source}: program {program.program_id!r} of signal "
                f"{program.tl_id!r} has no phases (a duration of 0), which SUMO refuses; a "
                'signal the city has off needs type="off" and one phase',
                field="additional_files",
            )
        if key in seen:
            raise ScenarioInvalid(
                f"{program.source}: signal {program.tl_id!r} already has a program "
                f"{program.program_id!r}; SUMO refuses a second one with the same programID "
                "(give it another programID to add it)",
                field="additional_files",
            )
        if program.tl_id not in signals:
            raise ScenarioInvalid(
                f"{program.source}: a program for signal {program.tl_id!r}, which network "
                f"{net.path.name} does not have",
                field="additional_files",
            )
        seen.add(key)
        running[program.tl_id] = program

    for program in loaded:
        load(program)
    return running


def loaded_programs(net: NetFacts, additional_files: Iterable[Path]) -> list[SignalProgram]:
    """Every signal program the scenario loads, in SUMO's loading order (unchecked)."""
    return [*net.programs, *(p for path in additional_files for p in _additional_programs(path))]


def waut_programs(additional_files: Iterable[Path]) -> dict[str, frozenset[str]]:
    """Signals a WAUT (timed program switches) switches: signal -> the programs its WAUT
    names (its ``startProg`` and every ``wautSwitch`` ``to``)."""
    named: dict[str, set[str]] = {}
    junctions: list[tuple[str, str]] = []
    for path in additional_files:
        for _, elem in ET.iterparse(path):
            if elem.tag == "WAUT":
                progs = named.setdefault(elem.get("id", ""), set())
                progs.add(elem.get("startProg", ""))
                progs.update(sw.get("to", "") for sw in elem.iter("wautSwitch"))
            elif elem.tag == "wautJunction":
                junctions.append((elem.get("junctionID", ""), elem.get("wautID", "")))
    return {tl: frozenset(named.get(w, set()) - {""}) for tl, w in junctions}


def _additional_programs(path: Path) -> list[SignalProgram]:
    if not path.is_file():
        raise ScenarioInvalid(f"additional file {path} does not exist", field="additional_files")
    try:
        return [
            _signal_program(elem, path) for _, elem in ET.iterparse(path) if elem.tag == "tlLogic"
        ]
    except ET.ParseError as exc:
        raise ScenarioInvalid(f"additional file {path} is not well-formed XML ({exc})") from exc
    except ValueError as exc:
        raise ScenarioInvalid(
            f"additional file {path}: a phase duration that is not a number ({exc})"
        ) from exc


def _bounds(root: ET.Element, path: Path) -> Bounds:
    location = root.find("location")
    if location is None or not location.get("convBoundary"):
        raise NetworkInvalid(f"network file {path} has no <location convBoundary=...>")
    x0, y0, x1, y1 = (float(v) for v in location.get("convBoundary", "").split(","))
    return Bounds(x0, y0, x1, y1)


def check_routes(route_files: tuple[Path, ...], net: NetFacts) -> int:
    """Check that every route uses only the network's edges; return the number of vehicles."""
    vehicles = 0
    for path in route_files:
        if not path.is_file():
            raise RoutesInvalid(f"routes file {path} does not exist", field="route_files")
        try:
            for _, elem in ET.iterparse(path):
                vehicles += _check_route_element(elem, path, net)
        except ET.ParseError as exc:
            raise RoutesInvalid(f"routes file {path} is not well-formed XML ({exc})") from exc
    if vehicles == 0:
        raise RoutesInvalid(
            f"routes {', '.join(map(str, route_files))} define no vehicles, trips or flows"
        )
    return vehicles


def _check_route_element(elem: ET.Element, path: Path, net: NetFacts) -> int:
    used: list[str] = []
    if elem.tag == "route":
        used = elem.get("edges", "").split()
    elif elem.tag in ("trip", "flow"):
        used = [elem.get(k, "") for k in ("from", "to") if elem.get(k)]
        used += elem.get("via", "").split()
    unknown = [e for e in used if e not in net.edges]
    if unknown:
        shown = ", ".join(repr(e) for e in unknown[:3])
        raise RoutesInvalid(
            f"routes file {path} does not match network {net.path.name}: a {elem.tag} uses "
            f"edge(s) {shown} that the network does not have",
            field="route_files",
        )
    return 1 if elem.tag in ("vehicle", "trip", "flow") else 0


#: SUMO's seed when a configuration names none (``sumo --help``: ``--seed``, default 23423).
SUMO_DEFAULT_SEED = 23423
#: Settings of a ``.sumocfg`` an evaluation cannot honour, and why (checked by their value).
_REFUSED_SETTINGS = {
    "step-length": "every metric, detector period and controller timing assumes 1 s steps",
    "random": "a seed drawn from the clock gives each controller different traffic",
    "load-state": "vehicles loaded from a saved state have no departure in the episode, so "
    "their travel times cannot be measured",
    "remote-port": "Entrepot drives SUMO itself (libsumo or its own TraCI connection)",
    "num-clients": "Entrepot drives SUMO itself (libsumo or its own TraCI connection)",
}


def read_sumocfg(path: Path) -> Scenario:
    """A scenario from a ``.sumocfg``, with every setting SUMO itself would apply.

    SUMO reads the file (``--save-configuration``, so its own synonyms, defaults and path rules
    apply, and an option it does not know is refused as SUMO refuses it), and an episode starts
    SUMO on the file itself (``-c``), overriding only what the evaluation controls: net, routes
    and additional files (plus the detectors it adds), begin and end, seed, time to teleport,
    its own tripinfo and error log. The file's output files are sent to ``NUL``. A setting the
    evaluation cannot honour (a step length other than 1 s, a clock seed, a saved state, a
    TraCI port) raises ScenarioInvalid naming it.
    """
    if not path.is_file():
        raise ScenarioInvalid(f"configuration file {path} does not exist", field="scenario")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ScenarioInvalid(f"configuration {path} is not well-formed XML ({exc})") from exc
    options = _configuration_options(path)

    def values(key: str) -> list[str]:
        return [v.strip() for v in options.get(key, ("", ""))[1].split(",") if v.strip()]

    _check_settings(path, options)
    _check_not_saving(path, root)
    nets = values("net-file")
    if not nets:
        raise ScenarioInvalid(f"configuration {path} names no <net-file>", field="scenario")
    routes = values("route-files")
    if not routes:
        raise ScenarioInvalid(f"configuration {path} names no <route-files>", field="scenario")
    begin = values("begin")
    end = values("end")
    try:
        begin_s = int(float(begin[0])) if begin else 0
        end_s = int(float(end[0])) if end else 3600
    except ValueError as exc:
        raise ScenarioInvalid(
            f"configuration {path}: <begin>/<end> must be seconds ({exc})", field="scenario"
        ) from exc
    teleport = values("time-to-teleport")
    seeds = values("seed")
    try:
        time_to_teleport_s = float(teleport[0]) if teleport else 300.0
        seed = int(seeds[0]) if seeds else SUMO_DEFAULT_SEED
    except ValueError as exc:
        raise ScenarioInvalid(
            f"configuration {path}: <time-to-teleport> must be seconds and <seed> a whole "
            f"number ({exc})",
            field="scenario",
        ) from exc
    check_episode(begin_s, end_s, f"configuration {path}")
    return Scenario(
        name=path.stem,
        net_file=Path(nets[0]),
        route_files=tuple(Path(r) for r in routes),
        additional_files=tuple(Path(a) for a in values("additional-files")),
        begin_s=begin_s,
        end_s=end_s,
        seed=seed,
        description=f"from {path}",
        time_to_teleport_s=time_to_teleport_s,
        config_file=path.resolve(),
        silenced_outputs=tuple(sorted(_output_options(options))),
    )


def _configuration_options(path: Path) -> dict[str, tuple[str, str]]:
    """Each option ``path`` sets, as SUMO reads it: canonical name -> (section, value), file
    names absolute. SUMO refusing the file (an unknown option, a bad value) is ScenarioInvalid
    quoting SUMO."""
    types = _option_types()
    with tempfile.TemporaryDirectory(prefix="entrepot-cfg-") as tmp:
        out = Path(tmp) / "as-sumo-reads-it.sumocfg"
        done = subprocess.run(
            [sumo_binary("sumo"), "-c", str(path.resolve()), "--save-configuration", out.name],
            capture_output=True,
            text=True,
            cwd=tmp,  # file names SUMO writes relative are relative to here
            env=dict(os.environ, SUMO_HOME=str(sumo_home())),
            check=False,
        )
        if done.returncode != 0 or not out.exists():
            said = " ".join((done.stderr or done.stdout).split())[:400]
            raise ScenarioInvalid(
                f"configuration {path}: SUMO refuses it: {said}", field="scenario"
            )
        root = ET.parse(out).getroot()
        options: dict[str, tuple[str, str]] = {}
        for section in root:
            for option in section:
                value = option.get("value", "")
                if types.get(option.tag) == "FILE" and value:
                    value = ",".join(
                        os.path.normpath(Path(tmp) / v.strip()) for v in value.split(",")
                    )
                options[option.tag] = (section.tag, value)
    return options


@functools.lru_cache(maxsize=1)
def _option_types() -> dict[str, str]:
    """Every SUMO option's type (FILE, BOOL, TIME, ...) from SUMO's own template."""
    with tempfile.TemporaryDirectory(prefix="entrepot-cfg-") as tmp:
        out = Path(tmp) / "template.xml"
        _run_tool([sumo_binary("sumo"), "--save-template", str(out)])
        text = out.read_text()
    return dict(re.findall(r'<([\w.\-]+) value="[^"]*"[^>]*? type="([^"]+)"', text))


def _honoured(name: str, value: str) -> bool:
    if name == "step-length":
        return float(value) == 1.0
    if name == "random":
        return value.lower() not in ("true", "on", "yes", "1", "x")
    if name == "load-state":
        return not value
    if name == "remote-port":
        return int(value) == 0
    return int(value) == 1  # num-clients


def _check_settings(path: Path, options: Mapping[str, tuple[str, str]]) -> None:
    for name, why in _REFUSED_SETTINGS.items():
        if name not in options:
            continue
        value = options[name][1]
        try:
            ok = _honoured(name, value)
        except ValueError:
            ok = False
        if not ok:
            raise ScenarioInvalid(
                f"configuration {path}: <{name} value={value!r}> cannot be honoured: {why}",
                field=name,
            )


#: A configuration that sets one of these makes SUMO save a file and quit instead of running
#: (the reading above overrides it, so it is looked for in the file itself, synonyms too).
_SAVING = ("save-configuration", "save-config", "C", "save-template", "save-schema")


def _check_not_saving(path: Path, root: ET.Element) -> None:
    for elem in root.iter():
        if elem.tag in _SAVING and elem.get("value", "").strip():
            raise ScenarioInvalid(
                f"configuration {path}: <{elem.tag} value={elem.get('value')!r}> cannot be "
                "honoured: SUMO would save a file and quit instead of running the episode",
                field=elem.tag,
            )


def _output_options(options: Mapping[str, tuple[str, str]]) -> set[str]:
    """The configuration's settings that make SUMO write files: its outputs and logs."""
    types = _option_types()
    return {
        name
        for name, (section, value) in options.items()
        if value
        and types.get(name) == "FILE"
        and "input" not in name
        and (section in ("output", "report") or name.endswith(".output"))
    }


def check_episode(begin_s: int, end_s: int, where: str) -> None:
    """Raise ScenarioInvalid unless the episode window starts at or after 0 and lasts."""
    if not end_s > begin_s >= 0:
        raise ScenarioInvalid(
            f"{where}: the episode must start at 0 s or later and end after it starts "
            f"(begin {begin_s} s, end {end_s} s)",
            field="end",
        )


def write_detectors(net: NetFacts, out: Path) -> Path:
    """Lane-area detectors (E2) over every lane and induction loops (E1) at every stop line."""
    lines = ["<additional>"]
    for lane in net.lanes:
        lid = quoteattr(lane.lane_id)
        length = max(lane.length_m - 0.2, 0.5)
        lines.append(
            f'  <laneAreaDetector id={quoteattr("e2_" + lane.lane_id)} lane={lid} pos="0.1" '
            f'length="{length:.2f}" period="3600" file="NUL"/>'
        )
        pos = max(lane.length_m - LOOP_SETBACK_M, 0.1)
        lines.append(
            f'  <inductionLoop id={quoteattr("e1_" + lane.lane_id)} lane={lid} pos="{pos:.2f}" '
            f'period="{LOOP_PERIOD_S}" file="NUL"/>'
        )
        # Gap loop: two seconds of free-flow travel before the stop line (as SUMO places its
        # actuated detectors), so a green can end as the last vehicle of a platoon arrives.
        gap_pos = max(lane.length_m - GAP_LOOP_S * lane.speed_mps, 0.1)
        lines.append(
            f"  <inductionLoop id={quoteattr('e1g_' + lane.lane_id)} lane={lid} "
            f'pos="{gap_pos:.2f}" period="3600" file="NUL"/>'
        )
    lines.append("</additional>")
    out.write_text("\n".join(lines) + "\n")
    return out


def baseline_program_id(program: SignalProgram, running: bool = True) -> str:
    """The program a signal runs under the actuated baseline when the city runs ``program``:
    the city's own when it already responds to traffic or is off (SUMO calls every program of
    type off ``off``), else the adapter's actuated program built on its phases
    (``entrepot_actuated`` for the program the signal starts on, ``entrepot_actuated:ID`` for
    another one a WAUT switches to)."""
    if program.off:
        return "off"
    if program.responsive:
        return program.program_id
    return ACTUATED_PROGRAM if running else f"{ACTUATED_PROGRAM}:{program.program_id}"


def baseline_variants(
    programs: Iterable[SignalProgram], running: Mapping[str, SignalProgram]
) -> dict[str, dict[str, str]]:
    """signal -> {the programID SUMO shows for a city program: its baseline program}."""
    out: dict[str, dict[str, str]] = {}
    for program in programs:
        shown = "off" if program.off else program.program_id
        is_running = running.get(program.tl_id) == program
        out.setdefault(program.tl_id, {})[shown] = baseline_program_id(program, is_running)
    return out


def write_actuated_programs(
    programs: Mapping[str, SignalProgram],
    out: Path,
    only: frozenset[str] | None = None,
    also: Iterable[SignalProgram] = (),
) -> Path:
    """SUMO actuated programs (green 5-50 s) built on the phases of the program each signal
    runs (``running_programs``: the network's, or the additional files' that SUMO loads over
    it), and on each program in ``also`` (the other programs of signals a WAUT switches). A
    signal whose program already responds to traffic keeps it and gets none; so do signals
    that are off (an actuated program on the phases an ``off`` program lists would switch on a
    signal the city has off), and signals not in ``only`` (default: all)."""
    lines = ["<additional>"]
    todo = [(p, True) for p in programs.values()]
    todo += [(p, False) for p in also if programs.get(p.tl_id) != p]
    for program, running in todo:
        tl_id = program.tl_id
        if (only is not None and tl_id not in only) or program.responsive or program.off:
            continue
        pid = baseline_program_id(program, running)
        lines.append(
            f'  <tlLogic id={quoteattr(tl_id)} type="actuated" '
            f'programID={quoteattr(pid)} offset="0">'
        )
        for state, duration in program.phases:
            if is_green_phase(state):
                lines.append(
                    f'    <phase duration="{min(max(duration, ACTUATED_GREEN_S_MIN), 30):g}" '
                    f'minDur="{ACTUATED_GREEN_S_MIN}" maxDur="{ACTUATED_GREEN_S_MAX}" '
                    f'state="{state}"/>'
                )
            else:
                lines.append(f'    <phase duration="{duration:g}" state="{state}"/>')
        lines.append("  </tlLogic>")
    lines.append("</additional>")
    out.write_text("\n".join(lines) + "\n")
    return out


# ---------------------------------------------------------------------------- generated grids


def build_grid(
    workdir: Path,
    *,
    size: int = 4,
    block_m: float = 300.0,
    lanes: int = 2,
    rates_vph: tuple[float, ...] = (12_000.0,),
    end_s: int = 3600,
    seed: int = 42,
    name: str = "grid4x4",
    fringe_factor: str = "max",
    trip_attributes: str = "",
    attach_m: float | None = None,
    turn_lanes: int = 0,
) -> Scenario:
    """A ``size`` x ``size`` signalised grid with random fringe-to-fringe trips.

    ``rates_vph`` is one insertion rate or several, spread evenly over the episode (a demand
    profile). Same arguments, same files: netgenerate and randomTrips run with fixed seeds.
    ``trip_attributes`` go on every trip (randomTrips ``--trip-attributes``), ``attach_m`` is
    the length of the fringe roads (default: one block), ``turn_lanes`` adds that many turn
    lanes before each junction (netgenerate ``--turn-lanes``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    attach = block_m if attach_m is None else attach_m
    net = workdir / (
        f"grid{size}x{size}-{int(block_m)}m-{lanes}l"
        f"{'' if attach == block_m else f'-a{int(attach)}'}"
        f"{f'-t{turn_lanes}' if turn_lanes else ''}.net.xml"
    )
    if not net.exists():
        # A per-process temporary name: two processes building the same grid at once (the
        # bench's workers, two CLI runs) must not rename each other's file away.
        net_part = net.with_suffix(f".{os.getpid()}.part.xml")
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:size]
        tls = ",".join(f"{c}{i}" for c in letters for i in range(size))
        _run_tool(
            [
                sumo_binary("netgenerate"),
                "--grid",
                "--grid.number",
                str(size),
                "--grid.length",
                str(block_m),
                "--grid.attach-length",
                str(attach),
                *(["--turn-lanes", str(turn_lanes)] if turn_lanes else []),
                "-L",
                str(lanes),
                "--tls.set",
                tls,
                "--tls.default-type",
                "static",
                "--no-turnarounds",
                "true",
                "--seed",
                str(seed),
                "-o",
                str(net_part),
            ]
        )
        os.replace(net_part, net)  # atomic: parallel builders never see half a file
    tag = "-".join(f"{r:g}" for r in rates_vph)
    attrs = "".join(c for c in trip_attributes if c.isalnum())
    routes = workdir / (
        f"{net.stem.removesuffix('.net')}-r{tag}-f{fringe_factor}{'-' + attrs if attrs else ''}"
        f"-e{end_s}-s{seed}.rou.xml"
    )
    if not routes.exists():
        trips = routes.with_suffix(f".{os.getpid()}.trips.xml")
        part = routes.with_suffix(f".{os.getpid()}.part.xml")
        _run_tool(
            [
                sys.executable,
                str(sumo_home() / "tools" / "randomTrips.py"),
                "-n",
                str(net),
                "-o",
                str(trips),
                "-r",
                str(part),
                "--seed",
                str(seed),
                "--fringe-factor",
                fringe_factor,
                "--insertion-rate",
                *[f"{r:g}" for r in rates_vph],
                "-b",
                "0",
                "-e",
                str(end_s),
                "--validate",
                "--prefix",
                f"s{seed}_",
                *(["--trip-attributes", trip_attributes] if trip_attributes else []),
            ]
        )
        os.replace(part, routes)
        trips.unlink(missing_ok=True)
    return Scenario(
        name=name,
        net_file=net,
        route_files=(routes,),
        end_s=end_s,
        seed=seed,
        description=f"{size}x{size} grid, {block_m:g} m blocks, {lanes} lanes, "
        f"fringe trips at {tag} veh/h{' (best lane, max speed)' if attrs else ''}, seed {seed}",
    )


def _run_tool(cmd: list[str]) -> None:
    env = dict(os.environ, SUMO_HOME=str(sumo_home()))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise SimulatorError(f"{Path(cmd[0]).name} failed: {' '.join(tail)}")


# ---------------------------------------------------------------------------- the adapter


@dataclass(frozen=True)
class Events:
    departed: tuple[str, ...]
    arrived: tuple[str, ...]
    teleports: int


class SumoSimulator:
    """The Simulator port over SUMO. ``backend``: ``"libsumo"`` (default) or ``"traci"``."""

    def __init__(self, backend: str = "libsumo") -> None:
        if backend not in ("libsumo", "traci"):
            raise ScenarioInvalid(f"unknown SUMO backend {backend!r}; use libsumo or traci")
        self.backend = backend
        self._api: Any = None
        self._label: str | None = None
        self._net: NetFacts | None = None
        self._intersections: dict[str, Intersection] = {}
        self._lane_length: dict[str, float] = {}
        self._lane_speed: dict[str, float] = {}
        self.error_log: Path | None = None

    # -- lifecycle
    def start(self, scenario: Scenario, *, outputs_dir: Path | None = None) -> None:
        if self._api is not None:
            raise SimulatorError("this simulator is already running; close it first")
        net = read_net(scenario.net_file)
        check_routes(scenario.route_files, net)
        running_programs(net, scenario.additional_files)  # what SUMO would refuse, refused here
        cmd = [
            sumo_binary("sumo"),
            "-n",
            str(scenario.net_file),
            "-r",
            ",".join(map(str, scenario.route_files)),
            "--begin",
            str(scenario.begin_s),
            "--end",
            str(scenario.end_s),
            "--seed",
            str(scenario.seed),
            "--time-to-teleport",
            _number(scenario.time_to_teleport_s),
            "--no-step-log",
            "true",
            "--no-warnings",
            "true",
            "--duration-log.disable",
            "true",
        ]
        if scenario.additional_files:
            cmd += ["-a", ",".join(map(str, scenario.additional_files))]
        if scenario.config_file is not None:
            # The city's configuration, every setting of it, under the overrides above; its
            # output files and logs go nowhere, and nothing it says reaches stdout (a --json run
            # prints exactly one document there).
            cmd[1:1] = ["-c", str(scenario.config_file)]
            for name in scenario.silenced_outputs:
                cmd += [f"--{name}", "NUL"]
            cmd += ["--output-prefix", "", "--verbose", "false", "--print-options", "false"]
            cmd += ["--duration-log.statistics", "false"]
            # Files it writes that are not output-section file options: saved states (their
            # prefix defaults to 'state') and the SSM and ToC devices' files (text options).
            cmd += ["--save-state.times", "", "--save-state.period", "-1"]
            cmd += ["--device.ssm.file", "NUL", "--device.toc.file", "NUL"]
        if outputs_dir is not None:
            self.error_log = outputs_dir / "sumo-errors.log"
            cmd += [
                "--tripinfo-output",
                str(outputs_dir / "tripinfo.xml"),
                "--tripinfo-output.write-unfinished",
                "true",
                "--error-log",
                str(self.error_log),
            ]
        self._net = net
        self._lane_length = {lane.lane_id: lane.length_m for lane in net.lanes}
        self._lane_speed = {lane.lane_id: lane.speed_mps for lane in net.lanes}
        self._open(cmd)

    def _open(self, cmd: list[str]) -> None:
        try:
            if self.backend == "libsumo":
                import libsumo

                if libsumo.simulation.isLoaded():
                    raise SimulatorError(
                        "libsumo already runs a simulation in this process; "
                        "use the traci backend or another process"
                    )
                libsumo.start(cmd)
                self._api = libsumo
            else:
                import traci

                self._label = f"entrepot-{os.getpid()}-{next(_labels)}"
                traci.start(cmd, label=self._label)
                self._api = traci.getConnection(self._label)
        except SimulatorError:
            raise
        except Exception as exc:
            detail = self._error_text() or str(exc)
            self._abandon_start()
            raise SimulatorError(f"SUMO refused to start: {detail}") from exc

    def _abandon_start(self) -> None:
        """After a failed start: make sure no half-started simulation or process remains."""
        if self.backend == "libsumo":
            import libsumo

            if libsumo.simulation.isLoaded():
                libsumo.close()
            self._api = None
            return
        self._api = object()  # let close() run its TraCI branch for the label
        self.close()

    def _error_text(self) -> str:
        if self.error_log is not None and self.error_log.exists():
            return " ".join(self.error_log.read_text(errors="replace").split())[:500]
        return ""

    def close(self) -> None:
        api, self._api = self._api, None
        self._intersections = {}
        if api is None:
            return
        if self.backend == "libsumo":
            # Already closed or never fully started: nothing left to stop.
            with contextlib.suppress(Exception):
                api.close()
            return
        if self._label is not None:
            import traci

            try:
                traci.switch(self._label)
                traci.close()
            except Exception:
                pass
            self._label = None

    def is_running(self) -> bool:
        return self._api is not None

    @property
    def api(self) -> Any:
        if self._api is None:
            raise SimulatorNotRunning("the simulation is not running (start it first)")
        return self._api

    def time_s(self) -> float:
        return float(self.api.simulation.getTime())

    def step(self) -> Events:
        api = self.api
        try:
            api.simulationStep()
        except Exception as exc:
            self.close()
            raise SimulatorError(f"SUMO failed while stepping: {exc}") from exc
        sim = api.simulation
        return Events(
            tuple(sim.getDepartedIDList()),
            tuple(sim.getArrivedIDList()),
            int(sim.getStartingTeleportNumber()),
        )

    # -- signals
    def signal_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.api.trafficlight.getIDList()))

    def intersection(self, tl_id: str) -> Intersection:
        cached = self._intersections.get(tl_id)
        if cached is not None:
            return cached
        tl = self.api.trafficlight
        if tl_id not in tl.getIDList():
            raise SignalNotOwned(f"no traffic light {tl_id!r} in this network")
        movements = tuple(
            Movement(i, links[0][0], links[0][1]) if links else None
            for i, links in enumerate(tl.getControlledLinks(tl_id))
        )
        program = tl.getProgram(tl_id)
        logic = next(
            (lg for lg in tl.getAllProgramLogics(tl_id) if lg.programID == program),
            tl.getAllProgramLogics(tl_id)[0],
        )
        greens: list[str] = []
        for phase in logic.phases:
            if is_green_phase(phase.state) and phase.state not in greens:
                greens.append(phase.state)
        all_red = max(
            (float(ph.duration) for ph in logic.phases if is_all_red_phase(ph.state)), default=0.0
        )
        found = Intersection(tl_id, movements, tuple(greens), all_red)
        self._intersections[tl_id] = found
        return found

    def signal_state(self, tl_id: str) -> str:
        return str(self.api.trafficlight.getRedYellowGreenState(tl_id))

    def set_signal_state(self, tl_id: str, state: str) -> None:
        bad = set(state) - SIGNAL_LETTERS
        if bad or len(state) != self.intersection(tl_id).n_links:
            raise SimulatorError(f"signal state {state!r} is not valid for {tl_id!r}")
        self.api.trafficlight.setRedYellowGreenState(tl_id, state)

    def set_signal_program(self, tl_id: str, program_id: str) -> None:
        self.api.trafficlight.setProgram(tl_id, program_id)
        self._intersections.pop(tl_id, None)

    # -- detectors and vehicles
    def lane_readings(self, lanes: tuple[str, ...]) -> dict[str, LaneReading]:
        e2 = self.api.lanearea
        out = {}
        for lane in lanes:
            det = "e2_" + lane
            out[lane] = LaneReading(
                vehicles=int(e2.getLastStepVehicleNumber(det)),
                halting=int(e2.getLastStepHaltingNumber(det)),
                mean_speed_mps=float(e2.getLastStepMeanSpeed(det)),
                length_m=self._lane_length.get(lane, 0.0),
                occupancy_pct=float(e2.getLastStepOccupancy(det)),
            )
        return out

    def lane_counts(self, lanes: tuple[str, ...]) -> dict[str, tuple[int, int]]:
        """(vehicles, halting) on each lane's lane-area detector: the controllers' fast path."""
        e2 = self.api.lanearea
        return {
            lane: (
                int(e2.getLastStepVehicleNumber("e2_" + lane)),
                int(e2.getLastStepHaltingNumber("e2_" + lane)),
            )
            for lane in lanes
        }

    def loop_gaps_s(self, lanes: tuple[str, ...]) -> dict[str, float]:
        """Seconds since the gap loop of each lane (2 s before the stop line) saw a vehicle."""
        e1 = self.api.inductionloop
        return {lane: float(e1.getTimeSinceDetection("e1g_" + lane)) for lane in lanes}

    def signal_program_id(self, tl_id: str) -> str:
        return str(self.api.trafficlight.getProgram(tl_id))

    def loop_counts(self) -> dict[str, int]:
        e1 = self.api.inductionloop
        assert self._net is not None
        return {
            lane.lane_id: int(e1.getLastIntervalVehicleNumber("e1_" + lane.lane_id))
            for lane in self._net.lanes
        }

    def vehicle_ids(self) -> tuple[str, ...]:
        return tuple(self.api.vehicle.getIDList())

    def probes(self, vehicle_ids: tuple[str, ...]) -> list[ProbeRecord]:
        veh = self.api.vehicle
        now = self.time_s()
        out = []
        for vid in vehicle_ids:
            x, y = veh.getPosition(vid)
            out.append(ProbeRecord(vid, now, x, y, float(veh.getSpeed(vid)), veh.getRoadID(vid)))
        return out

    def running_and_halting(self) -> tuple[int, int]:
        api = self.api
        running = int(api.vehicle.getIDCount())
        halting = sum(int(api.edge.getLastStepHaltingNumber(e)) for e in self._edges())
        return running, halting

    def _edges(self) -> frozenset[str]:
        assert self._net is not None
        return self._net.edges

    def pending_vehicles(self) -> int:
        return len(self.api.simulation.getPendingVehicles())

    def bounds(self) -> Bounds:
        assert self._net is not None
        return self._net.bounds

    def link_lanes(self) -> dict[str, tuple[str, ...]]:
        assert self._net is not None
        lanes: dict[str, list[str]] = {}
        for lane in self._net.lanes:
            lanes.setdefault(lane.edge_id, []).append(lane.lane_id)
        return {k: tuple(v) for k, v in lanes.items()}

    def lane_max_speed_mps(self, lane: str) -> float:
        return self._lane_speed.get(lane, math.nan)


def _number(value: float) -> str:
    """A number for SUMO's command line, whole (``300``) or exact (``0.5``): ``:g`` kept six
    significant digits, so 123456.5 s went to SUMO as 123456."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
