"""The fee schedule over HTTP: every participant reads what it will be charged
(``GET /v1/scheme/fees``), and a quote is priced by it."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from entrepot.entrypoints.api.app import create_app
from entrepot.payments import PaymentScheme
from entrepot.payments.credentials import issue_credential
from entrepot.payments.fees import parse_fee_schedule

Api = tuple[TestClient, dict[str, dict[str, str]]]
SCHEDULE = """
bps = 40

[currencies.RWF]
bps = 0
fixed = "100"

[currencies.MYR]
bps = 20
fixed = "0.50"
min = "1.00"
max = "25.00"
"""


@pytest.fixture
def api(scheme: PaymentScheme) -> Iterator[Api]:
    scheme.fees = parse_fee_schedule(tomllib.loads(SCHEDULE))
    tokens = {p: issue_credential(scheme.engine, p).token for p in ("mtn-rw", "maybank")}
    headers = {p: {"Authorization": f"Bearer {t}"} for p, t in tokens.items()}
    with TestClient(create_app(scheme)) as client:
        yield client, headers


def _money(amount: str, currency: str, minor: int) -> dict[str, object]:
    return {"amount": amount, "currency": currency, "minor": minor}


def test_every_participant_reads_the_schedule_it_is_charged_by(api: Api) -> None:
    client, h = api
    r = client.get("/v1/scheme/fees", headers=h["maybank"])
    assert r.status_code == 200, r.text
    assert r.json() == {
        "bps": 40,
        "currencies": [
            {
                "currency": "MYR",
                "bps": 20,
                "fixed": _money("0.50", "MYR", 50),
                "min": _money("1.00", "MYR", 100),
                "max": _money("25.00", "MYR", 2_500),
            },
            {
                "currency": "RWF",
                "bps": 0,
                "fixed": _money("100", "RWF", 100),
                "min": _money("0", "RWF", 0),
                "max": None,
            },
        ],
    }
    assert client.get("/v1/scheme/fees/RWF", headers=h["mtn-rw"]).json()["fixed"] == _money(
        "100", "RWF", 100
    )
    # a currency the schedule does not name: the default's basis points alone
    assert client.get("/v1/scheme/fees/EUR", headers=h["mtn-rw"]).json() == {
        "currency": "EUR",
        "bps": 40,
        "fixed": _money("0.00", "EUR", 0),
        "min": _money("0.00", "EUR", 0),
        "max": None,
    }
    for bad in ("usd", "XXZ", "EURO"):
        r = client.get(f"/v1/scheme/fees/{bad}", headers=h["mtn-rw"])
        assert (r.status_code, r.json()["code"]) == (422, "unknown_currency"), r.text
    assert client.get("/v1/scheme/fees").status_code == 401


def test_a_quote_over_http_is_priced_by_the_payers_currencys_rule(api: Api) -> None:
    client, h = api
    r = client.post(
        "/v1/quotes",
        headers=h["mtn-rw"],
        json={
            "quoteId": "q-fee",
            "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-TILL-42"},
            "amountType": "SEND",
            "amount": {"amount": "10000", "currency": "RWF"},
            "sourceCurrency": "RWF",
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["fee"] == _money("100", "RWF", 100)
