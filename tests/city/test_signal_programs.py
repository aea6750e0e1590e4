"""The programs a scenario runs: the network's, then its additional files', loaded as SUMO loads
them (the last one loaded for a signal is the one it runs), and the actuated baseline built on
exactly those."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from entrepot.city import Scenario, run_episode
from entrepot.city.errors import ScenarioInvalid, SignalNotOwned
from entrepot.city.ports import Simulator
from entrepot.city.sumo import (
    ACTUATED_PROGRAM,
    SumoSimulator,
    read_net,
    read_sumocfg,
    running_programs,
)

SIGNALS = ("A0", "A1", "B0", "B1")
#: A city's split phasing for the small grid's 16-link signals: each approach alone (4 links
#: each), a 3 s yellow and a 2 s all-red. The network's own plan serves opposite approaches
#: together ("GGGgrrrrGGGgrrrr"), so a shown state tells which program runs.
SPLIT_GREENS = tuple("r" * 4 * k + "GGGG" + "r" * 4 * (3 - k) for k in range(4))


def _split_phases() -> list[tuple[str, float]]:
    phases: list[tuple[str, float]] = []
    for green in SPLIT_GREENS:
        phases += [(green, 15.0), (green.replace("G", "y"), 3.0), ("r" * 16, 2.0)]
    return phases


def _tl_logic(tl: str, program: str, phases: list[tuple[str, float]], kind: str = "static") -> str:
    rows = "".join(
        f'<phase duration="{d:g}" state="{s}"'
        + (' minDur="5" maxDur="40"' if kind == "actuated" and "G" in s else "")
        + "/>"
        for s, d in phases
    )
    return f'<tlLogic id="{tl}" type="{kind}" programID="{program}" offset="0">{rows}</tlLogic>'


def _additional(path: Path, *logics: str) -> Path:
    path.write_text("<additional>" + "".join(logics) + "</additional>\n")
    return path


def _city_cfg(small_grid: Scenario, folder: Path, kind: str = "static") -> Path:
    """A .sumocfg whose additional file holds the city's split program for every signal."""
    base = small_grid.net_file.parent
    add = _additional(
        folder / "city-plans.add.xml",
        *(_tl_logic(tl, "city", _split_phases(), kind) for tl in SIGNALS),
    )
    cfg = folder / "city.sumocfg"
    cfg.write_text(
        "<configuration><input>"
        f'<net-file value="{base / small_grid.net_file.name}"/>'
        f'<route-files value="{base / small_grid.route_files[0].name}"/>'
        f'<additional-files value="{add.name}"/>'
        '</input><time><begin value="0"/><end value="150"/></time></configuration>'
    )
    return cfg


class Recorder:
    """A step hook: every state and program each signal showed."""

    def __init__(self) -> None:
        self.states: dict[str, set[str]] = {tl: set() for tl in SIGNALS}
        self.programs: dict[str, set[str]] = {tl: set() for tl in SIGNALS}

    def __call__(self, t_s: float, sim: Simulator) -> None:
        for tl in SIGNALS:
            self.states[tl].add(sim.signal_state(tl))
            self.programs[tl].add(sim.signal_program_id(tl))


def test_actuated_baseline_runs_the_citys_program_from_its_additional_files(
    small_grid: Scenario, tmp_path: Path
) -> None:
    scenario = read_sumocfg(_city_cfg(small_grid, tmp_path))
    seen = Recorder()

    result = run_episode(scenario, "actuated", hooks=(seen,))

    city_states = {s for s, _ in _split_phases()}
    for tl in SIGNALS:
        # Only the city's phases, never the network file's two-phase plan.
        assert seen.states[tl] <= city_states, (tl, seen.states[tl] - city_states)
        assert len(seen.states[tl] & set(SPLIT_GREENS)) >= 2  # it actuates: greens change
        assert seen.programs[tl] == {ACTUATED_PROGRAM}
    assert result.metrics.safety_violations == 0
    assert all("'city'" in d.reason for d in result.decisions)


def test_actuated_baseline_keeps_a_citys_own_actuated_program(
    small_grid: Scenario, tmp_path: Path
) -> None:
    # The city already runs actuated control: that program, untouched, is its baseline.
    scenario = read_sumocfg(_city_cfg(small_grid, tmp_path, kind="actuated"))
    seen = Recorder()

    result = run_episode(scenario, "actuated", hooks=(seen,))

    for tl in SIGNALS:
        assert seen.programs[tl] == {"city"}
        assert seen.states[tl] <= {s for s, _ in _split_phases()}
    assert all("city's own actuated program 'city'" in d.reason for d in result.decisions)


def test_adaptive_controllers_serve_the_citys_program_phases(
    small_grid: Scenario, tmp_path: Path
) -> None:
    scenario = read_sumocfg(_city_cfg(small_grid, tmp_path))
    seen = Recorder()

    run_episode(scenario, "entrepot", hooks=(seen,))

    for tl in SIGNALS:
        greens = {s for s in seen.states[tl] if "G" in s and "y" not in s}
        assert greens and greens <= set(SPLIT_GREENS), (tl, greens)


def _sumo_runs(scenario: Scenario) -> dict[str, tuple[str, tuple[tuple[str, float], ...]]]:
    """What SUMO itself loaded: each signal's running program and its phases."""
    sim = SumoSimulator()
    sim.start(replace(scenario, end_s=1))
    try:
        tls = sim.api.trafficlight
        out = {}
        for tl in sim.signal_ids():
            pid = tls.getProgram(tl)
            logic = next(lg for lg in tls.getAllProgramLogics(tl) if lg.programID == pid)
            out[tl] = (pid, tuple((p.state, float(p.duration)) for p in logic.phases))
        return out
    finally:
        sim.close()


def _net_with_two_programs(small_grid: Scenario, tmp_path: Path) -> Path:
    """The grid's network with a second program for A0, written after its first."""
    text = small_grid.net_file.read_text()
    at = text.index('    <tlLogic id="A1"')
    extra = _tl_logic(
        "A0",
        "night",
        [
            ("GGGgrrrrGGGgrrrr", 20.0),
            ("yyyyrrrryyyyrrrr", 3.0),
            ("rrrrGGGgrrrrGGGg", 20.0),
            ("rrrryyyyrrrryyyy", 3.0),
        ],
    )
    net = tmp_path / "two-programs.net.xml"
    net.write_text(text[:at] + "    " + extra + "\n" + text[at:])
    return net


@pytest.mark.parametrize(
    "case", ["net only", "net with two programs", "one file", "two files", "two in one file"]
)
def test_running_programs_are_the_ones_sumo_runs(
    small_grid: Scenario, tmp_path: Path, case: str
) -> None:
    split = _split_phases()
    scenario = small_grid
    if case == "net with two programs":
        scenario = replace(small_grid, net_file=_net_with_two_programs(small_grid, tmp_path))
    elif case == "one file":
        add = _additional(tmp_path / "a.add.xml", _tl_logic("A0", "city", split))
        scenario = replace(small_grid, additional_files=(add,))
    elif case == "two files":
        first = _additional(tmp_path / "a.add.xml", _tl_logic("A0", "city", split))
        second = _additional(tmp_path / "b.add.xml", _tl_logic("A0", "evening", split[:6]))
        scenario = replace(small_grid, additional_files=(first, second))
    elif case == "two in one file":
        add = _additional(
            tmp_path / "a.add.xml",
            _tl_logic("B1", "zz", split),
            _tl_logic("B1", "aa", split[:6]),  # loaded last, though it sorts first
        )
        scenario = replace(small_grid, additional_files=(add,))

    ours = running_programs(read_net(scenario.net_file), scenario.additional_files)

    sumo = _sumo_runs(scenario)
    assert {tl: (p.program_id, p.phases) for tl, p in ours.items()} == sumo


def test_a_program_loaded_twice_is_refused_before_sumo_starts(
    small_grid: Scenario, tmp_path: Path
) -> None:
    # SUMO refuses a second program with the same signal and programID ("Another logic with
    # id 'A0' and programID '0' exists"): it does not replace the first.
    add = _additional(tmp_path / "again.add.xml", _tl_logic("A0", "0", _split_phases()))
    scenario = replace(small_grid, additional_files=(add,))

    with pytest.raises(ScenarioInvalid, match=r"again\.add\.xml.*'A0'.*'0'"):
        running_programs(read_net(scenario.net_file), scenario.additional_files)
    with pytest.raises(ScenarioInvalid, match=r"again\.add\.xml"):
        run_episode(scenario, "fixed")


def test_a_program_for_a_signal_the_network_lacks_is_refused(
    small_grid: Scenario, tmp_path: Path
) -> None:
    add = _additional(tmp_path / "ghost.add.xml", _tl_logic("Z9", "city", _split_phases()))

    with pytest.raises(ScenarioInvalid, match=r"ghost\.add\.xml.*'Z9'"):
        running_programs(read_net(small_grid.net_file), (add,))


def _dark_a0(small_grid: Scenario, tmp_path: Path) -> Scenario:
    """The city has signal A0 off: a program of type off (SUMO wants one phase even then)."""
    add = _additional(
        tmp_path / "dark.add.xml", _tl_logic("A0", "dark", [("GGGgrrrrGGGgrrrr", 30.0)], "off")
    )
    return replace(small_grid, additional_files=(add,), end_s=90)


@pytest.mark.parametrize("controller", ["fixed", "actuated", "entrepot", "max_pressure"])
def test_a_signal_the_city_has_off_stays_off(
    small_grid: Scenario, tmp_path: Path, controller: str
) -> None:
    """The actuated baseline built a program on the phases the off program lists and switched
    the signal on; the adaptive controllers took it over and found no green to serve."""
    seen = Recorder()

    result = run_episode(_dark_a0(small_grid, tmp_path), controller, hooks=(seen,))

    # off: every link yields by the right of way (O on the major road, o on the minor one)
    assert len(seen.states["A0"]) == 1 and set(seen.states["A0"].pop()) == {"O", "o"}
    assert seen.programs["A0"] == {"off"}
    assert "A0" not in result.owned and result.owned == frozenset(SIGNALS) - {"A0"}
    assert not [d for d in result.decisions if d.tl_id == "A0"]
    assert result.metrics.safety_violations == 0


def test_owning_a_signal_that_is_off_is_refused(small_grid: Scenario, tmp_path: Path) -> None:
    with pytest.raises(SignalNotOwned, match="A0: the city's program is off there"):
        run_episode(_dark_a0(small_grid, tmp_path), "entrepot", owned=frozenset({"A0", "B1"}))


@pytest.mark.parametrize("kind", ["static", "off"])
def test_a_program_without_phases_is_refused_before_sumo_starts(
    small_grid: Scenario, tmp_path: Path, kind: str
) -> None:
    # SUMO refuses it ("TLS program 'empty' for TLS 'A0' has a duration of 0"), of any type.
    add = _additional(tmp_path / "empty.add.xml", _tl_logic("A0", "empty", [], kind))

    with pytest.raises(ScenarioInvalid, match=r"empty\.add\.xml: program 'empty' of signal 'A0'"):
        run_episode(replace(small_grid, additional_files=(add,)), "actuated")


def _waut_b1(small_grid: Scenario, tmp_path: Path, end_s: int = 120) -> Scenario:
    """The city runs B1 on a WAUT: program 'night' from the start, 'day' at 40 s, 'night'
    again at 80 s (different phasings, so a shown state tells which one runs)."""
    split = _split_phases()
    day = [("GGGgrrrrGGGgrrrr", 20.0), ("yyyyrrrryyyyrrrr", 3.0)]
    day += [("rrrrGGGgrrrrGGGg", 20.0), ("rrrryyyyrrrryyyy", 3.0)]
    add = _additional(
        tmp_path / "waut.add.xml",
        _tl_logic("B1", "night", split),
        _tl_logic("B1", "day", day),
        '<WAUT id="w" refTime="0" startProg="night">'
        '<wautSwitch time="40" to="day"/><wautSwitch time="80" to="night"/></WAUT>'
        '<wautJunction wautID="w" junctionID="B1"/>',
    )
    return replace(small_grid, additional_files=(add,), end_s=end_s)


class ProgramAt:
    """A step hook: the program B1 runs at each second."""

    def __init__(self) -> None:
        self.at: dict[int, str] = {}

    def __call__(self, t_s: float, sim: Simulator) -> None:
        self.at[int(t_s)] = sim.signal_program_id("B1")


def test_fixed_follows_the_citys_waut(small_grid: Scenario, tmp_path: Path) -> None:
    seen = ProgramAt()

    run_episode(_waut_b1(small_grid, tmp_path), "fixed", hooks=(seen,))

    assert (seen.at[30], seen.at[50], seen.at[90]) == ("night", "day", "night")


def test_actuated_baseline_follows_the_citys_waut_on_actuated_programs(
    small_grid: Scenario, tmp_path: Path
) -> None:
    """The WAUT switched the baseline's actuated program away to the city's fixed 'day' plan
    at 40 s: from then on the baseline was not actuated."""
    seen = ProgramAt()

    result = run_episode(_waut_b1(small_grid, tmp_path), "actuated", hooks=(seen,))

    night, day = (seen.at[30], seen.at[50])
    assert night.startswith(ACTUATED_PROGRAM) and day.startswith(ACTUATED_PROGRAM)
    assert night != day and seen.at[90] == night
    assert all(p.startswith(ACTUATED_PROGRAM) for p in seen.at.values())
    switches = [d.reason for d in result.decisions if d.tl_id == "B1"]
    assert any("WAUT switched to program 'day'" in r for r in switches)


def test_a_waut_does_not_override_an_adaptive_controller(
    small_grid: Scenario, tmp_path: Path
) -> None:
    seen = Recorder()

    result = run_episode(_waut_b1(small_grid, tmp_path), "entrepot", hooks=(seen,))

    # SUMO (1.28) switches no program away from a signal TraCI sets ('online'); pinned here.
    assert seen.programs["B1"] == {"online"}
    greens = {s for s in seen.states["B1"] if "G" in s and "y" not in s}
    assert greens <= set(SPLIT_GREENS)  # the program it started on: 'night'
    assert result.metrics.safety_violations == 0


def test_a_waut_switching_a_signal_not_owned_is_not_a_safety_flag(
    small_grid: Scenario, tmp_path: Path
) -> None:
    """A signal not owned whose program changed counted as a safety flag, though the city's
    own WAUT changed it."""
    scenario = _waut_b1(small_grid, tmp_path, end_s=60)  # B1 runs 'day' at the end

    result = run_episode(scenario, "entrepot", owned=frozenset({"A0"}))

    assert result.untouched_programs["B1"] == "day"
    # What remains are the shown states' flags of SUMO's own abrupt switch (the city's).
    assert result.metrics.safety_violations == sum(result.violations.values())


def _waut_dark_b1(small_grid: Scenario, tmp_path: Path, start: str, running: str) -> Scenario:
    """The city has B1 off at times: its WAUT runs the off program 'dark' and the static
    'day' (from ``start``, the other at 40 s); ``running`` is the program loaded last."""
    day = [("GGGgrrrrGGGgrrrr", 20.0), ("yyyyrrrryyyyrrrr", 3.0)]
    day += [("rrrrGGGgrrrrGGGg", 20.0), ("rrrryyyyrrrryyyy", 3.0)]
    logics = {
        "day": _tl_logic("B1", "day", day),
        "dark": _tl_logic("B1", "dark", [("GGGgrrrrGGGgrrrr", 30.0)], "off"),
    }
    other = "day" if start == "dark" else "dark"
    add = _additional(
        tmp_path / "waut-dark.add.xml",
        *(logic for pid, logic in logics.items() if pid != running),
        logics[running],
        f'<WAUT id="w" refTime="0" startProg="{start}"><wautSwitch time="40" to="{other}"/>'
        '</WAUT><wautJunction wautID="w" junctionID="B1"/>',
    )
    return replace(small_grid, additional_files=(add,), end_s=90)


@pytest.mark.parametrize("controller", ["fixed", "actuated", "entrepot", "max_pressure"])
@pytest.mark.parametrize(("start", "running"), [("dark", "day"), ("day", "dark")])
def test_a_signal_its_waut_switches_off_is_not_controlled(
    small_grid: Scenario, tmp_path: Path, controller: str, start: str, running: str
) -> None:
    """A WAUT starting B1 on an off program while the program loaded last is static made the
    adaptive controllers take it over and fail ('no green phase to serve'); a WAUT switching
    a signal not owned to its off program (shown as 'off', not by its id) was a safety flag."""
    seen = Recorder()

    result = run_episode(
        _waut_dark_b1(small_grid, tmp_path, start, running), controller, hooks=(seen,)
    )

    assert result.owned == frozenset(SIGNALS) - {"B1"}
    assert seen.programs["B1"] == {"day", "off"}  # the city's WAUT runs it, untouched
    assert not [d for d in result.decisions if d.tl_id == "B1"]
    # what remains are the shown states' flags of SUMO's own abrupt switch (the city's)
    assert result.metrics.safety_violations == sum(result.violations.values())
