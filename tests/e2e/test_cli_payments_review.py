"""``entrepot payments`` against a review of the command line: exit codes that say what
happened, bad input refused as the API refuses it (and nothing changed), XML written as the
bytes it declares, and ``--json`` carrying what the API answers and the docs promise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from tests.e2e.test_cli import Cli
from tests.e2e.test_cli_payments import _network

#: a name no single-byte encoding holds, and one latin-1 holds in another byte than UTF-8's
NAMES = ("Café Kopi 咖啡", "Café Kopi")


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    c = Cli(tmp_path / "home")
    c.env["ENTREPOT_SCREENING"] = "off"
    _network(c)
    return c


def _bulk_file(tmp_path: Path, rows: str) -> str:
    path = tmp_path / "bulk.csv"
    path.write_text("transfer_id,type,alias,amount\n" + rows)
    return str(path)


# ---------------------------------------------------------------------------------- exit codes
def test_bulk_with_a_rejected_item_exits_1_naming_the_first_after_its_results(
    cli: Cli, tmp_path: Path
) -> None:
    """README: anything refused exits 1, as the ledger's batch commands do; the bulk's
    results are printed all the same (what was paid is paid)."""
    cli("payments participant-add bk-rw --name BK --kind bank --country RW --currency RWF")
    cli("payments alias-add --as bk-rw MSISDN +250788000001 --name Ann --currency RWF")
    mixed = _bulk_file(tmp_path, "b1,MSISDN,+250788000001,100\nb2,MSISDN,+250788999999,5\n")
    result = cli("payments bulk --as mtn-rw bk-1 RWF --json --file", mixed, code=1)
    assert result.stderr == (
        "error: 1 of 2 transfers rejected (first: b2: no party for MSISDN +250788999999)\n"
    )
    shown = json.loads(result.stdout)
    assert (shown["committed"], shown["rejected"]) == (1, 1)
    assert cli.json("payments liquidity bk-rw RWF")["netPosition"]["minor"] == 100
    text = cli("payments bulk --as mtn-rw bk-1 RWF --file", mixed, code=1)  # a resend: alike
    assert "'rejected': 1" in text.stdout and "1 of 2 transfers rejected" in text.stderr
    none = _bulk_file(tmp_path, "b3,MSISDN,+250788999999,5\nb4,MERCHANT,NOPE,5\n")
    assert cli.error("payments bulk --as mtn-rw bk-2 RWF --file", none, code=1) == (
        "error: 2 of 2 transfers rejected (first: b3: no party for MSISDN +250788999999)"
    )
    paid = _bulk_file(tmp_path, "b5,MSISDN,+250788000001,1\n")
    assert cli.json("payments bulk --as mtn-rw bk-3 RWF --file", paid)["rejected"] == 0


def test_bulk_file_that_is_a_directory_is_bad_input_naming_file(cli: Cli, tmp_path: Path) -> None:
    line = cli.error("payments bulk --as mtn-rw bk-1 RWF --file", str(tmp_path), code=2)
    assert line == f"error: --file: {tmp_path} is a directory, not a CSV file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_bulk_file_that_may_not_be_read_is_bad_input_naming_file(cli: Cli, tmp_path: Path) -> None:
    path = Path(_bulk_file(tmp_path, "b1,MSISDN,+250788000001,1\n"))
    path.chmod(0)
    line = cli.error("payments bulk --as mtn-rw bk-1 RWF --file", str(path), code=2)
    assert line.startswith("error: --file: ") and "permission denied" in line


def test_deliver_interval_is_bounded_with_a_named_error(cli: Cli) -> None:
    for interval in ("inf", "nan", "0", "86401"):
        result = cli(f"payments deliver --loop --interval {interval}", code=2)
        assert "Invalid value for --interval" in result.stderr, result.stderr


# ---------------------------------------------------------------------------------- camt.053
def test_camt053_since_in_the_future_without_to_is_refused_as_the_api_does(cli: Cli) -> None:
    """The API's end defaults to now (+1 s) and answers 422 "from is in the future"; the CLI
    printed a statement for a period that had not begun."""
    line = cli.error("payments iso20022 camt053 mtn-rw:RWF --since 2200-01-01", code=2)
    assert line == "error: --since is after now (the default --to)"
    assert "--since is after --to" in cli.error(
        "payments iso20022 camt053 mtn-rw:RWF --since 2200-01-01 --to 2199-01-01", code=2
    )
    assert "<Stmt>" in cli("payments iso20022 camt053 mtn-rw:RWF --since 2000-01-01").stdout


# ---------------------------------------------------------------------------------- XML bytes
def _xml_under_latin1(cli: Cli, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, **cli.env, "PYTHONIOENCODING": "latin-1"}
    command = [sys.executable, "-m", "entrepot", "payments", "iso20022", *args]
    return subprocess.run(command, env=env, capture_output=True, timeout=120)


@pytest.mark.parametrize("name", NAMES)
def test_iso20022_xml_is_written_as_its_utf8_bytes_whatever_stdout_encodes(
    cli: Cli, name: str
) -> None:
    """Under PYTHONIOENCODING=latin-1, "Café Kopi 咖啡" failed (exit 2) and "Café Kopi" was
    written in latin-1 under a declaration of UTF-8: not well-formed XML."""
    cli("payments participant-add kopi --kind bank --country MY --currency MYR --name", name)
    cli("payments alias-add --as kopi MERCHANT KOPI-1 --currency MYR --name", name)
    cli("payments quote --as mtn-rw q1 MERCHANT KOPI-1 10.00 MYR RWF --type RECEIVE")
    cli("payments prepare --as mtn-rw t1 q1")
    for args, holds_name in (
        (("camt053", "kopi:MYR"), True),
        (("pacs008", "t1"), True),
        (("pacs002", "t1"), False),
    ):
        proc = _xml_under_latin1(cli, *args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert proc.stdout.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'), proc.stdout
        document = etree.fromstring(proc.stdout)  # well-formed, in the encoding it declares
        names = [e.text for e in document.iter("{*}Nm")]
        assert (name in names) is holds_name, (args, names)


# ---------------------------------------------------------------------------------- empty options
@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("payments qr-encode KL-TILL-42 Kedai KL MY MYR --amount ''", "invalid amount '': it is"),
        ("payments iso20022 camt053 mtn-rw:RWF --since ''", "--since: not an ISO 8601 time"),
        ("payments iso20022 camt053 mtn-rw:RWF --to ''", "--to: not an ISO 8601 time"),
        ("payments transfers --as mtn-rw --after ''", "--after must be a transfer id"),
    ],
)
def test_an_empty_option_is_refused_not_taken_as_not_given(
    cli: Cli, command: str, says: str
) -> None:
    """The API answers 422 for each (a min_length); the CLI made a static QR, a statement of
    everything, the first page."""
    before = cli.json("payments liquidity mtn-rw RWF")
    assert says in cli.error(command, code=2)
    assert cli.json("payments liquidity mtn-rw RWF") == before


# ---------------------------------------------------------------------------------- as the API
@pytest.mark.parametrize(
    "command",
    [
        "payments deposit mtn-rw +5 RWF dep-9",
        "payments cap mtn-rw +5 RWF",
        "payments qr-encode KL-TILL-42 Kedai KL MY MYR --amount +5",
        "payments quote --as mtn-rw q1 MERCHANT KL-TILL-42 +5 MYR RWF --type RECEIVE",
        "payments escrow-create --as mtn-rw e1 fxco +100 RWF goods 600",
    ],
)
def test_a_signed_amount_is_refused_as_the_api_refuses_it(cli: Cli, command: str) -> None:
    """The API's amounts match ``^[0-9]+(\\.[0-9]+)?$``: "+5" deposited 5 from the CLI."""
    before = cli.json("payments liquidity mtn-rw RWF")
    line = cli.error(command, code=2)
    assert "invalid_amount: invalid amount '+" in line and "a sign is not accepted" in line
    assert cli.json("payments liquidity mtn-rw RWF") == before


def test_a_signed_amount_in_qr_pay_or_a_bulk_file_is_refused(cli: Cli, tmp_path: Path) -> None:
    before = cli.json("payments liquidity mtn-rw RWF")
    static = cli.json("payments qr-encode KL-TILL-42 Kedai KL MY MYR")["payload"]
    dynamic = cli.json("payments qr-encode KL-TILL-42 Kedai KL MY MYR --amount 2")["payload"]
    pay = "payments qr-pay --as mtn-rw {} q1 t1 RWF"
    for command in (pay.format(static) + " --amount +1", pay.format(dynamic) + " --tip +1"):
        assert "a sign is not accepted" in cli.error(command, code=2)
    plus = _bulk_file(tmp_path, "b1,MERCHANT,KL-TILL-42,+1.00\n")
    line = cli.error("payments bulk --as mtn-rw bk-1 MYR --file", plus, code=2)
    assert "line 2 (b1): invalid_amount" in line and "a sign is not accepted" in line
    assert cli.json("payments liquidity mtn-rw RWF") == before
    assert "quote_not_found" in cli.error("payments quote-show --as mtn-rw q1", code=1)


@pytest.mark.parametrize(
    "command",
    [
        "payments liquidity mtn-rw XYZ",
        "payments iso20022 camt053 mtn-rw:XXX",
        "payments quote --as mtn-rw q1 MERCHANT KL-TILL-42 10.00 MYR XYZ --type RECEIVE",
        "payments quote --as mtn-rw q1 MERCHANT KL-TILL-42 10.00 XYZ RWF --type RECEIVE",
    ],
)
def test_a_code_that_is_no_currency_is_unknown_currency(cli: Cli, command: str) -> None:
    """The API's routes look the code up first (422 unknown_currency); the CLI answered
    currency_not_supported (exit 1), as for a currency the participant does not hold."""
    assert "unknown_currency: unknown currency code" in cli.error(command, code=2)


def test_a_malformed_controller_is_bad_input_not_one_refused(cli: Cli) -> None:
    before = cli.json("payments liquidity mtn-rw RWF")
    line = cli.error(
        "payments escrow-create --as mtn-rw e1 fxco 100 RWF goods 600 --controller 'bad id'",
        code=2,
    )
    assert line.startswith("error: invalid_input: controller 'bad id' must be a participant id")
    assert "controller '' must be a participant id" in cli.error(  # not "none given"
        "payments escrow-create --as mtn-rw e1 fxco 100 RWF goods 600 --controller ''", code=2
    )
    assert "controller_not_allowed" in cli.error(
        "payments escrow-create --as mtn-rw e1 fxco 100 RWF goods 600 --controller maybank",
        code=1,
    )
    assert cli.json("payments liquidity mtn-rw RWF") == before


# ---------------------------------------------------------------------------------- --json
def test_json_carries_what_the_api_answers(cli: Cli) -> None:
    rate = cli.json("payments fx-rate --as fxco RWF MYR 0.0032 --spread-bps 100")
    assert (rate["rate"], rate["effective_rate"]) == ("0.0032", "0.003168")
    created = cli.json("payments escrow-create --as mtn-rw e1 fxco 100 RWF goods 600")
    assert (created["amount_minor"], created["held_minor"]) == (100, 100)
    released = cli.json("payments escrow-release --as mtn-rw e1 30 RWF")
    assert (released["released_minor"], released["held_minor"]) == (30, 70)
    assert cli.json("payments escrow --as mtn-rw e1")["escrow"]["held_minor"] == 70
    issued = cli.json("payments credentials maybank")
    assert issued["token"] == f"{issued['key_id']}.{issued['secret']}"
    cli("payments suspend fxco --reason audit")
    history = cli.json("payments status-history fxco")
    assert (history["participant_id"], history["active"]) == ("fxco", False)
    assert [(c["active"], c["reason"]) for c in history["changes"]] == [(False, "audit")]
    cli("payments resume fxco")
    assert cli.json("payments status-history fxco")["active"] is True


def test_metrics_json_carries_the_cap_used_ratio_its_text_prints(cli: Cli) -> None:
    from tests.service.test_payments_monitoring import prometheus_samples

    cli("payments quote --as mtn-rw q1 MERCHANT KL-TILL-42 25.50 MYR RWF --type RECEIVE")
    cli("payments prepare --as mtn-rw t1 q1")
    samples = prometheus_samples(cli("payments metrics").stdout)
    positions = cli.json("payments metrics")["positions"]
    for p in positions:
        key = (("currency", p["currency"]), ("participant", p["participant_id"]))
        assert p["net_debit_cap_used_ratio"] == samples.get(
            ("entrepot_net_debit_cap_used_ratio", key)
        )
    mtn = next(p for p in positions if p["participant_id"] == "mtn-rw")
    assert 0 < mtn["net_debit_cap_used_ratio"] < 1


def test_transfers_json_gives_the_next_page_s_after(cli: Cli) -> None:
    """docs/payments.md: `next` is the id to pass as `after` for the next page (null on the
    last); ``payments transfers`` reads the same."""
    for n in (1, 2, 3):
        cli(f"payments quote --as mtn-rw q{n} MERCHANT KL-TILL-42 1.00 MYR RWF --type RECEIVE")
        cli(f"payments prepare --as mtn-rw t{n} q{n}")
    first = cli.json("payments transfers --as mtn-rw --limit 2")
    assert ([t["id"] for t in first["transfers"]], first["next"]) == (["t1", "t2"], "t2")
    last = cli.json(f"payments transfers --as mtn-rw --limit 2 --after {first['next']}")
    assert ([t["id"] for t in last["transfers"]], last["next"]) == (["t3"], None)


# ---------------------------------------------------------------------------------- demo
def test_demo_says_none_were_rejected_not_nothing_open(capsys: pytest.CaptureFixture[str]) -> None:
    from entrepot.entrypoints.cli.demo import _print_payments
    from entrepot.sim.payments_demo import PaymentsDemoReport

    def said() -> str:  # the console wraps at its width, which differs between runs
        return " ".join(capsys.readouterr().out.split())

    _print_payments(PaymentsDemoReport(payments=3, committed=3, invariants_ok=True))
    assert "3 of 3 committed; rejected: none" in (text := said()), text
    assert "nothing open" not in text
    _print_payments(PaymentsDemoReport(payments=3, committed=2, rejected={"net_debit_cap": 1}))
    assert "2 of 3 committed; rejected: 1 net_debit_cap" in (text := said()), text


def test_a_ledger_account_id_is_a_string_in_json_as_the_ledger_commands_print_it(cli: Cli) -> None:
    """A participant's position and settlement accounts are 128-bit ledger ids: as bare JSON
    numbers, jq and JavaScript read them as doubles and printed another account's id."""
    (mine,) = cli.json("payments participant maybank")["participant"]["currencies"].values()
    for key in ("position_account", "settlement_account"):
        assert isinstance(mine[key], str) and int(mine[key]) > 2**53, mine
    (listed,) = [p for p in cli.json("payments participants") if p["id"] == "maybank"]
    assert listed["currencies"]["MYR"] == mine
