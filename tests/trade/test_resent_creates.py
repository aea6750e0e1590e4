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
