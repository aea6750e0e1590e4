"""The trade part of ``entrepot demo``: the six-hub network with small businesses at the eHubs
and the export hub, buyers in every hub country, and N simulated days of cross-border and
domestic orders through the trade service: landed-cost quotes, checkout into escrow, parcels
handed over and tracked hub to hub with customs clearance, cancellations, returns, disputes
negotiated, settled, ruled and appealed, every deadline acting by itself, merchants paid out;
then a settlement window closes and settles.

Seeded randomness and the injected FakeClock drive everything: the same seed gives the same
report. Steps are scheduled at simulated times and run in time order; ``process_deadlines``
runs at every simulated hour, FX rates are re-posted every simulated day."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass

from entrepot.kernel.clock import FakeClock
from entrepot.kernel.errors import DomainError
from entrepot.payments import SCHEME, PaymentScheme
from entrepot.sim.trade_catalogue import BUYERS, MERCHANTS, BuyerSpec, MerchantSpec
from entrepot.sim.trade_network import HUBS, build_trade_network, hub_participant, post_rates
from entrepot.sim.trade_report import Tally, TradeDemoReport, build_report
from entrepot.trade import Dispute, DisputeState, Order, OrderState, TradeNetwork
from entrepot.trade.errors import QuoteExpired
from entrepot.trade.model import HOUR_NS
from entrepot.trade.services import ORIGIN_CODES

DAYS_DEFAULT = 21
ORDERS_PER_DAY_DEFAULT = 24
SEED_DEFAULT = 7
DAY_HOURS = 24
Progress = Callable[[int, int], None]

COUNTRY = {h.id: h.country for h in HUBS}
HUB_CURRENCY = {h.id: h.currency for h in HUBS}
#: Hours from a tracking event to the parcel's next one (uniform between the two). From
#: presented to import customs (EDB) to released (EDC): the declaration lane's estimate.
LEG_HOURS: dict[str, tuple[float, float]] = {
    "EMA": (2, 8),  # collected at the eHub -> at the export hub
    "EMB": (1, 4),  # -> presented to export customs
    "EXA": (1, 6),  # -> released by export customs
    "EXB": (8, 30),  # held by export customs -> released
    "EXC": (2, 12),  # -> consolidated for line-haul
    "EXD": (1, 12),  # -> departs
    "EMC": (24, 72),  # line-haul -> at the destination's import hub
    "EMD": (1, 4),  # -> held for customs
    "EDA": (1, 6),  # -> presented to import customs
    "EDC": (2, 12),  # released -> leaves the import hub
    "EMF": (4, 24),  # -> at the delivery office
    "EMG": (1, 10),  # -> delivered, or a failed attempt
    "EMH": (20, 28),  # failed attempt -> the next day's attempt
}
CROSS_BORDER_NEXT = {
    "EMA": "EMB",
    "EMB": "EXA",
    "EXB": "EXC",
    "EXC": "EXD",
    "EXD": "EMC",
    "EMC": "EMD",
    "EMD": "EDA",
    "EDA": "EDB",
    "EDB": "EDC",
    "EDC": "EMF",
    "EMF": "EMG",
}
DOMESTIC_HOURS = (10, 36)  # hand-over to the delivery office, same country
CROSS_BORDER_SHARE = 0.75
DISPUTE_OUTCOMES = {  # arbitrators' rulings by reason: release, refund, split
    "not_received": (0.1, 0.7, 0.2),
    "not_as_described": (0.35, 0.35, 0.3),
}


def populate_network(scheme: PaymentScheme, trade: TradeNetwork) -> dict[str, int]:
    """The six hubs (reusing payment members already on the database), the catalogue's
    merchants onboarded at their hubs with their items stocked in the hub's fulfilment
    centre, and the buyers registered at their hubs; returns what it made."""
    build_trade_network(scheme, trade)
    for m in MERCHANTS:
        currency = HUB_CURRENCY[m.hub]
        scheme.register_alias(m.partner, "BUSINESS", m.registration, m.legal_name, currency)
        trade.onboard_merchant(
            hub_participant(m.hub), m.id, m.legal_name, m.registration, "BUSINESS", m.registration
        )
        for it in m.items:
            trade.add_item(
                f"merchant:{m.id}",
                it.sku,
                it.title,
                it.hs_code,
                COUNTRY[m.hub],
                weight_g=it.weight_g,
                dimensions_mm=it.dimensions_mm,
                price_minor=it.price_minor(currency),
                currency=currency,
            )
            trade.set_stock(f"merchant:{m.id}", it.sku, f"{m.hub}-fc1", it.stock)
    for b in BUYERS:
        scheme.register_alias(b.partner, "MSISDN", b.msisdn, b.name, HUB_CURRENCY[b.hub])
        trade.register_buyer(hub_participant(b.hub), b.id, b.name, "MSISDN", b.msisdn)
        trade.grant_wallet_consent(b.partner, b.id)  # the wallet's mandate for its customer
    return {
        "hubs": len(HUBS),
        "merchants": len(MERCHANTS),
        "items": sum(len(m.items) for m in MERCHANTS),
        "buyers": len(BUYERS),
    }


@dataclass
class _Plan:
    """What will happen to one order, drawn when it is paid."""

    order: Order
    buyer: BuyerSpec
    merchant: MerchantSpec
    domestic: bool
    lost: bool  # lost in line-haul: the buyer disputes 'not received'
    export_hold: bool
    failed_attempt: bool  # the first delivery attempt fails (EMH)
    after: str  # confirm, silent, return, dispute
    next_code: str = "EMA"


class _TradeSim:
    def __init__(
        self,
        trade: TradeNetwork,
        clock: FakeClock,
        rnd: random.Random,
        orders_per_day: int,
    ) -> None:
        self.trade = trade
        self.scheme: PaymentScheme = trade.scheme
        self.clock = clock
        self.rnd = rnd
        self.orders_per_day = orders_per_day
        self.tally = Tally()
        self.queue: list[tuple[int, int, str, str]] = []
        self.seq = 0
        self.baskets: dict[str, tuple[BuyerSpec, MerchantSpec, list[tuple[str, int]]]] = {}
        self.plans: dict[str, _Plan] = {}
        self.dispute_plans: dict[str, _Plan] = {}
        self.desk_seen: set[tuple[str, str, str]] = set()
        self.desk_dirty = False
        self.steps: dict[str, Callable[[str], None]] = {
            "shop": self._shop,
            "checkout": self._checkout,
            "cancel": self._cancel,
            "track": self._track,
            "confirm": self._confirm,
            "request_return": self._request_return,
            "accept_return": lambda k: self._answer_return(k, True),
            "refuse_return": lambda k: self._answer_return(k, False),
            "open_dispute": self._open_dispute,
            "merchant_evidence": self._merchant_evidence,
            "merchant_offer": self._merchant_offer,
            "accept_offer": self._accept_offer,
            "escalate": self._escalate,
            "rule": self._rule,
            "appeal": self._appeal,
        }

    # ------------------------------------------------------------------ scheduling
    def at(self, hours: float, step: str, key: str) -> None:
        self.seq += 1
        when = self.clock.now_ns() + int(hours * HOUR_NS)
        heapq.heappush(self.queue, (when, self.seq, step, key))

    def within(self, low_h: float, high_h: float, step: str, key: str) -> None:
        self.at(self.rnd.uniform(low_h, high_h), step, key)

    def run_until(self, limit_ns: int) -> None:
        while self.queue and self.queue[0][0] < limit_ns:
            when, _, step, key = heapq.heappop(self.queue)
            self.clock.set_ns(max(self.clock.now_ns(), when))
            self.tally.steps += 1
            try:
                self.steps[step](key)
            except DomainError as exc:  # a scripted step the service refused: reported
                self.tally.refused[f"{step}: {exc.code}"] += 1

    # ------------------------------------------------------------------ each day, each hour
    def new_day(self, day: int) -> None:
        post_rates(self.scheme)
        self.watch_stock(restock=True)
        spread = max(1, self.orders_per_day // 5)
        arrivals = max(0, round(self.rnd.gauss(self.orders_per_day, spread)))
        for n in range(arrivals):
            self.within(0, DAY_HOURS, "shop", f"{day:03d}{n:03d}")

    def watch_stock(self, *, restock: bool) -> None:
        """Sample every stock level (never negative, never more reserved than on hand);
        a merchant with fewer than 10 available restocks its opening quantity."""
        watch = self.tally.stock
        watch.samples += 1
        watch.rows = 0
        for m in MERCHANTS:
            for it in m.items:
                for level in self.trade.stock(it.sku):
                    watch.rows += 1
                    if level.on_hand < 0 or not 0 <= level.reserved <= level.on_hand:
                        watch.violations.append(
                            f"{it.sku}: {level.on_hand} on hand, {level.reserved} reserved"
                        )
                    low = watch.lowest_available
                    watch.lowest_available = (
                        level.available if low is None else min(low, level.available)
                    )
                    if restock and level.available < 10:
                        self.trade.set_stock(
                            f"merchant:{m.id}",
                            it.sku,
                            level.warehouse_id,
                            level.on_hand + it.stock,
                        )
                        self.tally.activity["restocks"] += 1

    def deadlines(self) -> None:
        counts = self.trade.process_deadlines()
        self.tally.deadlines.update(counts)
        if counts.get("disputes_escalated") or counts.get("disputes_reassigned"):
            self.desk_dirty = True
        if self.desk_dirty:
            self.arbitrators_desk()

    def arbitrators_desk(self) -> None:
        """Each hub's arbitrators pick up new cases (and appeals) from their queues; now and
        then one lets the ruling deadline pass and the case moves to the next arbitrator."""
        self.desk_dirty = False
        for hub in sorted({m.hub for m in MERCHANTS}):
            for state in (DisputeState.ARBITRATION, DisputeState.APPEAL):
                for d in self.trade.list_disputes(hub_participant(hub), state.value):
                    judge = d.appeal_arbitrator if state is DisputeState.APPEAL else d.arbitrator
                    assert judge is not None
                    seen = (d.id, judge, state.value)
                    if seen in self.desk_seen:
                        continue
                    self.desk_seen.add(seen)
                    if self.rnd.random() < 0.05:
                        self.tally.activity["rulings left past their deadline"] += 1
                        continue
                    self.within(6, 96, "rule", f"{d.id}|{judge}")

    # ------------------------------------------------------------------ buying
    def _shop(self, key: str) -> None:
        """A buyer picks a merchant (abroad, three times in four), one or two of its items,
        and asks for the landed cost; most check out within minutes, a few let the quote
        expire first, a few walk away."""
        rnd = self.rnd
        buyer = rnd.choice(BUYERS)
        abroad = rnd.random() < CROSS_BORDER_SHARE
        merchant = rnd.choice(
            [m for m in MERCHANTS if (COUNTRY[m.hub] != COUNTRY[buyer.hub]) == abroad]
        )
        count = 2 if len(merchant.items) > 1 and rnd.random() < 0.25 else 1
        lines = [
            (it.sku, rnd.choice((1, 1, 1, 2, 2, 3))) for it in rnd.sample(merchant.items, count)
        ]
        try:
            self.trade.quote(f"buyer:{buyer.id}", f"q{key}", lines)
            self.tally.activity["quotes"] += 1
        except DomainError as exc:
            self.tally.rejected[f"quote: {exc.code}"] += 1
            return
        self.baskets[key] = (buyer, merchant, lines)
        r = rnd.random()
        if r < 0.015:
            self.tally.activity["quotes abandoned"] += 1
        elif r < 0.04:
            self.within(16 / 60, 40 / 60, "checkout", key)
        else:
            self.within(0.5 / 60, 8 / 60, "checkout", key)

    def _checkout(self, key: str) -> None:
        buyer, merchant, lines = self.baskets.pop(key)
        caller = f"buyer:{buyer.id}"
        try:
            try:
                order = self.trade.checkout(caller, f"o{key}", f"q{key}")
            except QuoteExpired:
                self.tally.activity["quotes expired before checkout"] += 1
                self.trade.quote(caller, f"q{key}r", lines)
                self.tally.activity["quotes"] += 1
                order = self.trade.checkout(caller, f"o{key}", f"q{key}r")
        except DomainError as exc:
            self.tally.rejected[f"checkout: {exc.code}"] += 1
            return
        self.tally.orders[order.id] = buyer.id
        self._plan(order, buyer, merchant)

    def _plan(self, order: Order, buyer: BuyerSpec, merchant: MerchantSpec) -> None:
        rnd = self.rnd
        domestic = COUNTRY[merchant.hub] == COUNTRY[buyer.hub]
        r = rnd.random()
        after = "confirm" if r < 0.35 else "return" if r < 0.40 else "dispute" if r < 0.50 else ""
        plan = _Plan(
            order,
            buyer,
            merchant,
            domestic,
            lost=not domestic and rnd.random() < 0.03,
            export_hold=rnd.random() < 0.1,
            failed_attempt=rnd.random() < 0.08,
            after=after or "silent",
        )
        self.plans[order.id] = plan
        fate = rnd.random()
        if fate < 0.04:
            self.within(0.5, 20, "cancel", order.id)
        elif fate < 0.06:
            self.tally.activity["orders never handed over"] += (
                1  # the hand-over deadline cancels it
            )
        else:
            self.within(2, 48, "track", order.id)

    def _state(self, plan: _Plan) -> OrderState:
        return self.trade.get_order(f"buyer:{plan.buyer.id}", plan.order.id).state

    def _cancel(self, order_id: str) -> None:
        plan = self.plans[order_id]
        if self._state(plan) is OrderState.PAID:
            self.trade.cancel(f"buyer:{plan.buyer.id}", order_id, "ordered the wrong size")
            self.tally.activity["cancelled by the buyer"] += 1

    # ------------------------------------------------------------------ the parcel's way
    def _track(self, order_id: str) -> None:
        plan = self.plans[order_id]
        code = plan.next_code
        origin = code in ORIGIN_CODES
        hub = plan.merchant.hub if origin else plan.buyer.hub
        self.trade.track(hub_participant(hub), order_id, code)
        self.tally.activity["tracking events"] += 1
        nxt = self._next_code(plan, code)
        if nxt is None:
            if code == "EMI":
                self._after_delivery(plan)
            else:  # lost in line-haul: the buyer waits, then disputes
                self.within(6 * DAY_HOURS, 10 * DAY_HOURS, "open_dispute", order_id)
            return
        plan.next_code = nxt
        if code == "EDB":  # released when customs has cleared it: the declaration's lane
            clearance = self.trade.tracking(hub_participant(hub), order_id)["clearance"]
            assert isinstance(clearance, dict)
            hours = clearance["estimated_hours"] * self.rnd.uniform(0.6, 1.5)
            self.at(hours, "track", order_id)
        elif plan.domestic and code == "EMA":
            self.within(*DOMESTIC_HOURS, "track", order_id)
        else:
            self.within(*LEG_HOURS[code], "track", order_id)

    def _next_code(self, plan: _Plan, code: str) -> str | None:
        if code == "EMI" or (code == "EMC" and plan.lost):
            return None
        if code == "EMG":
            return "EMH" if plan.failed_attempt else "EMI"
        if code == "EMH":
            return "EMI"
        if plan.domestic:
            return "EMG"
        if code == "EXA":
            return "EXB" if plan.export_hold else "EXC"
        return CROSS_BORDER_NEXT[code]

    def _after_delivery(self, plan: _Plan) -> None:
        if plan.after == "confirm":
            self.within(1, 72, "confirm", plan.order.id)
        elif plan.after == "return":
            self.within(12, 4 * DAY_HOURS, "request_return", plan.order.id)
        elif plan.after == "dispute":
            self.within(6, 3 * DAY_HOURS, "open_dispute", plan.order.id)

    def _confirm(self, order_id: str) -> None:
        plan = self.plans[order_id]
        if self._state(plan) is OrderState.DELIVERED:
            self.trade.confirm_receipt(f"buyer:{plan.buyer.id}", order_id)
            self.tally.activity["receipts confirmed"] += 1

    # ------------------------------------------------------------------ returns
    def _request_return(self, order_id: str) -> None:
        plan = self.plans[order_id]
        if self._state(plan) is not OrderState.DELIVERED:
            return
        self.trade.request_return(f"buyer:{plan.buyer.id}", order_id, "does not fit; unworn")
        self.tally.activity["returns requested"] += 1
        r = self.rnd.random()
        if r < 0.6:
            self.within(4, 48, "accept_return", order_id)
        elif r < 0.85:
            self.within(4, 48, "refuse_return", order_id)
        # else silence: the return is accepted when its answer deadline passes

    def _answer_return(self, order_id: str, accept: bool) -> None:
        plan = self.plans[order_id]
        if self._state(plan) is not OrderState.RETURN_REQUESTED:
            return
        note = "refund once the parcel is back" if accept else "worn: no return"
        self.trade.answer_return(f"merchant:{plan.merchant.id}", order_id, accept, note)
        self.tally.activity["returns accepted" if accept else "returns refused"] += 1
        if not accept and self.rnd.random() < 0.5:
            self.within(24, 72, "open_dispute", order_id)

    # ------------------------------------------------------------------ disputes
    def _dispute(self, dispute_id: str) -> tuple[_Plan, Dispute]:
        plan = self.dispute_plans[dispute_id]
        return plan, self.trade.get_dispute(hub_participant(plan.merchant.hub), dispute_id)

    def _open_dispute(self, order_id: str) -> None:
        """Not received while the parcel is lost on its way; not as described after
        delivery. The merchant answers with evidence, or stays silent (the buyer is then
        refunded when the answer deadline passes)."""
        plan = self.plans[order_id]
        state = self._state(plan)
        reasons = {OrderState.SHIPPED: "not_received", OrderState.DELIVERED: "not_as_described"}
        if state not in reasons:
            return
        reason = reasons[state]
        dispute_id = f"d{order_id}"
        self.trade.open_dispute(
            f"buyer:{plan.buyer.id}", dispute_id, order_id, reason, CLAIMS[reason]
        )
        self.tally.disputes[dispute_id] = order_id
        self.tally.activity["disputes opened"] += 1
        self.dispute_plans[dispute_id] = plan
        if self.rnd.random() < 0.9:
            self.within(2, 40, "merchant_evidence", dispute_id)

    def _merchant_evidence(self, dispute_id: str) -> None:
        plan, d = self._dispute(dispute_id)
        if d.state is not DisputeState.NEGOTIATION:
            return
        text = EVIDENCE[d.reason.value]
        self.trade.add_evidence(f"merchant:{plan.merchant.id}", dispute_id, text)
        self.tally.activity["evidence given"] += 1
        r = self.rnd.random()
        if r < 0.55:
            self.within(2, 24, "merchant_offer", dispute_id)
        elif r < 0.9:
            self.within(24, 72, "escalate", dispute_id)
        # else neither side moves: negotiation time runs out and the case goes to arbitration

    def _merchant_offer(self, dispute_id: str) -> None:
        plan, d = self._dispute(dispute_id)
        if d.state is not DisputeState.NEGOTIATION:
            return
        held = plan.order.goods_escrow_minor
        if d.reason.value == "not_received":
            share = self.rnd.choice((1.0, 1.0, 0.8, 0.6))
        else:
            share = self.rnd.uniform(0.2, 0.6)
        refund = min(held, int(held * share))
        self.trade.offer_settlement(f"merchant:{plan.merchant.id}", dispute_id, refund)
        self.tally.activity["settlements offered"] += 1
        if self.rnd.random() < 0.8:
            self.within(1, 30, "accept_offer", dispute_id)
        else:
            self.within(12, 48, "escalate", dispute_id)

    def _accept_offer(self, dispute_id: str) -> None:
        plan, d = self._dispute(dispute_id)
        if d.state is DisputeState.NEGOTIATION and d.offer_refund_minor is not None:
            buyer = f"buyer:{plan.buyer.id}"
            self.trade.accept_settlement(buyer, dispute_id, d.offer_refund_minor)
            self.tally.activity["settlements accepted"] += 1

    def _escalate(self, dispute_id: str) -> None:
        plan, d = self._dispute(dispute_id)
        if d.state is not DisputeState.NEGOTIATION:
            return
        side = f"buyer:{plan.buyer.id}"
        if self.rnd.random() < 0.3:
            side = f"merchant:{plan.merchant.id}"
        self.trade.escalate(side, dispute_id)
        self.tally.activity["escalated by a party"] += 1
        self.desk_dirty = True

    def _rule(self, key: str) -> None:
        """The arbitrator on the case rules: release, refund or a split, weighted by the
        reason; the side that lost sometimes appeals."""
        dispute_id, judge = key.split("|")
        plan, d = self._dispute(dispute_id)
        if d.state not in (DisputeState.ARBITRATION, DisputeState.APPEAL):
            return
        if judge != (d.appeal_arbitrator if d.state is DisputeState.APPEAL else d.arbitrator):
            return  # the case moved to another arbitrator
        held = plan.order.goods_escrow_minor
        weights = DISPUTE_OUTCOMES[d.reason.value]
        outcome = self.rnd.choices(("release", "refund", "split"), weights)[0]
        refund = 0
        if outcome == "split":
            refund = min(held - 1, max(1, int(held * self.rnd.uniform(0.25, 0.75))))
            outcome = "split" if 0 < refund < held else "refund"
        self.trade.rule(f"arbitrator:{judge}", dispute_id, outcome, refund, RULINGS[outcome])
        self.tally.activity[f"rulings: {outcome}"] += 1
        if d.state is DisputeState.ARBITRATION and self.rnd.random() < 0.3:
            loser = {"release": "buyer", "refund": "merchant"}.get(outcome)
            side = loser or self.rnd.choice(("buyer", "merchant"))
            self.within(12, 96, "appeal", f"{dispute_id}|{side}")

    def _appeal(self, key: str) -> None:
        dispute_id, side = key.split("|")
        plan, d = self._dispute(dispute_id)
        if d.state is not DisputeState.RULED:
            return
        who = plan.buyer.id if side == "buyer" else plan.merchant.id
        self.trade.appeal(f"{side}:{who}", dispute_id, APPEAL_GROUNDS[side])
        self.tally.activity[f"appeals by the {side}"] += 1
        self.desk_dirty = True


CLAIMS = {
    "not_received": "Tracking stopped after line-haul departure two weeks ago; nothing arrived.",
    "not_as_described": "The item differs from the listing photos and description.",
}
EVIDENCE = {
    "not_received": "Hand-over receipt and line-haul manifest; the parcel is insured.",
    "not_as_described": "Photos of the item packed at dispatch, matching the listing.",
}
RULINGS = {
    "release": "The evidence shows the goods as listed were delivered.",
    "refund": "The merchant has not shown delivery of goods as described.",
    "split": "Partly as described: the buyer is refunded in part.",
}
APPEAL_GROUNDS = {
    "buyer": "The ruling ignored the photos of the goods as received.",
    "merchant": "The ruling ignored the dispatch photos and the carrier's records.",
}


def run_trade_demo(
    scheme: PaymentScheme,
    trade: TradeNetwork,
    clock: FakeClock,
    *,
    days: int = DAYS_DEFAULT,
    orders_per_day: int = ORDERS_PER_DAY_DEFAULT,
    seed: int = SEED_DEFAULT,
    progress: Progress | None = None,
) -> TradeDemoReport:
    """Build the network (reusing payment members already on the database), simulate
    ``days`` days of trade hour by hour, settle a window and report. ``progress`` is told
    ``(hours done, hours in all)``."""
    if trade.scheme is not scheme or trade.clock is not clock:
        raise ValueError("the trade network must run on this scheme and this clock")
    sim = _TradeSim(trade, clock, random.Random(seed), orders_per_day)
    network = populate_network(scheme, trade)
    started = clock.now_ns()
    hours = days * DAY_HOURS
    for hour in range(hours):
        clock.set_ns(max(clock.now_ns(), started + hour * HOUR_NS))
        if hour % DAY_HOURS == 0:
            sim.new_day(hour // DAY_HOURS)
        sim.deadlines()
        sim.run_until(started + (hour + 1) * HOUR_NS)
        if progress is not None:
            progress(hour + 1, hours)
    clock.set_ns(max(clock.now_ns(), started + hours * HOUR_NS))
    post_rates(scheme)
    sim.deadlines()
    sim.watch_stock(restock=False)
    window = scheme.close_window(SCHEME)
    window = scheme.settle_window(SCHEME, window.id)
    return build_report(
        trade,
        sim.tally,
        window,
        seed=seed,
        days=days,
        started_ns=started,
        finished_ns=clock.now_ns(),
        network=network,
    )
