"""The ``entrepot`` command end to end: one happy path and one failure per command, on a fresh
embedded SQLite database under ``ENTREPOT_HOME=tmp_path``. A failure asserts its exit code, its
one-line message on stderr, and that nothing changed."""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from entrepot.entrypoints.cli.ledger_input import ledger_number
from entrepot.entrypoints.cli.main import app
from tests.conftest import BACKENDS, POSTGRES_URL

OK_LINE = "ok: "


def _not_json(constant: str) -> Any:
    raise AssertionError(f"{constant} is not JSON")


class Cli:
    """Runs ``entrepot`` in-process: ``cli("ledger balance 1")``; extra arguments (paths) are
    passed as they are."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {
            "ENTREPOT_HOME": str(home),
            "ENTREPOT_DATABASE_URL": "",
            "ENTREPOT_SQLITE_SYNCHRONOUS": "NORMAL",
            "COLUMNS": "200",
        }
        self.runner = CliRunner()

    def __call__(self, command: str, *extra: str, code: int = 0) -> Result:
        args = [*shlex.split(command), *extra]
        result = self.runner.invoke(app, args, env=self.env, catch_exceptions=False)
        assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, command: str, *extra: str, code: int = 0) -> Any:
        """The command's one JSON document, read as strictly as JSON is written: NaN or
        Infinity (Python's json writes them, JSON parsers refuse them) fail the test."""
        return json.loads(
            self(command, *extra, "--json", code=code).stdout, parse_constant=_not_json
        )

    def error(self, command: str, *extra: str, code: int) -> str:
        """Run a command that must fail; return its one-line message on stderr."""
        result = self(command, *extra, code=code)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        return lines[0]

    def balances(self, account_id: int) -> dict[str, str]:
        balances: dict[str, str] = self.json(f"ledger balance {account_id}")["balances"]
        return balances


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def eur(cli: Cli) -> Cli:
    """EUR accounts 1 (may not go below zero; history) and 2; 100.00 moved from 2 to 1."""
    cli(
        "ledger create-account --currency EUR --code 10 --id 1"
        " --flags debits_must_not_exceed_credits,history"
    )
    cli("ledger create-account --currency EUR --code 20 --id 2")
    cli("ledger transfer --from 2 --to 1 --amount 100.00 --code 1 --id 10")
    return cli


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_version(cli: Cli) -> None:
    assert cli("--version").stdout == "entrepot 0.1.0\n"


def test_ledger_number_is_the_iso_numeric_code() -> None:
    expected = {"EUR": 978, "USD": 840, "CNY": 156, "MYR": 458, "RWF": 646, "ETB": 230}
    assert {code: ledger_number(code) for code in expected} == expected


# ---------------------------------------------------------------------------------- db
def test_db_status_then_upgrade(cli: Cli) -> None:
    before = cli.json("db status")
    assert (before["current"], before["up_to_date"]) == (None, False)
    cli("db status --check", code=1)
    upgraded = cli.json("db upgrade")
    assert (upgraded["previous"], upgraded["revision"]) == (None, before["head"])
    after = cli.json("db status")
    assert (after["current"], after["up_to_date"]) == (before["head"], True)
    assert "already at" in cli("db upgrade").stdout


def test_db_upgrade_refuses_an_unsupported_url(cli: Cli) -> None:
    cli.env["ENTREPOT_DATABASE_URL"] = "mysql://root@localhost/x"
    assert "unsupported database URL" in cli.error("db upgrade", code=2)
    assert list(cli.home.iterdir()) == []


def test_auto_upgrade_off_refuses_an_unmigrated_database_in_one_line(cli: Cli) -> None:
    """ENTREPOT_AUTO_UPGRADE=0 (README) on a database not yet migrated: one line naming the
    command to run, exit 2, not a traceback from the first query (no such table)."""
    cli.env["ENTREPOT_AUTO_UPGRADE"] = "0"
    line = cli.error("ledger ledgers", code=2)
    assert "configuration_error" in line and "entrepot db upgrade" in line
    cli("db upgrade")  # the db commands still run: they are how the operator migrates
    assert cli.json("ledger ledgers") == []


# ---------------------------------------------------------------------------------- ledgers
def test_define_and_list_ledgers(cli: Cli) -> None:
    euro = {"ledger": 978, "currency": "EUR", "name": "Euro"}
    assert cli.json("ledger define --currency EUR") == euro
    cli("ledger define --currency JPY --ledger 7 --name", "Yen book")
    assert cli.json("ledger ledgers") == [
        {"ledger": 7, "currency": "JPY", "name": "Yen book"},
        euro,
    ]
    assert "Yen book" in cli("ledger ledgers").stdout


def test_define_refuses_a_second_currency_on_a_ledger(cli: Cli) -> None:
    cli("ledger define --currency EUR")
    assert "978" in cli.error("ledger define --currency USD --ledger 978", code=2)
    assert "unknown currency" in cli.error("ledger define --currency XYZ", code=2)
    assert [d["currency"] for d in cli.json("ledger ledgers")] == ["EUR"]


# ---------------------------------------------------------------------------------- accounts
def test_create_account_defines_the_currency_ledger(cli: Cli) -> None:
    create = "ledger create-account --currency RWF --code 3 --flags history --user-data-128 42"
    doc = cli.json(f"{create} --id 0x10")
    assert (doc["result"], doc["id"], doc["ledger"]) == ("ok", "16", 646)
    assert (doc["account"]["flags"], doc["account"]["user_data_128"]) == (["history"], "42")
    assert cli.json("ledger ledgers") == [
        {"ledger": 646, "currency": "RWF", "name": "Rwanda Franc"}
    ]
    assert cli(f"{create} --id 16").stdout.startswith("exists: account 16 ")
    generated = cli.json("ledger create-account --currency RWF --code 3")
    assert int(generated["id"]) > 1 << 80  # a new time-ordered id, printed


def test_create_account_failures_change_nothing(eur: Cli) -> None:
    result = eur("ledger create-account --currency EUR --code 10 --id 1", code=1)
    assert result.stdout.startswith("exists_with_different_flags: account 1 ")
    assert "exists_with_different_flags" in result.stderr
    create = "ledger create-account --currency EUR --code 1"
    assert "malformed id 'nope'" in eur.error(f"{create} --id nope", code=2)
    assert "unknown flag 'overdraft'" in eur.error(f"{create} --id 3 --flags overdraft", code=2)
    assert "--currency or --ledger" in eur.error("ledger create-account --code 1", code=2)
    assert "outside 1..65535" in eur.error("ledger create-account --currency EUR --code 0", code=2)
    doc = eur.json("ledger create-account --ledger 999 --code 1 --id 4", code=1)
    assert doc["result"] == "ledger_not_found"
    assert eur.error("ledger balance 3", code=1).endswith("account 3 does not exist")
    assert eur("ledger balance 4", code=1).stdout == ""
    assert eur.json("ledger balance 1")["flags"] == ["debits_must_not_exceed_credits", "history"]


def test_create_accounts_from_csv(cli: Cli, tmp_path: Path) -> None:
    path = write(
        tmp_path / "accounts.csv",
        "id,currency,code,flags\n"
        "100,USD,1,\n"
        "101,USD,10,debits_must_not_exceed_credits|history\n"
        "102,CNY,10,\n",
    )
    doc = cli.json("ledger create-accounts --file", path)
    assert [(r["row"], r["id"], r["result"]) for r in doc["results"]] == [
        (1, "100", "ok"),
        (2, "101", "ok"),
        (3, "102", "ok"),
    ]
    assert cli.json("ledger balance 101")["flags"] == ["debits_must_not_exceed_credits", "history"]
    assert cli.json("ledger balance 102")["ledger"] == 156
    assert cli.json("ledger create-accounts --file", path)["counts"] == {"exists": 3}


def test_create_accounts_csv_with_a_bad_row_creates_nothing(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path / "accounts.csv", "id,currency,code,flags\n200,EUR,1,\n201,EUR,x,\n")
    assert "row 2, column 'code'" in cli.error("ledger create-accounts --file", path, code=2)
    assert "does not exist" in cli.error("ledger balance 200", code=1)
    empty = write(tmp_path / "empty.csv", "id,currency,code\n")
    assert "has no rows" in cli.error("ledger create-accounts --file", empty, code=2)


def test_create_accounts_csv_defines_the_ledger_each_row_names(cli: Cli, tmp_path: Path) -> None:
    """Found in review: a row with both a ledger and a currency column defined the
    currency's own ledger (978 for EUR) rather than the row's, so the row failed with
    ledger_not_found, where ``create-account --ledger 9001 --currency EUR`` defines 9001."""
    path = write(tmp_path / "accounts.csv", "id,ledger,currency,code\n500,9001,EUR,1\n")
    doc = cli.json("ledger create-accounts --file", path)
    assert [r["result"] for r in doc["results"]] == ["ok"]
    assert cli.json("ledger balance 500")["ledger"] == 9001
    assert [d["ledger"] for d in cli.json("ledger ledgers")] == [9001]


def test_create_accounts_csv_refused_defines_no_ledger(cli: Cli, tmp_path: Path) -> None:
    """Exit 2 is refused before anything changed: a file the ledger cannot take (a chain
    longer than a request, one ledger number given two currencies) defined the currencies'
    ledgers first."""
    rows = "".join(f"{i},USD,1,{'true' if i < 8_200 else 'false'}\n" for i in range(1, 8_201))
    chain = write(tmp_path / "chain.csv", "id,currency,code,linked\n" + rows)
    assert "linked chain longer" in cli.error("ledger create-accounts --file", chain, code=2)
    two = write(tmp_path / "two.csv", "id,ledger,currency,code\n1,9001,EUR,1\n2,9001,USD,1\n")
    assert "row 2" in cli.error("ledger create-accounts --file", two, code=2)
    assert cli.json("ledger ledgers") == []


# ---------------------------------------------------------------------------------- transfers
def test_transfer_balance_and_statement(eur: Cli) -> None:
    doc = eur.json("ledger transfer --from 1 --to 2 --amount 12.50 --currency EUR --code 1 --id 11")
    assert doc["result"] == "ok"
    assert doc["transfer"] | {"timestamp": 0, "created_at": ""} == {
        "id": "11",
        "debit_account_id": "1",
        "credit_account_id": "2",
        "amount": "12.50",
        "amount_minor": 1250,
        "currency": "EUR",
        "ledger": 978,
        "code": 1,
        "flags": [],
        "pending_id": None,
        "timeout_s": 0,
        "user_data_128": "0",
        "user_data_64": 0,
        "user_data_32": 0,
        "timestamp": 0,
        "created_at": "",
    }
    assert eur("ledger transfer --from 1 --to 2 --amount 0.05 --code 1").stdout.startswith(OK_LINE)
    assert eur.balances(1) == {
        "debits_pending": "0.00",
        "debits_posted": "12.55",
        "credits_pending": "0.00",
        "credits_posted": "100.00",
        "posted_balance": "87.45",
        "available_balance": "87.45",
    }
    assert eur.balances(2)["posted_balance"] == "-87.45"
    text = eur("ledger balance 1").stdout
    assert "87.45 EUR" in text and "100.00 EUR" in text

    statement = eur.json("ledger statement 1")
    assert (statement["opening_balance"], statement["closing_balance"]) == ("0.00", "87.45")
    assert [(x["debit"], x["credit"], x["balance"]) for x in statement["lines"]] == [
        ("0.00", "100.00", "100.00"),
        ("12.50", "0.00", "87.50"),
        ("0.05", "0.00", "87.45"),
    ]
    since = statement["lines"][1]["time"]
    later = eur.json(f"ledger statement 1 --since {since}")
    assert (later["opening_balance"], len(later["lines"])) == ("100.00", 2)
    table = eur("ledger statement 1 --limit 2").stdout
    assert "opening balance" in table and "87.50" in table and "truncated" in table
    assert "--since" in eur.error("ledger statement 1 --since yesterday", code=2)


def test_bad_amount_is_refused_and_changes_nothing(eur: Cli) -> None:
    before = eur.balances(1)
    transfer = "ledger transfer --from 1 --to 2 --code 1 --id 20 --amount"
    message = eur.error(f"{transfer} 12.345", code=2)
    assert "--amount" in message and "'12.345'" in message and "EUR" in message
    for bad in ("-1.00", "1,00", "1e3", "abc"):
        assert "--amount" in eur.error(f"{transfer} {bad}", code=2)
    assert eur.balances(1) == before
    assert "transfer_not_found" in eur.error("ledger lookup-transfer 20", code=1)
    assert len(eur.json("ledger statement 1")["lines"]) == 1


def test_transfer_results_that_fail(eur: Cli) -> None:
    doc = eur.json("ledger transfer --from 9 --to 2 --amount 1.00 --currency EUR --code 1", code=1)
    assert doc["result"] == "debit_account_not_found"
    result = eur("ledger transfer --from 9 --to 8 --amount 1 --code 1", code=1)
    assert result.stdout.startswith("debit_account_not_found")
    result = eur("ledger transfer --from 1 --to 2 --amount 100.01 --code 1", code=1)
    assert result.stdout.startswith("exceeds_credits") and "exceeds_credits" in result.stderr
    transfer = "ledger transfer --to 2 --amount 1 --code 1"
    assert "malformed id 'x-1'" in eur.error(f"{transfer} --from x-1", code=2)
    assert "--pending" in eur.error(f"{transfer} --from 1 --timeout 5", code=2)
    assert "not defined" in eur.error(f"{transfer} --from 1 --ledger 5", code=2)
    assert eur.balances(1)["posted_balance"] == "100.00"


def test_transfer_id_is_idempotent(eur: Cli) -> None:
    transfer = "ledger transfer --from 1 --to 2 --code 1 --id 0x" + "ab" * 16
    assert eur.json(f"{transfer} --amount 3.00")["result"] == "ok"
    assert eur.json(f"{transfer} --amount 3.00")["result"] == "exists"
    assert eur.balances(1)["posted_balance"] == "97.00"
    again = eur.json(f"{transfer} --amount 4.00", code=1)
    assert again["result"] == "exists_with_different_amount"
    assert eur.balances(1)["posted_balance"] == "97.00"


def test_balancing_debit_moves_what_is_there(eur: Cli) -> None:
    doc = eur.json("ledger transfer --from 1 --to 2 --code 1 --balancing-debit")
    assert doc["transfer"]["amount"] == "100.00"
    assert eur.balances(1)["posted_balance"] == "0.00"
    assert "--amount is required" in eur.error("ledger transfer --from 1 --to 2 --code 1", code=2)


def test_pending_then_post_in_part(eur: Cli) -> None:
    eur("ledger transfer --from 1 --to 2 --amount 25.00 --code 1 --pending --timeout 60 --id 500")
    assert eur.balances(1)["debits_pending"] == "25.00"
    assert eur.balances(1)["available_balance"] == "75.00"
    doc = eur.json("ledger post 500 --amount 20.00 --id 501")
    assert doc["result"] == "ok"
    assert (doc["transfer"]["pending_id"], doc["transfer"]["amount"]) == ("500", "20.00")
    assert eur.balances(1) == {
        "debits_pending": "0.00",
        "debits_posted": "20.00",
        "credits_pending": "0.00",
        "credits_posted": "100.00",
        "posted_balance": "80.00",
        "available_balance": "80.00",
    }
    assert eur.json("ledger post 500", code=1)["result"] == "pending_transfer_already_posted"
    assert "'20.001'" in eur.error("ledger post 500 --amount 20.001", code=2)
    assert eur.json("ledger post 404", code=1)["result"] == "pending_transfer_not_found"
    assert eur.balances(1)["posted_balance"] == "80.00"


def test_void_twice_fails(eur: Cli) -> None:
    eur("ledger transfer --from 1 --to 2 --amount 7.00 --code 1 --pending --id 600")
    assert eur.balances(1)["available_balance"] == "93.00"
    assert eur("ledger void 600 --id 601").stdout.startswith("ok: transfer 601 voids pending 600")
    assert eur.balances(1)["available_balance"] == "100.00"
    second = eur("ledger void 600", code=1)
    assert second.stdout.startswith("pending_transfer_already_voided")
    assert "pending_transfer_already_voided" in second.stderr
    assert eur.balances(1)["available_balance"] == "100.00"


def test_expire_voids_what_is_due(eur: Cli) -> None:
    # Not yet due: an hour to go (a 1 s timeout checked by the next command was due already
    # when a slow machine took over a second to start it).
    eur("ledger transfer --from 1 --to 2 --amount 3.00 --code 1 --pending --timeout 3600 --id 701")
    assert eur.json("ledger expire") == {"expired": 0}
    eur("ledger transfer --from 1 --to 2 --amount 5.00 --code 1 --pending --timeout 1 --id 700")
    time.sleep(1.05)
    assert eur.json("ledger expire") == {"expired": 1}
    assert eur.balances(1)["debits_pending"] == "3.00"  # the one not due is still held
    assert eur.json("ledger post 700", code=1)["result"] == "pending_transfer_expired"


def test_transfers_from_csv_with_a_linked_chain(eur: Cli, tmp_path: Path) -> None:
    path = write(
        tmp_path / "transfers.csv",
        "id,from,to,amount,code,flags,pending_id,timeout,linked\n"
        "30,1,2,10.00,1,,,,\n"
        "31,1,2,60.00,1,,,,true\n"
        "32,1,2,60.00,1,,,,\n"
        "33,1,2,5,1,pending,,30,\n"
        "34,,,2.50,,post,33,,\n"
        "35,1,999,1,1,,,,\n",
    )
    doc = eur.json("ledger transfers --file", path, code=1)
    assert [r["result"] for r in doc["results"]] == [
        "ok",
        "linked_event_failed",
        "exceeds_credits",
        "ok",
        "ok",
        "credit_account_not_found",
    ]
    assert (doc["counts"]["ok"], doc["ok"]) == (3, False)
    assert eur.balances(1)["posted_balance"] == "87.50"


def test_transfers_csv_with_a_bad_amount_changes_nothing(eur: Cli, tmp_path: Path) -> None:
    path = write(tmp_path / "transfers.csv", "from,to,amount,code\n1,2,1.00,1\n1,2,1.001,1\n")
    message = eur.error("ledger transfers --file", path, code=2)
    assert "row 2, column 'amount'" in message and "'1.001'" in message
    assert eur.balances(1)["posted_balance"] == "100.00"


def test_lookup_transfer(eur: Cli) -> None:
    doc = eur.json("ledger lookup-transfer 10")
    assert (doc["amount"], doc["debit_account_id"], doc["credit_account_id"]) == (
        "100.00",
        "2",
        "1",
    )
    assert "100.00 EUR" in eur("ledger lookup-transfer 10").stdout
    assert "malformed id 'ten'" in eur.error("ledger lookup-transfer ten", code=2)


def test_history(eur: Cli) -> None:
    eur("ledger transfer --from 1 --to 2 --amount 0.01 --code 1")
    rows = eur.json("ledger history 1")["balances"]
    assert [(r["debits_posted"], r["credits_posted"]) for r in rows] == [
        ("0.00", "100.00"),
        ("0.01", "100.00"),
    ]
    assert "history_not_enabled" in eur.error("ledger history 2", code=1)


def test_check_passes(eur: Cli) -> None:
    doc = eur.json("ledger check")
    assert (doc["ok"], doc["violations"]) == (True, [])
    assert doc["ledgers"]["978"] == {
        "currency": "EUR",
        "accounts": 2,
        "debits_pending": "0.00",
        "debits_posted": "100.00",
        "credits_pending": "0.00",
        "credits_posted": "100.00",
    }
    assert "invariants OK" in eur("ledger check").stdout


def test_check_fails_on_a_tampered_balance(eur: Cli) -> None:
    with sqlite3.connect(eur.home / "entrepot.db") as db:
        db.execute("UPDATE ledger_accounts SET credits_posted = credits_posted + 1")
    result = eur("ledger check", code=1)
    assert "invariant violated" in result.stderr and "invariants VIOLATED" in result.stdout


# ---------------------------------------------------------------------------------- demo, bench
def test_demo_is_deterministic_and_checks_its_invariants(cli: Cli) -> None:
    demo = "demo --transfers 600 --seed 3 --batch-size 100 --trade-days 2"
    first, second = cli.json(demo), cli.json(demo)
    for doc in (first, second):
        del doc["elapsed_s"], doc["transfers_per_s"]
    assert first == second
    assert first["ok"] is True and all(c["ok"] for c in first["checks"])
    assert first["trade"]["ok"] is True and first["trade"]["days"] == 2
    assert (first["transfers"], first["batches"]) == (600, 6)
    assert sum(first["result_counts"].values()) == 600
    assert set(first["currencies"]) == {"CNY", "MYR", "EUR", "RWF", "ETB", "USD"}
    assert not (cli.home / "entrepot.db").exists()  # the demo never touches the user's data
    kept = cli.json(f"{demo} --keep")  # a replay of the same stream: nothing new
    assert kept["ok"] is True and "ok" not in kept["result_counts"]
    assert "--transfers" in cli("demo --transfers -1", code=2).stderr


def test_demo_runs_as_a_program(tmp_path: Path) -> None:
    env = {**os.environ, "ENTREPOT_HOME": str(tmp_path), "ENTREPOT_DATABASE_URL": ""}
    command = [sys.executable, "-m", "entrepot.entrypoints.cli", "demo", "--transfers", "2000"]
    command += ["--trade-days", "2"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "invariants OK" in proc.stdout and "trade invariants OK" in proc.stdout
    assert "2,000 transfers" in proc.stdout and "exceeds_credits" in proc.stdout
    assert (tmp_path / "demo.db").exists()


def test_bench_ledger(cli: Cli) -> None:
    bench = "bench ledger --accounts 10 --transfers 200 --batch-size 50 --clients 2"
    if find_spec("entrepot.ledger.bench") is None:
        assert "not in this build" in cli.error(bench, code=1)
        return
    assert cli.json(bench)["workload"]["transfers"] == 200
    assert "--batch-size" in cli("bench ledger --batch-size 9000", code=2).stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_bench_payments_runs_every_flow_against_a_real_server(
    cli: Cli, backend: str, tmp_path: Path
) -> None:
    bench = "bench payments --payments 10 --clients 2 --workers 1 --bulk-batches 1 --bulk-size 20"
    plot = tmp_path / "plots" / "payments.png"
    if backend == "postgres":
        bench += f" --postgres-url {POSTGRES_URL}"
    else:
        bench += f" --plot {plot}"
    doc = cli.json(bench)
    if backend == "sqlite":  # the latencies and the rate over time, drawn
        assert doc["plot"] == str(plot)
        with Image.open(plot) as image:
            assert image.format == "PNG" and image.size == (1210, 462)
    assert doc["workload"]["database"] == (  # the server's setting (this suite's: NORMAL)
        "postgresql" if backend == "postgres" else "sqlite (NORMAL)"
    )
    for key in (
        "payments_per_s",
        "qr_pay_payments_per_s",
        "bulk_transfers_per_s",
        "in_process_bulk_transfers_per_s",
    ):
        assert doc[key] > 0, key
    assert doc["p50_ms"] <= doc["p99_ms"] and doc["qr_pay_p50_ms"] <= doc["qr_pay_p99_ms"]
    assert doc["bulk_committed"] == 20
    # how busy the one writer was (storage/metrics.py), from the server's own counters
    assert 0 < doc["group_commit_held_share"] <= 1.5  # a share of the time (clocks differ)
    assert doc["group_commit_members_per_batch"] >= 1
    if backend == "postgres":
        assert doc["write_lock_held_share"] is None  # SQLite's lock: none on PostgreSQL
    else:
        assert 0 < doc["write_lock_held_share"] <= 1.5
    # how busy the cores were: the server's workers (from /proc) and the clients
    assert doc["machine_cores"] == os.cpu_count()
    assert 0 < doc["server_cpu_cores"] <= doc["machine_cores"] * 1.5
    assert 0 < doc["client_cpu_cores"] <= doc["machine_cores"] * 1.5
    assert doc["server_cpu_ms_per_payment"] > 0


def test_bench_payments_refuses_a_plot_it_cannot_write_before_it_runs(
    cli: Cli, tmp_path: Path
) -> None:
    bench = "bench payments --payments 10 --clients 1 --workers 1 --bulk-batches 1 --plot"
    assert "name it *.png" in cli.error(f"{bench} {tmp_path / 'p.svg'}", code=2)
    (tmp_path / "a-file").write_text("")
    line = cli.error(f"{bench} {tmp_path / 'a-file' / 'p.png'}", code=2)
    assert "cannot be written in" in line and "a-file" in line


def test_bench_bulk_cpu_measures_this_code_and_a_baseline(tmp_path: Path) -> None:
    """bench/bulk_cpu.py: every bulk commits (it asserts so), and a baseline's source (here
    this checkout's own) is measured in the same run."""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, str(root / "bench" / "bulk_cpu.py"), "--bulks", "1", "--size", "50",
         "--baseline-src", str(root / "src")],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    doc = json.loads(out.stdout)
    for side in ("this", "baseline"):
        assert doc[side]["size"] == 50
        assert doc[side]["cpu_ms_median"] > 0
    assert doc["cpu_this_vs_baseline"] > 0


def test_bench_payment_cpu_measures_each_call_of_a_payment(tmp_path: Path) -> None:
    """bench/payment_cpu.py: every payment commits (it checks so) through the app's four
    routes; a baseline's source (here this checkout's own) runs in the same run."""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, str(root / "bench" / "payment_cpu.py"), "--payments", "5",
         "--warm", "2", "--baseline-src", str(root / "src")],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    doc = json.loads(out.stdout)
    for side in ("this", "baseline"):
        assert doc[side]["payments"] == 5
        assert doc[side]["cpu_ms_per_payment_median"] > 0
        assert set(doc[side]["cpu_ms_per_call_mean"]) == {"lookup", "quote", "prepare", "commit"}
        held = doc[side]["lock_held_ms_per_call_mean"]
        # the lookup only reads; the three writes each hold SQLite's write lock
        assert held["lookup"] == 0 and min(held["quote"], held["prepare"], held["commit"]) > 0
        assert doc[side]["lock_held_ms_per_payment"] > 0
        assert doc[side]["commit_ms_per_payment"] > 0
    assert doc["cpu_this_vs_baseline"] > 0 and doc["lock_held_this_vs_baseline"] > 0
    bad = subprocess.run(
        [sys.executable, str(root / "bench" / "payment_cpu.py"), "--payments", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "--payments must be at least 1" in bad.stderr


def test_bench_statement_times_both_ways_to_one_opening_balance() -> None:
    """bench/statement.py: a recent period's opening balance, summed from the history (the
    baseline) and read back from the balance now, in one run; it checks they agree."""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, str(root / "bench" / "statement.py"), "--history", "2500",
         "--recent", "3", "--repeat", "1"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    doc = json.loads(out.stdout)
    assert (doc["history_transfers"], doc["period_transfers"]) == (2500, 3)
    assert doc["baseline_sum_of_history_ms"] > 0 and doc["from_balance_ms"] > 0
