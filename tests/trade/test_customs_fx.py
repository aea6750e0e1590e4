"""A buyer paying in another currency than customs': a Kuala Lumpur buyer whose wallet pays in
EUR buys two Kigali baskets. Customs in Malaysia values in MYR, at the scheme's EUR->MYR rate
read once at the quote and recorded with it and the declaration; the destination hub pays
customs in MYR at clearance. The engine, given no rate, refused such a buyer at the quote
(customs_missing_fx_rate)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, ROUND_UP, Decimal

import pytest

from entrepot.kernel.clock import NS_PER_S, FakeClock
from entrepot.payments.model import SCHEME_AMOUNT_MAX
from entrepot.sim.payments_demo import FX_PROVIDER
from entrepot.trade.errors import InvalidTradeInput, PaymentFailed, QuoteNotFound
from tests.trade.network import DESTINATION, ORIGIN, Net

# Independent arithmetic (not the service's code). The FX provider posts USD_VALUE ratios to
# 8 places with a 40 bps spread: EUR->RWF 1.08 / 0.00072 = 1500, EUR->MYR 1.08 / 0.22.
EUR_RWF = Decimal(1500) * Decimal("0.996")
EUR_MYR = Decimal("4.90909091")  # posted: what customs values at
EUR_MYR_SOLD = EUR_MYR * Decimal("0.996")  # less the spread: what the hub buys MYR at


def eur_for_rwf(rwf: int) -> int:
    return int((Decimal(rwf) / EUR_RWF).quantize(Decimal("0.01"), rounding=ROUND_UP) * 100)


def myr(eur_cents: int) -> int:
    return int((Decimal(eur_cents) * EUR_MYR).quantize(Decimal(1), rounding=ROUND_HALF_UP))


GOODS_EUR = eur_for_rwf(90_000)
FREIGHT_EUR = eur_for_rwf(11_111 + 9 * 8_333)
INSURANCE_EUR = (GOODS_EUR + 50) // 100
CIF_MYR = myr(GOODS_EUR) + myr(FREIGHT_EUR) + myr(INSURANCE_EUR)
# goods under RM500: duty relief; low-value goods tax 10% of CIF (DFTZ, duty 0 anyway)
TAX_MYR = (CIF_MYR + 5) // 10
TAX_EUR = int(
    (Decimal(TAX_MYR) / 100 / EUR_MYR_SOLD).quantize(Decimal("0.01"), rounding=ROUND_UP) * 100
)


def eur_buyer(net: Net, buyer_id: str = "b-eur", msisdn: str = "+60111111111") -> str:
    """A Maybank customer in Kuala Lumpur whose account is in EUR."""
    if "EUR" not in net.scheme.get_participant("maybank-my").currencies:
        net.scheme.add_currency("maybank-my", "EUR")
        net.scheme.deposit("maybank-my", "EUR", 10**9, "fund-maybank-eur")
        net.scheme.set_net_debit_cap("maybank-my", "EUR", 10**8)
    return net.buyer(buyer_id, msisdn=msisdn, currency="EUR")


def test_a_buyer_paying_in_eur_is_quoted_with_customs_valuing_in_myr(net: Net) -> None:
    assert (GOODS_EUR, FREIGHT_EUR, INSURANCE_EUR) == (6_025, 5_764, 60)
    assert (CIF_MYR, TAX_MYR, TAX_EUR) == (58_168, 5_817, 1_190)
    sku = net.basket(net.merchant())
    buyer = eur_buyer(net)
    q = net.trade.quote(buyer, "q-1", [(sku, 2)])
    assert q.currency == "EUR"
    assert (q.goods_minor, q.freight_minor, q.insurance_minor) == (6_025, 5_764, 60)
    assert (q.duty_minor, q.excise_minor, q.vat_minor, q.customs_fees_minor) == (0, 0, 1_190, 0)
    assert q.total_minor == 6_025 + 5_764 + 60 + 1_190
    fx = q.customs_fx
    assert fx is not None
    assert (fx.currency, fx.rate, fx.provider_id, fx.spread_bps) == (
        "MYR",
        EUR_MYR,
        FX_PROVIDER,
        40,
    )
    assert (fx.freight_minor, fx.insurance_minor) == (myr(5_764), myr(60))
    assert (fx.customs_value_minor, fx.vat_minor, fx.taxes_minor) == (58_168, 5_817, 5_817)
    assert fx.read_at_ns == q.created_at_ns
    # kept with the quote, as it was computed
    assert net.trade.get_quote(buyer, "q-1") == q


class _Ticking(FakeClock):
    """A clock that moves a millisecond each time it is read."""

    def now_ns(self) -> int:
        self.advance(ns=1_000_000)
        return super().now_ns()


def test_a_quote_reads_the_clock_once_for_its_time_tariff_day_and_rate(net: Net) -> None:
    # A second's reading could fall after midnight: the quote dated one day and valued at
    # the next day's tariffs, which the declaration (dated from the quote) would not use.
    sku = net.basket(net.merchant())
    buyer = eur_buyer(net)
    net.trade.clock = _Ticking(net.clock.now_ns())
    q = net.trade.quote(buyer, "q-1", [(sku, 2)])
    assert q.customs_fx is not None
    assert q.customs_fx.read_at_ns == q.created_at_ns == q.expires_at_ns - 15 * 60 * NS_PER_S


def test_checkout_and_declaration_use_the_quoted_rate_and_customs_is_paid_in_myr(net: Net) -> None:
    sku = net.basket(net.merchant())
    buyer = eur_buyer(net)
    net.scheme.deposit("hub-kuala-lumpur", "MYR", 10**9, "fund-hub-kl-myr")
    net.scheme.set_net_debit_cap("hub-kuala-lumpur", "MYR", 10**8)
    q = net.trade.quote(buyer, "q-1", [(sku, 2)])
    order = net.trade.checkout(buyer, "o-1", "q-1")
    assert (order.currency, order.goods_escrow_minor, order.tax_escrow_minor) == (
        "EUR",
        11_849,
        1_190,
    )
    assert net.position("maybank-my", "EUR") == -q.total_minor
    # The rate moves (EUR 10% dearer) before the parcel reaches customs: the declaration is
    # still valued at the rate the order was quoted at, never at the rate of the day.
    net.clock.advance(3_600)
    net.scheme.post_fx_rate(FX_PROVIDER, "EUR", "MYR", Decimal("5.4"), 40, 86_400)
    for code in ORIGIN:
        net.trade.track("hub-kigali", "o-1", code)
    for code in DESTINATION[:3]:  # EMD EDA EDB: the declaration is lodged
        net.trade.track("hub-kuala-lumpur", "o-1", code)
    d = net.trade.declaration(buyer, "o-1")
    assert d is not None
    assert (d["currency"], d["customs_value_minor"], d["vat_minor"]) == ("MYR", 58_168, 5_817)
    assert (d["duty_minor"], d["total_taxes_minor"]) == (0, 5_817)
    assert d["fx_rates"] == [
        {
            "currency": "EUR",
            "rate": "4.90909091",
            "source": "scheme rate EUR->MYR posted by fx-global, read at "
            "2026-12-01T00:00:00Z for the quote",
        }
    ]
    assert d["landed_cost"]["freight_minor"] == myr(5_764)
    assert d["landed_cost"]["fx_rates"] == d["fx_rates"]
    # EDC: the taxes escrow (EUR) goes to the destination hub, which pays customs in MYR
    net.trade.track("hub-kuala-lumpur", "o-1", "EDC")
    assert net.position("customs-my", "MYR") == 5_817
    assert net.position("hub-kuala-lumpur", "MYR") == -5_817
    assert net.position("hub-kuala-lumpur", "EUR") == 1_190
    cleared = [e for e in net.trade.order_events(buyer, "o-1") if e["kind"] == "import_cleared"]
    assert len(cleared) == 1
    assert (cleared[0]["taxes_minor"], cleared[0]["customs_minor"]) == (1_190, 5_817)
    assert cleared[0]["customs_currency"] == "MYR"


def test_clearance_without_the_hubs_myr_is_refused_and_changes_nothing(net: Net) -> None:
    sku = net.basket(net.merchant())
    buyer = eur_buyer(net)
    net.order(buyer, sku, 2)
    for code in ORIGIN:
        net.trade.track("hub-kigali", "o-1", code)
    for code in DESTINATION[:3]:
        net.trade.track("hub-kuala-lumpur", "o-1", code)
    events = net.trade.order_events(buyer, "o-1")
    with pytest.raises(PaymentFailed, match="hub-kuala-lumpur pays MY customs 5817 MYR"):
        net.trade.track("hub-kuala-lumpur", "o-1", "EDC")  # no MYR to pay customs from
    assert net.trade.order_events(buyer, "o-1") == events
    assert net.trade.tracking(buyer, "o-1")["events"][-1]["code"] == "EDB"
    assert net.position("customs-my", "MYR") == 0
    assert net.position("hub-kuala-lumpur", "EUR") == 0
    tax_escrow = net.trade.get_order(buyer, "o-1").tax_escrow_id
    assert tax_escrow is not None
    assert net.scheme.get_escrow("hub-kigali", tax_escrow).held_minor == 1_190


def test_no_rate_to_customs_currency_is_a_clear_refusal_that_records_nothing(net: Net) -> None:
    sku = net.basket(net.merchant())
    buyer = eur_buyer(net)
    # the provider's EUR->MYR rate lapses; EUR->RWF (the goods) is still quoted
    net.scheme.post_fx_rate(FX_PROVIDER, "EUR", "MYR", EUR_MYR, 40, 1)
    net.clock.advance(2)
    with pytest.raises(PaymentFailed, match="customs in MY values in MYR") as err:
        net.trade.quote(buyer, "q-1", [(sku, 2)])
    assert err.value.field == "currency"
    with pytest.raises(QuoteNotFound):
        net.trade.get_quote(buyer, "q-1")


def test_a_buyer_paying_in_customs_currency_records_no_rate(net: Net) -> None:
    sku = net.basket(net.merchant())
    q = net.trade.quote(net.buyer(), "q-1", [(sku, 2)])
    assert q.customs_fx is None and q.currency == "MYR"


def test_a_quote_whose_customs_taxes_exceed_the_schemes_largest_amount_is_refused(
    net: Net,
) -> None:
    """The quote checked its total in the buyer's and the merchant's currency only. Customs'
    figures, in its currency at the recorded rate, could pass the scheme's largest amount
    while both were under it: the order was taken, its escrows held, and EDC could never be
    recorded (the destination hub's payment to customs is over the scheme's maximum, refused
    each time). Refused at the quote, as an amount too large in the buyer's currency is."""
    merchant = net.merchant()
    net.trade.add_item(
        merchant,
        "sku-gold",
        "Gold-plated agaseke basket",
        "460219",
        "RW",
        weight_g=800,
        dimensions_mm=(300, 300, 250),
        price_minor=10**14,  # RWF: 10^14 francs, under the scheme's largest amount
        currency="RWF",
    )
    net.trade.set_stock(merchant, "sku-gold", "kigali-fc1", 10)
    buyer = eur_buyer(net)
    # EUR dear against MYR: the order is ~7.5 * 10^12 EUR cents (and 10^14 RWF), but customs'
    # tax, 10% of a CIF value of ~2 * 10^16 sen, is ~2 * 10^15 sen
    net.scheme.post_fx_rate(FX_PROVIDER, "EUR", "MYR", Decimal(3_000), 40, 86_400)
    with pytest.raises(InvalidTradeInput, match="largest amount") as err:
        net.trade.quote(buyer, "q-1", [("sku-gold", 1)])
    assert err.value.field == "lines"
    with pytest.raises(QuoteNotFound):
        net.trade.get_quote(buyer, "q-1")
    # at a rate where customs' taxes fit, the same order is quoted
    net.scheme.post_fx_rate(FX_PROVIDER, "EUR", "MYR", EUR_MYR, 40, 86_400)
    q = net.trade.quote(buyer, "q-2", [("sku-gold", 1)])
    assert q.customs_fx is not None and 0 < q.customs_fx.taxes_minor <= SCHEME_AMOUNT_MAX
