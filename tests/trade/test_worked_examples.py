"""The three worked examples of domain/trade.md, exact to the minor unit."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from entrepot.trade.customs import comprehensive_rate, landed_cost
from tests.trade.helpers import line

ON = date(2025, 6, 1)


def test_netherlands_inr_example_cif_duty_8_vat_21() -> None:
    # Goods INR 70,000 (FOB, leather footwear at 8%), freight INR 6,792; EUR at 90 INR only
    # matters for the EUR 150 de-minimis test.
    cost = landed_cost(
        "NL",
        [line("6403.99", 7_000_000, "INR", origin="IN")],
        freight_minor=679_200,
        insurance_minor=0,
        incoterm="FOB",
        on=ON,
        currency="INR",
        fx_rates={"EUR": Decimal("90")},
    )
    assert cost.valuation_basis == "CIF"
    assert cost.customs_value_minor == 7_679_200
    assert cost.duty_minor == 614_336  # 6,143.36
    assert cost.vat_base_minor == 8_293_536  # 82,935.36
    assert cost.vat_minor == 1_741_643  # 17,416.4256 -> 17,416.43 half up
    assert cost.total_minor == 7_000_000 + 679_200 + 614_336 + 1_741_643
    assert cost.low_value[0].applied is False
    assert cost.low_value[0].threshold_in_currency_minor == 1_350_000


def test_netherlands_example_with_cif_invoice_gives_the_same_taxes() -> None:
    cost = landed_cost(
        "NL",
        [line("640399", 7_679_200, "INR", origin="IN")],
        freight_minor=679_200,
        insurance_minor=0,
        incoterm="CIF",
        on=ON,
        currency="INR",
        fx_rates={"EUR": Decimal("90")},
    )
    assert (cost.goods_minor, cost.duty_minor, cost.vat_minor) == (7_000_000, 614_336, 1_741_643)


def test_australia_value_of_taxable_importation_and_gst() -> None:
    cost = landed_cost(
        "AU",
        [line("610910", 120_000, "AUD")],
        freight_minor=12_000,
        insurance_minor=3_000,
        incoterm="FOB",
        on=ON,
        currency="AUD",
    )
    assert cost.valuation_basis == "FOB"
    assert cost.customs_value_minor == 120_000
    assert cost.duty_minor == 6_000  # 5% of A$1,200
    assert cost.vat_base_minor == 141_000  # VoTI = 1,200 + 60 + 150
    assert cost.vat_minor == 14_100  # GST 10% = 141
    assert [(f.name, f.amount_minor) for f in cost.fees] == [("Import Processing Charge", 8_800)]
    assert cost.total_minor == 120_000 + 15_000 + 6_000 + 14_100 + 8_800


def test_china_cbec_comprehensive_rates() -> None:
    assert comprehensive_rate(Decimal("0.13")) == Decimal("0.091")
    exact = comprehensive_rate(Decimal("0.13"), Decimal("0.15"))
    # 0.28 / 0.85 x 0.7 = 0.230588...: the published 23.06% is this rounded half up to
    # 0.01 percentage point; truncating would give 23.05%.
    assert str(exact).startswith("0.2305882352941176")
    assert exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP) == Decimal("0.2306")
    assert exact.quantize(Decimal("0.0001"), rounding=ROUND_DOWN) == Decimal("0.2305")


def test_china_cbec_landed_cost_matches_the_comprehensive_rates() -> None:
    bag = landed_cost(
        "CN",
        [line("420222", 100_000, "CNY", origin="IT")],
        freight_minor=0,
        insurance_minor=0,
        incoterm="CIF",
        on=ON,
        currency="CNY",
        regime="cbec",
    )
    assert (bag.regime, bag.duty_minor, bag.excise_minor, bag.vat_minor) == ("cbec", 0, 0, 9_100)
    perfume = landed_cost(
        "CN",
        [line("330300", 100_000, "CNY", origin="FR")],
        freight_minor=0,
        insurance_minor=0,
        incoterm="CIF",
        on=ON,
        currency="CNY",
        regime="cbec",
    )
    # consumption tax 1000/0.85 x 15% x 0.7 = 123.529 -> 123.53; VAT base 1000 + 176.47
    # (statutory CT) = 1176.47; VAT x 13% x 0.7 = 107.0588 -> 107.06; total 230.59 (23.06%).
    assert perfume.excise_minor == 12_353
    assert perfume.vat_base_minor == 117_647
    assert perfume.vat_minor == 10_706
    assert perfume.excise_minor + perfume.vat_minor == 23_059
