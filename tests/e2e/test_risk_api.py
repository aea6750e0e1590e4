"""The risk API end to end through HTTP (/v1/risk) on the seed's six-hub network: a bank's
compliance officer screens parties against the OFAC lists; a Kigali merchant with three months
of sales borrows from its bank (mtn-rw) on that history, the loan sits on the ledger, and a
merchant without history contests its decline and the bank's officer overturns it. Every caller
sees only its own side; refused requests answer their code and change nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from httpx import Response

from entrepot.config import shared_data_dir
from entrepot.entrypoints.api.app import create_app
from entrepot.payments.credentials import issue_credential
from entrepot.risk.decisions import JsonlSink, LogHead, verify_log
from entrepot.risk.lending import Lending, ledger_id
from entrepot.risk.lending import store as lending_store
from entrepot.trade.credentials import issue_actor_credential
from tests.trade.network import DAY_S, START_NS, Net, build_net

SANCTIONS = shared_data_dir() / "sanctions"
needs_lists = pytest.mark.skipif(
    not (SANCTIONS / "ofac_sdn.csv").is_file(), reason="no OFAC lists in ../shared/data"
)
MALEKI = 10609  # "MALEKI, Naser": DOB circa 1960, nationality Iran
PARTICIPANTS = ("scheme", "mtn-rw", "maybank-my", "hub-kigali")
KEPT, NEWCOMER = "merchant:m-inzozi", "merchant:m-umoja"  # with three months of sales; without
BASKET_RWF = 45_000  # one basket a month for three months: the merchant's sales
# The bank's policy: 1.5 x average monthly sales (RWF 45,000) = RWF 67,500; fee 3% = 2,025.
PRINCIPAL, FEE = 67_500, 2_025
POLICY: dict[str, Any] = {
    "minTenureDays": 60,
    "minAvgMonthlySalesMinor": 10_000,
    "maxRefundRate": "0.05",
    "maxDisputeRate": "0.02",
    "minRegularity": "0.2",
    "limitMultiple": "1.5",
    "limitMinMinor": 10_000,
    "limitMaxMinor": 2_000_000,
    "feeBps": 300,
    "termDays": 90,
    "repaymentShareBps": 1_000,
    "historyMonths": 3,  # the bank decides on the last three complete months
}
ASK = {"offerId": "off-1", "lenderId": "mtn-rw"}
#: (caller, method, path under /v1/risk, body, status, code, field)
Refusal = tuple[str, str, str, dict[str, Any] | None, int, str, str | None]


class Api:
    """A TestClient with one bearer token per caller: ``api.call("mtn-rw", "GET", path)``."""

    def __init__(self, client: TestClient, net: Net, home: Path) -> None:
        self.client = client
        self.net = net
        self.log = home / "decisions" / "decisions.jsonl"
        self.tokens = {p: issue_credential(net.engine, p).token for p in PARTICIPANTS}

    def merchant(self, merchant_id: str, reg: str) -> str:
        """Onboard a Kigali merchant paid at mtn-rw; its credential, issued by its hub."""
        principal = self.net.merchant(merchant_id, reg=reg, name=f"{merchant_id} Ltd")
        issued = issue_actor_credential(self.net.trade, "hub-kigali", principal)
        self.tokens[principal] = issued.token
        return principal

    def call(
        self,
        caller: str,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> Response:
        headers = {"Authorization": f"Bearer {self.tokens[caller]}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        response: Response = self.client.request(
            method, f"/v1/risk{path}", json=body, headers=headers
        )
        return response

    def ok(self, caller: str, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = self.call(caller, method, path, body)
        assert response.status_code == status, response.text
        return response.json()

    def refused(
        self, response: Response, status: int, code: str, field: str | None = None
    ) -> dict[str, Any]:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        body: dict[str, Any] = response.json()
        assert (body["code"], body.get("field")) == (code, field), body
        return body

    def all_refused(self, *refusals: Refusal) -> None:
        """Each request is refused with its status, code and field; together they change no
        lending row, no ledger account or transfer, and log no decision."""
        before = self.snapshot()
        for caller, method, path, body, status, code, field in refusals:
            self.refused(self.call(caller, method, path, body), status, code, field)
        assert self.snapshot() == before, "a refused request changed something"

    def logged(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def snapshot(self) -> dict[str, Any]:
        with self.net.engine.connect() as conn:
            tables = {
                t.name: sorted(tuple(r) for r in conn.execute(sa.select(t)).all())
                for t in lending_store.TABLES
            }
            accounts = sorted(
                tuple(r) for r in conn.execute(sa.text("SELECT * FROM ledger_accounts")).all()
            )
            transfers = conn.execute(sa.text("SELECT count(*) FROM ledger_transfers")).scalar()
        return {
            "tables": tables,
            "accounts": accounts,
            "transfers": transfers,
            "log": self.logged(),
        }


def make_api(engine: sa.Engine, home: Path, lists: Path) -> Iterator[Api]:
    net = build_net(engine)
    lending = Lending(engine, net.scheme.ledger, net.clock, sink=JsonlSink(home / "decisions"))
    net.trade.lending = lending  # payouts repay loans, as bootstrap composes it
    app = create_app(
        net.scheme,
        net.trade,
        lending=lending,
        decisions_dir=home / "decisions",
        sanctions_dir=lists,
    )
    with TestClient(app) as client:
        yield Api(client, net, home)


@pytest.fixture
def api(engine: sa.Engine, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(engine, tmp_path, SANCTIONS)


@pytest.fixture
def lender(api: Api) -> Api:
    """m-inzozi sold one basket a month for three months (Dec-Feb; now 2027-03-04) to a Kuala
    Lumpur buyer, delivered and paid; m-umoja has just joined; mtn-rw's policy is set."""
    api.merchant("m-inzozi", "RW-100200")
    buyer = api.net.buyer()
    sku = api.net.basket(KEPT, on_hand=40)
    for n in range(3):
        api.net.order(buyer, sku, 1, order_id=f"o-{n}")
        api.net.ship(f"o-{n}")
        api.net.trade.confirm_receipt(buyer, f"o-{n}")
        api.net.advance_days(31)
    api.merchant("m-umoja", "RW-100201")
    api.ok("mtn-rw", "PUT", "/lending/policies/RWF", POLICY)
    return api


def minor(doc: dict[str, Any], *keys: str) -> list[int]:
    return [int(doc[k]["minor"]) for k in keys]


def check_loan_on_ledger(api: Api, loan: dict[str, Any], repaid: int) -> None:
    """The loan's figures are its receivable account's debits and credits on the ledger."""
    account = api.net.scheme.ledger.get_account(int(loan["receivableAccount"]))
    assert account.id == ledger_id("lend-receivable", loan["loanId"])
    assert (account.debits_posted, account.credits_posted) == (PRINCIPAL + FEE, repaid)
    figures = minor(loan, "principal", "fee", "totalDue", "repaid", "outstanding")
    assert figures == [PRINCIPAL, FEE, PRINCIPAL + FEE, repaid, PRINCIPAL + FEE - repaid]


# ---------------------------------------------------------------------- sanctions screening
@needs_lists
def test_a_listed_name_is_a_review_with_its_ofac_candidate(api: Api) -> None:
    body = {"parties": [{"name": "Naser Maleki"}, {"name": "Amahoro Basket Cooperative"}]}
    result = api.ok("maybank-my", "POST", "/screenings", body)
    assert result["counts"] == {"clear": 1, "review": 1, "match": 0}
    listed, unlisted = result["screenings"]
    assert (listed["name"], listed["decision"]) == ("Naser Maleki", "review")
    best = listed["best"]
    assert (best["entNum"], best["listedName"], best["partyType"], best["decision"]) == (
        MALEKI,
        "MALEKI, Naser",
        "individual",
        "review",
    )
    assert best["reasons"][-1] == "name only: no DOB or nationality to confirm it"
    assert (listed["reasons"], listed["score"]) == (best["reasons"], best["score"])
    assert (unlisted["decision"], unlisted["score"], unlisted["best"]) == ("clear", 0.0, None)
    assert unlisted["reasons"] == ["no listed name is close enough"]
    assert result["listVersion"].startswith("ofac-")
    assert {s["listVersion"] for s in result["screenings"]} == {result["listVersion"]}
    logged = api.logged()
    assert [d["decision_id"] for d in logged] == [listed["decisionId"], unlisted["decisionId"]]
    assert [d["outcome"] for d in logged] == ["review", "clear"]


@needs_lists
def test_a_screening_decision_is_explained_to_the_scheme_operator(api: Api) -> None:
    body = {"parties": [{"name": "Naser Maleki", "dob": "1975-05-01"}]}
    (one,) = api.ok("mtn-rw", "POST", "/screenings", body)["screenings"]
    explained = api.ok("scheme", "GET", f"/decisions/{one['decisionId']}")
    assert (explained["decisionId"], explained["kind"], explained["outcome"]) == (
        one["decisionId"],
        "sanctions",
        "review",
    )
    assert (explained["modelVersion"], explained["score"]) == (one["listVersion"], one["score"])
    assert explained["reasons"] == one["reasons"]
    assert explained["reasons"][1].startswith("DOB 1975-05-01 differs")
    assert explained["at"] == "2026-12-01T00:00:00Z"
    assert {
        k: explained["inputs"][k]
        for k in ("candidate", "dob_year", "country", "type", "requested_by")
    } == {
        "candidate": MALEKI,
        "dob_year": 1975,
        "country": None,
        "type": None,
        "requested_by": "mtn-rw",
    }
    assert "maleki" not in json.dumps(explained["inputs"]).lower()  # the name only hashed
    assert explained["explanation"].startswith(f"Decision {one['decisionId']} (sanctions)")
    # The participant that asked reads its screening back (its compliance file), as the
    # operator does; no other participant does (nor learns it exists).
    path = f"/decisions/{one['decisionId']}"
    assert api.ok("mtn-rw", "GET", path) == explained
    api.all_refused(("maybank-my", "GET", path, None, 404, "risk_unknown_decision", "decisionId"))


@needs_lists
def test_a_corroborated_hit_is_a_match(api: Api) -> None:
    body = {"parties": [{"name": "MALEKI Nasser", "dob": "1960-05-01", "country": "IR"}]}
    (one,) = api.ok("mtn-rw", "POST", "/screenings", body)["screenings"]
    assert (one["decision"], one["best"]["entNum"]) == ("match", MALEKI)
    assert one["reasons"] == [
        "name tokens match alias 'MALEKI, Nasser' (Jaro-Winkler 1.00, score 1.00)",
        "DOB 1960-05-01 matches 1958–1962",
        "nationality Iran matches",
    ]


@pytest.mark.parametrize(
    ("party", "code", "field"),
    [
        ({"name": "  "}, "risk_empty_name", "parties.1.name"),
        ({"name": "-- //"}, "risk_empty_name", "parties.1.name"),
        ({"dob": "1960-05-01"}, "invalid_input", "parties.1.name"),
        ({"name": "Naser Maleki", "dob": "1960-13-01"}, "risk_invalid_party", "parties.1.dob"),
        ({"name": "N Maleki", "country": "Atlantis"}, "risk_invalid_party", "parties.1.country"),
        ({"name": "N Maleki", "country": "XY"}, "risk_invalid_party", "parties.1.country"),
        ({"name": "Naser Maleki", "type": "vessel"}, "invalid_input", "parties.1.type"),
        # a control character: screened as two words and echoed back (NUL, a line break, an
        # escape); refused like every other text the API takes
        ({"name": "Naser\x00Maleki"}, "risk_invalid_party", "parties.1.name"),
        ({"name": "Naser\nMaleki"}, "risk_invalid_party", "parties.1.name"),
        ({"name": "Naser \x1b[2JMaleki"}, "risk_invalid_party", "parties.1.name"),
        ({"name": "Naser\x85Maleki"}, "risk_invalid_party", "parties.1.name"),
    ],
)
def test_a_bad_party_refuses_the_whole_batch(
    api: Api, party: dict[str, Any], code: str, field: str
) -> None:
    body = {"parties": [{"name": "Kenji Tanaka"}, party]}
    api.all_refused(("mtn-rw", "POST", "/screenings", body, 422, code, field))
    assert api.logged() == []


@needs_lists
def test_a_party_from_a_country_the_list_never_names_is_screened(api: Api) -> None:
    """Hungary and Zambia appear nowhere on the OFAC list, and their ISO codes were refused as
    unknown countries (422): an operator could not screen a party from there at all."""
    body = {"parties": [{"name": "Kenji Tanaka", "country": "HU"},
                        {"name": "Naser Maleki", "country": "ZM"}]}  # fmt: skip
    result = api.ok("maybank-my", "POST", "/screenings", body)
    assert [s["decision"] for s in result["screenings"]] == ["clear", "review"]
    assert "nationality differs (listed Iran)" in result["screenings"][1]["reasons"]
    assert [d["inputs"]["country"] for d in api.logged()] == ["HU", "ZM"]


def test_screening_is_for_participants_in_batches_of_at_most_1000(api: Api) -> None:
    merchant = api.merchant("m-inzozi", "RW-100200")
    many = {"parties": [{"name": f"Party {n}"} for n in range(1_001)]}
    api.all_refused(
        (merchant, "POST", "/screenings", {"parties": [{"name": "Kenji Tanaka"}]}, 403,
         "risk_forbidden", None),
        ("mtn-rw", "POST", "/screenings", {"parties": []}, 422, "invalid_input", "parties"),
        ("mtn-rw", "POST", "/screenings", many, 422, "invalid_input", "parties"),
    )  # fmt: skip


def test_without_lists_screening_is_unavailable(engine: sa.Engine, tmp_path: Path) -> None:
    for api in make_api(engine, tmp_path, tmp_path / "no-lists"):
        one = {"parties": [{"name": "Kenji Tanaka"}]}
        for _ in range(2):  # a 503 is not kept for replay: the retry tries again
            response = api.call("mtn-rw", "POST", "/screenings", one, key="screen-1")
            body = api.refused(response, 503, "risk_lists_unavailable")
            assert "Idempotent-Replayed" not in response.headers
        assert body["detail"].endswith(
            "no-lists holds no ofac_sdn.csv (set ENTREPOT_SANCTIONS_DIR)"
        )
        assert api.logged() == []


def test_decision_ids_are_checked(api: Api) -> None:
    api.all_refused(
        ("scheme", "GET", "/decisions/" + "0" * 32, None, 404, "risk_unknown_decision",
         "decisionId"),
        ("scheme", "GET", "/decisions/not-an-id", None, 422, "invalid_input", "decisionId"),
    )  # fmt: skip


@needs_lists
def test_any_caller_reads_the_logs_head_an_anchor_a_rewrite_cannot_hold(api: Api) -> None:
    empty = api.ok("mtn-rw", "GET", "/decisions/head")
    assert empty == {"offset": 0, "hash": "0" * 64, "anchor": "0:" + "0" * 64}
    body = {"parties": [{"name": "Naser Maleki"}, {"name": "Kenji Tanaka"}]}
    api.ok("mtn-rw", "POST", "/screenings", body)
    head = api.ok("maybank-my", "GET", "/decisions/head")  # a consortium member records it
    lines = api.log.read_bytes().split(b"\n")[:-1]
    assert head["offset"] == api.log.stat().st_size and len(lines) == 2
    assert head["hash"] == hashlib.sha256(lines[-1]).hexdigest()
    assert head["anchor"] == f"{head['offset']}:{head['hash']}"
    assert api.ok("scheme", "GET", "/decisions/head") == head  # reading it writes nothing
    assert verify_log(api.log, [LogHead.parse(head["anchor"])]).intact
    api.log.write_bytes(api.log.read_bytes().replace(b'"review"', b'"clear"', 1))
    assert not verify_log(api.log, [LogHead.parse(head["anchor"])]).intact


def test_a_log_kept_in_memory_has_no_head(engine: sa.Engine) -> None:
    net = build_net(engine)
    with TestClient(create_app(net.scheme, net.trade)) as client:
        token = issue_credential(net.engine, "mtn-rw").token
        response = client.get(
            "/v1/risk/decisions/head", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 409
    assert response.json()["code"] == "risk_log_not_kept"


# ---------------------------------------------------------------------- lending: policies
def test_a_bank_sets_and_reads_its_own_policy(api: Api) -> None:
    first = api.ok("mtn-rw", "PUT", "/lending/policies/RWF", POLICY)
    assert (first["lenderId"], first["currency"], first["version"]) == ("mtn-rw", "RWF", 1)
    assert {k: first[k] for k in POLICY} == POLICY
    assert (first["offerValidDays"], first["lateAfterDays"], first["maxPd"]) == (14, 30, None)
    assert first["setAt"] == "2026-12-01T00:00:00Z"
    assert api.ok("mtn-rw", "PUT", "/lending/policies/RWF", POLICY) == first  # same rules
    changed = api.ok("mtn-rw", "PUT", "/lending/policies/RWF", {**POLICY, "feeBps": 250})
    assert (changed["version"], changed["feeBps"]) == (2, 250)
    assert api.ok("mtn-rw", "GET", "/lending/policies/RWF?version=1") == first
    assert api.ok("mtn-rw", "GET", "/lending/policies/RWF") == changed


def test_only_a_bank_or_wallet_sets_a_policy_and_a_bad_one_changes_nothing(api: Api) -> None:
    merchant = api.merchant("m-inzozi", "RW-100200")
    api.ok("mtn-rw", "PUT", "/lending/policies/RWF", POLICY)
    path = "/lending/policies/RWF"
    api.all_refused(
        ("maybank-my", "GET", path, None, 404, "lending_policy_not_found", None),
        (merchant, "PUT", path, POLICY, 403, "lending_forbidden", None),
        (merchant, "GET", path, None, 403, "lending_forbidden", None),
        ("hub-kigali", "PUT", path, POLICY, 403, "lending_forbidden", None),
        ("mtn-rw", "PUT", path, {**POLICY, "limitMaxMinor": 5_000}, 422,
         "lending_invalid_policy", "limitMaxMinor"),
        ("mtn-rw", "PUT", path, {**POLICY, "historyMonths": 37}, 422, "invalid_input",
         "historyMonths"),
        ("mtn-rw", "PUT", path, {**POLICY, "minGrowth": "0"}, 422, "lending_invalid_policy",
         "historyMonths"),
        ("mtn-rw", "PUT", path, {**POLICY, "maxRefundRate": 0.05}, 422, "invalid_input",
         "maxRefundRate"),
        ("mtn-rw", "PUT", path, {**POLICY, "maxDisputeRate": "2"}, 422,
         "lending_invalid_policy", "maxDisputeRate"),
        ("mtn-rw", "PUT", "/lending/policies/XTS", POLICY, 422, "lending_invalid_policy",
         "currency"),
        ("mtn-rw", "GET", f"{path}?version=3", None, 404, "lending_policy_not_found", None),
        # the largest version the column holds, and one past it (a 500 on PostgreSQL's int4:
        # found by a review)
        ("mtn-rw", "GET", f"{path}?version={(1 << 31) - 1}", None, 404,
         "lending_policy_not_found", None),
        ("mtn-rw", "GET", f"{path}?version={1 << 31}", None, 422, "invalid_input", "version"),
        ("mtn-rw", "PUT", path, {**POLICY, "maxPd": "0.15"}, 409, "lending_scorer_missing",
         "maxPd"),
    )  # fmt: skip


# ---------------------------------------------------------------------- lending: offers, loans
def test_a_merchant_asks_its_own_bank_for_credit_on_its_trade_history(lender: Api) -> None:
    api = lender
    api.all_refused(
        (KEPT, "POST", "/lending/offers", {**ASK, "lenderId": "maybank-my"}, 422,
         "risk_lender_not_merchants_bank", "lenderId"),
        ("mtn-rw", "POST", "/lending/offers", ASK, 403, "lending_forbidden", None),
        # the bank's policy names the months of history, not the merchant (found by a review)
        (KEPT, "POST", "/lending/offers", {**ASK, "months": 3}, 422, "invalid_input", "months"),
        (KEPT, "POST", "/lending/offers", {**ASK, "offerId": "x y"}, 422, "invalid_input",
         "offerId"),
    )  # fmt: skip
    offer = api.ok(KEPT, "POST", "/lending/offers", ASK, status=201)
    assert (offer["outcome"], offer["state"], offer["merchantId"], offer["lenderId"]) == (
        "offer",
        "open",
        "m-inzozi",
        "mtn-rw",
    )
    assert minor(offer, "limit", "principal", "fee", "totalDue") == [
        PRINCIPAL,
        PRINCIPAL,
        FEE,
        PRINCIPAL + FEE,
    ]
    history = offer["history"]
    assert [m["minor"] for m in history["monthlySales"]] == [BASKET_RWF] * 3
    assert (history["tenureDays"], history["orderCount"], history["asOf"]) == (
        93,
        3,
        "2027-03-04T00:00:00Z",
    )
    assert offer["features"]["avgMonthlySalesMinor"] == BASKET_RWF
    assert offer["reasons"][0]["rule"] == "limit"
    assert (offer["policyVersion"], offer["modelVersion"]) == (1, "lending-policy:mtn-rw:RWF:v1")
    assert offer["expiresAt"] == "2027-03-18T00:00:00Z"  # the policy's 14 days
    assert [d["decision_id"] for d in api.logged()] == [offer["decisionId"]]
    assert api.ok("mtn-rw", "GET", "/lending/offers/off-1") == offer
    assert api.ok("mtn-rw", "GET", "/lending/offers") == {"offers": [offer], "nextCursor": None}


def test_the_banks_policy_not_the_merchant_names_the_months_of_history(lender: Api) -> None:
    """The merchant chose how many months its bank saw ("months" in the request): a window
    that left out an older month of refunds could flip a decline (found by a review). The
    policy names them; months before the merchant joined are none of its trade."""
    api = lender
    api.ok("mtn-rw", "PUT", "/lending/policies/RWF", {**POLICY, "historyMonths": 1})
    one = api.ok(KEPT, "POST", "/lending/offers", ASK, status=201)
    assert [m["minor"] for m in one["history"]["monthlySales"]] == [BASKET_RWF]
    assert (one["history"]["orderCount"], one["policyVersion"]) == (1, 2)
    wide = api.ok("mtn-rw", "PUT", "/lending/policies/RWF", {**POLICY, "historyMonths": 36})
    assert wide["historyMonths"] == 36
    all_of_it = api.ok(KEPT, "POST", "/lending/offers", {**ASK, "offerId": "off-2"}, 201)
    # joined on 1 December: three complete months, not 33 months of nothing before them
    assert [m["minor"] for m in all_of_it["history"]["monthlySales"]] == [BASKET_RWF] * 3
    assert all_of_it["features"]["avgMonthlySalesMinor"] == BASKET_RWF


def test_a_suspended_merchant_gets_no_credit(lender: Api) -> None:
    lender.net.trade.review_merchant("hub-kigali", "m-inzozi", False, "adverse media")
    lender.all_refused(
        (KEPT, "POST", "/lending/offers", ASK, 409, "trade_merchant_not_active", None),
    )


def test_a_merchant_suspended_after_its_offer_cannot_take_the_money(lender: Api) -> None:
    """Only asking for credit checked the merchant's standing: one suspended after its offer
    was made (adverse media, a sanctions review) still accepted it and had the principal
    disbursed on the ledger. Accepting is refused the same way, and changes nothing."""
    api = lender
    api.ok(KEPT, "POST", "/lending/offers", ASK, 201)
    api.net.trade.review_merchant("hub-kigali", "m-inzozi", False, "adverse media")
    api.all_refused(
        (KEPT, "POST", "/lending/offers/off-1/accept", None, 409, "trade_merchant_not_active",
         None),
    )  # fmt: skip
    assert api.ok(KEPT, "GET", "/lending/offers/off-1")["state"] == "open"
    assert api.ok("mtn-rw", "GET", "/lending/loans")["loans"] == []


def test_a_loan_taken_before_a_suspension_is_still_read_back(lender: Api) -> None:
    api = lender
    api.ok(KEPT, "POST", "/lending/offers", ASK, 201)
    taken = api.ok(KEPT, "POST", "/lending/offers/off-1/accept", status=201)
    api.net.trade.review_merchant("hub-kigali", "m-inzozi", False, "adverse media")
    assert api.ok(KEPT, "POST", "/lending/offers/off-1/accept", status=201) == taken


def test_the_merchant_accepts_and_the_loan_is_on_the_ledger(lender: Api) -> None:
    api = lender
    api.ok(KEPT, "POST", "/lending/offers", ASK, status=201)
    accept = "/lending/offers/off-1/accept"
    api.all_refused(
        (NEWCOMER, "GET", "/lending/offers/off-1", None, 404, "lending_offer_not_found", None),
        (NEWCOMER, "POST", accept, None, 404, "lending_offer_not_found", None),
        ("maybank-my", "POST", accept, None, 404, "lending_offer_not_found", None),
        ("mtn-rw", "POST", accept, None, 403, "lending_forbidden", None),
        (KEPT, "POST", accept, {"amountMinor": PRINCIPAL + 1}, 422, "lending_invalid_input",
         "amountMinor"),
        (KEPT, "POST", accept, {"amountMinor": 9_999}, 422, "lending_invalid_input",
         "amountMinor"),
    )  # fmt: skip
    loan = api.ok(KEPT, "POST", accept, status=201)
    check_loan_on_ledger(api, loan, repaid=0)
    assert (loan["loanId"], loan["lenderId"], loan["merchantId"], loan["state"]) == (
        "off-1",
        "mtn-rw",
        "m-inzozi",
        "current",
    )
    assert (loan["disbursedAt"], loan["dueAt"]) == ("2027-03-04T00:00:00Z", "2027-06-02T00:00:00Z")
    assert api.ok(KEPT, "POST", accept, status=201) == loan  # accepting again: the loan
    assert api.ok("mtn-rw", "GET", "/lending/loans/off-1") == loan
    assert api.ok(KEPT, "GET", "/lending/loans") == {"loans": [loan], "nextCursor": None}
    assert api.ok(KEPT, "GET", "/lending/offers/off-1")["state"] == "accepted"
    events = api.ok(KEPT, "GET", "/lending/loans/off-1/events")["events"]
    assert [(e["fromState"], e["toState"], e["actor"]) for e in events] == [
        (None, "current", "m-inzozi")
    ]


def test_no_other_merchant_or_bank_sees_the_loan(lender: Api) -> None:
    api = lender
    api.ok(KEPT, "POST", "/lending/offers", ASK, status=201)
    api.ok(KEPT, "POST", "/lending/offers/off-1/accept", status=201)
    for caller in (NEWCOMER, "maybank-my"):
        assert api.ok(caller, "GET", "/lending/loans") == {"loans": [], "nextCursor": None}
        assert api.ok(caller, "GET", "/lending/offers") == {"offers": [], "nextCursor": None}
        assert api.ok(caller, "GET", "/lending/contests") == {"contests": [], "nextCursor": None}
    api.all_refused(
        *[
            (caller, method, path, body, 404, "lending_loan_not_found", None)
            for caller in (NEWCOMER, "maybank-my")
            for method, path, body in (
                ("GET", "/lending/loans/off-1", None),
                ("GET", "/lending/loans/off-1/events", None),
                ("GET", "/lending/loans/off-1/repayments", None),
                ("POST", "/lending/loans/off-1/repayments", {"amountMinor": 1, "reference": "r"}),
            )
        ]
    )


def test_repayments_are_posted_and_the_book_reconciles(lender: Api) -> None:
    api = lender
    api.ok(KEPT, "POST", "/lending/offers", ASK, status=201)
    api.ok(KEPT, "POST", "/lending/offers/off-1/accept", status=201)
    cash = {"amountMinor": 10_000, "reference": "cash-1"}
    # a merchant cannot declare its own loan repaid
    api.refused(api.call(KEPT, "POST", "/lending/loans/off-1/repayments", cash), 403,
                "lending_forbidden")  # fmt: skip
    repaid = api.ok("mtn-rw", "POST", "/lending/loans/off-1/repayments", cash, status=201)
    check_loan_on_ledger(api, repaid, repaid=10_000)
    assert api.ok("mtn-rw", "POST", "/lending/loans/off-1/repayments", cash, 201) == repaid
    paid = api.ok("mtn-rw", "GET", "/lending/loans/off-1/repayments")["repayments"]
    assert [(p["reference"], p["amount"]["minor"], p["source"], p["actor"]) for p in paid] == [
        ("cash-1", 10_000, "direct", "mtn-rw")
    ]
    book = api.ok("mtn-rw", "GET", "/lending/book/RWF")
    assert (book["loans"], book["byState"]["current"], book["reconciled"]) == (1, 1, True)
    assert minor(book, "principal", "fees", "repaid", "outstanding") == [
        PRINCIPAL,
        FEE,
        10_000,
        PRINCIPAL + FEE - 10_000,
    ]
    assert minor(book, "fundingBalance", "feeIncome") == [PRINCIPAL - 10_000, FEE]
    over = {"amountMinor": PRINCIPAL + FEE, "reference": "cash-2"}
    api.all_refused(
        ("mtn-rw", "POST", "/lending/loans/off-1/repayments", over, 409,
         "lending_exceeds_outstanding", "amountMinor"),
        ("mtn-rw", "POST", "/lending/loans/off-1/repayments", {**cash, "amountMinor": 9_000}, 409,
         "lending_id_conflict", None),
        (KEPT, "GET", "/lending/book/RWF", None, 403, "lending_forbidden", None),
        ("maybank-my", "GET", "/lending/book/RWF", None, 404, "lending_policy_not_found", None),
    )  # fmt: skip


# ---------------------------------------------------------------------- lending: contests
def test_a_decline_is_contested_into_the_banks_review_queue(lender: Api) -> None:
    api = lender
    declined = api.ok(NEWCOMER, "POST", "/lending/offers", {**ASK, "offerId": "off-2"}, 201)
    assert (declined["outcome"], declined["state"], minor(declined, "principal")) == (
        "decline",
        "declined",
        [0],
    )
    assert [(x["rule"], x["value"], x["threshold"]) for x in declined["reasons"]] == [
        ("min_avg_monthly_sales", "0 RWF", "10000 RWF"),
        ("min_tenure_days", "0", "60"),
        ("min_regularity", "0.0000", "0.2"),
        ("limit_min_minor", "0 RWF", "10000 RWF"),
    ]  # four at most (Regulation B), in the policy's order
    statement = {"statement": "I joined last month; my stall has sold baskets for six years."}
    contest = "/lending/offers/off-2/contest"
    api.all_refused(
        (NEWCOMER, "POST", "/lending/offers/off-2/accept", None, 409, "lending_not_an_offer",
         None),
        ("mtn-rw", "POST", contest, statement, 403, "lending_forbidden", None),
        (KEPT, "POST", contest, statement, 404, "lending_offer_not_found", None),
        (NEWCOMER, "POST", contest, {"statement": ""}, 422, "invalid_input", "statement"),
    )  # fmt: skip
    opened = api.ok(NEWCOMER, "POST", contest, statement, status=201)
    assert (opened["status"], opened["lenderId"], opened["merchantId"]) == (
        "open",
        "mtn-rw",
        "m-umoja",
    )
    assert (opened["statement"], opened["reviewerId"]) == (statement["statement"], None)
    queue = api.ok("mtn-rw", "GET", "/lending/contests?status=open")
    assert queue == {"contests": [opened], "nextCursor": None}
    assert api.ok(NEWCOMER, "GET", "/lending/offers/off-2")["contested"] is True
    for caller in ("maybank-my", KEPT):
        assert api.ok(caller, "GET", "/lending/contests")["contests"] == []
    api.all_refused(
        (NEWCOMER, "POST", contest, {"statement": "another"}, 409, "lending_already_contested",
         None),
    )  # fmt: skip


REVIEW = {
    "reviewerId": "officer-1",
    "outcome": "overturned",
    "reason": "six years of stall sales shown on paper",
    "newPrincipalMinor": 20_000,
}


def test_the_banks_officer_overturns_a_contested_decline(lender: Api) -> None:
    api = lender
    declined = api.ok(NEWCOMER, "POST", "/lending/offers", {**ASK, "offerId": "off-2"}, 201)
    statement = {"statement": "I joined last month; my stall has sold baskets for six years."}
    api.ok(NEWCOMER, "POST", "/lending/offers/off-2/contest", statement, 201)
    review = "/lending/contests/off-2/review"
    api.all_refused(
        (NEWCOMER, "POST", review, REVIEW, 403, "lending_forbidden", None),
        ("maybank-my", "POST", review, REVIEW, 404, "lending_contest_not_found", None),
        ("mtn-rw", "POST", review, {**REVIEW, "reviewerId": "m-umoja"}, 422,
         "lending_reviewer_not_independent", "reviewerId"),
        ("mtn-rw", "POST", review, {**REVIEW, "newPrincipalMinor": None}, 422,
         "lending_invalid_input", "newPrincipalMinor"),
        ("mtn-rw", "POST", review, {**REVIEW, "newPrincipalMinor": 5_000}, 422,
         "lending_invalid_input", "newPrincipalMinor"),
        (KEPT, "POST", "/lending/offers", {**ASK, "offerId": "off-2-review"}, 422,
         "lending_invalid_input", "offerId"),
    )  # fmt: skip
    done = api.ok("mtn-rw", "POST", review, REVIEW)
    assert (done["status"], done["reviewerId"], done["reviewReason"]) == (
        "overturned",
        "officer-1",
        REVIEW["reason"],
    )
    assert (done["newOfferId"], done["newPrincipalMinor"]) == ("off-2-review", 20_000)
    assert api.ok("mtn-rw", "POST", review, REVIEW) == done  # a replay, not a second review
    assert api.ok(NEWCOMER, "GET", "/lending/contests")["contests"] == [done]
    assert api.ok("mtn-rw", "GET", "/lending/contests?status=open")["contests"] == []
    assert api.ok(NEWCOMER, "GET", "/lending/offers/off-2")["state"] == "superseded"
    new = api.ok(NEWCOMER, "GET", "/lending/offers/off-2-review")
    assert (new["origin"], new["supersedes"], new["state"], new["requestedBy"]) == (
        "review",
        "off-2",
        "open",
        "officer-1",
    )
    assert minor(new, "principal", "fee") == [20_000, 600]
    assert new["reasons"][0]["text"].endswith(REVIEW["reason"])
    loan = api.ok(NEWCOMER, "POST", "/lending/offers/off-2-review/accept", status=201)
    assert minor(loan, "outstanding") == [20_600]
    # the merchant asking under the review's id is refused, not answered the review's offer
    # as the replay of a request it never made (found by a review)
    api.all_refused(
        (NEWCOMER, "POST", "/lending/offers", {**ASK, "offerId": "off-2-review"}, 422,
         "lending_invalid_input", "offerId"),
    )  # fmt: skip

    logged = api.ok("mtn-rw", "GET", f"/decisions/{done['decisionId']}")
    assert (logged["kind"], logged["modelVersion"], logged["outcome"]) == (
        "credit",
        "review:officer-1",
        "overturned",
    )
    assert logged["reasons"] == [REVIEW["reason"]]
    assert logged["inputs"]["original_decision"] == declined["decisionId"]
    assert api.ok(NEWCOMER, "GET", f"/decisions/{done['decisionId']}") == logged
    assert api.ok("scheme", "GET", f"/decisions/{done['decisionId']}") == logged


def test_a_lending_decision_is_read_by_its_lender_and_merchant_only(lender: Api) -> None:
    api = lender
    declined = api.ok(NEWCOMER, "POST", "/lending/offers", {**ASK, "offerId": "off-2"}, 201)
    path = f"/decisions/{declined['decisionId']}"
    for caller in (NEWCOMER, "mtn-rw", "scheme"):
        logged = api.ok(caller, "GET", path)
        assert (logged["kind"], logged["outcome"]) == ("credit", "decline")
        assert (logged["modelVersion"], logged["inputs"]["offer_id"]) == (
            "lending-policy:mtn-rw:RWF:v1",
            "off-2",
        )
        assert len(logged["reasons"]) == 4
        assert "m-umoja" not in json.dumps(logged["inputs"])  # the merchant only hashed
    api.all_refused(
        *[(c, "GET", path, None, 404, "risk_unknown_decision", "decisionId")
          for c in ("maybank-my", KEPT, "hub-kigali")]
    )  # fmt: skip


# ---------------------------------------------------------------------- idempotency, deadlines
def test_idempotency_key_replays_and_the_offer_id_is_a_key_too(lender: Api) -> None:
    api = lender
    first = api.call(KEPT, "POST", "/lending/offers", ASK, key="ask-1")
    assert first.status_code == 201, first.text
    offer = first.json()
    replay = api.call(KEPT, "POST", "/lending/offers", ASK, key="ask-1")
    assert (replay.status_code, replay.json()) == (201, offer)
    assert replay.headers["Idempotent-Replayed"] == "true"
    before = api.snapshot()
    changed = api.call(KEPT, "POST", "/lending/offers", {**ASK, "lenderId": "kbc-be"}, key="ask-1")
    api.refused(changed, 409, "duplicate_with_different_body", "Idempotency-Key")
    # Without the header the offer id is the key: a later retry returns the first decision,
    # though the merchant's history has moved on.
    api.net.advance_days(2)
    assert api.ok(KEPT, "POST", "/lending/offers", ASK, status=201) == offer
    api.all_refused(
        (KEPT, "POST", "/lending/offers", {**ASK, "lenderId": "maybank-my"}, 409,
         "lending_id_conflict", None),
        (NEWCOMER, "POST", "/lending/offers", ASK, 409, "lending_id_conflict", None),
    )  # fmt: skip
    assert api.snapshot() == before

    taken = api.call(KEPT, "POST", "/lending/offers/off-1/accept", {}, key="take-1")
    again = api.call(KEPT, "POST", "/lending/offers/off-1/accept", {}, key="take-1")
    assert (again.json(), again.headers["Idempotent-Replayed"]) == (taken.json(), "true")
    check_loan_on_ledger(api, taken.json(), repaid=0)


def test_the_scheme_operator_runs_the_deadlines(lender: Api) -> None:
    api = lender
    api.ok(KEPT, "POST", "/lending/offers", ASK, status=201)
    api.all_refused(
        ("mtn-rw", "POST", "/lending/deadlines", None, 403, "lending_forbidden", None),
        (KEPT, "POST", "/lending/deadlines", None, 403, "lending_forbidden", None),
    )
    api.net.advance_days(14)
    assert api.ok("scheme", "POST", "/lending/deadlines")["counts"] == {
        "offersExpired": 1,
        "loansCurrent": 0,
        "loansLate": 0,
        "loansDefaulted": 0,
        "loansRepaid": 0,
        "decisionsLogged": 0,  # each was appended when made
        "decisionsWaiting": 0,
    }
    api.all_refused(
        (KEPT, "POST", "/lending/offers/off-1/accept", None, 409, "lending_offer_expired", None)
    )
    expired = api.ok(KEPT, "GET", "/lending/offers?state=expired")["offers"]
    assert [o["offerId"] for o in expired] == ["off-1"]


# ---------------------------------------------------------------------- scope, paging
def test_a_merchant_named_like_its_bank_sees_only_its_own_side(lender: Api) -> None:
    """Lending matches a caller on either side; a merchant whose id is a bank's participant
    id still sees only what it borrowed, never what the bank lent."""
    api = lender
    twin = api.merchant("mtn-rw", "RW-100299")
    api.ok(KEPT, "POST", "/lending/offers", ASK, status=201)
    api.ok(KEPT, "POST", "/lending/offers/off-1/accept", status=201)
    assert api.ok(twin, "GET", "/lending/offers") == {"offers": [], "nextCursor": None}
    assert api.ok(twin, "GET", "/lending/loans") == {"loans": [], "nextCursor": None}
    api.all_refused(
        (twin, "GET", "/lending/loans/off-1", None, 404, "lending_loan_not_found", None),
        (twin, "GET", "/lending/offers/off-1", None, 404, "lending_offer_not_found", None),
        (twin, "PUT", "/lending/policies/RWF", POLICY, 403, "lending_forbidden", None),
        (twin, "GET", "/lending/book/RWF", None, 403, "lending_forbidden", None),
    )


def test_a_merchant_named_like_its_bank_cannot_read_the_banks_offer_by_asking_its_id(
    lender: Api,
) -> None:
    """Asking again under an offer id returns the first decision; the retry was answered
    before the API kept the caller on its side: a merchant whose id is its bank's participant
    id asked under another merchant's offer id and was given that merchant's decision, its
    trade history and features, as if a retry of its own."""
    api = lender
    twin = api.merchant("mtn-rw", "RW-100299")
    api.ok(KEPT, "POST", "/lending/offers", ASK, status=201)
    api.all_refused((twin, "POST", "/lending/offers", ASK, 409, "lending_id_conflict", None))


def test_a_merchant_named_like_its_bank_cannot_record_its_own_loan_repaid(lender: Api) -> None:
    """Lending matches a caller on either side, and the repayment route left it to lending
    to tell the lender: a merchant whose id is its own bank's participant id is that loan's
    lender to lending, and recorded repayments it never made (its loan shown repaid, the
    bank's book short of the money)."""
    api = lender
    twin = api.merchant("mtn-rw", "RW-100299")  # paid at mtn-rw, as every Kigali merchant here
    history = api.net.trade.merchant_history("hub-kigali", "m-inzozi", 3)
    lending = api.net.trade.lending
    assert isinstance(lending, Lending)
    lending.offer("mtn-rw", "off-twin", "mtn-rw", replace(history, merchant_id="mtn-rw"))
    assert api.ok(twin, "POST", "/lending/offers/off-twin/accept", status=201)["state"] == (
        "current"
    )
    cash = {"amountMinor": PRINCIPAL + FEE, "reference": "never-paid"}
    api.all_refused(
        (twin, "POST", "/lending/loans/off-twin/repayments", cash, 403, "lending_forbidden",
         None),
    )  # fmt: skip
    loan = api.ok("mtn-rw", "POST", "/lending/loans/off-twin/repayments", cash, status=201)
    assert loan["state"] == "repaid"  # the lender records it


def test_lists_page_with_a_cursor(lender: Api) -> None:
    api = lender
    for n in range(3):
        api.ok(KEPT, "POST", "/lending/offers", {**ASK, "offerId": f"off-{n}"}, 201)
        api.net.clock.advance(1)
    first = api.ok("mtn-rw", "GET", "/lending/offers?limit=2")
    assert [o["offerId"] for o in first["offers"]] == ["off-0", "off-1"]
    assert first["nextCursor"] == f"{START_NS + (93 * DAY_S + 1) * 10**9}-off-1"  # time-id
    rest = api.ok("mtn-rw", "GET", f"/lending/offers?limit=2&cursor={first['nextCursor']}")
    assert ([o["offerId"] for o in rest["offers"]], rest["nextCursor"]) == (["off-2"], None)
    api.all_refused(
        ("mtn-rw", "GET", "/lending/offers?state=maybe", None, 422, "lending_invalid_input",
         "state"),
        ("mtn-rw", "GET", "/lending/offers?cursor=x", None, 422, "invalid_input", "cursor"),
    )  # fmt: skip


def test_buyers_have_no_part_in_lending(api: Api) -> None:
    buyer = api.net.buyer()
    api.tokens[buyer] = issue_actor_credential(api.net.trade, "hub-kuala-lumpur", buyer).token
    api.all_refused(
        (buyer, "GET", "/lending/offers", None, 403, "lending_forbidden", None),
        (buyer, "GET", "/lending/loans", None, 403, "lending_forbidden", None),
        (buyer, "POST", "/lending/offers", ASK, 403, "lending_forbidden", None),
    )


@needs_lists
def test_a_suspended_participant_asks_for_no_screening(api: Api) -> None:
    """A hub operator (any participant) the scheme suspended still had parties screened
    (200), each a decision logged in its compliance file, found by a review: it neither
    sends nor receives, so it has no payment or merchant to screen for. Refused 409
    ``participant_suspended``, nothing logged; resumed, it screens again."""
    body = {"parties": [{"name": "Kenji Tanaka"}]}
    api.net.scheme.set_active("hub-kigali", False, "licence under review")
    api.all_refused(("hub-kigali", "POST", "/screenings", body, 409, "participant_suspended", None))
    assert api.logged() == []
    api.net.scheme.set_active("hub-kigali", True)
    (one,) = api.ok("hub-kigali", "POST", "/screenings", body)["screenings"]
    assert [d["inputs"]["requested_by"] for d in api.logged()] == ["hub-kigali"]
    assert one["decision"] == "clear"
