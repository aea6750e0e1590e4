"""A keyed request whose operation was done but whose answer was never stored (its worker was
killed between the operation's COMMIT and the answer's): the retry, same key, is answered
from what was done, and nothing is done twice. Before, the retry ran the operation again: a
commit was answered 409 "already COMMITTED" (and that 409 kept as the key's answer for good),
a partial escrow release was paid twice. Found by a reviewer helper, by killing workers.

The loss is simulated here by dropping the answer's write; the e2e crash test
(``test_serve_crash.py``) kills real workers."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from entrepot.entrypoints.api.app import create_app
from entrepot.entrypoints.api.security import SecurityMiddleware
from entrepot.kernel.clock import FakeClock
from entrepot.payments import PaymentScheme
from entrepot.payments import store as st
from entrepot.payments.credentials import issue_credential
from entrepot.payments.keyed import ANSWER_LOST

QUOTE = {
    "quoteId": "q-lost",
    "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-TILL-42"},
    "amountType": "SEND",
    "amount": {"amount": "5000", "currency": "RWF"},
    "sourceCurrency": "RWF",
}


class Api:
    def __init__(self, scheme: PaymentScheme, client: TestClient) -> None:
        self.scheme = scheme
        self.client = client
        scheme.register_participant("hub", "Trade hub", "hub", "RW", [])
        # an escrow's payee: another participant than its payer, holding RWF
        scheme.register_participant("bk-rw", "Bank of Kigali", "bank", "RW", ["RWF"])
        self.h = {
            p: {"Authorization": f"Bearer {issue_credential(scheme.engine, p).token}"}
            for p in ("scheme", "mtn-rw", "maybank", "hub")
        }

    def post(self, who: str, path: str, body: Any = None, key: str | None = None) -> Any:
        headers = {**self.h[who], **({"Idempotency-Key": key} if key else {})}
        return self.client.post(path, json=body, headers=headers)

    def row(self, who: str, key: str) -> Any:
        with self.scheme.engine.connect() as conn:
            return conn.execute(
                sa.select(st.idempotency).where(
                    st.idempotency.c.caller == who, st.idempotency.c.key == key
                )
            ).first()


@pytest.fixture
def api(scheme: PaymentScheme) -> Iterator[Api]:
    with TestClient(create_app(scheme)) as client:
        yield Api(scheme, client)


def _prepare(api: Api, tid: str) -> None:
    quote = {**QUOTE, "quoteId": f"q-{tid}"}
    assert api.post("mtn-rw", "/v1/quotes", quote).status_code == 201
    made = api.post("mtn-rw", "/v1/transfers", {"transferId": tid, "quoteId": f"q-{tid}"})
    assert made.status_code == 201, made.text


def test_a_commit_whose_answer_was_lost_is_answered_committed_not_409(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    _prepare(api, "t1")
    with monkeypatch.context() as m:
        m.setattr(SecurityMiddleware, "_stored_with_next", _lost)
        m.setattr(SecurityMiddleware, "_store", lambda self, values: None)
        first = api.post("maybank", "/v1/transfers/t1/commit", key="c1")
    assert first.status_code == 200 and first.json()["state"] == "COMMITTED"
    marker = api.row("maybank", "c1")
    assert marker is not None and marker.status_code == ANSWER_LOST  # written with the commit
    retry = api.post("maybank", "/v1/transfers/t1/commit", key="c1")
    assert retry.status_code == 200, retry.text
    assert retry.json() == first.json() and retry.headers["Idempotent-Replayed"] == "true"
    again = api.post("maybank", "/v1/transfers/t1/commit", key="c1")
    assert (again.status_code, again.json()) == (200, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert api.row("maybank", "c1").status_code == 200
    # Another key is another request: a second commit is still refused.
    other = api.post("maybank", "/v1/transfers/t1/commit", key="c2")
    assert other.status_code == 409 and other.json()["code"] == "invalid_state"
    # The same key with another body is refused, marker or not.
    _prepare(api, "t2")
    with monkeypatch.context() as m:
        m.setattr(SecurityMiddleware, "_stored_with_next", _lost)
        m.setattr(SecurityMiddleware, "_store", lambda self, values: None)
        assert api.post("maybank", "/v1/transfers/t2/commit", key="c3").status_code == 200
    changed = api.post("maybank", "/v1/transfers/t2/reject", {"reason": "x"}, key="c3")
    assert changed.status_code == 409 and changed.json()["errorCode"] == "3106"


async def _lost(self: SecurityMiddleware, values: Any) -> bool:
    return True  # "stored": nothing was


def test_a_partial_release_whose_answer_was_lost_is_not_paid_twice(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.scheme.create_escrow("mtn-rw", "e1", "bk-rw", "RWF", 1_000, "goods", 600, controller="hub")
    part = {"amount": {"amount": "300", "currency": "RWF"}}
    with monkeypatch.context() as m:
        m.setattr(SecurityMiddleware, "_stored_with_next", _lost)
        m.setattr(SecurityMiddleware, "_store", lambda self, values: None)
        first = api.post("hub", "/v1/escrows/e1/release", part, key="r1")
    assert first.status_code == 200 and first.json()["held"]["minor"] == 700
    retry = api.post("hub", "/v1/escrows/e1/release", part, key="r1")
    assert retry.status_code == 200 and retry.json()["held"]["minor"] == 700
    assert api.scheme.get_escrow("hub", "e1").held_minor == 700  # released once
    # a new key is a new release
    assert api.post("hub", "/v1/escrows/e1/release", part, key="r2").json()["held"]["minor"] == 400


def test_a_create_whose_answer_was_lost_is_answered_by_its_id(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert api.post("mtn-rw", "/v1/quotes", QUOTE).status_code == 201
    body = {"transferId": "t9", "quoteId": "q-lost"}
    with monkeypatch.context() as m:
        m.setattr(SecurityMiddleware, "_stored_with_next", _lost)
        m.setattr(SecurityMiddleware, "_store", lambda self, values: None)
        first = api.post("mtn-rw", "/v1/transfers", body, key="p1")
    assert first.status_code == 201
    retry = api.post("mtn-rw", "/v1/transfers", body, key="p1")
    assert (retry.status_code, retry.json()) == (201, first.json())
    assert api.row("mtn-rw", "p1").status_code == 201  # the marker filled in


def test_a_lost_registrations_retry_after_the_alias_was_removed_is_not_kept_as_404(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registration whose answer was lost is answered by the alias as it is now: removed
    since, that read is 404, and it was kept as the key's answer for good, though the
    registration was done (found by a review). Answered, not kept: the marker waits on."""
    path, body = "/v1/parties/MSISDN/+250788000111", {"displayName": "Aline", "currency": "RWF"}
    with monkeypatch.context() as m:
        m.setattr(SecurityMiddleware, "_stored_with_next", _lost)
        m.setattr(SecurityMiddleware, "_store", lambda self, values: None)
        first = api.post("mtn-rw", path, body, key="a1")
    assert first.status_code == 201, first.text
    removed = api.client.delete(path, headers=api.h["mtn-rw"])
    assert removed.status_code == 204, removed.text
    gone = api.post("mtn-rw", path, body, key="a1")
    assert gone.status_code == 404 and "Idempotent-Replayed" not in gone.headers
    assert api.row("mtn-rw", "a1").status_code == ANSWER_LOST  # not kept as the key's answer


def test_a_lost_registrations_retry_shows_no_party_registered_since_by_another(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registration whose answer was lost was answered by the alias as the directory holds
    it now: removed since and registered by another participant, its retry was told 201 with
    the other participant's party (its customer's name), as if it had registered it, and
    kept that as the key's answer (found by a review). It is told the alias is no longer its
    own (404, not kept); its own alias, still registered, is answered as before."""
    path = "/v1/parties/MSISDN/+250788000111"
    with monkeypatch.context() as m:
        m.setattr(SecurityMiddleware, "_stored_with_next", _lost)
        m.setattr(SecurityMiddleware, "_store", lambda self, values: None)
        first = api.post("mtn-rw", path, {"displayName": "Aline", "currency": "RWF"}, key="a1")
        mine = api.post("mtn-rw", "/v1/parties/MSISDN/+250788000222", FOR_MINE, key="a2")
    assert first.status_code == 201 and mine.status_code == 201, (first.text, mine.text)
    assert api.client.delete(path, headers=api.h["mtn-rw"]).status_code == 204
    api.scheme.register_alias("bk-rw", "MSISDN", "+250788000111", "Jean Habimana", "RWF")
    retry = api.post("mtn-rw", path, {"displayName": "Aline", "currency": "RWF"}, key="a1")
    assert retry.status_code == 404, retry.text
    assert retry.json()["code"] == "party_not_found" and "Idempotent-Replayed" not in retry.headers
    assert "bk-rw" not in retry.text and "Jean" not in retry.text
    assert api.row("mtn-rw", "a1").status_code == ANSWER_LOST  # not kept as the key's answer
    # its own alias, still its own: answered with it, and kept
    again = api.post("mtn-rw", "/v1/parties/MSISDN/+250788000222", FOR_MINE, key="a2")
    assert (again.status_code, again.json()) == (201, mine.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert api.row("mtn-rw", "a2").status_code == 201


FOR_MINE = {"displayName": "Claudine", "currency": "RWF"}


def test_a_lost_removals_retry_does_not_remove_the_alias_registered_again_since(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A removal whose answer was lost was run again by its retry: the number, registered
    since for a new customer, was removed too, its payers told "no party" (found by a
    review). The retry is answered as the removal was (204), and removes nothing."""
    path, body = "/v1/parties/MSISDN/+250788000111", {"displayName": "Aline", "currency": "RWF"}
    assert api.post("mtn-rw", path, body).status_code == 201
    with monkeypatch.context() as m:
        m.setattr(SecurityMiddleware, "_stored_with_next", _lost)
        m.setattr(SecurityMiddleware, "_store", lambda self, values: None)
        first = api.client.delete(path, headers={**api.h["mtn-rw"], "Idempotency-Key": "d1"})
    assert first.status_code == 204, first.text
    again = {"displayName": "Jean, the number's new holder", "currency": "RWF"}
    assert api.post("mtn-rw", path, again).status_code == 201
    retry = api.client.delete(path, headers={**api.h["mtn-rw"], "Idempotency-Key": "d1"})
    assert retry.status_code == 204, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    party = api.scheme.lookup_party("MSISDN", "+250788000111")
    assert party.display_name == "Jean, the number's new holder"
    assert api.row("mtn-rw", "d1").status_code == 204  # the key's answer now
    # a new key is a new removal
    other = api.client.delete(path, headers={**api.h["mtn-rw"], "Idempotency-Key": "d2"})
    assert other.status_code == 204


def test_a_refusal_that_keeps_part_of_its_work_is_refused_again_not_answered_as_done(
    api: Api, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit past the transfer's expiry records the abort (``commit()``) and is refused;
    a release past the escrow's deadline lets the deadline act and is refused. The marker
    was written when the unit of work opened, so it was kept with that work: the retry of a
    lost refusal was answered 200 from the resource (a release "done" whose money went back
    to the payer). Found in review."""
    _prepare(api, "t5")
    api.scheme.create_escrow("mtn-rw", "e5", "bk-rw", "RWF", 1_000, "goods", 600, controller="hub")
    clock.advance(3600)
    part = {"amount": {"amount": "300", "currency": "RWF"}}
    for who, path, body, key in (
        ("maybank", "/v1/transfers/t5/commit", None, "k5"),
        ("hub", "/v1/escrows/e5/release", part, "r5"),
    ):
        with monkeypatch.context() as m:
            m.setattr(SecurityMiddleware, "_stored_with_next", _lost)
            m.setattr(SecurityMiddleware, "_store", lambda self, values: None)
            first = api.post(who, path, body, key=key)
        assert first.status_code == 409, first.text
        assert api.row(who, key) is None  # no marker: nothing was done for the request
        retry = api.post(who, path, body, key=key)
        assert (retry.status_code, retry.json()["code"]) == (409, first.json()["code"])


def test_a_refused_operation_leaves_no_marker_and_its_refusal_is_the_keys_answer(
    api: Api,
) -> None:
    _prepare(api, "t3")
    refused = api.post("mtn-rw", "/v1/transfers/t3/commit", key="x1")  # the payer may not
    assert refused.status_code == 403
    assert api.row("mtn-rw", "x1").status_code == 403
    assert api.post("mtn-rw", "/v1/transfers/t3/commit", key="x1").status_code == 403


def test_a_close_whose_answer_was_lost_is_answered_with_the_window_it_closed(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A close names no window: it closes the one open. Its lost answer's retry closed the
    next window (or was refused, the first one not settled, and that refusal not kept); the
    marker now names the window closed, and the retry is answered with it."""
    _prepare(api, "t6")
    assert api.post("maybank", "/v1/transfers/t6/commit").status_code == 200
    with monkeypatch.context() as m:
        m.setattr(SecurityMiddleware, "_stored_with_next", _lost)
        m.setattr(SecurityMiddleware, "_store", lambda self, values: None)
        first = api.post("scheme", "/v1/settlementWindows/close", key="w1")
    assert first.status_code == 200 and first.json()["state"] == "CLOSED", first.text
    window = first.json()["id"]
    assert api.row("scheme", "w1").response == f"settlementWindow:{window}"
    retry = api.post("scheme", "/v1/settlementWindows/close", key="w1")
    assert (retry.status_code, retry.json()) == (200, first.json())
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert [w.state for w in api.scheme.list_windows()].count("CLOSED") == 1
    assert api.post("scheme", "/v1/settlementWindows/close", key="w1").json() == first.json()
    # A lost answer, the window settled before the retry: the retry tells the window as it
    # is now, and closes nothing (before, it closed the next window).
    assert api.post("scheme", f"/v1/settlementWindows/{window}/settle").status_code == 200
    with monkeypatch.context() as m:
        m.setattr(SecurityMiddleware, "_stored_with_next", _lost)
        m.setattr(SecurityMiddleware, "_store", lambda self, values: None)
        second = api.post("scheme", "/v1/settlementWindows/close", key="w2")
    assert second.status_code == 200 and second.json()["state"] == "CLOSED"
    assert api.post("scheme", f"/v1/settlementWindows/{second.json()['id']}/settle").is_success
    retry = api.post("scheme", "/v1/settlementWindows/close", key="w2")
    assert (retry.status_code, retry.json()["id"], retry.json()["state"]) == (
        200,
        second.json()["id"],
        "SETTLED",
    )
    assert [w.state for w in api.scheme.list_windows()].count("OPEN") == 1
    assert len(api.scheme.list_windows()) == 3  # two closed, one open: none closed again


def _credentials(api: Api, participant: str) -> list[Any]:
    with api.scheme.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(st.credentials).where(st.credentials.c.participant_id == participant)
            )
        )


def test_a_credential_whose_answer_was_lost_is_not_issued_twice_nor_its_secret_kept(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials are issued in a transaction of their own, outside the scheme's units of
    work, so their issue wrote no marker: a worker killed between the issue and the key's
    answer left a live credential whose secret nobody got, and the retry (same key) issued a
    second one: two live secrets for one request. The retry is now told which credential
    was issued, to revoke it, and no secret is kept or given (409 ``not_replayable``)."""
    path = "/v1/participants/maybank/credentials"
    with monkeypatch.context() as m:
        m.setattr(SecurityMiddleware, "_stored_with_next", _lost)
        m.setattr(SecurityMiddleware, "_store", lambda self, values: None)
        first = api.post("scheme", path, {}, key="cred-lost")
    assert first.status_code == 201
    issued = first.json()
    marker = api.row("scheme", "cred-lost")
    assert marker is not None and marker.status_code == ANSWER_LOST
    assert issued["secret"] not in marker.response  # the key id only
    assert len(_credentials(api, "maybank")) == 2  # the fixture's and this one

    retry = api.post("scheme", path, {}, key="cred-lost")
    assert retry.status_code == 409, retry.text
    assert retry.json()["code"] == "not_replayable"
    assert issued["keyId"] in retry.json()["detail"] and issued["secret"] not in retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert len(_credentials(api, "maybank")) == 2  # not a second one
    kept = api.row("scheme", "cred-lost")
    assert kept.status_code == 409 and issued["secret"] not in kept.response
    again = api.post("scheme", path, {}, key="cred-lost")
    assert (again.status_code, again.json()) == (409, retry.json())
    assert len(_credentials(api, "maybank")) == 2
    # the credential named is revoked as the answer says, and a new key issues another
    revoked = api.client.delete(f"{path}/{issued['keyId']}", headers=api.h["scheme"])
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert api.post("scheme", path, {}, key="cred-new").status_code == 201
    assert len(_credentials(api, "maybank")) == 3


def test_a_refused_credential_issue_leaves_no_marker(api: Api) -> None:
    refused = api.post("scheme", "/v1/participants/nobody/credentials", {}, key="cred-none")
    assert refused.status_code == 404
    assert api.row("scheme", "cred-none").status_code == 404  # the refusal, not a marker


def test_a_lost_rate_posts_retry_does_not_post_it_again_over_a_newer_rate(
    api: Api, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """An FX rate post whose answer was lost was run again by its retry: the provider's
    newer rate, posted meanwhile, was replaced by the old one (every payer quoted at a rate
    the provider had withdrawn), and the old one's validity ran again from the retry (found
    by a review). The retry is answered with the rate as it was posted, and posts nothing."""
    token = issue_credential(api.scheme.engine, "fxco").token
    h = {"Authorization": f"Bearer {token}"}
    old = {
        "sourceCurrency": "RWF",
        "targetCurrency": "MYR",
        "rate": "0.0032",
        "spreadBps": 100,
        "validSeconds": 60,
    }
    with monkeypatch.context() as m:
        m.setattr(SecurityMiddleware, "_stored_with_next", _lost)
        m.setattr(SecurityMiddleware, "_store", lambda self, values: None)
        first = api.client.post("/v1/fxRates", json=old, headers={**h, "Idempotency-Key": "r1"})
    assert first.status_code == 201, first.text
    clock.advance(5)
    newer = {**old, "rate": "0.0030"}
    assert api.client.post("/v1/fxRates", json=newer, headers=h).status_code == 201
    clock.advance(5)
    retry = api.client.post("/v1/fxRates", json=old, headers={**h, "Idempotency-Key": "r1"})
    assert (retry.status_code, retry.json()) == (201, first.json()), retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert api.scheme.find_rate("RWF", "MYR").rate == Decimal("0.0030")  # still the newer
