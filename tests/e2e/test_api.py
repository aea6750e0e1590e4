"""The payment scheme end to end through HTTP: pay-by-QR across borders, settlement, scoping,
idempotency, authentication, and a schemathesis fuzz run against the app's own OpenAPI."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from nacl.signing import SigningKey

from entrepot.config import shared_data_dir
from entrepot.entrypoints.api.app import create_app
from entrepot.entrypoints.api.routes import PAYMENT_PATH
from entrepot.entrypoints.api.routes import router as v1_router
from entrepot.kernel.clock import FakeClock
from entrepot.payments import PaymentScheme, iso20022, messages, qr
from entrepot.payments.credentials import issue_credential
from entrepot.payments.signing import sign_request
from tests.iso20022_official import conforms
from tests.service.test_payments import snapshot


@pytest.fixture
def api(scheme: PaymentScheme) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    tokens = {
        p: issue_credential(scheme.engine, p).token for p in ("scheme", "mtn-rw", "maybank", "icbc")
    }
    headers = {p: {"Authorization": f"Bearer {t}"} for p, t in tokens.items()}
    with TestClient(create_app(scheme)) as client:
        yield client, headers


def _kedai_qr(
    client: TestClient,
    h: dict[str, dict[str, str]],
    *,
    till: str = "KL-TILL-42",
    amount: str | None = "25.50",
) -> str:
    """The QR maybank encodes for a merchant in Kuala Lumpur, paid in MYR (static when
    ``amount`` is None)."""
    body = {
        "tillId": till,
        "merchantName": "Kedai Kopi KL",
        "city": "Kuala Lumpur",
        "country": "MY",
        "currency": "MYR",
    }
    qr = client.post(
        "/v1/qr/encode",
        json=body if amount is None else {**body, "amount": amount},
        headers=h["maybank"],
    )
    assert qr.status_code == 200, qr.text
    return str(qr.json()["payload"])


def _minor(body: dict[str, object], key: str) -> int:
    value = body[key]
    assert isinstance(value, dict)
    return int(value["minor"])


def test_cross_border_pay_by_qr_rwf_to_myr_is_exact(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    client, h = api
    before = {
        (p, c): scheme.liquidity(p, c)
        for p, c in (("mtn-rw", "RWF"), ("fxco", "RWF"), ("fxco", "MYR"), ("maybank", "MYR"))
    }
    pay = client.post(
        "/v1/qr/pay",
        json={
            "payload": _kedai_qr(client, h),
            "transferId": "t-qr-1",
            "quoteId": "q-qr-1",
            "sourceCurrency": "RWF",
            "payer": {"partyIdType": "MSISDN", "partyIdentifier": "+250788123456"},
        },
        headers={**h["mtn-rw"], "Idempotency-Key": "pay-1"},
    )
    assert pay.status_code == 201, pay.text
    body = pay.json()
    assert body["party"]["fspId"] == "maybank"
    # RECEIVE 25.50 MYR at 0.0032 less 100 bps = 0.003168 MYR/RWF:
    # principal = ceil(2550 / 100 / 0.003168) = 8050 RWF (RWF has no minor unit); fee 0.5%
    # of 8050 = 40.25 -> 40 RWF (half up); the payer's participant pays 8090 RWF.
    quote = body["quote"]
    assert (_minor(quote, "receiveAmount"), _minor(quote, "fee"), _minor(quote, "sendAmount")) == (
        2550,
        40,
        8090,
    )
    assert quote["fxRate"] == "0.003168" and quote["fxProvider"] == "fxco"
    assert quote["payer"] == "MSISDN:+250788123456"  # the payer party, for fraud screening
    assert body["transfer"]["state"] == "RESERVED"
    commit = client.post("/v1/transfers/t-qr-1/commit", headers=h["maybank"])
    assert commit.status_code == 200 and commit.json()["state"] == "COMMITTED"

    def moved(p: str, c: str) -> int:
        return scheme.liquidity(p, c)["net_position_minor"] - before[(p, c)]["net_position_minor"]

    assert moved("mtn-rw", "RWF") == -8090
    assert moved("fxco", "RWF") == 8050
    assert moved("fxco", "MYR") == -2550
    assert moved("maybank", "MYR") == 2550
    assert scheme.liquidity("scheme", "RWF")["net_position_minor"] == 40
    assert scheme.ledger.check_invariants().ok

    window = client.post("/v1/settlementWindows/close", headers=h["scheme"]).json()
    nets = {(p["participantId"], p["currency"]): p["net"]["minor"] for p in window["positions"]}
    assert nets == {
        ("mtn-rw", "RWF"): -8090,
        ("fxco", "RWF"): 8050,
        ("scheme", "RWF"): 40,
        ("fxco", "MYR"): -2550,
        ("maybank", "MYR"): 2550,
    }
    assert window["report"]["MYR"] == {
        "gross_minor": 2550,
        "net_minor": 2550,
        "carried_minor": 0,
        "liquidity_saved_minor": 0,
        "gross_to_net": "1.00",
    }
    settled = client.post(f"/v1/settlementWindows/{window['id']}/settle", headers=h["scheme"])
    assert settled.status_code == 200 and settled.json()["state"] == "SETTLED"
    assert scheme.liquidity("maybank", "MYR")["settlement_balance_minor"] == 1_000_000 + 2550
    assert scheme.liquidity("mtn-rw", "RWF")["settlement_balance_minor"] == 50_000_000 - 8090
    assert scheme.liquidity("mtn-rw", "RWF")["net_position_minor"] == 0
    xml = client.get("/v1/iso20022/pacs008/t-qr-1", headers=h["maybank"])
    assert xml.status_code == 200 and b'<IntrBkSttlmAmt Ccy="MYR">25.50<' in xml.content
    # what the API serves validates against the official ISO 20022 schemas where obtained
    conforms(xml.content, iso20022.PACS008_SUBSET_XSD)
    status = client.get("/v1/iso20022/pacs002/t-qr-1", headers=h["mtn-rw"])
    assert status.status_code == 200 and b"<TxSts>ACSC</TxSts>" in status.content
    conforms(status.content, iso20022.PACS002_SUBSET_XSD)
    # A statement's period ends on a microsecond boundary at or before where the ledger's
    # history is final: what the ledger stamped in the clock's microsecond is the next
    # statement's. This clock stands still; let a second pass.
    assert isinstance(scheme.clock, FakeClock)
    scheme.clock.advance(1)
    for who, account in (("mtn-rw", "RWF"), ("maybank", "MYR")):
        for kind in ("position", "settlement"):
            statement = client.get(
                f"/v1/iso20022/camt053/{who}/{account}?account={kind}", headers=h[who]
            )
            assert statement.status_code == 200 and b"<Ntry>" in statement.content
            conforms(statement.content, iso20022.CAMT053_SUBSET_XSD)


def test_a_long_camt053_is_served_page_by_page(
    api: tuple[TestClient, dict[str, dict[str, str]]],
    scheme: PaymentScheme,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A statement was built whole in memory (up to some 330 MB; found by a review). A long
    period is pages (``?page=``, camt.053's ``GrpHdr/MsgPgntn``): each valid, each opening
    where the last closed, the last marked; together they are the whole statement."""
    client, h = api
    for n in range(4):
        scheme.create_quote("mtn-rw", f"q-pg-{n}", "MERCHANT", "KL-TILL-42", 1000, "RECEIVE", "RWF")
        scheme.prepare_transfer("mtn-rw", f"t-pg-{n}", f"q-pg-{n}")
        scheme.commit_transfer("maybank", f"t-pg-{n}")
    assert isinstance(scheme.clock, FakeClock)
    scheme.clock.advance(1)
    to = scheme.clock.now_ns()
    path = f"/v1/iso20022/camt053/mtn-rw/RWF?to={to}"
    whole = client.get(path, headers=h["mtn-rw"])
    assert whole.status_code == 200, whole.text
    ns = {"c": iso20022.NS_CAMT053}

    def pagination(xml: bytes) -> tuple[str, str]:
        found = etree.fromstring(xml).find("c:BkToCstmrStmt/c:GrpHdr/c:MsgPgntn", namespaces=ns)
        return found.findtext("c:PgNb", namespaces=ns), found.findtext("c:LastPgInd", namespaces=ns)

    assert pagination(whole.content) == ("1", "true")

    def balances(xml: bytes) -> list[tuple[str, int]]:
        found = []
        for b in etree.fromstring(xml).iterfind(".//c:Stmt/c:Bal", namespaces=ns):
            amount = round(float(b.findtext("c:Amt", namespaces=ns)) * 100)
            debit = b.findtext("c:CdtDbtInd", namespaces=ns) == "DBIT"
            found.append(
                (b.findtext("c:Tp/c:CdOrPrtry/c:Cd", namespaces=ns), -amount if debit else amount)
            )
        return found

    def entries(xml: bytes) -> list[str]:
        return [
            e.findtext("c:AcctSvcrRef", namespaces=ns)
            for e in etree.fromstring(xml).iterfind(".//c:Ntry", namespaces=ns)
        ]

    monkeypatch.setattr(messages, "STATEMENT_PAGE_ENTRIES", 3)
    pages: list[bytes] = []
    while not pages or pagination(pages[-1])[1] != "true":
        answer = client.get(f"{path}&page={len(pages) + 1}", headers=h["mtn-rw"])
        assert answer.status_code == 200, answer.text
        conforms(answer.content, iso20022.CAMT053_SUBSET_XSD)
        assert pagination(answer.content)[0] == str(len(pages) + 1)
        pages.append(answer.content)
    assert len(pages) > 2
    assert [e for page in pages for e in entries(page)] == entries(whole.content)
    assert balances(pages[0])[0] == balances(whole.content)[0]
    assert balances(pages[-1])[-1] == balances(whole.content)[-1]
    for before, after in itertools.pairwise(pages):
        assert balances(after)[0] == ("ITBD", balances(before)[-1][1])
    past = client.get(f"{path}&page={len(pages) + 1}", headers=h["mtn-rw"])
    assert past.status_code == 422
    assert (past.json()["field"], f"has {len(pages)} pages" in past.json()["detail"]) == (
        "page",
        True,
    )
    for bad in ("0", "x", "1.5"):
        refused = client.get(f"{path}&page={bad}", headers=h["mtn-rw"])
        assert refused.status_code == 422 and refused.json()["field"] == "page", refused.text


def test_one_participant_cannot_read_or_resolve_anothers_transfer(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    client, h = api
    scheme.create_quote("mtn-rw", "q-s", "MERCHANT", "KL-TILL-42", 1000, "RECEIVE", "RWF")
    scheme.prepare_transfer("mtn-rw", "t-s", "q-s")
    assert client.get("/v1/transfers/t-s", headers=h["icbc"]).status_code == 403
    assert client.post("/v1/transfers/t-s/commit", headers=h["icbc"]).status_code == 403
    assert client.post("/v1/transfers/t-s/reject", json={}, headers=h["icbc"]).status_code == 403
    assert client.post("/v1/transfers/t-s/commit", headers=h["mtn-rw"]).status_code == 403
    assert client.get("/v1/transfers", headers=h["icbc"]).json()["transfers"] == []
    assert client.get("/v1/participants/maybank", headers=h["icbc"]).status_code == 403
    assert client.post("/v1/settlementWindows/close", headers=h["icbc"]).status_code == 403
    assert scheme.get_transfer("mtn-rw", "t-s").state.value == "RESERVED"  # nothing changed


def test_the_fx_provider_reads_the_transfer_it_provides_and_decides_nothing(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """The FX provider whose MYR pays a cross-currency transfer's payee was refused it (403):
    it reads it and finds it in its list; commit and reject stay the payee's. A participant
    with no part in it is refused it as before."""
    client, h = api
    fx = {"Authorization": f"Bearer {issue_credential(scheme.engine, 'fxco').token}"}
    scheme.create_quote("mtn-rw", "q-fx", "MERCHANT", "KL-TILL-42", 1000, "RECEIVE", "RWF")
    scheme.prepare_transfer("mtn-rw", "t-fx", "q-fx")
    read = client.get("/v1/transfers/t-fx", headers=fx)
    assert read.status_code == 200, read.text
    assert (read.json()["fxProvider"], read.json()["state"]) == ("fxco", "RESERVED")
    listed = client.get("/v1/transfers", headers=fx).json()["transfers"]
    assert [t["transferId"] for t in listed] == ["t-fx"]
    for action in ("commit", "reject"):
        refused = client.post(f"/v1/transfers/t-fx/{action}", json={}, headers=fx)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    # the payment messages name the customers: the payer's and the payee's to read
    for message in ("pacs008", "pacs002"):
        refused = client.get(f"/v1/iso20022/{message}/t-fx", headers=fx)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    assert client.get("/v1/transfers/t-fx", headers=h["icbc"]).status_code == 403
    assert client.get("/v1/transfers/t-none", headers=fx).status_code == 404
    assert scheme.get_transfer("mtn-rw", "t-fx").state.value == "RESERVED"  # nothing changed


def test_a_suspended_participants_party_is_looked_up_as_it_would_be_quoted(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """A lookup of an alias whose participant is suspended answered the party as payable,
    though its quote is refused: it is answered as the quote is now (409
    ``participant_suspended``, 3202), and as a party again once the participant is resumed."""
    client, h = api
    path = "/v1/parties/MERCHANT/KL-TILL-42"
    scheme.set_active("maybank", False, "licence under review")
    before = snapshot(scheme)
    for who in ("mtn-rw", "icbc", "scheme"):
        r = client.get(path, headers=h[who])
        assert r.status_code == 409, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert (r.json()["code"], r.json()["errorCode"]) == ("participant_suspended", "3202")
        assert "maybank" in r.json()["detail"] and "licence" not in r.json()["detail"]
    quoted = client.post(
        "/v1/quotes",
        json={
            "quoteId": "q-susp",
            "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-TILL-42"},
            "amountType": "SEND",
            "amount": {"amount": "1000", "currency": "RWF"},
            "sourceCurrency": "RWF",
        },
        headers=h["mtn-rw"],
    )
    assert (quoted.status_code, quoted.json()["code"]) == (409, "participant_suspended")
    assert snapshot(scheme) == before
    scheme.set_active("maybank", True)
    found = client.get(path, headers=h["mtn-rw"])
    assert found.status_code == 200 and found.json()["fspId"] == "maybank", found.text


def test_a_suspended_participant_removes_no_alias(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """A suspended participant may read, not change the directory: it registered no alias,
    but removed its own (204), the payers' lookups then told "no such party" instead of
    ``participant_suspended`` and the alias left free for another participant to register
    (the operator's freeze undone by the suspended; found by a review). Refused 409
    ``participant_suspended``, nothing removed; removed once it is resumed."""
    client, h = api
    path = "/v1/parties/MERCHANT/KL-TILL-42"
    scheme.set_active("maybank", False, "licence under review")
    before = snapshot(scheme)
    refused = client.delete(path, headers=h["maybank"])
    assert (refused.status_code, refused.json()["code"]) == (409, "participant_suspended")
    assert refused.json()["errorCode"] == "3202"
    assert snapshot(scheme) == before
    assert scheme.lookup_party("MERCHANT", "KL-TILL-42").participant_id == "maybank"
    scheme.set_active("maybank", True)
    assert client.delete(path, headers=h["maybank"]).status_code == 204
    assert client.get(path, headers=h["mtn-rw"]).status_code == 404


def test_errors_are_problem_json_and_change_nothing(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    client, h = api
    before = scheme.liquidity("mtn-rw", "RWF")
    r = client.post(
        "/v1/quotes",
        headers=h["mtn-rw"],
        json={
            "quoteId": "q-bad",
            "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-TILL-42"},
            "amountType": "SEND",
            "amount": {"amount": "1.5", "currency": "RWF"},
            "sourceCurrency": "RWF",
        },
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "invalid_amount"
    r = client.post("/v1/quotes", headers=h["mtn-rw"], json={"quoteId": "x"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_input"
    assert client.get("/v1/transfers/nope", headers=h["mtn-rw"]).json()["errorCode"] == "3208"
    assert client.get("/v1/transfers/x").status_code == 401
    assert scheme.liquidity("mtn-rw", "RWF") == before


def test_an_unknown_query_parameter_is_refused_not_ignored(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """A typo in a filter (``pendng``) was ignored: every notice came back as if filtered."""
    client, h = api
    refused = client.get("/v1/notifications?pendng=true", headers=h["maybank"])
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert (problem["code"], problem["field"]) == ("invalid_input", "pendng")
    assert "after, limit, pending" in problem["detail"]
    assert client.get("/v1/notifications?pending=true", headers=h["maybank"]).status_code == 200
    assert client.get("/v1/transfers?limit=5", headers=h["maybank"]).status_code == 200
    lookup = client.get("/v1/parties/MERCHANT/KL-TILL-42?fsp=x", headers=h["mtn-rw"])
    assert lookup.status_code == 422 and lookup.json()["field"] == "fsp"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/transfers?after=",
        "/v1/iso20022/camt053/mtn-rw/RWF?from=",
        "/v1/iso20022/camt053/mtn-rw/RWF?to=",
        "/v1/trade/items?merchantId=",
    ],
)
def test_an_empty_filter_is_refused_not_read_as_none(
    api: tuple[TestClient, dict[str, dict[str, str]]], path: str
) -> None:
    """An empty ``after``/``from``/``to`` was read as not given, and an empty ``merchantId``
    listed nobody's items: each answered 200 to a request that said nothing it meant (and
    the fuzz run, sending a null as an empty value, failed at random on it)."""
    client, h = api
    refused = client.get(path, headers=h["mtn-rw"])
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "invalid_input"


def test_the_operator_scrapes_metrics_and_a_participant_may_not(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    client, h = api
    answer = client.get("/v1/metrics", headers=h["scheme"])
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    names = {f.name for f in text_string_to_metric_families(answer.text)}
    assert {"entrepot_position_available_minor", "entrepot_transfers_open"} <= names
    refused = client.get("/v1/metrics", headers=h["mtn-rw"])
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert client.get("/v1/metrics").status_code == 401


def _requests_counted(
    client: TestClient, h: dict[str, dict[str, str]]
) -> dict[tuple[str, str, str], float]:
    """``entrepot_http_requests_total`` as the operator's scrape reads it: (route, method,
    status) -> count."""
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/v1/metrics", headers=h["scheme"]).text
    return {
        (m.labels["route"], m.labels["method"], m.labels["status"]): m.value
        for family in text_string_to_metric_families(text)
        for m in family.samples
        if m.name == "entrepot_http_requests_total"
    }


def test_metrics_count_requests_by_route_template_method_and_status(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """The operator reads request and error rates and latency per route: counted under the
    route's template (no id, no alias: who paid whom stays out of the series), those
    refused before any route took them under ``unrouted``; the direct payment path
    (ADR 0006) counts as FastAPI's routes do."""
    from prometheus_client.parser import text_string_to_metric_families

    client, h = api
    before = _requests_counted(client, h)
    assert client.get("/v1/parties/MERCHANT/KL-TILL-42", headers=h["mtn-rw"]).status_code == 200
    assert client.get("/v1/parties/MERCHANT/KL-TILL-42", headers=h["mtn-rw"]).status_code == 200
    assert client.get("/v1/transfers/t-nobody", headers=h["mtn-rw"]).status_code == 404
    assert client.get("/v1/participants", headers=h["mtn-rw"]).status_code == 200
    assert client.get("/v1/transfers/t-nobody").status_code == 401
    after = _requests_counted(client, h)

    def delta(route: str, method: str, status: str) -> float:
        key = (route, method, status)
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("/v1/parties/{party_type}/{party_id}", "GET", "200") == 2
    assert delta("/v1/transfers/{transfer_id}", "GET", "404") == 1
    assert delta("/v1/participants", "GET", "200") == 1
    assert delta("unrouted", "GET", "401") == 1
    assert delta("/v1/metrics", "GET", "200") == 1  # the first scrape, counted by the second
    assert not any("KL-TILL-42" in route or "t-nobody" in route for route, _, _ in after)
    # a method no one defined is counted as "other": a client inventing one per request
    # added a series each, without bound (found by a review)
    for invented in ("BREW", "X-WHATEVER-1", "get"):
        client.request(invented, "/v1/participants", headers=h["mtn-rw"])
    methods = {method for _, method, _ in _requests_counted(client, h)}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in methods
    text = client.get("/v1/metrics", headers=h["scheme"]).text
    latency = {
        (m.labels["route"], m.labels.get("le")): m.value
        for family in text_string_to_metric_families(text)
        for m in family.samples
        if m.name == "entrepot_http_request_duration_seconds_bucket"
    }
    route = "/v1/parties/{party_type}/{party_id}"
    assert latency[(route, "+Inf")] >= 2
    assert latency[(route, "0.001")] <= latency[(route, "10.0")] <= latency[(route, "+Inf")]


def test_metrics_say_how_busy_the_databases_writer_is(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """The scrape reports how much of the time the scheme's writes held the write lock and
    how many writes each shared COMMIT carried (storage/metrics.py): a quote is a write,
    counted; a lookup is a read, not."""
    from prometheus_client.parser import text_string_to_metric_families

    client, h = api

    def scraped() -> dict[str, float]:
        text = client.get("/v1/metrics", headers=h["scheme"]).text
        return {
            m.name: m.value
            for family in text_string_to_metric_families(text)
            for m in family.samples
            if m.name.startswith(("entrepot_group_commit_", "entrepot_db_"))
        }

    before = scraped()
    assert {
        "entrepot_group_commit_batches_total",
        "entrepot_group_commit_members_total",
        "entrepot_group_commit_held_seconds_total",
        "entrepot_db_write_held_seconds_total",
        "entrepot_db_write_wait_seconds_total",
        "entrepot_db_write_transactions_total",
        "entrepot_db_commit_seconds_total",
    } <= set(before)
    assert client.get("/v1/parties/MERCHANT/KL-TILL-42", headers=h["mtn-rw"]).status_code == 200
    assert (
        scraped()["entrepot_group_commit_batches_total"]
        == (before["entrepot_group_commit_batches_total"])
    )
    quote = {
        "quoteId": "q-metrics",
        "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-TILL-42"},
        "amountType": "RECEIVE",
        "amount": {"amount": "10.00", "currency": "MYR"},
        "sourceCurrency": "RWF",
    }
    assert client.post("/v1/quotes", headers=h["mtn-rw"], json=quote).status_code == 201
    after = scraped()
    assert after["entrepot_group_commit_batches_total"] == (
        before["entrepot_group_commit_batches_total"] + 1
    )
    assert (
        after["entrepot_group_commit_members_total"]
        > (before["entrepot_group_commit_members_total"])
    )
    assert (
        after["entrepot_group_commit_held_seconds_total"]
        > (before["entrepot_group_commit_held_seconds_total"])
    )


def test_an_amount_in_another_currency_is_refused_and_writes_nothing(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """A quote whose RECEIVE amount is stated in RWF for a merchant paid in MYR, and an
    escrow release stated in EUR for an escrow in RWF: 422, and nothing is written (the
    quote was written before the check once, and could then be paid)."""
    client, h = api
    scheme.register_participant("hub", "Trade hub", "hub", "RW", [])
    scheme.register_participant("bk-rw", "Bank of Kigali", "bank", "RW", ["RWF"])
    scheme.create_escrow("mtn-rw", "e-cur", "bk-rw", "RWF", 1_000, "goods", 600, controller="hub")
    hub = {"Authorization": f"Bearer {issue_credential(scheme.engine, 'hub').token}"}
    quote = {
        "quoteId": "q-cur",
        "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-TILL-42"},
        "amountType": "RECEIVE",
        "amount": {"amount": "1000", "currency": "RWF"},
        "sourceCurrency": "RWF",
    }
    r = client.post("/v1/quotes", headers=h["mtn-rw"], json=quote)
    assert r.status_code == 422 and r.json()["field"] == "amount.currency", r.json()
    assert client.get("/v1/quotes/q-cur", headers=h["mtn-rw"]).status_code == 404
    r = client.post(
        "/v1/escrows/e-cur/release",
        headers=hub,
        json={"amount": {"amount": "2.00", "currency": "EUR"}},
    )
    assert r.status_code == 422 and "holds RWF, not EUR" in r.json()["detail"], r.json()
    assert client.get("/v1/escrows/e-cur", headers=hub).json()["state"] == "HELD"
    assert scheme.get_escrow("hub", "e-cur").held_minor == 1_000


MYR_1 = {"amount": "1", "currency": "MYR"}


def test_an_escrow_requests_bad_amount_or_currency_names_the_field_as_the_body_spells_it(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """docs/payments.md: a problem's ``field`` is spelt as the request spells it. An escrow's
    currency errors named ``currency`` (the body's is ``amount.currency``), and a split's
    parts ``amount``, ``releaseMinor`` or ``refundMinor``: a ruling whose refund was
    malformed could not tell which part was at fault. Nothing is written."""
    client, h = api
    scheme.register_participant("bk-rw", "Bank of Kigali", "bank", "RW", ["RWF"])
    scheme.create_escrow("mtn-rw", "e-f", "bk-rw", "RWF", 1_000, "goods", 600)
    before = snapshot(scheme)
    made = {
        "escrowId": "e-new",
        "payeeFsp": "bk-rw",
        "amount": _rwf("10"),
        "purpose": "goods",
        "deadlineSeconds": 60,
    }
    big = "1000000000000000000"  # parses, and is past the scheme's largest amount
    xxx = {"amount": "1", "currency": "XXX"}
    for path, body, field in (
        ("/v1/escrows", {**made, "amount": xxx}, "amount.currency"),
        ("/v1/escrows", {**made, "amount": MYR_1}, "amount.currency"),  # the payer holds none
        ("/v1/escrows/e-f/release", {"amount": xxx}, "amount.currency"),
        ("/v1/escrows/e-f/refund", {"amount": xxx}, "amount.currency"),
        ("/v1/escrows/e-f/split", {"release": _rwf("1.5"), "refund": _rwf("1")}, "release.amount"),
        ("/v1/escrows/e-f/split", {"release": _rwf("1"), "refund": _rwf("1.5")}, "refund.amount"),
        ("/v1/escrows/e-f/split", {"release": _rwf(big), "refund": _rwf("0")}, "release.amount"),
        ("/v1/escrows/e-f/split", {"release": _rwf("0"), "refund": _rwf(big)}, "refund.amount"),
        ("/v1/escrows/e-f/split", {"release": xxx, "refund": xxx}, "release.currency"),
    ):  # fmt: skip
        r = client.post(path, json=body, headers=h["mtn-rw"])
        assert r.status_code == 422, (path, body, r.text)
        assert r.json()["field"] == field, (path, body, r.json())
    # a payee that does not exist, or is suspended, is named too (it named no field)
    scheme.register_participant("bk-off", "Bank Off", "bank", "RW", ["RWF"])
    scheme.set_active("bk-off", False)
    before = snapshot(scheme)
    for payee, status in (("nobody", 404), ("bk-off", 409)):
        r = client.post("/v1/escrows", json={**made, "payeeFsp": payee}, headers=h["mtn-rw"])
        assert r.status_code == status and r.json()["field"] == "payeeFsp", r.text
    assert snapshot(scheme) == before


def _rwf(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "RWF"}


def test_an_escrow_is_split_in_one_decision_and_its_decisions_read_over_http(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """A dispute's ruling splits what an escrow holds: part to the payee, the rest back, in
    one decision (the command line could; HTTP could only release, then refund, and a
    deadline between the two refunded what the ruling released). Its decisions are read in
    order, by its parties and the scheme operator."""
    client, h = api
    scheme.register_participant("bk-rw", "Bank of Kigali", "bank", "RW", ["RWF"])
    scheme.register_participant("hub", "Trade hub", "hub", "RW", [])
    scheme.create_escrow(
        "mtn-rw", "e-split", "bk-rw", "RWF", 1_000, "order 9", 600, controller="hub"
    )
    hub = {"Authorization": f"Bearer {issue_credential(scheme.engine, 'hub').token}"}
    before = snapshot(scheme)
    for body, status, field in (
        ({"release": _rwf("700"), "refund": _rwf("400")}, 409, None),  # 1,100 of 1,000 held
        ({"release": _rwf("0"), "refund": _rwf("0")}, 422, "amount"),
        ({"release": _rwf("1"), "refund": MYR_1}, 422, "refund.currency"),
        ({"release": MYR_1, "refund": MYR_1}, 422, "release.currency"),
    ):  # fmt: skip
        r = client.post("/v1/escrows/e-split/split", json=body, headers=hub)
        assert r.status_code == status, r.text
        assert field is None or r.json()["field"] == field, r.json()
    assert snapshot(scheme) == before
    payer = client.post(
        "/v1/escrows/e-split/split",
        json={"release": _rwf("600"), "refund": _rwf("400")},
        headers=h["mtn-rw"],
    )
    assert payer.status_code == 403  # the hub controls it
    r = client.post(
        "/v1/escrows/e-split/split",
        json={"release": _rwf("600"), "refund": _rwf("400")},
        headers={**hub, "Idempotency-Key": "ruling-9"},
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["state"], done["released"]["minor"], done["refunded"]["minor"]) == (
        "CLOSED",
        600,
        400,
    )
    again = client.post(
        "/v1/escrows/e-split/split",
        json={"release": _rwf("600"), "refund": _rwf("400")},
        headers={**hub, "Idempotency-Key": "ruling-9"},
    )
    assert again.json() == done  # the same ruling, not a second
    for who in (hub, h["mtn-rw"], h["scheme"]):
        events = client.get("/v1/escrows/e-split/events", headers=who)
        assert events.status_code == 200, events.text
        assert [(e["seq"], e["action"], e["amount"]["minor"], e["actor"]) for e in
                events.json()["events"]] == [
            (0, "hold", 1_000, "mtn-rw"), (1, "release", 600, "hub"), (2, "refund", 400, "hub")
        ]  # fmt: skip
    assert client.get("/v1/escrows/e-split/events", headers=h["maybank"]).status_code == 403
    assert client.get("/v1/escrows/nope/events", headers=hub).status_code == 404


def test_an_escrow_past_its_deadline_reads_over_http_as_the_deadline_decided_it(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """Between its deadline and the deadline pass an escrow read HELD, its funds releasable,
    and a release was refused 409: it reads as the deadline decided it (refunded, CLOSED),
    and the release is refused as the read says."""
    client, h = api
    scheme.register_participant("bk-rw", "Bank of Kigali", "bank", "RW", ["RWF"])
    scheme.create_escrow("mtn-rw", "e-late", "bk-rw", "RWF", 1_000, "order 7", 60, "refund")
    assert isinstance(scheme.clock, FakeClock)
    scheme.clock.advance(60)
    bank = {"Authorization": f"Bearer {issue_credential(scheme.engine, 'bk-rw').token}"}
    before = snapshot(scheme)
    for who in (h["mtn-rw"], bank, h["scheme"]):
        read = client.get("/v1/escrows/e-late", headers=who).json()
        assert (read["state"], read["held"]["minor"], read["refunded"]["minor"]) == (
            "CLOSED",
            0,
            1_000,
        ), read
    assert snapshot(scheme) == before  # a read writes nothing
    r = client.post("/v1/escrows/e-late/release", json={"amount": _rwf("1")}, headers=h["mtn-rw"])
    assert r.status_code == 409 and "was refunded" in r.json()["detail"], r.text
    assert client.get("/v1/escrows/e-late", headers=bank).json() == read


def test_idempotency_key_replays_and_refuses_a_different_body(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, h = api
    body = {
        "quoteId": "q-i",
        "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-TILL-42"},
        "amountType": "SEND",
        "amount": {"amount": "5000", "currency": "RWF"},
        "sourceCurrency": "RWF",
    }
    first = client.post("/v1/quotes", json=body, headers={**h["mtn-rw"], "Idempotency-Key": "k1"})
    again = client.post("/v1/quotes", json=body, headers={**h["mtn-rw"], "Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    changed = client.post(
        "/v1/quotes",
        json={**body, "quoteId": "q-j"},
        headers={**h["mtn-rw"], "Idempotency-Key": "k1"},
    )
    assert changed.status_code == 409 and changed.json()["errorCode"] == "3106"
    assert client.get("/v1/quotes/q-j", headers=h["mtn-rw"]).status_code == 404


def test_a_request_resent_without_a_key_is_answered_by_its_id(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """Mojaloop's duplicate check, for clients that send no Idempotency-Key: the same id and
    body -> the first result, as it is now; the same id, another body -> 409, 3106."""
    client, h = api
    qr = _kedai_qr(client, h)
    pay = {"payload": qr, "transferId": "t-r", "quoteId": "q-r", "sourceCurrency": "RWF"}
    first = client.post("/v1/qr/pay", json=pay, headers=h["mtn-rw"])
    assert first.status_code == 201, first.text
    before = scheme.liquidity("mtn-rw", "RWF")
    again = client.post("/v1/qr/pay", json=pay, headers=h["mtn-rw"])
    assert again.status_code == 201 and again.json() == first.json()
    transfer = {"transferId": "t-r", "quoteId": "q-r"}
    resent = client.post("/v1/transfers", json=transfer, headers=h["mtn-rw"])
    assert resent.status_code == 201 and resent.json() == first.json()["transfer"]
    assert scheme.liquidity("mtn-rw", "RWF") == before  # reserved once
    for path, body in (
        ("/v1/qr/pay", {**pay, "quoteId": "q-other"}),
        ("/v1/transfers", {**transfer, "note": "again"}),
    ):
        refused = client.post(path, json=body, headers=h["mtn-rw"])
        assert refused.status_code == 409, refused.text
        problem = refused.json()
        assert (problem["code"], problem["errorCode"]) == ("duplicate_with_different_body", "3106")
    assert client.get("/v1/quotes/q-other", headers=h["mtn-rw"]).status_code == 404
    client.post("/v1/transfers/t-r/commit", headers=h["maybank"])
    done = client.post("/v1/transfers", json=transfer, headers=h["mtn-rw"])
    assert done.status_code == 201 and done.json()["state"] == "COMMITTED"
    assert scheme.liquidity("maybank", "MYR")["net_position_minor"] == 2550


def test_a_qr_payment_naming_anothers_transfer_is_no_resend_of_it(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """Found in review: a resend is the payer's. The FX provider and the payee of mtn-rw's
    QR payment read its transfer, and a QR payment of theirs naming its id with an amount or
    currency the QR refuses was taken for a resend of it: refused 3106, "created by a
    different request", where anyone else is told what is wrong with the amount (422).
    Nothing is written either way."""
    client, h = api
    h = {**h, "fxco": {"Authorization": f"Bearer {issue_credential(scheme.engine, 'fxco').token}"}}
    dynamic = _kedai_qr(client, h, amount="1.00")
    pay = {"payload": dynamic, "transferId": "t-x", "quoteId": "q-x", "sourceCurrency": "RWF"}
    assert client.post("/v1/qr/pay", json=pay, headers=h["mtn-rw"]).status_code == 201
    static = _kedai_qr(client, h, amount=None)
    before = snapshot(scheme)
    for caller, source in (("fxco", "MYR"), ("maybank", "MYR"), ("icbc", "CNY")):
        assert client.get("/v1/transfers/t-x", headers=h[caller]).status_code == (
            403 if caller == "icbc" else 200
        )
        other = {**pay, "quoteId": f"q-{caller}", "sourceCurrency": source}
        for body, field in (
            ({**other, "amount": {"amount": "500.00", "currency": "MYR"}}, "amount"),
            (
                {**other, "payload": static, "amount": {"amount": "2.00", "currency": "EUR"}},
                "amount.currency",
            ),
        ):
            r = client.post("/v1/qr/pay", json=body, headers=h[caller])
            assert (r.status_code, r.json().get("field")) == (422, field), (caller, r.text)
    assert snapshot(scheme) == before


@pytest.mark.parametrize("since", ["removed", "moved"])
def test_a_qr_payment_resent_after_its_till_changed_is_answered_as_it_was_made(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme, since: str
) -> None:
    client, h = api
    scheme.register_participant("cimb", "CIMB", "bank", "MY", ["MYR"])
    qr = _kedai_qr(client, h, amount=None)  # a static QR: the payer enters the amount
    pay = {
        "payload": qr,
        "transferId": "t-m",
        "quoteId": "q-m",
        "sourceCurrency": "RWF",
        "amount": {"amount": "25.50", "currency": "MYR"},
    }
    first = client.post("/v1/qr/pay", json=pay, headers=h["mtn-rw"])
    assert first.status_code == 201, first.text
    scheme.remove_alias("maybank", "MERCHANT", "KL-TILL-42")
    if since == "moved":
        scheme.register_alias("cimb", "MERCHANT", "KL-TILL-42", "Another shop", "MYR")
    again = client.post("/v1/qr/pay", json=pay, headers=h["mtn-rw"])
    assert again.status_code == 201, again.text
    assert again.json() == first.json()  # the party it paid, named as on the QR
    assert first.json()["party"]["fspId"] == "maybank"
    other = client.post(
        "/v1/qr/pay",
        json={**pay, "amount": {"amount": "2550", "currency": "RWF"}},
        headers=h["mtn-rw"],
    )
    assert other.status_code == 409 and other.json()["errorCode"] == "3106", other.text


def test_a_static_qr_paid_without_an_amount_is_refused_after_its_till_is_looked_up(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, h = api

    pay = {"transferId": "t-s", "quoteId": "q-s", "sourceCurrency": "RWF"}
    unknown = client.post(
        "/v1/qr/pay",
        json={**pay, "payload": _kedai_qr(client, h, till="NO-SUCH-TILL", amount=None)},
        headers=h["mtn-rw"],
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "party_not_found"
    no_amount = client.post(
        "/v1/qr/pay",
        json={**pay, "payload": _kedai_qr(client, h, amount=None)},
        headers=h["mtn-rw"],
    )
    assert no_amount.status_code == 422 and no_amount.json()["field"] == "amount"


def test_signed_requests_with_an_ed25519_key(scheme: PaymentScheme) -> None:
    key = SigningKey.generate()
    public = base64.b64encode(bytes(key.verify_key)).decode()
    token = issue_credential(scheme.engine, "icbc", public_key_b64=public).token
    bearer = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(scheme)) as client:
        path = "/v1/participants/icbc"
        unsigned = client.get(path, headers=bearer)
        assert unsigned.status_code == 401 and unsigned.json()["code"] == "bad_signature"
        signed = client.get(path, headers={**bearer, **sign_request(key, "GET", path)})
        assert signed.status_code == 200 and signed.json()["id"] == "icbc"
        forged = sign_request(SigningKey.generate(), "GET", path)
        bad = client.get(path, headers={**bearer, **forged})
        assert bad.status_code == 401


def test_bulk_transfers_commit_each_item_or_reject_it_alone(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    client, h = api
    scheme.register_participant("cimb", "CIMB", "bank", "MY", ["MYR"])
    scheme.register_alias("cimb", "MSISDN", "+60123456789", "Siti", "MYR")
    items = [
        {
            "transferId": "b1",
            "payee": {"partyIdType": "MSISDN", "partyIdentifier": "+60123456789"},
            "amount": {"amount": "10.00", "currency": "MYR"},
        },
        {
            "transferId": "b2",
            "payee": {"partyIdType": "MSISDN", "partyIdentifier": "+60999999999"},
            "amount": {"amount": "1.00", "currency": "MYR"},
        },
    ]
    before = scheme.liquidity("maybank", "MYR")["net_position_minor"]
    r = client.post(
        "/v1/transfers/bulk", json={"bulkId": "bulk-1", "transfers": items}, headers=h["maybank"]
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["committed"], body["rejected"]) == (1, 1)
    assert body["results"][1]["reason"].startswith("no party")
    fee = 5  # 50 bps of 1000 minor units
    assert scheme.liquidity("maybank", "MYR")["net_position_minor"] == before - 1000 - fee
    assert scheme.liquidity("cimb", "MYR")["net_position_minor"] == 1000


@pytest.mark.parametrize(
    ("change", "status", "where"),
    [
        (lambda b: b["transfers"][0].update(extra=1), 422, "extra"),
        (lambda b: b["transfers"][1]["amount"].update(currency="RWF"), 422, "one currency"),
        # the item in another currency is named (the refusal named only "transfers")
        (
            lambda b: b["transfers"][1]["amount"].update(currency="RWF"),
            422,
            '"field":"transfers.1.amount.currency"',
        ),
        (lambda b: b["transfers"][0]["amount"].update(amount="1.001"), 422, "fractional digits"),
        (lambda b: b["transfers"][0]["amount"].update(amount="-1"), 422, "amount"),
        (lambda b: b["transfers"][0]["payee"].update(partyIdType="EMAIL"), 422, "partyIdType"),
        (lambda b: b.update(bulkId="a b"), 422, "bulkId"),
        # a repeated transfer id names the item that repeats it
        (
            lambda b: b["transfers"][1].update(transferId="bb0"),
            422,
            '"field":"transfers.1.transferId"',
        ),
        (lambda b: b.update(transfers=[]), 422, "transfers"),
        # an item's own checks name the item: its index, transfer id and field
        (
            lambda b: b["transfers"][1]["amount"].update(amount="0.001"),
            422,
            '"field":"transfers.1.amount"',
        ),
        (
            lambda b: b["transfers"][1]["amount"].update(amount="0"),
            422,
            "transfers[1] (transferId 'bb1'): amount must be a positive",
        ),
        (
            lambda b: b["transfers"][1]["payee"].update(partyIdentifier="0788123456"),
            422,
            '"field":"transfers.1.payee.partyIdentifier"',
        ),
        # the body has no "currency" (a review): the items' amounts name it
        (
            lambda b: [t["amount"].update(currency="XXX") for t in b["transfers"]],
            422,
            '"field":"transfers.0.amount.currency"',
        ),
        (
            lambda b: [t["amount"].update(currency="JPY", amount="100") for t in b["transfers"]],
            422,
            '"field":"transfers.0.amount.currency"',
        ),
    ],
)
def test_a_malformed_bulk_gets_a_problem_and_changes_nothing(
    api: tuple[TestClient, dict[str, dict[str, str]]],
    scheme: PaymentScheme,
    change: Any,
    status: int,
    where: str,
) -> None:
    client, h = api
    body = {
        "bulkId": "bulk-bad",
        "transfers": [
            {
                "transferId": f"bb{n}",
                "payee": {"partyIdType": "MSISDN", "partyIdentifier": "+60123456789"},
                "amount": {"amount": "1.00", "currency": "MYR"},
            }
            for n in range(2)
        ],
    }
    change(body)
    before = scheme.liquidity("maybank", "MYR")
    r = client.post("/v1/transfers/bulk", json=body, headers=h["maybank"])
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert where in r.text
    assert scheme.liquidity("maybank", "MYR") == before


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'{"bulkId": "b", "transfers": [', '"detail":"Invalid JSON: EOF'),
        (b"[1, 2]", '"detail":"Input should be an object'),
        (b"", '"detail":"Invalid JSON'),
        (
            b'{"bulkId": "b", "transfers": [{"transferId": "t", "payee": 1, "amount": {}}]}',
            "transfers.0.payee",
        ),
    ],
)
def test_a_bulk_body_that_is_not_the_schema_gets_a_problem_naming_where(
    api: tuple[TestClient, dict[str, dict[str, str]]],
    scheme: PaymentScheme,
    raw: bytes,
    where: str,
) -> None:
    """The bulk route parses its own body: bytes that are not JSON, or JSON of the wrong shape,
    get the same 422 problem as any other route's, and change nothing."""
    client, h = api
    before = scheme.liquidity("maybank", "MYR")
    headers = {**h["maybank"], "content-type": "application/json"}
    r = client.post("/v1/transfers/bulk", content=raw, headers=headers)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert (problem["code"], problem["errorCode"]) == ("invalid_input", "3100")
    assert where in r.text
    assert scheme.liquidity("maybank", "MYR") == before


@pytest.mark.parametrize("kind", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_bulk_body_must_be_sent_as_json(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme, kind: str | None
) -> None:
    client, h = api
    body = b'{"bulkId": "b", "transfers": []}'
    headers = {**h["maybank"], **({"content-type": kind} if kind else {})}
    before = scheme.liquidity("maybank", "MYR")
    r = client.post("/v1/transfers/bulk", content=body, headers=headers)
    assert r.status_code == 422, r.text
    assert "must be application/json" in r.json()["detail"]
    assert scheme.liquidity("maybank", "MYR") == before


def test_the_openapi_document_says_how_every_v1_operation_authenticates(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """Authentication is the middleware's, so no route declared it: the document named no
    security scheme, and a client generated from it sent no credential."""
    client, _ = api
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"]["type"] == "http" and schemes["bearer"]["scheme"] == "bearer"
    assert schemes["signature"] == {**schemes["signature"], "in": "header", "name": "X-Signature"}
    operations = [
        (path, method, op)
        for path, ops in spec["paths"].items()
        if path.startswith("/v1/")
        for method, op in ops.items()
    ]
    assert len(operations) > 40
    for path, method, op in operations:
        assert {"bearer": []} in op["security"], (method, path)
    # and the middleware agrees: no credential, 401, on each of a sample of them
    for path in ("/v1/participants", "/v1/transfers", "/v1/settlementWindows"):
        refused = client.get(path)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_openapi_document_names_the_bulk_body(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, _ = api
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/transfers/bulk"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BulkIn"}
    schemas = spec["components"]["schemas"]
    item = schemas["BulkIn"]["properties"]["transfers"]["items"]
    assert item == {"$ref": "#/components/schemas/BulkItemIn"}
    assert schemas["BulkItemIn"]["properties"]["payee"] == {
        "$ref": "#/components/schemas/BulkPayeeIn"
    }
    assert schemas["BulkMoneyIn"]["properties"]["currency"]["pattern"] == "^[A-Z]{3}$"


def test_a_bulk_larger_than_one_ledger_batch_commits_every_item(scheme: PaymentScheme) -> None:
    from entrepot.payments.bulk import BulkItem, bulk_transfers

    scheme.register_participant("cimb", "CIMB", "bank", "MY", ["MYR"])
    scheme.register_alias("cimb", "MSISDN", "+60123456780", "Ali", "MYR")
    scheme.deposit("maybank", "MYR", 50_000_000, "dep-big")
    scheme.set_net_debit_cap("maybank", "MYR", 50_000_000)
    items = [BulkItem(f"big-{i}", "MSISDN", "+60123456780", 100) for i in range(4_200)]
    results = bulk_transfers(scheme, "maybank", "big", "MYR", items)
    assert all(r.state.value == "COMMITTED" for r in results)  # 8,400 ledger events, 2 requests
    assert scheme.liquidity("cimb", "MYR")["net_position_minor"] == 4_200 * 100


def test_settlement_windows_are_listed_a_page_at_a_time(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, h = api
    for _ in range(3):
        closed = client.post("/v1/settlementWindows/close", headers=h["scheme"]).json()
        settle = f"/v1/settlementWindows/{closed['id']}/settle"
        assert client.post(settle, headers=h["scheme"]).is_success
    ids = [w["id"] for w in client.get("/v1/settlementWindows", headers=h["scheme"]).json()]
    assert ids == [1, 2, 3, 4]
    page = client.get("/v1/settlementWindows?after=1&limit=2", headers=h["scheme"]).json()
    assert [w["id"] for w in page] == [2, 3]
    for bad in ("limit=0", "limit=1001", "after=-1", "after=x"):
        refused = client.get(f"/v1/settlementWindows?{bad}", headers=h["scheme"])
        assert refused.status_code == 422, bad
        assert refused.json()["field"] == bad.partition("=")[0]


def test_a_window_id_out_of_range_is_refused_not_a_server_error(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, h = api
    # Found by a review: 1.0, +1 and 01 were taken for window 1 (and settled it).
    for bad in ("0", str(2**63), "1" + "0" * 30, "1.0", "+1", "01", "1e0", " 1", "\u0661"):
        assert client.get(f"/v1/settlementWindows/{bad}", headers=h["scheme"]).status_code == 422
        r = client.post(f"/v1/settlementWindows/{bad}/settle", headers=h["scheme"])
        assert r.status_code == 422


def test_a_deposit_and_liquidity_answer_in_the_apis_shape(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """Their answers had no schema in the OpenAPI document and snake_case keys, unlike every
    other answer; now amounts as everywhere else (amount, currency, minor), camelCase."""
    client, h = api
    body = {"depositId": "dep-api", "amount": {"amount": "25.50", "currency": "MYR"}}
    made = client.post("/v1/participants/maybank/deposits", json=body, headers=h["scheme"])
    assert made.status_code == 201, made.text
    figures = scheme.liquidity("maybank", "MYR")
    assert made.json() == {
        "participantId": "maybank",
        "currency": "MYR",
        "settlementBalance": {
            "amount": "10025.50",
            "currency": "MYR",
            "minor": figures["settlement_balance_minor"],
        },
        "netDebitCap": {"amount": "5000.00", "currency": "MYR", "minor": 500_000},
        "positionAvailable": {
            "amount": "5000.00",
            "currency": "MYR",
            "minor": figures["position_available_minor"],
        },
        "positionReserved": {"amount": "0.00", "currency": "MYR", "minor": 0},
        "netPosition": {"amount": "0.00", "currency": "MYR", "minor": 0},
    }
    read = client.get("/v1/participants/maybank/liquidity/MYR", headers=h["maybank"])
    assert read.status_code == 200 and read.json() == made.json()
    schema = client.get("/openapi.json").json()["paths"]
    for path, method in (
        ("/v1/participants/{participant_id}/deposits", "post"),
        ("/v1/participants/{participant_id}/liquidity/{currency}", "get"),
    ):
        answer = schema[path][method]["responses"]
        ok = answer["201" if method == "post" else "200"]["content"]["application/json"]
        assert ok["schema"] == {"$ref": "#/components/schemas/LiquidityOut"}


def test_a_tiny_rate_is_answered_as_a_plain_decimal_and_an_unknown_endpoint_is_a_404(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    client, h = api
    fxco = {"Authorization": f"Bearer {issue_credential(scheme.engine, 'fxco').token}"}
    body = {
        "sourceCurrency": "RWF",
        "targetCurrency": "CNY",
        "rate": "0.0000000001",
        "spreadBps": 0,
        "validSeconds": 60,
    }
    posted = client.post("/v1/fxRates", json=body, headers=fxco)
    assert posted.status_code == 201, posted.text
    assert posted.json()["rate"] == "0.0000000001"  # was "1E-10"
    assert "E" not in posted.json()["effectiveRate"]
    unknown = client.get("/v1/participants/nobody/endpoint", headers=h["scheme"])
    assert unknown.status_code == 404 and unknown.json()["code"] == "participant_not_found"
    unset = client.get("/v1/participants/icbc/endpoint", headers=h["icbc"])
    assert unset.status_code == 200 and unset.json()["url"] is None


def test_the_openapi_document_says_the_iso20022_routes_answer_xml(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, _ = api
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/iso20022/pacs008/{transfer_id}",
        "/v1/iso20022/pacs002/{transfer_id}",
        "/v1/iso20022/camt053/{participant_id}/{currency}",
    ):
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == ["application/xml"]


def test_a_statements_bounds_are_checked_each_by_its_own_name(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """A `to` past 2262 (a 64-bit nanosecond count) was a 500 in text/plain; a bad `to` was
    blamed on `from`; a time before 1970 came back as the ledger's `since`; a full-width
    digit was read as a digit."""
    client, h = api
    path = "/v1/iso20022/camt053/mtn-rw/RWF"
    for query, field in (
        ("to=9999-12-31T23:59:59Z", "to"),
        ("to=" + "9" * 40, "to"),
        ("to=-1", "to"),
        ("from=0001-01-01T00:00:00Z", "from"),
        ("from=%EF%BC%91", "from"),  # a full-width 1
        ("from=2026-13-01", "from"),
    ):
        r = client.get(f"{path}?{query}", headers=h["mtn-rw"])
        assert r.status_code == 422, (query, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert (r.json()["field"], r.json()["errorCode"]) == (field, "3100"), query
    r = client.get(f"{path}?from=2262-01-01T00:00:00Z&to=1", headers=h["mtn-rw"])
    assert r.status_code == 422 and r.json()["detail"] == "from is after to"
    # without to (its default is now) the problem names what was sent, not a "to" never sent
    r = client.get(f"{path}?from=2262-01-01T00:00:00Z", headers=h["mtn-rw"])
    assert r.status_code == 422 and r.json()["field"] == "from"
    assert r.json()["detail"] == "from is in the future (to defaults to now)"
    ok = client.get(f"{path}?from=0&to=2262-04-11T00:00:00Z", headers=h["mtn-rw"])
    assert ok.status_code == 200 and ok.text.startswith("<?xml")


def test_pacs008_names_the_payee_party_whatever_the_quote_id_and_the_participant_otherwise(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """The creditor is the payee party from the quote; a bulk item has no quote, and an alias
    removed since leaves only the participant (pacs.008 once took every quote id starting
    with 'b' for a bulk item's: found in review)."""
    client, h = api
    for qid, tid in (("q-1", "t-1"), ("bq-1", "t-2")):
        scheme.create_quote("mtn-rw", qid, "MERCHANT", "KL-TILL-42", 1000, "RECEIVE", "RWF")
        scheme.prepare_transfer("mtn-rw", tid, qid)
    for tid in ("t-1", "t-2"):
        xml = client.get(f"/v1/iso20022/pacs008/{tid}", headers=h["maybank"])
        assert xml.status_code == 200
        assert b"<Nm>Kedai Kopi KL</Nm>" in xml.content and b"KL-TILL-42" in xml.content
    scheme.remove_alias("maybank", "MERCHANT", "KL-TILL-42")
    xml = client.get("/v1/iso20022/pacs008/t-1", headers=h["maybank"])
    assert xml.status_code == 200 and b"<Nm>Maybank</Nm>" in xml.content
    assert b"KL-TILL-42" not in xml.content


def test_pacs008_does_not_name_a_party_the_alias_was_given_to_since(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """The creditor is looked up by the quote's alias as it is now: once maybank removed the
    till and cimb registered it for its own customer, the pacs.008 of the transfer maybank
    was paid named cimb's customer (name, country) as the creditor beside maybank as the
    creditor agent. The payee participant stands in, as for an alias removed."""
    client, h = api
    scheme.create_quote("mtn-rw", "q-moved", "MERCHANT", "KL-TILL-42", 1000, "RECEIVE", "RWF")
    scheme.prepare_transfer("mtn-rw", "t-moved", "q-moved")
    scheme.commit_transfer("maybank", "t-moved")
    scheme.register_participant("cimb", "CIMB", "bank", "MY", ["MYR"])
    scheme.remove_alias("maybank", "MERCHANT", "KL-TILL-42")
    scheme.register_alias("cimb", "MERCHANT", "KL-TILL-42", "Another Shop", "MYR")
    for who in ("mtn-rw", "maybank"):
        xml = client.get("/v1/iso20022/pacs008/t-moved", headers=h[who])
        assert xml.status_code == 200, xml.text
        assert b"Another Shop" not in xml.content
        assert xml.content.count(b"<Nm>Maybank</Nm>") == 2  # creditor agent and creditor


def test_no_route_shadows_a_later_one(scheme: PaymentScheme) -> None:
    """Routes are tried in order and the payment path's go first (``PAYMENT_PATH``): no route
    may take a request meant for one after it."""
    import re

    from starlette.routing import Match

    app = create_app(scheme)
    for router in {id(r): r for r in (v1_router, *_included_routers(app))}.values():
        routes = [r for r in router.routes if hasattr(r, "path") and hasattr(r, "methods")]
        for i, route in enumerate(routes):
            path = re.sub(r"\{[^}:]+(:[^}]+)?\}", "1", route.path)
            for method in route.methods:
                scope = {"type": "http", "path": path, "method": method, "root_path": ""}
                earlier = [r for r in routes[:i] if r.matches(scope)[0] is Match.FULL]
                assert not earlier, f"{method} {route.path} is taken by {earlier[0].path}"
    assert [r.path for r in v1_router.routes[: len(PAYMENT_PATH)]] == [p for _, p in PAYMENT_PATH]


def _included_routers(app: Any) -> list[Any]:
    from entrepot.entrypoints.api.routes_risk import router as risk_router
    from entrepot.entrypoints.api.routes_trade import router as trade_router

    return [risk_router, trade_router]


def test_a_qr_is_paid_in_its_own_currency_and_for_its_own_amount(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """An amount sent with a static QR is in the QR's currency; one sent with a dynamic QR
    is the QR's amount (it was dropped silently, and the QR's paid)."""
    client, h = api
    before = scheme.liquidity("mtn-rw", "RWF")
    pay = {"transferId": "t-qr", "quoteId": "q-qr", "sourceCurrency": "RWF"}
    static = {**pay, "payload": _kedai_qr(client, h, amount=None)}
    r = client.post(
        "/v1/qr/pay", json={**static, "amount": {"amount": "2.00", "currency": "EUR"}},
        headers=h["mtn-rw"],
    )  # fmt: skip
    assert r.status_code == 422 and r.json()["field"] == "amount.currency", r.text
    dynamic = {**pay, "payload": _kedai_qr(client, h, amount="1.00")}
    r = client.post(
        "/v1/qr/pay", json={**dynamic, "amount": {"amount": "500.00", "currency": "MYR"}},
        headers=h["mtn-rw"],
    )  # fmt: skip
    assert r.status_code == 422 and "this QR is for 1.00 MYR" in r.json()["detail"], r.text
    assert scheme.liquidity("mtn-rw", "RWF") == before
    r = client.post(
        "/v1/qr/pay", json={**dynamic, "amount": {"amount": "1.00", "currency": "MYR"}},
        headers=h["mtn-rw"],
    )  # fmt: skip
    assert r.status_code == 201 and r.json()["quote"]["receiveAmount"]["minor"] == 100, r.text


def test_a_qr_that_asks_for_a_tip_is_tipped_and_its_decode_says_so(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """Tags 55-57 reach the wallet (``/v1/qr/decode``) and the payment (``/v1/qr/pay``):
    the tip is added to what the merchant receives, and one the QR does not ask for is
    refused (422, ``tip``)."""
    from tests.service.test_payments import TIP, kedai_qr_with

    client, h = api
    payload = kedai_qr_with(2550, *TIP)
    decoded = client.post("/v1/qr/decode", json={"payload": payload}, headers=h["mtn-rw"])
    assert decoded.status_code == 200, decoded.text
    assert decoded.json()["tipOrConvenienceIndicator"] == "01"
    assert decoded.json()["convenienceFee"] is None
    pay = {"payload": payload, "transferId": "t-tip", "quoteId": "q-tip", "sourceCurrency": "RWF"}
    r = client.post(
        "/v1/qr/pay",
        json={**pay, "tip": {"amount": "2.00", "currency": "MYR"}},
        headers=h["mtn-rw"],
    )
    assert r.status_code == 201 and r.json()["quote"]["receiveAmount"]["minor"] == 2750, r.text
    plain = {**pay, "payload": _kedai_qr(client, h), "transferId": "t-no", "quoteId": "q-no"}
    r = client.post(
        "/v1/qr/pay",
        json={**plain, "tip": {"amount": "2.00", "currency": "MYR"}},
        headers=h["mtn-rw"],
    )
    assert r.status_code == 422 and r.json()["field"] == "tip", r.text


def _with_amount(payload: str, amount: str) -> str:
    """A dynamic QR's text with tag 54 set to ``amount`` and its CRC made right again (what
    another generator might print: ours refuses a zero amount)."""
    objects = qr.decode(payload).objects
    body = "".join(
        qr.DataObject("54", amount).encode() if obj.tag == "54" else obj.encode() for obj in objects
    )
    body += "6304"
    return body + f"{qr.crc16_ccitt_false(body.encode()):04X}"


@pytest.mark.parametrize("amount", ["0", "0.00"])
def test_a_qr_for_a_zero_amount_is_refused_and_nothing_is_paid(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme, amount: str
) -> None:
    """MPM v1.1: a transaction amount "shall be different from zero" (a static QR leaves it
    out). A zero one is refused as a bad tag 54, with an amount sent or without."""
    client, h = api
    zero = _with_amount(_kedai_qr(client, h, amount="1.00"), amount)
    before = scheme.liquidity("mtn-rw", "RWF")
    pay = {"payload": zero, "transferId": "t-z", "quoteId": "q-z", "sourceCurrency": "RWF"}
    for body in (pay, {**pay, "amount": {"amount": "1.00", "currency": "MYR"}}):
        r = client.post("/v1/qr/pay", json=body, headers=h["mtn-rw"])
        assert r.status_code == 422, r.text
        assert (r.json()["code"], r.json()["field"]) == ("qr_bad_value", "54"), r.text
    assert scheme.liquidity("mtn-rw", "RWF") == before
    assert client.get("/v1/quotes/q-z", headers=h["mtn-rw"]).status_code == 404
    decoded = client.post("/v1/qr/decode", json={"payload": zero}, headers=h["mtn-rw"])
    assert decoded.status_code == 422 and decoded.json()["field"] == "54", decoded.text


def test_a_qr_is_encoded_only_for_a_till_id_that_can_be_registered(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, h = api
    body = {
        "tillId": "-abc",
        "merchantName": "Kedai",
        "city": "Kuala Lumpur",
        "country": "MY",
        "currency": "MYR",
    }
    r = client.post("/v1/qr/encode", json=body, headers=h["maybank"])
    assert r.status_code == 422 and "malformed" in r.json()["detail"], r.text


def test_a_control_character_in_a_path_or_query_is_refused_not_a_server_error(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """No id holds one, and PostgreSQL refuses a NUL in text: a lookup of "a%00b" was a 500
    there (a 404 on SQLite)."""
    client, h = api
    for method, path in (
        ("GET", "/v1/transfers/a%00b"),
        ("GET", "/v1/quotes/a%00b"),
        ("POST", "/v1/transfers/a%00b/commit"),
        ("GET", "/v1/transfers?after=a%00b"),
        ("GET", "/v1/escrows/a%01b"),
    ):
        r = client.request(method, path, headers=h["mtn-rw"])
        assert r.status_code == 400 and r.json()["code"] == "invalid_input", (path, r.text)
    # and a reason with one is bad input, not a 500
    pay = {
        "quoteId": "q-nul",
        "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-TILL-42"},
        "amountType": "RECEIVE",
        "amount": {"amount": "1.00", "currency": "MYR"},
        "sourceCurrency": "RWF",
    }
    assert client.post("/v1/quotes", json=pay, headers=h["mtn-rw"]).status_code == 201
    t = {"transferId": "t-nul", "quoteId": "q-nul"}
    assert client.post("/v1/transfers", json=t, headers=h["mtn-rw"]).status_code == 201
    r = client.post(
        "/v1/transfers/t-nul/reject", json={"reason": "bad\u0000payee"}, headers=h["maybank"]
    )
    assert r.status_code == 422 and r.json()["field"] == "reason", r.text
    assert scheme.get_transfer("maybank", "t-nul").state.value == "RESERVED"


@pytest.mark.parametrize("path", ["/v1/quotes", "/v1/escrows", "/v1/transfers"])
def test_a_body_that_is_not_json_names_no_field(
    api: tuple[TestClient, dict[str, dict[str, str]]], path: str
) -> None:
    """docs/payments.md: invalid_input's ``field`` names the malformed field. A body that is
    not JSON has none: FastAPI's error location is a character offset ("field": "13" named
    nothing a client could show), so the problem says where in the body instead."""
    client, h = api
    r = client.post(
        path,
        content=b'{"escrowId": x}',
        headers={**h["mtn-rw"], "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "invalid_input" and problem["errorCode"] == "3100"
    assert "field" not in problem, problem
    assert problem["detail"].startswith("Invalid JSON: "), problem
    assert "character 13" in problem["detail"], problem


def test_an_escrow_controlled_by_a_participant_that_never_agreed_is_refused(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """docs/payments.md, Escrow: the controller is the payer, the payee or an active escrow
    agent (a hub). Naming another participant, or one that does not exist, is one 403
    ``controller_not_allowed`` naming the field, and nothing is held or written."""
    client, h = api
    scheme.register_participant("hub", "Trade hub", "hub", "MY", [])
    body = {
        "escrowId": "e-ctl",
        "payeeFsp": "fxco",
        "amount": {"amount": "10.00", "currency": "MYR"},
        "purpose": "order 7",
        "deadlineSeconds": 600,
    }
    before = snapshot(scheme)
    answers = []
    for name in ("icbc", "mtn-rw", "nobody"):
        r = client.post("/v1/escrows", json={**body, "controller": name}, headers=h["maybank"])
        assert r.status_code == 403, r.text
        problem = r.json()
        assert (problem["code"], problem["errorCode"], problem["field"]) == (
            "controller_not_allowed",
            "3000",
            "controller",
        )
        answers.append(problem["detail"].replace(name, "<name>"))
    assert len(set(answers)) == 1, answers  # whether the participant exists or not
    assert client.get("/v1/escrows/e-ctl", headers=h["maybank"]).status_code == 404
    assert snapshot(scheme) == before
    # the payer's own, the payee's or the hub's: taken
    r = client.post("/v1/escrows", json={**body, "controller": "hub"}, headers=h["maybank"])
    assert r.status_code == 201 and r.json()["controller"] == "hub", r.text


def test_a_refusal_names_its_field_as_the_request_spells_it(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """Found by a review: these named fields no request has (``id``, ``currency``,
    ``target``), where the docs promise the request's own spelling everywhere."""
    client, h = api
    fxco = {"Authorization": f"Bearer {issue_credential(scheme.engine, 'fxco').token}"}
    quote = {
        "quoteId": "q-f",
        "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-TILL-42"},
        "amountType": "SEND",
        "amount": {"amount": "5000", "currency": "RWF"},
        "sourceCurrency": "RWF",
    }
    bad_alias = {"partyIdType": "MSISDN", "partyIdentifier": "nope"}
    tills = {"merchantName": "K", "city": "KL", "country": "MY", "currency": "MYR"}
    rate = {"sourceCurrency": "RWF", "targetCurrency": "RWF", "rate": "1", "spreadBps": 0}
    for path, body, who, field in (
        ("/v1/quotes", {**quote, "payee": bad_alias}, h["mtn-rw"], "payee.partyIdentifier"),
        ("/v1/quotes", {**quote, "payer": bad_alias}, h["mtn-rw"], "payer.partyIdentifier"),
        ("/v1/quotes", {**quote, "sourceCurrency": "EUR"}, h["mtn-rw"], "sourceCurrency"),
        ("/v1/qr/encode", {**tills, "tillId": ".abc"}, h["maybank"], "tillId"),
        ("/v1/fxRates", {**rate, "validSeconds": 10}, fxco, "targetCurrency"),
    ):
        r = client.post(path, json=body, headers=who)
        assert r.status_code == 422 and r.json()["field"] == field, (path, r.text)


def test_qr_errors_name_the_field_the_request_sent(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """Found by a review: errors of the QR routes named EMVCo tags ("58", "59"), a field the
    request has not (``payee``, a tip's ``amount``), or told the payer to change a currency
    it had sent right; and a QR was encoded in a currency its till is not paid in, so that
    every payment of it was refused. Each now names what the request sent, and nothing
    changes."""
    from tests.service.test_payments import TIP, kedai_qr, kedai_qr_with

    client, h = api
    before = scheme.liquidity("mtn-rw", "RWF"), scheme.liquidity("maybank", "MYR")
    body = {
        "tillId": "KL-TILL-42",
        "merchantName": "Kedai Kopi KL",
        "city": "Kuala Lumpur",
        "country": "MY",
        "currency": "MYR",
    }
    for change, field in (
        ({"country": "ZZ"}, "country"),
        ({"merchantName": "   "}, "merchantName"),
        ({"city": "K\u200bL"}, "city"),
        ({"reference": "\u202eabc"}, "reference"),
        ({"currency": "EUR"}, "currency"),  # the till is paid in MYR
    ):
        for route in ("/v1/qr/encode", "/v1/qr/image"):
            r = client.post(route, json={**body, **change}, headers=h["maybank"])
            assert r.status_code == 422 and r.json()["field"] == field, (change, r.text)
    ok = client.post("/v1/qr/encode", json=body, headers=h["maybank"])
    assert qr.decode(ok.json()["payload"]).find_acquirer() == "maybank"
    pay = {"transferId": "t-f", "quoteId": "q-f", "sourceCurrency": "RWF"}
    cases = (
        # a tip the currency cannot hold: the tip is at fault, not the amount
        ({"payload": kedai_qr_with(2550, *TIP), "tip": {"amount": "1.001", "currency": "MYR"}},
         "mtn-rw", "tip.amount"),
        # maybank paying its own till: the QR names the payee, the request has no "payee"
        ({"payload": kedai_qr(2550), "sourceCurrency": "MYR"}, "maybank", "payload"),
        # a QR in EUR for a till paid in MYR, the amount sent in the QR's own currency
        ({"payload": kedai_qr(currency="EUR"), "amount": {"amount": "2.00", "currency": "EUR"}},
         "mtn-rw", "payload"),
    )  # fmt: skip
    for sent, payer, field in cases:
        r = client.post("/v1/qr/pay", json={**pay, **sent}, headers=h[payer])
        assert r.status_code == 422 and r.json()["field"] == field, (field, r.text)
    assert (scheme.liquidity("mtn-rw", "RWF"), scheme.liquidity("maybank", "MYR")) == before


def test_a_qr_that_prompts_the_payer_is_paid_with_the_values_entered(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """``***`` in tag 62: ``/v1/qr/decode`` lists what the payer's app must ask for, and
    ``/v1/qr/pay`` needs it in ``prompted`` (422 naming ``prompted.billNumber`` without it),
    the transfer's note then carrying it."""
    client, h = api
    text = qr.build_merchant_qr(
        merchant_alias="KL-TILL-42", mcc="5812", currency="MYR", country="MY",
        merchant_name="Kedai Kopi KL", city="Kuala Lumpur", amount_minor=1000,
        bill_number="***",
    ).text  # fmt: skip
    decoded = client.post("/v1/qr/decode", json={"payload": text}, headers=h["mtn-rw"])
    assert decoded.json()["prompts"] == ["billNumber"], decoded.text
    # tag 62's values under the names ``prompts`` and ``prompted`` use (they were snake_case:
    # ``bill_number`` beside ``prompts: ["billNumber"]``, in one answer)
    assert decoded.json()["additionalData"] == {"billNumber": "***"}, decoded.text
    assert decoded.json()["alternateLanguage"] is None  # no tag 64
    # The specification's example carries tag 64: the wallet is given it, to show a payer set
    # to that language (a review found the decode leaving it out)
    vector = next(
        line.strip()
        for line in (shared_data_dir() / "test-vectors" / "emvco-mpm.txt").read_text().splitlines()
        if line.startswith("000201")
    )
    other = client.post("/v1/qr/decode", json={"payload": vector}, headers=h["mtn-rw"])
    assert other.json()["alternateLanguage"] == {
        "language": "ZH",
        "merchantName": "最佳运输",
        "city": "北京",
    }, other.text
    pay = {"payload": text, "transferId": "t-p", "quoteId": "q-p", "sourceCurrency": "RWF"}
    before = scheme.liquidity("mtn-rw", "RWF")
    r = client.post("/v1/qr/pay", json=pay, headers=h["mtn-rw"])
    assert r.status_code == 422 and r.json()["field"] == "prompted.billNumber", r.text
    assert scheme.liquidity("mtn-rw", "RWF") == before
    r = client.post(
        "/v1/qr/pay", json={**pay, "prompted": {"billNumber": "BILL-9"}}, headers=h["mtn-rw"]
    )
    assert r.status_code == 201, r.text
    assert scheme.get_transfer("mtn-rw", "t-p").note == "QR bill BILL-9"


def test_a_dynamic_qr_paid_again_is_409_qr_already_paid_and_reserves_nothing(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """A dynamic QR is one payment: paid again with new ids while the first payment stands
    it is 409 ``qr_already_paid`` (Mojaloop 3100) naming that transfer, and nothing is
    reserved; once the merchant's participant rejects the first, it is paid."""
    client, h = api
    text = qr.build_merchant_qr(
        merchant_alias="KL-TILL-42", mcc="5812", currency="MYR", country="MY",
        merchant_name="Kedai Kopi KL", city="Kuala Lumpur", amount_minor=1000,
    ).text  # fmt: skip
    pay = {"payload": text, "transferId": "t-d1", "quoteId": "q-d1", "sourceCurrency": "RWF"}
    assert client.post("/v1/qr/pay", json=pay, headers=h["mtn-rw"]).status_code == 201
    again = {**pay, "transferId": "t-d2", "quoteId": "q-d2"}
    before = scheme.liquidity("mtn-rw", "RWF")
    r = client.post("/v1/qr/pay", json=again, headers=h["mtn-rw"])
    assert r.status_code == 409, r.text
    assert (r.json()["code"], r.json()["errorCode"]) == ("qr_already_paid", "3100")
    assert "t-d1" in r.json()["detail"]
    assert scheme.liquidity("mtn-rw", "RWF") == before
    assert client.get("/v1/quotes/q-d2", headers=h["mtn-rw"]).status_code == 404
    r = client.post(
        "/v1/transfers/t-d1/reject", json={"reason": "paid in cash"}, headers=h["maybank"]
    )
    assert r.status_code == 200, r.text
    assert client.post("/v1/qr/pay", json=again, headers=h["mtn-rw"]).status_code == 201


def test_a_quotes_unknown_amount_currency_is_named_where_the_body_has_it(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """The body's currency is ``amount.currency`` (as a SEND amount in another currency is
    named); an unknown one was named ``currency``, a field a quote does not have."""
    client, h = api
    body = {
        "quoteId": "q-cur",
        "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-TILL-42"},
        "amountType": "SEND",
        "amount": {"amount": "5000", "currency": "XXX"},
        "sourceCurrency": "RWF",
    }
    r = client.post("/v1/quotes", json=body, headers=h["mtn-rw"])
    assert r.status_code == 422 and r.json()["field"] == "amount.currency", r.text
    assert "XXX" in r.json()["detail"]
    other = {**body, "amount": {"amount": "5000", "currency": "MYR"}}
    r = client.post("/v1/quotes", json=other, headers=h["mtn-rw"])
    assert r.status_code == 422 and r.json()["field"] == "amount.currency", r.text
    ok = client.post("/v1/quotes", json={**body, "amount": {"amount": "5000", "currency": "RWF"}},
                     headers=h["mtn-rw"])  # fmt: skip
    assert ok.status_code == 201, ok.text


def test_a_bulk_of_too_many_items_is_told_how_many_came_and_the_most(
    api: tuple[TestClient, dict[str, dict[str, str]]], scheme: PaymentScheme
) -> None:
    """A bulk over its size was refused with the most it may hold alone: a client splitting
    a payroll could not tell by how much it was over."""
    from entrepot.payments.bulk import BULK_ITEMS_MAX

    client, h = api
    item = {
        "transferId": "b1",
        "payee": {"partyIdType": "MSISDN", "partyIdentifier": "+60123456789"},
        "amount": {"amount": "1.00", "currency": "MYR"},
    }
    before = scheme.liquidity("maybank", "MYR")
    for sent in (BULK_ITEMS_MAX + 1, BULK_ITEMS_MAX + 37):
        body = {"bulkId": "bulk-big", "transfers": [item] * sent}
        r = client.post("/v1/transfers/bulk", json=body, headers=h["maybank"])
        assert r.status_code == 422, r.text
        problem = r.json()
        assert (problem["code"], problem["field"]) == ("invalid_input", "transfers")
        assert f"{sent:,}" in problem["detail"] or str(sent) in problem["detail"], problem
        assert (
            f"{BULK_ITEMS_MAX:,}" in problem["detail"] or str(BULK_ITEMS_MAX) in problem["detail"]
        ), problem
    assert scheme.liquidity("maybank", "MYR") == before


@pytest.mark.parametrize("length", [65, 4_000])
def test_transfer_not_found_echoes_a_long_transfer_id_cut_short(
    api: tuple[TestClient, dict[str, dict[str, str]]], length: int
) -> None:
    """An id is 1-64 characters, but a path may hold one of any length, and
    transfer_not_found echoed it whole into the answer (and each log line recording it). One
    that could be an id is still named whole; a longer one by its first 64 characters, '...'
    and its length, as the money and ISO 20022 checks quote what they refuse."""
    client, h = api
    r = client.get("/v1/transfers/nope-64", headers=h["mtn-rw"])
    assert r.status_code == 404
    assert r.json()["detail"] == "transfer nope-64 does not exist"
    long_id = ("t-" + "0123456789" * 400)[:length]
    assert len(long_id) == length
    r = client.get(f"/v1/transfers/{long_id}", headers=h["mtn-rw"])
    assert r.status_code == 404, r.text
    problem = r.json()
    assert problem["code"] == "transfer_not_found"
    shown = f"transfer {long_id[:64]}... ({len(long_id)} characters) does not exist"
    assert problem["detail"] == shown
    assert long_id[:65] not in r.text


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/quotes/{id}", "quote_not_found"),
        ("/v1/escrows/{id}", "escrow_not_found"),
        ("/v1/participants/{id}/rateLimit", "participant_not_found"),
    ],
)
def test_every_not_found_names_a_long_id_cut_short(
    api: tuple[TestClient, dict[str, dict[str, str]]], path: str, code: str
) -> None:
    """As transfer_not_found: a quote, escrow or participant id of 4,000 characters was
    echoed whole into the answer and each log line recording it."""
    client, h = api
    long_id = ("x-" + "0123456789" * 400)[:4000]
    r = client.get(path.format(id=long_id), headers=h["scheme"])
    assert r.status_code == 404, r.text
    assert r.json()["code"] == code
    assert "(4000 characters)" in r.json()["detail"]
    assert long_id[:65] not in r.text
