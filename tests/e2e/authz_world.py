"""The world the authorization test (test_api_authorization.py) departs from: objects of every
kind the API addresses, owned by one side ("A": the payer mtn-rw, merchant m-alpha and buyer
b-alpha, their hubs, lender and counterparties), and callers with no part in any of them
("B": a bank, a hub, a merchant, a buyer and an arbitrator of their own).

A's texts carry ``CANARY`` (names, notes, claims, reasons) and its ids do not, so that an
answer echoing the id a caller sent is told apart from one that leaks A's data."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from httpx import Response

from entrepot.config import shared_data_dir
from entrepot.entrypoints.api.app import create_app
from entrepot.payments import qr
from entrepot.payments.credentials import issue_credential
from entrepot.risk.decisions import JsonlSink
from entrepot.risk.lending import Lending
from entrepot.trade.credentials import issue_actor_credential
from tests.trade.network import Net, build_net

CANARY = "CANARY"
SANCTIONS = shared_data_dir() / "sanctions"
#: The unrelated callers: a bank, a hub, a merchant and a buyer on A's own hubs (the nearest
#: to A that still have no part in A's objects), and an arbitrator of another hub's panel.
BANK_B, HUB_B = "kbc-be", "hub-liege"
MERCHANT_B, BUYER_B, ARBITRATOR_B = "merchant:m-beta", "buyer:b-beta", "arbitrator:arb-liege-1"
PARTICIPANTS = ("scheme", "mtn-rw", "maybank-my", "kbc-be", "hub-kigali", "hub-kuala-lumpur")
PARTICIPANTS += ("hub-liege",)
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
}
QUOTE_A: dict[str, Any] = {
    "quoteId": "q-a1",
    "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-003"},
    "payer": {"partyIdType": "MSISDN", "partyIdentifier": "+250788300001"},
    "amountType": "RECEIVE",
    "amount": {"amount": "25.50", "currency": "MYR"},
    "sourceCurrency": "RWF",
    "expirySeconds": 86_400,
}
TRANSFER_A: dict[str, Any] = {
    "transferId": "t-a1",
    "quoteId": "q-a1",
    "expirySeconds": 86_400,
    "note": f"{CANARY} note",
}
ESCROW_A: dict[str, Any] = {
    "escrowId": "e-a1",
    "payeeFsp": "hub-kigali",
    "amount": {"amount": "5000", "currency": "RWF"},
    "purpose": f"{CANARY} purpose",
    "deadlineSeconds": 30 * 86_400,
}


@dataclass
class World:
    client: TestClient
    net: Net
    home: Path
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def call(
        self,
        caller: str,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        h = {"Authorization": f"Bearer {self.tokens[caller]}", **(headers or {})}
        response: Response = self.client.request(method, path, json=body, headers=h)
        return response

    def ok(self, caller: str, method: str, path: str, body: Any = None) -> Any:
        response = self.call(caller, method, path, body)
        assert response.status_code in (200, 201, 204), (method, path, response.text)
        return response.json() if response.content else None

    def actor(self, issuer: str, principal: str) -> str:
        issued = issue_actor_credential(self.net.trade, issuer, principal)
        self.tokens[principal] = issued.token
        self.ids[f"key:{principal}"] = issued.key_id
        return principal

    def snapshot(self) -> dict[str, Any]:
        """Every table's rows (the request nonces aside: none is signed here), and the
        decision log: what a refused request must leave as it found it."""
        with self.net.engine.connect() as conn:
            names = sorted(sa.inspect(conn).get_table_names())
            tables = {
                name: sorted(
                    (
                        tuple(map(repr, row))
                        for row in conn.execute(sa.text(f'SELECT * FROM "{name}"'))
                    ),
                )
                for name in names
                if name not in ("pay_request_nonces", "alembic_version")
            }
        log = self.home / "decisions" / "decisions.jsonl"
        return {"tables": tables, "log": log.read_text() if log.exists() else ""}


def build_world(engine: sa.Engine, home: Path) -> Iterator[World]:
    net = build_net(engine)
    lending = Lending(engine, net.scheme.ledger, net.clock, sink=JsonlSink(home / "decisions"))
    net.trade.lending = lending  # payouts repay loans, as bootstrap composes it
    app = create_app(
        net.scheme,
        net.trade,
        lending=lending,
        decisions_dir=home / "decisions",
        sanctions_dir=SANCTIONS,
    )
    with TestClient(app) as client:
        w = World(client, net, home)
        for p in PARTICIPANTS:
            issued = issue_credential(engine, p)
            w.tokens[p] = issued.token
            w.ids[f"key:{p}"] = issued.key_id
        _trade_history(w)
        _lending(w)
        _trade(w)
        _payments(w)
        _risk(w)
        yield w


def _trade_history(w: World) -> None:
    """m-alpha (Kigali, paid at mtn-rw) sells b-alpha (Kuala Lumpur, paying from maybank-my)
    a basket a month for three months: a history to borrow on, and payouts."""
    net, trade = w.net, w.net.trade
    net.scheme.register_alias("mtn-rw", "BUSINESS", "RW-300100", f"{CANARY} Crafts", "RWF")
    trade.onboard_merchant(
        "hub-kigali", "m-alpha", f"{CANARY} Crafts Ltd", "RW-300100", "BUSINESS", "RW-300100"
    )
    net.scheme.register_alias("maybank-my", "MSISDN", "+60123300001", f"{CANARY} Buyer", "MYR")
    trade.register_buyer("hub-kuala-lumpur", "b-alpha", f"{CANARY} Buyer", "MSISDN", "+60123300001")
    trade.grant_wallet_consent("maybank-my", "b-alpha")
    merchant, buyer = w.actor("hub-kigali", "merchant:m-alpha"), "buyer:b-alpha"
    w.actor("hub-kuala-lumpur", buyer)
    trade.add_item(
        merchant,
        "sku-alpha",
        f"{CANARY} basket",
        "460219",
        "RW",
        weight_g=800,
        dimensions_mm=(300, 300, 250),
        price_minor=45_000,
        currency="RWF",
    )
    trade.set_stock(merchant, "sku-alpha", "kigali-fc1", 40)
    for n in range(3):
        net.order(buyer, "sku-alpha", 1, order_id=f"o-h{n}")
        net.ship(f"o-h{n}")
        trade.confirm_receipt(buyer, f"o-h{n}")
        net.advance_days(31)
    # B's merchant and buyer: on A's own hubs, paid at A's own bank and wallet
    net.scheme.register_alias("mtn-rw", "BUSINESS", "RW-300200", "Beta Ltd", "RWF")
    trade.onboard_merchant("hub-kigali", "m-beta", "Beta Ltd", "RW-300200", "BUSINESS", "RW-300200")
    net.scheme.register_alias("maybank-my", "MSISDN", "+60123300002", "Beta Buyer", "MYR")
    trade.register_buyer("hub-kuala-lumpur", "b-beta", "Beta Buyer", "MSISDN", "+60123300002")
    trade.grant_wallet_consent("maybank-my", "b-beta")
    w.actor("hub-kigali", MERCHANT_B)
    w.actor("hub-kuala-lumpur", BUYER_B)
    w.actor("hub-liege", ARBITRATOR_B)
    trade.add_item(
        MERCHANT_B,
        "sku-beta",
        "Beta bowl",
        "460219",
        "RW",
        weight_g=500,
        dimensions_mm=(200, 200, 100),
        price_minor=20_000,
        currency="RWF",
    )
    trade.set_stock(MERCHANT_B, "sku-beta", "kigali-fc1", 5)


def _lending(w: World) -> None:
    """mtn-rw lends to m-alpha (a loan, partly repaid); m-alpha2, a newcomer, is declined
    and contests."""
    w.ok("mtn-rw", "PUT", "/v1/risk/lending/policies/RWF", POLICY)
    ask = {"offerId": "off-a1", "lenderId": "mtn-rw"}
    offer = w.ok("merchant:m-alpha", "POST", "/v1/risk/lending/offers", ask)
    assert offer["outcome"] == "offer", offer
    w.ids["decision:offer"] = offer["decisionId"]
    w.ok("merchant:m-alpha", "POST", "/v1/risk/lending/offers/off-a1/accept", {})
    repay = {"amountMinor": 1_000, "reference": "ref-a1"}
    w.ok("mtn-rw", "POST", "/v1/risk/lending/loans/off-a1/repayments", repay)
    w.net.scheme.register_alias("mtn-rw", "BUSINESS", "RW-300300", f"{CANARY} New", "RWF")
    w.net.trade.onboard_merchant(
        "hub-kigali", "m-alpha2", f"{CANARY} New Ltd", "RW-300300", "BUSINESS", "RW-300300"
    )
    w.actor("hub-kigali", "merchant:m-alpha2")
    ask = {"offerId": "off-a2", "lenderId": "mtn-rw"}
    declined = w.ok("merchant:m-alpha2", "POST", "/v1/risk/lending/offers", ask)
    assert declined["outcome"] == "decline", declined
    contest = {"statement": f"{CANARY} statement"}
    w.ok("merchant:m-alpha2", "POST", "/v1/risk/lending/offers/off-a2/contest", contest)


def _trade(w: World) -> None:
    """A's orders in each state an action takes: paid, delivered, return requested, in
    negotiation (with the merchant's offer), in arbitration; and an unused quote."""
    net, trade = w.net, w.net.trade
    buyer, merchant = "buyer:b-alpha", "merchant:m-alpha"
    for order_id in ("o-paid", "o-dlv", "o-ret", "o-neg", "o-arb"):
        net.order(buyer, "sku-alpha", 1, order_id=order_id)
        if order_id != "o-paid":
            net.ship(order_id)
    trade.request_return(buyer, "o-ret", f"{CANARY} return")
    trade.open_dispute(buyer, "d-neg", "o-neg", "not_as_described", f"{CANARY} claim")
    trade.offer_settlement(merchant, "d-neg", 1_000)
    trade.open_dispute(buyer, "d-arb", "o-arb", "not_as_described", f"{CANARY} claim")
    trade.escalate(buyer, "d-arb")
    trade.quote(buyer, "tq-a1", [("sku-alpha", 1)], ttl_s=86_400)
    w.ids["escrow:order"] = trade.get_order(buyer, "o-paid").goods_escrow_id or ""


def _payments(w: World) -> None:
    """mtn-rw's endpoint, alias, quotes (one used by a reserved transfer to maybank-my's
    till, one not accepted), escrow and bulk."""
    w.ok("mtn-rw", "PUT", "/v1/participants/mtn-rw/endpoint", {"url": "https://a.example/cb"})
    party = {"displayName": f"{CANARY} Aline", "currency": "RWF"}
    w.ok("mtn-rw", "POST", "/v1/parties/MSISDN/+250788300001", party)
    w.ok("mtn-rw", "POST", "/v1/quotes", QUOTE_A)
    w.ok("mtn-rw", "POST", "/v1/transfers", TRANSFER_A)
    w.ok("mtn-rw", "POST", "/v1/quotes", {**QUOTE_A, "quoteId": "q-a2"})
    w.ok("mtn-rw", "POST", "/v1/escrows", ESCROW_A)
    w.ids["qr"] = qr.encode(
        qr.build_merchant_qr(
            merchant_alias="KL-003",
            mcc="5812",
            currency="MYR",
            country="MY",
            merchant_name="Kedai",
            city="Kuala Lumpur",
            amount_minor=2550,
        )
    )


def _risk(w: World) -> None:
    """A screening mtn-rw asked for (its compliance file)."""
    if not (SANCTIONS / "ofac_sdn.csv").is_file():
        w.ids["decision:screening"] = "0" * 32  # none to read: an unknown id stands in
        return
    body = {"parties": [{"name": f"{CANARY} Person"}]}
    (one,) = w.ok("mtn-rw", "POST", "/v1/risk/screenings", body)["screenings"]
    w.ids["decision:screening"] = one["decisionId"]
