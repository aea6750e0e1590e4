"""Causal feature rows for the link speed forecast.

A row is one (day, minute ``t``, link). Everything in it is known at ``t``: the day's own series
up to ``t`` and the *reference* days (the training days, whole). The historical average (HA) and
every "usual level" a deviation is measured from are means over the reference days; a row of a
reference day itself uses the mean over the *other* reference days (leave one day out), so the
model learns on training rows the same relation to the HA that it meets on test rows, where the
HA is built from other days.

Feature groups (``FEATURE_SETS`` selects which a model sees; the choice is made on validation
days, never on test days):

- ``local``: the link's latest minute, 5- and 15-minute means, their deviations from the usual
  level at that minute, 5/15-minute trends, today's deviation so far, flow and queue, time of
  day, the HA of the target (raw and smoothed over +-5 minutes) and the HA's expected change.
- ``graph``: ``local`` plus network-wide means of the deviations and trends (a busy day is busy
  everywhere) and the mean over the link's upstream and downstream neighbours of their speed
  deviations, trends, queues and flows (the network graph is known).
- ``full``: ``graph`` plus an analogue forecast: the mean target of the ``ANALOG_K`` reference
  days whose network-wide state over the last ten minutes was nearest to today's at ``t``
  (captures today's demand level and how far the peak is shifted), and an explicit estimate
  of the peak shift with the HA read at the shifted target time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from entrepot.city.errors import InvalidSeries
from entrepot.city.forecast import LOOKBACK_MIN, SpeedDays

FEATURE_SETS = ("local", "graph", "full")
ANALOG_K = 5
#: Lags (minutes) of the 5-minute mean speeds that make the network state compared by analogues.
ANALOG_LAGS = (0, 5, 10)
HA_SMOOTH_MIN = 5
#: Today's peak shift is searched within +-SHIFT_MAX_MIN minutes, fitted on the last
#: SHIFT_FIT_MIN minutes of the network-mean speed.
SHIFT_MAX_MIN = 30
SHIFT_FIT_MIN = 30


@dataclass(frozen=True)
class Rows:
    """Feature rows in (day, minute, link) order; ``link`` is the link index of each row."""

    x: np.ndarray
    y: np.ndarray
    last: np.ndarray
    ha: np.ndarray
    link: np.ndarray
    n_links: int
    names: tuple[str, ...]

    def columns(self, feature_set: str) -> np.ndarray:
        keep = [i for i, n in enumerate(self.names) if _group(n) in _groups(feature_set)]
        return np.asarray(self.x[:, keep])


def _group(name: str) -> str:
    return name.split(":", 1)[0]


def _groups(feature_set: str) -> tuple[str, ...]:
    if feature_set not in FEATURE_SETS:
        raise InvalidSeries(f"unknown feature set {feature_set!r}; use {', '.join(FEATURE_SETS)}")
    return FEATURE_SETS[: FEATURE_SETS.index(feature_set) + 1]


def trailing(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean along the minute axis of ``[day, minute, link]`` (short at the start)."""
    csum = np.cumsum(x, axis=1)
    out = csum.copy()
    out[:, window:] = csum[:, window:] - csum[:, :-window]
    counts = np.minimum(np.arange(1, x.shape[1] + 1), window)
    return np.asarray(out / counts[None, :, None])


def running_mean(x: np.ndarray) -> np.ndarray:
    """Mean since the start of the day along the minute axis."""
    return np.asarray(np.cumsum(x, axis=1) / np.arange(1, x.shape[1] + 1)[None, :, None])


def ref_mean(x: np.ndarray, ref: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Mean of ``x[day]`` over the reference days, one per row day; a row day that is itself a
    reference day is left out of its own mean (when there is another reference day)."""
    total = x[ref].sum(axis=0)
    out = np.repeat((total / len(ref))[None], len(rows), axis=0)
    if len(ref) > 1:
        inside = np.isin(rows, ref)
        out[inside] = (total[None] - x[rows[inside]]) / (len(ref) - 1)
    return out


def forecast_times(n_min: int, horizon: int, window: int) -> np.ndarray:
    """Minutes ``t`` with a full lookback before and a whole target window after the horizon."""
    return np.arange(LOOKBACK_MIN - 1, n_min - horizon - window + 1)


def _smooth_along_t(x: np.ndarray, half: int) -> np.ndarray:
    """Centred moving mean over +-``half`` positions of axis 1 (HA only: reference days)."""
    csum = np.concatenate([np.zeros_like(x[:, :1]), np.cumsum(x, axis=1)], axis=1)
    n = x.shape[1]
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + half + 1, 0, n)
    return np.asarray((csum[:, hi] - csum[:, lo]) / (hi - lo)[None, :, None])


class _Builder:
    """Column bookkeeping for one (reference days, row days, horizon) combination."""

    def __init__(self, days: SpeedDays, ref: np.ndarray, rows: np.ndarray, t: np.ndarray):
        self.days, self.ref, self.rows, self.t = days, ref, rows, t
        self.cols: list[np.ndarray] = []
        self.names: list[str] = []
        self.shape = (len(rows), len(t), days.speeds.shape[2])

    def at(self, x: np.ndarray, lag: int = 0) -> np.ndarray:
        return np.asarray(x[self.rows][:, self.t - lag])

    def usual(self, x: np.ndarray, lag: int = 0) -> np.ndarray:
        return ref_mean(x[:, self.t - lag], self.ref, self.rows)

    def dev(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.at(x) - self.usual(x))

    def add(self, group: str, name: str, values: np.ndarray) -> None:
        self.cols.append(np.broadcast_to(values, self.shape))
        self.names.append(f"{group}:{name}")

    def add_network(self, name: str, values: np.ndarray) -> None:
        self.add("graph", f"net_{name}", values.mean(axis=2, keepdims=True))

    def add_neighbours(self, name: str, values: np.ndarray) -> None:
        for side, adj in (("up", self.days.upstream), ("down", self.days.downstream)):
            if adj is not None:
                self.add("graph", f"{side}_{name}", values @ adj.T)


def _local(b: _Builder, target: np.ndarray, ha: np.ndarray) -> dict[str, np.ndarray]:
    speeds = b.days.speeds
    s5, s15 = trailing(speeds, 5), trailing(speeds, 15)
    parts = {
        "dev5": b.dev(s5),
        "dev15": b.dev(s15),
        "trend5": b.at(s5) - b.at(s5, 5),
        "trend15": b.at(s15) - b.at(s15, 10),
        "so_far": b.dev(running_mean(speeds)),
    }
    usual5 = b.usual(s5)
    for name, values in (
        ("speed", b.at(speeds)),
        ("s5", b.at(s5)),
        ("s15", b.at(s15)),
        ("dev1", b.dev(speeds)),
        ("usual5", usual5),
        ("ha", ha),
        ("ha_smooth", _smooth_along_t(ha, HA_SMOOTH_MIN)),
        ("ha_change", ha - usual5),
        ("time_of_day", (b.t / speeds.shape[1])[None, :, None]),
        *parts.items(),
    ):
        b.add("local", name, values)
    for kind, extra in (("flow", b.days.flows), ("queue", b.days.queues)):
        if extra is not None:
            e5 = trailing(extra, 5)
            parts[f"{kind}_dev5"] = b.dev(e5)
            b.add("local", f"{kind}5", b.at(e5))
            b.add("local", f"{kind}_dev5", parts[f"{kind}_dev5"])
            b.add("local", f"{kind}_dev15", b.dev(trailing(extra, 15)))
            b.add("local", f"{kind}_so_far", b.dev(running_mean(extra)))
    return parts


def _graph(b: _Builder, parts: dict[str, np.ndarray]) -> None:
    for name in ("dev5", "dev15", "trend5", "trend15", "so_far", "flow_dev5", "queue_dev5"):
        if name in parts:
            b.add_network(name, parts[name])
    for name in ("dev5", "dev15", "trend5", "flow_dev5", "queue_dev5"):
        if name in parts:
            b.add_neighbours(name, parts[name])
    if b.days.queues is not None:
        b.add_neighbours("queue5", b.at(trailing(b.days.queues, 5)))


def _analog(b: _Builder, target: np.ndarray, ha: np.ndarray) -> None:
    """Mean target (and its change from now) of the nearest reference days by network state."""
    s5 = trailing(b.days.speeds, 5)
    state = np.concatenate([s5[:, b.t - lag] for lag in ANALOG_LAGS], axis=2)
    ref_state = state[b.ref]
    k = min(ANALOG_K, len(b.ref) - 1 if len(b.ref) > 1 else 1)
    idx = np.empty((len(b.rows), k, len(b.t)), dtype=int)
    for i, day in enumerate(b.rows):
        dist = ((ref_state - state[day][None]) ** 2).mean(axis=2)
        if len(b.ref) > 1:
            dist[b.ref == day] = np.inf
        idx[i] = np.argsort(dist, axis=0, kind="stable")[:k]
    minute = np.arange(len(b.t))[None, None, :]
    picked = target[b.ref][idx, minute]  # [row day, k, t, link]
    now = s5[b.ref][:, b.t][idx, minute]
    analog = picked.mean(axis=1)
    change = analog - now.mean(axis=1)
    b.add("full", "analog_gap", analog - ha)
    b.add("full", "analog_change", change)
    b.add("full", "analog_persist_gap", b.at(s5) + change - ha)


def _peak_shift(b: _Builder, horizon: int, window: int, ha: np.ndarray) -> None:
    """Today's profile shift: the lag that best aligns the network-mean 5-minute speed over the
    last ``SHIFT_FIT_MIN`` minutes with the usual (reference) curve, and the HA read at the
    target time moved by that lag."""
    n_min = b.days.speeds.shape[1]
    s5 = trailing(b.days.speeds, 5)
    today = s5[b.rows].mean(axis=2)  # [row day, minute]
    usual_all = ref_mean(s5, b.ref, b.rows)  # [row day, minute, link]
    usual = usual_all.mean(axis=2)
    minutes = np.arange(n_min)
    lags = np.arange(-SHIFT_MAX_MIN, SHIFT_MAX_MIN + 1)
    err = np.empty((len(lags), len(b.rows), len(b.t)))
    for i, lag in enumerate(lags):
        sq = (today - usual[:, np.clip(minutes - lag, 0, n_min - 1)]) ** 2
        err[i] = trailing(sq[:, :, None], SHIFT_FIT_MIN)[:, b.t, 0]
    best = lags[np.argmin(err, axis=0)]  # [row day, t]
    sw_usual = ref_mean(trailing(b.days.speeds, window), b.ref, b.rows)
    at = np.clip(b.t[None, :] + horizon + window - 1 - best, 0, n_min - 1)
    shifted = np.take_along_axis(sw_usual, at[:, :, None], axis=1)
    b.add("full", "shift_min", best[:, :, None].astype(float))
    b.add("full", "shifted_ha_gap", shifted - ha)


def build_rows(
    days: SpeedDays,
    ref: Sequence[int],
    rows: Sequence[int],
    horizon: int,
    window: int,
) -> Rows:
    """Feature rows of the ``rows`` days with ``ref`` days as the history; target: the mean
    speed over minutes ``t+h .. t+h+window-1``; last value: the same mean up to ``t``; HA: the
    reference days' mean target at that minute and link (leave-one-out on reference days)."""
    ref_a, rows_a = np.asarray(ref, dtype=int), np.asarray(rows, dtype=int)
    if len(ref_a) == 0 or len(rows_a) == 0:
        raise InvalidSeries("need at least one reference day and one row day")
    n_min = days.speeds.shape[1]
    t = forecast_times(n_min, horizon, window)
    sw = trailing(days.speeds, window)
    target_all = sw[:, t + horizon + window - 1]
    ha = ref_mean(target_all, ref_a, rows_a)
    b = _Builder(days, ref_a, rows_a, t)
    parts = _local(b, target_all, ha)
    _graph(b, parts)
    _analog(b, target_all, ha)
    _peak_shift(b, horizon, window, ha)
    x = np.stack(b.cols, axis=-1)
    n_links = days.speeds.shape[2]
    return Rows(
        x.reshape(-1, x.shape[-1]),
        target_all[rows_a].ravel(),
        b.at(sw).ravel(),
        ha.ravel(),
        np.tile(np.arange(n_links), len(rows_a) * len(t)),
        n_links,
        tuple(b.names),
    )
