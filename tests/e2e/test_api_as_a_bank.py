"""docs/payments.md read by a bank's integration engineer joining the scheme: each call made
as the document writes it, against the app, and each refusal saying what is wrong."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from nacl.signing import SigningKey

from entrepot.entrypoints.api.app import create_app
from entrepot.payments import PaymentScheme
from entrepot.payments.credentials import issue_credential
from entrepot.payments.signing import sign_request


@pytest.fixture
def api(scheme: PaymentScheme) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    tokens = {p: issue_credential(scheme.engine, p).token for p in ("scheme", "mtn-rw", "maybank")}
    headers = {p: {"Authorization": f"Bearer {t}"} for p, t in tokens.items()}
    with TestClient(create_app(scheme)) as client:
        yield client, headers


def test_a_payee_rejects_as_it_commits_without_a_body(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """``POST /v1/transfers/{id}/commit`` and ``reject`` are documented alike; the reject's
    only field has a default ("rejected by payee"), yet a reject without a body was a 422
    "Field required" naming no field."""
    client, h = api
    scheme.create_quote("mtn-rw", "q-r", "MERCHANT", "KL-TILL-42", 1000, "RECEIVE", "RWF")
    scheme.prepare_transfer("mtn-rw", "t-r", "q-r")
    r = client.post("/v1/transfers/t-r/reject", headers=h["maybank"])
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["reason"]) == ("ABORTED", "rejected by payee")


def test_the_operator_issues_a_credential_without_a_body(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """``POST /v1/participants/{id}/credentials``: a key to bind is optional, so is the body."""
    client, h = api
    r = client.post("/v1/participants/maybank/credentials", headers=h["scheme"])
    assert r.status_code == 201, r.text
    assert r.json()["participantId"] == "maybank" and r.headers["cache-control"] == "no-store"
    issued = {"Authorization": f"Bearer {r.json()['token']}"}
    assert client.get("/v1/participants/maybank", headers=issued).status_code == 200


@pytest.mark.parametrize("path", ["/v1/quotes", "/v1/transfers", "/v1/escrows"])
def test_a_request_without_its_body_is_told_so(
    api: tuple[TestClient, dict[str, dict[str, str]]], path: str
) -> None:
    """A write sent without its JSON body was answered "Field required", naming no field: the
    caller could not tell that the whole body was missing."""
    client, h = api
    r = client.post(path, headers=h["mtn-rw"])
    assert r.status_code == 422, r.text
    problem = r.json()
    assert (problem["code"], problem["errorCode"]) == ("invalid_input", "3100"), problem
    assert "field" not in problem, problem
    assert "JSON body" in problem["detail"], problem


def _documented(code: str) -> tuple[int, str] | None:
    """The row of docs/payments.md's table of error codes for ``code``: (HTTP, errorCode)."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "payments.md").read_text()
    row = re.search(rf"^\s*\| `{code}` \| (\d{{3}}) \| (\d{{4}}) \|", doc, re.M)
    return None if row is None else (int(row[1]), row[2])


def test_an_amount_or_currency_the_money_rules_refuse_has_a_documented_code(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """An amount with more decimals than its currency has, or a currency code that is not
    ISO 4217, is refused by the money rules the ledger shares: ``invalid_amount`` and
    ``unknown_currency``, which were in no table of docs/payments.md and carried no Mojaloop
    ``errorCode``, so a bank mapping errors by their family had nothing to go on."""
    client, h = api
    quote = {
        "quoteId": "q-dec",
        "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-TILL-42"},
        "amountType": "SEND",
        "amount": {"amount": "1.5", "currency": "RWF"},
        "sourceCurrency": "RWF",
    }
    for r, code in (
        (client.post("/v1/quotes", json=quote, headers=h["mtn-rw"]), "invalid_amount"),
        (
            client.get("/v1/participants/mtn-rw/liquidity/ABC", headers=h["mtn-rw"]),
            "unknown_currency",
        ),
    ):
        problem = r.json()
        assert problem["code"] == code, problem
        assert (r.status_code, problem.get("errorCode")) == (422, "3100"), problem
        assert _documented(code) == (422, "3100"), code


def test_more_than_an_escrow_holds_is_refused_in_the_amounts_sent(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """A release of 12.50 MYR from an escrow of 10.00 MYR was refused as "holds 1000, not
    1250": minor units, without their currency, for amounts the caller wrote as decimals."""
    client, h = api
    escrow = {
        "escrowId": "e-myr",
        "payeeFsp": "fxco",
        "amount": {"amount": "10.00", "currency": "MYR"},
        "purpose": "order-7",
        "deadlineSeconds": 3600,
    }
    assert client.post("/v1/escrows", json=escrow, headers=h["maybank"]).status_code == 201
    r = client.post(
        "/v1/escrows/e-myr/release",
        json={"amount": {"amount": "12.50", "currency": "MYR"}},
        headers=h["maybank"],
    )
    assert (r.status_code, r.json()["code"]) == (409, "insufficient_escrow"), r.text
    assert r.json()["detail"] == "escrow e-myr holds 10.00 MYR, not 12.50 MYR", r.text


@pytest.mark.parametrize("amount", ["0", "0.00"])
def test_a_zero_amount_qr_is_refused_in_the_words_of_its_tag(
    api: tuple[TestClient, dict[str, dict[str, str]]], amount: str
) -> None:
    """``/v1/qr/encode`` with an amount of 0 is ``qr_bad_value`` on tag 54 (docs/payments.md,
    Zero amounts), but its detail was "amount_minor must be > 0, got 0": a parameter of the
    encoder's, in no request. It says what the decoder says of a zero tag 54."""
    client, h = api
    body = {
        "tillId": "KL-TILL-42",
        "merchantName": "Kedai Kopi KL",
        "city": "Kuala Lumpur",
        "country": "MY",
        "currency": "MYR",
        "amount": amount,
    }
    r = client.post("/v1/qr/encode", json=body, headers=h["maybank"])
    problem = r.json()
    # the field as the request spells it (a review: it was the tag, "54")
    assert (r.status_code, problem["code"], problem["field"]) == (422, "qr_bad_value", "amount")
    assert "amount_minor" not in problem["detail"], problem
    assert problem["detail"].startswith("tag 54 (transaction amount)"), problem
    assert "different from zero" in problem["detail"] and "leaves tag 54 out" in problem["detail"]


def test_a_signature_over_another_target_is_told_the_one_the_server_verified(
    scheme: PaymentScheme,
) -> None:
    """An IBAN looked up as a person writes it, with spaces: the client signed the path it
    had in hand, its HTTP library sent it percent-encoded, and the 401 said only that the
    signature "does not verify", not over what. It names what the server verified: the
    method and target as sent, and the body's digest."""
    scheme.register_alias("maybank", "IBAN", "DE89370400440532013000", "Hans", "MYR")
    key = SigningKey.generate()
    public = base64.b64encode(bytes(key.verify_key)).decode()
    token = issue_credential(scheme.engine, "mtn-rw", public_key_b64=public).token
    bearer = {"Authorization": f"Bearer {token}"}
    written = "/v1/parties/IBAN/DE89 3704 0044 0532 0130 00"
    sent = "/v1/parties/IBAN/DE89%203704%200044%200532%200130%2000"
    with TestClient(create_app(scheme)) as client:
        r = client.get(written, headers={**bearer, **sign_request(key, "GET", written)})
        assert (r.status_code, r.json()["code"]) == (401, "bad_signature"), r.text
        detail = r.json()["detail"]
        assert f"GET {sent}" in detail, detail
        assert hashlib.sha256(b"").hexdigest() in detail, detail
        r = client.get(written, headers={**bearer, **sign_request(key, "GET", sent)})
        assert r.status_code == 200 and r.json()["fspId"] == "maybank", r.text


def test_a_notices_body_is_documented_as_it_is_sent(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """docs/payments.md said the API's amounts are "an amount as everywhere (``amount``,
    ``currency``, ``minor``)" and said nothing of a notice's body, whose amounts are minor
    units and a currency only: a receiver parsing ``amount`` found none."""
    client, h = api
    scheme.set_endpoint("maybank", "https://maybank.example/callbacks")
    scheme.create_quote("mtn-rw", "q-n", "MERCHANT", "KL-TILL-42", 1000, "RECEIVE", "RWF")
    scheme.prepare_transfer("mtn-rw", "t-n", "q-n")
    (notice,) = client.get("/v1/notifications", headers=h["maybank"]).json()["notifications"]
    body = notice["body"]
    assert body["receiveAmount"] == {"minor": 1000, "currency": "MYR"}, body
    docs = " ".join(
        (Path(__file__).resolve().parents[2] / "docs" / "payments.md").read_text().split()
    )
    assert ", ".join(f"`{k}`" for k in body) in docs, list(body)
    assert 'amounts as `{"minor": ..., "currency": ...}`' in docs
