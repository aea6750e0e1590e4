"""Goods declared to customs in another unit than pieces: wine by the litre.

Every order line was declared in pieces ("pcs"), so the EU's specific duty on wine (EUR 0.131
per litre, HS 2204) refused every quote over the EUR 150 low-value limit with the customs
engine's ``customs_unit_mismatch``: a merchant could not sell wine to a Liège buyer. An item
now declares its customs unit and the quantity of it in one piece (0.75 l a bottle), and a
line of n bottles is declared as n x 0.75 l."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, ROUND_UP, Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from entrepot.storage.migrate import downgrade, upgrade
from entrepot.trade import CustomsMeasure
from entrepot.trade import store as st
from entrepot.trade.errors import (
    CustomsUnitMissing,
    Forbidden,
    InvalidTradeInput,
    QuoteNotFound,
)
from tests.trade.network import DESTINATION, ORIGIN, Net

WINE = "sku-wine"
WINE_HS = "220421"  # wine in containers holding 2 l or less
PRICE_RWF = 45_000  # a bottle; six come to more than EUR 150, so the duty is not flat


# Independent arithmetic (not the service's code): EUR->RWF at the provider's 1500 less its
# 40 bps spread; Kigali's international card USD 8 + USD 6/kg at 0.00072 USD/RWF.
def eur_for_rwf(rwf: int) -> int:
    rate = Decimal(1500) * Decimal("0.996")
    return int((Decimal(rwf) / rate).quantize(Decimal("0.01"), rounding=ROUND_UP) * 100)


def half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


GOODS_EUR = eur_for_rwf(6 * PRICE_RWF)  # 270,000 / 1,494 = 180.7229 -> 180.73 up
FREIGHT_EUR = eur_for_rwf(11_111 + half_up(Decimal("7.8") * 8_333))  # 6 x 1,300 g
INSURANCE_EUR = half_up(Decimal(GOODS_EUR) / 100)
CIF_EUR = GOODS_EUR + FREIGHT_EUR + INSURANCE_EUR
DUTY_EUR = half_up(6 * Decimal("0.75") * Decimal("0.131") * 100)  # 58.95 cents -> 59
VAT_EUR = half_up((CIF_EUR + DUTY_EUR) * Decimal("0.21"))


def liege_buyer(net: Net) -> str:
    return net.buyer(
        "b-lotte", hub="liege", participant="kbc-be", msisdn="+32470123456", currency="EUR"
    )


def list_wine(net: Net, merchant: str, warehouse: str = "kigali-fc1", **customs: Any) -> str:
    net.trade.add_item(
        merchant,
        WINE,
        "Still red wine, 75 cl",
        WINE_HS,
        "ZA",
        weight_g=1_300,
        dimensions_mm=(90, 90, 330),
        price_minor=PRICE_RWF,
        currency="RWF",
        **customs,
    )
    net.trade.set_stock(merchant, WINE, warehouse, 24)
    return WINE


LITRES = {"customs_unit": "l", "customs_quantity_per_piece": "0.75"}


def outside_the_zone(net: Net) -> str:
    """A Rwandan hub outside the Digital Free Trade Zone, so the duty is charged in full."""
    net.musanze_hub(dftz=False)
    return net.merchant(hub="musanze")


def test_wine_without_litres_is_refused_at_the_quote_naming_the_sku_and_the_unit(
    net: Net,
) -> None:
    """The reproduction: listed as every item was (pieces only), six bottles to Liège were
    refused with the engine's customs_unit_mismatch, naming neither the sku nor what to do."""
    list_wine(net, net.merchant())  # listing is not refused: the merchant may never export
    buyer = liege_buyer(net)
    with pytest.raises(CustomsUnitMissing) as err:
        net.trade.quote(buyer, "q-1", [(WINE, 6)])
    assert err.value.code == "trade_customs_unit_missing"
    assert err.value.field == "lines"
    assert err.value.detail == (
        "customs in BE: item sku-wine (HS 220421) needs a customs quantity in 'l' (duty "
        "EUR 0.131/l) and declares no customs unit; its merchant sets the item's customsUnit "
        "and customsQuantityPerPiece"
    )
    with pytest.raises(QuoteNotFound):
        net.trade.get_quote(buyer, "q-1")


def test_wine_from_a_seed_hub_to_an_eu_buyer_is_declared_in_litres(net: Net) -> None:
    merchant = net.merchant()
    list_wine(net, merchant, **LITRES)
    buyer = liege_buyer(net)
    q = net.trade.quote(buyer, "q-1", [(WINE, 6)])
    # Kigali and Liège are both in the zone: the duty (4.5 l x EUR 0.131) x 0
    assert (q.dftz, q.duty_minor) == (True, 0)
    assert (q.goods_minor, q.freight_minor, q.insurance_minor) == (
        GOODS_EUR,
        FREIGHT_EUR,
        INSURANCE_EUR,
    )
    assert q.vat_minor == half_up(CIF_EUR * Decimal("0.21"))
    assert "sku-wine: 6 pcs x 0.75 l = 4.5 l declared to customs" in q.explanations
    net.trade.checkout(buyer, "o-1", "q-1")
    net.ship("o-1", dest="liege")
    d = net.trade.declaration(buyer, "o-1")
    assert d is not None
    item = d["items"][0]
    assert (item["hs_code"], item["quantity"], item["unit"], item["net_mass_kg"]) == (
        WINE_HS,
        "4.5",
        "l",
        "7.8",
    )
    assert "per unit on 4.5 l" in d["landed_cost"]["lines"][0]["duty_rule"]
    assert (d["duty_minor"], d["vat_minor"]) == (0, q.vat_minor)


def test_the_per_litre_duty_is_exact_to_the_cent_outside_the_zone(net: Net) -> None:
    assert (GOODS_EUR, FREIGHT_EUR, INSURANCE_EUR) == (18_073, 5_095, 181)
    assert (DUTY_EUR, VAT_EUR) == (59, 4_916)  # 21% of 23,408 = 4,915.68
    merchant = outside_the_zone(net)
    list_wine(net, merchant, "musanze-fc1", **LITRES)
    buyer = liege_buyer(net)
    q = net.trade.quote(buyer, "q-1", [(WINE, 6)])
    assert q.dftz is False
    assert (q.goods_minor, q.freight_minor, q.insurance_minor) == (18_073, 5_095, 181)
    assert (q.duty_minor, q.excise_minor, q.vat_minor, q.customs_fees_minor) == (59, 0, 4_916, 0)
    assert q.total_minor == 18_073 + 5_095 + 181 + 59 + 4_916
    order = net.trade.checkout(buyer, "o-1", "q-1")
    assert order.tax_escrow_minor == 59 + 4_916
    net.ship("o-1", origin="musanze", dest="liege")
    d = net.trade.declaration(buyer, "o-1")
    assert d is not None
    assert (d["items"][0]["quantity"], d["items"][0]["unit"]) == ("4.5", "l")
    assert (d["duty_minor"], d["vat_minor"], d["total_taxes_minor"]) == (59, 4_916, 4_975)
    assert d["landed_cost"]["lines"][0]["duty_rule"].startswith(
        "duty EUR 0.131/l; per unit on 4.5 l [2021-01-01..open]"
    )
    assert net.position("customs-be", "EUR") == 4_975


def test_wine_under_the_eu_low_value_limit_pays_its_per_litre_duty_not_the_flat_one(
    net: Net,
) -> None:
    """The EU's flat EUR 3 a tariff line (from 2026-07-01) replaces the EUR 150 relief, which
    never reached alcohol: four bottles (EUR 120.49) pay 3 l x EUR 0.131, not EUR 3."""
    goods = eur_for_rwf(4 * PRICE_RWF)
    assert goods == 12_049 and goods < 15_000
    merchant = outside_the_zone(net)
    list_wine(net, merchant, "musanze-fc1", **LITRES)
    q = net.trade.quote(liege_buyer(net), "q-1", [(WINE, 4)])
    assert (q.dftz, q.goods_minor) == (False, goods)
    assert q.duty_minor == half_up(4 * Decimal("0.75") * Decimal("0.131") * 100) == 39


def test_the_declaration_keeps_the_measure_the_order_was_quoted_with(net: Net) -> None:
    """The taxes were quoted and escrowed on 4.5 l: a merchant changing its item (1.5 l
    magnums now, or no unit) before the parcel reaches customs changes no open order."""
    merchant = outside_the_zone(net)
    list_wine(net, merchant, "musanze-fc1", **LITRES)
    buyer = liege_buyer(net)
    q = net.trade.quote(buyer, "q-1", [(WINE, 6)])
    net.trade.checkout(buyer, "o-1", "q-1")
    net.trade.update_item(merchant, WINE, customs_unit=None, customs_quantity_per_piece=None)
    for code in ORIGIN:
        net.trade.track("hub-musanze", "o-1", code)
    for code in DESTINATION:
        net.trade.track("hub-liege", "o-1", code)
    d = net.trade.declaration(buyer, "o-1")
    assert d is not None
    assert (d["items"][0]["quantity"], d["items"][0]["unit"]) == ("4.5", "l")
    assert (d["duty_minor"], d["vat_minor"]) == (q.duty_minor, q.vat_minor) == (59, 4_916)
    # a new quote reads the item as it is now: refused, naming what is missing
    with pytest.raises(CustomsUnitMissing, match=r"item sku-wine .* needs a customs quantity"):
        net.trade.quote(buyer, "q-2", [(WINE, 6)])


def test_a_merchant_sets_changes_and_clears_its_customs_unit(net: Net) -> None:
    merchant = net.merchant()
    sku = net.basket(merchant)
    assert net.trade.catalogue()[0].customs is None
    item = net.trade.update_item(
        merchant, sku, customs_unit="pair", customs_quantity_per_piece=Decimal("2.500")
    )
    assert item.customs == CustomsMeasure("pair", Decimal("2.5"))
    assert net.trade.catalogue()[0] == item  # stored, read back the same
    item = net.trade.update_item(merchant, sku, price_minor=50_000)  # customs kept
    assert (item.price_minor, item.customs) == (50_000, CustomsMeasure("pair", Decimal("2.5")))
    assert net.trade.catalogue()[0] == item
    item = net.trade.update_item(merchant, sku, customs_unit=None, customs_quantity_per_piece=None)
    assert item.customs is None
    assert net.trade.catalogue()[0] == item
    with pytest.raises(Forbidden, match="is not yours"):
        net.trade.update_item(
            net.merchant("m-other", reg="RW-300400", name="Other Ltd"),
            sku,
            customs_unit="l",
            customs_quantity_per_piece="1",
        )
    assert net.trade.catalogue()[0].customs is None


BAD = [
    ("l", None, "customsQuantityPerPiece", "customs unit 'l' needs the quantity"),
    (None, "0.75", "customsUnit", "needs its unit"),
    ("l", "0", "customsQuantityPerPiece", "must be above zero, not 0"),
    ("l", "-0.75", "customsQuantityPerPiece", "must be above zero, not -0.75"),
    ("l", -1, "customsQuantityPerPiece", "must be above zero"),
    ("l", "NaN", "customsQuantityPerPiece", "decimal text like '0.75'"),
    ("l", Decimal("Infinity"), "customsQuantityPerPiece", "decimal text"),
    ("l", "1e3", "customsQuantityPerPiece", "decimal text"),
    ("l", "0.75 l", "customsQuantityPerPiece", "decimal text"),
    ("l", 0.75, "customsQuantityPerPiece", "decimal text"),
    ("l", True, "customsQuantityPerPiece", "decimal text"),
    ("l", "0.0000001", "customsQuantityPerPiece", "at most 6 decimal places"),
    # past 28 digits: rounded to 1 by the context's precision and accepted, not refused
    ("l", "1.0000000000000000000000000001", "customsQuantityPerPiece", "at most 6 decimal"),
    ("l", "0.750000000000000000000000000000001", "customsQuantityPerPiece", "at most 6"),
    ("l", "1000000.5", "customsQuantityPerPiece", "at most 1000000"),
    ("L", "0.75", "customsUnit", "lower-case"),
    ("litre!", "0.75", "customsUnit", "lower-case"),
    ("", "0.75", "customsUnit", "lower-case"),
    ("a" * 17, "0.75", "customsUnit", "lower-case"),
    ("kg", "0.75", "customsUnit", "from the item's weight"),
]


@pytest.mark.parametrize(("unit", "per_piece", "field", "says"), BAD)
def test_bad_customs_measures_are_refused_and_change_nothing(
    net: Net, unit: Any, per_piece: Any, field: str, says: str
) -> None:
    merchant = net.merchant()
    with pytest.raises(InvalidTradeInput, match=says) as err:
        list_wine(net, merchant, customs_unit=unit, customs_quantity_per_piece=per_piece)
    assert (err.value.code, err.value.field) == ("trade_invalid_input", field)
    assert net.trade.catalogue() == []
    list_wine(net, merchant, **LITRES)
    before = net.trade.catalogue()
    with pytest.raises(InvalidTradeInput, match=says):
        net.trade.update_item(
            merchant, WINE, price_minor=1, customs_unit=unit, customs_quantity_per_piece=per_piece
        )
    assert net.trade.catalogue() == before


def test_a_domestic_sale_needs_no_customs_unit(net: Net) -> None:
    merchant = net.merchant()
    list_wine(net, merchant)
    buyer = net.buyer(
        "b-kigali", hub="kigali", participant="mtn-rw", msisdn="+250788000001", currency="RWF"
    )
    q = net.trade.quote(buyer, "q-1", [(WINE, 6)])
    assert (q.duty_minor, q.vat_minor, q.goods_minor) == (0, 0, 6 * PRICE_RWF)


def test_items_listed_before_migration_0018_have_no_customs_unit(net: Net) -> None:
    merchant = net.merchant()
    net.basket(merchant)
    list_wine(net, merchant, **LITRES)
    downgrade(net.engine, "0017_buyer_wallet_consent")
    columns = {c["name"] for c in sa.inspect(net.engine).get_columns("trade_items")}
    assert not {"customs_unit", "customs_per_piece"} & columns
    upgrade(net.engine)
    with net.engine.connect() as conn:
        rows = conn.execute(sa.select(st.items).order_by(st.items.c.sku)).all()
    assert [(r.sku, r.customs_unit, r.customs_per_piece) for r in rows] == [
        ("sku-basket", None, None),
        ("sku-wine", None, None),
    ]
    assert [i.customs for i in net.trade.catalogue()] == [None, None]
