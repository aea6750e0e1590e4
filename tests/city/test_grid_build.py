"""Generated grids are cached in a shared folder: concurrent builders must not collide."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from entrepot.city.sumo import build_grid


def _build(workdir: str) -> str:
    scenario = build_grid(
        Path(workdir), size=2, block_m=200.0, rates_vph=(600.0,), end_s=60, seed=3, name="race"
    )
    return scenario.net_file.read_text()


def test_processes_building_the_same_grid_at_once_all_succeed(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=3, mp_context=ctx) as pool:
        nets = list(pool.map(_build, [str(tmp_path)] * 3))
    assert len(set(nets)) == 1 and "<net" in nets[0]
    assert not list(tmp_path.glob("*.part*")), "no temporary file is left behind"
