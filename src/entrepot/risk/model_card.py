"""Model cards: what a credit model is, what it was trained on, how good it is, and its limits.

Written next to the fitted model as JSON (for machines) and Markdown (for people), as the EU AI
Act asks of high-risk systems: documentation, accuracy, bias testing, intended use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib

if TYPE_CHECKING:
    from entrepot.risk.credit import TrainingReport

INTENDED_USE = (
    "Ranking applications by probability of default to support a lender's decision, with the "
    "reasons for each decline. Decisions about natural persons need human oversight; the "
    "threshold is a policy choice, not a property of the data."
)
LIMITS = (
    "Trained on one historical table: it inherits that table's selection (only applicants who "
    "were granted credit have outcomes) and period; re-validate before use on another population.",
    "Protected attributes are excluded as inputs, but correlated features can still act as "
    "proxies; measure outcomes by group before deployment.",
    "PDs are calibrated by Platt scaling on cross-validated predictions; calibration drifts when "
    "the bad rate changes.",
    "Reasons come from the scorecard (WoE points vs each feature's best bin); the GBM is a "
    "challenger whose PD is reported but does not decide.",
)


def card(report: TrainingReport) -> dict[str, Any]:
    doc = report.to_dict()
    doc["intended_use"] = INTENDED_USE
    doc["limits"] = list(LIMITS)
    return doc


def write_model(out_dir: Path, artefact: dict[str, Any], report: TrainingReport) -> None:
    """Model, card JSON and card Markdown; written to a temporary folder, then renamed, so a
    model directory is either complete or absent."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    from entrepot.risk.credit import CARD_JSON, CARD_MD, MODEL_FILE

    joblib.dump(artefact, tmp / MODEL_FILE)
    doc = card(report)
    (tmp / CARD_JSON).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    (tmp / CARD_MD).write_text(markdown(doc), encoding="utf-8")
    tmp.rename(out_dir)


def _metrics_row(name: str, m: dict[str, Any]) -> str:
    return f"| {name} | {m['auc']:.4f} ± {m['auc_std']:.4f} | {m['ks']:.4f} | {m['brier']:.4f} |"


def markdown(doc: dict[str, Any]) -> str:
    cost = doc["cost_of_exclusion"]
    policy = doc["decision_policy"]
    lines = [
        f"# Model card: {doc['model_id']}",
        "",
        f"- Data: `{doc['data']}` (sha256 `{doc['data_sha256']}`)",
        f"- Rows: {doc['rows']}; bad rate {doc['bad_rate']:.2%} "
        f"(target `{doc['target']}`, bad = `{doc['bad_value']}`); seed {doc['seed']}",
        f"- Features used ({len(doc['features'])}): {', '.join(doc['features'])}",
        f"- Protected attributes excluded: {', '.join(doc['protected_excluded']) or 'none'}",
        f"- Other columns dropped (constant or identifier): "
        f"{', '.join(doc['other_excluded']) or 'none'}",
        f"- Cost of excluding protected attributes: scorecard AUC "
        f"{cost['scorecard_auc_with']} with them, {cost['scorecard_auc_without']} without",
        "",
        f"## Cross-validated metrics ({doc['scorecard']['folds']}-fold stratified, calibrated "
        "inside each fold)",
        "",
        "| model | AUC | KS | Brier |",
        "|---|---|---|---|",
        _metrics_row("scorecard (decides)", doc["scorecard"]),
        _metrics_row("gbm (challenger)", doc["gbm"]),
        "",
        "## Decision policy",
        "",
        f"Decline when PD > {policy['pd_threshold']} (chosen on out-of-fold PDs so that approved "
        f"applicants have a bad rate of at most {policy['target_bad_rate']:.2%}: approval rate "
        f"{policy['approval_rate']:.2%}, approved bad rate {policy['approved_bad_rate']:.2%}).",
        "",
        "## Calibration (scorecard, out-of-fold, deciles of PD)",
        "",
        "| rows | PD range | mean PD | observed bad rate |",
        "|---|---|---|---|",
    ]
    for row in doc["calibration"]["scorecard"]:
        lines.append(
            f"| {row['rows']} | {row['pd_min']:.3f}–{row['pd_max']:.3f} | {row['mean_pd']:.3f} "
            f"| {row['observed_bad_rate']:.3f} |"
        )
    lines += ["", "## Intended use", "", doc["intended_use"], "", "## Limits", ""]
    lines += [f"- {limit}" for limit in doc["limits"]]
    return "\n".join(lines) + "\n"
