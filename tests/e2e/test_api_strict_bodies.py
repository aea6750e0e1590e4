"""What a request body's fields take on the wire: an integer field a JSON integer only (lax
parsing read ``true`` as 1 and ``"600"`` as 600), and a till id what the directory
registers."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from entrepot.entrypoints.api import schemas, schemas_risk, schemas_trade
from entrepot.entrypoints.api.app import create_app
from entrepot.payments import PaymentScheme
from entrepot.payments.aliases import normalise_alias
from entrepot.payments.credentials import issue_credential
from tests.service.test_payments import snapshot


@pytest.fixture
def api(scheme: PaymentScheme) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    tokens = {p: issue_credential(scheme.engine, p).token for p in ("mtn-rw", "maybank")}
    headers = {p: {"Authorization": f"Bearer {t}"} for p, t in tokens.items()}
    with TestClient(create_app(scheme)) as client:
        yield client, headers


def _request_models() -> list[type[BaseModel]]:
    found = {
        value
        for module in (schemas, schemas_trade, schemas_risk)
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, schemas.Strict)
        and value is not schemas.Strict
    }
    return sorted(found, key=lambda m: (m.__module__, m.__name__))


def _holds(annotation: Any, kind: type) -> bool:
    """Whether a field's annotation is ``kind`` (``int`` or ``bool``, never the other), within
    an ``Annotated`` or an ``Optional``."""
    if annotation is kind:
        return True
    if typing.get_origin(annotation) is typing.Annotated:  # within an Optional
        return _holds(typing.get_args(annotation)[0], kind)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_holds(a, kind) for a in typing.get_args(annotation))
    return False


def _fields(kind: type) -> list[tuple[type[BaseModel], str]]:
    return [
        (model, name)
        for model in _request_models()
        for name, info in model.model_fields.items()
        if _holds(info.annotation, kind)
    ]


INT_FIELDS = _fields(int)
BOOL_FIELDS = _fields(bool)


def test_the_bool_fields_found_are_the_request_bodies_booleans() -> None:
    named = {f"{m.__name__}.{n}" for m, n in BOOL_FIELDS}
    assert named == {
        "ReviewIn.approve",
        "HubIn.dftz",
        "MerchantReviewIn.approve",
        "ItemPatchIn.active",
        "ReturnAnswerIn.accept",
    }


@pytest.mark.parametrize(
    ("model", "name"), BOOL_FIELDS, ids=[f"{m.__name__}.{n}" for m, n in BOOL_FIELDS]
)
@pytest.mark.parametrize("sent", [1, 0, "true", "yes", "no", "on", "0"])
def test_every_bool_field_of_a_request_body_takes_a_json_boolean_only(
    model: type[BaseModel], name: str, sent: object
) -> None:
    """Lax parsing took ``"yes"``, ``"on"``, ``1`` and ``"0"`` for booleans: a review's
    ``"approve": "no"`` read as a decision, whichever way a client meant it."""
    with pytest.raises(ValidationError) as refused:
        model.model_validate({name: sent})
    at_field = [e for e in refused.value.errors() if e["loc"] == (name,)]
    assert [e["type"] for e in at_field] == ["bool_type"], at_field


def test_the_int_fields_found_are_the_request_bodies_integers() -> None:
    """Not an empty sweep: the fields of the defect and one of each API are among them."""
    named = {f"{m.__name__}.{n}" for m, n in INT_FIELDS}
    assert {
        "EscrowIn.deadlineSeconds",
        "QuoteIn.expirySeconds",
        "TransferIn.expirySeconds",
        "FxRateIn.spreadBps",
        "FxRateIn.validSeconds",
        "TradeQuoteIn.expirySeconds",
        "HubIn.commissionBps",
        "ItemPatchIn.priceMinor",
        "PolicyIn.termDays",
        "AcceptIn.amountMinor",
    } <= named
    assert len(INT_FIELDS) >= 40, sorted(named)


@pytest.mark.parametrize(
    ("model", "name"), INT_FIELDS, ids=[f"{m.__name__}.{n}" for m, n in INT_FIELDS]
)
@pytest.mark.parametrize("sent", [True, False, "600", "1", 60.0])
def test_every_int_field_of_a_request_body_takes_a_json_integer_only(
    model: type[BaseModel], name: str, sent: object
) -> None:
    with pytest.raises(ValidationError) as refused:
        model.model_validate({name: sent})
    at_field = [e for e in refused.value.errors() if e["loc"] == (name,)]
    assert [e["type"] for e in at_field] == ["int_type"], at_field


def test_an_escrow_whose_deadline_is_true_is_refused_not_made_a_one_second_escrow(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """``"deadlineSeconds": true`` was read as 1: a one-second escrow, whose deadline then
    paid the payee. It is a 422 naming the field, and nothing is held."""
    client, h = api
    body = {
        "escrowId": "e-bool",
        "payeeFsp": "fxco",
        "amount": {"amount": "10.00", "currency": "MYR"},
        "purpose": "order 7",
        "onDeadline": "release",
    }
    before = snapshot(scheme)
    for sent in (True, "600", 600.0):
        r = client.post("/v1/escrows", json={**body, "deadlineSeconds": sent}, headers=h["maybank"])
        problem = r.json()
        assert r.status_code == 422, r.text
        assert (problem["code"], problem["field"], problem["errorCode"]) == (
            "invalid_input",
            "deadlineSeconds",
            "3100",
        )
    assert client.get("/v1/escrows/e-bool", headers=h["maybank"]).status_code == 404
    assert snapshot(scheme) == before
    made = client.post("/v1/escrows", json={**body, "deadlineSeconds": 600}, headers=h["maybank"])
    assert made.status_code == 201, made.text


def test_a_quote_rate_or_transfer_integer_sent_as_text_or_bool_is_refused(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    client, h = api
    fxco = {"Authorization": f"Bearer {issue_credential(scheme.engine, 'fxco').token}"}
    rate = {"sourceCurrency": "RWF", "targetCurrency": "MYR", "rate": "0.0032"}
    quote = {
        "quoteId": "q-strict",
        "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-TILL-42"},
        "amountType": "SEND",
        "amount": {"amount": "5000", "currency": "RWF"},
        "sourceCurrency": "RWF",
    }
    before = snapshot(scheme)
    for path, body, who, field in (
        ("/v1/fxRates", {**rate, "spreadBps": "100", "validSeconds": 60}, fxco, "spreadBps"),
        ("/v1/fxRates", {**rate, "spreadBps": 100, "validSeconds": True}, fxco, "validSeconds"),
        ("/v1/quotes", {**quote, "expirySeconds": True}, h["mtn-rw"], "expirySeconds"),
        ("/v1/quotes", {**quote, "expirySeconds": "60"}, h["mtn-rw"], "expirySeconds"),
    ):
        r = client.post(path, json=body, headers=who)
        assert r.status_code == 422 and r.json()["field"] == field, (path, r.text)
    assert snapshot(scheme) == before
    assert client.post("/v1/quotes", json=quote, headers=h["mtn-rw"]).status_code == 201
    t = {"transferId": "t-strict", "quoteId": "q-strict", "expirySeconds": True}
    r = client.post("/v1/transfers", json=t, headers=h["mtn-rw"])
    assert r.status_code == 422 and r.json()["field"] == "expirySeconds", r.text
    # a query parameter is text on the wire: its integers are still read from it
    listed = client.get("/v1/transfers?limit=5", headers=h["mtn-rw"])
    assert listed.status_code == 200, listed.text


def test_the_openapi_document_still_says_integer(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, _ = api
    components = client.get("/openapi.json").json()["components"]["schemas"]
    checked = 0
    for model, name in INT_FIELDS:
        schema = components.get(model.__name__)
        if schema is None:  # a model no route of this app takes
            continue
        prop = schema["properties"][name]
        types_ = {prop.get("type")} | {a.get("type") for a in prop.get("anyOf", ())}
        assert "integer" in types_, (model.__name__, name, prop)
        checked += 1
    assert checked >= 5


def _longest_till() -> str:
    """The longest till id the directory registers, found from its rule."""
    till = "T"
    while True:
        try:
            normalise_alias("MERCHANT", till + "9")
        except Exception:
            return till
        till += "9"


def test_a_till_the_directory_registers_gets_its_qr_through_the_api(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """A till may have 1-32 characters, and the CLI encodes a 32-character one: the API took
    25, and a longer till could not get its QR (422)."""
    client, h = api
    till = _longest_till()
    assert len(till) == 32
    scheme.register_alias("maybank", "MERCHANT", till, "Kedai Panjang", "MYR")
    body = {
        "tillId": till,
        "merchantName": "Kedai Panjang",
        "city": "Kuala Lumpur",
        "country": "MY",
        "currency": "MYR",
        "amount": "12.00",
    }
    encoded = client.post("/v1/qr/encode", json=body, headers=h["maybank"])
    assert encoded.status_code == 200, encoded.text
    payload = encoded.json()["payload"]
    decoded = client.post("/v1/qr/decode", json={"payload": payload}, headers=h["mtn-rw"])
    assert decoded.status_code == 200 and decoded.json()["merchantAlias"] == till, decoded.text
    # the participant the till is registered at, named on the QR: paid there or not at all
    assert decoded.json()["merchantParticipant"] == "maybank", decoded.text
    for fmt, media in (("png", "image/png"), ("svg", "image/svg+xml")):
        image = client.post(f"/v1/qr/image?fmt={fmt}", json=body, headers=h["maybank"])
        assert image.status_code == 200 and image.headers["content-type"] == media, image.text
        assert image.content
        # declared as answered (a review found the 200 declared without content)
        spec = client.get("/openapi.json").json()["paths"]["/v1/qr/image"]["post"]
        assert media in spec["responses"]["200"]["content"]
    paid = client.post(
        "/v1/qr/pay",
        json={
            "payload": payload,
            "transferId": "t-long",
            "quoteId": "q-long",
            "sourceCurrency": "RWF",
        },
        headers=h["mtn-rw"],
    )
    assert paid.status_code == 201, paid.text
    assert paid.json()["party"]["partyIdentifier"] == till
    # one more is no till: refused, naming it
    longer = client.post("/v1/qr/encode", json={**body, "tillId": till + "9"}, headers=h["maybank"])
    assert longer.status_code == 422 and longer.json()["field"] == "tillId", longer.text
    spec = client.get("/openapi.json").json()["components"]["schemas"]["QrEncodeIn"]
    assert spec["properties"]["tillId"]["maxLength"] == len(till)


def test_a_rate_sent_as_a_json_number_with_a_fraction_is_refused_not_rounded(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """Noticed in a review: a JSON number is read as a binary float, so ``"rate":
    123456789.123456789`` was posted as 123456789.12345679, a rate its provider never set."""
    client, _ = api
    fxco = {"Authorization": f"Bearer {issue_credential(scheme.engine, 'fxco').token}"}
    body = {"sourceCurrency": "RWF", "targetCurrency": "MYR", "spreadBps": 0, "validSeconds": 60}
    before = snapshot(scheme)
    for number in ("123456789.123456789", "0.0032", "3.2e-3"):
        raw = json.dumps(body)[:-1] + f', "rate": {number}}}'  # the number as written
        r = client.post(
            "/v1/fxRates", content=raw, headers={**fxco, "Content-Type": "application/json"}
        )
        assert r.status_code == 422 and r.json()["field"] == "rate", (number, r.text)
        assert "decimal string" in r.json()["detail"], r.text
    assert snapshot(scheme) == before
    posted = client.post("/v1/fxRates", json={**body, "rate": "123456789.123456789"}, headers=fxco)
    assert posted.status_code == 201, posted.text
    assert posted.json()["rate"] == "123456789.123456789"
    # a whole number is exact as a JSON integer too
    whole = client.post("/v1/fxRates", json={**body, "rate": 2}, headers=fxco)
    assert whole.status_code == 201 and whole.json()["rate"] == "2", whole.text


def test_a_rate_in_text_decimal_reads_but_the_schema_refuses_is_refused(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """Found by a review: the rate's published pattern is ``^[0-9]+(\\.[0-9]+)?$`` but
    pydantic's Decimal read ``"1_0"`` as ten (a typo posted as ten times the rate), and took
    exponents, signs, spaces and other scripts' digits. Each is refused, naming the field, and
    changes nothing."""
    client, _ = api
    fxco = {"Authorization": f"Bearer {issue_credential(scheme.engine, 'fxco').token}"}
    body = {"sourceCurrency": "RWF", "targetCurrency": "MYR", "spreadBps": 0, "validSeconds": 60}
    before = snapshot(scheme)
    for text in (
        "1_0",
        "5e-3",
        "1E+2",
        "+0.5",
        " 0.5 ",
        "0.5\n",
        "\u0660.\u0665",
        "\uff10.\uff15",
        True,
    ):
        r = client.post("/v1/fxRates", json={**body, "rate": text}, headers=fxco)
        assert r.status_code == 422 and r.json()["field"] == "rate", (text, r.text)
    assert snapshot(scheme) == before
    spec = client.get("/openapi.json").json()["components"]["schemas"]["FxRateIn"]
    assert {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"} in spec["properties"]["rate"][
        "oneOf"
    ]
