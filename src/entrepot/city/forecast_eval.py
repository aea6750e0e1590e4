"""The forecast evaluation protocol: splits of days, selection on validation days, test once.

For each split, the training days are cut into *fit* days and *validation* days (the last
``VALIDATION_FRACTION`` of them). Every candidate configuration (feature set, hyper-parameters;
``forecast_models.candidates``) is fitted on the fit days and scored on the validation days,
with the fit days as the history (HA); the best one at each horizon is then refitted on all the
training days and scored once on the test days. The selection receives only the training days'
data, so test days cannot influence it. The baselines (last value, HA of the training days) are
scored on exactly the model's test targets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from entrepot.city.errors import InvalidSeries
from entrepot.city.forecast import HORIZONS_MIN, TARGET_WINDOW_MIN, SpeedDays, check_split
from entrepot.city.forecast_features import Rows, build_rows
from entrepot.city.forecast_models import MODELS, ModelConfig, candidates, fit_predict, fit_validate

VALIDATION_FRACTION = 0.2
#: With fewer training days a training row has no other day to take its historical average
#: (and analogues) from: they would be its own future target.
MIN_TRAIN_DAYS = 2
#: Fewer training days than this: no validation carve-out, the family's first candidate is used.
MIN_DAYS_TO_SELECT = 3


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

    @property
    def gain_vs_last_value(self) -> float:
        return 1.0 - self.mae_model / self.mae_last_value

    def as_dict(self) -> dict[str, float]:
        return {
            "horizon_min": self.horizon_min,
            "mae_model_mps": round(self.mae_model, 4),
            "mae_last_value_mps": round(self.mae_last_value, 4),
            "mae_historical_average_mps": round(self.mae_historical_average, 4),
            "gain_vs_historical_average": round(self.gain_vs_ha, 4),
            "gain_vs_last_value": round(self.gain_vs_last_value, 4),
        }


@dataclass(frozen=True)
class Split:
    """Day indices to train on and to test on."""

    train: tuple[int, ...]
    test: tuple[int, ...]

    def fit_and_validation(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The training days cut into fit days and the last ones for validation; too few
        training days to select on (``MIN_DAYS_TO_SELECT``): all fit, none validates."""
        if len(self.train) < MIN_DAYS_TO_SELECT:
            return self.train, ()
        n_val = max(1, round(VALIDATION_FRACTION * len(self.train)))
        return self.train[:-n_val], self.train[-n_val:]


def split_days(n_days: int, n_splits: int, *, rolling: bool = False) -> list[Split]:
    """``n_splits`` contiguous blocks of test days. Blocked folds (default): the test blocks
    cover all days and each split trains on every other day (the days are independent draws).
    Rolling origin: the test blocks are the last days, each split trains on the days before."""
    if n_splits < 1:
        raise InvalidSeries(f"need at least one split, got {n_splits}")
    block = n_days // (n_splits + 1) if rolling else n_days // n_splits
    if block < 1:
        raise InvalidSeries(f"{n_days} days cannot make {n_splits} splits")
    splits = []
    for k in range(n_splits):
        if rolling:
            start = n_days - (n_splits - k) * block
            train = tuple(range(start))
        else:
            start = k * block
            train = tuple(d for d in range(n_days) if not start <= d < start + block)
        test_end = n_days if not rolling and k == n_splits - 1 else start + block
        test = tuple(range(start, test_end))
        splits.append(Split(tuple(d for d in train if d not in test), test))
    return splits


@dataclass(frozen=True)
class Selection:
    """The configuration chosen at one horizon and every candidate's validation MAE; for the
    ``ensemble`` family, ``members`` holds every candidate (with its rounds), averaged."""

    horizon_min: int
    config: ModelConfig
    validation_mae: dict[str, float]
    members: tuple[ModelConfig, ...] = ()

    def label(self) -> str:
        if self.members:
            return "mean of " + " + ".join(m.label() for m in self.members)
        return self.config.label()

    def predict(self, train: Rows, test: Rows, seed: int = 0) -> np.ndarray:
        if not self.members:
            return fit_predict(self.config, train, test, seed)
        return np.asarray(
            np.mean([fit_predict(m, train, test, seed) for m in self.members], axis=0)
        )

    def as_json(self) -> dict[str, Any]:
        out = {
            "horizon_min": self.horizon_min,
            "chosen": self.label(),
            "config": self.config.as_json(),
            "validation_mae_mps": {k: round(v, 4) for k, v in self.validation_mae.items()},
        }
        if self.members:
            out["members"] = [m.as_json() for m in self.members]
        return out


def select_config(
    train_days: SpeedDays, horizon: int, window: int, family: str, seed: int = 0
) -> Selection:
    """Choose a configuration on validation days carved from ``train_days`` (the training
    days' data only: no test day can reach this function)."""
    options = candidates(family)
    n = train_days.speeds.shape[0]
    if n < MIN_DAYS_TO_SELECT:
        return Selection(horizon, options[0], {})
    fit, val = Split(tuple(range(n)), ()).fit_and_validation()
    fit_rows = build_rows(train_days, fit, fit, horizon, window)
    val_rows = build_rows(train_days, fit, val, horizon, window)
    scored = [fit_validate(cfg, fit_rows, val_rows, seed) for cfg in options]
    best = min(range(len(scored)), key=lambda i: scored[i][1])
    maes = {cfg.label(): mae for cfg, mae in scored}
    members = tuple(cfg for cfg, _ in scored) if family == "ensemble" else ()
    return Selection(horizon, scored[best][0], maes, members)


def score_rows(
    pred: np.ndarray, y: np.ndarray, last: np.ndarray, ha: np.ndarray, h: int
) -> HorizonScore:
    return HorizonScore(
        h,
        float(np.abs(pred - y).mean()),
        float(np.abs(last - y).mean()),
        float(np.abs(ha - y).mean()),
    )


@dataclass(frozen=True)
class SplitResult:
    split: Split
    scores: tuple[HorizonScore, ...]
    selections: tuple[Selection, ...]

    def as_json(self) -> dict[str, Any]:
        _fit, val = self.split.fit_and_validation()
        return {
            "train_days": list(self.split.train),
            "validation_days": list(val),
            "test_days": list(self.split.test),
            "horizons": [s.as_dict() for s in self.scores],
            "selection": [s.as_json() for s in self.selections],
        }


def evaluate_split(
    days: SpeedDays,
    split: Split,
    horizons_min: Sequence[int] = HORIZONS_MIN,
    *,
    target_window_min: int = TARGET_WINDOW_MIN,
    model: str = "ridge",
    seed: int = 0,
    on_step: Callable[[], None] | None = None,
) -> SplitResult:
    """Select on validation days, refit on the training days, score once on the test days."""
    if model not in MODELS:
        raise InvalidSeries(f"unknown forecast model {model!r}; use {', '.join(MODELS)}")
    if target_window_min < 1:
        raise InvalidSeries(f"target window must be at least one minute, got {target_window_min}")
    if not split.train or not split.test or set(split.train) & set(split.test):
        raise InvalidSeries("need at least one training and one test day, disjoint")
    if len(split.train) < MIN_TRAIN_DAYS:
        raise InvalidSeries(
            f"need at least two training days, got {len(split.train)}: a training row's "
            "historical average comes from the other training days"
        )
    for h in horizons_min:
        check_split(days, 1, h, target_window_min)
    train_only = days.take(split.train)
    scores, selections = [], []
    for h in horizons_min:
        chosen = select_config(train_only, h, target_window_min, model, seed)
        train = build_rows(days, split.train, split.train, h, target_window_min)
        test = build_rows(days, split.train, split.test, h, target_window_min)
        pred = chosen.predict(train, test, seed)
        scores.append(score_rows(pred, test.y, test.last, test.ha, h))
        selections.append(chosen)
        if on_step is not None:
            on_step()
    return SplitResult(split, tuple(scores), tuple(selections))


def evaluate_forecast(
    days: SpeedDays,
    train_days: int,
    horizons_min: tuple[int, ...] = HORIZONS_MIN,
    *,
    target_window_min: int = TARGET_WINDOW_MIN,
    model: str = "ridge",
    seed: int = 0,
) -> list[HorizonScore]:
    """Train on the first ``train_days`` days, test on the rest (one split)."""
    n_days = days.speeds.shape[0]
    for h in horizons_min:
        check_split(days, train_days, h, target_window_min)
    if train_days < MIN_TRAIN_DAYS:
        raise InvalidSeries(
            f"need at least two training days, got {train_days}: a training row's "
            "historical average comes from the other training days"
        )
    split = Split(tuple(range(train_days)), tuple(range(train_days, n_days)))
    result = evaluate_split(
        days, split, horizons_min, target_window_min=target_window_min, model=model, seed=seed
    )
    return list(result.scores)


@dataclass(frozen=True)
class HorizonSummary:
    """One horizon over several splits: mean MAEs, and the mean, min and max gain vs HA."""

    horizon_min: int
    mae_model: float
    mae_last_value: float
    mae_historical_average: float
    gains_vs_ha: tuple[float, ...]
    gains_vs_last_value: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        g = np.array(self.gains_vs_ha)
        return {
            "horizon_min": self.horizon_min,
            "mean_mae_model_mps": round(self.mae_model, 4),
            "mean_mae_last_value_mps": round(self.mae_last_value, 4),
            "mean_mae_historical_average_mps": round(self.mae_historical_average, 4),
            "gain_vs_historical_average": {
                "mean": round(float(g.mean()), 4),
                "min": round(float(g.min()), 4),
                "max": round(float(g.max()), 4),
            },
            "mean_gain_vs_last_value": round(float(np.mean(self.gains_vs_last_value)), 4),
        }


def summarise(results: Sequence[SplitResult]) -> tuple[HorizonSummary, ...]:
    out = []
    for i, first in enumerate(results[0].scores):
        per = [r.scores[i] for r in results]
        out.append(
            HorizonSummary(
                first.horizon_min,
                float(np.mean([s.mae_model for s in per])),
                float(np.mean([s.mae_last_value for s in per])),
                float(np.mean([s.mae_historical_average for s in per])),
                tuple(s.gain_vs_ha for s in per),
                tuple(s.gain_vs_last_value for s in per),
            )
        )
    return tuple(out)
