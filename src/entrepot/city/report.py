"""Reports: markdown tables and PNG plots of bench and forecast results."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from entrepot.city.services import BenchResult, ForecastReport, ForecastSplitsReport

COLUMNS = (
    ("avg_travel_time_s", "avg travel time (s)"),
    ("avg_waiting_time_s", "avg waiting (s)"),
    ("avg_time_loss_s", "avg time loss (s)"),
    ("throughput_vph", "arrived (veh/h)"),
    ("unfinished", "unfinished"),
    ("teleports", "teleports"),
    ("never_inserted", "never inserted"),
    ("safety_violations", "safety flags"),
)


def bench_table(result: BenchResult) -> str:
    doc = result.as_json()
    head = "| controller | " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|---" * (len(COLUMNS) + 1) + "|"
    rows = [
        f"| {name} | " + " | ".join(f"{metrics[key]:g}" for key, _ in COLUMNS) + " |"
        for name, metrics in doc["controllers"].items()
    ]
    return "\n".join([head, rule, *rows])


def forecast_table(report: ForecastReport) -> str:
    rows = [
        "| horizon | model MAE (m/s) | last value MAE | historical average MAE | gain vs HA |",
        "|---|---|---|---|---|",
    ]
    for s in report.scores:
        rows.append(
            f"| {s.horizon_min} min | {s.mae_model:.3f} | {s.mae_last_value:.3f} | "
            f"{s.mae_historical_average:.3f} | {100 * s.gain_vs_ha:.1f} % |"
        )
    return "\n".join(rows)


def forecast_splits_table(report: ForecastSplitsReport) -> str:
    """Per horizon: mean MAEs over the splits and the gain vs HA (mean, min-max)."""
    rows = [
        "| horizon | model MAE (m/s) | last value MAE | historical average MAE "
        "| gain vs HA mean (min - max) |",
        "|---|---|---|---|---|",
    ]
    for s in report.summary:
        g = s.gains_vs_ha
        rows.append(
            f"| {s.horizon_min} min | {s.mae_model:.3f} | {s.mae_last_value:.3f} | "
            f"{s.mae_historical_average:.3f} | {100 * sum(g) / len(g):.1f} % "
            f"({100 * min(g):.1f} - {100 * max(g):.1f} %) |"
        )
    rows += [
        "",
        "| test days | train / validation days | gain vs HA at "
        + " / ".join(f"{s.horizon_min}" for s in report.summary)
        + " min | chosen at 15 min |",
        "|---|---|---|---|",
    ]
    for r in report.splits:
        _fit, val = r.split.fit_and_validation()
        gains = " / ".join(f"{100 * s.gain_vs_ha:.1f} %" for s in r.scores)
        rows.append(
            f"| {r.split.test[0]}-{r.split.test[-1]} | {len(r.split.train)} / {len(val)} | "
            f"{gains} | {r.selections[-1].label()} |"
        )
    return "\n".join(rows)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_bench(result: BenchResult, out_dir: Path, prefix: str) -> list[Path]:
    """Two PNGs: travel time / waiting / time loss per controller; vehicles in the network."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = result.as_json()["controllers"]
    names = list(doc)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.27
    for k, (key, title) in enumerate(COLUMNS[:3]):
        xs = [i + (k - 1) * width for i in range(len(names))]
        bars = ax.bar(xs, [doc[n][key] for n in names], width, label=title)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("seconds per vehicle")
    ax.set_title(f"{result.scenario.name}: same demand and seed, every controller")
    ax.legend()
    fig.tight_layout()
    bars_png = out_dir / f"{prefix}-controllers.png"
    fig.savefig(bars_png, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name in names:
        timeline = result.episodes[name].metrics.timeline
        ax.plot([t / 60 for t, _, _ in timeline], [r for _, r, _ in timeline], label=name)
    ax.set_xlabel("minute of the episode")
    ax.set_ylabel("vehicles in the network")
    ax.set_title(f"{result.scenario.name}: vehicles in the network (lower = faster service)")
    ax.legend()
    fig.tight_layout()
    line_png = out_dir / f"{prefix}-timeline.png"
    fig.savefig(line_png, dpi=110)
    plt.close(fig)
    return [bars_png, line_png]


def plot_forecast(report: ForecastReport, path: Path) -> Path:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    hs = [s.horizon_min for s in report.scores]
    ax.plot(hs, [s.mae_model for s in report.scores], "o-", label="Entrepot")
    ax.plot(hs, [s.mae_last_value for s in report.scores], "s--", label="last value")
    ax.plot(hs, [s.mae_historical_average for s in report.scores], "^--", label="historical avg")
    ax.set_xlabel("horizon (minutes)")
    ax.set_ylabel("MAE of link speed (m/s)")
    ax.set_xticks(hs)
    ax.set_title(
        f"Link speed forecast: {report.train_days} train / "
        f"{report.days - report.train_days} test days, {report.links} links"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_forecast_splits(report: ForecastSplitsReport, path: Path) -> Path:
    """MAE by horizon, model vs baselines: mean over the splits, bars from min to max."""
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    hs = [s.horizon_min for s in report.summary]
    series = (
        ("mae_model", f"Entrepot ({report.model})", "o-"),
        ("mae_last_value", "last value", "s--"),
        ("mae_historical_average", "historical average", "^--"),
    )
    for key, label, style in series:
        per = [[getattr(r.scores[i], key) for r in report.splits] for i in range(len(hs))]
        mean = [sum(p) / len(p) for p in per]
        err = [
            [m - min(p) for m, p in zip(mean, per, strict=True)],
            [max(p) - m for m, p in zip(mean, per, strict=True)],
        ]
        ax.errorbar(hs, mean, yerr=err, fmt=style, capsize=4, label=label)
    ax.set_xlabel("horizon (minutes)")
    ax.set_ylabel("MAE of 5-minute mean link speed (m/s)")
    ax.set_xticks(hs)
    scheme = "rolling-origin" if report.rolling else "blocked-fold"
    ax.set_title(
        f"Link speed forecast: {len(report.splits)} {scheme} splits of {report.days} days, "
        f"{report.links} links\n(mean over splits; bars: min - max)",
        fontsize=10,
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
