"""The risk benchmark: credit scoring cross-validation, sanctions screening recall, false
positives and speed against a plain Jaro-Winkler-over-every-name baseline in the same run, and
fraud screening when its module is present. ``entrepot bench risk`` and ``bench/risk.py``
print what :func:`run_risk_bench` returns."""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from entrepot.config import shared_data_dir
from entrepot.risk import credit
from entrepot.risk.sanctions import Screener
from entrepot.risk.sanctions_eval import (
    arabic_script_cases,
    build_cases,
    evaluate,
    evaluate_arabic_script,
    evaluate_arabic_script_baseline,
    evaluate_baseline,
    evaluate_nasab,
    nasab_cases,
)

TARGETS = {"scorecard_auc_min": 0.78, "sanctions_recall_min": 0.95, "sanctions_fpr_max": 0.02}


def credit_bench(path: Path, seed: int) -> dict[str, Any]:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as models:
        report = credit.train_credit(path, "creditability", "bad", seed=seed, model_dir=models)
    doc = report.to_dict()
    return {
        "data": str(path),
        "rows": report.rows,
        "scorecard": report.scorecard,
        "gbm": report.gbm,
        "cost_of_exclusion": report.cost_of_exclusion,
        "protected_excluded": report.protected_excluded,
        "decision_policy": report.decision_policy,
        "seconds": round(time.perf_counter() - start, 1),
        "meets_target": report.scorecard["auc"] >= TARGETS["scorecard_auc_min"],
        "calibration_scorecard": doc["calibration"]["scorecard"],
    }


def sanctions_bench(directory: Path, listed: int, unlisted: int, seed: int) -> dict[str, Any]:
    start = time.perf_counter()
    screener = Screener.from_directory(directory, remember=0)  # the matching, each time
    build_s = time.perf_counter() - start
    cases = build_cases(screener.index, listed, unlisted, seed)
    ours = evaluate(screener, cases)
    base = evaluate_baseline(screener.index, cases)
    script_cases = arabic_script_cases(screener.index, unlisted, seed)
    return {
        "list_version": screener.index.version,
        "entries": len(screener.index.entries),
        "names_indexed": len(screener.index.names),
        "index_build_s": round(build_s, 2),
        "seed": seed,
        "entrepot": ours,
        "baseline_jaro_winkler": base,
        "meets_target": ours["recall"] >= TARGETS["sanctions_recall_min"]
        and ours["false_positive_rate"] < TARGETS["sanctions_fpr_max"],
        # names written in Arabic or Persian script (sanctions_eval.ARABIC_SCRIPT_LISTED)
        "arabic_script": {
            "entrepot": evaluate_arabic_script(screener, script_cases),
            "baseline_jaro_winkler": evaluate_arabic_script_baseline(screener.index, script_cases),
        },
        # names written with their nasab, "Ayman bin Muhammad bin Rabi al-Zawahiri"
        # (sanctions_eval.nasab_cases): listed found and non-listed flagged, by variant
        "nasab": evaluate_nasab(screener, nasab_cases(screener.index, listed // 5, seed)),
    }


def run_risk_bench(
    *,
    credit_path: Path | None = None,
    sanctions_dir: Path | None = None,
    listed: int = 1000,
    unlisted: int = 1000,
    seed: int = 42,
    skip_credit: bool = False,
    skip_fraud: bool = False,
) -> dict[str, Any]:
    data = shared_data_dir()
    doc: dict[str, Any] = {
        "benchmark": "risk",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.machine(),
        },
        "targets": TARGETS,
    }
    if not skip_credit:
        doc["credit"] = credit_bench(credit_path or data / "credit" / "german_credit.csv", seed)
    doc["sanctions"] = sanctions_bench(sanctions_dir or data / "sanctions", listed, unlisted, seed)
    if not skip_fraud:
        from entrepot.risk.fraud_bench import run_fraud_bench

        doc["fraud"] = run_fraud_bench()
    return doc
