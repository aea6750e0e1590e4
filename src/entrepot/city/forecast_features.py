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
  day, the HA of the target (raw and smoothed over +-5 minutes) and the HA's expected change;
  how long the link has been anomalously slow (below half its usual 3-minute speed) and how
  long ago its last slow spell ended (incidents last a while, then clear).
- ``graph``: ``local`` plus network-wide means of the deviations and trends (a busy day is busy
  everywhere) and the mean over the link's upstream and downstream neighbours of their speed
  deviations, trends, queues and flows (the network graph is known), and of their slow-spell
  ages.
- ``full``: ``graph`` plus an analogue forecast: the mean target of the ``ANALOG_K`` reference
  days whose network-wide state over the last fifteen minutes (5-minute means at lags
  ``ANALOG_LAGS``) was nearest to today's at ``t`` (captures today's demand level and how
  far the peak is shifted), and an explicit estimate
  of the peak shift with the HA read at the shifted target time; and a fit of today's demand
  on the flow *entering* the network (the links nothing feeds): the level and lag that best
  map the usual entering flow onto today's over the last half hour, the demand they imply at
  the target time relative to the usual, the HA read at the lagged time, and the mean target
  of the reference days whose own fit (same minute, same method) is nearest.
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
#: A link is "anomalously slow" in a minute when its 3-minute mean speed is below this share
#: of its usual level; how long that has lasted tells how soon an incident may clear.
SLOW_SHARE = 0.5
SLOW_AGE_CAP_MIN = 60


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


def _anomaly(b: _Builder) -> None:
    """How long each link has been anomalously slow (0 when it is not) and how long ago its
    last slow spell ended (capped): incidents last a while and then clear."""
    s3 = trailing(b.days.speeds, 3)[b.rows]
    usual = ref_mean(trailing(b.days.speeds, 3), b.ref, b.rows)
    slow = s3 < SLOW_SHARE * usual
    age = np.zeros(slow.shape)
    since = np.full(slow.shape, float(SLOW_AGE_CAP_MIN))
    for m in range(slow.shape[1]):
        prev_age = age[:, m - 1] if m else 0.0
        prev_since = since[:, m - 1] if m else float(SLOW_AGE_CAP_MIN)
        age[:, m] = np.where(slow[:, m], np.minimum(prev_age + 1, SLOW_AGE_CAP_MIN), 0.0)
        since[:, m] = np.where(slow[:, m], 0.0, np.minimum(prev_since + 1, SLOW_AGE_CAP_MIN))
    b.add("local", "slow_age", age[:, b.t])
    b.add("local", "since_slow", since[:, b.t])
    b.add_neighbours("slow_age", age[:, b.t])


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


def _usual_target_lagged(
    b: _Builder, usual_target: np.ndarray, horizon: int, window: int, lag: np.ndarray
) -> np.ndarray:
    """The usual (reference) target read ``lag`` minutes earlier than the target time, per row
    day and t: what the HA would say if today runs ``lag`` minutes late."""
    n_min = usual_target.shape[1]
    at = np.clip(b.t[None, :] + horizon + window - 1 - lag, 0, n_min - 1)
    return np.take_along_axis(usual_target, at[:, :, None], axis=1)


def _peak_shift(
    b: _Builder, usual_target: np.ndarray, horizon: int, window: int, ha: np.ndarray
) -> None:
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
    shifted = _usual_target_lagged(b, usual_target, horizon, window, best)
    b.add("full", "shift_min", best[:, :, None].astype(float))
    b.add("full", "shifted_ha_gap", shifted - ha)


def _entry_links(days: SpeedDays) -> np.ndarray:
    """Links no other link feeds (the network's entrances): their flow is the demand."""
    if days.upstream is None:
        return np.arange(days.speeds.shape[2])
    entries = np.flatnonzero(days.upstream.sum(axis=1) == 0)
    return entries if len(entries) else np.arange(days.speeds.shape[2])


def _fit_level_lag(
    entering: np.ndarray, template: np.ndarray, lags: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each day (row of ``entering``) and minute: the lag and least-squares scale that best
    map ``template`` (same shape: one usual curve per day) moved by that lag onto the day's
    entering flow over the last SHIFT_FIT_MIN minutes (trailing: minute m uses data up to m)."""
    n_min = entering.shape[1]
    minutes = np.arange(n_min)

    def window_sum(x: np.ndarray) -> np.ndarray:
        return np.asarray(trailing(x[:, :, None], SHIFT_FIT_MIN)[:, :, 0])

    sxx = window_sum(entering**2)
    best_err = np.full(entering.shape, np.inf)
    best_lag = np.zeros(entering.shape, dtype=int)
    best_scale = np.zeros(entering.shape)
    for lag in lags:
        moved = template[:, np.clip(minutes - lag, 0, n_min - 1)]
        sxy, syy = window_sum(entering * moved), window_sum(moved**2)
        scale = sxy / np.maximum(syy, 1e-9)
        err = sxx - scale * sxy  # residual sum of squares with the best scale
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_lag = np.where(better, lag, best_lag)
        best_scale = np.where(better, scale, best_scale)
    return best_scale, best_lag


def _demand_fit(
    b: _Builder,
    target: np.ndarray,
    usual_target: np.ndarray,
    horizon: int,
    window: int,
    ha: np.ndarray,
) -> None:
    """Today's demand level and timing, fitted on the flow entering the network: for each lag
    within +-SHIFT_MAX_MIN, the least-squares scale of the usual entering flow (reference days)
    moved by that lag against today's over the last SHIFT_FIT_MIN minutes; the best lag and its
    scale. Then the demand expected at the target time relative to the usual one, the HA read
    at the lagged time, and the mean target of the ANALOG_K reference days whose own fit (made
    the same way at the same minute) is nearest. Every usual curve leaves out the day being
    fitted and, for a training row, the row's own day too (its later minutes must not reach
    the row through another day's fit)."""
    if b.days.flows is None:
        return
    n_min = b.days.speeds.shape[1]
    entering = trailing(b.days.flows[:, :, _entry_links(b.days)].sum(axis=2)[:, :, None], 5)[
        :, :, 0
    ]  # [day, minute]
    lags = np.arange(-SHIFT_MAX_MIN, SHIFT_MAX_MIN + 1)
    usual = ref_mean(entering[:, :, None], b.ref, b.rows)[:, :, 0]  # [row day, minute], LOO
    scale_rows, lag_rows = _fit_level_lag(entering[b.rows], usual, lags)
    target_min = b.t + horizon + window // 2
    lag_r, scale_r = lag_rows[:, b.t], scale_rows[:, b.t]  # [row day, t]
    at = np.clip(target_min[None, :] - lag_r, 0, n_min - 1)
    expected = scale_r * np.take_along_axis(usual, at, axis=1)
    plain = usual[:, np.clip(target_min, 0, n_min - 1)]
    b.add("full", "demand_scale", scale_r[:, :, None])
    b.add("full", "demand_lag", lag_r[:, :, None].astype(float))
    b.add("full", "demand_ratio_at_target", (expected / np.maximum(plain, 1.0))[:, :, None])
    lagged = _usual_target_lagged(b, usual_target, horizon, window, lag_r)
    b.add("full", "demand_lag_ha_gap", lagged - ha)
    # Analogue in the fitted (scale, lag) space: reference days fitted alike at the same minute.
    target_ref = target[b.ref]  # [ref, t, link]
    k = min(ANALOG_K, len(b.ref) - 1 if len(b.ref) > 1 else 1)
    x_ref = entering[b.ref]
    total = x_ref.sum(axis=0)
    n_ref = len(b.ref)
    loo = (total[None] - x_ref) / (n_ref - 1) if n_ref > 1 else x_ref
    plain_fit: tuple[np.ndarray, np.ndarray] | None = None
    out = np.empty((len(b.rows), len(b.t), target_ref.shape[2]))
    for i, day in enumerate(b.rows):
        own = b.ref == day
        if own.any() and n_ref > 2:
            # leave the row's day out of every reference day's usual curve too
            template = (total[None] - x_ref - entering[day][None]) / (n_ref - 2)
            ref_scale, ref_lag = _fit_level_lag(x_ref, template, lags)
        else:
            if plain_fit is None:
                plain_fit = _fit_level_lag(x_ref, loo, lags)
            ref_scale, ref_lag = plain_fit
        pts_ref = np.stack([ref_scale[:, b.t], ref_lag[:, b.t] / SHIFT_MAX_MIN], axis=-1)
        mine = np.stack([scale_r[i], lag_r[i] / SHIFT_MAX_MIN], axis=-1)
        dist = ((pts_ref - mine[None]) ** 2).sum(axis=2)  # [ref, t]
        if n_ref > 1:
            dist[own] = np.inf
        idx = np.argsort(dist, axis=0, kind="stable")[:k]  # [k, t]
        out[i] = target_ref[idx, np.arange(len(b.t))[None, :]].mean(axis=0)
    b.add("full", "demand_analog_gap", out - ha)


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
    _anomaly(b)
    _analog(b, target_all, ha)
    # the usual window-mean speed per row day and minute: the HA at any target time
    usual_target = ref_mean(sw, ref_a, rows_a)
    _peak_shift(b, usual_target, horizon, window, ha)
    _demand_fit(b, target_all, usual_target, horizon, window, ha)
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
