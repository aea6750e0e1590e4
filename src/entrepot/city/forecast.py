"""Forecasting per-link speed 5, 10 and 15 minutes ahead.

Target: a link's mean speed over the five minutes that start at the horizon (what an operator
acts on; one-minute speeds on signalised links are mostly signal-cycle noise). Data: several
simulated "days" (same network; demand level, peak time and incidents vary by day and seed)
binned to one-minute link speed, flow and queue by the sensing pipeline. This module holds
the data (``SpeedDays``, the sensing binner, a synthetic generator); the causal features are in
``forecast_features``, the models in ``forecast_models`` and the evaluation protocol (splits,
selection on validation days, test once) in ``forecast_eval``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from entrepot.city.errors import InvalidSeries
from entrepot.city.model import LinkEstimate

HORIZONS_MIN = (5, 10, 15)
#: The forecast quantity: a link's mean speed over this many minutes starting at the horizon
#: (what an operator acts on; one-minute speeds on signalised links are signal-cycle noise).
TARGET_WINDOW_MIN = 5
#: Minutes of history a prediction needs (the longest trailing mean among the features).
LOOKBACK_MIN = 15


@dataclass(frozen=True)
class SpeedDays:
    """Per-minute link speeds: ``speeds[day, minute, link]`` in m/s; optionally flows (veh/h)
    and queues (halting vehicles) of the same shape, and row-normalised ``upstream`` /
    ``downstream`` link adjacency ``[link, link]`` (a row averages a link's neighbours)."""

    speeds: np.ndarray
    link_ids: tuple[str, ...]
    flows: np.ndarray | None = None
    queues: np.ndarray | None = None
    upstream: np.ndarray | None = None
    downstream: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.speeds.ndim != 3:
            raise InvalidSeries(
                f"speeds must be [day, minute, link], got shape {self.speeds.shape}"
            )
        if self.speeds.shape[2] != len(self.link_ids):
            raise InvalidSeries("one link id per speed column is required")
        if not np.all(np.isfinite(self.speeds)):
            raise InvalidSeries("speeds contain NaN or infinite values")
        for name in ("flows", "queues"):
            extra = getattr(self, name)
            if extra is not None and extra.shape != self.speeds.shape:
                raise InvalidSeries(f"{name} must have the shape of speeds {self.speeds.shape}")
        n = len(self.link_ids)
        for name in ("upstream", "downstream"):
            adj = getattr(self, name)
            if adj is not None and adj.shape != (n, n):
                raise InvalidSeries(f"{name} must be [link, link], got shape {adj.shape}")
        for name in ("flows", "queues", "upstream", "downstream"):
            # one NaN spreads through the features of every row and the scores come out NaN
            extra = getattr(self, name)
            if extra is not None and not np.all(np.isfinite(extra)):
                raise InvalidSeries(f"{name} contain NaN or infinite values")

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

    def days(self, sl: slice) -> SpeedDays:
        return self.take(range(self.speeds.shape[0])[sl])

    def take(self, days: Sequence[int]) -> SpeedDays:
        """These days only (same links and neighbours), in the given order."""
        idx = np.asarray(days, dtype=int)
        return SpeedDays(
            self.speeds[idx],
            self.link_ids,
            None if self.flows is None else self.flows[idx],
            None if self.queues is None else self.queues[idx],
            self.upstream,
            self.downstream,
        )


def check_split(
    days: SpeedDays, train_days: int, horizon_min: int, target_window_min: int = 1
) -> None:
    n_days, n_min, _ = days.speeds.shape
    if not 1 <= train_days < n_days:
        raise InvalidSeries(
            f"need at least one training and one test day, got {train_days}/{n_days}"
        )
    if n_min <= LOOKBACK_MIN + horizon_min + target_window_min:
        raise InvalidSeries(
            f"{n_min} minutes per day is too short for a {horizon_min}-minute horizon"
        )


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
        values = np.array(
            [
                [estimates[link].speed_mps, estimates[link].flow_vph, estimates[link].queue_veh]
                for link in self.link_ids
            ]
        )
        self._sum = values if self._sum is None else self._sum + values
        self._n += 1
        if int(t_s) % self.bin_s == 0:
            self.rows.append(self._sum / self._n)
            self._sum, self._n = None, 0

    def series(self, kind: str = "speed") -> np.ndarray:
        """``[minute, link]`` of ``speed`` (m/s), ``flow`` (veh/h) or ``queue`` (vehicles)."""
        column = ("speed", "flow", "queue").index(kind)
        return np.stack(self.rows)[:, :, column]


def collect_days(days: list[SpeedDays]) -> SpeedDays:
    """Stack single simulated days (same links) cut to the shortest one."""
    length = min(d.speeds.shape[1] for d in days)
    first = days[0]

    def stack(name: str) -> np.ndarray | None:
        parts = [getattr(d, name) for d in days]
        if any(p is None for p in parts):
            return None
        return np.concatenate([p[:, :length] for p in parts])

    return SpeedDays(
        np.concatenate([d.speeds[:, :length] for d in days]),
        first.link_ids,
        stack("flows"),
        stack("queues"),
        first.upstream,
        first.downstream,
    )
