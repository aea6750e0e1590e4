"""The API's problems where FastAPI's or the middleware's own answer would otherwise show: the
statuses the OpenAPI document declares, a body Python cannot read, a participant that does not
exist."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from entrepot.entrypoints.api import security as security_module
from entrepot.entrypoints.api.app import create_app
from entrepot.payments import PaymentScheme
from entrepot.payments.credentials import issue_credential

Api = tuple[TestClient, dict[str, dict[str, str]]]


@pytest.fixture
def api(scheme: PaymentScheme) -> Iterator[Api]:
    tokens = {p: issue_credential(scheme.engine, p).token for p in ("scheme", "mtn-rw", "maybank")}
    headers = {p: {"Authorization": f"Bearer {t}"} for p, t in tokens.items()}
    with TestClient(create_app(scheme)) as client:
        yield client, headers


def _conforms(problem: dict[str, Any], declared: dict[str, Any]) -> None:
    """``problem`` is what ``declared`` (an OpenAPI response) says: problem+json, its fields."""
    schema = declared["content"]["application/problem+json"]["schema"]
    assert set(schema["required"]) <= set(problem) <= set(schema["properties"])


def test_the_openapi_document_declares_the_413_and_405_the_api_answers(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The security middleware refuses a body past its limit on every /v1 request, whatever
    its method, and the router answers 405 where a path parameter holding ``%2F`` makes the
    path another route's: neither was declared, so a client generated from the document did
    not expect them."""
    client, h = api
    spec = client.get("/openapi.json").json()
    operations = {
        (method.upper(), path): op
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    }
    assert all("413" in op["responses"] for op in operations.values())
    monkeypatch.setattr(security_module, "BODY_MAX_BYTES", 100)
    too_large = client.request(
        "GET", "/v1/participants/maybank", content=b"x" * 101, headers=h["maybank"]
    )
    assert too_large.status_code == 413
    assert too_large.json()["errorCode"] == "3104"  # Mojaloop's "Too large payload"
    _conforms(
        too_large.json(), operations["GET", "/v1/participants/{participant_id}"]["responses"]["413"]
    )

    # GET .../{id} with id "maybank/suspend" is the path of POST .../{id}/suspend only
    refused = client.get("/v1/participants/maybank%2Fsuspend", headers=h["scheme"])
    assert refused.status_code == 405
    assert refused.json()["code"] == "method_not_allowed"
    declared = operations["GET", "/v1/participants/{participant_id}"]["responses"]
    _conforms(refused.json(), declared["405"])
    # PUT .../{id}/endpoint with id "maybank/credentials": DELETE .../credentials/{keyId}'s
    put = client.put(
        "/v1/participants/maybank%2Fcredentials/endpoint",
        json={"url": "https://example.com/hook"},
        headers=h["maybank"],
    )
    assert put.status_code == 405
    assert "405" in operations["PUT", "/v1/participants/{participant_id}/endpoint"]["responses"]
    # and only where it can happen: no parameter, or none that reaches another route
    for op in (("POST", "/v1/participants"), ("GET", "/v1/parties/{party_type}/{party_id}")):
        assert "405" not in operations[op]["responses"], op
    assert client.get("/v1/parties/MSISDN/1%2F2", headers=h["scheme"]).status_code == 404
    unknown = client.get("/v1/nothing-here", headers=h["scheme"])
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    assert unknown.json()["errorCode"] == "3002"  # Mojaloop's "Unknown URI"


def test_a_number_longer_than_python_reads_is_invalid_json_not_a_bare_400(api: Api) -> None:
    """``json.loads`` refuses an integer of more than 4,300 digits (Python's limit on int
    conversion) with a ValueError, which FastAPI answered as a bare 400 "There was an error
    parsing the body": it is a body Python cannot read as JSON, said as such."""
    client, h = api
    digits = sys.get_int_max_str_digits()
    huge = "9" * (digits + 1)
    quote = (
        '{"quoteId": "q-huge", "payee": {"partyIdType": "MERCHANT", "partyIdentifier": '
        '"KL-TILL-42"}, "amountType": "SEND", "amount": {"amount": ' + huge + ', "currency": '
        '"RWF"}, "sourceCurrency": "RWF"}'
    )
    json_ = {**h["mtn-rw"], "Content-Type": "application/json"}
    for method, path, body in (
        ("POST", "/v1/quotes", quote),  # the payment path's direct dispatch hands it on
        ("PUT", "/v1/participants/mtn-rw/endpoint", '{"url": ' + huge + "}"),
    ):
        r = client.request(method, path, content=body, headers=json_)
        assert r.status_code == 422, (path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["code"] == "invalid_input" and problem["errorCode"] == "3100"
        assert problem["detail"] == (
            f"Invalid JSON: a number has more than {digits} digits, the most this API reads"
        )
        assert "field" not in problem
    # and changed nothing
    assert client.get("/v1/quotes/q-huge", headers=h["mtn-rw"]).status_code == 404
    assert client.get("/v1/participants/mtn-rw/endpoint", headers=h["mtn-rw"]).json()["url"] is None
    # a number of the limit's length is read (and refused for what it is, not being a URL)
    r = client.put(
        "/v1/participants/mtn-rw/endpoint", content='{"url": ' + huge[1:] + "}", headers=json_
    )
    assert r.status_code == 422 and r.json()["field"] == "url"


def test_a_body_that_is_not_utf8_or_nests_too_deep_is_invalid_json_too(api: Api) -> None:
    """The other ways ``json.loads`` fails other than by a JSONDecodeError, answered 400 as
    the big number was."""
    client, h = api
    json_ = {**h["mtn-rw"], "Content-Type": "application/json"}
    for body, detail in (
        (b'{"url": "\xff"}', "Invalid JSON: the body is not UTF-8 text (byte 9)"),
        (b"[" * 100_000 + b"]" * 100_000, "Invalid JSON: nested too deeply"),
    ):
        r = client.put("/v1/participants/mtn-rw/endpoint", content=body, headers=json_)
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "invalid_input" and r.json()["detail"] == detail


def test_the_credentials_of_a_participant_that_does_not_exist_are_a_404_not_an_empty_list(
    api: Api,
) -> None:
    """The operator asking for an unknown participant's credentials was answered ``[]``, as
    if it existed without any; every other route of a participant answers 404."""
    client, h = api
    unknown = client.get("/v1/participants/nobody/credentials", headers=h["scheme"])
    assert unknown.status_code == 404, unknown.text
    assert unknown.json() == client.get("/v1/participants/nobody", headers=h["scheme"]).json()
    assert unknown.json()["code"] == "participant_not_found"
    assert unknown.json()["errorCode"] == "3200"
    # a participant is refused another's, whether it exists or not: it learns nothing
    for other in ("nobody", "maybank"):
        refused = client.get(f"/v1/participants/{other}/credentials", headers=h["mtn-rw"])
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    # its own, and any participant's for the operator, as before
    own = client.get("/v1/participants/mtn-rw/credentials", headers=h["mtn-rw"])
    assert own.status_code == 200 and [c["participantId"] for c in own.json()] == ["mtn-rw"]
    listed = client.get("/v1/participants/maybank/credentials", headers=h["scheme"])
    assert listed.status_code == 200 and len(listed.json()) == 1


def test_a_query_or_path_parameter_is_named_as_the_request_spells_it(api: Api) -> None:
    """Found by a review: FastAPI's refusals named ``query.from``, ``query.limit`` and
    ``path.window_id`` where the routes' own checks of the same parameters said ``from``,
    ``limit`` and ``windowId``: a client matching ``field`` needed both spellings."""
    client, h = api
    for who, path, field in (
        ("mtn-rw", "/v1/transfers?limit=0", "limit"),
        ("mtn-rw", "/v1/transfers?limitt=5", "limitt"),  # the route's own check
        ("mtn-rw", "/v1/iso20022/camt053/mtn-rw/RWF?from=x", "from"),  # the route's own
        ("mtn-rw", "/v1/iso20022/camt053/mtn-rw/RWF?account=cash", "account"),
        ("scheme", "/v1/settlementWindows/0", "windowId"),
        ("scheme", "/v1/settlementWindows/abc", "windowId"),
    ):
        refused = client.get(path, headers=h[who])
        assert refused.status_code == 422, (path, refused.text)
        assert refused.json()["field"] == field, (path, refused.json())
        assert field in refused.json()["detail"], (path, refused.json())
        assert "query." not in refused.json()["detail"], (path, refused.json())
        assert "path." not in refused.json()["detail"], (path, refused.json())
    # a body's fields as before: the path within the body, without "body."
    refused = client.post("/v1/quotes", headers=h["mtn-rw"], json={"quoteId": "q"})
    assert refused.status_code == 422 and not refused.json()["field"].startswith("body")
