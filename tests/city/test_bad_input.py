"""Bad input: a clear DomainError naming the problem, and nothing left running."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import pytest

from entrepot.city import (
    InvalidProbe,
    NetworkInvalid,
    ProbeAggregator,
    ProbeRecord,
    RoutesInvalid,
    Scenario,
    ScenarioInvalid,
    SimulatorError,
    UnknownController,
    UnknownScenario,
    run_episode,
)
from entrepot.city.model import Bounds
from entrepot.city.services import resolve_scenario
from entrepot.city.sumo import SumoSimulator
from tests.city.conftest import libsumo_loaded, sumo_children


def test_missing_network_file(small_grid: Scenario, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.net.xml"

    with pytest.raises(NetworkInvalid, match=r"nowhere\.net\.xml does not exist"):
        run_episode(replace(small_grid, net_file=missing), "entrepot")

    assert not libsumo_loaded()


def test_malformed_network_file(small_grid: Scenario, tmp_path: Path) -> None:
    broken = tmp_path / "broken.net.xml"
    broken.write_text("<net><edge id='a'>")

    with pytest.raises(NetworkInvalid, match="not well-formed XML"):
        run_episode(replace(small_grid, net_file=broken), "fixed")

    assert not libsumo_loaded()


def test_file_that_is_not_a_network(small_grid: Scenario) -> None:
    with pytest.raises(NetworkInvalid, match="root element is <routes>"):
        run_episode(replace(small_grid, net_file=small_grid.route_files[0]), "fixed")


def test_routes_that_do_not_match_the_network(small_grid: Scenario, tmp_path: Path) -> None:
    routes = tmp_path / "other.rou.xml"
    routes.write_text(
        '<routes><vehicle id="v0" depart="0"><route edges="A0A1 nowhere_road"/></vehicle></routes>'
    )

    with pytest.raises(RoutesInvalid, match="'nowhere_road'"):
        run_episode(replace(small_grid, route_files=(routes,)), "entrepot")

    assert not libsumo_loaded()


def test_unknown_controller_is_refused_before_the_simulator_starts(small_grid: Scenario) -> None:
    with pytest.raises(UnknownController, match="'greedy'"):
        run_episode(small_grid, "greedy")

    assert not libsumo_loaded()


def test_unknown_scenario() -> None:
    with pytest.raises(UnknownScenario, match="'paris'"):
        resolve_scenario("paris")


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_network_sumo_rejects_leaves_nothing_running(
    small_grid: Scenario, tmp_path: Path, backend: str
) -> None:
    # Well-formed and shaped like a network, but SUMO refuses it (a lane without a shape).
    odd = tmp_path / "odd.net.xml"
    odd.write_text(
        '<net version="1.20"><location netOffset="0,0" convBoundary="0,0,100,0"/>'
        '<edge id="A0A1" from="a" to="b"><lane id="A0A1_0" index="0" speed="10" length="100"/>'
        "</edge></net>"
    )
    routes = tmp_path / "one.rou.xml"
    routes.write_text('<routes><trip id="t" depart="0" from="A0A1" to="A0A1"/></routes>')
    sim = SumoSimulator(backend)

    with pytest.raises(SimulatorError, match="SUMO refused to start"):
        run_episode(
            replace(small_grid, net_file=odd, route_files=(routes,)), "fixed", simulator=sim
        )

    assert not sim.is_running()
    assert not libsumo_loaded()
    assert sumo_children() == []


def test_probe_with_impossible_coordinates_is_refused_whole() -> None:
    aggregator = ProbeAggregator(Bounds(0, 0, 1000, 1000), ["L1"])
    good = ProbeRecord("veh-1", 10.0, 100.0, 100.0, 8.0, "L1")
    bad = ProbeRecord("veh-2", 10.0, 5e6, -3e6, 8.0, "L1")

    with pytest.raises(InvalidProbe, match="outside the network"):
        aggregator.add([good, bad])
    with pytest.raises(InvalidProbe, match="not finite"):
        aggregator.add([replace(good, x_m=float("nan"))])
    with pytest.raises(InvalidProbe, match="impossible"):
        aggregator.add([replace(good, speed_mps=300.0)])

    assert aggregator.drain() == {}


def _cfg(path: Path, grid: Scenario, begin: str, end: str) -> Path:
    path.write_text(
        "<configuration><input>"
        f'<net-file value="{grid.net_file}"/><route-files value="{grid.route_files[0]}"/>'
        f'</input><time><begin value="{begin}"/><end value="{end}"/></time></configuration>'
    )
    return path


def test_configuration_ending_before_it_begins(small_grid: Scenario, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "late.sumocfg", small_grid, "300", "200")

    with pytest.raises(ScenarioInvalid, match=r"late\.sumocfg.*begin 300 s, end 200 s"):
        resolve_scenario(str(cfg))


def test_end_option_before_the_configurations_begin(small_grid: Scenario, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "begins.sumocfg", small_grid, "100", "240")

    with pytest.raises(ScenarioInvalid, match="begin 100 s, end 60 s"):
        resolve_scenario(str(cfg), end_s=60)


def test_configuration_times_that_are_not_numbers(small_grid: Scenario, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "words.sumocfg", small_grid, "dawn", "240")

    with pytest.raises(ScenarioInvalid, match=r"words\.sumocfg: <begin>/<end> must be seconds"):
        resolve_scenario(str(cfg))


def test_network_with_a_length_that_is_not_a_number(small_grid: Scenario, tmp_path: Path) -> None:
    odd = tmp_path / "odd.net.xml"
    text = small_grid.net_file.read_text(encoding="utf-8")
    # the first lane of a road (internal lanes, ids starting ':', are not read)
    odd.write_text(re.sub(r'(<lane id="[^:][^>]*length=")', r"\1x", text, count=1))

    with pytest.raises(NetworkInvalid, match=r"odd\.net\.xml has a value that is not a number"):
        run_episode(replace(small_grid, net_file=odd), "fixed")

    assert not libsumo_loaded()


@pytest.mark.parametrize("spec", ["hangzhou", "grid4x4"])
def test_an_episode_that_ends_at_0_is_refused_not_an_hour(spec: str) -> None:
    """``end_s=0`` (bench/city.py --end 0) read as "not given" and ran an hour."""
    with pytest.raises(ScenarioInvalid, match="begin 0 s, end 0 s"):
        resolve_scenario(spec, end_s=0)


def test_a_demand_rate_for_a_scenario_with_its_own_routes_is_refused(
    small_grid: Scenario, tmp_path: Path
) -> None:
    """--rate was ignored for hangzhou and a .sumocfg: a run at the demand asked for was not."""
    cfg = _cfg(tmp_path / "own.sumocfg", small_grid, "0", "240")
    for spec in ("hangzhou", str(cfg)):
        with pytest.raises(ScenarioInvalid, match="brings its own routes"):
            resolve_scenario(spec, rate_vph=900)
    assert resolve_scenario(str(cfg)).end_s == 240


@pytest.mark.parametrize("rate", [math.inf, math.nan, 0.0, -500.0])
def test_a_grid_demand_rate_that_is_not_a_positive_number_is_refused_before_generating(
    rate: float, tmp_path: Path
) -> None:
    """--rate inf reached randomTrips and failed as a simulator error (exit 1)."""
    with pytest.raises(ScenarioInvalid, match="demand rate") as caught:
        resolve_scenario("grid4x4", rate_vph=rate, workdir=tmp_path)
    assert caught.value.field == "rate"
    assert not list(tmp_path.iterdir())  # nothing was generated
