"""The security middleware's guarantees: issued secrets are kept nowhere, revocation is
immediate, only an operation's outcome is kept as an Idempotency-Key's answer, and a signed
request cannot be replayed or altered."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from nacl.signing import SigningKey

from entrepot.entrypoints.api import security
from entrepot.entrypoints.api.app import create_app
from entrepot.entrypoints.api.security import SIGNATURE_WINDOW_S, caller_dependency, caller_of
from entrepot.payments import PaymentScheme
from entrepot.payments import store as st
from entrepot.payments.credentials import issue_credential, revoke_credential
from entrepot.payments.signing import sign_request
from entrepot.storage.migrate import downgrade, upgrade

_real_time = time.time

QUOTE = {
    "quoteId": "q-sec",
    "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-TILL-42"},
    "amountType": "SEND",
    "amount": {"amount": "5000", "currency": "RWF"},
    "sourceCurrency": "RWF",
}


@pytest.fixture
def api(scheme: PaymentScheme) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    tokens = {p: issue_credential(scheme.engine, p).token for p in ("scheme", "mtn-rw", "icbc")}
    headers = {p: {"Authorization": f"Bearer {t}"} for p, t in tokens.items()}
    with TestClient(create_app(scheme)) as client:
        yield client, headers


def test_served_below_a_root_path_every_v1_request_is_authenticated(
    scheme: PaymentScheme, api: tuple[TestClient, dict[str, dict[str, str]]]
) -> None:
    """Behind a proxy at ``/api`` (uvicorn ``--root-path``), the middleware saw the path
    ``/api/v1/...``, took it for one outside the API and let it through unauthenticated: every
    request was a 500, and with assertions off (``python -O``) anyone could read parties."""
    client, h = api
    behind = TestClient(client.app, root_path="/api", raise_server_exceptions=False)
    anonymous = behind.get("/api/v1/parties/MSISDN/+250788123456")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthenticated"
    assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="entrepot"'
    mine = behind.get("/api/v1/participants/mtn-rw", headers=h["mtn-rw"])
    assert mine.status_code == 200 and mine.json()["id"] == "mtn-rw"
    other = behind.get("/api/v1/participants/icbc", headers=h["mtn-rw"])
    assert other.status_code == 403
    assert behind.get("/api/openapi.json").status_code == 200  # public, as at the root
    keyed = {**h["mtn-rw"], "Idempotency-Key": "behind-1"}
    first = behind.post("/api/v1/quotes", json=QUOTE, headers=keyed)
    again = behind.post("/api/v1/quotes", json=QUOTE, headers=keyed)
    assert first.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"


def test_a_route_reached_without_the_middleware_is_refused_not_served_as_no_one(
    scheme: PaymentScheme, api: tuple[TestClient, dict[str, dict[str, str]]]
) -> None:
    """``caller_of``'s 401 is the middleware's: its code, words, challenge and Mojaloop's
    3105 (it had no ``errorCode``)."""
    request = Request({"type": "http", "method": "GET", "path": "/v1/x", "headers": []})
    with pytest.raises(Exception) as refused:
        caller_of(request)
    assert getattr(refused.value, "status_code", None) == 401
    client, _ = api

    def outside(caller: Annotated[str, Depends(caller_dependency)]) -> dict[str, str]:
        return {"caller": caller}  # pragma: no cover - never reached

    assert isinstance(client.app, FastAPI)
    client.app.add_api_route("/outside-v1", outside)  # a path the middleware leaves alone
    unguarded = client.get("/outside-v1")
    guarded = client.get("/v1/transfers")
    assert unguarded.status_code == guarded.status_code == 401
    assert unguarded.json() == guarded.json()
    assert unguarded.json()["errorCode"] == "3105"
    assert unguarded.headers["WWW-Authenticate"] == guarded.headers["WWW-Authenticate"]
    assert unguarded.headers["content-type"] == guarded.headers["content-type"]


def test_a_401_carries_its_challenge(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """RFC 9110 11.6.1: a 401 must say how to authenticate (RFC 6750 for bearer tokens)."""
    client, _ = api
    missing = client.get("/v1/transfers")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="entrepot"'
    wrong = client.get("/v1/transfers", headers={"Authorization": "Bearer k1.nope"})
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == 'Bearer realm="entrepot", error="invalid_token"'


def _kept(scheme: PaymentScheme) -> list[str]:
    with scheme.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.select(st.idempotency.c.response))]


def _credentials_of(scheme: PaymentScheme, participant: str) -> int:
    with scheme.engine.connect() as conn:
        query = sa.select(sa.func.count()).where(st.credentials.c.participant_id == participant)
        return int(conn.execute(query).scalar_one())


def test_an_issued_secret_is_never_kept_and_a_retry_is_told_not_given_another(
    scheme: PaymentScheme, api: tuple[TestClient, dict[str, dict[str, str]]]
) -> None:
    client, h = api
    keyed = {**h["scheme"], "Idempotency-Key": "cred-1"}
    first = client.post("/v1/participants/icbc/credentials", json={}, headers=keyed)
    assert first.status_code == 201 and first.headers["Cache-Control"] == "no-store"
    issued = first.json()
    kept = _kept(scheme)
    assert len(kept) == 1 and issued["secret"] not in kept[0] and issued["token"] not in kept[0]
    retry = client.post("/v1/participants/icbc/credentials", json={}, headers=keyed)
    assert retry.status_code == 409 and retry.json()["code"] == "not_replayable"
    assert issued["keyId"] in retry.json()["detail"] and issued["secret"] not in retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert _credentials_of(scheme, "icbc") == 2  # the fixture's and the first request's
    other = client.post(
        "/v1/participants/icbc/credentials",
        json={"publicKey": "A" * 43 + "="},
        headers=keyed,
    )
    assert other.status_code == 409 and other.json()["errorCode"] == "3106"


def test_a_revoked_credential_is_refused_on_its_next_request(
    scheme: PaymentScheme, api: tuple[TestClient, dict[str, dict[str, str]]]
) -> None:
    client, h = api
    assert client.get("/v1/participants/icbc", headers=h["icbc"]).status_code == 200
    with TestClient(create_app(scheme)) as another_worker:
        assert another_worker.get("/v1/participants/icbc", headers=h["icbc"]).status_code == 200
        key_id = h["icbc"]["Authorization"].split()[1].partition(".")[0]
        revoke_credential(scheme.engine, key_id)
        for worker in (client, another_worker):
            refused = worker.get("/v1/participants/icbc", headers=h["icbc"])
            assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"


def test_credentials_are_listed_and_revoked_through_the_api(
    scheme: PaymentScheme, api: tuple[TestClient, dict[str, dict[str, str]]]
) -> None:
    """The operator and the participant itself list its credentials (never a secret) and
    revoke one; another participant may not; a key named under another participant is 404."""
    client, h = api
    key_id = h["icbc"]["Authorization"].split()[1].partition(".")[0]
    spare = client.post("/v1/participants/icbc/credentials", headers=h["scheme"], json={})
    spare_key = spare.json()["keyId"]
    listed = client.get("/v1/participants/icbc/credentials", headers=h["icbc"])
    assert listed.status_code == 200
    assert {c["keyId"]: c["revoked"] for c in listed.json()} == {key_id: False, spare_key: False}
    assert "secret" not in listed.text and spare.json()["secret"] not in listed.text
    assert client.get("/v1/participants/icbc/credentials", headers=h["mtn-rw"]).status_code == 403
    path = f"/v1/participants/icbc/credentials/{spare_key}"
    assert client.delete(path, headers=h["mtn-rw"]).status_code == 403
    wrong = client.delete(f"/v1/participants/mtn-rw/credentials/{spare_key}", headers=h["scheme"])
    assert wrong.status_code == 404 and wrong.json()["code"] == "credential_not_found"
    revoked = client.delete(path, headers=h["scheme"])
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    spare_auth = {"Authorization": f"Bearer {spare.json()['token']}"}
    assert client.get("/v1/participants/icbc", headers=spare_auth).status_code == 401
    mine = client.delete(f"/v1/participants/icbc/credentials/{key_id}", headers=h["icbc"])
    assert mine.status_code == 200  # its own: the request that revokes it is the last
    assert client.get("/v1/participants/icbc", headers=h["icbc"]).status_code == 401


def test_a_redirect_is_not_kept_as_the_keys_answer(
    scheme: PaymentScheme, api: tuple[TestClient, dict[str, dict[str, str]]]
) -> None:
    client, h = api
    keyed = {**h["mtn-rw"], "Idempotency-Key": "k-slash"}
    moved = client.post("/v1/quotes/", json=QUOTE, headers=keyed, follow_redirects=False)
    assert moved.status_code == 307 and _kept(scheme) == []
    made = client.post(moved.headers["location"], json=QUOTE, headers=keyed)
    assert made.status_code == 201
    again = client.post("/v1/quotes", json=QUOTE, headers=keyed)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    # the very request first sent, retried: the same request, so the same answer (it was a
    # 409 "used with a different request": the kept answer's path had no slash)
    retried = client.post("/v1/quotes/", json=QUOTE, headers=keyed, follow_redirects=False)
    assert retried.status_code == 201 and retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json() == made.json()
    other = client.post("/v1/quotes/", json={**QUOTE, "quoteId": "q-other"}, headers=keyed)
    assert other.status_code == 409 and other.json()["errorCode"] == "3106"


def test_the_query_string_is_part_of_the_keyed_request(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, h = api
    keyed = {**h["mtn-rw"], "Idempotency-Key": "k-query"}
    assert client.post("/v1/quotes", json=QUOTE, headers=keyed).status_code == 201
    other = client.post("/v1/quotes?dryRun=true", json=QUOTE, headers=keyed)
    assert other.status_code == 409 and other.json()["errorCode"] == "3106"
    same = client.post("/v1/quotes", json=QUOTE, headers=keyed)
    assert same.status_code == 201 and same.headers["Idempotent-Replayed"] == "true"


def test_an_escaped_question_mark_in_the_path_is_not_the_query(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """Found by a review: the path is decoded before it is hashed, so "/x%3Fa=1" (a 404,
    stored) and "/x?a=1" were one request to the key, and the second was answered the
    first's 404 as a replay instead of 409 (or running)."""
    client, h = api
    keyed = {**h["mtn-rw"], "Idempotency-Key": "k-escaped"}
    first = client.post("/v1/quotes%3FdryRun=true", json=QUOTE, headers=keyed)
    assert first.status_code == 404
    other = client.post("/v1/quotes?dryRun=true", json=QUOTE, headers=keyed)
    assert other.status_code == 409 and other.json()["errorCode"] == "3106"
    assert "Idempotent-Replayed" not in other.headers


# ------------------------------------------------------------------ signed requests
RATE = {"sourceCurrency": "RWF", "targetCurrency": "MYR", "rate": "0.0032", "spreadBps": 100}


@pytest.fixture
def signer(scheme: PaymentScheme) -> Iterator[tuple[TestClient, SigningKey, dict[str, str]]]:
    """icbc's credential, bound to an Ed25519 key: every request of it must be signed."""
    key = SigningKey.generate()
    public = base64.b64encode(bytes(key.verify_key)).decode()
    token = issue_credential(scheme.engine, "icbc", public_key_b64=public).token
    with TestClient(create_app(scheme)) as client:
        yield client, key, {"Authorization": f"Bearer {token}"}


def _refused(response: Any, why: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].endswith('error="invalid_token"')
    assert response.json()["code"] == "bad_signature" and why in response.json()["detail"]


def test_a_signed_request_follows_the_documented_form(
    signer: tuple[TestClient, SigningKey, dict[str, str]],
) -> None:
    """Built by hand from the README's description, not with ``sign_request``."""
    client, key, bearer = signer
    body = json.dumps({"quoteId": "q-signed"}).encode()
    date, nonce = str(int(time.time())), "n0nce-0123456789abc"
    message = "\n".join(
        [
            "entrepot-request-v1",
            date,
            nonce,
            "POST",
            "/v1/quotes?dryRun=1",
            "k-signed",
            hashlib.sha256(body).hexdigest(),
        ]
    ).encode()
    headers = {
        **bearer,
        "Content-Type": "application/json",
        "Idempotency-Key": "k-signed",
        "X-Entrepot-Date": date,
        "X-Entrepot-Nonce": nonce,
        "X-Signature": base64.b64encode(key.sign(message).signature).decode(),
    }
    answer = client.post("/v1/quotes?dryRun=1", content=body, headers=headers)
    assert answer.status_code == 422  # signed and accepted: the body itself is incomplete


def test_an_idempotency_key_outside_printable_ascii_is_refused_whoever_signs_it(
    scheme: PaymentScheme,
    api: tuple[TestClient, dict[str, dict[str, str]]],
    signer: tuple[TestClient, SigningKey, dict[str, str]],
) -> None:
    """A key's bytes reach the server decoded as Latin-1, so a key a client signed as UTF-8
    ("clé") never verified: each retry was told its signature was wrong. A key is an ASCII
    string (the IETF draft's sf-string); any other is refused saying so, nothing done."""
    body = json.dumps(QUOTE).encode()
    client, key, bearer = signer
    signed = sign_request(key, "POST", "/v1/quotes", body, idempotency_key="clé")
    sent = {
        **bearer,
        **{k: v for k, v in signed.items() if k != "Idempotency-Key"},
        "Content-Type": "application/json",
    }
    answer = client.post(
        "/v1/quotes", content=body, headers={**sent, "Idempotency-Key": "clé".encode()}
    )
    plain_client, h = api
    quoted = {**h["mtn-rw"], "Content-Type": "application/json"}
    latin1 = {**quoted, "Idempotency-Key": "cl\xe9".encode("latin-1")}
    tab = {**quoted, "Idempotency-Key": "a\tb"}
    for response in (
        answer,
        plain_client.post("/v1/quotes", content=body, headers=latin1),
        plain_client.post("/v1/quotes", content=body, headers=tab),
    ):
        assert response.status_code == 400, response.text
        problem = response.json()
        assert (problem["code"], problem["field"]) == ("invalid_input", "Idempotency-Key")
        assert "printable ASCII" in problem["detail"]
    with scheme.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pay_quotes")).scalar() == 0
    ok = plain_client.post(
        "/v1/quotes", json=QUOTE, headers={**h["mtn-rw"], "Idempotency-Key": "k 1~"}
    )
    assert ok.status_code == 201, ok.text


def test_a_signed_request_is_accepted_once(
    scheme: PaymentScheme, signer: tuple[TestClient, SigningKey, dict[str, str]]
) -> None:
    client, key, bearer = signer
    path = "/v1/participants/icbc"
    signed = {**bearer, **sign_request(key, "GET", path)}
    assert client.get(path, headers=signed).status_code == 200
    _refused(client.get(path, headers=signed), "used already")
    with TestClient(create_app(scheme)) as another_worker:  # the nonces are in the database
        _refused(another_worker.get(path, headers=signed), "used already")
    again = {**bearer, **sign_request(key, "GET", path)}  # signed afresh: accepted
    assert client.get(path, headers=again).status_code == 200


def test_a_signed_request_is_accepted_once_whichever_credential_of_its_key_carries_it(
    scheme: PaymentScheme, signer: tuple[TestClient, SigningKey, dict[str, str]]
) -> None:
    """The signature does not cover the credential, so nonces were kept per credential: a
    participant holding two credentials bound to one key (per worker, or a secret rotated
    and the key kept) had a captured signed request accepted again under the other one, a
    second partial escrow release, say. Whoever captures its traffic holds both tokens."""
    client, key, bearer = signer
    public = base64.b64encode(bytes(key.verify_key)).decode()
    second = issue_credential(scheme.engine, "icbc", public_key_b64=public).token
    path = "/v1/participants/icbc"
    signed = sign_request(key, "GET", path)
    assert client.get(path, headers={**bearer, **signed}).status_code == 200
    _refused(
        client.get(path, headers={"Authorization": f"Bearer {second}", **signed}), "used already"
    )
    body = json.dumps({**RATE, "validSeconds": 3600}).encode()
    posted = {"Content-Type": "application/json", **sign_request(key, "POST", "/v1/fxRates", body)}
    first = client.post("/v1/fxRates", content=body, headers={**bearer, **posted})
    assert first.status_code in (201, 403), first.text  # signed: past the middleware
    again = {"Authorization": f"Bearer {second}", **posted}
    _refused(client.post("/v1/fxRates", content=body, headers=again), "used already")


def test_a_captured_write_cannot_be_posted_again_even_with_another_key(
    signer: tuple[TestClient, SigningKey, dict[str, str]],
) -> None:
    client, key, bearer = signer
    body = json.dumps({**RATE, "validSeconds": 3600}).encode()
    signed = {**bearer, "Content-Type": "application/json"}
    signed |= sign_request(key, "POST", "/v1/fxRates", body, idempotency_key="a")
    first = client.post("/v1/fxRates", content=body, headers=signed)
    assert first.status_code in (200, 201, 403), first.text  # signed: past the middleware
    _refused(client.post("/v1/fxRates", content=body, headers=signed), "used already")
    _refused(
        client.post("/v1/fxRates", content=body, headers={**signed, "Idempotency-Key": "b"}),
        "does not verify",
    )
    without = {k: v for k, v in signed.items() if k != "Idempotency-Key"}
    _refused(client.post("/v1/fxRates", content=body, headers=without), "does not verify")


def test_a_stale_or_future_timestamp_is_refused(
    signer: tuple[TestClient, SigningKey, dict[str, str]],
) -> None:
    client, key, bearer = signer
    path = "/v1/participants/icbc"
    for skew in (-SIGNATURE_WINDOW_S - 5, SIGNATURE_WINDOW_S + 5):
        old = sign_request(key, "GET", path, now=time.time() + skew)
        _refused(client.get(path, headers={**bearer, **old}), "from the server's clock")
    missing = {k: v for k, v in sign_request(key, "GET", path).items() if k != "X-Entrepot-Date"}
    _refused(client.get(path, headers={**bearer, **missing}), "X-Entrepot-Date")
    short = sign_request(key, "GET", path, nonce="short")
    _refused(client.get(path, headers={**bearer, **short}), "X-Entrepot-Nonce")


def test_a_tampered_query_path_or_body_is_refused(
    signer: tuple[TestClient, SigningKey, dict[str, str]],
) -> None:
    client, key, bearer = signer
    signed = {**bearer, **sign_request(key, "GET", "/v1/transfers?limit=1")}
    _refused(client.get("/v1/transfers?limit=1&after=zzz", headers=signed), "does not verify")
    _refused(client.get("/v1/transfers", headers=signed), "does not verify")
    _refused(client.get("/v1/participants/icbc", headers=signed), "does not verify")
    body = json.dumps({**RATE, "validSeconds": 60}).encode()
    posted = {**bearer, **sign_request(key, "POST", "/v1/fxRates", body)}
    other = json.dumps({**RATE, "validSeconds": 61}).encode()
    _refused(client.post("/v1/fxRates", content=other, headers=posted), "does not verify")
    assert client.get("/v1/transfers?limit=1", headers=signed).status_code == 200


def test_stale_nonces_are_dropped(
    scheme: PaymentScheme,
    signer: tuple[TestClient, SigningKey, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, key, bearer = signer
    path = "/v1/participants/icbc"
    old = sign_request(key, "GET", path, now=time.time() - SIGNATURE_WINDOW_S + 2)
    assert client.get(path, headers={**bearer, **old}).status_code == 200
    monkeypatch.setattr(security, "NONCE_PURGE_S", 0.0)

    def nonces() -> list[str]:
        with scheme.engine.connect() as conn:
            return list(conn.execute(sa.select(st.request_nonces.c.nonce)).scalars().all())

    # Expired 8 s ago: kept a window longer (a server whose clock runs ahead must not drop
    # what one on time still accepts)
    monkeypatch.setattr(security.time, "time", lambda: _real_time() + 10)
    now = sign_request(key, "GET", path, now=_real_time() + 10)
    assert client.get(path, headers={**bearer, **now}).status_code == 200
    assert sorted(nonces()) == sorted([old["X-Entrepot-Nonce"], now["X-Entrepot-Nonce"]])
    later = _real_time() + SIGNATURE_WINDOW_S + 10
    monkeypatch.setattr(security.time, "time", lambda: later)
    last = sign_request(key, "GET", path, now=later)
    assert client.get(path, headers={**bearer, **last}).status_code == 200
    assert sorted(nonces()) == sorted([now["X-Entrepot-Nonce"], last["X-Entrepot-Nonce"]])


def test_migration_0013_goes_down_and_up(scheme: PaymentScheme) -> None:
    downgrade(scheme.engine, "0012_window_settled")
    assert "pay_request_nonces" not in sa.inspect(scheme.engine).get_table_names()
    upgrade(scheme.engine)
    assert "pay_request_nonces" in sa.inspect(scheme.engine).get_table_names()


def test_the_token_verifier_on_postgres_reconnects_and_leaves_the_pool_as_it_was(
    scheme: PaymentScheme,
) -> None:
    """On PostgreSQL the verifier reads through an autocommit connection of its own, taken
    out of the pool (so no pooled connection is left in autocommit), and opens a new one once
    when the server dropped it."""
    from entrepot.payments.credentials import TokenVerifier
    from entrepot.storage.engine import is_postgres

    if not is_postgres(scheme.engine):
        pytest.skip("the PostgreSQL connection's behaviour")
    token = issue_credential(scheme.engine, "mtn-rw").token
    verifier = TokenVerifier(scheme.engine)
    try:
        caller = verifier(token)
        assert caller is not None and caller.participant_id == "mtn-rw"
        verifier._driver.close()  # as if the server had dropped it
        caller = verifier(token)
        assert caller is not None and caller.participant_id == "mtn-rw"
        assert verifier(token + "x") is None
        with scheme.engine.connect() as conn:
            assert conn.connection.driver_connection.autocommit is False
    finally:
        verifier.close()


def test_a_reviews_verdict_names_the_credential_it_came_with_and_the_reviewer(
    scheme: PaymentScheme,
) -> None:
    """Through the API, the verdict the decision log keeps names the operator's credential
    the review was sent with (which the operator can issue one per member of staff) and the
    reviewer the body names; a malformed reviewer id is 422 and leaves the transfer held."""
    from entrepot.payments.model import TransferState
    from entrepot.risk.decisions import MemorySink
    from tests.service.test_payments_screening import LISTS, _held_by_sanctions

    if not (LISTS / "ofac_sdn.csv").is_file():
        pytest.skip(f"the OFAC snapshot is not at {LISTS}")
    sink = MemorySink()
    _held_by_sanctions(scheme, sink)
    issued = issue_credential(scheme.engine, "scheme")
    operator = {"Authorization": f"Bearer {issued.token}"}
    with TestClient(create_app(scheme)) as client:
        bad = client.post(
            "/v1/transfers/t-h/review",
            json={"approve": True, "reason": "ok", "reviewerId": "ops amina"},
            headers=operator,
        )
        assert bad.status_code == 422 and bad.json()["field"] == "reviewerId"
        assert scheme.get_transfer("scheme", "t-h").state is TransferState.HOLD
        done = client.post(
            "/v1/transfers/t-h/review",
            json={"approve": True, "reason": "registry checked", "reviewerId": "ops-amina"},
            headers=operator,
        )
        assert done.status_code == 200 and done.json()["state"] == "RESERVED"
    _, verdict = list(sink)
    assert verdict.inputs["credential"] == issued.key_id
    assert verdict.inputs["reviewer_id"] == "ops-amina"
