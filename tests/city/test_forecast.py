"""Forecasting beats the last-value and historical-average baselines on a tiny data set."""

from __future__ import annotations

import numpy as np
import pytest

from entrepot.city import InvalidSeries
from entrepot.city.forecast import SpeedDays, evaluate_forecast, synthetic_days


def test_forecast_beats_both_baselines_at_every_horizon() -> None:
    scores = evaluate_forecast(synthetic_days(n_days=6, seed=7), train_days=4)

    assert [s.horizon_min for s in scores] == [5, 10, 15]
    for s in scores:
        assert s.mae_model < s.mae_last_value
        assert s.mae_model < s.mae_historical_average
    assert scores[-1].gain_vs_ha >= 0.20


def test_bad_series_is_refused() -> None:
    with pytest.raises(InvalidSeries, match="shape"):
        SpeedDays(np.zeros((3, 10)), ("a",))
    with pytest.raises(InvalidSeries, match="NaN"):
        SpeedDays(np.full((2, 30, 1), np.nan), ("a",))
    with pytest.raises(InvalidSeries, match="too short"):
        evaluate_forecast(SpeedDays(np.ones((2, 12, 1)), ("a",)), train_days=1)
    with pytest.raises(InvalidSeries, match="training and one test"):
        evaluate_forecast(synthetic_days(n_days=2), train_days=2)


def test_rolling_mean_is_the_trailing_window_mean() -> None:
    days = SpeedDays(np.array([[[1.0], [2.0], [3.0], [4.0]]]), ("a",))

    smoothed = days.rolling_mean(2).speeds[0, :, 0]

    assert smoothed.tolist() == [1.0, 1.5, 2.5, 3.5]
    with pytest.raises(InvalidSeries, match="at least one minute"):
        days.rolling_mean(0)
