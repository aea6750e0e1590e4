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


def test_a_buyer_registered_again_once_its_alias_is_paid_in_another_currency_is_a_conflict(
    net: Net,
) -> None:
    """Found in review: the buyer's currency is its wallet alias's, yet a registration resent
    once the alias was registered again in another currency compared only the alias, and
    answered the buyer as it was, in the old currency, which its quotes then priced in. The
    request now names another buyer than the one made: trade_id_conflict, nothing written,
    as a merchant's onboarding resent once its alias's currency changed."""
    net.buyer()
    first = net.trade.get_buyer("hub-kuala-lumpur", "b-aisyah")
    again = ("hub-kuala-lumpur", "b-aisyah", "Buyer b-aisyah", "MSISDN", "+60123456789")
    assert net.trade.register_buyer(*again) == first
    net.scheme.add_currency("maybank-my", "USD")
    net.clock.advance(60)
    net.scheme.remove_alias("maybank-my", "MSISDN", "+60123456789")
    net.scheme.register_alias("maybank-my", "MSISDN", "+60123456789", "b-aisyah", "USD")
    with pytest.raises(IdConflict, match="buyer b-aisyah"):
        net.trade.register_buyer(*again)
    assert net.trade.get_buyer("hub-kuala-lumpur", "b-aisyah") == first
    assert first.currency == "MYR"
