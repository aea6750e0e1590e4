from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from entrepot.kernel.clock import FakeClock
from entrepot.kernel.errors import InvalidInput
from entrepot.risk import credit
from entrepot.risk.decisions import MemorySink, explain_decision
from entrepot.risk.errors import (
    BadValueUnknown,
    FeaturesMissing,
    MissingTarget,
    TargetNotBinary,
    TargetUnreachable,
    UnknownModel,
    UnreadableData,
)

from .conftest import GERMAN

Trained = tuple[credit.TrainingReport, Path]


@pytest.fixture(scope="module")
def synthetic_model(synthetic_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    models = tmp_path_factory.mktemp("models")
    report = credit.train_credit(
        synthetic_csv, "defaulted", None, seed=42, model_dir=models, n_splits=3, clock=FakeClock()
    )
    return report, models


def test_synthetic_file_trains_without_protected_or_identifier_columns(
    synthetic_model: Trained,
) -> None:
    report, models = synthetic_model
    assert report.bad_value == "yes"
    assert report.protected_excluded == ["gender", "applicant_age"]
    assert report.other_excluded == ["loan_ref"]
    assert report.features == ["monthly_sales_eur", "tenure_months", "refund_rate", "sector",
                               "region"]  # fmt: skip
    assert report.rows == 600
    assert report.model_id == "credit-merchants-20260101T000000-" + report.data_sha256[:8]
    assert report.scorecard["folds"] == 3
    assert report.scorecard == EXPECTED_SYNTHETIC_SCORECARD
    assert report.cost_of_exclusion["scorecard_auc_without"] == report.scorecard["auc"]
    card = json.loads((models / report.model_id / "model_card.json").read_text())
    assert card["data_sha256"] == report.data_sha256
    assert card["protected_excluded"] == ["gender", "applicant_age"]
    assert len(card["calibration"]["scorecard"]) == 10
    assert "Intended use" in (models / report.model_id / "model_card.md").read_text()


EXPECTED_SYNTHETIC_SCORECARD = {
    "auc": 0.7049, "ks": 0.3453, "brier": 0.2181, "auc_std": 0.0171, "folds": 3,
}  # fmt: skip


def test_scoring_gives_pd_score_decision_and_at_most_four_reasons(
    synthetic_model: Trained, synthetic_csv: Path
) -> None:
    report, models = synthetic_model
    sink = MemorySink()
    results = credit.score_credit(report.model_id, synthetic_csv, models, sink=sink)
    assert len(results) == 600
    declines = [r for r in results if r.decision == "decline"]
    assert declines and len(declines) < 600
    threshold = report.decision_policy["pd_threshold"]
    for r in results:
        assert (r.pd > threshold) == (r.decision == "decline")
        assert len(r.reasons) <= credit.REASONS_MAX
        assert (r.decision == "approve") == (r.reasons == [])
        for reason in r.reasons:
            assert not reason.startswith(("gender", "applicant_age"))
    assert len(sink.decisions) == 600
    first = declines[0]
    text = explain_decision(sink, first.decision_id or "")
    assert "decline" in text and first.reasons[0] in text
    assert "L0" not in json.dumps([d.to_dict() for d in sink.decisions])  # no raw row values


def test_german_credit_excludes_protected_attributes(tmp_path: Path) -> None:
    if not GERMAN.is_file():
        pytest.skip("german_credit.csv is not on this machine")
    report = credit.train_credit(GERMAN, "creditability", "bad", model_dir=tmp_path, n_splits=2)
    assert report.protected_excluded == list(credit.DEFAULT_PROTECTED)
    assert not set(report.features) & set(credit.DEFAULT_PROTECTED)
    assert len(report.features) == 17
    assert report.bad_rate == 0.3
    assert report.scorecard["auc"] == EXPECTED_GERMAN_2FOLD_AUC
    artefact = credit.load_model(tmp_path, report.model_id)
    assert not set(artefact["features"]) & set(credit.DEFAULT_PROTECTED)


EXPECTED_GERMAN_2FOLD_AUC = 0.7887


def test_protected_columns_by_declared_list_and_name_words() -> None:
    columns = ["Gender", "age_band", "page_views", "marital_status", "income", "usage", "x"]
    assert credit.protected_columns(columns, ("x",)) == [
        "Gender", "age_band", "marital_status", "x"
    ]  # fmt: skip
    # found by a review: camelCase names were one lowered word ("applicantage") and age and
    # gender entered the model; words run together in one case stay one word ("usage")
    columns = ["applicantAge", "applicantGender", "dateOfBirth", "ownerEthnicity", "APPLICANTSex",
               "pageViews", "usageCount", "storage", "averageSale", "Disabled", "owner_dob",
               "marriageStatus", "ages_band", "DOB", "dobbin_score", "garages"]  # fmt: skip
    assert credit.protected_columns(columns, ()) == [
        "applicantAge", "applicantGender", "dateOfBirth", "ownerEthnicity", "APPLICANTSex",
        "Disabled", "owner_dob", "marriageStatus", "ages_band", "DOB",
    ]  # fmt: skip


def test_missing_target_column(synthetic_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingTarget, match="no target column 'default_flag'"):
        credit.train_credit(synthetic_csv, "default_flag", model_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_target_not_binary(synthetic_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(TargetNotBinary, match="exactly two values"):
        credit.train_credit(synthetic_csv, "region", model_dir=tmp_path)


def test_bad_value_not_in_target(synthetic_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(BadValueUnknown, match="'bad' is not a value"):
        credit.train_credit(synthetic_csv, "defaulted", "bad", model_dir=tmp_path)


@pytest.mark.parametrize("name", ["nope.csv", "."])
def test_unreadable_file(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnreadableData, match="cannot read"):
        credit.train_credit(tmp_path / name, "y", model_dir=tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UnreadableData, match="not a readable CSV"):
        credit.train_credit(tmp_path / "empty.csv", "y", model_dir=tmp_path)


def test_unknown_model(tmp_path: Path, synthetic_csv: Path) -> None:
    with pytest.raises(UnknownModel, match="no credit model 'credit-x'"):
        credit.score_credit("credit-x", synthetic_csv, tmp_path)
    with pytest.raises(UnknownModel, match="malformed"):
        credit.score_credit("../etc", synthetic_csv, tmp_path)


def test_scoring_a_file_without_model_features(synthetic_model: Trained, tmp_path: Path) -> None:
    report, models = synthetic_model
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(FeaturesMissing, match="monthly_sales_eur"):
        credit.score_credit(report.model_id, tmp_path / "other.csv", models)


def test_a_number_column_holding_text_is_refused_naming_row_and_column(
    synthetic_model: Trained, synthetic_csv: Path, tmp_path: Path
) -> None:
    """A typo in a numeric feature ('abc' for monthly sales) crashed scoring with numpy's
    TypeError and a traceback; it is bad input, named, and nothing is scored or logged."""
    report, models = synthetic_model
    lines = synthetic_csv.read_text().splitlines()
    cells = lines[3].split(",")
    cells[1] = "abc"  # monthly_sales_eur of data row 2 (0-based, as scoring numbers rows)
    lines[3] = ",".join(cells)
    (tmp_path / "typo.csv").write_text("\n".join(lines) + "\n")
    sink = MemorySink()
    with pytest.raises(UnreadableData) as caught:
        credit.score_credit(report.model_id, tmp_path / "typo.csv", models, sink=sink)
    assert caught.value.detail == (
        f"{tmp_path / 'typo.csv'} row 2: monthly_sales_eur 'abc' is not a number"
    )
    assert caught.value.field == "data"
    assert list(sink) == []


def test_a_cut_off_takes_every_applicant_with_its_pd() -> None:
    # Three applicants share PD 0.2, two of them bad. Stopping after the first of them would
    # claim 3 approved at a bad rate of 1/3; scoring approves all PD <= 0.2: 4 at 2/4.
    y = np.array([0, 0, 1, 1, 0])
    pd_hat = np.array([0.1, 0.2, 0.2, 0.2, 0.5])
    policy = credit.choose_threshold(y, pd_hat, 0.34)
    assert policy == {
        "pd_threshold": 0.1, "target_bad_rate": 0.34,
        "approval_rate": 0.2, "approved_bad_rate": 0.0,
    }  # fmt: skip
    # what the policy states is what scoring's rule (decline PD > cut-off) does on the data
    approved = pd_hat <= policy["pd_threshold"]
    assert approved.mean() == policy["approval_rate"]
    assert y[approved].mean() == policy["approved_bad_rate"]
    # a run of equal PDs within the target is approved whole
    worse = np.array([0, 0, 1, 1, 1])
    assert credit.choose_threshold(worse, pd_hat, 0.5)["approval_rate"] == 0.8


def test_the_cut_off_is_the_pd_itself_not_rounded() -> None:
    pd_hat = np.array([0.1234564, 0.1234566, 0.9])
    policy = credit.choose_threshold(np.array([0, 0, 1]), pd_hat, 0.0)
    assert policy["pd_threshold"] == 0.1234566
    assert (pd_hat <= policy["pd_threshold"]).sum() == 2


def test_no_cut_off_reaches_the_target() -> None:
    # the lowest-PD applicants are already half bad: approving them would break the target
    with pytest.raises(TargetUnreachable, match=r"at most 10.00%.*already have 50.00%"):
        credit.choose_threshold(np.array([1, 0, 1]), np.array([0.1, 0.1, 0.3]), 0.1)


def test_errors_are_invalid_input() -> None:
    for cls in (MissingTarget, TargetNotBinary, TargetUnreachable, UnknownModel, UnreadableData):
        assert issubclass(cls, InvalidInput)


def test_marital_status_under_its_usual_column_names_is_protected() -> None:
    """OpenML's credit-g (the German credit data as sklearn fetches it) names sex and marital
    status ``personal_status`` ("male single", "female div/dep/mar"); Home Credit names marital
    status ``NAME_FAMILY_STATUS``: neither holds a protected word, and both entered the
    scorecard as features. ``status`` alone (``checking_status``) stays a feature."""
    columns = ["checking_status", "personal_status", "NAME_FAMILY_STATUS", "civilStatus",
               "savings_status", "family_size"]  # fmt: skip
    assert credit.protected_columns(columns, ()) == [
        "personal_status", "NAME_FAMILY_STATUS", "civilStatus"
    ]  # fmt: skip


def test_a_missing_value_is_named_missing_and_costs_what_the_model_charged(
    synthetic_model: Trained, synthetic_csv: Path
) -> None:
    """A decline's reasons are the model's: a merchant whose sales are missing was told its
    sales were in the lowest bin ("monthly_sales_eur in (-inf, 987.00)") and charged that
    bin's points, while the scorecard had scored the missing value at WoE 0 (found by a
    review). Each reason's cost is what the model's own WoE gave the row, less the best."""
    report, models = synthetic_model
    artefact = credit.load_model(models, report.model_id)
    frame = pd.read_csv(synthetic_csv)
    X = frame[artefact["features"]]
    pipeline = credit._final_pipeline(artefact["scorecard"])
    used = pipeline.named_steps["binning"].transform(X)  # the WoE the model scored
    coefs = pipeline.named_steps["logit"].coef_[0]
    reasons = credit.scorecard_reasons(artefact, X)
    missing = X["monthly_sales_eur"].isna().to_numpy()
    said = [next((t for t in reasons[r] if t.startswith("monthly_sales_eur")), None)
            for r in range(len(X))]  # fmt: skip
    assert any(said[r] for r in np.flatnonzero(missing))
    for r in np.flatnonzero(missing):
        assert said[r] is None or said[r].startswith("monthly_sales_eur is missing"), said[r]
    # two rows' costs differ by exactly what the model's points for them differ
    j = list(used.columns).index("monthly_sales_eur")
    costs = {r: float(said[r].split("costs ")[1].split(" ")[0]) for r in range(len(X)) if said[r]}
    first, *others = costs
    for r in others:
        expected = coefs[j] * (used.iloc[r, j] - used.iloc[first, j])
        assert abs((costs[r] - costs[first]) - expected) < 0.011, (r, said[r], said[first])
