"""Forecast models and their candidate configurations.

Every model learns the target's deviation from the historical average (HA) and adds it back.
``ridge``: the mean of one ridge regression shared by all links and one per link. ``gbm``:
LightGBM, one model pooled over links with the link as a categorical feature, absolute-error
loss (the score is MAE). ``ensemble``: every gbm candidate, each with its rounds found on the
validation days, averaged (which single candidate wins on validation is itself noisy; the
average is steadier). A configuration fixes the feature set and the hyper-parameters; which
one is used is chosen on validation days (``forecast_eval``), never on test days.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from entrepot.city.errors import InvalidSeries
from entrepot.city.forecast_features import Rows

MODELS = ("ridge", "gbm", "ensemble")
RIDGE_LAMBDA = 1.0
RIDGE_LAMBDA_PER_LINK = 100.0
GBM_MAX_ROUNDS = 800
GBM_EARLY_STOP = 50
GBM_LEARNING_RATE = 0.05


@dataclass(frozen=True)
class ModelConfig:
    """A model family, a feature set and hyper-parameters (``rounds`` for gbm is set on the
    validation days by early stopping)."""

    family: str
    features: str
    params: dict[str, float] = field(default_factory=dict)

    def label(self) -> str:
        extra = ",".join(f"{k}={v:g}" for k, v in sorted(self.params.items()))
        return f"{self.family}[{self.features}{',' + extra if extra else ''}]"

    def as_json(self) -> dict[str, Any]:
        return {"family": self.family, "features": self.features, "params": dict(self.params)}


def candidates(family: str) -> tuple[ModelConfig, ...]:
    """The configurations compared on validation days for one model family."""
    if family == "ridge":
        return tuple(
            ModelConfig("ridge", fs, {"lambda_per_link": lam})
            for fs in ("local", "graph", "full")
            for lam in (RIDGE_LAMBDA_PER_LINK, 10 * RIDGE_LAMBDA_PER_LINK)
        )
    if family in ("gbm", "ensemble"):
        return tuple(
            ModelConfig("gbm", fs, {"num_leaves": leaves, "min_child_samples": 100})
            for fs in ("graph", "full")
            for leaves in (15, 63)
        )
    raise InvalidSeries(f"unknown forecast model {family!r}; use {', '.join(MODELS)}")


def _ridge(x: np.ndarray, y: np.ndarray, xt: np.ndarray, lam: float) -> np.ndarray:
    a = np.column_stack([x, np.ones(len(x))])
    at = np.column_stack([xt, np.ones(len(xt))])
    weights = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ y)
    return np.asarray(at @ weights)


def _fit_ridge(cfg: ModelConfig, train: Rows, test: Rows) -> np.ndarray:
    x, xt = train.columns(cfg.features), test.columns(cfg.features)
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd[sd == 0] = 1.0
    xs, xts = (x - mu) / sd, (xt - mu) / sd
    resid = train.y - train.ha
    shared = _ridge(xs, resid, xts, RIDGE_LAMBDA)
    per_link = np.zeros_like(shared)
    lam = float(cfg.params.get("lambda_per_link", RIDGE_LAMBDA_PER_LINK))
    for link in range(test.n_links):
        rows, rows_t = train.link == link, test.link == link
        if rows.any() and rows_t.any():
            per_link[rows_t] = _ridge(xs[rows], resid[rows], xts[rows_t], lam)
    return np.asarray(test.ha + (shared + per_link) / 2.0)


def _gbm_data(cfg: ModelConfig, rows: Rows) -> np.ndarray:
    return np.column_stack([rows.columns(cfg.features), rows.link])


def _gbm(cfg: ModelConfig, rounds: int, seed: int) -> Any:
    import lightgbm

    return lightgbm.LGBMRegressor(
        objective="l1",
        learning_rate=GBM_LEARNING_RATE,
        n_estimators=rounds,
        num_leaves=int(cfg.params.get("num_leaves", 31)),
        min_child_samples=int(cfg.params.get("min_child_samples", 100)),
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        reg_lambda=1.0,
        random_state=seed,
        n_jobs=1,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )


def fit_predict(cfg: ModelConfig, train: Rows, test: Rows, seed: int = 0) -> np.ndarray:
    """Fit on ``train`` rows, predict the ``test`` rows' target."""
    if cfg.family == "ridge":
        return _fit_ridge(cfg, train, test)
    if cfg.family == "gbm":
        rounds = int(cfg.params.get("rounds", GBM_MAX_ROUNDS))
        model = _gbm(cfg, rounds, seed)
        x = _gbm_data(cfg, train)
        model.fit(x, train.y - train.ha, categorical_feature=[x.shape[1] - 1])
        return np.asarray(test.ha + model.predict(_gbm_data(cfg, test)))
    raise InvalidSeries(f"unknown forecast model {cfg.family!r}; use {', '.join(MODELS)}")


def fit_validate(
    cfg: ModelConfig, fit: Rows, val: Rows, seed: int = 0
) -> tuple[ModelConfig, float]:
    """Fit on ``fit`` rows and score on the validation rows; gbm stops early on them, and the
    returned configuration carries the number of rounds found."""
    if cfg.family != "gbm":
        pred = fit_predict(cfg, fit, val, seed)
        return cfg, float(np.abs(pred - val.y).mean())
    import lightgbm

    model = _gbm(cfg, GBM_MAX_ROUNDS, seed)
    x, xv = _gbm_data(cfg, fit), _gbm_data(cfg, val)
    model.fit(
        x,
        fit.y - fit.ha,
        eval_X=(xv,),
        eval_y=(val.y - val.ha,),
        eval_metric="l1",
        categorical_feature=[x.shape[1] - 1],
        callbacks=[lightgbm.early_stopping(GBM_EARLY_STOP, verbose=False)],
    )
    rounds = max(1, int(model.best_iteration_ or GBM_MAX_ROUNDS))
    pred = val.ha + model.predict(xv, num_iteration=rounds)
    chosen = replace(cfg, params={**cfg.params, "rounds": rounds})
    return chosen, float(np.abs(pred - val.y).mean())
