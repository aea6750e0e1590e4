"""A hub's buyer pays from a partner wallet only once that wallet has consented: the hub chose
the alias, not the wallet's customer, and checkout takes the money from the wallet."""

from __future__ import annotations

import pytest

from entrepot.payments.errors import ParticipantSuspended
from entrepot.trade import WalletConsent
from entrepot.trade.errors import (
    Forbidden,
    InvalidTransition,
    QuoteNotFound,
    WalletConsentMissing,
)
from tests.trade.network import Net


def _register(net: Net, buyer_id: str = "b-aisyah", msisdn: str = "+60123456789") -> str:
    net.scheme.register_alias("maybank-my", "MSISDN", msisdn, buyer_id, "MYR")
    net.trade.register_buyer("hub-kuala-lumpur", buyer_id, "Aisyah binti Ali", "MSISDN", msisdn)
    return f"buyer:{buyer_id}"


def test_a_buyer_starts_without_its_wallets_consent(net: Net) -> None:
    buyer = _register(net)
    shown = net.trade.get_buyer("hub-kuala-lumpur", "b-aisyah")
    assert shown.wallet_consent is WalletConsent.PENDING
    assert shown.wallet_consent_at_ns is None
    assert buyer == "buyer:b-aisyah"


def test_checkout_without_consent_is_refused_and_changes_nothing(net: Net) -> None:
    net.merchant()
    sku = net.basket(on_hand=3)
    buyer = _register(net)
    net.trade.quote(buyer, "q-1", [(sku, 2)])
    before = net.position("maybank-my", "MYR")
    with pytest.raises(WalletConsentMissing) as refused:
        net.trade.checkout(buyer, "o-1", "q-1")
    assert refused.value.http_status == 403
    assert "maybank-my" in refused.value.detail
    assert net.position("maybank-my", "MYR") == before
    assert net.trade.stock(sku)[0].reserved == 0
    assert net.trade.list_orders(buyer) == []
    net.trade.grant_wallet_consent("maybank-my", "b-aisyah")
    order = net.trade.checkout(buyer, "o-1", "q-1")  # the same quote, once consented
    assert net.position("maybank-my", "MYR") == before - order.total_minor


def test_only_the_wallet_holding_the_alias_consents_or_revokes(net: Net) -> None:
    _register(net)
    for other in ("hub-kuala-lumpur", "mtn-rw", "buyer:b-aisyah", "scheme"):
        with pytest.raises(Forbidden):
            net.trade.grant_wallet_consent(other, "b-aisyah")
        with pytest.raises(Forbidden):
            net.trade.revoke_wallet_consent(other, "b-aisyah")
    assert net.trade.get_buyer("maybank-my", "b-aisyah").wallet_consent is WalletConsent.PENDING


def test_a_revoked_consent_stops_the_next_checkout_not_the_open_orders(net: Net) -> None:
    net.merchant()
    sku = net.basket(on_hand=5)
    buyer = _register(net)
    granted = net.trade.grant_wallet_consent("maybank-my", "b-aisyah")
    assert granted.wallet_consent is WalletConsent.GRANTED
    assert granted.wallet_consent_at_ns == net.clock.now_ns()
    assert net.trade.grant_wallet_consent("maybank-my", "b-aisyah") == granted  # again: as is
    first = net.order(buyer, sku, 1, "o-1")
    net.clock.advance(60)
    revoked = net.trade.revoke_wallet_consent("maybank-my", "b-aisyah")
    assert revoked.wallet_consent is WalletConsent.REVOKED
    assert revoked.wallet_consent_at_ns == net.clock.now_ns()
    net.trade.quote(buyer, "q-2", [(sku, 1)])
    with pytest.raises(WalletConsentMissing):
        net.trade.checkout(buyer, "o-2", "q-2")
    net.trade.cancel(
        buyer, first.id, "changed my mind"
    )  # the open order still refunds to the wallet
    net.trade.grant_wallet_consent("maybank-my", "b-aisyah")
    net.trade.checkout(buyer, "o-2", "q-2")


def test_a_wallet_lists_the_buyers_on_its_aliases(net: Net) -> None:
    _register(net, "b-1", "+60123450001")
    _register(net, "b-2", "+60123450002")
    net.trade.grant_wallet_consent("maybank-my", "b-2")
    assert [b.id for b in net.trade.list_buyers("maybank-my")] == ["b-1", "b-2"]
    pending = net.trade.list_buyers("maybank-my", wallet_consent=WalletConsent.PENDING)
    assert [b.id for b in pending] == ["b-1"]
    assert [b.id for b in net.trade.list_buyers("hub-kuala-lumpur")] == ["b-1", "b-2"]
    assert net.trade.list_buyers("mtn-rw") == []  # neither its hub's nor on its aliases
    with pytest.raises(Forbidden):
        net.trade.list_buyers("buyer:b-1")


@pytest.mark.parametrize("moved_to", [None, "tng-my"])
def test_a_consent_lapses_once_the_alias_leaves_that_wallet(net: Net, moved_to: str | None) -> None:
    """The consent is the wallet's for its customer behind the alias. Once the wallet gave the
    alias up (the customer left, or took the number to another wallet) checkout still took the
    money from it, on a consent for a customer it no longer has."""
    net.merchant()
    sku = net.basket(on_hand=3)
    buyer = _register(net)
    net.trade.grant_wallet_consent("maybank-my", "b-aisyah")
    net.scheme.remove_alias("maybank-my", "MSISDN", "+60123456789")
    if moved_to is not None:
        net.scheme.register_participant(moved_to, "Touch 'n Go", "wallet", "MY", ["MYR"])
        net.scheme.register_alias(moved_to, "MSISDN", "+60123456789", "Aisyah", "MYR")
    net.trade.quote(buyer, "q-1", [(sku, 1)])
    before = net.position("maybank-my", "MYR")
    with pytest.raises(WalletConsentMissing) as refused:
        net.trade.checkout(buyer, "o-1", "q-1")
    assert "maybank-my" in refused.value.detail and "+60123456789" in refused.value.detail
    assert "tng-my" not in refused.value.detail  # who holds the number now is not the buyer's
    assert net.position("maybank-my", "MYR") == before
    assert net.trade.stock(sku)[0].reserved == 0
    assert net.trade.list_orders(buyer) == []


def test_a_wallet_refused_a_buyer_is_told_the_buyer_is_not_its_own(net: Net) -> None:
    """A wallet that is no hub operator asking for another wallet's buyer was told it is not
    a hub operator, as if only hubs saw buyers; a wallet sees those paying from it."""
    _register(net)
    with pytest.raises(Forbidden) as refused:
        net.trade.get_buyer("mtn-rw", "b-aisyah")
    assert refused.value.detail == "buyer b-aisyah is not yours to see"


def test_a_consent_is_for_the_alias_as_registered_then_not_a_later_customers(net: Net) -> None:
    """A wallet that gave the number up and registered it again (for a new customer) kept
    the old consent: the new customer's wallet paid for the old buyer's orders."""
    net.merchant()
    sku = net.basket(on_hand=3)
    buyer = _register(net)
    net.trade.grant_wallet_consent("maybank-my", "b-aisyah")
    net.clock.advance(60)
    net.scheme.remove_alias("maybank-my", "MSISDN", "+60123456789")
    with pytest.raises(Forbidden, match="no longer holds"):  # nothing to consent for
        net.trade.grant_wallet_consent("maybank-my", "b-aisyah")
    net.clock.advance(60)
    net.scheme.register_alias("maybank-my", "MSISDN", "+60123456789", "Someone else", "MYR")
    net.trade.quote(buyer, "q-1", [(sku, 1)])
    with pytest.raises(WalletConsentMissing, match="registration is gone"):
        net.trade.checkout(buyer, "o-1", "q-1")
    again = net.trade.grant_wallet_consent("maybank-my", "b-aisyah")  # for the new registration
    assert again.wallet_consent_at_ns == net.clock.now_ns()
    net.trade.checkout(buyer, "o-1", "q-1")


def test_a_wallets_buyers_come_a_page_at_a_time(net: Net) -> None:
    for n in (1, 2, 3):
        _register(net, f"b-{n}", f"+6012345000{n}")
    first = net.trade.list_buyers("maybank-my", limit=2)
    assert [b.id for b in first] == ["b-1", "b-2"]
    rest = net.trade.list_buyers("maybank-my", limit=2, after=first[-1].id)
    assert [b.id for b in rest] == ["b-3"]


def test_a_suspended_wallet_grants_no_consent(net: Net) -> None:
    """A wallet the scheme suspended consented to pay for a buyer's orders (found by a
    review): a suspended participant acts no more, as a suspended hub operator does not.
    Refused 409 participant_suspended, naming it, nothing changed; a consent already in
    effect, asked for again, is answered as it is; a revocation, which stops payments, stays
    open to it; resumed, it consents."""
    _register(net)
    _register(net, "b-2", "+60123450002")
    granted = net.trade.grant_wallet_consent("maybank-my", "b-2")
    net.scheme.set_active("maybank-my", False, "licence under review")
    with pytest.raises(ParticipantSuspended, match="maybank-my") as refused:
        net.trade.grant_wallet_consent("maybank-my", "b-aisyah")
    assert refused.value.http_status == 409
    shown = net.trade.get_buyer("maybank-my", "b-aisyah")
    assert (shown.wallet_consent, shown.wallet_consent_at_ns) == (WalletConsent.PENDING, None)
    assert net.trade.grant_wallet_consent("maybank-my", "b-2") == granted  # as it is
    revoked = net.trade.revoke_wallet_consent("maybank-my", "b-2")
    assert revoked.wallet_consent is WalletConsent.REVOKED
    with pytest.raises(Forbidden):  # not its buyer: told so, suspended or not
        net.trade.grant_wallet_consent("mtn-rw", "b-aisyah")
    net.scheme.set_active("maybank-my", True)
    assert net.trade.grant_wallet_consent("maybank-my", "b-aisyah").wallet_consent is (
        WalletConsent.GRANTED
    )


def test_a_buyer_is_not_registered_at_a_suspended_wallet(net: Net) -> None:
    """A buyer whose wallet alias is at a participant the scheme suspended was registered
    (found by a review), as onboarding refuses a settlement alias at a suspended bank: it
    pays for no order until it is resumed. Refused 409 participant_suspended, field
    walletAlias, nothing written; a registration made before the suspension, resent, is
    answered with its buyer; resumed, the wallet's buyer is registered."""
    _register(net)
    first = net.trade.get_buyer("hub-kuala-lumpur", "b-aisyah")
    net.scheme.register_alias("maybank-my", "MSISDN", "+60111111111", "b-two", "MYR")
    net.scheme.set_active("maybank-my", False, "licence under review")
    before = net.trade.list_buyers("hub-kuala-lumpur")
    again = ("b-aisyah", "Aisyah binti Ali", "MSISDN", "+60123456789")
    assert net.trade.register_buyer("hub-kuala-lumpur", *again) == first  # a resend
    new = ("b-two", "Buyer two", "MSISDN", "+60111111111")
    with pytest.raises(ParticipantSuspended, match="maybank-my") as refused:
        net.trade.register_buyer("hub-kuala-lumpur", *new)
    assert (refused.value.http_status, refused.value.field) == (409, "walletAlias")
    assert net.trade.list_buyers("hub-kuala-lumpur") == before
    net.scheme.set_active("maybank-my", True)
    assert net.trade.register_buyer("hub-kuala-lumpur", *new).wallet_participant == "maybank-my"


def test_no_consent_for_an_alias_registered_again_in_another_currency(net: Net) -> None:
    """A buyer keeps the currency its alias was paid in when it was registered; its quotes
    price in it and its escrows take it from the wallet. The wallet registered the alias
    again in another currency (its customer's account now USD), consented again, and the
    next checkout took MYR from it for a customer paid in USD. Refused (409
    trade_invalid_transition, naming both currencies), nothing changed: the hub registers a
    buyer for the alias as it is now."""
    buyer = _register(net)
    net.trade.grant_wallet_consent("maybank-my", "b-aisyah")
    net.clock.advance(60)
    net.scheme.add_currency("maybank-my", "USD")
    net.scheme.remove_alias("maybank-my", "MSISDN", "+60123456789")
    net.scheme.register_alias("maybank-my", "MSISDN", "+60123456789", "Aisyah", "USD")
    before = net.trade.get_buyer("maybank-my", "b-aisyah")
    with pytest.raises(InvalidTransition, match="MYR") as refused:
        net.trade.grant_wallet_consent("maybank-my", "b-aisyah")
    assert "USD" in refused.value.detail and refused.value.http_status == 409
    assert net.trade.get_buyer("maybank-my", "b-aisyah") == before
    assert net.trade.list_orders(buyer) == []


def test_no_quote_for_a_buyer_whose_alias_is_now_paid_in_another_currency(net: Net) -> None:
    """The buyer's quote priced in the currency its alias was paid in when it was registered:
    once its wallet registered the alias again in another, it was quoted in one it no longer
    pays in, a quote no checkout could pay (the consent lapsed and cannot be given again).
    Refused (409 trade_invalid_transition, naming both currencies), nothing kept; a quote
    made before is not paid either."""
    net.merchant()
    sku = net.basket(on_hand=3)
    buyer = _register(net)
    net.trade.grant_wallet_consent("maybank-my", "b-aisyah")
    net.trade.quote(buyer, "q-1", [(sku, 1)])
    net.clock.advance(60)
    net.scheme.add_currency("maybank-my", "USD")
    net.scheme.remove_alias("maybank-my", "MSISDN", "+60123456789")
    net.scheme.register_alias("maybank-my", "MSISDN", "+60123456789", "Aisyah", "USD")
    with pytest.raises(InvalidTransition, match="MYR") as refused:
        net.trade.quote(buyer, "q-2", [(sku, 1)])
    assert "USD" in refused.value.detail and refused.value.http_status == 409
    with pytest.raises(QuoteNotFound):
        net.trade.get_quote(buyer, "q-2")
    position = net.position("maybank-my", "MYR")
    with pytest.raises(WalletConsentMissing):
        net.trade.checkout(buyer, "o-1", "q-1")
    assert net.position("maybank-my", "MYR") == position
    assert net.trade.list_orders(buyer) == []
