"""The security middleware's guarantees: issued secrets are kept nowhere, revocation is
immediate, only an operation's outcome is kept as an Idempotency-Key's answer, and a signed
request cannot be replayed or altered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from entrepot.entrypoints.api.app import create_app
from entrepot.payments import PaymentScheme
from entrepot.payments import store as st
from entrepot.payments.credentials import issue_credential, revoke_credential

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
