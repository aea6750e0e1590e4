"""``entrepot city``: run a signal controller, bench every controller, forecast link speeds.

Long work shows a progress bar on stderr; ``--json`` prints exactly one JSON document on stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from entrepot.city import services
from entrepot.city.controllers import CONTROLLERS
from entrepot.city.errors import InvalidSeries
from entrepot.city.forecast import HORIZONS_MIN, SpeedDays
from entrepot.city.forecast_eval import MIN_TRAIN_DAYS, split_days
from entrepot.city.forecast_models import MODELS
from entrepot.city.report import (
    bench_table,
    forecast_splits_table,
    forecast_table,
    plot_bench,
    plot_forecast,
    plot_forecast_splits,
)
from entrepot.entrypoints.cli.output import emit_json, err, guard, out

app = typer.Typer(
    help="City brain: signal control in SUMO, sensing, forecasting.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ScenarioOpt = Annotated[
    str, typer.Option("--scenario", help="hangzhou, grid4x4 or a path to a .sumocfg")
]
EndOpt = Annotated[
    int | None, typer.Option("--end", min=60, help="episode end in seconds (default 3600)")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="simulation and demand seed")]
ScenarioSeedOpt = Annotated[
    int | None,
    typer.Option(
        "--seed",
        help="simulation and demand seed (default 42; a .sumocfg: its own <seed>, else SUMO's)",
    ),
]
RateOpt = Annotated[
    float | None,
    typer.Option(
        "--rate",
        min=100,
        help=f"grid4x4 demand in vehicles per hour (default {services.GRID_RATE_VPH:g}); "
        "the other scenarios bring their own",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        console=err(),
        transient=True,
    )


@app.command("run")
@guard
def run(
    scenario: ScenarioOpt = "hangzhou",
    controller: Annotated[
        str, typer.Option("--controller", help=", ".join(CONTROLLERS))
    ] = "entrepot",
    end: EndOpt = None,
    seed: ScenarioSeedOpt = None,
    rate: RateOpt = None,
    decisions: Annotated[
        int, typer.Option("--decisions", min=0, help="show the last N explained decisions")
    ] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Run one controller for one episode and report its metrics and latest decisions."""
    if controller not in CONTROLLERS:
        from entrepot.city.errors import UnknownController

        raise UnknownController(
            f"unknown controller {controller!r}; choose one of {', '.join(CONTROLLERS)}"
        )
    sc = services.resolve_scenario(scenario, end_s=end, seed=seed, rate_vph=rate)
    with _progress() as bar:
        task = bar.add_task(f"{sc.name} / {controller}", total=sc.end_s - sc.begin_s)
        result = services.run_controller(
            sc, controller, progress=lambda done, _total: bar.update(task, completed=done)
        )
    summary = result.metrics.summary()
    shown = (
        [
            {
                "t_s": d.t_s,
                "signal": d.tl_id,
                "from": d.from_phase,
                "to": d.to_phase,
                "reason": d.reason,
            }
            for d in result.decisions[-decisions:]
        ]
        if decisions
        else []
    )
    if as_json:
        emit_json(
            {
                "scenario": sc.name,
                "controller": controller,
                "metrics": summary,
                "violations": result.violations,
                "decisions": shown,
            }
        )
        return
    table = Table(title=f"{sc.name} / {controller}, {sc.begin_s}-{sc.end_s} s")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, str(value))
    out().print(table)
    for d in shown:
        out().print(f"t={d['t_s']:.0f}s {d['signal']}: {d['from']} -> {d['to']} ({d['reason']})")


@app.command("bench")
@guard
def bench(
    scenario: ScenarioOpt = "hangzhou",
    end: EndOpt = None,
    seed: ScenarioSeedOpt = None,
    rate: RateOpt = None,
    controllers: Annotated[
        str, typer.Option("--controllers", help="comma-separated subset (default: all)")
    ] = ",".join(CONTROLLERS),
    workers: Annotated[int, typer.Option("--workers", min=1, max=8)] = 2,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="write PNG plots into this folder")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every controller on the same demand and seed; one JSON object with --json."""
    names = tuple(c.strip() for c in controllers.split(",") if c.strip())
    sc = services.resolve_scenario(scenario, end_s=end, seed=seed, rate_vph=rate)
    with _progress() as bar:
        task = bar.add_task(f"bench {sc.name}", total=len(names))
        result = services.bench(
            sc, names, workers=workers, on_done=lambda _n, _r: bar.advance(task)
        )
    if plots is not None:
        plot_bench(result, plots, f"city-{sc.name}")
    if as_json:
        emit_json(result.as_json())
        return
    out().print(f"{sc.name}: {sc.description}")
    out().print(bench_table(result), markup=False)


@app.command("forecast")
@guard
def forecast(
    days: Annotated[int, typer.Option("--days", min=2, help="simulated days")] = 6,
    train_days: Annotated[int, typer.Option("--train-days", min=1)] = 4,
    seed: SeedOpt = 42,
    synthetic: Annotated[
        bool, typer.Option("--synthetic", help="a tiny synthetic data set instead of SUMO days")
    ] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, max=8)] = 2,
    window: Annotated[
        int,
        typer.Option(
            "--window",
            min=1,
            max=30,
            help="forecast the mean speed over N minutes from the horizon",
        ),
    ] = 5,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="ridge, gbm (LightGBM gradient boosting) or ensemble (gbm candidates averaged)",
        ),
    ] = "ridge",
    splits: Annotated[
        int,
        typer.Option(
            "--splits",
            min=0,
            max=20,
            help="evaluate on N splits of the days (blocked folds) instead of --train-days",
        ),
    ] = 0,
    rolling: Annotated[
        bool,
        typer.Option("--rolling", help="with --splits: train only on days before the test days"),
    ] = False,
    save: Annotated[
        Path | None, typer.Option("--save", help="keep the simulated days here (.npz)")
    ] = None,
    load: Annotated[
        Path | None, typer.Option("--load", help="score days saved with --save (no SUMO)")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="write a PNG here")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Forecast 5-minute mean link speeds 5/10/15 minutes ahead; MAE vs last value and HA."""
    _check_forecast_options(model, days, train_days, splits, rolling, simulated=load is None)
    if save is not None and not save.parent.is_dir():
        # Refused before the days are simulated (minutes of SUMO), not after, losing them.
        raise InvalidSeries(f"cannot save the days to {save}: folder {save.parent} does not exist")
    data, plans = _forecast_data(load, synthetic, days, seed, workers)
    if save is not None:
        services.save_forecast_days(save, data, plans)
    if splits:
        _forecast_splits(data, splits, rolling, window, model, plot, as_json)
        return
    with _progress() as bar:
        task = bar.add_task(f"forecast ({model})", total=1)
        report = services.score_forecast(data, train_days, target_window_min=window, model=model)
        bar.advance(task)
    if plot is not None:
        plot_forecast(report, plot)
    if as_json:
        emit_json(report.as_json())
        return
    out().print(forecast_table(report), markup=False)


def _check_forecast_options(
    model: str, days: int, train_days: int, splits: int, rolling: bool, *, simulated: bool
) -> None:
    """Refuse what scoring would refuse before any day is simulated (minutes of SUMO)."""
    if model not in MODELS:
        raise InvalidSeries(f"unknown forecast model {model!r}; use {', '.join(MODELS)}")
    if not simulated:
        return
    if not splits and not 1 <= train_days < days:
        raise InvalidSeries(f"need at least one training and one test day, got {train_days}/{days}")
    if splits and not all(s.train for s in split_days(days, splits, rolling=rolling)):
        raise InvalidSeries(f"{days} days leave a split of {splits} without training days")
    fewest = (
        min(len(s.train) for s in split_days(days, splits, rolling=rolling))
        if splits
        else train_days
    )
    if fewest < MIN_TRAIN_DAYS:
        raise InvalidSeries(
            f"need at least two training days, got {fewest}: a training row's historical "
            "average comes from the other training days"
        )


def _forecast_data(
    load: Path | None, synthetic: bool, days: int, seed: int, workers: int
) -> tuple[SpeedDays, tuple[services.ForecastDayPlan, ...]]:
    """Saved days, a synthetic set, or days simulated now (``workers`` SUMO runs at a time)."""
    from entrepot.city.forecast import synthetic_days

    if load is not None:
        return services.load_forecast_days(load), ()
    if synthetic:
        return synthetic_days(n_days=days, seed=seed), ()
    with _progress() as bar:
        task = bar.add_task("simulating days", total=days)
        return services.build_forecast_days(
            days, seed=seed, workers=workers, on_day=lambda _d: bar.advance(task)
        )


def _forecast_splits(
    data: SpeedDays,
    n_splits: int,
    rolling: bool,
    window: int,
    model: str,
    plot: Path | None,
    as_json: bool,
) -> None:
    """Score every split (selection on validation days, test once) with a progress bar."""
    with _progress() as bar:
        task = bar.add_task(
            f"forecast {n_splits} splits ({model})", total=n_splits * len(HORIZONS_MIN)
        )
        report = services.score_forecast_splits(
            data,
            n_splits,
            rolling=rolling,
            target_window_min=window,
            model=model,
            on_step=lambda: bar.advance(task),
        )
    if plot is not None:
        plot_forecast_splits(report, plot)
    if as_json:
        emit_json(report.as_json())
        return
    out().print(forecast_splits_table(report), markup=False)
