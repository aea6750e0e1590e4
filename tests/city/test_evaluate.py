"""The evaluation counts unfinished vehicles to the episode end."""

from __future__ import annotations

import dataclasses

from entrepot.city import Scenario, run_episode
from entrepot.city.model import average_travel_time_s


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
