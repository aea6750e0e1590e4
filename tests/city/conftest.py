"""A small generated grid and short episodes keep the city tests to seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from entrepot.city.model import Scenario
from entrepot.city.sumo import build_grid

SMALL_END_S = 240


@pytest.fixture(scope="session")
def small_grid(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """A 2x2 signalised grid, 200 m blocks, 1,800 veh/h of fringe trips, 4 minutes."""
    workdir = tmp_path_factory.mktemp("grid")
    return build_grid(
        workdir,
        size=2,
        block_m=200.0,
        rates_vph=(1800.0,),
        end_s=SMALL_END_S,
        seed=7,
        name="small-grid",
    )


@pytest.fixture(scope="session")
def small_cfg(small_grid: Scenario) -> Path:
    cfg = small_grid.net_file.parent / "small.sumocfg"
    cfg.write_text(
        "<configuration><input>"
        f'<net-file value="{small_grid.net_file.name}"/>'
        f'<route-files value="{small_grid.route_files[0].name}"/>'
        f'</input><time><begin value="0"/><end value="{SMALL_END_S}"/></time></configuration>'
    )
    return cfg


def sumo_children() -> list[str]:
    """Live SUMO processes started by this test process."""
    me = str(os.getpid())
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split()
        except OSError:
            continue
        if fields[3] == me and "sumo" in fields[1] and fields[2] != "Z":
            found.append(fields[1])
    return found


def libsumo_loaded() -> bool:
    import libsumo

    return bool(libsumo.simulation.isLoaded())
