"""The API's problems where FastAPI's or the middleware's own answer would otherwise show: the
statuses the OpenAPI document declares, a body Python cannot read, a participant that does not
exist."""

from __future__ import annotations

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
