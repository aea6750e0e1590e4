"""``entrepot risk lending``: the lending use cases through the CLI against a temporary
ENTREPOT_HOME (embedded SQLite), with --json and the error exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from entrepot.entrypoints.cli.lending import app
from entrepot.risk.decisions import JsonlSink

runner = CliRunner()

POLICY = {
    "currency": "RWF",
    "min_tenure_days": 90,
    "min_avg_monthly_sales_minor": 100_000,
    "max_refund_rate": "0.05",
    "max_dispute_rate": "0.02",
    "min_regularity": "0.5",
    "limit_multiple": "1.5",
    "limit_min_minor": 50_000,
    "limit_max_minor": 2_000_000,
    "fee_bps": 300,
    "term_days": 90,
    "repayment_share_bps": 1_000,
}
HISTORY = {
    "merchant_id": "m-kigali-1",
    "country": "RW",
    "currency": "RWF",
    "tenure_days": 400,
    "monthly_sales_minor": [300_000, 320_000, 310_000, 330_000, 350_000, 360_000],
    "order_count": 500,
    "refund_count": 10,
    "refund_minor": 50_000,
    "dispute_count": 4,
    "disputes_lost": 1,
    "settlement_weeks": 40,
    "observed_weeks": 50,
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ENTREPOT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ENTREPOT_DATABASE_URL", raising=False)
    monkeypatch.setenv("ENTREPOT_SCREENING", "off")
    return tmp_path / "home"


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def ok(*argv: str) -> Any:
    result = runner.invoke(app, [*argv, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_offer_accept_repay_and_review_through_the_cli(home: Path, tmp_path: Path) -> None:
    policy = write(tmp_path / "policy.json", POLICY)
    stored = ok("policy-set", "--as", "bank-rw", "--file", str(policy))
    assert (stored["version"], stored["lender_id"], stored["fee_bps"]) == (1, "bank-rw", 300)
    assert ok("policy-show", "bank-rw", "RWF")["version"] == 1
    good = write(tmp_path / "good.json", HISTORY)
    offer = ok("offer", "o-1", "--as", "m-kigali-1", "--lender", "bank-rw", "--history", str(good))
    assert (offer["outcome"], offer["principal_minor"], offer["fee_minor"]) == (
        "offer",
        492_499,
        14_775,
    )
    assert offer["history"]["monthly_sales_minor"] == HISTORY["monthly_sales_minor"]
    loan = ok("accept", "o-1", "--as", "m-kigali-1", "--amount", "200000")
    assert (loan["principal_minor"], loan["fee_minor"], loan["state"]) == (
        200_000,
        6_000,
        "current",
    )
    withheld = ok("withhold", "m-kigali-1", "RWF", "100009", "--reference", "pay-1")
    assert (withheld["withheld_minor"], withheld["loans"]) == (10_000, {"o-1": 10_000})
    repaid = ok("repay", "o-1", "6000", "--reference", "cash-1", "--as", "bank-rw")
    assert (repaid["repaid_minor"], repaid["outstanding_minor"]) == (16_000, 190_000)
    detail = ok("loan", "o-1", "--as", "bank-rw")
    assert [e["to_state"] for e in detail["events"]] == ["current"]
    assert [(p["reference"], p["amount_minor"]) for p in detail["repayments"]] == [
        ("pay-1", 10_000),
        ("cash-1", 6_000),
    ]
    assert [x["loan_id"] for x in ok("loans", "--as", "m-kigali-1")] == ["o-1"]
    assert ok("loans", "--as", "m-other") == []
    book = ok("book", "RWF", "--as", "bank-rw")
    assert (book["outstanding_minor"], book["reconciled"]) == (190_000, True)
    counts = ok("process-deadlines")
    assert counts["offers_expired"] == 0 and counts["loans_late"] == 0

    poor = write(tmp_path / "poor.json", {**HISTORY, "merchant_id": "m-2", "tenure_days": 30})
    declined = ok("offer", "o-2", "--as", "m-2", "--lender", "bank-rw", "--history", str(poor))
    assert declined["outcome"] == "decline"
    assert [r["rule"] for r in declined["reasons"]] == ["min_tenure_days"]
    filed = ok("contest", "o-2", "--as", "m-2", "--statement", "I traded elsewhere for years.")
    assert filed["status"] == "open"
    assert [c["offer_id"] for c in ok("contests", "--as", "bank-rw", "--status", "open")] == ["o-2"]
    done = ok(
        "review",
        "o-2",
        "--as",
        "bank-rw",
        "--reviewer",
        "officer-1",
        "--outcome",
        "overturned",
        "--reason",
        "bank statements show 5 years",
        "--amount",
        "80000",
    )
    assert (done["status"], done["new_offer_id"], done["new_principal_minor"]) == (
        "overturned",
        "o-2-review",
        80_000,
    )
    assert ok("show", "o-2-review", "--as", "m-2")["principal_minor"] == 80_000
    logged = list(JsonlSink(home / "decisions"))
    assert [(d.kind, d.outcome) for d in logged] == [
        ("credit", "offer"),
        ("credit", "decline"),
        ("credit", "overturned"),
    ]
    assert logged[0].decision_id == offer["log_id"]


def test_tables_without_json(home: Path, tmp_path: Path) -> None:
    policy = write(tmp_path / "policy.json", {**POLICY, "lender_id": "bank-rw"})
    shown = runner.invoke(app, ["policy-set", "--as", "bank-rw", "--file", str(policy)])
    assert shown.exit_code == 0, shown.output
    assert "lending-policy:bank-rw:RWF:v1" in shown.stdout and "limit_max_minor" in shown.stdout
    good = write(tmp_path / "good.json", HISTORY)
    argv = ["offer", "o-1", "--as", "m-kigali-1", "--lender", "bank-rw", "--history", str(good)]
    result = runner.invoke(app, argv, env={"COLUMNS": "200"})  # no wrapping in the table
    assert result.exit_code == 0, result.output
    assert "offer o-1 (open) by bank-rw for m-kigali-1" in result.stdout
    assert "principal 492499 RWF, fee 14775 RWF, term 90 days" in result.stdout
    assert "1.5 x average monthly sales 328333 RWF" in result.stdout


def test_bad_input_exits_2_and_refusals_exit_1(home: Path, tmp_path: Path) -> None:
    policy = write(tmp_path / "policy.json", {**POLICY, "max_refund_rate": 0.05})
    result = runner.invoke(app, ["policy-set", "--as", "bank-rw", "--file", str(policy)])
    assert result.exit_code == 2
    assert "lending_invalid_policy: max_refund_rate must be decimal text" in result.stderr
    result = runner.invoke(app, ["policy-set", "--as", "bank-rw", "--file", str(tmp_path / "no")])
    assert result.exit_code == 2 and "cannot read policy file" in result.stderr
    ok("policy-set", "--as", "bank-rw", "--file", str(write(tmp_path / "p.json", POLICY)))
    bad = write(tmp_path / "bad.json", {**HISTORY, "refund_count": 501})
    argv = ["offer", "o-1", "--as", "m-kigali-1", "--lender", "bank-rw", "--history", str(bad)]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert "lending_invalid_history: refund_count (501) exceeds order_count (500)" in result.stderr
    result = runner.invoke(app, ["accept", "o-9", "--as", "m-kigali-1"])
    assert result.exit_code == 1 and "lending_offer_not_found" in result.stderr
    good = write(tmp_path / "good.json", HISTORY)
    ok("offer", "o-1", "--as", "m-kigali-1", "--lender", "bank-rw", "--history", str(good))
    result = runner.invoke(app, ["accept", "o-1", "--as", "m-kigali-1", "--amount", "12.5"])
    assert result.exit_code == 2 and "RWF allows at most 0 fractional digits" in result.stderr
    result = runner.invoke(
        app,
        [
            "review",
            "o-1",
            "--as",
            "bank-rw",
            "--reviewer",
            "p-1",
            "--outcome",
            "upheld",
            "--reason",
            "x",
        ],
    )
    assert result.exit_code == 1 and "lending_contest_not_found" in result.stderr
    assert ok("loans", "--as", "m-kigali-1") == []  # nothing was disbursed
