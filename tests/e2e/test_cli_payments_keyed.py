"""``entrepot payments ... --idempotency-key``: a state-changing command run again with its key
and the same arguments prints the first run's result and changes nothing; with other
arguments it is refused. Without it, an operator who re-ran a partial escrow release whose
output was lost paid it twice. The keys are the API's (``pay_idempotency``, ADR 0011), under
the same owner: the acting participant (``--as``), the operator (``scheme``) for the
operator's commands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient

from entrepot.entrypoints.api.app import create_app
from entrepot.entrypoints.cli.main import app
from entrepot.entrypoints.cli.output import open_app
from entrepot.payments.credentials import issue_credential
from tests.e2e.test_cli import Cli
from tests.e2e.test_cli_payments import _network

#: Every payments command that changes the scheme's state (``deadlines`` and ``deliver`` act
#: on what is due when they run, and a re-run finds it done: they take no key).
STATE_CHANGING = {
    "alias-add",
    "alias-remove",
    "bulk",
    "cap",
    "commit",
    "credentials",
    "credentials-revoke",
    "currency-add",
    "deposit",
    "enable-currency",
    "endpoint",
    "escrow-create",
    "escrow-refund",
    "escrow-release",
    "escrow-split",
    "fx-rate",
    "participant-add",
    "prepare",
    "qr-pay",
    "quote",
    "quote-accept",
    "reject",
    "resume",
    "review",
    "suspend",
    "window-close",
    "window-settle",
}


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    c = Cli(tmp_path / "home")
    c.env["ENTREPOT_SCREENING"] = "off"
    _network(c)
    return c


def _held(cli: Cli) -> int:
    held: int = cli.json("payments escrow --as mtn-rw e1")["escrow"]["held_minor"]
    return held


def test_every_state_changing_payments_command_takes_an_idempotency_key() -> None:
    group = typer.main.get_command(app)
    payments = group.commands["payments"]  # type: ignore[attr-defined]
    keyed_commands = {
        name
        for name, command in payments.commands.items()
        if any("--idempotency-key" in p.opts for p in command.params)
    }
    assert keyed_commands == STATE_CHANGING


def test_a_partial_escrow_release_run_again_with_its_key_is_not_paid_twice(cli: Cli) -> None:
    cli("payments escrow-create --as mtn-rw e1 fxco 1000 RWF order-7 600")
    first = cli("payments escrow-release --as mtn-rw e1 300 RWF --idempotency-key rel-1")
    assert _held(cli) == 700
    again = cli("payments escrow-release --as mtn-rw e1 300 RWF --idempotency-key rel-1")
    assert again.stdout == first.stdout and _held(cli) == 700  # printed again, not paid again
    # --json only chooses how the one result is printed
    shown = cli.json("payments escrow-release --as mtn-rw e1 300 RWF --idempotency-key rel-1")
    assert shown["held_minor"] == 700 and _held(cli) == 700
    # another amount under the key: refused, exit 2, nothing released
    line = cli.error(
        "payments escrow-release --as mtn-rw e1 200 RWF --idempotency-key rel-1", code=2
    )
    assert "'rel-1'" in line and "different request" in line and "nothing was done" in line
    assert _held(cli) == 700
    # a new key is a new release
    cli("payments escrow-release --as mtn-rw e1 300 RWF --idempotency-key rel-2")
    assert _held(cli) == 400


def test_a_refusal_is_the_keys_answer_as_the_apis_4xx_is(cli: Cli) -> None:
    cli("payments escrow-create --as mtn-rw e1 fxco 1000 RWF order-7 600")
    command = "payments escrow-release --as mtn-rw e1 5000 RWF --idempotency-key big"
    first = cli.error(command, code=1)
    assert "insufficient_escrow" in first
    assert cli.error(command, code=1) == first
    assert _held(cli) == 1000


def test_prepare_and_commit_run_again_with_their_keys_print_the_first_result(cli: Cli) -> None:
    cli("payments quote --as mtn-rw q1 MERCHANT KL-TILL-42 25.50 MYR RWF --type RECEIVE")
    before = cli.json("payments liquidity mtn-rw RWF")["positionReserved"]["minor"]
    prepared = cli("payments prepare --as mtn-rw t1 q1 --idempotency-key p-1")
    assert cli("payments prepare --as mtn-rw t1 q1 --idempotency-key p-1").stdout == (
        prepared.stdout
    )
    reserved = cli.json("payments liquidity mtn-rw RWF")["positionReserved"]["minor"]
    assert reserved > before
    committed = cli.json("payments commit --as maybank t1 --idempotency-key c-1")
    assert committed["state"] == "COMMITTED"
    # without the key, a second commit is refused "already COMMITTED": with it, the first's
    assert "COMMITTED" in cli.error("payments commit --as maybank t1", code=1)
    assert cli.json("payments commit --as maybank t1 --idempotency-key c-1") == committed
    settled = cli.json("payments liquidity maybank MYR")
    # the same key for another transfer: refused, nothing done
    assert "different request" in cli.error(
        "payments reject --as maybank t1 --idempotency-key c-1", code=2
    )
    assert cli.json("payments liquidity maybank MYR") == settled
    # a key is its owner's: the payer's own key of the same name is another one
    assert "different request" in cli.error(
        "payments prepare --as mtn-rw t2 q1 --idempotency-key p-1", code=2
    )
    assert "transfer_not_found" in cli.error("payments transfer --as mtn-rw t2", code=1)


def test_an_operators_window_close_run_again_closes_no_second_window(cli: Cli) -> None:
    closed = cli.json("payments window-close --idempotency-key close-1")
    assert closed["window"]["id"] == 1
    assert cli.json("payments window-close --idempotency-key close-1") == closed
    assert [w["id"] for w in cli.json("payments windows")] == [1, 2]  # 2: the open one
    assert cli.json("payments window 2")["window"]["state"] == "OPEN"


def test_a_participant_added_again_with_its_key_prints_it_and_a_suspend_is_one(
    cli: Cli,
) -> None:
    add = "payments participant-add bk-rw --name BK --kind bank --country RW --currency RWF"
    first = cli.json(f"{add} --idempotency-key add-bk")
    assert cli.json(f"{add} --idempotency-key add-bk") == first
    assert "already exists" in cli.error(add, code=1)  # without a key: refused, as before
    suspended = cli.json("payments suspend bk-rw --reason audit --idempotency-key s-1")
    cli("payments resume bk-rw")
    assert cli.json("payments suspend bk-rw --reason audit --idempotency-key s-1") == suspended
    assert cli.json("payments participant bk-rw")["participant"]["active"] is True
    changes = cli.json("payments status-history bk-rw")["changes"]
    assert len(changes) == 2  # one suspension, one resumption


def test_a_credential_issued_with_a_key_is_not_issued_again_nor_its_secret_shown(
    cli: Cli,
) -> None:
    issued = cli.json("payments credentials maybank --idempotency-key cred-1")
    line = cli.error("payments credentials maybank --idempotency-key cred-1", code=1)
    assert "not_replayable" in line and issued["key_id"] in line
    assert issued["secret"] not in line
    assert [c["key_id"] for c in cli.json("payments credentials-list maybank")] == [
        issued["key_id"]
    ]


@pytest.fixture
def api(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The API over the command line's database, with mtn-rw's and the operator's tokens."""
    for name, value in cli.env.items():
        monkeypatch.setenv(name, value)
    with open_app() as a, TestClient(create_app(a.payments)) as client:
        tokens = {p: issue_credential(a.engine, p).token for p in ("mtn-rw", "scheme")}
        yield client, tokens


def test_a_key_used_from_the_cli_and_the_api_is_one_request_of_its_owner(
    cli: Cli, api: tuple[TestClient, dict[str, str]]
) -> None:
    client, tokens = api
    cli("payments escrow-create --as mtn-rw e1 fxco 1000 RWF order-7 600")
    cli("payments escrow-release --as mtn-rw e1 300 RWF --idempotency-key k-1")

    def release(who: str, key: str) -> object:
        return client.post(
            "/v1/escrows/e1/release",
            json={"amount": {"amount": "100", "currency": "RWF"}},
            headers={"Authorization": f"Bearer {tokens[who]}", "Idempotency-Key": key},
        )

    # the CLI's key, sent by its owner to the API: another request, 409, nothing done
    reused = release("mtn-rw", "k-1")
    assert reused.status_code == 409, reused.text  # type: ignore[attr-defined]
    assert reused.json()["code"] == "duplicate_with_different_body"  # type: ignore[attr-defined]
    assert _held(cli) == 700
    # the API's key, run from the command line by its owner: refused alike
    assert release("mtn-rw", "k-2").status_code == 200  # type: ignore[attr-defined]
    assert _held(cli) == 600
    line = cli.error("payments escrow-release --as mtn-rw e1 100 RWF --idempotency-key k-2", code=2)
    assert "different request" in line and _held(cli) == 600
    # the operator's key of the same name is another key (its owner's), which the operator's
    # commands share with its API requests
    closed = client.post(
        "/v1/settlementWindows/close",
        headers={"Authorization": f"Bearer {tokens['scheme']}", "Idempotency-Key": "k-1"},
    )
    assert closed.status_code == 200, closed.text
    assert "different request" in cli.error("payments window-close --idempotency-key k-1", code=2)
    assert [w["state"] for w in cli.json("payments windows")] == ["CLOSED", "OPEN"]


def test_an_operation_done_whose_answer_was_not_recorded_is_not_run_again(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run stopped between the release's commit (the key's marker written with it) and
    its answer's: the re-run is refused and says so; run again, it paid the release twice."""
    cli("payments escrow-create --as mtn-rw e1 fxco 1000 RWF order-7 600")
    command = "payments escrow-release --as mtn-rw e1 300 RWF --idempotency-key lost"

    def stopped(*args: object) -> None:
        raise KeyboardInterrupt  # the operator's Ctrl-C, the process killed

    with monkeypatch.context() as m:
        m.setattr("entrepot.entrypoints.cli.keyed._store", stopped)
        cli(command, code=130)  # as Ctrl-C exits
    assert _held(cli) == 700
    line = cli.error(command, code=1)
    assert "was done" in line and "not run again" in line
    assert _held(cli) == 700


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("", "must not be empty"),
        ("a\tb", "printable ASCII"),
        ("clé", "printable ASCII"),
        ("k" * 129, "at most 128 characters"),
    ],
)
def test_a_malformed_key_is_bad_input_and_changes_nothing(cli: Cli, key: str, why: str) -> None:
    """Refused as the option is read (a usage error, exit 2), before the command runs."""
    cli("payments escrow-create --as mtn-rw e1 fxco 1000 RWF order-7 600")
    refused = cli("payments escrow-release --as mtn-rw e1 300 RWF --idempotency-key", key, code=2)
    assert "--idempotency-key" in refused.stderr and why in refused.stderr, refused.stderr
    assert _held(cli) == 1000
