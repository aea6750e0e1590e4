"""Fraud screening benchmark on simulated, seeded payments: train on the earlier days, screen
the later window one payment at a time through the real-time ``FraudScreener`` (labels
delivered with the label delay), and report PR-AUC, precision@k (k = daily review capacity,
averaged per day) and ROC-AUC for rules only, the model only and the combination, plus the
latency of a single screening decision. Prints one JSON object.

    .venv/bin/python bench/fraud.py [--seed 7] [--customers 2000] [--terminals 400] [--days 63]
                                    [--train-end-day 42] [--delay-days 7] [--review-share 0.01]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from entrepot.kernel.clock import FakeClock
from entrepot.risk.decisions import MemorySink
from entrepot.risk.fraud import (
    BLOCK_MODEL_MIN,
    FraudModel,
    FraudScreener,
    payments_from_frame,
    precision_top_k_per_day,
    replay_features,
    train_fraud_model,
)
from entrepot.risk.fraud_sim import DAY_S, SimConfig, sim_day, simulate, time_split

TARGETS = {"decision_p50_ms_max": 1.0, "pr_auc_margin_over_rules_min": 0.15}
BURN_IN_DAYS = 7


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _metrics(y: np.ndarray, score: np.ndarray, days: np.ndarray, k: int) -> dict[str, float]:
    return {
        "pr_auc": round(float(average_precision_score(y, score)), 4),
        "precision_at_k_per_day": round(precision_top_k_per_day(score, y, days, k), 4),
        "roc_auc": round(float(roc_auc_score(y, score)), 4),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = SimConfig(n_customers=args.customers, n_terminals=args.terminals, n_days=args.days,
                    label_delay_days=args.delay_days)  # fmt: skip
    t0 = time.perf_counter()
    frame = simulate(cfg, np.random.default_rng(args.seed))
    t_sim = time.perf_counter() - t0
    split = time_split(frame, train_end_day=args.train_end_day, delay_days=args.delay_days)
    payments = payments_from_frame(frame)
    labels = frame["is_fraud"].to_numpy()
    days = sim_day(frame["at_s"])
    first_test = int(np.flatnonzero(split.test)[0])

    t0 = time.perf_counter()
    feats, state = replay_features(payments[:first_test], labels[:first_test].tolist(),
                                   label_delay_days=args.delay_days)  # fmt: skip
    t_replay = time.perf_counter() - t0
    train = split.train[:first_test]
    t0 = time.perf_counter()
    model = train_fraud_model(feats[train], labels[:first_test][train], days[:first_test][train],
                              seed=args.seed, review_share=args.review_share)  # fmt: skip
    t_train = time.perf_counter() - t0

    sink, clock = MemorySink(), FakeClock()
    screener = FraudScreener(model, sink=sink, clock=clock, state=state,
                             label_delay_days=args.delay_days)  # fmt: skip
    # Labels still owed at the switch: those of the last `delay` days before the test window.
    delay_s = args.delay_days * DAY_S
    pending = int(np.searchsorted(frame["at_s"].to_numpy(), payments[first_test].at_s - delay_s,
                                  side="right"))  # fmt: skip
    lat_ns: list[int] = []
    decisions = []
    for i in range(first_test, len(payments)):
        p = payments[i]
        while payments[pending].at_s + delay_s <= p.at_s:
            screener.add_label(payments[pending], bool(labels[pending]))
            pending += 1
        clock.set_ns(p.at_s * 1_000_000_000)
        start = time.perf_counter_ns()
        decisions.append(screener.screen(p))
        lat_ns.append(time.perf_counter_ns() - start)

    y = labels[first_test:]
    test_days = days[first_test:]
    k = model.thresholds.reviews_per_day
    scores = {
        "rules_only": np.array([d.rule_score for d in decisions]),
        "model_only": np.array([d.model_score for d in decisions]),
        "combined": np.array([d.score for d in decisions]),
    }
    outcome = np.array([d.outcome for d in decisions])
    lat = np.array(lat_ns) / 1e6
    alerted = outcome != "approve"
    patterns = frame["pattern"].to_numpy()[first_test:]
    by_pattern = {
        str(pat): {"payments": int((patterns == pat).sum()),
                   "alerted_share": round(float(alerted[patterns == pat].mean()), 3)}
        for pat in sorted(set(patterns) - {""})
    }  # fmt: skip
    return {
        "bench": "fraud",
        "data": "simulated (entrepot.risk.fraud_sim), seeded; not real payments",
        "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "python": sys.version.split()[0]},
        "config": {"seed": args.seed, "customers": args.customers, "terminals": args.terminals,
                   "days": args.days, "label_delay_days": args.delay_days,
                   "train_labelled_days": list(split.train_days),
                   "test_days": list(split.test_days), "review_share": args.review_share},
        "data_sizes": {"payments": len(frame), "fraud_share": round(float(labels.mean()), 4),
                       "train_rows": int(split.train.sum()),
                       "train_frauds": int(labels[split.train].sum()),
                       "test_rows": len(y), "test_frauds": int(y.sum())},
        "model": {"version": model.version, "thresholds": {
            "review": round(model.thresholds.review, 6), "block": round(model.thresholds.block, 6),
            "block_model_min": BLOCK_MODEL_MIN, "reviews_per_day_k": k},
            "rule_precision_train": {n: round(v, 3) for n, v in model.rule_precision.items()}},
        "test_window": {name: _metrics(y, s, test_days, k) for name, s in scores.items()},
        "outcomes": {
            "approve": int((outcome == "approve").sum()),
            "review": int((outcome == "review").sum()),
            "block": int((outcome == "block").sum()),
            "review_precision": round(float(y[outcome == "review"].mean()), 4)
            if (outcome == "review").any() else None,
            "block_precision": round(float(y[outcome == "block"].mean()), 4)
            if (outcome == "block").any() else None,
            "alert_recall": round(float(alerted[y].mean()), 4),
            "by_pattern": by_pattern,
        },
        "latency_ms": {
            "decisions": len(lat), "p50": round(float(np.median(lat)), 4),
            "p99": round(float(np.percentile(lat, 99)), 4), "max": round(float(lat.max()), 3),
            "p50_approve": round(float(np.median(lat[~alerted])), 4),
            "p50_alert": round(float(np.median(lat[alerted])), 4) if alerted.any() else None,
            "note": "in process, one payment per call, feature update + model + rules + "
                    "decision-log append (MemorySink); label delivery not timed",
        },
        "seconds": {"simulate": round(t_sim, 1), "replay_training_period": round(t_replay, 1),
                    "train": round(t_train, 1)},
        "targets": TARGETS,
    }  # fmt: skip


def run_fraud_bench(
    *,
    seed: int = 7,
    customers: int = 2_000,
    terminals: int = 400,
    days: int = 63,
    train_end_day: int = 42,
    delay_days: int = 7,
    review_share: float = 0.01,
) -> dict[str, Any]:
    """The fraud benchmark with keyword arguments (what ``entrepot bench risk`` calls)."""
    return run(
        argparse.Namespace(
            seed=seed,
            customers=customers,
            terminals=terminals,
            days=days,
            train_end_day=train_end_day,
            delay_days=delay_days,
            review_share=review_share,
        )
    )


def train_from_simulator(
    *,
    seed: int = 7,
    customers: int = 2_000,
    terminals: int = 400,
    days: int = 42,
    delay_days: int = 7,
    review_share: float = 0.01,
) -> tuple[FraudModel, dict[str, Any]]:
    """A production fraud model from the seeded simulator: every day whose labels have arrived
    trains it (the benchmark holds a later window out to measure it). Returns the model and
    what it was trained on."""
    cfg = SimConfig(n_customers=customers, n_terminals=terminals, n_days=days,
                    label_delay_days=delay_days)  # fmt: skip
    frame = simulate(cfg, np.random.default_rng(seed))
    day = sim_day(frame["at_s"])
    if days <= BURN_IN_DAYS + delay_days + 7:
        raise ValueError(f"simulate more than {BURN_IN_DAYS + delay_days + 7} days")
    # labelled days after the burn-in (the last ``delay_days`` have no labels yet)
    train = (day >= BURN_IN_DAYS) & (day < days - delay_days)
    payments = payments_from_frame(frame)
    labels = frame["is_fraud"].to_numpy()
    feats, _ = replay_features(payments, labels.tolist(), label_delay_days=delay_days)
    model = train_fraud_model(feats[train], labels[train], day[train], seed=seed,
                              review_share=review_share)  # fmt: skip
    facts = {
        "data": "simulated (entrepot.risk.fraud_sim), seeded; not real payments",
        "seed": seed,
        "days": days,
        "payments": len(frame),
        "train_rows": int(train.sum()),
        "train_frauds": int(labels[train].sum()),
        "currency": cfg.currency,
        "version": model.version,
        "thresholds": {"review": model.thresholds.review, "block": model.thresholds.block},
    }
    return model, facts
