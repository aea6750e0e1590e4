"""Dated rules on both sides of each change, de-minimis regimes, CBEC limits, duty kinds."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from entrepot.trade.customs import LandedCost, UnitMismatch, landed_cost
from tests.trade.helpers import line


def us_tees(on: date, origin: str) -> tuple[int, int]:
    cost = landed_cost(
        "US",
        [line("610910", 50_000, "USD", origin=origin)],
        freight_minor=2_000,
        insurance_minor=0,
        incoterm="FOB",
        on=on,
        currency="USD",
    )
    return cost.duty_minor, cost.total_minor


def test_us_de_minimis_until_28_aug_2025_suspended_from_29_aug() -> None:
    assert us_tees(date(2025, 8, 28), "VN") == (0, 52_000)
    assert us_tees(date(2025, 8, 29), "VN") == (8_250, 60_250)  # 16.5% of USD 500, FOB


def test_us_de_minimis_ended_for_china_origin_on_2_may_2025() -> None:
    assert us_tees(date(2025, 5, 1), "CN")[0] == 0
    assert us_tees(date(2025, 5, 2), "CN")[0] == 8_250
    assert us_tees(date(2025, 8, 28), "CN")[0] == 8_250


def eu_parcel(on: date) -> LandedCost:
    return landed_cost(
        "NL",
        [line("610910", 4_000, "EUR"), line("610910", 3_000, "EUR"), line("950300", 2_000, "EUR")],
        freight_minor=1_000,
        insurance_minor=0,
        incoterm="FOB",
        on=on,
        currency="EUR",
    )


def test_eu_duty_relief_until_30_jun_2026() -> None:
    cost = eu_parcel(date(2026, 6, 30))
    assert [ln.customs_value_minor for ln in cost.lines] == [4_445, 3_333, 2_222]
    assert cost.duty_minor == 0
    assert [ln.vat_minor for ln in cost.lines] == [933, 700, 467]
    assert cost.low_value[0].applied and cost.low_value[0].treatment == "relief"


def test_eu_flat_eur_3_per_tariff_line_from_1_jul_2026() -> None:
    cost = eu_parcel(date(2026, 7, 1))
    assert [ln.duty_minor for ln in cost.lines] == [300, 0, 300]  # two distinct HS codes
    assert [ln.vat_minor for ln in cost.lines] == [996, 700, 530]
    assert cost.total_minor == 9_000 + 1_000 + 600 + 2_226
    assert cost.low_value[0].treatment == "flat_per_tariff_line"


def be_toys_and_tees(**hubs: str) -> LandedCost:
    return landed_cost(
        "BE",
        [line("610910", 4_000, "EUR"), line("950300", 2_000, "EUR")],
        freight_minor=1_000,
        insurance_minor=0,
        incoterm="FOB",
        on=date(2026, 7, 1),
        currency="EUR",
        **hubs,
    )


def test_eu_flat_duty_is_multiplied_by_the_dftz_factor_too() -> None:
    """Between member hubs every duty is multiplied by the zone's factor (0): the flat EUR 3
    a tariff line was charged in full, so a DFTZ parcel under EUR 150 paid duty that one
    over it did not."""
    assert [ln.duty_minor for ln in be_toys_and_tees().lines] == [300, 300]
    zone = be_toys_and_tees(origin_hub="kigali", destination_hub="liege")
    assert zone.dftz and zone.low_value[0].treatment == "flat_per_tariff_line"
    assert [ln.duty_minor for ln in zone.lines] == [0, 0]
    assert "DFTZ duty factor 0" in zone.lines[0].duty_rule
    assert [ln.vat_minor for ln in zone.lines] == [980, 490]  # 21% of CIF 4,667 and 2,333
    assert zone.total_minor == 6_000 + 1_000 + 980 + 490


@pytest.mark.parametrize(("goods", "duty"), [(15_000, 0), (15_001, 1_800)])
def test_eu_threshold_is_inclusive(goods: int, duty: int) -> None:
    cost = landed_cost(
        "BE",
        [line("610910", goods, "EUR")],
        freight_minor=0,
        insurance_minor=0,
        incoterm="FOB",
        on=date(2025, 1, 15),
        currency="EUR",
    )
    assert cost.duty_minor == duty  # 12% of 150.01 = 18.0012 -> 18.00


def test_eu_relief_excludes_perfume() -> None:
    cost = landed_cost(
        "NL",
        [line("330300", 5_000, "EUR")],
        freight_minor=0,
        insurance_minor=0,
        incoterm="FOB",
        on=date(2025, 1, 15),
        currency="EUR",
    )
    assert cost.duty_minor == 200  # illustrative default 4%
    assert "excluded" in cost.low_value[0].explanation


def test_eu_vat_from_the_first_euro_since_1_jul_2021() -> None:
    def vat(on: date) -> int:
        return landed_cost(
            "NL",
            [line("950300", 2_000, "EUR")],
            freight_minor=0,
            insurance_minor=0,
            incoterm="FOB",
            on=on,
            currency="EUR",
        ).vat_minor

    assert vat(date(2021, 6, 30)) == 0  # EUR 22 low-value consignment relief
    assert vat(date(2021, 7, 1)) == 420


def test_australia_low_value_goods_gst_collected_by_vendor() -> None:
    low = landed_cost(
        "AU",
        [line("610910", 100_000, "AUD")],
        freight_minor=5_000,
        insurance_minor=0,
        incoterm="FOB",
        on=date(2025, 6, 1),
        currency="AUD",
    )
    assert (low.duty_minor, low.vat_minor, low.fees_minor) == (0, 10_500, 0)
    assert low.lines[0].vat_collected_by == "vendor"
    high = landed_cost(
        "AU",
        [line("610910", 100_001, "AUD")],
        freight_minor=5_000,
        insurance_minor=0,
        incoterm="FOB",
        on=date(2025, 6, 1),
        currency="AUD",
    )
    assert (high.duty_minor, high.vat_minor, high.fees_minor) == (5_000, 11_000, 8_800)
    assert high.lines[0].vat_collected_by == "border"


def test_malaysia_lvg_tax_from_2024() -> None:
    def cost(on: date, goods: int) -> tuple[int, int, str]:
        c = landed_cost(
            "MY",
            [line("950300", goods, "MYR")],
            freight_minor=2_000,
            insurance_minor=0,
            incoterm="FOB",
            on=on,
            currency="MYR",
        )
        return c.duty_minor, c.vat_minor, c.lines[0].vat_collected_by

    assert cost(date(2023, 12, 31), 40_000) == (0, 0, "none")
    assert cost(date(2024, 1, 1), 40_000) == (0, 4_200, "vendor")  # 10% of 420.00
    # Above RM500: CIF 620.00, duty 5% = 31.00, sales tax 10% of 651.00.
    assert cost(date(2024, 1, 1), 60_000) == (3_100, 6_510, "border")


def test_rwanda_eac_cet_35_percent_band_from_1_jul_2022() -> None:
    def cost(on: date) -> tuple[int, int, int]:
        c = landed_cost(
            "RW",
            [line("610910", 100_000, "RWF")],
            freight_minor=10_000,
            insurance_minor=0,
            incoterm="FOB",
            on=on,
            currency="RWF",
        )
        return c.duty_minor, c.vat_minor, c.fees_minor

    assert cost(date(2022, 6, 30)) == (27_500, 24_750, 1_650)
    assert cost(date(2022, 7, 1)) == (38_500, 26_730, 1_650)


def test_ethiopia_vat_15_on_cif_plus_duty() -> None:
    c = landed_cost(
        "ET",
        [line("847130", 1_000_000, "ETB")],
        freight_minor=50_000,
        insurance_minor=0,
        incoterm="FOB",
        on=date(2025, 3, 1),
        currency="ETB",
    )
    assert (c.customs_value_minor, c.duty_minor, c.vat_minor) == (1_050_000, 52_500, 165_375)


def test_china_general_trade_vat_9_for_books() -> None:
    c = landed_cost(
        "CN",
        [line("490199", 10_000, "CNY", origin="GB")],
        freight_minor=1_000,
        insurance_minor=0,
        incoterm="FOB",
        on=date(2025, 3, 1),
        currency="CNY",
    )
    assert (c.duty_minor, c.vat_minor, c.regime) == (880, 1_069, "general")


def cbec(goods: int, annual: int = 0) -> LandedCost:
    return landed_cost(
        "CN",
        [line("330300", goods, "CNY", origin="FR")],
        freight_minor=0,
        insurance_minor=0,
        incoterm="CIF",
        on=date(2025, 3, 1),
        currency="CNY",
        regime="cbec",
        annual_purchases_minor=annual,
    )


def test_cbec_per_order_limit() -> None:
    assert cbec(500_000).regime == "cbec"
    over = cbec(500_001)
    assert over.regime == "general"
    # General trade: duty 3% = 15,000.03 -> 15,000; CT (515,001 / 0.85) x 15% = 90,882.5 ->
    # 90,883; VAT 13% of 605,884 = 78,764.92 -> 78,765.
    assert (over.duty_minor, over.excise_minor, over.vat_minor) == (15_000, 90_883, 78_765)
    assert any("limit exceeded" in e for e in over.explanations)


def test_cbec_annual_limit() -> None:
    assert cbec(300_000, annual=2_300_000).regime == "cbec"  # exactly RMB 26,000
    assert cbec(300_000, annual=2_300_001).regime == "general"


def test_specific_duty_per_litre_on_wine() -> None:
    wine = line("220421", 6_000, "EUR", quantity="9", unit="l", net_mass_kg="13.5", origin="ZA")
    cost = landed_cost(
        "NL",
        [wine],
        freight_minor=0,
        insurance_minor=0,
        incoterm="FOB",
        on=date(2025, 3, 1),
        currency="EUR",
    )
    # Wine is excluded from the EUR 150 relief; 9 l x EUR 0.131 = 1.179 -> 1.18.
    assert cost.duty_minor == 118
    assert cost.vat_minor == 1_285  # 21% of 61.18 = 12.8478 -> 12.85
    in_inr = landed_cost(
        "NL",
        [wine],
        freight_minor=0,
        insurance_minor=0,
        incoterm="FOB",
        on=date(2025, 3, 1),
        currency="INR",
        fx_rates={"EUR": Decimal("90")},
    )
    assert in_inr.duty_minor == 10_611  # 1.179 x 90 = 106.11, one rounding


def test_specific_duty_needs_the_unit() -> None:
    with pytest.raises(UnitMismatch) as exc:
        landed_cost(
            "NL",
            [line("220421", 6_000, "EUR", unit="pcs")],
            freight_minor=0,
            insurance_minor=0,
            incoterm="FOB",
            on=date(2025, 3, 1),
            currency="EUR",
        )
    assert exc.value.code == "customs_unit_mismatch"


def test_compound_duty_per_kg_plus_ad_valorem() -> None:
    cost = landed_cost(
        "US",
        [line("240220", 100_000, "USD", net_mass_kg="2", origin="ID")],
        freight_minor=0,
        insurance_minor=0,
        incoterm="FOB",
        on=date(2025, 9, 1),
        currency="USD",
    )
    assert cost.duty_minor == 983  # 2 kg x 0.417 + 0.9% x 1,000 = 9.834 -> 9.83


def test_line_value_in_another_currency_is_converted_half_up() -> None:
    cost = landed_cost(
        "NL",
        [line("610910", 33_333, "USD")],
        freight_minor=0,
        insurance_minor=0,
        incoterm="FOB",
        on=date(2025, 3, 1),
        currency="EUR",
        fx_rates={"USD": Decimal("0.9")},
    )
    assert cost.goods_minor == 30_000  # 333.33 x 0.9 = 299.997 -> 300.00
    assert cost.duty_minor == 3_600
