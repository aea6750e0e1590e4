"""A resent create is answered by its id (ADR 0009) without doing its work again: a merchant
is not screened again, a quote not priced again (nor its rate read), nothing is written."""

from __future__ import annotations

import pytest

from entrepot.trade.errors import IdConflict
from tests.trade.network import Net


def test_a_resent_onboarding_is_not_screened_again(net: Net) -> None:
    screened: list[str] = []

    def screen(name: str, country: str) -> tuple[str, str]:
        screened.append(name)
        return "review", "a person looks"

    net.trade.onboarding_screening = screen
    net.merchant()
    first = net.trade.get_merchant("hub-kigali", "m-inzozi")
    again = net.trade.onboard_merchant(
        "hub-kigali", "m-inzozi", "Inzozi Crafts Ltd", "RW-100200", "BUSINESS", "RW-100200"
    )
    assert (again, screened) == (first, ["Inzozi Crafts Ltd"])
    with pytest.raises(IdConflict):
        net.trade.onboard_merchant(
            "hub-kigali", "m-inzozi", "Other Crafts Ltd", "RW-100200", "BUSINESS", "RW-100200"
        )
    assert screened == ["Inzozi Crafts Ltd"]
    assert net.trade.get_merchant("hub-kigali", "m-inzozi") == first


def test_a_resent_quote_is_the_first_one_even_once_rates_moved(net: Net) -> None:
    merchant, buyer = net.merchant(), net.buyer()
    sku = net.basket(merchant)
    first = net.trade.quote(buyer, "q-1", [(sku, 2)])
    net.advance_days(0.5)  # later: a new pricing would read another time (and rates)
    assert net.trade.quote(buyer, "q-1", [(sku, 2)]) == first
    with pytest.raises(IdConflict):
        net.trade.quote(buyer, "q-1", [(sku, 3)])
    with pytest.raises(IdConflict):
        net.trade.quote(buyer, "q-1", [(sku, 2)], ttl_s=600)
    other = net.buyer("b-other", msisdn="+60123000000")
    with pytest.raises(IdConflict):
        net.trade.quote(other, "q-1", [(sku, 2)])
    assert net.trade.get_quote(buyer, "q-1") == first


def test_a_resent_consolidation_naming_its_parcels_in_another_order_is_the_same_step(
    net: Net,
) -> None:
    # a consignment is a set of parcels (each named once): a client that lost the answer and
    # rebuilds the list from a set must be told the step was done, not that its id is taken
    merchant = net.merchant()
    sku = net.basket(merchant)
    buyers = [net.buyer(), net.buyer("b-2", msisdn="+60123456780")]
    for n, b in enumerate(buyers):
        net.order(b, sku, 1, order_id=f"o-{n}")
        for code in ("EMA", "EMB", "EXA", "EXC"):
            net.trade.track("hub-kigali", f"o-{n}", code)
    first = net.trade.consolidate("hub-kigali", "c-1", ["o-0", "o-1"], "EXD")
    again = net.trade.consolidate("hub-kigali", "c-1", ["o-1", "o-0"], "EXD")
    assert again == [first[1], first[0]]  # in the order asked, as the first was
    assert [len(net.trade.tracking(b, f"o-{n}")["events"]) for n, b in enumerate(buyers)] == [
        5,
        5,
    ]
    with pytest.raises(IdConflict):
        net.trade.consolidate("hub-kigali", "c-1", ["o-1"], "EXD")
