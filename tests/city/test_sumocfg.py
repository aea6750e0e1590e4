"""A city's .sumocfg runs with every setting SUMO itself applies, or is refused naming the one
an evaluation cannot honour."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from entrepot.city import Scenario, run_episode
from entrepot.city.errors import ScenarioInvalid
from entrepot.city.services import resolve_scenario
from entrepot.city.sumo import read_sumocfg, sumo_binary


def _cfg(folder: Path, grid: Scenario, *settings: str, end: int = 200) -> Path:
    """A city configuration in its own folder, naming the grid's files relative to it."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "city.sumocfg"
    net = Path("..") / grid.net_file.parent.name / grid.net_file.name
    routes = Path("..") / grid.route_files[0].parent.name / grid.route_files[0].name
    (folder.parent / grid.net_file.parent.name).mkdir(exist_ok=True)
    for made in (grid.net_file, grid.route_files[0]):
        link = folder.parent / grid.net_file.parent.name / made.name
        if not link.exists():
            link.symlink_to(made)
    cfg.write_text(
        "<configuration><input>"
        f'<net-file value="{net}"/><route-files value="{routes}"/></input>'
        f'<time><begin value="0"/><end value="{end}"/></time>'
        f"<processing>{''.join(s for s in settings if 'seed' not in s)}</processing>"
        f"<random_number>{''.join(s for s in settings if 'seed' in s)}</random_number>"
        "</configuration>\n"
    )
    return cfg


#: Settings a city's engineer sets that change what happens: a vehicle stopped 10 s (at a red)
#: is teleported, insertion gives up after 5 s, blockers are ignored after 3 s.
CITY_SETTINGS = (
    '<time-to-teleport value="10"/>',
    '<max-depart-delay value="5"/>',
    '<ignore-junction-blocker value="3"/>',
    '<collision.action value="warn"/>',
    '<seed value="11"/>',
)


def _sumo_own_run(cfg: Path, out: Path) -> tuple[list[float], int]:
    """SUMO run on the configuration itself: each trip's duration (unfinished ones included)
    and its teleports."""
    trips, stats = out / "tripinfo.xml", out / "stats.xml"
    subprocess.run(
        [
            sumo_binary("sumo"),
            "-c",
            str(cfg),
            "--tripinfo-output",
            str(trips),
            "--tripinfo-output.write-unfinished",
            "true",
            "--statistic-output",
            str(stats),
            "--no-step-log",
            "true",
        ],
        check=True,
        capture_output=True,
    )
    durations = [
        float(e.get("duration", 0)) for e in ET.parse(trips).getroot() if e.tag == "tripinfo"
    ]
    teleports = ET.parse(stats).getroot().find("teleports")
    assert teleports is not None
    return durations, int(teleports.get("total", 0))


def test_an_episode_runs_the_configuration_as_sumo_runs_it(
    small_grid: Scenario, tmp_path: Path
) -> None:
    """Only net, routes, additionals and begin/end were read: SUMO ran a 300 s teleport time,
    seed 42 and its default insertion and blocking rules instead of the city's."""
    cfg = _cfg(tmp_path / "city", small_grid, *CITY_SETTINGS)
    durations, teleports = _sumo_own_run(cfg, tmp_path)
    assert teleports > 10  # the city's 10 s teleport time shows

    scenario = resolve_scenario(str(cfg))
    result = run_episode(scenario, "fixed")

    assert scenario.seed == 11 and scenario.time_to_teleport_s == 10
    m = result.metrics
    assert m.teleports == teleports
    assert m.inserted == len(durations)
    assert m.avg_travel_time_s == pytest.approx(sum(durations) / len(durations), abs=1e-9)


def test_a_seed_asked_for_overrides_the_configurations(
    small_grid: Scenario, tmp_path: Path
) -> None:
    from entrepot.city.sumo import SUMO_DEFAULT_SEED

    cfg = _cfg(tmp_path / "city", small_grid, '<seed value="11"/>')
    bare = _cfg(tmp_path / "bare", small_grid)

    assert resolve_scenario(str(cfg), seed=5).seed == 5
    assert resolve_scenario(str(cfg)).seed == 11
    assert resolve_scenario(str(bare)).seed == SUMO_DEFAULT_SEED  # what SUMO runs it with


def test_synonyms_and_relative_paths_are_read_as_sumo_reads_them(
    small_grid: Scenario, tmp_path: Path
) -> None:
    cfg = _cfg(tmp_path / "city", small_grid)
    text = cfg.read_text().replace("<net-file ", "<net ").replace("<route-files ", "<routes ")
    cfg.write_text(text)

    scenario = read_sumocfg(cfg)

    assert scenario.net_file.resolve() == small_grid.net_file.resolve()
    assert scenario.route_files[0].resolve() == small_grid.route_files[0].resolve()


def test_the_configurations_outputs_are_not_written(small_grid: Scenario, tmp_path: Path) -> None:
    """An episode writes no file into the city's folder (four controllers run at once)."""
    cfg = _cfg(tmp_path / "city", small_grid, end=60)
    text = cfg.read_text().replace(
        "</configuration>",
        '<output><summary-output value="summary.xml"/><fcd-output value="fcd.xml"/>'
        '<output-prefix value="run-"/></output><report><verbose value="true"/>'
        '<log value="city.log"/></report></configuration>',
    )
    cfg.write_text(text)
    before = sorted(p.name for p in cfg.parent.iterdir())

    scenario = read_sumocfg(cfg)
    result = run_episode(scenario, "fixed")

    assert set(scenario.silenced_outputs) == {"summary-output", "fcd-output", "log"}
    assert sorted(p.name for p in cfg.parent.iterdir()) == before
    assert result.metrics.inserted > 0  # its own tripinfo was read despite the output prefix


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ('<step-length value="0.5"/>', "step-length"),
        ('<random value="true"/>', "random"),
        ('<load-state value="state.xml"/>', "load-state"),
        ('<remote-port value="8813"/>', "remote-port"),
    ],
)
def test_a_setting_the_evaluation_cannot_honour_is_refused(
    small_grid: Scenario, tmp_path: Path, setting: str, named: str
) -> None:
    cfg = _cfg(tmp_path / "city", small_grid, setting)

    with pytest.raises(ScenarioInvalid, match=rf"city\.sumocfg: <{named} value=.*cannot be"):
        read_sumocfg(cfg)


def test_an_option_sumo_does_not_know_is_refused_as_sumo_refuses_it(
    small_grid: Scenario, tmp_path: Path
) -> None:
    cfg = _cfg(tmp_path / "city", small_grid, '<time-to-teleprot value="10"/>')

    with pytest.raises(ScenarioInvalid, match=r"SUMO refuses it.*time-to-teleprot"):
        read_sumocfg(cfg)


@pytest.mark.parametrize(
    "setting",
    [
        '<output><save-state.times value="30"/></output>',
        '<output><save-state.period value="20"/></output>',
        '<ssm_device><device.ssm.probability value="1"/><device.ssm.file value="ssm.xml"/>'
        "</ssm_device>",
        '<output><output-suffix value=".city"/></output>',
    ],
)
def test_no_setting_of_the_configuration_writes_a_file(
    small_grid: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    """Saved states and the SSM device's output (not output-section FILE options) were written
    into the city's folder or the working folder, by every controller at once; an output
    suffix renamed the episode's own tripinfo, so no trip was measured."""
    cfg = _cfg(tmp_path / "my city (v2) & 'x'", small_grid, end=60)
    cfg.write_text(cfg.read_text().replace("</configuration>", f"{setting}</configuration>"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    result = run_episode(read_sumocfg(cfg), "fixed")

    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert result.metrics.inserted > 0 and result.metrics.avg_travel_time_s > 0


@pytest.mark.parametrize("name", ["save-configuration", "save-config", "save-template"])
def test_a_configuration_that_saves_a_configuration_is_refused(
    small_grid: Scenario, tmp_path: Path, name: str
) -> None:
    """SUMO started on it writes the file and quits: the episode failed with libsumo's
    FatalTraCIError ('A network was not yet constructed')."""
    cfg = _cfg(tmp_path / "city", small_grid, end=60)
    cfg.write_text(
        cfg.read_text().replace(
            "</configuration>",
            f'<configuration><{name} value="saved.cfg"/></configuration></configuration>',
        )
    )

    with pytest.raises(ScenarioInvalid, match=rf"<{name} value='saved.cfg'> cannot be honoured"):
        read_sumocfg(cfg)


def test_a_teleport_time_reaches_sumo_exact() -> None:
    # ":g" kept six significant digits: 123456.5 s went to SUMO as 123456
    from entrepot.city.sumo import _number

    assert [_number(v) for v in (300.0, 123456.5, 0.5, 1e7)] == [
        "300",
        "123456.5",
        "0.5",
        "10000000",
    ]
