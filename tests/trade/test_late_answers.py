"""A passed clock decides, even before the deadline pass acts on it: the merchant's answer
after its time (a dispute's 3 days, a return's 3 days) is refused and changes nothing, so the
buyer's due refund cannot be taken back by a late answer while the pass could not pay it (a
suspended wallet) or had not run yet."""

from __future__ import annotations

import pytest

from entrepot.kernel.clock import FakeClock
from entrepot.trade import DisputeState, Order, OrderState
from entrepot.trade.errors import WindowClosed
from tests.trade.network import DAY_S, DESTINATION, ORIGIN, Net


def _delivered(net: Net) -> tuple[str, str]:
    merchant, buyer = net.merchant(), net.buyer()
    net.order(buyer, net.basket(merchant), 1)
    net.ship("o-1")
    return merchant, buyer


@pytest.mark.parametrize("answer", ["evidence", "offer", "escalate"])
def test_a_merchant_answering_a_dispute_after_its_three_days_is_refused(
    net: Net, answer: str
) -> None:
    merchant, buyer = _delivered(net)
    net.trade.open_dispute(buyer, "d-1", "o-1", "not_as_described", "torn")
    net.scheme.set_active("maybank-my", False)  # the refund due cannot be paid for now
    net.advance_days(3)
    for _ in range(3):  # each pass fails again; the dispute's log says so once
        assert net.trade.process_deadlines()["disputes_failed"] == 1
    kinds = [e["kind"] for e in net.trade.dispute_events(buyer, "d-1")]
    assert kinds.count("deadline_failed") == 1
    with pytest.raises(WindowClosed):
        if answer == "evidence":
            net.trade.add_evidence(merchant, "d-1", "packed intact")
        elif answer == "offer":
            net.trade.offer_settlement(merchant, "d-1", 0)
        else:
            net.trade.escalate(merchant, "d-1")
    net.scheme.set_active("maybank-my", True)
    assert net.trade.process_deadlines()["disputes_unanswered"] == 1
    assert net.trade.get_dispute(buyer, "d-1").state is DisputeState.RESOLVED
    order = net.trade.get_order(buyer, "o-1")
    assert order.state is OrderState.REFUNDED
    escrow = net.scheme.get_escrow("hub-kigali", order.goods_escrow_id)
    assert (escrow.released_minor, escrow.refunded_minor) == (0, order.goods_escrow_minor)


def test_a_merchant_accepting_the_buyers_offer_after_its_three_days_is_refused(
    net: Net,
) -> None:
    """Found by a review: evidence, an offer and escalation were refused after the merchant's
    3 days, but accepting the buyer's offer of a half refund was not, and took back the
    full refund the buyer was owed by then."""
    merchant, buyer = _delivered(net)
    order = net.trade.get_order(buyer, "o-1")
    net.trade.open_dispute(buyer, "d-1", "o-1", "not_as_described", "torn")
    net.trade.offer_settlement(buyer, "d-1", order.goods_escrow_minor // 2)
    net.advance_days(3)
    with pytest.raises(WindowClosed):
        net.trade.accept_settlement(merchant, "d-1")
    assert net.trade.get_dispute(buyer, "d-1").state is DisputeState.NEGOTIATION
    assert net.trade.process_deadlines()["disputes_unanswered"] == 1
    escrow = net.scheme.get_escrow("hub-kigali", order.goods_escrow_id)
    assert escrow.refunded_minor == order.goods_escrow_minor


def test_a_buyer_may_still_add_evidence_after_the_merchants_three_days(net: Net) -> None:
    _, buyer = _delivered(net)
    net.trade.open_dispute(buyer, "d-1", "o-1", "not_as_described", "torn")
    net.advance_days(3)
    net.trade.add_evidence(buyer, "d-1", "photo P-2")
    assert net.trade.process_deadlines()["disputes_unanswered"] == 1


def test_a_return_refused_after_the_merchants_three_days_is_refused(net: Net) -> None:
    merchant, buyer = _delivered(net)
    net.trade.request_return(buyer, "o-1", "too small")
    net.scheme.set_active("maybank-my", False)
    net.advance_days(3)
    assert net.trade.process_deadlines()["failed"] == 1
    with pytest.raises(WindowClosed):
        net.trade.answer_return(merchant, "o-1", False, "no")
    assert net.trade.get_order(buyer, "o-1").state is OrderState.RETURN_REQUESTED
    net.scheme.set_active("maybank-my", True)
    assert net.trade.process_deadlines()["returns_accepted"] == 1
    assert net.trade.get_order(buyer, "o-1").state is OrderState.REFUNDED


def test_a_late_acceptance_of_a_return_is_what_silence_decides(net: Net) -> None:
    merchant, buyer = _delivered(net)
    net.trade.request_return(buyer, "o-1", "too small")
    net.advance_days(3)
    order = net.trade.answer_return(merchant, "o-1", True, "fine")
    assert order.state is OrderState.REFUNDED


def test_a_refused_return_leaves_the_window_running_from_delivery(net: Net) -> None:
    merchant, buyer = _delivered(net)  # delivered now: the window closes 7 days on
    closes = net.clock.now_ns() + 7 * DAY_S * 10**9
    net.advance_days(5)
    net.trade.request_return(buyer, "o-1", "too small")
    net.advance_days(1)
    order = net.trade.answer_return(merchant, "o-1", False, "it was as described")
    assert (order.state, order.release_at_ns) == (OrderState.DELIVERED, closes)
    net.clock.set_ns(closes)  # the window from delivery has closed: the refusal did not restart it
    with pytest.raises(WindowClosed):
        net.trade.open_dispute(buyer, "d-1", "o-1", "not_as_described", "torn")
    assert net.trade.list_disputes(buyer) == []
    assert net.trade.get_order(buyer, "o-1").state is OrderState.DELIVERED
    assert net.trade.process_deadlines()["released"] == 1
    assert net.trade.get_order(buyer, "o-1").state is OrderState.COMPLETED


class _Ticking(FakeClock):
    """A clock that moves a nanosecond at each reading, as a real one does between reads."""

    def now_ns(self) -> int:
        self._now_ns += 1
        return self._now_ns


def test_a_refused_return_puts_the_window_back_to_the_nanosecond_delivery_set(
    net: Net,
) -> None:
    merchant, buyer = net.merchant(), net.buyer()
    net.order(buyer, net.basket(merchant), 1)
    for code in ORIGIN:
        net.trade.track("hub-kigali", "o-1", code)
    for code in DESTINATION[:-1]:
        net.trade.track("hub-kuala-lumpur", "o-1", code)
    net.trade.clock = _Ticking(net.clock.now_ns())  # the delivery's clock reads differ
    net.trade.track("hub-kuala-lumpur", "o-1", "EMI")
    net.trade.clock = net.clock
    closes = net.trade.get_order(buyer, "o-1").release_at_ns
    net.advance_days(1)
    net.trade.request_return(buyer, "o-1", "too small")
    order = net.trade.answer_return(merchant, "o-1", False, "it was as described")
    assert order.release_at_ns == closes  # not a nanosecond later


def test_a_buyer_may_dispute_a_refused_return_until_the_window_from_delivery_closes(
    net: Net,
) -> None:
    merchant, buyer = _delivered(net)
    closes = net.clock.now_ns() + 7 * DAY_S * 10**9
    net.advance_days(1)
    net.trade.request_return(buyer, "o-1", "too small")
    net.trade.answer_return(merchant, "o-1", False, "no")
    net.clock.set_ns(closes - 1)
    d = net.trade.open_dispute(buyer, "d-1", "o-1", "not_as_described", "torn")
    assert d.state is DisputeState.NEGOTIATION


def test_a_hub_may_record_hand_over_until_the_ship_by_deadline(net: Net) -> None:
    merchant, buyer = net.merchant(), net.buyer()
    order = net.order(buyer, net.basket(merchant), 1)
    net.clock.set_ns(order.ship_by_ns - 1)
    net.trade.track("hub-kigali", "o-1", "EMA")  # in time, to the nanosecond
    assert net.trade.get_order(buyer, "o-1").state is OrderState.SHIPPED


def test_a_hand_over_at_the_ship_by_deadline_is_refused_and_changes_nothing(net: Net) -> None:
    merchant, buyer = net.merchant(), net.buyer()
    order = net.order(buyer, net.basket(merchant), 1)
    stock = net.trade.stock("sku-basket")
    net.clock.set_ns(order.ship_by_ns)  # the deadline pass has not run
    with pytest.raises(WindowClosed):
        net.trade.track("hub-kigali", "o-1", "EMA")
    assert net.trade.tracking(buyer, "o-1")["events"] == []
    assert net.trade.get_order(buyer, "o-1").state is OrderState.PAID
    assert net.trade.stock("sku-basket") == stock
    assert net.trade.process_deadlines()["cancelled"] == 1
    assert net.trade.get_order(buyer, "o-1").state is OrderState.CANCELLED


def _in_arbitration(net: Net) -> tuple[str, str, str]:
    merchant, buyer = _delivered(net)
    net.trade.open_dispute(buyer, "d-1", "o-1", "not_as_described", "torn")
    d = net.trade.escalate(buyer, "d-1")
    assert d.arbitrator is not None and d.rule_by_ns is not None
    return merchant, buyer, f"arbitrator:{d.arbitrator}"


def test_an_arbitrator_may_rule_until_its_deadline(net: Net) -> None:
    _, buyer, arbitrator = _in_arbitration(net)
    rule_by = net.trade.get_dispute(buyer, "d-1").rule_by_ns
    assert rule_by is not None
    net.clock.set_ns(rule_by - 1)
    d = net.trade.rule(arbitrator, "d-1", "refund", 0, "not as described")
    assert d.state is DisputeState.RULED


def test_a_ruling_at_the_ruling_deadline_is_refused_and_changes_nothing(net: Net) -> None:
    _, buyer, arbitrator = _in_arbitration(net)
    before = net.trade.get_dispute(buyer, "d-1")
    events = net.trade.dispute_events(buyer, "d-1")
    assert before.rule_by_ns is not None
    net.clock.set_ns(before.rule_by_ns)  # the deadline pass has not handed it on yet
    with pytest.raises(WindowClosed):
        net.trade.rule(arbitrator, "d-1", "refund", 0, "not as described")
    assert net.trade.get_dispute(buyer, "d-1") == before
    assert net.trade.dispute_events(buyer, "d-1") == events
    assert net.trade.process_deadlines()["disputes_reassigned"] == 1
    assert net.trade.get_dispute(buyer, "d-1").arbitrator != before.arbitrator


def _at_the_door(net: Net) -> tuple[str, Order]:
    """Shipped and out for delivery: every event but EMI recorded."""
    merchant, buyer = net.merchant(), net.buyer()
    net.order(buyer, net.basket(merchant), 1)
    for code in ORIGIN:
        net.trade.track("hub-kigali", "o-1", code)
    for code in DESTINATION[:-1]:
        net.trade.track("hub-kuala-lumpur", "o-1", code)
    order = net.trade.get_order(buyer, "o-1")
    assert order.state is OrderState.SHIPPED
    return buyer, order


def test_a_hub_may_record_delivery_until_the_delivery_deadline(net: Net) -> None:
    buyer, order = _at_the_door(net)
    net.clock.set_ns(order.deliver_by_ns - 1)
    net.trade.track("hub-kuala-lumpur", "o-1", "EMI")  # in time, to the nanosecond
    assert net.trade.get_order(buyer, "o-1").state is OrderState.DELIVERED


@pytest.mark.parametrize("wallet_suspended", [False, True])
def test_a_delivery_at_the_delivery_deadline_is_refused_and_changes_nothing(
    net: Net, wallet_suspended: bool
) -> None:
    buyer, order = _at_the_door(net)
    events = net.trade.tracking(buyer, "o-1")["events"]
    net.clock.set_ns(order.deliver_by_ns)
    if wallet_suspended:  # the refund due cannot be paid for now
        net.scheme.set_active("maybank-my", False)
        assert net.trade.process_deadlines()["failed"] == 1
    with pytest.raises(WindowClosed):
        net.trade.track("hub-kuala-lumpur", "o-1", "EMI")
    assert net.trade.tracking(buyer, "o-1")["events"] == events
    assert net.trade.get_order(buyer, "o-1").state is OrderState.SHIPPED
    net.scheme.set_active("maybank-my", True)
    assert net.trade.process_deadlines()["refunded"] == 1
    order = net.trade.get_order(buyer, "o-1")
    assert order.state is OrderState.REFUNDED
    escrow = net.scheme.get_escrow("hub-kigali", order.goods_escrow_id)
    assert (escrow.released_minor, escrow.refunded_minor) == (0, order.goods_escrow_minor)


def test_a_not_received_dispute_at_the_delivery_deadline_is_refused_and_the_refund_stands(
    net: Net,
) -> None:
    """Found by a review: a buyer with no parcel disputing it after the delivery deadline,
    before the pass had refunded it, took the order out of SHIPPED: the pass's refund no
    longer applied, a late delivery scan was accepted, and the merchant could be paid in full.
    Refused (the refund is due without a dispute), nothing changed; the pass refunds."""
    buyer, order = _at_the_door(net)
    net.clock.set_ns(order.deliver_by_ns)  # the deadline pass has not run
    with pytest.raises(WindowClosed, match="refunded without a dispute"):
        net.trade.open_dispute(buyer, "d-1", "o-1", "not_received", "no parcel")
    assert net.trade.list_disputes(buyer) == []
    assert net.trade.get_order(buyer, "o-1").state is OrderState.SHIPPED
    assert net.trade.process_deadlines()["refunded"] == 1
    order = net.trade.get_order(buyer, "o-1")
    escrow = net.scheme.get_escrow("hub-kigali", order.goods_escrow_id)
    assert (escrow.released_minor, escrow.refunded_minor) == (0, order.goods_escrow_minor)


def test_a_not_received_dispute_just_before_the_delivery_deadline_is_opened(net: Net) -> None:
    buyer, order = _at_the_door(net)
    net.clock.set_ns(order.deliver_by_ns - 1)
    d = net.trade.open_dispute(buyer, "d-1", "o-1", "not_received", "no parcel")
    assert d.state is DisputeState.NEGOTIATION


def test_a_pending_return_does_not_stretch_the_dispute_window(net: Net) -> None:
    """Found by a review: while a return was asked for, the order's release time held the
    merchant's 3 days to answer it, and a dispute was let in up to 3 days after the window
    from delivery had closed. The window runs from delivery, return or not."""
    _merchant, buyer = _delivered(net)
    closes = net.clock.now_ns() + 7 * DAY_S * 10**9
    net.clock.set_ns(closes - DAY_S * 10**9 // 10)  # day 6.9
    net.trade.request_return(buyer, "o-1", "too small")
    net.clock.set_ns(closes - 1)
    before = net.trade.get_order(buyer, "o-1")
    net.clock.set_ns(closes)
    with pytest.raises(WindowClosed):
        net.trade.open_dispute(buyer, "d-1", "o-1", "not_as_described", "torn")
    assert net.trade.list_disputes(buyer) == []
    assert net.trade.get_order(buyer, "o-1") == before
    assert before.state is OrderState.RETURN_REQUESTED


def test_a_dispute_after_a_return_accepted_by_silence_is_refused_and_the_refund_stands(
    net: Net,
) -> None:
    """Found by a review: past the merchant's 3 days to answer a return (its silence accepts
    it), a dispute opened before the pass ran took the order out of RETURN_REQUESTED and the
    pass's refund no longer applied. Refused, nothing changed; the pass refunds."""
    _merchant, buyer = _delivered(net)
    net.advance_days(1)
    net.trade.request_return(buyer, "o-1", "too small")
    answer_by = net.trade.get_order(buyer, "o-1").release_at_ns
    assert answer_by is not None
    net.clock.set_ns(answer_by - 1)
    before = net.trade.get_order(buyer, "o-1")
    net.clock.set_ns(answer_by)  # day 4: inside the 7 days from delivery
    with pytest.raises(WindowClosed, match="accepted and refunded without a dispute"):
        net.trade.open_dispute(buyer, "d-1", "o-1", "not_as_described", "torn")
    assert net.trade.list_disputes(buyer) == []
    assert net.trade.get_order(buyer, "o-1") == before
    assert net.trade.process_deadlines()["returns_accepted"] == 1
    assert net.trade.get_order(buyer, "o-1").state is OrderState.REFUNDED


def test_a_dispute_opened_during_a_return_in_the_window_is_opened(net: Net) -> None:
    _merchant, buyer = _delivered(net)
    closes = net.clock.now_ns() + 7 * DAY_S * 10**9
    net.advance_days(6)
    net.trade.request_return(buyer, "o-1", "too small")
    net.clock.set_ns(closes - 1)
    d = net.trade.open_dispute(buyer, "d-1", "o-1", "not_as_described", "torn")
    assert d.state is DisputeState.NEGOTIATION


@pytest.mark.parametrize("step", ["offer", "accept"])
def test_a_settlement_after_the_negotiation_clock_is_refused(net: Net, step: str) -> None:
    """Found by a review: an offer accepted after the 10 days of negotiation settled the
    escrow when the deadline pass had not run yet, and was refused when it had. The clock
    decides: refused, nothing changed, and the pass takes the case to arbitration."""
    merchant, buyer = _delivered(net)
    order = net.trade.get_order(buyer, "o-1")
    net.trade.open_dispute(buyer, "d-1", "o-1", "not_as_described", "torn")
    net.trade.offer_settlement(merchant, "d-1", order.goods_escrow_minor // 2)
    d = net.trade.get_dispute(buyer, "d-1")
    net.clock.set_ns(d.negotiate_until_ns)
    with pytest.raises(WindowClosed, match="goes to arbitration"):
        if step == "offer":
            net.trade.offer_settlement(buyer, "d-1", order.goods_escrow_minor)
        else:
            net.trade.accept_settlement(buyer, "d-1")
    assert net.trade.get_dispute(buyer, "d-1") == d
    assert net.trade.process_deadlines()["disputes_escalated"] == 1
    assert net.trade.get_dispute(buyer, "d-1").state is DisputeState.ARBITRATION


def test_only_the_assigned_arbitrator_learns_a_disputes_stage_from_a_ruling(net: Net) -> None:
    """Found by a review: a ruling asked of a case in negotiation told any caller its stage
    (409); anyone but the assigned arbitrator is refused (403) first, as a read is."""
    from entrepot.trade.errors import Forbidden

    merchant, buyer = _delivered(net)
    net.trade.open_dispute(buyer, "d-1", "o-1", "not_as_described", "torn")
    for caller in ("buyer:b-2", "arbitrator:arb-liege-1", "hub-liege", merchant):
        with pytest.raises(Forbidden):
            net.trade.rule(caller, "d-1", "refund", 0, "mine")
