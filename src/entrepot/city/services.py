"""Use cases of the city brain: resolve a scenario, run one controller, bench every controller on
the same demand, build forecasting days and score the forecasts."""

from __future__ import annotations

import json
import math
import multiprocessing
import re
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from entrepot.city.controllers import CONTROLLERS, make_controller
from entrepot.city.errors import InvalidSeries, ScenarioInvalid, UnknownController, UnknownScenario
from entrepot.city.evaluate import EpisodeResult, run_episode
from entrepot.city.forecast import (
    HORIZONS_MIN,
    TARGET_WINDOW_MIN,
    MinuteBinner,
    SpeedDays,
    collect_days,
)
from entrepot.city.forecast_eval import (
    HorizonScore,
    HorizonSummary,
    SplitResult,
    evaluate_forecast,
    evaluate_split,
    split_days,
    summarise,
)
from entrepot.city.model import Scenario
from entrepot.city.sensing import SensingPipeline
from entrepot.city.sumo import build_grid, check_episode, read_net, read_sumocfg

HANGZHOU_NET = "hangzhou_4x4_gudang_18041610_1h.net.xml"
HANGZHOU_ROUTES = "hangzhou_4x4_gudang_18041610_1h.rou.xml"
SCENARIOS = ("hangzhou", "grid4x4")
#: The bench grid's demand. Calibrated once against the domain brief's 12,000 veh/h figures
#: (fixed 310 s, actuated 232 s): this generator's grid reaches them at 11,000 veh/h; at
#: 12,000 it is oversaturated (fixed 366 s, actuated 290 s, 700+ vehicles never inserted).
GRID_RATE_VPH = 11_000.0
#: Every trip enters on its best lane at the road's speed, as traffic engineers set demand.
GRID_TRIP_ATTRIBUTES = 'departLane="best" departSpeed="max"'

#: Forecast days: a two-hour demand profile (veh/h per 15 minutes) scaled per day, its peak
#: shifted per day, and on some days an incident (speed cut on one or two inner links).
FORECAST_PROFILE_VPH = (3000.0, 5000.0, 7000.0, 9000.0, 9000.0, 7000.0, 5000.0, 3000.0)
FORECAST_DAY_SCALE = (0.6, 1.3)
FORECAST_DAY_S = 7200
#: The profile is resampled to 5-minute rates after shifting it by up to this many minutes.
FORECAST_SHIFT_MIN = 30.0
FORECAST_INCIDENT_P = 0.6
FORECAST_INCIDENT_MIN = (20.0, 40.0)
FORECAST_INCIDENT_SPEED_MPS = 1.5
ProgressFn = Callable[[float, float], None]


def default_workdir() -> Path:
    return Path(tempfile.gettempdir()) / "entrepot-city"


def hangzhou_scenario(end_s: int = 3600, seed: int = 42) -> Scenario:
    data = resources.files("entrepot.city") / "data"
    return Scenario(
        name="hangzhou",
        net_file=Path(str(data / HANGZHOU_NET)),
        route_files=(Path(str(data / HANGZHOU_ROUTES)),),
        end_s=end_s,
        seed=seed,
        description="Hangzhou Gudang 4x4, one hour of camera-derived demand (2,983 vehicles)",
    )


def resolve_scenario(
    spec: str,
    *,
    end_s: int | None = None,
    seed: int | None = None,
    rate_vph: float | None = None,
    workdir: Path | None = None,
) -> Scenario:
    """``hangzhou``, ``grid4x4`` (generated) or a path to a ``.sumocfg``. ``end_s`` None: an
    hour (a ``.sumocfg``: its own end); 0 is an episode that ends before it starts, refused,
    not an hour. ``rate_vph`` is grid4x4's generated demand (None: ``GRID_RATE_VPH``); the
    other scenarios bring their own demand, and a rate given for them is refused, not
    ignored. ``seed`` None: 42, and for a ``.sumocfg`` the seed SUMO would use for it (its
    ``<seed>``, else SUMO's default)."""
    if (spec == "hangzhou" or spec.endswith(".sumocfg")) and rate_vph is not None:
        raise ScenarioInvalid(
            f"scenario {spec}: a demand rate ({rate_vph:g} vehicles/h) sets grid4x4's "
            "generated demand; this scenario brings its own routes",
            field="rate",
        )
    if rate_vph is not None and not (math.isfinite(rate_vph) and rate_vph > 0):
        raise ScenarioInvalid(
            f"scenario {spec}: a demand rate must be a positive number of vehicles per hour, "
            f"got {rate_vph:g}",
            field="rate",
        )
    hour = 3600 if end_s is None else end_s
    if spec.endswith(".sumocfg"):
        scenario = read_sumocfg(Path(spec))
        end = scenario.end_s if end_s is None else end_s
        check_episode(scenario.begin_s, end, f"scenario {spec}")
        return replace(scenario, seed=scenario.seed if seed is None else seed, end_s=end)
    seed = 42 if seed is None else seed
    if spec == "hangzhou":
        check_episode(0, hour, "scenario hangzhou")
        return hangzhou_scenario(hour, seed)
    if spec == "grid4x4":
        check_episode(0, hour, "scenario grid4x4")
        return build_grid(
            workdir or default_workdir(),
            rates_vph=(GRID_RATE_VPH if rate_vph is None else rate_vph,),
            end_s=hour,
            seed=seed,
            trip_attributes=GRID_TRIP_ATTRIBUTES,
        )
    raise UnknownScenario(
        f"unknown scenario {spec!r}; use {', '.join(SCENARIOS)} or a path to a .sumocfg",
        field="scenario",
    )


def run_controller(
    scenario: Scenario,
    controller: str,
    *,
    progress: ProgressFn | None = None,
    sensing: SensingPipeline | None = None,
) -> EpisodeResult:
    hooks = (sensing,) if sensing is not None else ()
    return run_episode(scenario, controller, hooks=hooks, progress=progress)


def _episode_in_subprocess(scenario: Scenario, controller: str) -> EpisodeResult:
    return run_episode(scenario, controller)


@dataclass
class BenchResult:
    scenario: Scenario
    episodes: dict[str, EpisodeResult] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "episode_s": [self.scenario.begin_s, self.scenario.end_s],
            "seed": self.scenario.seed,
            "controllers": {
                name: self.episodes[name].metrics.summary()
                for name in CONTROLLERS
                if name in self.episodes
            },
        }


def bench(
    scenario: Scenario,
    controllers: tuple[str, ...] = tuple(CONTROLLERS),
    *,
    workers: int = 2,
    on_done: Callable[[str, EpisodeResult], None] | None = None,
) -> BenchResult:
    """Every controller on the same demand and seed, each in its own process (libsumo runs
    one simulation per process)."""
    if not controllers:
        raise UnknownController(
            f"name at least one controller to bench: {', '.join(CONTROLLERS)}",
            field="controllers",
        )
    for name in controllers:
        make_controller(name)  # refuse unknown names before any simulation starts
    controllers = tuple(dict.fromkeys(controllers))  # each once: a repeat would only run twice
    result = BenchResult(scenario)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=max(1, workers), mp_context=context, max_tasks_per_child=1
    ) as pool:
        futures = {pool.submit(_episode_in_subprocess, scenario, c): c for c in controllers}
        for future in as_completed(futures):
            name = futures[future]
            result.episodes[name] = future.result()
            if on_done is not None:
                on_done(name, result.episodes[name])
    return result


@dataclass(frozen=True)
class ForecastReport:
    days: int
    train_days: int
    links: int
    minutes_per_day: int
    scores: tuple[HorizonScore, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "train_days": self.train_days,
            "links": self.links,
            "minutes_per_day": self.minutes_per_day,
            "horizons": [s.as_dict() for s in self.scores],
        }


@dataclass(frozen=True)
class ForecastDayPlan:
    """What makes one simulated day different: demand level, peak shift, incident."""

    day: int
    scale: float
    shift_min: float
    rates_vph: tuple[float, ...]
    incident_links: tuple[str, ...]
    incident_start_s: float
    incident_end_s: float

    def as_json(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "scale": round(self.scale, 3),
            "peak_shift_min": round(self.shift_min, 1),
            "incident_links": list(self.incident_links),
            "incident_s": [round(self.incident_start_s), round(self.incident_end_s)],
        }


def _inner_links(net_file: Path) -> tuple[str, ...]:
    """Links between two signalised grid nodes (``A0B0``), not the fringe roads."""
    return tuple(sorted(e for e in read_net(net_file).edges if re.fullmatch(r"[A-Z]\d[A-Z]\d", e)))


def forecast_day_plan(day: int, seed: int, inner_links: tuple[str, ...]) -> ForecastDayPlan:
    """Seeded per-day variation: level in FORECAST_DAY_SCALE, peak shifted by up to
    +-FORECAST_SHIFT_MIN minutes, +-10 % per 5 minutes, and with probability
    FORECAST_INCIDENT_P a 20-40 minute speed cut on one or two inner links."""
    rng = np.random.default_rng([seed, day])
    scale = float(rng.uniform(*FORECAST_DAY_SCALE))
    shift = float(rng.uniform(-FORECAST_SHIFT_MIN, FORECAST_SHIFT_MIN))
    quarter = 15.0
    centres = quarter * (np.arange(len(FORECAST_PROFILE_VPH)) + 0.5)
    fine = np.arange(2.5, FORECAST_DAY_S / 60.0, 5.0)
    base = np.interp(fine - shift, centres, FORECAST_PROFILE_VPH)
    noise = rng.uniform(0.9, 1.1, size=fine.size)
    rates = tuple(float(round(r)) for r in base * scale * noise)
    links: tuple[str, ...] = ()
    start_s = end_s = 0.0
    if inner_links and rng.uniform() < FORECAST_INCIDENT_P:
        n = int(rng.integers(1, 3))
        links = tuple(sorted(rng.choice(inner_links, size=n, replace=False).tolist()))
        start_s = float(rng.uniform(15.0, FORECAST_DAY_S / 60.0 - 45.0)) * 60.0
        end_s = start_s + float(rng.uniform(*FORECAST_INCIDENT_MIN)) * 60.0
    return ForecastDayPlan(day, scale, shift, rates, links, start_s, end_s)


class Incident:
    """A step hook that cuts the speed limit of some links between two times (then restores it).
    Needs the SUMO adapter's live API; on other simulators it does nothing."""

    def __init__(
        self, links: tuple[str, ...], start_s: float, end_s: float, speed_mps: float
    ) -> None:
        self.links = links
        self.start_s = start_s
        self.end_s = end_s
        self.speed_mps = speed_mps
        self._saved: dict[str, float] = {}
        self._done = False

    def __call__(self, t_s: float, sim: Any) -> None:
        if self._done or not self.links or t_s < self.start_s:
            return
        api = getattr(sim, "_api", None)
        if api is None:
            self._done = True
            return
        if not self._saved and t_s < self.end_s:
            lanes = sim.link_lanes()
            for link in self.links:
                for lane in lanes.get(link, ()):
                    self._saved[lane] = sim.lane_max_speed_mps(lane)
                    api.lane.setMaxSpeed(lane, self.speed_mps)
        elif t_s >= self.end_s:
            for lane, speed in self._saved.items():
                api.lane.setMaxSpeed(lane, speed)
            self._done = True


def link_neighbours(net_file: Path, link_ids: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Row-normalised upstream and downstream adjacency between links (no U-turns)."""
    ends: dict[str, tuple[str, str]] = {}
    for edge in ET.parse(net_file).getroot().iter("edge"):
        if edge.get("function") != "internal" and edge.get("from") and edge.get("to"):
            ends[edge.get("id", "")] = (edge.get("from", ""), edge.get("to", ""))
    n = len(link_ids)
    down = np.zeros((n, n))
    for i, a in enumerate(link_ids):
        for j, b in enumerate(link_ids):
            if a in ends and b in ends and ends[a][1] == ends[b][0] and ends[b][1] != ends[a][0]:
                down[i, j] = 1.0
    up = down.T.copy()
    for m in (down, up):
        rows = m.sum(axis=1, keepdims=True)
        np.divide(m, rows, out=m, where=rows > 0)
    return up, down


def forecast_day(
    day: int, *, seed: int, workdir: Path, controller: str = "fixed"
) -> tuple[SpeedDays, ForecastDayPlan]:
    """Simulate one day on the 4x4 grid with its seeded plan (demand level and shape, incident);
    per-minute link speed, flow and queue from the sensing pipeline."""
    rates = forecast_day_plan(day, seed, ()).rates_vph  # the same draws come first
    scenario = build_grid(
        workdir,
        rates_vph=rates,
        end_s=FORECAST_DAY_S,
        seed=seed + day,
        name=f"forecast-day-{day}",
    )
    plan = forecast_day_plan(day, seed, _inner_links(scenario.net_file))
    binner = MinuteBinner()
    sensing = SensingPipeline(seed=seed, listeners=(binner,))
    incident = Incident(
        plan.incident_links,
        plan.incident_start_s,
        plan.incident_end_s,
        FORECAST_INCIDENT_SPEED_MPS,
    )
    run_episode(scenario, controller, hooks=(incident, sensing))
    assert binner.link_ids is not None
    up, down = link_neighbours(scenario.net_file, binner.link_ids)
    data = SpeedDays(
        binner.series()[None],
        binner.link_ids,
        flows=binner.series("flow")[None],
        queues=binner.series("queue")[None],
        upstream=up,
        downstream=down,
    )
    return data, plan


def _forecast_day_in_subprocess(
    day: int, seed: int, workdir: Path
) -> tuple[SpeedDays, ForecastDayPlan]:
    return forecast_day(day, seed=seed, workdir=workdir)


def build_forecast_days(
    n_days: int,
    *,
    seed: int = 42,
    workdir: Path | None = None,
    workers: int = 2,
    on_day: Callable[[int], None] | None = None,
) -> tuple[SpeedDays, tuple[ForecastDayPlan, ...]]:
    if n_days < 2:
        raise InvalidSeries(f"need at least 2 days (one to train, one to test), got {n_days}")
    wd = workdir or default_workdir()
    context = multiprocessing.get_context("spawn")
    days: dict[int, tuple[SpeedDays, ForecastDayPlan]] = {}
    with ProcessPoolExecutor(
        max_workers=max(1, workers), mp_context=context, max_tasks_per_child=1
    ) as pool:
        futures = {pool.submit(_forecast_day_in_subprocess, d, seed, wd): d for d in range(n_days)}
        for future in as_completed(futures):
            days[futures[future]] = future.result()
            if on_day is not None:
                on_day(futures[future])
    data = collect_days([days[d][0] for d in range(n_days)])
    return data, tuple(days[d][1] for d in range(n_days))


def score_forecast(
    days: SpeedDays,
    train_days: int,
    horizons_min: tuple[int, ...] = HORIZONS_MIN,
    *,
    target_window_min: int = TARGET_WINDOW_MIN,
    model: str = "ridge",
    seed: int = 0,
) -> ForecastReport:
    """MAE per horizon of the mean speed over ``target_window_min`` minutes from the horizon."""
    scores = evaluate_forecast(
        days, train_days, horizons_min, target_window_min=target_window_min, model=model, seed=seed
    )
    n_days, minutes, links = days.speeds.shape
    return ForecastReport(n_days, train_days, links, minutes, tuple(scores))


@dataclass(frozen=True)
class ForecastSplitsReport:
    """Several train/test splits of the same days: per split and summarised per horizon."""

    days: int
    links: int
    minutes_per_day: int
    model: str
    rolling: bool
    splits: tuple[SplitResult, ...]
    summary: tuple[HorizonSummary, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "links": self.links,
            "minutes_per_day": self.minutes_per_day,
            "model": self.model,
            "scheme": "rolling origin" if self.rolling else "blocked folds",
            "summary": [s.as_dict() for s in self.summary],
            "splits": [r.as_json() for r in self.splits],
        }


def score_forecast_splits(
    days: SpeedDays,
    n_splits: int,
    *,
    rolling: bool = False,
    target_window_min: int = TARGET_WINDOW_MIN,
    model: str = "ridge",
    seed: int = 0,
    on_step: Callable[[], None] | None = None,
) -> ForecastSplitsReport:
    """Every split: choose on validation days cut from its training days, test once.
    ``on_step`` is called after each (split, horizon)."""
    n_days, minutes, links = days.speeds.shape
    results = tuple(
        evaluate_split(
            days,
            split,
            HORIZONS_MIN,
            target_window_min=target_window_min,
            model=model,
            seed=seed,
            on_step=on_step,
        )
        for split in split_days(n_days, n_splits, rolling=rolling)
    )
    return ForecastSplitsReport(n_days, links, minutes, model, rolling, results, summarise(results))


def save_forecast_days(
    path: Path, days: SpeedDays, plans: tuple[ForecastDayPlan, ...] = ()
) -> None:
    arrays: dict[str, Any] = {"speeds": days.speeds, "link_ids": np.array(days.link_ids)}
    for name in ("flows", "queues", "upstream", "downstream"):
        if getattr(days, name) is not None:
            arrays[name] = getattr(days, name)
    if plans:
        arrays["plans"] = np.array(json.dumps([p.as_json() for p in plans]))
    with path.open("wb") as out:  # at this very path: numpy would add .npz to a bare name
        np.savez_compressed(out, **arrays)


def load_forecast_days(path: Path) -> SpeedDays:
    """Days saved by ``save_forecast_days`` (or ``entrepot city forecast --save``)."""
    if not path.is_file():
        raise InvalidSeries(f"days file {path} does not exist")
    not_days = f"{path} is not a file of days saved by 'entrepot city forecast --save'"
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("speeds", "link_ids") if k not in f]
            if missing:
                raise InvalidSeries(f"{not_days}: it has no {' or '.join(missing)}")
            extra = {k: f[k] for k in ("flows", "queues", "upstream", "downstream") if k in f}
            return SpeedDays(f["speeds"], tuple(str(x) for x in f["link_ids"]), **extra)
    except InvalidSeries:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, AttributeError) as exc:
        raise InvalidSeries(f"{not_days} ({exc})") from exc
