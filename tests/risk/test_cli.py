from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from entrepot.entrypoints.cli.risk import app

from .conftest import SANCTIONS

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ENTREPOT_HOME", str(tmp_path))
    return tmp_path


def test_train_and_score_credit_json(home: Path, synthetic_csv: Path) -> None:
    argv = ["train-credit", "--data", str(synthetic_csv), "--target", "defaulted", "--bad", "yes"]
    result = runner.invoke(app, [*argv, "--folds", "2", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {"scorecard", "gbm", "model_id", "protected_excluded", "cost_of_exclusion"} <= set(doc)
    assert set(doc["scorecard"]) >= {"auc", "ks", "brier"}
    assert (home / "models" / doc["model_id"] / "model.joblib").is_file()
    scored = runner.invoke(app, ["score-credit", "--model", doc["model_id"], "--data",
                                 str(synthetic_csv), "--json"])  # fmt: skip
    assert scored.exit_code == 0, scored.output
    rows = json.loads(scored.stdout)["rows"]
    assert len(rows) == 600 and all(len(r["reasons"]) <= 4 for r in rows)
    declined = next(r for r in rows if r["decision"] == "decline")
    explained = runner.invoke(app, ["explain", "--id", declined["decision_id"]])
    assert explained.exit_code == 0 and "decline" in explained.stdout


def test_bad_credit_input_exits_2(home: Path, synthetic_csv: Path) -> None:
    result = runner.invoke(app, ["train-credit", "--data", str(synthetic_csv), "--target", "nope"])
    assert result.exit_code == 2
    assert "risk_missing_target" in result.stderr
    result = runner.invoke(app, ["score-credit", "--model", "credit-none", "--data",
                                 str(synthetic_csv)])  # fmt: skip
    assert result.exit_code == 2 and "risk_unknown_model" in result.stderr


@pytest.mark.skipif(not (SANCTIONS / "ofac_sdn.csv").is_file(), reason="no OFAC snapshot")
def test_screen_one_and_file(home: Path, tmp_path: Path) -> None:
    lists = ["--lists", str(SANCTIONS)]
    one = runner.invoke(app, ["screen", "--name", "Naser Maleki", "--dob", "1960-05-01",
                              "--json", *lists])  # fmt: skip
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout)["decision"] == "match"
    parties = tmp_path / "parties.csv"
    parties.write_text("name,dob,country\nNaser Maleki,,\nJennifer Walker,1980-01-02,GB\n"
                       "Naser Maleki,1975-01-01,\n")  # fmt: skip
    many = runner.invoke(app, ["screen", "--file", str(parties), "--json", *lists])
    assert many.exit_code == 0, many.output
    lines = [json.loads(line) for line in many.stdout.splitlines()]
    assert [line["decision"] for line in lines] == ["review", "clear", "review"]
    assert lines[0]["best"]["ent_num"] == 10609
    # a file's lines are the object one screening prints
    assert lines[0].keys() == json.loads(one.stdout).keys()
    assert lines[0]["query"] == "Naser Maleki"
    empty = runner.invoke(app, ["screen", "--name", " ", "--json", *lists])
    assert empty.exit_code == 2 and "risk_empty_name" in empty.stderr


def test_the_cli_default_folds_are_the_pipelines() -> None:
    """The CLI hard-codes its --folds default to avoid importing the risk stack at start-up."""
    import inspect

    from entrepot.entrypoints.cli import risk as risk_cli
    from entrepot.risk import credit

    default = inspect.signature(risk_cli.train_credit).parameters["folds"].default
    assert default == credit.N_SPLITS


def test_train_fraud_saves_a_model_the_app_loads(home: Path) -> None:
    from entrepot.risk.fraud import load_fraud_model

    argv = ["train-fraud", "--days", "28", "--customers", "500", "--terminals", "100", "--json"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["days"] == 28 and doc["train_frauds"] > 0 and doc["currency"] == "EUR"
    model = load_fraud_model(doc["path"])
    assert model.version == doc["version"] and Path(doc["path"]).parent == home / "models"
    too_short = runner.invoke(app, ["train-fraud", "--days", "5"])
    assert too_short.exit_code != 0


@pytest.mark.skipif(not (SANCTIONS / "ofac_sdn.csv").is_file(), reason="no OFAC snapshot")
def test_screen_reads_the_lists_in_entrepot_sanctions_dir(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --lists, `risk screen` uses ENTREPOT_SANCTIONS_DIR, as payee screening and the
    API do (the README's configuration), not only $ENTREPOT_HOME/sanctions and the shared
    data: it once said "no watch list found" with the lists where the variable named them."""
    lists = tmp_path / "my-lists"
    lists.mkdir()
    for name in ("ofac_sdn.csv", "ofac_alt.csv", "ofac_add.csv"):
        (lists / name).write_bytes((SANCTIONS / name).read_bytes())
    monkeypatch.setenv("ENTREPOT_SANCTIONS_DIR", str(lists))
    monkeypatch.setenv("ENTREPOT_DATA_DIR", str(tmp_path / "no-shared-data"))
    one = runner.invoke(app, ["screen", "--name", "Naser Maleki", "--json"])
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout)["best"]["ent_num"] == 10609
    # and a variable naming a folder without the lists is refused, naming it, with no fallback
    monkeypatch.setenv("ENTREPOT_SANCTIONS_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("ENTREPOT_DATA_DIR")
    missing = runner.invoke(app, ["screen", "--name", "Naser Maleki", "--json"])
    assert missing.exit_code == 2
    assert str(tmp_path / "empty") in missing.stderr


def test_explain_prints_a_reason_with_brackets_as_it_was_logged(home: Path) -> None:
    """A scorecard names a categorical bin as ``is one of [repairs, car (new)]``; the console
    must print it as text, not read ``[...]`` as Rich markup and drop the applicant's bin."""
    from entrepot.risk.decisions import JsonlSink, make_decision

    reason = "purpose is one of [repairs, car (new)] (costs 1.06 log-odds vs best bin)"
    decision = make_decision(
        "credit",
        model_version="credit-x",
        outcome="decline",
        score=0.715,
        reasons=[reason, "status is one of [... < 0 DM] (costs 1.61 log-odds vs best bin)"],
        inputs={"row": 4},
    )
    JsonlSink(home / "decisions").append([decision])
    explained = runner.invoke(app, ["explain", "--id", decision.decision_id])
    assert explained.exit_code == 0, explained.output
    text = " ".join(explained.stdout.split())  # the console may wrap long lines
    assert f"1. {reason}" in text
    assert "2. status is one of [... < 0 DM] (costs 1.61" in text


def test_verify_log_prints_the_head_and_catches_a_rewrite(home: Path) -> None:
    from entrepot.risk.decisions import JsonlSink, make_decision

    sink = JsonlSink(home / "decisions")
    for n in range(3):
        sink.append([make_decision("sanctions", model_version="v", outcome="clear", score=0.0,
                                   reasons=[], inputs={"n": n})])  # fmt: skip
    first = runner.invoke(app, ["verify-log"])
    assert first.exit_code == 0, first.output
    head = str(sink.head())
    assert "intact; 3 lines, head " + head in first.stdout  # on one line, to copy
    checked = runner.invoke(app, ["verify-log", "--anchor", head, "--json"])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout) == {
        "intact": True, "lines": 3, "head": head, "unchained": 0, "torn": [],
        "anchors_checked": 1, "broken_at": None, "problem": None,
    }  # fmt: skip
    text = sink.path.read_text()
    sink.path.write_text(text.replace('"n": 0', '"n": 9', 1))  # a decision rewritten
    broken = runner.invoke(app, ["verify-log", "--anchor", head])
    assert broken.exit_code == 1
    assert "BROKEN at line 2" in broken.stdout
    assert "line 2 names" in broken.stderr and "changed, removed or inserted" in broken.stderr
    as_json = runner.invoke(app, ["verify-log", "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["broken_at"] == 2


def test_verify_log_refuses_a_malformed_anchor(home: Path) -> None:
    result = runner.invoke(app, ["verify-log", "--anchor", "12:abc"])
    assert result.exit_code == 2
    assert "an anchor is OFFSET:HASH" in result.stderr
