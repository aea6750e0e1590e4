"""``entrepot payments`` against a review of the command line: exit codes that say what
happened, bad input refused as the API refuses it (and nothing changed), XML written as the
bytes it declares, and ``--json`` carrying what the API answers and the docs promise."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

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
