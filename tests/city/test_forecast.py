"""Forecasting beats the last-value and historical-average baselines on a tiny data set."""

from __future__ import annotations

import numpy as np
import pytest

from entrepot.city import InvalidSeries
from entrepot.city.forecast import (
    MinuteBinner,
    SpeedDays,
    collect_days,
    synthetic_days,
)
from entrepot.city.forecast_eval import evaluate_forecast
from entrepot.city.model import LinkEstimate


def test_forecast_beats_both_baselines_at_every_horizon() -> None:
    scores = evaluate_forecast(synthetic_days(n_days=6, seed=7), train_days=4, model="ridge")

    assert [s.horizon_min for s in scores] == [5, 10, 15]
    for s in scores:
        assert s.mae_model < s.mae_last_value
        assert s.mae_model < s.mae_historical_average
    assert scores[-1].gain_vs_ha >= 0.20


def test_gradient_boosting_uses_flows_queues_and_neighbours() -> None:
    base = synthetic_days(n_days=4, minutes=60, links=3, seed=3)
    rng = np.random.default_rng(0)
    ring = np.roll(np.eye(3), 1, axis=1)
    days = SpeedDays(
        base.speeds,
        base.link_ids,
        flows=rng.uniform(0, 900, base.speeds.shape),
        queues=rng.uniform(0, 5, base.speeds.shape),
        upstream=ring.T.copy(),
        downstream=ring,
    )

    scores = evaluate_forecast(days, train_days=3, horizons_min=(5,), model="gbm")

    assert np.isfinite(scores[0].mae_model)
    assert scores[0].mae_model < scores[0].mae_last_value


def test_baselines_score_the_same_window_mean_target() -> None:
    # A constant series per day: every forecast, baseline and target is that day's level.
    levels = np.array([10.0, 12.0, 11.0])
    days = SpeedDays(np.broadcast_to(levels[:, None, None], (3, 40, 1)).copy(), ("a",))

    (score,) = evaluate_forecast(days, train_days=2, horizons_min=(5,), model="ridge")

    assert score.mae_last_value == pytest.approx(0.0)
    assert score.mae_historical_average == pytest.approx(0.0)  # HA of 10 and 12 is 11


def test_minute_binner_keeps_speed_flow_and_queue() -> None:
    binner = MinuteBinner()
    for t in (30.0, 60.0):
        binner(t, {"x": LinkEstimate("x", t, 10.0 + t / 30, 600.0, 2.0, 1, 0)})

    assert binner.series("speed").tolist() == [[11.5]]
    assert binner.series("flow").tolist() == [[600.0]]
    assert binner.series("queue").tolist() == [[2.0]]
    stacked = collect_days(
        [SpeedDays(np.ones((1, 5, 1)), ("x",)), SpeedDays(np.ones((1, 4, 1)), ("x",))]
    )
    assert stacked.speeds.shape == (2, 4, 1)


def test_bad_series_is_refused() -> None:
    with pytest.raises(InvalidSeries, match="shape"):
        SpeedDays(np.zeros((3, 10)), ("a",))
    with pytest.raises(InvalidSeries, match="NaN"):
        SpeedDays(np.full((2, 30, 1), np.nan), ("a",))
    with pytest.raises(InvalidSeries, match="flows must"):
        SpeedDays(np.ones((2, 30, 1)), ("a",), flows=np.ones((2, 29, 1)))
    with pytest.raises(InvalidSeries, match="too short"):
        evaluate_forecast(SpeedDays(np.ones((2, 24, 1)), ("a",)), train_days=1)
    with pytest.raises(InvalidSeries, match="training and one test"):
        evaluate_forecast(synthetic_days(n_days=2), train_days=2)
    with pytest.raises(InvalidSeries, match="unknown forecast model"):
        evaluate_forecast(synthetic_days(n_days=3), train_days=2, model="oracle")


def test_rolling_mean_is_the_trailing_window_mean() -> None:
    days = SpeedDays(np.array([[[1.0], [2.0], [3.0], [4.0]]]), ("a",))

    smoothed = days.rolling_mean(2).speeds[0, :, 0]

    assert smoothed.tolist() == [1.0, 1.5, 2.5, 3.5]
    with pytest.raises(InvalidSeries, match="at least one minute"):
        days.rolling_mean(0)


@pytest.mark.parametrize("name", ["flows", "queues", "upstream", "downstream"])
def test_flows_queues_or_neighbours_that_are_not_finite_are_refused(name: str) -> None:
    speeds = np.ones((2, 30, 2))
    bad = np.ones((2, 2)) if name in ("upstream", "downstream") else np.ones_like(speeds)
    bad.flat[1] = np.nan

    with pytest.raises(InvalidSeries, match=f"{name} contain NaN"):
        SpeedDays(speeds, ("a", "b"), **{name: bad})
