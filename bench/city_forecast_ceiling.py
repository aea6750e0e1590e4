"""How much of the historical average's error is predictable at all on simulated days.

The days saved by ``entrepot city forecast --save`` carry each day's plan: its demand level, its
peak shift and its incident (links, start, end). No forecaster knows these. This script adds
them to the feature rows as *oracle* columns (the level, the shift, and whether the link's
incident is on during the target window) and scores the same gbm configuration with and
without them on the same blocked folds. The oracle's gain below the historical average is a
practical ceiling for the data: what remains is the +-10 % demand noise per five minutes and
the traffic's own randomness, which nothing observed at t can predict 15 minutes ahead.

.venv/bin/python bench/city_forecast_ceiling.py DAYS.npz [--horizon 15] [--splits 5]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from entrepot.city import forecast_features as ff
from entrepot.city.forecast import TARGET_WINDOW_MIN
from entrepot.city.forecast_eval import split_days
from entrepot.city.forecast_models import ModelConfig, fit_predict, fit_validate
from entrepot.city.services import load_forecast_days

CONFIG = ModelConfig("gbm", "full", {"num_leaves": 63, "min_child_samples": 100})


def _with_oracle(
    rows: ff.Rows,
    day_ids: tuple[int, ...],
    plans: list[dict[str, Any]],
    links: tuple[str, ...],
    h: int,
    n_min: int,
) -> ff.Rows:
    t = ff.forecast_times(n_min, h, TARGET_WINDOW_MIN)
    assert len(t) * len(day_ids) * rows.n_links == len(rows.y)
    extra = np.zeros((len(rows.y), 3))
    block = len(t) * rows.n_links
    mid_s = (t + h + TARGET_WINDOW_MIN / 2) * 60.0
    for i, day in enumerate(day_ids):
        plan = plans[day]
        part = slice(i * block, (i + 1) * block)
        extra[part, 0] = plan["scale"]
        extra[part, 1] = plan["peak_shift_min"]
        on = np.zeros((len(t), rows.n_links))
        if plan["incident_links"]:
            start, end = plan["incident_s"]
            active = (mid_s >= start) & (mid_s < end)
            for link in plan["incident_links"]:
                on[active, links.index(link)] = 1.0
        extra[part, 2] = on.ravel()
    names = (*rows.names, "local:oracle_scale", "local:oracle_shift", "local:oracle_incident")
    return ff.Rows(
        np.column_stack([rows.x, extra]), rows.y, rows.last, rows.ha, rows.link, rows.n_links, names
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("days", type=Path)
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--splits", type=int, default=5)
    args = parser.parse_args()
    days = load_forecast_days(args.days)
    with np.load(args.days) as f:
        if "plans" not in f:
            sys.exit(
                "error: these days carry no plans (save them with entrepot city forecast --save)"
            )
        plans = json.loads(str(f["plans"]))
    h, w = args.horizon, TARGET_WINDOW_MIN
    out: dict[str, list[dict[str, float]]] = {"folds": []}
    for split in split_days(days.speeds.shape[0], args.splits):
        fit, val = split.fit_and_validation()
        fold: dict[str, float] = {"first_test_day": split.test[0]}
        for label, oracle in (("model", False), ("oracle", True)):

            def rows(ref: tuple[int, ...], on: tuple[int, ...], oracle: bool = oracle) -> ff.Rows:
                r = ff.build_rows(days, ref, on, h, w)
                n_min = days.speeds.shape[1]
                return _with_oracle(r, on, plans, days.link_ids, h, n_min) if oracle else r

            chosen, _ = fit_validate(CONFIG, rows(fit, fit), rows(fit, val))
            test = rows(split.train, split.test)
            pred = fit_predict(chosen, rows(split.train, split.train), test)
            mae, ha = float(np.abs(pred - test.y).mean()), float(np.abs(test.ha - test.y).mean())
            fold[f"{label}_gain_vs_ha"] = round(1.0 - mae / ha, 4)
        out["folds"].append(fold)
        print(json.dumps(fold), file=sys.stderr, flush=True)
    result = {
        "benchmark": "city-forecast-ceiling",
        "days": int(days.speeds.shape[0]),
        "horizon_min": h,
        "config": CONFIG.label(),
        "model_gain_vs_ha_mean": round(
            float(np.mean([f["model_gain_vs_ha"] for f in out["folds"]])), 4
        ),
        "oracle_gain_vs_ha_mean": round(
            float(np.mean([f["oracle_gain_vs_ha"] for f in out["folds"]])), 4
        ),
        **out,
    }
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
