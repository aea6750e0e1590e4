"""Forecasting per-link speed 5, 10 and 15 minutes ahead.

Data: several simulated "days" (same network, demand that varies by day and seed) binned to
one-minute link speeds by the sensing pipeline. Model: a ridge regression shared by all links,
one per horizon, on the current speed, its recent trend, and the historical average (HA) now
and at the target time; it learns how far today's deviation from the HA persists. Baselines:
the last value, and the HA of the training days at the target time of day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from entrepot.city.errors import InvalidSeries
from entrepot.city.model import LinkEstimate

HORIZONS_MIN = (5, 10, 15)
#: Minutes of history a prediction needs (the trend feature looks this far back).
LOOKBACK_MIN = 5
RIDGE_LAMBDA = 1.0


@dataclass(frozen=True)
class SpeedDays:
    """Per-minute link speeds: ``speeds[day, minute, link]`` in m/s."""

    speeds: np.ndarray
    link_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.speeds.ndim != 3:
            raise InvalidSeries(
                f"speeds must be [day, minute, link], got shape {self.speeds.shape}"
            )
        if self.speeds.shape[2] != len(self.link_ids):
            raise InvalidSeries("one link id per speed column is required")
        if not np.all(np.isfinite(self.speeds)):
            raise InvalidSeries("speeds contain NaN or infinite values")

    def rolling_mean(self, window_min: int) -> SpeedDays:
        """Trailing ``window_min``-minute mean of every series (the first minutes average what
        there is): the quantity forecast is then the mean speed over the last window."""
        if window_min < 1:
            raise InvalidSeries(f"window must be at least one minute, got {window_min}")
        csum = np.cumsum(self.speeds, axis=1)
        out = csum.copy()
        out[:, window_min:] = csum[:, window_min:] - csum[:, :-window_min]
        counts = np.minimum(np.arange(1, self.speeds.shape[1] + 1), window_min)
        return SpeedDays(out / counts[None, :, None], self.link_ids)


def check_split(days: SpeedDays, train_days: int, horizon_min: int) -> None:
    n_days, n_min, _ = days.speeds.shape
    if not 1 <= train_days < n_days:
        raise InvalidSeries(
            f"need at least one training and one test day, got {train_days}/{n_days}"
        )
    if n_min <= LOOKBACK_MIN + horizon_min:
        raise InvalidSeries(
            f"{n_min} minutes per day is too short for a {horizon_min}-minute horizon"
        )


def _features(
    day: np.ndarray, ha: np.ndarray, horizon: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows for every (minute, link) with a full lookback and a target; returns X, y, last, ha."""
    t = np.arange(LOOKBACK_MIN, day.shape[0] - horizon)
    now = day[t]
    trend = now - day[t - LOOKBACK_MIN]
    recent = day[np.stack([t - k for k in range(LOOKBACK_MIN)])].mean(axis=0)
    ha_now = ha[t]
    ha_then = ha[t + horizon]
    cols = [now, recent, trend, ha_now, ha_then, now - ha_now, np.ones_like(now)]
    x = np.stack([c.ravel() for c in cols], axis=1)
    return x, day[t + horizon].ravel(), now.ravel(), ha_then.ravel()


@dataclass(frozen=True)
class HorizonScore:
    horizon_min: int
    mae_model: float
    mae_last_value: float
    mae_historical_average: float

    @property
    def gain_vs_ha(self) -> float:
        """Relative MAE reduction against the historical average (0.2 = 20 % lower)."""
        return 1.0 - self.mae_model / self.mae_historical_average

    def as_dict(self) -> dict[str, float]:
        return {
            "horizon_min": self.horizon_min,
            "mae_model_mps": round(self.mae_model, 4),
            "mae_last_value_mps": round(self.mae_last_value, 4),
            "mae_historical_average_mps": round(self.mae_historical_average, 4),
            "gain_vs_historical_average": round(self.gain_vs_ha, 4),
            "gain_vs_last_value": round(1.0 - self.mae_model / self.mae_last_value, 4),
        }


def evaluate_forecast(
    days: SpeedDays, train_days: int, horizons_min: tuple[int, ...] = HORIZONS_MIN
) -> list[HorizonScore]:
    """Train on the first ``train_days`` days, test on the rest; MAE per horizon."""
    for h in horizons_min:
        check_split(days, train_days, h)
    train = days.speeds[:train_days]
    test = days.speeds[train_days:]
    ha = train.mean(axis=0)
    scores = []
    for h in horizons_min:
        xs, ys = zip(*(_features(day, ha, h)[:2] for day in train), strict=True)
        x = np.concatenate(xs)
        y = np.concatenate(ys)
        gram = x.T @ x + RIDGE_LAMBDA * np.eye(x.shape[1])
        weights = np.linalg.solve(gram, x.T @ y)
        errs_model, errs_last, errs_ha = [], [], []
        for day in test:
            xt, yt, last, ha_then = _features(day, ha, h)
            errs_model.append(np.abs(xt @ weights - yt))
            errs_last.append(np.abs(last - yt))
            errs_ha.append(np.abs(ha_then - yt))
        scores.append(
            HorizonScore(
                h,
                float(np.concatenate(errs_model).mean()),
                float(np.concatenate(errs_last).mean()),
                float(np.concatenate(errs_ha).mean()),
            )
        )
    return scores


def synthetic_days(n_days: int = 6, minutes: int = 120, links: int = 8, seed: int = 7) -> SpeedDays:
    """A tiny data set with the structure of real traffic: a daily congestion dip whose depth
    varies by day, link-specific free speeds, and autocorrelated noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(minutes)
    free = rng.uniform(10.0, 14.0, size=links)
    peak = rng.uniform(0.4, 0.6, size=links) * minutes
    width = rng.uniform(0.12, 0.2, size=links) * minutes
    speeds = np.empty((n_days, minutes, links))
    for d in range(n_days):
        intensity = rng.uniform(0.3, 1.0)
        dip = intensity * 0.6 * np.exp(-(((t[:, None] - peak) / width) ** 2))
        noise = np.zeros((minutes, links))
        for m in range(1, minutes):
            noise[m] = 0.8 * noise[m - 1] + rng.normal(0.0, 0.25, size=links)
        speeds[d] = np.clip(free * (1.0 - dip) + noise, 0.5, None)
    return SpeedDays(speeds, tuple(f"link{i}" for i in range(links)))


class MinuteBinner:
    """A sensing listener that averages link speed estimates into one-minute bins."""

    def __init__(self, link_ids: tuple[str, ...] | None = None, bin_s: int = 60) -> None:
        self.link_ids = link_ids
        self.bin_s = bin_s
        self.rows: list[np.ndarray] = []
        self._sum: np.ndarray | None = None
        self._n = 0

    def __call__(self, t_s: float, estimates: dict[str, LinkEstimate]) -> None:
        if self.link_ids is None:
            self.link_ids = tuple(sorted(estimates))
        values = np.array([estimates[link].speed_mps for link in self.link_ids])
        self._sum = values if self._sum is None else self._sum + values
        self._n += 1
        if int(t_s) % self.bin_s == 0:
            self.rows.append(self._sum / self._n)
            self._sum, self._n = None, 0

    def series(self) -> np.ndarray:
        return np.stack(self.rows)


DayRunner = Callable[[int], tuple[np.ndarray, tuple[str, ...]]]


def collect_days(n_days: int, run_day: DayRunner) -> SpeedDays:
    """Stack the per-minute speeds of ``n_days`` simulated days (same links, same length)."""
    series = []
    links: tuple[str, ...] = ()
    for d in range(n_days):
        speeds, links = run_day(d)
        series.append(speeds)
    length = min(s.shape[0] for s in series)
    return SpeedDays(np.stack([s[:length] for s in series]), links)
