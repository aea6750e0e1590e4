"""Credit scoring for any tabular credit data set with a binary target.

Two models are fitted on the same features: a weight-of-evidence scorecard (optbinning's
``BinningProcess`` + logistic regression) that decides, and a gradient-boosting challenger
(LightGBM). Both are calibrated with Platt scaling fitted on inner cross-validation folds
(``CalibratedClassifierCV``), and both are measured by 5-fold stratified cross-validation
(AUC, KS, Brier) with the calibration inside each outer fold.

Protected attributes never enter a model: the declared list plus any column whose name carries
a protected word (sex, gender, age, marital, ...). What excluding them cost is measured by
fitting the scorecard with them too (``cost_of_exclusion``) and reported, never used.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from entrepot.kernel.clock import Clock, SystemClock, ns_to_datetime
from entrepot.risk.decisions import Decision, DecisionSink, make_decision, sha256_text
from entrepot.risk.errors import (
    BadValueUnknown,
    FeaturesMissing,
    MissingTarget,
    TargetNotBinary,
    TargetUnreachable,
    TooLittleData,
    UnknownModel,
    UnreadableData,
)

#: Declared protected attributes of the German credit data (UCI names).
DEFAULT_PROTECTED: tuple[str, ...] = ("personal_status_and_sex", "age_in_years", "foreign_worker")
#: Any column whose name has one of these words (split on non-letters) is protected too.
PROTECTED_NAME_WORDS: tuple[str, ...] = (
    "sex", "gender", "age", "marital", "nationality", "race", "religion", "foreign",
    "ethnicity", "ethnic", "birth", "disability", "disabled", "pregnancy", "pregnant",
    "citizenship", "dob", "marriage", "married",
    # plurals a column may be named with ("ages_band", "races")
    "sexes", "genders", "ages", "nationalities", "races", "religions", "ethnicities",
    "disabilities",
)  # fmt: skip
#: Pairs of words that together name a protected attribute (each alone does not): marital
#: status as OpenML's credit-g (``personal_status``: sex and marital status) and Home Credit
#: (``NAME_FAMILY_STATUS``) name it, which entered the scorecard (found by a review).
PROTECTED_NAME_PAIRS: tuple[tuple[str, str], ...] = (
    ("personal", "status"), ("family", "status"), ("civil", "status"),
)  # fmt: skip
#: Where a column's name changes case (``applicantAge``, ``HTTPStatus``): a word boundary.
_CASE_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
N_SPLITS = 5
CALIBRATION_FOLDS = 3
REASONS_MAX = 4  # Regulation B: more than four reasons are "not likely to be helpful"
CALIBRATION_BINS = 10
#: Score scale: 600 points at 50:1 good:bad odds, 20 points to double the odds.
SCORE_BASE = 600.0
SCORE_BASE_ODDS = 50.0
SCORE_PDO = 20.0
MODEL_FILE = "model.joblib"
CARD_JSON = "model_card.json"
CARD_MD = "model_card.md"
MIN_PER_CLASS = 10
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


# --------------------------------------------------------------------------- preprocessing
class Categorizer(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """Non-numeric columns -> pandas categories fixed at fit; columns renamed f0..fn so that any
    header (brackets, quotes, spaces) is safe for LightGBM. Unseen categories become missing."""

    def __init__(self, categorical: Sequence[str] = ()) -> None:
        self.categorical = categorical

    def fit(self, X: pd.DataFrame, y: Any = None) -> Categorizer:
        self.columns_ = list(X.columns)
        self.categories_ = {c: sorted(X[c].dropna().astype(str).unique()) for c in self.categorical}
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for i, c in enumerate(self.columns_):
            if c in self.categories_:
                values = X[c].astype("object").where(X[c].notna(), None)
                as_text = values.map(lambda v: None if v is None else str(v))
                out[f"f{i}"] = pd.Categorical(as_text, categories=self.categories_[c])
            else:
                out[f"f{i}"] = pd.to_numeric(X[c], errors="coerce").astype(float)
        return pd.DataFrame(out, index=X.index)


def _gbm(seed: int) -> BaseEstimator:
    try:
        from lightgbm import LGBMClassifier
    except ImportError:  # pragma: no cover - LightGBM is pinned; this keeps a fallback honest
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            learning_rate=0.05,
            max_iter=200,
            max_leaf_nodes=8,
            categorical_features="from_dtype",
            random_state=seed,
        )
    return LGBMClassifier(
        n_estimators=250, learning_rate=0.03, num_leaves=8, min_child_samples=20,
        subsample=0.8, subsample_freq=1, colsample_bytree=0.7, reg_lambda=1.0,
        random_state=seed, n_jobs=1, verbose=-1,
    )  # fmt: skip


def _scorecard_pipeline(features: Sequence[str], categorical: Sequence[str]) -> Pipeline:
    from optbinning import BinningProcess

    return Pipeline([
        ("binning", BinningProcess(list(features), categorical_variables=list(categorical))),
        ("logit", LogisticRegression(max_iter=1000)),
    ])  # fmt: skip


def _gbm_pipeline(categorical: Sequence[str], seed: int) -> Pipeline:
    return Pipeline([("categories", Categorizer(list(categorical))), ("gbm", _gbm(seed))])


def _calibrated(estimator: Pipeline, folds: int) -> CalibratedClassifierCV:
    # ensemble=False: one estimator refitted on all training rows (the one whose reasons we
    # read) plus a Platt calibrator fitted on its inner cross-validated predictions.
    return CalibratedClassifierCV(estimator, method="sigmoid", cv=folds, ensemble=False)


# --------------------------------------------------------------------------- data
@dataclass(frozen=True, slots=True)
class CreditData:
    path: Path
    sha256: str
    frame: pd.DataFrame
    target: str
    bad_value: str
    y: np.ndarray


def read_table(path: Path | str) -> tuple[pd.DataFrame, str]:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise UnreadableData(f"cannot read {p}: {exc.strerror or exc}", field="data") from None
    try:
        frame = pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UnreadableData(f"{p} is not a readable CSV file: {exc}", field="data") from None
    if frame.empty or frame.shape[1] < 1:
        raise UnreadableData(f"{p} has no data rows", field="data")
    return frame, hashlib.sha256(raw).hexdigest()


def load_credit_data(path: Path | str, target: str, bad_value: str | None) -> CreditData:
    frame, digest = read_table(path)
    if target not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:12]))
        raise MissingTarget(
            f"{path} has no target column {target!r}; its columns are: {shown}", field="target"
        )
    labels = frame[target]
    if labels.isna().any():
        raise TargetNotBinary(
            f"target column {target!r} has {int(labels.isna().sum())} missing values",
            field="target",
        )
    text = labels.astype(str).str.strip()
    values = sorted(text.unique())
    if len(values) != 2:
        shown = ", ".join(repr(v) for v in values[:6])
        raise TargetNotBinary(
            f"target column {target!r} must have exactly two values, has {len(values)}: {shown}",
            field="target",
        )
    bad = _resolve_bad_value(values, bad_value, target)
    y = (text == bad).to_numpy(dtype=int)
    features = frame.drop(columns=[target])
    return CreditData(Path(path), digest, features, target, bad, y)


def _resolve_bad_value(values: list[str], bad_value: str | None, target: str) -> str:
    if bad_value is not None:
        if str(bad_value).strip() not in values:
            raise BadValueUnknown(
                f"bad value {bad_value!r} is not a value of {target!r} (values: {values})",
                field="bad",
            )
        return str(bad_value).strip()
    lowered = {v.lower(): v for v in values}
    for guess in ("bad", "default", "1", "yes", "true"):
        if guess in lowered:
            return lowered[guess]
    raise BadValueUnknown(
        f"cannot tell which value of {target!r} means bad ({values}); pass --bad", field="bad"
    )


def protected_columns(columns: Sequence[str], declared: Sequence[str]) -> list[str]:
    """Declared names present in the data, plus every column named with a protected word."""
    words = set(PROTECTED_NAME_WORDS)
    out = []
    for column in columns:
        # camelCase split before lowering: "applicantAge" was one word, "applicantage",
        # and age and gender entered the scorecard (found by a review)
        words_of = _CASE_BOUNDARY.sub("_", str(column)).lower()
        tokens = set(re.split(r"[^a-z]+", words_of))
        paired = any(a in tokens and b in tokens for a, b in PROTECTED_NAME_PAIRS)
        if column in declared or tokens & words or paired:
            out.append(str(column))
    return out


def split_features(
    frame: pd.DataFrame, excluded: Sequence[str]
) -> tuple[list[str], list[str], list[str]]:
    """(features, categorical features, other dropped columns: constant or identifier-like)."""
    features, categorical, dropped = [], [], []
    for column in frame.columns:
        if column in excluded:
            continue
        series = frame[column]
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        distinct = series.nunique(dropna=True)
        identifier = not numeric and distinct == len(series)
        if distinct <= 1 or identifier:
            dropped.append(str(column))
            continue
        features.append(str(column))
        if not numeric:
            categorical.append(str(column))
    return features, categorical, dropped


# --------------------------------------------------------------------------- metrics
@dataclass(frozen=True, slots=True)
class Metrics:
    auc: float
    ks: float
    brier: float
    auc_std: float
    folds: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def ks_statistic(y: np.ndarray, p: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.max(tpr - fpr))


def _metrics(y: np.ndarray, oof: np.ndarray, folds: list[np.ndarray]) -> Metrics:
    aucs = [roc_auc_score(y[idx], oof[idx]) for idx in folds]
    kss = [ks_statistic(y[idx], oof[idx]) for idx in folds]
    briers = [brier_score_loss(y[idx], oof[idx]) for idx in folds]
    return Metrics(
        auc=round(float(np.mean(aucs)), 4),
        ks=round(float(np.mean(kss)), 4),
        brier=round(float(np.mean(briers)), 4),
        auc_std=round(float(np.std(aucs)), 4),
        folds=len(folds),
    )


def cross_validate(
    make: Any, X: pd.DataFrame, y: np.ndarray, *, n_splits: int, seed: int, calibrate: bool
) -> tuple[Metrics, np.ndarray]:
    """Out-of-fold PDs; when ``calibrate``, Platt scaling is fitted inside each outer fold."""
    oof = np.zeros(len(y), dtype=float)
    test_folds = []
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(X, y):
        model = make()
        if calibrate:
            model = _calibrated(model, min(CALIBRATION_FOLDS, n_splits))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X.iloc[train_idx], y[train_idx])
            oof[test_idx] = model.predict_proba(X.iloc[test_idx])[:, 1]
        test_folds.append(test_idx)
    return _metrics(y, oof, test_folds), oof


def calibration_table(
    y: np.ndarray, pd_hat: np.ndarray, bins: int = CALIBRATION_BINS
) -> list[dict[str, float | int]]:
    order = np.argsort(pd_hat, kind="stable")
    rows = []
    for chunk in np.array_split(order, bins):
        if len(chunk) == 0:
            continue
        rows.append({
            "rows": len(chunk),
            "pd_min": round(float(pd_hat[chunk].min()), 4),
            "pd_max": round(float(pd_hat[chunk].max()), 4),
            "mean_pd": round(float(pd_hat[chunk].mean()), 4),
            "observed_bad_rate": round(float(y[chunk].mean()), 4),
        })  # fmt: skip
    return rows


def choose_threshold(y: np.ndarray, pd_hat: np.ndarray, target_bad_rate: float) -> dict[str, Any]:
    """The highest PD cut-off whose approved applicants (PD <= cut-off) have a bad rate of at
    most ``target_bad_rate`` on out-of-fold predictions.

    A cut-off approves every applicant with that PD, so only the last of a run of equal PDs
    can end the approved set: stopping inside the run would state an approval rate and bad
    rate that scoring (``pd > cut-off`` declines) does not apply. The cut-off is the PD
    itself, unrounded, for the same reason. Where even the lowest PD's applicants are over
    the target, no cut-off reaches it: ``TargetUnreachable``, rather than a policy that
    approves a group the target refuses.
    """
    order = np.argsort(pd_hat, kind="stable")
    ranked = pd_hat[order]
    bads = np.cumsum(y[order])
    # the last position of each run of equal PDs: where a cut-off can end
    ends = np.nonzero(np.append(ranked[1:] != ranked[:-1], True))[0]
    rates = bads[ends] / (ends + 1)
    ok = np.nonzero(rates <= target_bad_rate)[0]
    if not len(ok):
        raise TargetUnreachable(
            f"no PD cut-off gives approved applicants a bad rate of at most "
            f"{target_bad_rate:.2%}: those with the lowest PD ({float(ranked[0]):.4f}) already "
            f"have {float(rates[0]):.2%}; set a higher target or train on more telling data",
            field="target_bad_rate",
        )
    k = int(ok.max())
    end = int(ends[k])
    return {
        "pd_threshold": float(ranked[end]),
        "target_bad_rate": target_bad_rate,
        "approval_rate": round((end + 1) / len(y), 4),
        "approved_bad_rate": round(float(rates[k]), 4),
    }


# --------------------------------------------------------------------------- training
@dataclass(frozen=True, slots=True)
class TrainingReport:
    model_id: str
    model_dir: str
    data: str
    data_sha256: str
    rows: int
    bad_rate: float
    target: str
    bad_value: str
    features: list[str]
    protected_excluded: list[str]
    other_excluded: list[str]
    scorecard: dict[str, float | int]
    gbm: dict[str, float | int]
    cost_of_exclusion: dict[str, float | None]
    decision_policy: dict[str, Any]
    calibration: dict[str, list[dict[str, float | int]]] = field(default_factory=dict)
    seed: int = 42

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_credit(
    data_path: Path | str,
    target: str,
    bad_value: str | None = None,
    protected: Sequence[str] = DEFAULT_PROTECTED,
    seed: int = 42,
    model_dir: Path | str = Path("var/models"),
    *,
    n_splits: int = N_SPLITS,
    target_bad_rate: float | None = None,
    clock: Clock | None = None,
) -> TrainingReport:
    """Fit, cross-validate, calibrate and save a scorecard and a GBM challenger.

    ``model_dir`` is the parent folder; the model lands in ``model_dir/<model_id>/``.
    """
    data = load_credit_data(data_path, target, bad_value)
    y, frame = data.y, data.frame
    _check_class_counts(y, n_splits)
    excluded = protected_columns(list(frame.columns), protected)
    features, categorical, other = split_features(frame, excluded)
    if not features:
        raise TooLittleData("no usable feature columns are left after exclusions", field="data")
    X = frame[features]

    def scorecard() -> Pipeline:
        return _scorecard_pipeline(features, categorical)

    def gbm() -> Pipeline:
        return _gbm_pipeline(categorical, seed)

    sc_metrics, sc_oof = cross_validate(scorecard, X, y, n_splits=n_splits, seed=seed,
                                        calibrate=True)  # fmt: skip
    gbm_metrics, gbm_oof = cross_validate(gbm, X, y, n_splits=n_splits, seed=seed, calibrate=True)
    cost = _cost_of_exclusion(frame, y, excluded, other, sc_metrics.auc, n_splits, seed)
    bad_rate = float(y.mean())
    policy = choose_threshold(y, sc_oof, target_bad_rate or round(bad_rate / 2, 4))
    policy["decided_by"] = "scorecard"

    final_sc = _fit_final(scorecard(), X, y, n_splits)
    final_gbm = _fit_final(gbm(), X, y, n_splits)
    now_ns = (clock or SystemClock()).now_ns()
    stamp = ns_to_datetime(now_ns).strftime("%Y%m%dT%H%M%S")
    model_id = f"credit-{_slug(data.path.stem)}-{stamp}-{data.sha256[:8]}"
    out_dir = Path(model_dir) / model_id
    report = TrainingReport(
        model_id=model_id,
        model_dir=str(out_dir),
        data=str(data.path),
        data_sha256=data.sha256,
        rows=len(y),
        bad_rate=round(bad_rate, 4),
        target=target,
        bad_value=data.bad_value,
        features=features,
        protected_excluded=excluded,
        other_excluded=other,
        scorecard=sc_metrics.to_dict(),
        gbm=gbm_metrics.to_dict(),
        cost_of_exclusion=cost,
        decision_policy=policy,
        calibration={
            "scorecard": calibration_table(y, sc_oof),
            "gbm": calibration_table(y, gbm_oof),
        },
        seed=seed,
    )
    artefact = {
        "model_id": model_id,
        "features": features,
        "categorical": categorical,
        "scorecard": final_sc,
        "gbm": final_gbm,
        "pd_threshold": policy["pd_threshold"],
        "trained_at": ns_to_datetime(now_ns).isoformat(),
    }
    from entrepot.risk.model_card import write_model

    write_model(out_dir, artefact, report)
    return report


def _check_class_counts(y: np.ndarray, n_splits: int) -> None:
    bads, goods = int(y.sum()), int(len(y) - y.sum())
    need = max(MIN_PER_CLASS, 2 * n_splits)
    if min(bads, goods) < need:
        raise TooLittleData(
            f"need at least {need} rows of each class, have {bads} bad and {goods} good",
            field="data",
        )


def _fit_final(estimator: Pipeline, X: pd.DataFrame, y: np.ndarray, n_splits: int) -> Any:
    model = _calibrated(estimator, min(CALIBRATION_FOLDS, n_splits))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    return model


def _cost_of_exclusion(
    frame: pd.DataFrame,
    y: np.ndarray,
    excluded: list[str],
    other: list[str],
    auc_without: float,
    n_splits: int,
    seed: int,
) -> dict[str, float | None]:
    """Scorecard AUC with the protected columns put back. Platt scaling is monotone, so the
    uncalibrated scorecard's AUC is the calibrated one's: no inner folds needed here."""
    if not excluded:
        return {"scorecard_auc_with": None, "scorecard_auc_without": auc_without, "cost": 0.0}
    features, categorical, _ = split_features(frame, other)
    metrics, _ = cross_validate(
        lambda: _scorecard_pipeline(features, categorical), frame[features], y,
        n_splits=n_splits, seed=seed, calibrate=False,
    )  # fmt: skip
    return {
        "scorecard_auc_with": metrics.auc,
        "scorecard_auc_without": auc_without,
        "cost": round(metrics.auc - auc_without, 4),
    }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "data"


# --------------------------------------------------------------------------- scoring
@dataclass(frozen=True, slots=True)
class CreditScore:
    row: int
    pd: float
    score: int
    decision: str
    reasons: list[str]
    gbm_pd: float
    decision_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_model(model_dir: Path | str, model_id: str) -> dict[str, Any]:
    if not _MODEL_ID.match(model_id):
        raise UnknownModel(f"malformed model id {model_id!r}", field="model")
    path = Path(model_dir) / model_id / MODEL_FILE
    if not path.is_file():
        raise UnknownModel(f"no credit model {model_id!r} under {model_dir}", field="model")
    artefact: dict[str, Any] = joblib.load(path)
    return artefact


def pd_to_score(pd_hat: float) -> int:
    p = min(max(pd_hat, 1e-6), 1 - 1e-6)
    factor = SCORE_PDO / math.log(2)
    return round(SCORE_BASE + factor * (math.log((1 - p) / p) - math.log(SCORE_BASE_ODDS)))


def score_credit(
    model_id: str,
    data_path: Path | str,
    model_dir: Path | str = Path("var/models"),
    *,
    sink: DecisionSink | None = None,
    clock: Clock | None = None,
) -> list[CreditScore]:
    """PD, score, approve/decline and, for each decline, up to four reasons from the scorecard.
    Every decision is appended to ``sink`` when one is given."""
    artefact = load_model(model_dir, model_id)
    frame, _ = read_table(data_path)
    missing = [c for c in artefact["features"] if c not in frame.columns]
    if missing:
        raise FeaturesMissing(
            f"{data_path} lacks model features: {', '.join(missing[:8])}", field="data"
        )
    X = frame[artefact["features"]]
    if "categorical" in artefact:  # which features were learnt as numbers
        _check_numbers(X, artefact["categorical"], data_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pds = artefact["scorecard"].predict_proba(X)[:, 1]
        gbm_pds = artefact["gbm"].predict_proba(X)[:, 1]
    threshold = float(artefact["pd_threshold"])
    declined = np.nonzero(pds > threshold)[0]
    reasons = scorecard_reasons(artefact, X.iloc[declined]) if len(declined) else []
    reason_of = dict(zip(declined.tolist(), reasons, strict=True))
    results = [
        CreditScore(
            row=i, pd=round(float(p), 6), score=pd_to_score(float(p)),
            decision="decline" if p > threshold else "approve",
            reasons=reason_of.get(i, []), gbm_pd=round(float(g), 6),
        )
        for i, (p, g) in enumerate(zip(pds, gbm_pds, strict=True))
    ]  # fmt: skip
    if sink is not None:
        results = _record(results, X, model_id, sink, clock)
    return results


def _check_numbers(X: pd.DataFrame, categorical: Sequence[str], data_path: Path | str) -> None:
    """A feature the model learnt as a number must be one (or empty: missing) in every row;
    text there is a typo to fix, not a value to score (rows numbered from 0, as scored)."""
    for column in X.columns:
        if column in categorical:
            continue
        values = X[column]
        bad = values.notna() & pd.to_numeric(values, errors="coerce").isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise UnreadableData(
                f"{data_path} row {row}: {column} {values.iloc[row]!r} is not a number",
                field="data",
            )


def _record(
    results: list[CreditScore],
    X: pd.DataFrame,
    model_id: str,
    sink: DecisionSink,
    clock: Clock | None,
) -> list[CreditScore]:
    decisions: list[Decision] = []
    out = []
    for result, (_, row) in zip(results, X.iterrows(), strict=True):
        digest = sha256_text(json.dumps([str(v) for v in row.tolist()]))
        decision = make_decision(
            "credit", model_version=model_id, outcome=result.decision, score=result.pd,
            reasons=result.reasons, inputs={"row": result.row, "row_sha256": digest,
                                            "score": result.score},
            clock=clock,
        )  # fmt: skip
        decisions.append(decision)
        out.append(CreditScore(**{**result.to_dict(), "decision_id": decision.decision_id}))
    sink.append(decisions)
    return out


def _final_pipeline(calibrated: CalibratedClassifierCV) -> Pipeline:
    pipeline: Pipeline = calibrated.calibrated_classifiers_[0].estimator
    return pipeline


def scorecard_reasons(artefact: dict[str, Any], X: pd.DataFrame) -> list[list[str]]:
    """For each row, up to four features whose points cost it most against the feature's best
    bin, named with the applicant's bin. Contributions are to the log-odds of bad:
    ``coef * WoE(bin)``; the cost is that minus the smallest such value over the feature's
    populated bins. Features that cost nothing give no reason."""
    pipeline = _final_pipeline(artefact["scorecard"])
    binning = pipeline.named_steps["binning"]
    coefs = pipeline.named_steps["logit"].coef_[0]
    selected = list(binning.get_support(names=True))
    costs = np.zeros((len(X), len(selected)))
    labels: list[list[str]] = []
    for j, name in enumerate(selected):
        optb = binning.get_binned_variable(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optbinning's own pandas deprecation notices
            table = optb.binning_table.build()
        body = table.drop(index="Totals")
        woe = body["WoE"].astype(float).to_numpy(copy=True)
        # the bins, then Special and Missing: the model scores those two (and a category it
        # never saw) at WoE 0, BinningProcess.transform's default, not at their bins' WoE
        woe[len(body) - 2 :] = 0.0
        counts = body["Count"].astype(float).to_numpy()
        points = coefs[j] * woe
        best = points[counts > 0].min()
        # "empirical": a missing value's index is the Missing row (by default it was 0, the
        # first bin: a merchant without sales figures was told its sales were the lowest)
        idx = np.asarray(
            optb.transform(
                X[name].to_numpy(),
                metric="indices",
                metric_special="empirical",
                metric_missing="empirical",
            ),
            dtype=int,
        )
        costs[:, j] = points[idx] - best
        labels.append([f"{name} {_describe_bin(b)}" for b in body["Bin"].tolist()])
        labels[-1] = [labels[-1][k] for k in idx]
    out = []
    for r in range(len(X)):
        order = np.argsort(-costs[r], kind="stable")[:REASONS_MAX]
        out.append([
            f"{labels[j][r]} (costs {costs[r, j]:.2f} log-odds vs best bin)"
            for j in order if costs[r, j] > 1e-9
        ])  # fmt: skip
    return out


def _describe_bin(bin_value: Any) -> str:
    if not isinstance(bin_value, str) and hasattr(bin_value, "__iter__"):
        items = [str(v) for v in bin_value]
        shown = ", ".join(items[:3]) + (f" (+{len(items) - 3} more)" if len(items) > 3 else "")
        return f"is one of [{shown}]"
    text = str(bin_value)
    if text == "Missing":
        return "is missing"
    if text == "Special":
        return "has a special value"
    return f"in {text}"
