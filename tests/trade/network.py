"""The seed's six-hub network on a fresh database, plus builders for merchants, buyers, items
and orders (the happy path a test departs from)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from entrepot.kernel.clock import FakeClock
from entrepot.ledger import Ledger
from entrepot.payments import SCHEME, PaymentScheme
from entrepot.sim.trade_network import build_trade_network, freight_card, post_rates
from entrepot.trade import Order, TradeNetwork

START_NS = 1_796_083_200 * 10**9  # 2026-12-01T00:00Z
DAY_S = 86_400
ORIGIN = ("EMA", "EMB", "EXA", "EXC", "EXD", "EMC")
DESTINATION = ("EMD", "EDA", "EDB", "EDC", "EMF", "EMG", "EMI")


@dataclass
class Net:
    engine: sa.Engine
    clock: FakeClock
    scheme: PaymentScheme
    trade: TradeNetwork

    def position(self, participant: str, currency: str) -> int:
        """The participant's multilateral net position: what it is owed (positive) or owes
        since the last settlement (its position account less the cap granted to it)."""
        return self.scheme.liquidity(participant, currency)["net_position_minor"]

    def advance_days(self, days: float) -> None:
        self.clock.advance(days * DAY_S)
        post_rates(self.scheme)  # the FX provider's rates are valid for a day

    def musanze_hub(self, *, dftz: bool) -> None:
        """A second Rwandan hub, Musanze (warehouse ``musanze-fc1``), inside the Digital Free
        Trade Zone or outside it as ``dftz`` says."""
        currencies = self.scheme.get_participant("hub-kigali").currencies
        self.scheme.register_participant("hub-musanze", "Musanze eHub", "hub", "RW", currencies)
        self.trade.create_hub(
            SCHEME,
            "musanze",
            "Musanze eHub",
            "ehub",
            "RW",
            "RWF",
            "hub-musanze",
            arbitrators=["arb-musanze-1", "arb-musanze-2"],
            customs_authority="customs-rw",
            partners=["mtn-rw"],
            dftz=dftz,
            freight=freight_card("RWF"),
        )
        self.trade.add_warehouse("hub-musanze", "musanze-fc1", "Musanze fulfilment centre")

    def merchant(
        self,
        merchant_id: str = "m-inzozi",
        hub: str = "kigali",
        participant: str = "mtn-rw",
        reg: str = "RW-100200",
        name: str = "Inzozi Crafts Ltd",
        currency: str = "RWF",
    ) -> str:
        self.scheme.register_alias(participant, "BUSINESS", reg, name, currency)
        self.trade.onboard_merchant(f"hub-{hub}", merchant_id, name, reg, "BUSINESS", reg)
        return f"merchant:{merchant_id}"

    def buyer(
        self,
        buyer_id: str = "b-aisyah",
        hub: str = "kuala-lumpur",
        participant: str = "maybank-my",
        msisdn: str = "+60123456789",
        currency: str = "MYR",
    ) -> str:
        self.scheme.register_alias(participant, "MSISDN", msisdn, buyer_id, currency)
        self.trade.register_buyer(f"hub-{hub}", buyer_id, f"Buyer {buyer_id}", "MSISDN", msisdn)
        self.trade.grant_wallet_consent(participant, buyer_id)
        return f"buyer:{buyer_id}"

    def basket(
        self,
        merchant: str = "merchant:m-inzozi",
        on_hand: int = 10,
        sku: str = "sku-basket",
        title: str = "Woven agaseke basket",
    ) -> str:
        self.trade.add_item(
            merchant,
            sku,
            title,
            "460219",
            "RW",
            weight_g=800,
            dimensions_mm=(300, 300, 250),
            price_minor=45_000,
            currency="RWF",
        )
        self.trade.set_stock(merchant, sku, "kigali-fc1", on_hand)
        return sku

    def order(self, buyer: str, sku: str, qty: int, order_id: str = "o-1") -> Order:
        self.trade.quote(buyer, f"q-{order_id}", [(sku, qty)])
        return self.trade.checkout(buyer, order_id, f"q-{order_id}")

    def ship(self, order_id: str, origin: str = "kigali", dest: str = "kuala-lumpur") -> None:
        for code in ORIGIN:
            self.trade.track(f"hub-{origin}", order_id, code)
        for code in DESTINATION:
            self.trade.track(f"hub-{dest}", order_id, code)


def build_net(engine: sa.Engine) -> Net:
    clock = FakeClock(START_NS)
    scheme = PaymentScheme(engine, Ledger(engine, clock), clock)
    trade = TradeNetwork(engine, scheme, clock)
    build_trade_network(scheme, trade)
    return Net(engine, clock, scheme, trade)
