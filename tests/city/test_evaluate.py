"""The evaluation counts unfinished vehicles to the episode end."""

from __future__ import annotations

import dataclasses
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from entrepot.city import Scenario, run_episode
from entrepot.city.model import average_travel_time_s
from entrepot.city.sumo import SumoSimulator, build_grid


def test_unfinished_vehicles_count_until_the_episode_end() -> None:
    departs = {"a": 0.0, "b": 100.0, "c": 250.0}
    arrivals = {"a": 90.0}

    # a: 90 s; b and c still driving at 300 s: 200 s and 50 s.
    assert average_travel_time_s(departs, arrivals, 300.0) == (90 + 200 + 50) / 3
    assert average_travel_time_s({}, {}, 300.0) == 0.0


def test_episode_reports_unfinished_and_every_inserted_vehicle(small_grid: Scenario) -> None:
    short = dataclasses.replace(small_grid, end_s=90)

    m = run_episode(short, "fixed").metrics

    assert m.unfinished == m.inserted - m.arrived
    assert m.unfinished > 0
    assert 0 < m.avg_travel_time_s <= 90
    assert m.teleports == 0
    assert m.avg_time_loss_s >= m.avg_waiting_time_s >= 0
    assert m.timeline and m.timeline[-1][0] == 60.0


def test_same_seed_same_result(small_grid: Scenario) -> None:
    first = run_episode(small_grid, "entrepot").metrics
    second = run_episode(small_grid, "entrepot").metrics

    assert first.summary() | {"wall_s": 0} == second.summary() | {"wall_s": 0}


class TripinfoKeepingSumo(SumoSimulator):
    """The SUMO adapter, keeping SUMO's own tripinfo output after the episode's folder goes."""

    def __init__(self, keep: Path) -> None:
        super().__init__()
        self.keep = keep
        self._outputs: Path | None = None

    def start(self, scenario: Scenario, *, outputs_dir: Path | None = None) -> None:
        self._outputs = outputs_dir
        super().start(scenario, outputs_dir=outputs_dir)

    def close(self) -> None:
        super().close()
        made = None if self._outputs is None else self._outputs / "tripinfo.xml"
        if made is not None and made.exists():
            shutil.copy(made, self.keep)


@pytest.fixture(scope="module")
def saturated_grid(small_grid: Scenario) -> Scenario:
    """The small grid's network under 9,000 veh/h: queues back up to the fringe, so vehicles
    are still waiting to enter at the end (never inserted)."""
    return build_grid(
        small_grid.net_file.parent,
        size=2,
        block_m=200.0,
        rates_vph=(9000.0,),
        end_s=300,
        seed=7,
        name="saturated-grid",
    )


@pytest.mark.parametrize(
    ("load", "controller"),
    [("light", "fixed"), ("light", "actuated"), ("light", "entrepot"), ("saturated", "actuated")],
)
def test_travel_time_is_sumos_trip_duration(
    small_grid: Scenario,
    saturated_grid: Scenario,
    tmp_path: Path,
    load: str,
    controller: str,
) -> None:
    kept = tmp_path / "tripinfo.xml"
    scenario = small_grid if load == "light" else saturated_grid
    short = dataclasses.replace(scenario, end_s=150 if load == "light" else 300)

    m = run_episode(short, controller, simulator=TripinfoKeepingSumo(kept)).metrics

    trips = [e for e in ET.parse(kept).getroot() if e.tag == "tripinfo"]
    finished = [e for e in trips if float(e.get("arrival", -1)) >= 0]
    assert len(trips) == m.inserted and len(finished) == m.arrived > 0
    if load == "saturated":  # tripinfo has no record of a vehicle never inserted; nor do we
        assert m.never_inserted > 0
    # SUMO's duration: arrival - depart, both the time of the step in which they happened; an
    # unfinished vehicle's runs to the episode end.
    durations = [float(e.get("duration", 0)) for e in trips]
    assert m.avg_travel_time_s == pytest.approx(sum(durations) / len(durations), abs=1e-9)
