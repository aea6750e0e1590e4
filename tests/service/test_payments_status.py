"""The operator suspends and resumes participants on the record: each change with its reason,
actor and time, read back by the operator and the participant, and told to the participant."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import Connection
from typer.testing import CliRunner

from entrepot.entrypoints.api.app import create_app
from entrepot.kernel.clock import NS_PER_S
from entrepot.ledger import Ledger
from entrepot.payments import SCHEME, PaymentScheme
from entrepot.payments import store as st
from entrepot.payments.credentials import issue_credential
from entrepot.payments.errors import NotYours, ParticipantSuspended, PaymentError
from tests.conftest import FakeClock


def _rows(scheme: PaymentScheme) -> list[tuple[object, ...]]:
    with scheme.engine.connect() as conn:
        status = conn.execute(sa.select(st.participant_status)).all()
        outbox = conn.execute(sa.select(st.outbox.c.event)).all()
        active = conn.execute(sa.select(st.participants.c.id, st.participants.c.active)).all()
    return [tuple(r) for r in (*status, *outbox, *sorted(active))]


def test_a_suspension_is_recorded_with_its_reason_and_told_to_the_participant(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    scheme.set_endpoint("mtn-rw", "https://mtn.example/callbacks")
    suspended = scheme.set_active("mtn-rw", False, "liquidity cover not renewed")
    assert not suspended.active
    clock.advance(3_600)
    again = scheme.set_active("mtn-rw", False, "asked twice")  # a retry: nothing new
    assert not again.active
    with pytest.raises(ParticipantSuspended):
        scheme.create_quote("mtn-rw", "q1", "MERCHANT", "KL-TILL-42", 500, "RECEIVE", "RWF")
    scheme.set_active("mtn-rw", True)
    history = scheme.status_history("mtn-rw", "mtn-rw")
    assert [(c.seq, c.active, c.reason, c.actor) for c in history] == [
        (1, False, "liquidity cover not renewed", SCHEME),
        (2, True, None, SCHEME),
    ]
    assert history[1].at_ns - history[0].at_ns == 3_600 * NS_PER_S
    assert scheme.status_history(SCHEME, "mtn-rw") == history
    notices = scheme.notifications("mtn-rw")
    assert [(n["event"], n["body"]) for n in notices] == [
        (
            "participant.suspended",
            {
                "participantId": "mtn-rw",
                "active": False,
                "reason": "liquidity cover not renewed",
                "seq": 1,
            },
        ),
        (
            "participant.resumed",
            {"participantId": "mtn-rw", "active": True, "reason": None, "seq": 2},
        ),
    ]


@pytest.mark.parametrize("reason", ["", "   ", "x" * 201, "bad\x00reason"])
def test_a_bad_reason_is_refused_and_changes_nothing(scheme: PaymentScheme, reason: str) -> None:
    before = _rows(scheme)
    with pytest.raises(PaymentError, match="reason"):
        scheme.set_active("mtn-rw", False, reason)
    assert _rows(scheme) == before
    assert scheme.get_participant("mtn-rw").active


def test_only_the_participant_and_the_operator_read_its_history(scheme: PaymentScheme) -> None:
    scheme.set_active("maybank", False, "under review by the central bank")
    with pytest.raises(NotYours):
        scheme.status_history("mtn-rw", "maybank")
    with pytest.raises(PaymentError, match="nobody"):
        scheme.status_history(SCHEME, "nobody")


@pytest.fixture
def api(scheme: PaymentScheme) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    tokens = {p: issue_credential(scheme.engine, p).token for p in (SCHEME, "mtn-rw", "maybank")}
    with TestClient(create_app(scheme)) as client:
        yield client, {p: {"Authorization": f"Bearer {t}"} for p, t in tokens.items()}


def test_through_the_api_a_suspension_needs_a_reason_and_the_participant_reads_it(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    client, h = api
    url = "/v1/participants/maybank"
    bare = client.post(f"{url}/suspend", headers=h[SCHEME])
    assert bare.status_code == 422 and scheme.get_participant("maybank").active
    done = client.post(f"{url}/suspend", json={"reason": "sanctions order"}, headers=h[SCHEME])
    assert done.status_code == 200 and done.json()["active"] is False
    assert client.post(f"{url}/resume", headers=h[SCHEME]).json()["active"] is True
    own = client.get(f"{url}/statusHistory", headers=h["maybank"])
    assert own.status_code == 200, own.text
    body = own.json()
    assert (body["participantId"], body["active"]) == ("maybank", True)
    assert [(c["seq"], c["active"], c["reason"], c["actor"]) for c in body["changes"]] == [
        (1, False, "sanctions order", "scheme"),
        (2, True, None, "scheme"),
    ]
    assert body["changes"][0]["at"].endswith("Z")
    other = client.get(f"{url}/statusHistory", headers=h["mtn-rw"])
    assert other.status_code == 403


def test_the_cli_suspends_with_a_reason_and_shows_the_history(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    from entrepot.entrypoints.cli import payments as cli

    class Opened:
        payments = scheme

        def __enter__(self) -> Opened:
            return self

        def __exit__(self, *_: object) -> None:
            return None

    monkeypatch.setattr(cli, "_scheme", Opened)
    runner = CliRunner()
    no_reason = runner.invoke(cli.app, ["suspend", "icbc"])
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    assert scheme.get_participant("icbc").active
    done = runner.invoke(cli.app, ["suspend", "icbc", "--reason", "licence withdrawn", "--json"])
    assert done.exit_code == 0, done.output
    shown = runner.invoke(cli.app, ["status-history", "icbc", "--json"])
    assert shown.exit_code == 0 and "licence withdrawn" in shown.stdout


def test_the_status_history_route_answers_the_state_its_history_was_read_with(
    api: tuple[TestClient, dict[str, dict[str, str]]],
    scheme: PaymentScheme,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``GET .../statusHistory`` read the history, then the participant again: another
    worker's suspension between the two reads answered ``active: false`` beside a history
    that ended active (no change at all here). It now reads both in one snapshot."""
    client, h = api
    other = PaymentScheme(scheme.engine, Ledger(scheme.engine, clock), clock)
    read = scheme._read
    reads: list[int] = []

    @contextmanager
    def then_another_worker_suspends() -> Iterator[Connection]:
        with read() as conn:
            yield conn
        reads.append(1)
        if len(reads) == 1:  # the first read is done: another worker suspends maybank
            other.set_active("maybank", False, "sanctions order")

    monkeypatch.setattr(scheme, "_read", then_another_worker_suspends)
    r = client.get("/v1/participants/maybank/statusHistory", headers=h[SCHEME])
    monkeypatch.undo()
    assert r.status_code == 200, r.text
    body = r.json()
    assert reads and not scheme.get_participant("maybank").active  # the suspension happened
    last = body["changes"][-1]["active"] if body["changes"] else True
    assert body["active"] is last, body  # one moment: before the suspension, or after it
