"""The trade network end to end through HTTP (/v1/trade) on the seed's six hubs: a Kigali
merchant sells a basket to a Kuala Lumpur buyer, from onboarding to payout; every caller sees
and acts on only what is theirs; bad input is refused with its code and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from httpx import Response

from entrepot.entrypoints.api.app import create_app
from entrepot.payments import store as pay_store
from entrepot.payments.credentials import issue_credential
from entrepot.payments.qr import decode as decode_qr
from tests.trade.network import DESTINATION, ORIGIN, Net, build_net

PARTICIPANTS = ("scheme", "mtn-rw", "maybank-my", "hub-kigali", "hub-kuala-lumpur", "hub-liege")
# 2 baskets of RWF 45,000 from Kigali to Kuala Lumpur, priced on 2026-12-01 (check_landed_cost
# says how each figure is made); the merchant is paid RWF 90,000 less Kigali's 5% commission.
TOTAL_MYR, GOODS_ESCROW_MYR, TAXES_MYR = 63_979, 58_163, 5_816
MERCHANT_NET_RWF = 85_500


class Api:
    """A TestClient with one bearer token per caller: ``api.post("hub-kigali", path, body)``."""

    def __init__(self, client: TestClient, net: Net) -> None:
        self.client = client
        self.net = net
        self.tokens = {p: issue_credential(net.engine, p).token for p in PARTICIPANTS}

    def goods_escrow(self, order_id: str) -> str:
        """The scheme id of an order's goods escrow (unguessable, kept on the order)."""
        return self.net.trade.get_order("hub-kigali", order_id).goods_escrow_id

    def headers(self, caller: str, key: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.tokens[caller]}"}
        return h if key is None else {**h, "Idempotency-Key": key}

    def get(self, caller: str, path: str) -> Response:
        response: Response = self.client.get(path, headers=self.headers(caller))
        return response

    def post(
        self, caller: str, path: str, body: dict[str, Any] | None = None, key: str | None = None
    ) -> Response:
        response: Response = self.client.post(path, json=body, headers=self.headers(caller, key))
        return response

    def put(self, caller: str, path: str, body: dict[str, Any]) -> Response:
        response: Response = self.client.put(path, json=body, headers=self.headers(caller))
        return response

    def patch(self, caller: str, path: str, body: dict[str, Any]) -> Response:
        response: Response = self.client.patch(path, json=body, headers=self.headers(caller))
        return response

    def ok(self, response: Response, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json()

    def refused(self, response: Response, status: int, code: str) -> dict[str, Any]:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        body: dict[str, Any] = response.json()
        assert body["code"] == code, body
        return body

    def credential(self, issuer: str, field: str, actor_id: str) -> str:
        """Have ``issuer`` issue a trade actor's credential; remember it under its principal."""
        body = self.ok(self.post(issuer, "/v1/trade/credentials", {field: actor_id}), 201)
        self.tokens[body["principal"]] = body["token"]
        return str(body["principal"])

    # ------------------------------------------------------------------ the scenario's steps
    def merchant(self, merchant_id: str = "m-inzozi", reg: str = "RW-100200") -> str:
        self.ok(
            self.post(
                "mtn-rw",
                f"/v1/parties/BUSINESS/{reg}",
                {"displayName": f"Merchant {merchant_id}", "currency": "RWF"},
            ),
            201,
        )
        body = {
            "merchantId": merchant_id,
            "legalName": f"Merchant {merchant_id} Ltd",
            "registrationNumber": reg,
            "settlement": {"partyIdType": "BUSINESS", "partyIdentifier": reg},
        }
        merchant = self.ok(self.post("hub-kigali", "/v1/trade/merchants", body), 201)
        assert (merchant["state"], merchant["hubId"]) == ("active", "kigali")
        return self.credential("hub-kigali", "merchantId", merchant_id)

    def buyer(
        self, buyer_id: str = "b-aisyah", msisdn: str = "+60123456789", consent: bool = True
    ) -> str:
        self.ok(
            self.post(
                "maybank-my",
                f"/v1/parties/MSISDN/{msisdn}",
                {"displayName": buyer_id, "currency": "MYR"},
            ),
            201,
        )
        body = {
            "buyerId": buyer_id,
            "name": f"Buyer {buyer_id}",
            "wallet": {"partyIdType": "MSISDN", "partyIdentifier": msisdn},
        }
        buyer = self.ok(self.post("hub-kuala-lumpur", "/v1/trade/buyers", body), 201)
        assert (buyer["currency"], buyer["hubId"]) == ("MYR", "kuala-lumpur")
        assert (buyer["walletConsent"], buyer["walletConsentAt"]) == ("pending", None)
        if consent:  # the wallet's mandate for its customer
            path = f"/v1/trade/buyers/{buyer_id}/wallet-consent"
            assert self.ok(self.post("maybank-my", path))["walletConsent"] == "granted"
        return self.credential("hub-kuala-lumpur", "buyerId", buyer_id)

    def item(self, merchant: str, sku: str = "sku-basket", on_hand: int = 10) -> dict[str, Any]:
        body = item_body(sku)
        item = self.ok(self.post(merchant, "/v1/trade/items", body), 201)
        stock = self.ok(
            self.put(merchant, f"/v1/trade/items/{sku}/stock/kigali-fc1", {"onHand": on_hand})
        )
        assert stock == {
            "sku": sku,
            "warehouseId": "kigali-fc1",
            "onHand": on_hand,
            "reserved": 0,
            "available": on_hand,
        }
        return dict(item)

    def order(self, buyer: str, order_id: str = "o-1", qty: int = 2) -> dict[str, Any]:
        quote = {"quoteId": f"q-{order_id}", "lines": [{"sku": "sku-basket", "quantity": qty}]}
        self.ok(self.post(buyer, "/v1/trade/quotes", quote), 201)
        body = {"orderId": order_id, "quoteId": f"q-{order_id}"}
        return dict(self.ok(self.post(buyer, "/v1/trade/orders", body), 201))

    def track(self, order_id: str, codes: tuple[str, ...], hub: str) -> None:
        for code in codes:
            self.ok(self.post(hub, f"/v1/trade/orders/{order_id}/tracking", {"code": code}), 201)

    def deliver(self, order_id: str = "o-1") -> None:
        self.track(order_id, ORIGIN, "hub-kigali")
        self.track(order_id, DESTINATION, "hub-kuala-lumpur")


def inzozi_with_business_id(api: Api) -> dict[str, Any]:
    """m-inzozi's onboarding body, paid to its business id RW-100200, registered at mtn-rw."""
    api.ok(
        api.post(
            "mtn-rw",
            "/v1/parties/BUSINESS/RW-100200",
            {"displayName": "Inzozi", "currency": "RWF"},
        ),
        201,
    )
    return {
        "merchantId": "m-inzozi",
        "legalName": "Merchant m-inzozi Ltd",
        "registrationNumber": "RW-100200",
        "settlement": {"partyIdType": "BUSINESS", "partyIdentifier": "RW-100200"},
    }


def item_body(sku: str = "sku-basket", **changes: Any) -> dict[str, Any]:
    body = {
        "sku": sku,
        "title": "Woven agaseke basket",
        "hsCode": "460219",
        "origin": "RW",
        "weightG": 800,
        "dimensionsMm": {"length": 300, "width": 300, "height": 250},
        "price": {"minor": 45_000, "currency": "RWF"},
    }
    return {**body, **changes}


@pytest.fixture
def api(engine: sa.Engine) -> Iterator[Api]:
    net = build_net(engine)
    with TestClient(create_app(net.scheme, net.trade)) as client:
        yield Api(client, net)


def minor(doc: dict[str, Any], key: str) -> tuple[int, str]:
    return int(doc[key]["minor"]), str(doc[key]["currency"])


def check_landed_cost(quote: dict[str, Any]) -> None:
    """2 baskets, RWF 90,000 at the scheme's best rate (304.33 RWF/MYR): 29,573 sen; freight
    RWF 86,108 for 9 kg chargeable on Kigali's international card: 28,294 sen; insurance 1%
    of goods: 296. Malaysia values CIF (58,163 sen); DFTZ duty 0; sales tax 10%: 5,816."""
    figures = {
        k: quote[k]["minor"]
        for k in ("goods", "freight", "insurance", "duty", "excise", "vat", "customsFees")
    }
    assert figures == {
        "goods": 29_573,
        "freight": 28_294,
        "insurance": 296,
        "duty": 0,
        "excise": 0,
        "vat": TAXES_MYR,
        "customsFees": 0,
    }
    assert minor(quote, "total") == (TOTAL_MYR, "MYR") == (sum(figures.values()), "MYR")
    assert (quote["goodsEscrow"]["minor"], quote["taxesEscrow"]["minor"]) == (
        GOODS_ESCROW_MYR,
        TAXES_MYR,
    )
    assert (quote["dftz"], quote["lines"][0]["warehouseId"]) == (True, "kigali-fc1")


# ---------------------------------------------------------------------- the happy path
def test_a_kigali_basket_reaches_kuala_lumpur_and_the_merchant_is_paid(api: Api) -> None:
    merchant = api.merchant()
    buyer = api.buyer()
    item = api.item(merchant)
    assert (item["chargeableG"], minor(item, "price")) == (4_500, (45_000, "RWF"))
    catalogue = api.ok(api.get(buyer, "/v1/trade/items?merchantId=m-inzozi"))
    assert [i["sku"] for i in catalogue["items"]] == ["sku-basket"]

    quote = api.ok(
        api.post(
            buyer,
            "/v1/trade/quotes",
            {"quoteId": "q-1", "lines": [{"sku": "sku-basket", "quantity": 2}]},
        ),
        201,
    )
    check_landed_cost(quote)

    order = api.ok(
        api.post(buyer, "/v1/trade/orders", {"orderId": "o-1", "quoteId": "q-1"}, key="co-1"),
        201,
    )
    assert (order["state"], minor(order, "total")) == ("PAID", (TOTAL_MYR, "MYR"))
    assert minor(order, "merchantNet") == (MERCHANT_NET_RWF, "RWF")
    stock = api.ok(api.get(buyer, "/v1/trade/items/sku-basket/stock"))
    assert stock["available"] == 8

    api.deliver()
    tracking = api.ok(api.get(buyer, "/v1/trade/orders/o-1/tracking"))
    assert tracking["status"] == "delivered"
    assert [e["code"] for e in tracking["events"]] == [*ORIGIN, *DESTINATION]
    assert tracking["clearance"] is not None
    declared = api.ok(api.get(merchant, "/v1/trade/orders/o-1/declaration"))
    assert (declared["declaration_id"], declared["destination"]) == ("IM-MY-o-1", "MY")
    assert declared["clearance"]["lane"] == tracking["clearance"]["lane"]
    assert api.get("hub-liege", "/v1/trade/orders/o-1/declaration").status_code == 403
    assert api.ok(api.get(merchant, "/v1/trade/orders/o-1"))["state"] == "DELIVERED"

    mtn_before = api.net.position("mtn-rw", "RWF")
    confirmed = api.ok(api.post(buyer, "/v1/trade/orders/o-1/confirm"))
    assert confirmed["state"] == "COMPLETED"
    payouts = api.ok(api.get(merchant, "/v1/trade/orders/o-1/payouts"))["payouts"]
    assert [(p["state"], minor(p, "amount"), p["withheld"]["minor"]) for p in payouts] == [
        ("PAID", (MERCHANT_NET_RWF, "RWF"), 0)
    ]
    assert api.net.position("mtn-rw", "RWF") - mtn_before == MERCHANT_NET_RWF
    assert api.net.position("customs-my", "MYR") == TAXES_MYR
    events = api.ok(api.get(merchant, "/v1/trade/orders/o-1/events"))["events"]
    assert [e["kind"] for e in events] == [
        "paid",
        "shipped",
        "import_cleared",
        "delivered",
        "released",
        "payout",
    ]
    assert events[2]["detail"] == {"taxesMinor": TAXES_MYR}
    assert api.ok(api.get(buyer, "/v1/trade/items/sku-basket/stock"))["available"] == 8
    assert api.net.scheme.ledger.check_invariants().ok


def test_a_buyer_pays_from_its_wallet_only_once_the_wallet_consents(api: Api) -> None:
    api.merchant()
    api.item(api.credential("hub-kigali", "merchantId", "m-inzozi"))
    buyer = api.buyer(consent=False)
    quote = {"quoteId": "q-1", "lines": [{"sku": "sku-basket", "quantity": 1}]}
    api.ok(api.post(buyer, "/v1/trade/quotes", quote), 201)
    checkout = {"orderId": "o-1", "quoteId": "q-1"}
    body = api.refused(
        api.post(buyer, "/v1/trade/orders", checkout), 403, "trade_wallet_consent_missing"
    )
    assert "maybank-my" in body["detail"]
    pending = api.ok(api.get("maybank-my", "/v1/trade/buyers?walletConsent=pending"))
    assert [b["buyerId"] for b in pending["buyers"]] == ["b-aisyah"]
    assert pending["next"] is None
    paged = api.ok(api.get("maybank-my", "/v1/trade/buyers?limit=1"))
    assert (len(paged["buyers"]), paged["next"]) == (1, "b-aisyah")
    assert api.ok(api.get("maybank-my", "/v1/trade/buyers?after=b-aisyah"))["buyers"] == []
    path = "/v1/trade/buyers/b-aisyah/wallet-consent"
    for other in ("hub-kuala-lumpur", "mtn-rw", buyer):  # not the hub that chose the alias
        api.refused(api.post(other, path), 403, "trade_forbidden")
    api.refused(api.get("mtn-rw", "/v1/trade/buyers/b-aisyah"), 403, "trade_forbidden")
    api.refused(api.get(buyer, "/v1/trade/buyers"), 403, "trade_forbidden")
    api.refused(api.get("maybank-my", "/v1/trade/buyers?walletConsent=maybe"), 422, "invalid_input")
    granted = api.ok(api.post("maybank-my", path))
    assert granted["walletConsent"] == "granted" and granted["walletConsentAt"]
    api.ok(api.post(buyer, "/v1/trade/orders", checkout), 201)
    revoked = api.ok(api.client.delete(path, headers=api.headers("maybank-my")))
    assert revoked["walletConsent"] == "revoked"
    assert api.ok(api.get("hub-kuala-lumpur", "/v1/trade/buyers/b-aisyah")) == revoked
    api.ok(api.post(buyer, "/v1/trade/quotes", {**quote, "quoteId": "q-2"}), 201)
    api.refused(
        api.post(buyer, "/v1/trade/orders", {"orderId": "o-2", "quoteId": "q-2"}),
        403,
        "trade_wallet_consent_missing",
    )


def test_checkout_with_the_same_idempotency_key_replays_the_first_order(api: Api) -> None:
    merchant = api.merchant()
    buyer = api.buyer()
    api.item(merchant)
    api.ok(
        api.post(
            buyer,
            "/v1/trade/quotes",
            {"quoteId": "q-1", "lines": [{"sku": "sku-basket", "quantity": 2}]},
        ),
        201,
    )
    body = {"orderId": "o-1", "quoteId": "q-1"}
    first = api.post(buyer, "/v1/trade/orders", body, key="co-1")
    again = api.post(buyer, "/v1/trade/orders", body, key="co-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    changed = api.post(buyer, "/v1/trade/orders", {**body, "orderId": "o-2"}, key="co-1")
    assert api.refused(changed, 409, "duplicate_with_different_body")["errorCode"] == "3106"
    # one order, two baskets reserved, one escrow pair held
    assert [o["orderId"] for o in api.ok(api.get(buyer, "/v1/trade/orders"))["orders"]] == ["o-1"]
    assert api.ok(api.get(buyer, "/v1/trade/items/sku-basket/stock"))["available"] == 8
    escrow = api.ok(api.get("hub-kigali", f"/v1/escrows/{api.goods_escrow('o-1')}"))
    assert escrow["held"]["minor"] == GOODS_ESCROW_MYR


# ---------------------------------------------------------------------- scoping
def test_one_merchant_cannot_read_or_act_on_anothers_order_or_item(api: Api) -> None:
    merchant = api.merchant()
    other = api.merchant("m-umuhanzi", "RW-100300")
    buyer = api.buyer()
    api.item(merchant)
    api.order(buyer)
    for response in (
        api.get(other, "/v1/trade/orders/o-1"),
        api.get(other, "/v1/trade/orders/o-1/events"),
        api.get(other, "/v1/trade/orders/o-1/tracking"),
        api.get(other, "/v1/trade/orders/o-1/payouts"),
        api.get(other, "/v1/trade/merchants/m-inzozi"),
        api.post(other, "/v1/trade/orders/o-1/cancel", {"reason": "not mine to cancel"}),
        api.patch(other, "/v1/trade/items/sku-basket", {"priceMinor": 1, "active": False}),
        api.put(other, "/v1/trade/items/sku-basket/stock/kigali-fc1", {"onHand": 0}),
    ):
        api.refused(response, 403, "trade_forbidden")
    assert api.ok(api.get(other, "/v1/trade/orders"))["orders"] == []
    # nothing changed: the order is paid, the item on sale at its price, the stock reserved
    assert api.ok(api.get(merchant, "/v1/trade/orders/o-1"))["state"] == "PAID"
    [item] = api.ok(api.get(other, "/v1/trade/items"))["items"]
    assert (item["sku"], item["price"]["minor"], item["active"]) == ("sku-basket", 45_000, True)
    assert api.ok(api.get(merchant, "/v1/trade/items/sku-basket/stock"))["available"] == 8


def test_one_buyer_cannot_read_anothers_order_or_quote(api: Api) -> None:
    merchant = api.merchant()
    buyer = api.buyer()
    other = api.buyer("b-siti", "+60198765432")
    api.item(merchant)
    api.order(buyer)
    api.ok(
        api.post(
            buyer,
            "/v1/trade/quotes",
            {"quoteId": "q-2", "lines": [{"sku": "sku-basket", "quantity": 1}]},
        ),
        201,
    )
    for response in (
        api.get(other, "/v1/trade/orders/o-1"),
        api.get(other, "/v1/trade/orders/o-1/tracking"),
        api.get(other, "/v1/trade/quotes/q-o-1"),
        api.get(other, "/v1/trade/quotes/q-2"),
        api.get(other, "/v1/trade/buyers/b-aisyah"),
        api.post(other, "/v1/trade/orders/o-1/cancel", {"reason": "not mine"}),
    ):
        api.refused(response, 403, "trade_forbidden")
    # another buyer's quote cannot be paid for: it does not exist for them
    stolen = api.post(other, "/v1/trade/orders", {"orderId": "o-2", "quoteId": "q-2"})
    api.refused(stolen, 404, "trade_quote_not_found")
    assert api.ok(api.get(other, "/v1/trade/orders"))["orders"] == []
    assert api.ok(api.get(buyer, "/v1/trade/quotes/q-2"))["used"] is False
    assert api.ok(api.get(buyer, "/v1/trade/orders/o-1"))["state"] == "PAID"


def test_a_hub_operator_tracks_only_the_parcels_on_its_leg(api: Api) -> None:
    merchant = api.merchant()
    buyer = api.buyer()
    api.item(merchant)
    api.order(buyer)
    for hub, code in (("hub-liege", "EMA"), ("hub-kuala-lumpur", "EMA"), ("mtn-rw", "EMA")):
        refused = api.post(hub, "/v1/trade/orders/o-1/tracking", {"code": code})
        api.refused(refused, 403, "trade_forbidden")
    api.refused(api.get("hub-liege", "/v1/trade/orders/o-1"), 403, "trade_forbidden")
    tracking = api.ok(api.get(buyer, "/v1/trade/orders/o-1/tracking"))
    assert (tracking["status"], tracking["events"]) == ("awaiting_handover", [])
    assert api.ok(api.get(buyer, "/v1/trade/orders/o-1"))["state"] == "PAID"
    # the destination hub sees the order passing through it, and records its own leg later
    assert api.ok(api.get("hub-kuala-lumpur", "/v1/trade/orders/o-1"))["orderId"] == "o-1"
    api.track("o-1", ORIGIN, "hub-kigali")
    early = api.post("hub-kigali", "/v1/trade/orders/o-1/tracking", {"code": "EMD"})
    api.refused(early, 403, "trade_forbidden")
    api.track("o-1", ("EMD",), "hub-kuala-lumpur")


def test_only_the_assigned_arbitrator_rules_and_a_refused_ruling_changes_nothing(
    api: Api,
) -> None:
    merchant = api.merchant()
    buyer = api.buyer()
    api.item(merchant)
    api.order(buyer)
    api.track("o-1", ORIGIN, "hub-kigali")
    opened = {
        "disputeId": "d-1",
        "orderId": "o-1",
        "reason": "not_received",
        "claim": "the parcel stopped moving after line-haul",
    }
    dispute = api.ok(api.post(buyer, "/v1/trade/disputes", opened), 201)
    assert (dispute["state"], dispute["arbitrator"]) == ("NEGOTIATION", None)
    api.ok(api.post(merchant, "/v1/trade/disputes/d-1/evidence", {"text": "handed over, EMC"}))
    dispute = api.ok(api.post(buyer, "/v1/trade/disputes/d-1/escalate"))
    assigned = dispute["arbitrator"]
    assert dispute["state"] == "ARBITRATION" and assigned.startswith("arb-kigali-")
    others = [f"arb-kigali-{n}" for n in (1, 2, 3) if f"arb-kigali-{n}" != assigned]
    judge = api.credential("hub-kigali", "arbitratorId", assigned)
    bystander = api.credential("hub-kigali", "arbitratorId", others[0])
    stranger = api.credential("scheme", "arbitratorId", "arb-liege-1")
    ruling = {"outcome": "refund", "reason": "no delivery scan for 30 days"}
    for caller in (bystander, stranger, merchant, buyer, "hub-kigali"):
        refused = api.post(caller, "/v1/trade/disputes/d-1/ruling", ruling)
        api.refused(refused, 403, "trade_forbidden")
    api.refused(api.get(stranger, "/v1/trade/disputes/d-1"), 403, "trade_forbidden")
    assert api.ok(api.get(stranger, "/v1/trade/disputes"))["disputes"] == []
    unchanged = api.ok(api.get(buyer, "/v1/trade/disputes/d-1"))
    assert (unchanged["state"], unchanged["ruling"]) == ("ARBITRATION", None)
    assert (
        api.ok(api.get("hub-kigali", f"/v1/escrows/{api.goods_escrow('o-1')}"))["held"]["minor"]
        == GOODS_ESCROW_MYR
    )
    kinds = [e["kind"] for e in api.ok(api.get(judge, "/v1/trade/disputes/d-1/events"))["events"]]
    assert kinds == ["opened", "evidence", "escalated"]

    ruled = api.ok(api.post(judge, "/v1/trade/disputes/d-1/ruling", ruling))
    assert ruled["state"] == "RULED"
    assert (ruled["ruling"]["outcome"], minor(ruled["ruling"], "refund")) == (
        "refund",
        (GOODS_ESCROW_MYR, "MYR"),
    )
    assert [d["disputeId"] for d in api.ok(api.get(judge, "/v1/trade/disputes"))["disputes"]] == [
        "d-1"
    ]

    # one appeal, to another panel member, whose split is final and moves the escrow
    appealed = api.ok(api.post(merchant, "/v1/trade/disputes/d-1/appeal", {"grounds": "EMC"}))
    assert (appealed["state"], appealed["appealArbitrator"]) == ("APPEAL", others[0])
    api.refused(api.post(judge, "/v1/trade/disputes/d-1/ruling", ruling), 403, "trade_forbidden")
    split = {"outcome": "split", "refundMinor": 20_000, "reason": "shared fault"}
    final = api.ok(api.post(bystander, "/v1/trade/disputes/d-1/ruling", split))
    assert (final["state"], final["appealRuling"]["refund"]["minor"]) == ("RESOLVED", 20_000)
    assert api.ok(api.get(buyer, "/v1/trade/orders/o-1"))["state"] == "COMPLETED"
    assert (
        api.ok(api.get("hub-kigali", f"/v1/escrows/{api.goods_escrow('o-1')}"))["held"]["minor"]
        == 0
    )


def test_trade_credentials_are_issued_only_for_existing_actors_by_their_hub(api: Api) -> None:
    merchant = api.merchant()
    for issuer, body, status, code in (
        ("hub-liege", {"merchantId": "m-inzozi"}, 403, "trade_forbidden"),
        (merchant, {"merchantId": "m-inzozi"}, 403, "trade_forbidden"),
        ("hub-kigali", {"arbitratorId": "arb-liege-1"}, 403, "trade_forbidden"),
        ("scheme", {"merchantId": "m-nobody"}, 404, "trade_merchant_not_found"),
        # another than the scheme is not told whether an actor exists (found by a review)
        ("hub-kigali", {"merchantId": "m-nobody"}, 403, "trade_forbidden"),
        ("mtn-rw", {"buyerId": "b-nobody"}, 403, "trade_forbidden"),
        ("hub-liege", {"arbitratorId": "arb-nowhere-1"}, 403, "trade_forbidden"),
        ("scheme", {"buyerId": "b-nobody"}, 404, "trade_buyer_not_found"),
        ("scheme", {"arbitratorId": "arb-nowhere-1"}, 404, "trade_arbitrator_not_found"),
        ("scheme", {"merchantId": "m-inzozi", "buyerId": "b-1"}, 422, "invalid_input"),
    ):
        api.refused(api.post(issuer, "/v1/trade/credentials", body), status, code)
    c = pay_store.credentials.c
    with api.net.engine.connect() as conn:
        principals = conn.execute(
            sa.select(c.participant_id).where(c.participant_id.like("%:%"))
        ).scalars()
        assert sorted(principals) == ["merchant:m-inzozi"]  # issued by its hub in api.merchant


def test_a_suspended_hub_issues_no_trade_credentials_and_still_revokes_them(api: Api) -> None:
    """A hub operator the scheme suspended issued its merchants and buyers new API
    credentials (201): the suspension stops what a participant does, and a credential is the
    way in for whoever holds it (found by a review). Refused 409 ``participant_suspended``,
    nothing issued; it still lists and revokes them (a lost phone is not left working), and
    the scheme operator still issues them."""
    merchant = api.merchant()
    c = pay_store.credentials.c
    mine = c.participant_id == "merchant:m-inzozi"

    def issued() -> list[str]:
        with api.net.engine.connect() as conn:
            return sorted(conn.execute(sa.select(c.key_id).where(mine)).scalars())

    api.net.scheme.set_active("hub-kigali", False, "licence under review")
    before = issued()
    refused = api.post("hub-kigali", "/v1/trade/credentials", {"merchantId": "m-inzozi"})
    assert api.refused(refused, 409, "participant_suspended")["errorCode"] == "3202"
    assert issued() == before
    listed = api.ok(api.get("hub-kigali", "/v1/trade/credentials?principal=merchant:m-inzozi"))
    key = listed[0]["keyId"]
    revoked = api.client.delete(f"/v1/trade/credentials/{key}", headers=api.headers("hub-kigali"))
    assert api.ok(revoked)["revoked"] is True
    assert api.get(merchant, "/v1/trade/merchants/m-inzozi").status_code == 401
    api.credential("scheme", "merchantId", "m-inzozi")
    api.net.scheme.set_active("hub-kigali", True)
    api.credential("hub-kigali", "merchantId", "m-inzozi")
    assert len(issued()) == len(before) + 2


def test_a_suspended_hub_creates_nothing_for_its_hub_and_still_reads(api: Api) -> None:
    """A hub operator the scheme suspended still onboarded merchants, added warehouses and
    registered buyers (201), as if suspension stopped its payments only (found by a review).
    Each is refused 409 ``participant_suspended`` (3202), nothing written; it still reads
    its hub's merchants, buyers and warehouses, and once resumed creates again."""
    api.merchant()
    api.buyer()
    api.ok(
        api.post(
            "mtn-rw",
            "/v1/parties/BUSINESS/RW-300400",
            {"displayName": "Umucyo", "currency": "RWF"},
        ),
        201,
    )
    api.ok(
        api.post(
            "maybank-my",
            "/v1/parties/MSISDN/+60111111111",
            {"displayName": "b-two", "currency": "MYR"},
        ),
        201,
    )
    merchant = {
        "merchantId": "m-umucyo",
        "legalName": "Umucyo Ltd",
        "registrationNumber": "RW-300400",
        "settlement": {"partyIdType": "BUSINESS", "partyIdentifier": "RW-300400"},
    }
    buyer = {
        "buyerId": "b-two",
        "name": "Buyer two",
        "wallet": {"partyIdType": "MSISDN", "partyIdentifier": "+60111111111"},
    }
    warehouse = {"warehouseId": "kigali-fc2", "name": "Second centre"}
    warehouses = "/v1/trade/hubs/kigali/warehouses"
    creates = [
        ("hub-kigali", "/v1/trade/merchants", merchant),
        ("hub-kigali", warehouses, warehouse),
        ("hub-kuala-lumpur", "/v1/trade/buyers", buyer),
    ]
    for hub in ("hub-kigali", "hub-kuala-lumpur"):
        api.net.scheme.set_active(hub, False, "licence under review")
    for hub, path, body in creates:
        refused = api.refused(api.post(hub, path, body), 409, "participant_suspended")
        assert refused["errorCode"] == "3202" and hub in refused["detail"]
    assert api.get("hub-kigali", "/v1/trade/merchants/m-umucyo").status_code == 404
    assert api.get("hub-kuala-lumpur", "/v1/trade/buyers/b-two").status_code == 404
    assert [w["warehouseId"] for w in api.ok(api.get("hub-kigali", warehouses))] == ["kigali-fc1"]
    assert api.ok(api.get("hub-kigali", "/v1/trade/merchants/m-inzozi"))["state"] == "active"
    assert api.ok(api.get("hub-kuala-lumpur", "/v1/trade/buyers/b-aisyah"))["hubId"] == (
        "kuala-lumpur"
    )
    for hub in ("hub-kigali", "hub-kuala-lumpur"):
        api.net.scheme.set_active(hub, True)
    for hub, path, body in creates:
        api.ok(api.post(hub, path, body), 201)


def test_a_suspended_hub_reviews_no_merchant(api: Api) -> None:
    """A suspended hub operator still reviewed merchants (200: cleared one to sell, or
    suspended it), found by a review: the hub's compliance decision waits for its
    resumption. Refused 409 ``participant_suspended``, the merchant as it was."""
    api.net.trade.onboarding_screening = lambda name, country: ("review", "resembles an entry")
    body = inzozi_with_business_id(api)
    api.ok(api.post("hub-kigali", "/v1/trade/merchants", body), 201)
    path = "/v1/trade/merchants/m-inzozi"
    before = api.ok(api.get("hub-kigali", path))
    api.net.scheme.set_active("hub-kigali", False, "licence under review")
    for approve in (True, False):
        review = {"approve": approve, "reason": "checked the director"}
        refused = api.post("hub-kigali", f"{path}/review", review)
        assert api.refused(refused, 409, "participant_suspended")["errorCode"] == "3202"
    assert api.ok(api.get("hub-kigali", path)) == before
    api.net.scheme.set_active("hub-kigali", True)
    review = {"approve": True, "reason": "checked the director"}
    assert api.ok(api.post("hub-kigali", f"{path}/review", review))["state"] == "active"


def test_a_quote_tells_a_buyer_nothing_of_an_off_sale_items_stock(api: Api) -> None:
    """Found by a review: a quote looked for stock before it checked the items were on sale,
    so a buyer quoting an item taken off sale was told "fewer than N available" past its
    stock and "not on sale" within it: how much the merchant held, by asking."""
    merchant = api.merchant()
    api.item(merchant, on_hand=7)
    buyer = api.buyer()
    api.ok(api.patch(merchant, "/v1/trade/items/sku-basket", {"active": False}))
    answers = set()
    for qty in (1, 7, 8, 50):
        body = {"quoteId": f"q-off-{qty}", "lines": [{"sku": "sku-basket", "quantity": qty}]}
        refused = api.post(buyer, "/v1/trade/quotes", body)
        answers.add((refused.status_code, refused.json()["code"], refused.json()["detail"]))
    assert len(answers) == 1, answers  # one answer, whatever the quantity
    ((status, code, detail),) = answers
    assert (status, code) == (422, "trade_invalid_input") and "not on sale" in detail


def test_a_principal_the_credentials_list_cannot_read_names_its_query_parameter(
    api: Api,
) -> None:
    """Found by a review: ``?principal=`` that is no actor's principal named ``caller`` (as if
    the caller's own credential were at fault) or the principal's role (``merchant``), not
    the query parameter the request spelt, as every other problem names its field."""
    for principal in ("foo:bar", "merchant:!!!", "buyer:" + "b" * 60, "hub-kigali"):
        refused = api.get("hub-kigali", f"/v1/trade/credentials?principal={principal}")
        assert api.refused(refused, 422, "trade_invalid_input")["field"] == "principal"


def test_a_hub_lists_and_revokes_its_merchants_credentials_and_no_other_hubs(
    api: Api,
) -> None:
    """A merchant's phone is lost: the hub that issued its token revokes it, and the token is
    refused from the next request. Another hub may not; the merchant may revoke its own; a
    payment participant's key is not a trade credential."""
    merchant = api.merchant()
    listed = api.ok(api.get("hub-kigali", "/v1/trade/credentials?principal=merchant:m-inzozi"))
    assert [(c["principal"], c["revoked"]) for c in listed] == [("merchant:m-inzozi", False)]
    assert "secret" not in listed[0] and "token" not in listed[0]
    key = listed[0]["keyId"]
    assert api.ok(api.get(merchant, "/v1/trade/merchants/m-inzozi"))["merchantId"] == "m-inzozi"
    for caller in ("hub-liege", "mtn-rw"):
        api.refused(
            api.get(caller, "/v1/trade/credentials?principal=merchant:m-inzozi"),
            403,
            "trade_forbidden",
        )
        api.refused(api.client.delete(f"/v1/trade/credentials/{key}", headers=api.headers(caller)),
                    403, "trade_forbidden")  # fmt: skip
    hub_key = api.tokens["hub-kigali"].partition(".")[0]
    api.refused(
        api.client.delete(f"/v1/trade/credentials/{hub_key}", headers=api.headers("hub-kigali")),
        404,
        "credential_not_found",
    )
    revoked = api.client.delete(f"/v1/trade/credentials/{key}", headers=api.headers("hub-kigali"))
    assert api.ok(revoked)["revoked"] is True
    assert api.get(merchant, "/v1/trade/merchants/m-inzozi").status_code == 401
    listed = api.ok(api.get("scheme", "/v1/trade/credentials?principal=merchant:m-inzozi"))
    assert [c["revoked"] for c in listed] == [True]
    # a merchant revokes its own (a second token, issued by its hub)
    second = api.credential("hub-kigali", "merchantId", "m-inzozi")
    own = api.ok(api.get(second, "/v1/trade/credentials?principal=merchant:m-inzozi"))
    new_key = next(c["keyId"] for c in own if not c["revoked"])
    assert api.ok(
        api.client.delete(f"/v1/trade/credentials/{new_key}", headers=api.headers(second))
    )["revoked"]
    for caller in ("mtn-rw", "hub-liege"):  # whether b-nobody is a buyer: not theirs to know
        api.refused(
            api.get(caller, "/v1/trade/credentials?principal=buyer:b-nobody"),
            403,
            "trade_forbidden",
        )
    api.refused(
        api.get("scheme", "/v1/trade/credentials?principal=buyer:b-nobody"),
        404,
        "trade_buyer_not_found",
    )
    api.refused(
        api.get("hub-kigali", "/v1/trade/credentials?principal=hub:kigali"),
        422,
        "trade_invalid_input",
    )


def test_a_hub_cannot_issue_an_arbitrator_it_shares_with_another_hub_and_rule_there(
    api: Api,
) -> None:
    """An arbitrator may sit on several hubs' panels. Any of those hubs could issue it a
    credential, so the operator of a second hub could act as the arbitrator on the first
    hub's disputes: rule them, and move the escrow of orders it has no part in. Only the
    scheme operator, or a hub whose panel is every panel the arbitrator sits on, issues it."""
    merchant = api.merchant()
    buyer = api.buyer()
    api.item(merchant)
    api.order(buyer)
    api.track("o-1", ORIGIN, "hub-kigali")
    opened = {"disputeId": "d-1", "orderId": "o-1", "reason": "not_received", "claim": "lost"}
    api.ok(api.post(buyer, "/v1/trade/disputes", opened), 201)
    assigned = api.ok(api.post(buyer, "/v1/trade/disputes/d-1/escalate"))["arbitrator"]
    api.ok(
        api.post(
            "scheme",
            "/v1/participants",
            {"id": "hub-goma", "name": "Goma", "kind": "hub", "country": "CD", "currencies": []},
        ),
        201,
    )
    hub = {
        "hubId": "goma",
        "name": "Goma eHub",
        "kind": "ehub",
        "country": "CD",
        "currency": "RWF",
        "operator": "hub-goma",
        "arbitrators": [assigned, "arb-goma-2"],  # the Kigali arbitrator sits here too
        "customsAuthority": "customs-rw",
        "freight": {
            "domesticBaseMinor": 1,
            "domesticPerKgMinor": 1,
            "internationalBaseMinor": 1,
            "internationalPerKgMinor": 1,
        },
    }
    api.ok(api.post("scheme", "/v1/trade/hubs", hub), 201)
    api.tokens["hub-goma"] = issue_credential(api.net.engine, "hub-goma").token
    refused = api.post("hub-goma", "/v1/trade/credentials", {"arbitratorId": assigned})
    api.refused(refused, 403, "trade_forbidden")
    # its own arbitrator, on its panel only, it still issues; Kigali no longer issues the
    # shared one either: only the scheme does
    api.ok(api.post("hub-goma", "/v1/trade/credentials", {"arbitratorId": "arb-goma-2"}), 201)
    api.refused(
        api.post("hub-kigali", "/v1/trade/credentials", {"arbitratorId": assigned}),
        403,
        "trade_forbidden",
    )
    judge = api.credential("scheme", "arbitratorId", assigned)
    ruling = {"outcome": "refund", "reason": "no delivery scan"}
    assert api.ok(api.post(judge, "/v1/trade/disputes/d-1/ruling", ruling))["state"] == "RULED"


def test_a_merchant_token_cannot_use_payment_participant_routes(api: Api) -> None:
    merchant = api.merchant()
    buyer = api.buyer()
    api.item(merchant)
    api.order(buyer)
    before = api.net.position("mtn-rw", "RWF")
    api.refused(api.get(merchant, f"/v1/escrows/{api.goods_escrow('o-1')}"), 403, "forbidden")
    release = api.post(
        merchant,
        f"/v1/escrows/{api.goods_escrow('o-1')}/release",
        {"amount": {"amount": "1.00", "currency": "MYR"}},
    )
    api.refused(release, 403, "forbidden")
    api.refused(api.post(merchant, "/v1/settlementWindows/close"), 403, "forbidden")
    api.refused(api.get(merchant, "/v1/participants/mtn-rw"), 403, "forbidden")
    # nor read the directory: who holds the account behind a phone number is for participants
    api.refused(api.get(merchant, "/v1/parties/MSISDN/+250788000000"), 403, "forbidden")
    # nor probe it through a QR payment: which tills exist and what they are paid in (a
    # static QR of a till that names nobody was 404, one paid in another currency 422)
    api.ok(
        api.post(
            "mtn-rw", "/v1/parties/MERCHANT/till-42", {"displayName": "Shop", "currency": "RWF"}
        ),
        201,
    )
    for till, currency in (("till-42", "MYR"), ("till-404", "RWF")):
        qr = {"tillId": till, "merchantName": "Shop", "city": "Kigali", "country": "RW"}
        payload = api.ok(api.post(merchant, "/v1/qr/encode", {**qr, "currency": currency}))
        # nor through encoding one: it named the participant holding any till (a review)
        assert decode_qr(payload["payload"]).find_acquirer() is None
        pay = {
            "payload": payload["payload"],
            "transferId": f"t-{till}",
            "quoteId": f"q-{till}",
            "sourceCurrency": "RWF",
            "amount": {"amount": "10.00", "currency": currency},
        }
        api.refused(api.post(merchant, "/v1/qr/pay", pay), 403, "forbidden")
    # a merchant is no payment participant: it cannot register aliases, quote, hold escrow
    for response in (
        api.get(merchant, "/v1/participants"),
        api.post(
            merchant, "/v1/parties/MSISDN/+250788000000", {"displayName": "x", "currency": "RWF"}
        ),
        api.post(
            merchant,
            "/v1/quotes",
            {
                "quoteId": "q-pay",
                "payee": {"partyIdType": "BUSINESS", "partyIdentifier": "RW-100200"},
                "amountType": "SEND",
                "amount": {"amount": "100", "currency": "RWF"},
                "sourceCurrency": "RWF",
            },
        ),
        api.post(
            merchant,
            "/v1/escrows",
            {
                "escrowId": "e-1",
                "payeeFsp": "mtn-rw",
                "amount": {"amount": "100", "currency": "RWF"},
                "purpose": "a merchant's own escrow",
                "deadlineSeconds": 3_600,
            },
        ),
    ):
        api.refused(response, 404, "participant_not_found")
    assert api.ok(api.get(merchant, "/v1/transfers"))["transfers"] == []
    assert (
        api.ok(api.get("hub-kigali", f"/v1/escrows/{api.goods_escrow('o-1')}"))["held"]["minor"]
        == GOODS_ESCROW_MYR
    )
    assert api.net.position("mtn-rw", "RWF") == before
    # and a payment participant that is no hub operator cannot act in trade
    refused = api.post(
        "mtn-rw",
        "/v1/trade/merchants",
        {
            "merchantId": "m-x",
            "legalName": "X",
            "registrationNumber": "RW-1",
            "settlement": {"partyIdType": "BUSINESS", "partyIdentifier": "RW-100200"},
        },
    )
    api.refused(refused, 403, "trade_forbidden")


# ---------------------------------------------------------------------- bad input
def test_an_unknown_hs_code_or_a_currency_not_held_is_refused(api: Api) -> None:
    merchant = api.merchant()
    unknown = api.post(merchant, "/v1/trade/items", item_body(hsCode="999999"))
    # the field as the request names it, not as the service does (hs_code)
    assert api.refused(unknown, 422, "customs_unknown_hs_code")["field"] == "hsCode"
    myr = api.post(
        merchant, "/v1/trade/items", item_body(price={"minor": 4_500, "currency": "MYR"})
    )
    assert api.refused(myr, 422, "trade_currency_not_held")["field"] == "currency"
    malformed = api.post(merchant, "/v1/trade/items", item_body(weightG=0))
    assert api.refused(malformed, 422, "invalid_input")["field"] == "weightG"
    assert api.ok(api.get(merchant, "/v1/trade/items"))["items"] == []
    # no such item: said so, not an empty stock that reads as sold out
    stock = api.get(merchant, "/v1/trade/items/sku-basket/stock")
    assert api.refused(stock, 404, "trade_item_not_found")["field"] == "sku"


def test_a_dispute_after_its_window_is_refused_and_the_deadline_releases(api: Api) -> None:
    merchant = api.merchant()
    buyer = api.buyer()
    api.item(merchant)
    api.order(buyer)
    api.deliver()
    api.net.advance_days(8)  # Kigali's dispute window is 7 days from delivery
    late = {
        "disputeId": "d-late",
        "orderId": "o-1",
        "reason": "not_as_described",
        "claim": "the weave is looser than pictured",
    }
    api.refused(api.post(buyer, "/v1/trade/disputes", late), 409, "trade_window_closed")
    assert api.ok(api.get(buyer, "/v1/trade/disputes"))["disputes"] == []
    api.refused(api.get(buyer, "/v1/trade/disputes/d-late"), 404, "trade_dispute_not_found")
    assert api.ok(api.get(buyer, "/v1/trade/orders/o-1"))["state"] == "DELIVERED"
    assert api.ok(api.get(merchant, "/v1/trade/orders/o-1/payouts"))["payouts"] == []

    api.refused(api.post("hub-kigali", "/v1/trade/deadlines"), 403, "trade_forbidden")
    counts = api.ok(api.post("scheme", "/v1/trade/deadlines"))["counts"]
    assert counts == {
        "cancelled": 0,
        "refunded": 0,
        "released": 1,
        "returnsAccepted": 0,
        "disputesUnanswered": 0,
        "disputesEscalated": 0,
        "disputesReassigned": 0,
        "rulingsFinal": 0,
        "payoutsRetried": 0,
        "payoutsFailed": 0,
        "failed": 0,
        "disputesFailed": 0,
    }
    assert api.ok(api.get(buyer, "/v1/trade/orders/o-1"))["state"] == "COMPLETED"
    [payout] = api.ok(api.get(merchant, "/v1/trade/orders/o-1/payouts"))["payouts"]
    assert (payout["state"], payout["amount"]["minor"]) == ("PAID", MERCHANT_NET_RWF)


# ---------------------------------------------------------------------- consolidation, history
def test_parcels_consolidate_together_or_not_at_all(api: Api) -> None:
    merchant = api.merchant()
    buyer = api.buyer()
    api.item(merchant)
    api.order(buyer, "o-1", qty=1)
    api.order(buyer, "o-2", qty=1)
    api.track("o-1", ORIGIN[:4], "hub-kigali")  # EMA ... EXC: ready for consolidation
    body = {"consolidationId": "c-1", "orderIds": ["o-1", "o-2"], "code": "EXD"}
    refused = api.post("hub-kigali", "/v1/trade/consolidations", body)
    api.refused(refused, 409, "trade_invalid_transition")  # o-2 is not handed over yet
    codes = [e["code"] for e in api.ok(api.get(buyer, "/v1/trade/orders/o-1/tracking"))["events"]]
    assert codes == list(ORIGIN[:4])  # o-1 did not move alone
    api.track("o-2", ORIGIN[:4], "hub-kigali")
    other_hub = api.post("hub-liege", "/v1/trade/consolidations", body)
    api.refused(other_hub, 403, "trade_forbidden")
    done = api.ok(api.post("hub-kigali", "/v1/trade/consolidations", body), 201)
    assert [(e["orderId"], e["code"], e["note"]) for e in done["events"]] == [
        ("o-1", "EXD", "consolidation c-1"),
        ("o-2", "EXD", "consolidation c-1"),
    ]
    api.ok(api.post("hub-kigali", "/v1/trade/consolidations", {**body, "code": "EMC"}), 201)
    arrived = {**body, "code": "EMD"}
    api.refused(api.post("hub-kigali", "/v1/trade/consolidations", arrived), 403, "trade_forbidden")
    api.ok(api.post("hub-kuala-lumpur", "/v1/trade/consolidations", arrived), 201)
    tracking = api.ok(api.get(buyer, "/v1/trade/orders/o-2/tracking"))
    assert [e["code"] for e in tracking["events"]] == [*ORIGIN, "EMD"]


def test_an_id_with_a_nul_in_a_body_list_is_refused_not_a_500(api: Api) -> None:
    """The path and query are checked for control characters, a body's lists of ids were
    not: PostgreSQL refuses a NUL in a lookup, so a consolidation naming one, or a hub with
    such a partner, was an HTTP 500 there."""
    merchant = api.merchant()
    buyer = api.buyer()
    api.item(merchant)
    api.order(buyer, "o-1", qty=1)
    api.track("o-1", ORIGIN[:4], "hub-kigali")
    body = {"consolidationId": "c-1", "orderIds": ["o-1", "o-\u00002"], "code": "EXD"}
    refused = api.refused(
        api.post("hub-kigali", "/v1/trade/consolidations", body), 422, "trade_invalid_input"
    )
    assert refused["field"] == "orders"
    codes = [e["code"] for e in api.ok(api.get(buyer, "/v1/trade/orders/o-1/tracking"))["events"]]
    assert codes == list(ORIGIN[:4])  # nothing recorded
    hub = {
        "hubId": "musanze",
        "name": "Musanze eHub",
        "kind": "ehub",
        "country": "RW",
        "currency": "RWF",
        "operator": "mtn-rw",
        "arbitrators": ["arb-m-1", "arb-m-2"],
        "customsAuthority": "customs-rw",
        "partners": ["mtn-rw", "x\u0000y"],
        "freight": {
            "domesticBaseMinor": 3_000,
            "domesticPerKgMinor": 1_000,
            "internationalBaseMinor": 8_000,
            "internationalPerKgMinor": 6_000,
        },
    }
    api.refused(api.post("scheme", "/v1/trade/hubs", hub), 422, "invalid_input")
    assert [h["hubId"] for h in api.ok(api.get("scheme", "/v1/trade/hubs"))].count("musanze") == 0


def test_a_merchants_history_is_its_own_and_its_hubs(api: Api) -> None:
    merchant = api.merchant()
    other = api.merchant("m-umuhanzi", "RW-100300")
    history = api.ok(api.get(merchant, "/v1/trade/merchants/m-inzozi/history?months=3"))
    assert (history["merchantId"], history["currency"], history["monthlySales"]) == (
        "m-inzozi",
        "RWF",
        [],  # joined today: the months before it are none of its trade (found by a review)
    )
    assert (history["orderCount"], history["refunds"]["minor"]) == (0, 0)
    api.net.advance_days(62)  # from 1 December to 1 February: December and January
    hub = api.ok(api.get("hub-kigali", "/v1/trade/merchants/m-inzozi/history"))
    assert len(hub["monthlySales"]) == 2
    assert len(api.ok(api.get(merchant, "/v1/trade/merchants/m-inzozi/history?months=1"))[
        "monthlySales"]) == 1  # fmt: skip
    for caller in (other, "hub-liege"):
        refused = api.get(caller, "/v1/trade/merchants/m-inzozi/history")
        api.refused(refused, 403, "trade_forbidden")
    too_long = api.get(merchant, "/v1/trade/merchants/m-inzozi/history?months=37")
    api.refused(too_long, 422, "invalid_input")


def test_a_refused_return_then_a_settlement_and_a_cancellation(api: Api) -> None:
    merchant = api.merchant()
    buyer = api.buyer()
    api.item(merchant)
    api.order(buyer, "o-1", qty=1)
    api.order(buyer, "o-2", qty=1)
    cancelled = api.ok(api.post(buyer, "/v1/trade/orders/o-2/cancel", {"reason": "changed mind"}))
    assert cancelled["state"] == "CANCELLED"
    assert api.ok(api.get(buyer, "/v1/trade/items/sku-basket/stock"))["available"] == 9
    api.deliver("o-1")
    asked = api.ok(api.post(buyer, "/v1/trade/orders/o-1/return", {"reason": "too small"}))
    assert asked["state"] == "RETURN_REQUESTED"
    answer = {"accept": False, "note": "made to the listed size"}
    refused = api.ok(api.post(merchant, "/v1/trade/orders/o-1/return/answer", answer))
    assert refused["state"] == "DELIVERED"
    opened = {
        "disputeId": "d-1",
        "orderId": "o-1",
        "reason": "not_as_described",
        "claim": "smaller than the listing says",
    }
    api.ok(api.post(buyer, "/v1/trade/disputes", opened), 201)
    offer = api.ok(api.post(merchant, "/v1/trade/disputes/d-1/offer", {"refundMinor": 5_000}))
    assert offer["offer"] == {
        "refund": {"amount": "50.00", "currency": "MYR", "minor": 5_000},
        "by": merchant,
    }
    api.refused(
        api.post(merchant, "/v1/trade/disputes/d-1/accept"), 409, "trade_invalid_transition"
    )
    settled = api.ok(api.post(buyer, "/v1/trade/disputes/d-1/accept"))
    assert settled["state"] == "RESOLVED"
    order = api.ok(api.get(buyer, "/v1/trade/orders/o-1"))
    assert order["state"] == "COMPLETED"
    [payout] = api.ok(api.get(merchant, "/v1/trade/orders/o-1/payouts"))["payouts"]
    goods = order["goodsEscrow"]["amount"]["minor"]
    # the merchant's net share of what was released, rounded down
    assert payout["amount"]["minor"] == 42_750 * (goods - 5_000) // goods
    kinds = [
        e["kind"] for e in api.ok(api.get(merchant, "/v1/trade/disputes/d-1/events"))["events"]
    ]
    assert kinds == ["opened", "offer", "settled", "resolved"]


def test_a_confirm_whose_answer_was_lost_is_answered_by_the_order_not_409(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The confirm releases the escrow through the scheme, which records the key with it
    (ADR 0011); its retry, the answer lost, ran it again and was refused (409 "order o-1 is
    COMPLETED"), and that 409 kept as the key's answer. Found in review."""
    from entrepot.entrypoints.api.security import SecurityMiddleware

    async def lost(self: SecurityMiddleware, values: object) -> bool:
        return True  # "stored": nothing was

    merchant, buyer = api.merchant(), api.buyer()
    api.item(merchant)
    api.order(buyer)
    api.deliver()
    with monkeypatch.context() as m:
        m.setattr(SecurityMiddleware, "_stored_with_next", lost)
        m.setattr(SecurityMiddleware, "_store", lambda self, values: None)
        first = api.post(buyer, "/v1/trade/orders/o-1/confirm", key="cf1")
    assert first.status_code == 200, first.text
    retry = api.post(buyer, "/v1/trade/orders/o-1/confirm", key="cf1")
    assert (retry.status_code, retry.json()) == (200, first.json())
    assert retry.headers["Idempotent-Replayed"] == "true"


def test_writes_whose_answers_were_lost_are_answered_with_what_they_did(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trade write (or a directory registration) whose worker died after its COMMIT and
    before its answer was stored: the retry ran it again and was refused, 409 "already
    exists" or "EMA cannot follow EMA", a 4xx kept as the key's answer for a write that was
    done. Now each marks the key in its own transaction, naming what it made, and the retry
    is answered with it (a create's 201). Found by killing the server (test_serve_crash_trade)."""
    from entrepot.entrypoints.api.security import SecurityMiddleware

    async def lost(self: SecurityMiddleware, values: object) -> bool:
        return True  # "stored": nothing was

    merchant, buyer = api.merchant(), api.buyer()
    api.ok(api.post(merchant, "/v1/trade/items", item_body()), 201)
    api.ok(api.put(merchant, "/v1/trade/items/sku-basket/stock/kigali-fc1", {"onHand": 5}))
    quote = {"quoteId": "q-o-1", "lines": [{"sku": "sku-basket", "quantity": 1}]}
    api.ok(api.post(buyer, "/v1/trade/quotes", quote), 201)
    api.ok(api.post(buyer, "/v1/trade/orders", {"orderId": "o-1", "quoteId": "q-o-1"}), 201)
    writes = [
        ("mtn-rw", "/v1/parties/BUSINESS/RW-7", {"displayName": "Seven", "currency": "RWF"}, 201),
        ("hub-kigali", "/v1/trade/orders/o-1/tracking", {"code": "EMA"}, 201),
        (buyer, "/v1/trade/quotes", {**quote, "quoteId": "q-2"}, 201),
    ]
    for n, (caller, path, body, status) in enumerate(writes):
        with monkeypatch.context() as m:
            m.setattr(SecurityMiddleware, "_stored_with_next", lost)
            m.setattr(SecurityMiddleware, "_store", lambda self, values: None)
            first = api.post(caller, path, body, key=f"lost-{n}")
        assert first.status_code == status, first.text
        retry = api.post(caller, path, body, key=f"lost-{n}")
        assert (retry.status_code, retry.json()) == (status, first.json()), path
        assert retry.headers["Idempotent-Replayed"] == "true"
        again = api.post(caller, path, body, key=f"lost-{n}")  # stored now
        assert (again.status_code, again.json()) == (status, first.json()), path
    assert len(api.get(buyer, "/v1/trade/orders/o-1/tracking").json()["events"]) == 1


# ---------------------------------------------------------------------- resent creates
def _resend(
    api: Api, caller: str, path: str, body: dict[str, Any], other: dict[str, Any], field: str
) -> dict[str, Any]:
    """Create, resend the same (no Idempotency-Key): answered with what the first made;
    send another body with the same id: 409 naming the id. Returns the first answer."""
    first = api.ok(api.post(caller, path, body), 201)
    again = api.post(caller, path, body)
    assert (again.status_code, again.json()) == (201, first), path
    refused = api.refused(api.post(caller, path, other), 409, "trade_id_conflict")
    assert refused["field"] == field, refused
    assert (api.post(caller, path, body).status_code, api.post(caller, path, body).json()) == (
        201,
        first,
    ), path
    return dict(first)


def test_a_resent_create_is_answered_by_its_id_and_another_body_is_409(api: Api) -> None:
    """ADR 0009 for trade: a client that lost the answer to a create and sends it again,
    without an Idempotency-Key, was told 409 "already exists" and could not tell whether it
    was done; the payments side answers the same request with what it made. Another request
    with a taken id is refused and changes nothing."""
    net = api.net
    currencies = net.scheme.get_participant("hub-kigali").currencies
    net.scheme.register_participant("hub-musanze", "Musanze eHub", "hub", "RW", currencies)
    hub = {
        "hubId": "musanze",
        "name": "Musanze eHub",
        "kind": "ehub",
        "country": "RW",
        "currency": "RWF",
        "operator": "hub-musanze",
        "arbitrators": ["arb-musanze-1", "arb-musanze-2"],
        "customsAuthority": "customs-rw",
        "partners": ["mtn-rw"],
        "freight": {
            "domesticBaseMinor": 4000,
            "domesticPerKgMinor": 1000,
            "internationalBaseMinor": 10000,
            "internationalPerKgMinor": 8000,
            "insuranceBps": 100,
        },
    }
    _resend(api, "scheme", "/v1/trade/hubs", hub, {**hub, "disputeDays": 9}, "hubId")
    assert api.ok(api.get("scheme", "/v1/trade/hubs/musanze"))["disputeDays"] == 7
    wh = {"warehouseId": "kigali-fc2", "name": "Kigali annex"}
    path = "/v1/trade/hubs/kigali/warehouses"
    _resend(api, "hub-kigali", path, wh, {**wh, "name": "Elsewhere"}, "warehouseId")
    names = [w["name"] for w in api.ok(api.get("hub-kigali", path))]
    assert names.count("Kigali annex") == 1 and "Elsewhere" not in names

    merchant = api.merchant()
    body = {
        "merchantId": "m-inzozi",
        "legalName": "Merchant m-inzozi Ltd",
        "registrationNumber": "RW-100200",
        "settlement": {"partyIdType": "BUSINESS", "partyIdentifier": "RW-100200"},
    }
    again = api.ok(api.post("hub-kigali", "/v1/trade/merchants", body), 201)
    other = {**body, "legalName": "Someone Else Ltd"}
    refused = api.refused(
        api.post("hub-kigali", "/v1/trade/merchants", other), 409, "trade_id_conflict"
    )
    assert refused["field"] == "merchantId"
    assert api.ok(api.get("hub-kigali", "/v1/trade/merchants/m-inzozi")) == again

    buyer = api.buyer()
    body = {
        "buyerId": "b-aisyah",
        "name": "Buyer b-aisyah",
        "wallet": {"partyIdType": "MSISDN", "partyIdentifier": "+60123456789"},
    }
    again = api.ok(api.post("hub-kuala-lumpur", "/v1/trade/buyers", body), 201)
    assert again["walletConsent"] == "granted"  # as it is now
    other = {**body, "name": "Another"}
    refused = api.refused(
        api.post("hub-kuala-lumpur", "/v1/trade/buyers", other), 409, "trade_id_conflict"
    )
    assert refused["field"] == "buyerId"
    assert api.ok(api.get("hub-kuala-lumpur", "/v1/trade/buyers/b-aisyah")) == again

    item = item_body()
    _resend(api, merchant, "/v1/trade/items", item, {**item, "title": "Another"}, "sku")
    assert [i["title"] for i in api.ok(api.get(buyer, "/v1/trade/items"))["items"]] == [
        "Woven agaseke basket"
    ]
    api.ok(api.put(merchant, "/v1/trade/items/sku-basket/stock/kigali-fc1", {"onHand": 5}))
    quote = {"quoteId": "q-1", "lines": [{"sku": "sku-basket", "quantity": 1}]}
    other = {**quote, "lines": [{"sku": "sku-basket", "quantity": 2}]}
    first = _resend(api, buyer, "/v1/trade/quotes", quote, other, "quoteId")
    assert api.ok(api.get(buyer, "/v1/trade/quotes/q-1")) == first
    order = {"orderId": "o-1", "quoteId": "q-1"}
    api.ok(api.post(buyer, "/v1/trade/quotes", {**quote, "quoteId": "q-2"}), 201)
    _resend(api, buyer, "/v1/trade/orders", order, {**order, "quoteId": "q-2"}, "orderId")
    assert api.ok(api.get(buyer, "/v1/trade/items/sku-basket/stock"))["available"] == 4
    api.track("o-1", ORIGIN, "hub-kigali")
    dispute = {"disputeId": "d-1", "orderId": "o-1", "reason": "not_received", "claim": "lost"}
    other = {**dispute, "claim": "stolen"}
    _resend(api, buyer, "/v1/trade/disputes", dispute, other, "disputeId")
    events = api.ok(api.get(buyer, "/v1/trade/disputes/d-1/events"))["events"]
    assert [e["kind"] for e in events] == ["opened"]


def test_a_consolidation_or_a_warehouse_whose_answer_was_lost_is_done_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consolidation's or a warehouse's retry after a lost answer, keyed (the answer's write
    dropped) or resent by its id, ran the write again: the retry is answered with the first
    answer and records nothing more; the same id with other parcels is trade_id_conflict."""
    from entrepot.entrypoints.api.security import SecurityMiddleware

    async def lost(self: SecurityMiddleware, values: object) -> bool:
        return True  # "stored": nothing was

    merchant, buyer = api.merchant(), api.buyer()
    api.item(merchant)
    for order_id in ("o-1", "o-2", "o-3"):
        api.order(buyer, order_id, qty=1)
        api.track(order_id, ORIGIN[:4], "hub-kigali")
    body = {"consolidationId": "c-1", "orderIds": ["o-1", "o-2"], "code": "EXD"}
    warehouse = {"warehouseId": "kigali-fc2", "name": "Kigali annex"}
    writes = [
        ("hub-kigali", "/v1/trade/hubs/kigali/warehouses", warehouse),
        ("hub-kigali", "/v1/trade/consolidations", body),
    ]
    for n, (caller, path, sent) in enumerate(writes):
        with monkeypatch.context() as m:
            m.setattr(SecurityMiddleware, "_stored_with_next", lost)
            m.setattr(SecurityMiddleware, "_store", lambda self, values: None)
            first = api.post(caller, path, sent, key=f"lost-{n}")
        assert first.status_code == 201, first.text
        retry = api.post(caller, path, sent, key=f"lost-{n}")
        assert (retry.status_code, retry.json()) == (201, first.json()), path
        resent = api.post(caller, path, sent)  # no key: answered by its id
        assert (resent.status_code, resent.json()) == (201, first.json()), path
    for order_id in ("o-1", "o-2"):
        events = api.ok(api.get(buyer, f"/v1/trade/orders/{order_id}/tracking"))["events"]
        assert [e["code"] for e in events] == [*ORIGIN[:4], "EXD"]
    warehouses = api.ok(api.get("hub-kigali", "/v1/trade/hubs/kigali/warehouses"))
    assert [w["warehouseId"] for w in warehouses].count("kigali-fc2") == 1

    # the same consolidation with other parcels: refused, nothing recorded
    other = {**body, "orderIds": ["o-1", "o-3"]}
    refused = api.post("hub-kigali", "/v1/trade/consolidations", other)
    assert api.refused(refused, 409, "trade_id_conflict")["field"] == "consolidationId"
    events = api.ok(api.get(buyer, "/v1/trade/orders/o-3/tracking"))["events"]
    assert [e["code"] for e in events] == list(ORIGIN[:4])
    # its next step is a step of its own, under the same consignment's id
    departed = api.ok(
        api.post("hub-kigali", "/v1/trade/consolidations", {**body, "code": "EMC"}), 201
    )
    assert [e["code"] for e in departed["events"]] == ["EMC", "EMC"]


# ---------------------------------------------------------------------- no tipping off
def test_a_merchant_is_not_told_why_onboarding_screening_held_it(api: Api) -> None:
    """Why onboarding screening held a merchant (the watch-list entry its name resembles,
    the score) and what the hub's reviewer wrote are the hub's to read. The merchant saw
    them in its own record: a screened party told what it was suspected of, as a held
    transfer's payee is not (payments.md). It sees its state only. Found in review."""
    why = "'Merchant m-inzozi Ltd' ~ 'Inzozi Front Co' (OFAC entry 4242, SDGT, score 0.91)"
    api.net.trade.onboarding_screening = lambda name, country: ("review", why)
    body = inzozi_with_business_id(api)
    onboarded = api.ok(api.post("hub-kigali", "/v1/trade/merchants", body), 201)
    assert (onboarded["state"], onboarded["screening"]) == ("review", f"review: {why}")
    merchant = api.credential("hub-kigali", "merchantId", "m-inzozi")
    own = api.ok(api.get(merchant, "/v1/trade/merchants/m-inzozi"))
    assert (own["state"], own["screening"]) == ("review", None)
    note = "the director is the listed person: same date of birth"
    review = {"approve": False, "reason": note}
    assert api.ok(api.post("hub-kigali", "/v1/trade/merchants/m-inzozi/review", review))[
        "screening"
    ].endswith(note)
    own = api.ok(api.get(merchant, "/v1/trade/merchants/m-inzozi"))
    assert (own["state"], own["screening"]) == ("suspended", None)
    hubs = api.ok(api.get("hub-kigali", "/v1/trade/merchants/m-inzozi"))["screening"]
    assert why in hubs and note in hubs


class _ScreenPayouts:
    """Holds (or blocks) every transfer to the merchant's bank, with reasons about it."""

    def __init__(self, block: bool = False) -> None:
        self.on, self.block = True, block

    def screen(self, transfer: object, payee: object) -> object:
        from entrepot.payments.services import ScreeningDecision

        hit = self.on and getattr(transfer, "payee_participant", "") == "mtn-rw"
        why = ("payee resembles OFAC entry 4242 (score 0.93)",) if hit else ()
        return ScreeningDecision(hold=hit and not self.block, block=hit and self.block, reasons=why)


def _event_texts(api: Api, caller: str, order_id: str = "o-1") -> str:
    return str(api.ok(api.get(caller, f"/v1/trade/orders/{order_id}/events"))["events"])


def test_a_payouts_screening_reasons_stay_with_the_hub_that_pays_it(api: Api) -> None:
    """A merchant payout is a scheme transfer from the hub (payer) to the merchant's bank:
    why screening held it and what the reviewer wrote were copied into the order's events,
    which the merchant (the payee), the buyer, the destination hub and an arbitrator read,
    where the transfer itself shows the payee no reason. The paying hub still reads them;
    the others see that the payout was retried or refused. Found in review."""
    merchant, buyer = api.merchant(), api.buyer()
    api.item(merchant)
    api.order(buyer, "o-1", qty=1)
    api.deliver("o-1")
    screening = _ScreenPayouts()
    api.net.scheme.screening = screening  # type: ignore[assignment]
    api.ok(api.post(buyer, "/v1/trade/orders/o-1/confirm"))
    [held] = api.ok(api.get("hub-kigali", "/v1/trade/orders/o-1/payouts"))["payouts"]
    assert held["state"] == "HELD"
    verdict = {"approve": False, "reason": "merchant account tied to a mule ring"}
    api.ok(api.post("scheme", f"/v1/transfers/{held['transferId']}/review", verdict))
    screening.on = False
    api.ok(api.post("scheme", "/v1/trade/deadlines"))
    api.ok(api.post("scheme", "/v1/trade/deadlines"))
    [paid] = api.ok(api.get(merchant, "/v1/trade/orders/o-1/payouts"))["payouts"]
    assert paid["state"] == "PAID"
    assert "mule ring" in _event_texts(api, "hub-kigali")
    for caller in (merchant, buyer, "hub-kuala-lumpur"):
        seen = _event_texts(api, caller)
        assert "payout_retry" in seen and "mule ring" not in seen, caller

    # blocked outright: no transfer exists to read, the order's log is all there is
    api.net.scheme.screening = _ScreenPayouts(block=True)  # type: ignore[assignment]
    api.order(buyer, "o-2", qty=1)
    api.deliver("o-2")
    api.ok(api.post(buyer, "/v1/trade/orders/o-2/confirm"))
    assert "OFAC entry 4242" in _event_texts(api, "hub-kigali", "o-2")
    for caller in (merchant, buyer, "hub-kuala-lumpur"):
        seen = _event_texts(api, caller, "o-2")
        assert "payout_failed" in seen and "OFAC" not in seen, caller


def test_a_buyer_paying_in_eur_checks_out_and_customs_values_at_the_quoted_rate(
    api: Api,
) -> None:
    """Customs in Malaysia values in MYR; a buyer whose wallet pays in EUR was refused at the
    quote (422 customs_missing_fx_rate). Now the scheme's EUR->MYR rate (4.90909091, posted)
    is read at the quote, kept with it and recorded on the declaration; the taxes, assessed in
    MYR (5,817 sen), are paid in EUR at the rate less the spread, rounded up (EUR 11.90)."""
    scheme = api.net.scheme
    scheme.add_currency("maybank-my", "EUR")
    scheme.deposit("maybank-my", "EUR", 10**9, "fund-maybank-eur")
    scheme.set_net_debit_cap("maybank-my", "EUR", 10**8)
    scheme.deposit("hub-kuala-lumpur", "MYR", 10**9, "fund-hub-kl-myr")
    scheme.set_net_debit_cap("hub-kuala-lumpur", "MYR", 10**8)
    merchant = api.merchant()
    api.item(merchant)
    msisdn = "+60111111111"
    body = {"displayName": "b-eur", "currency": "EUR"}
    api.ok(api.post("maybank-my", f"/v1/parties/MSISDN/{msisdn}", body), 201)
    wallet = {"partyIdType": "MSISDN", "partyIdentifier": msisdn}
    body = {"buyerId": "b-eur", "name": "Buyer b-eur", "wallet": wallet}
    assert api.ok(api.post("hub-kuala-lumpur", "/v1/trade/buyers", body), 201)["currency"] == "EUR"
    api.ok(api.post("maybank-my", "/v1/trade/buyers/b-eur/wallet-consent"))
    buyer = api.credential("hub-kuala-lumpur", "buyerId", "b-eur")

    quote = {"quoteId": "q-1", "lines": [{"sku": "sku-basket", "quantity": 2}]}
    q = api.ok(api.post(buyer, "/v1/trade/quotes", quote), 201)
    assert [minor(q, k) for k in ("goods", "freight", "insurance", "vat", "total")] == [
        (6_025, "EUR"),
        (5_764, "EUR"),
        (60, "EUR"),
        (1_190, "EUR"),
        (13_039, "EUR"),
    ]
    fx = q["customsFx"]
    assert (fx["currency"], fx["rate"], fx["providerId"], fx["spreadBps"]) == (
        "MYR",
        "4.90909091",
        "fx-global",
        40,
    )
    assert [minor(fx, k) for k in ("customsValue", "vat", "taxes")] == [
        (58_168, "MYR"),
        (5_817, "MYR"),
        (5_817, "MYR"),
    ]
    order = api.ok(api.post(buyer, "/v1/trade/orders", {"orderId": "o-1", "quoteId": "q-1"}), 201)
    assert minor(order, "total") == (13_039, "EUR")

    api.track("o-1", ORIGIN, "hub-kigali")
    api.track("o-1", DESTINATION[:4], "hub-kuala-lumpur")  # to EDC: customs paid in MYR
    d = api.ok(api.get(buyer, "/v1/trade/orders/o-1/declaration"))
    assert (d["currency"], d["customs_value_minor"], d["total_taxes_minor"]) == (
        "MYR",
        58_168,
        5_817,
    )
    assert [(r["currency"], r["rate"]) for r in d["fx_rates"]] == [("EUR", "4.90909091")]
    assert api.net.position("customs-my", "MYR") == 5_817


def test_a_buyer_paying_in_eur_without_a_rate_to_myr_is_refused_and_nothing_is_kept(
    api: Api,
) -> None:
    scheme = api.net.scheme
    scheme.add_currency("maybank-my", "EUR")
    merchant = api.merchant()
    api.item(merchant)
    body = {"displayName": "b-eur", "currency": "EUR"}
    api.ok(api.post("maybank-my", "/v1/parties/MSISDN/+60111111111", body), 201)
    wallet = {"partyIdType": "MSISDN", "partyIdentifier": "+60111111111"}
    body = {"buyerId": "b-eur", "name": "Buyer b-eur", "wallet": wallet}
    api.ok(api.post("hub-kuala-lumpur", "/v1/trade/buyers", body), 201)
    buyer = api.credential("hub-kuala-lumpur", "buyerId", "b-eur")
    scheme.post_fx_rate("fx-global", "EUR", "MYR", Decimal("4.90909091"), 40, 1)
    api.net.clock.advance(2)  # the EUR->MYR rate lapses; EUR->RWF is still quoted
    quote = {"quoteId": "q-1", "lines": [{"sku": "sku-basket", "quantity": 2}]}
    problem = api.refused(api.post(buyer, "/v1/trade/quotes", quote), 409, "trade_payment_failed")
    assert problem["field"] == "currency" and "customs in MY values in MYR" in problem["detail"]
    api.refused(api.get(buyer, "/v1/trade/quotes/q-1"), 404, "trade_quote_not_found")


# ---------------------------------------------------------------------- customs units
WINE = {
    "sku": "sku-wine",
    "title": "Still red wine, 75 cl",
    "hsCode": "220421",
    "origin": "ZA",
    "weightG": 1_300,
    "dimensionsMm": {"length": 90, "width": 90, "height": 330},
}


def liege_buyer(api: Api) -> str:
    api.tokens["kbc-be"] = issue_credential(api.net.engine, "kbc-be").token
    party = {"displayName": "Lotte", "currency": "EUR"}
    api.ok(api.post("kbc-be", "/v1/parties/MSISDN/+32470123456", party), 201)
    wallet = {"partyIdType": "MSISDN", "partyIdentifier": "+32470123456"}
    body = {"buyerId": "b-lotte", "name": "Lotte Peeters", "wallet": wallet}
    api.ok(api.post("hub-liege", "/v1/trade/buyers", body), 201)
    api.ok(api.post("kbc-be", "/v1/trade/buyers/b-lotte/wallet-consent"))
    return api.credential("hub-liege", "buyerId", "b-lotte")


def test_wine_listed_in_litres_is_quoted_to_liege_and_its_merchant_changes_it(api: Api) -> None:
    merchant, buyer = api.merchant(), liege_buyer(api)
    litres = {"customsUnit": "l", "customsQuantityPerPiece": "0.750"}
    body = {**WINE, "price": {"minor": 45_000, "currency": "RWF"}, **litres}
    item = api.ok(api.post(merchant, "/v1/trade/items", body), 201)
    assert item["customs"] == {"unit": "l", "quantityPerPiece": "0.75"}
    api.ok(api.put(merchant, "/v1/trade/items/sku-wine/stock/kigali-fc1", {"onHand": 12}))
    lines = [{"sku": "sku-wine", "quantity": 6}]
    quote = api.ok(api.post(buyer, "/v1/trade/quotes", {"quoteId": "q-1", "lines": lines}), 201)
    assert (quote["lines"][0]["customsQuantity"], quote["lines"][0]["customsUnit"]) == ("4.5", "l")
    assert "sku-wine: 6 pcs x 0.75 l = 4.5 l declared to customs" in quote["explanations"]
    assert (minor(quote, "duty"), quote["dftz"]) == ((0, "EUR"), True)  # the zone's factor 0
    # a price change keeps the customs unit; explicit nulls clear it
    patched = api.ok(api.patch(merchant, "/v1/trade/items/sku-wine", {"priceMinor": 46_000}))
    assert patched["customs"] == item["customs"]
    cleared = {"customsUnit": None, "customsQuantityPerPiece": None}
    assert api.ok(api.patch(merchant, "/v1/trade/items/sku-wine", cleared))["customs"] is None
    refused = api.post(buyer, "/v1/trade/quotes", {"quoteId": "q-2", "lines": lines})
    problem = api.refused(refused, 422, "trade_customs_unit_missing")
    assert problem["field"] == "lines"
    assert "item sku-wine (HS 220421) needs a customs quantity in 'l'" in problem["detail"]
    api.refused(api.get(buyer, "/v1/trade/quotes/q-2"), 404, "trade_quote_not_found")


def test_a_bad_customs_unit_is_refused_and_changes_nothing(api: Api) -> None:
    merchant = api.merchant()
    price = {"price": {"minor": 45_000, "currency": "RWF"}}
    for customs, field in (
        ({"customsUnit": "L", "customsQuantityPerPiece": "0.75"}, "customsUnit"),
        ({"customsUnit": "l"}, "customsQuantityPerPiece"),
        ({"customsUnit": "l", "customsQuantityPerPiece": "-1"}, "customsQuantityPerPiece"),
    ):
        refused = api.post(merchant, "/v1/trade/items", {**WINE, **price, **customs})
        assert api.refused(refused, 422, "trade_invalid_input")["field"] == field
    as_number = {**WINE, **price, "customsUnit": "l", "customsQuantityPerPiece": 0.75}
    api.refused(api.post(merchant, "/v1/trade/items", as_number), 422, "invalid_input")
    assert api.ok(api.get(merchant, "/v1/trade/items"))["items"] == []
    item = api.ok(api.post(merchant, "/v1/trade/items", {**WINE, **price}), 201)
    alone = api.patch(merchant, "/v1/trade/items/sku-wine", {"customsQuantityPerPiece": "0.75"})
    assert api.refused(alone, 422, "trade_invalid_input")["field"] == "customsUnit"
    assert api.ok(api.get(merchant, "/v1/trade/items"))["items"] == [item]


def test_one_customs_key_null_without_the_other_is_refused_and_changes_nothing(api: Api) -> None:
    """A PATCH with customsUnit null and customsQuantityPerPiece left out (or the other way
    round) cleared both, though one without the other is refused (docs/trade-api.md)."""
    merchant = api.merchant()
    litres = {"customsUnit": "l", "customsQuantityPerPiece": "0.75"}
    body = {**WINE, "price": {"minor": 45_000, "currency": "RWF"}, **litres}
    item = api.ok(api.post(merchant, "/v1/trade/items", body), 201)
    for patch, missing in (
        ({"customsUnit": None}, "customsQuantityPerPiece"),
        ({"customsQuantityPerPiece": None}, "customsUnit"),
        ({"customsUnit": None, "priceMinor": 1}, "customsQuantityPerPiece"),
    ):
        refused = api.patch(merchant, "/v1/trade/items/sku-wine", patch)
        assert api.refused(refused, 422, "trade_invalid_input")["field"] == missing
        assert api.ok(api.get(merchant, "/v1/trade/items"))["items"] == [item]


def test_an_item_off_sale_is_its_merchants_to_read_and_no_one_elses(api: Api) -> None:
    merchant = api.merchant()
    api.item(merchant)
    buyer = api.buyer()
    assert api.ok(api.get(buyer, "/v1/trade/items/sku-basket"))["sku"] == "sku-basket"
    api.ok(api.patch(merchant, "/v1/trade/items/sku-basket", {"active": False}))
    api.refused(api.get(buyer, "/v1/trade/items/sku-basket"), 404, "trade_item_not_found")
    assert api.ok(api.get(merchant, "/v1/trade/items/sku-basket"))["active"] is False


def test_an_item_off_sale_has_no_stock_for_anyone_but_its_merchant(api: Api) -> None:
    """Found by a review: the item read says an item off sale does not exist to anyone but
    its merchant, while its stock read answered anyone (another hub, a bank, a buyer) that it
    existed and how much each warehouse held of it."""
    merchant = api.merchant()
    api.item(merchant, on_hand=7)
    buyer = api.buyer()
    api.ok(api.patch(merchant, "/v1/trade/items/sku-basket", {"active": False}))
    for caller in (buyer, "maybank-my", "hub-kuala-lumpur", "scheme"):
        refused = api.get(caller, "/v1/trade/items/sku-basket/stock")
        api.refused(refused, 404, "trade_item_not_found")
        assert "7" not in refused.text
    assert api.ok(api.get(merchant, "/v1/trade/items/sku-basket/stock"))["available"] == 7
    api.ok(api.patch(merchant, "/v1/trade/items/sku-basket", {"active": True}))
    assert api.ok(api.get(buyer, "/v1/trade/items/sku-basket/stock"))["available"] == 7


def test_a_patch_keeps_its_idempotency_key_as_every_write_does(api: Api) -> None:
    """Found by a review: PATCH passed the Idempotency-Key by, so a key reused with another
    price was applied, and a late retry of the first undid a newer change."""
    merchant = api.merchant()
    api.item(merchant)
    path = "/v1/trade/items/sku-basket"
    key = api.headers(merchant, key="price-change-1")
    first = api.client.patch(path, json={"priceMinor": 40_000}, headers=key)
    assert first.status_code == 200, first.text
    other = api.client.patch(path, json={"priceMinor": 99_000}, headers=key)
    assert (other.status_code, other.json()["code"]) == (409, "duplicate_with_different_body")
    newer = api.headers(merchant, key="price-change-2")
    assert api.client.patch(path, json={"priceMinor": 41_000}, headers=newer).status_code == 200
    retry = api.client.patch(path, json={"priceMinor": 40_000}, headers=key)
    assert (retry.status_code, retry.headers.get("Idempotent-Replayed")) == (200, "true")
    assert retry.json() == first.json()  # the first answer, replayed: not applied again
    got = api.client.get(path, headers=api.headers(merchant)).json()
    assert got["price"]["minor"] == 41_000


def test_a_trade_principal_learns_nothing_of_the_directory_by_deleting(api: Api) -> None:
    """Found by a review: DELETE /v1/parties answered a buyer's token 403 "belongs to another
    participant" for a registered alias and 404 for an unregistered one."""
    merchant = api.merchant()
    for alias in ("RW-100200", "RW-999999"):  # registered, not registered
        r = api.client.delete(f"/v1/parties/BUSINESS/{alias}", headers=api.headers(merchant))
        assert (r.status_code, r.json()["detail"]) == (
            403,
            "the payment directory is for the scheme's participants",
        )
