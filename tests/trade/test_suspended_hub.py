"""A hub operator the scheme suspended acts for its hub no more: it onboards no merchant,
adds no warehouse, registers no buyer and reviews no merchant (found by a review: each was
done, as if the suspension stopped its payments only). What protects the buyers of orders
already paid stays open to it, as do its reads."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from entrepot.payments import SCHEME, EscrowState
from entrepot.payments.errors import ParticipantSuspended
from entrepot.trade import MerchantState, OrderState
from entrepot.trade import store as st
from entrepot.trade.errors import BuyerNotFound, MerchantNotFound, PaymentFailed
from tests.trade.network import Net

ONBOARD = ("m-umucyo", "Umucyo Ltd", "RW-300400", "BUSINESS", "RW-300400")


def _rows(net: Net, table: sa.Table) -> list[tuple[object, ...]]:
    with net.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.id))]


def test_a_suspended_hub_onboards_no_merchant_and_screens_nobody(net: Net) -> None:
    """Refused 409 participant_suspended before onboarding screening runs (it logs a
    sanctions decision for the hub), nothing written; a resend of an onboarding made before
    the suspension is answered with its merchant; resumed, the hub onboards again."""
    net.merchant()
    first = net.trade.get_merchant("hub-kigali", "m-inzozi")
    net.scheme.register_alias("mtn-rw", "BUSINESS", "RW-300400", "Umucyo Ltd", "RWF")
    screened: list[str] = []
    net.trade.onboarding_screening = lambda name, country: (screened.append(name), ("clear", ""))[1]
    net.scheme.set_active("hub-kigali", False, "licence under review")
    before = _rows(net, st.merchants)
    onboard = ("m-inzozi", "Inzozi Crafts Ltd", "RW-100200", "BUSINESS", "RW-100200")
    assert net.trade.onboard_merchant("hub-kigali", *onboard) == first  # a resend
    with pytest.raises(ParticipantSuspended, match="hub-kigali"):
        net.trade.onboard_merchant("hub-kigali", *ONBOARD)
    assert (_rows(net, st.merchants), screened) == (before, [])
    with pytest.raises(MerchantNotFound):
        net.trade.get_merchant("hub-kigali", "m-umucyo")
    net.scheme.set_active("hub-kigali", True)
    assert net.trade.onboard_merchant("hub-kigali", *ONBOARD).state is MerchantState.ACTIVE


def test_a_suspended_hub_adds_no_warehouse(net: Net) -> None:
    net.scheme.set_active("hub-kigali", False, "licence under review")
    before = _rows(net, st.warehouses)
    (kept,) = [w for w in net.trade.list_warehouses("kigali") if w.id == "kigali-fc1"]
    assert net.trade.add_warehouse("hub-kigali", kept.id, kept.name) == kept  # a resend
    with pytest.raises(ParticipantSuspended, match="hub-kigali"):
        net.trade.add_warehouse("hub-kigali", "kigali-fc2", "Second centre")
    assert _rows(net, st.warehouses) == before
    net.scheme.set_active("hub-kigali", True)
    assert net.trade.add_warehouse("hub-kigali", "kigali-fc2", "Second centre").hub_id == "kigali"


def test_a_suspended_hub_registers_no_buyer(net: Net) -> None:
    net.buyer()
    first = net.trade.get_buyer("hub-kuala-lumpur", "b-aisyah")
    net.scheme.register_alias("maybank-my", "MSISDN", "+60111111111", "b-two", "MYR")
    net.scheme.set_active("hub-kuala-lumpur", False, "licence under review")
    before = _rows(net, st.buyers)
    again = ("b-aisyah", "Buyer b-aisyah", "MSISDN", "+60123456789")
    assert net.trade.register_buyer("hub-kuala-lumpur", *again) == first  # a resend
    new = ("b-two", "Buyer two", "MSISDN", "+60111111111")
    with pytest.raises(ParticipantSuspended, match="hub-kuala-lumpur"):
        net.trade.register_buyer("hub-kuala-lumpur", *new)
    assert _rows(net, st.buyers) == before
    with pytest.raises(BuyerNotFound):
        net.trade.get_buyer("hub-kuala-lumpur", "b-two")
    net.scheme.set_active("hub-kuala-lumpur", True)
    assert net.trade.register_buyer("hub-kuala-lumpur", *new).hub_id == "kuala-lumpur"


@pytest.mark.parametrize("approve", [True, False])
def test_a_suspended_hub_reviews_no_merchant(net: Net, approve: bool) -> None:
    """A review clears a merchant to sell, or suspends it: the hub's compliance decision,
    which waits for its resumption (nothing sells through a suspended hub meanwhile: its
    escrows cannot be held for it). Refused 409 participant_suspended, nothing changed."""
    net.trade.onboarding_screening = lambda name, country: ("review", "name resembles an entry")
    net.merchant()
    net.scheme.set_active("hub-kigali", False, "licence under review")
    before = _rows(net, st.merchants)
    with pytest.raises(ParticipantSuspended, match="hub-kigali"):
        net.trade.review_merchant("hub-kigali", "m-inzozi", approve, "checked the director")
    assert _rows(net, st.merchants) == before
    net.scheme.set_active("hub-kigali", True)
    reviewed = net.trade.review_merchant("hub-kigali", "m-inzozi", approve, "checked")
    assert reviewed.state is (MerchantState.ACTIVE if approve else MerchantState.SUSPENDED)


def test_a_buyer_cancelling_at_a_suspended_hub_is_refunded(net: Net) -> None:
    """An order's escrows are decided as their controller, the hub; the scheme refused every
    decision of a suspended controller, so a buyer's cancel of an unshipped order failed
    (trade_payment_failed) and its money stayed held until the hub was resumed or the
    escrow's year-long backstop acted. A refund gives the payer back its own money: it goes."""
    merchant, buyer = net.merchant(), net.buyer()
    order = net.order(buyer, net.basket(merchant), 1)
    escrow = net.scheme.get_escrow(SCHEME, order.goods_escrow_id)
    net.scheme.set_active(escrow.controller, False, "licence under review")
    cancelled = net.trade.cancel(buyer, order.id, "changed my mind")
    assert cancelled.state is OrderState.CANCELLED
    assert net.position("maybank-my", "MYR") == 0  # every minor unit back at the buyer's wallet
    assert net.scheme.get_escrow(SCHEME, order.goods_escrow_id).state is EscrowState.CLOSED


def test_a_suspended_hubs_merchant_keeps_its_catalogue_and_sells_nothing(net: Net) -> None:
    """Listing, repricing, taking off sale and stocking are the merchant's own acts, not its
    hub operator's (what a suspension stops is what the suspended participant does), so they
    stay open; what stops the sale is checkout, which cannot hold an escrow for a suspended
    hub: 409 trade_payment_failed naming it, nothing reserved, held or recorded. Resumed, the
    same quote is paid."""
    merchant, buyer = net.merchant(), net.buyer()
    net.scheme.set_active("hub-kigali", False, "licence under review")
    sku = net.basket(merchant, on_hand=3)
    assert net.trade.update_item(merchant, sku, price_minor=46_000).price_minor == 46_000
    assert net.trade.update_item(merchant, sku, active=False).active is False
    assert net.trade.update_item(merchant, sku, active=True).active is True
    net.trade.quote(buyer, "q-1", [(sku, 1)])
    position = net.position("maybank-my", "MYR")
    with pytest.raises(PaymentFailed, match="hub-kigali"):
        net.trade.checkout(buyer, "o-1", "q-1")
    assert (net.position("maybank-my", "MYR"), net.trade.stock(sku)[0].reserved) == (position, 0)
    assert net.trade.list_orders(buyer) == []
    net.scheme.set_active("hub-kigali", True)
    assert net.trade.checkout(buyer, "o-1", "q-1").state is OrderState.PAID


def test_a_bank_suspended_while_its_merchant_is_screened_gets_no_merchant(net: Net) -> None:
    """Onboarding checked the settlement bank before screening and wrote the merchant after
    it, in its own transaction, without looking again: a bank the scheme suspended in
    between (screening takes a while: the OFAC lists) got a merchant onboarded to be paid at
    it, which receives no payout. It is looked at again where the merchant is written."""
    net.scheme.register_alias("mtn-rw", "BUSINESS", "RW-300400", "Umucyo Ltd", "RWF")

    def screening_meanwhile(name: str, country: str) -> tuple[str, str]:
        net.scheme.set_active("mtn-rw", False, "liquidity shortfall")
        return "clear", "no match"

    net.trade.onboarding_screening = screening_meanwhile
    before = _rows(net, st.merchants)
    with pytest.raises(ParticipantSuspended, match="receives no payout") as refused:
        net.trade.onboard_merchant("hub-kigali", *ONBOARD)
    assert refused.value.field == "settlementAlias"
    assert _rows(net, st.merchants) == before
