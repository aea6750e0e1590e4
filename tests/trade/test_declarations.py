"""Declarations, DFTZ between member hubs, clearance lanes, idempotent recording."""

from __future__ import annotations

from datetime import date

import pytest

from entrepot.trade.customs import (
    DeclarationConflict,
    InvalidLine,
    MemoryDeclarationLog,
    Shipment,
    declare,
    landed_cost,
)
from tests.trade.helpers import line, shipment

ON = date(2025, 3, 1)


def kl_to_kigali(shipment_id: str = "S-1", goods: int = 100_000) -> Shipment:
    return shipment(
        shipment_id,
        "RW",
        [line("610910", goods, "RWF", origin="MY")],
        "RWF",
        freight_minor=10_000,
        origin_hub="kuala-lumpur",
        destination_hub="kigali",
    )


def test_dftz_shipment_zero_duty_fast_lane_and_recorded() -> None:
    log = MemoryDeclarationLog()
    decl = declare(kl_to_kigali(), ON, log)
    assert decl.dftz is True
    assert decl.declaration_id == "IM-RW-S-1"
    assert (decl.customs_value_minor, decl.duty_minor, decl.vat_minor) == (110_000, 0, 19_800)
    assert decl.fees_minor == 1_650
    assert decl.total_taxes_minor == 21_450
    assert (decl.clearance.lane, decl.clearance.fast_lane) == ("green", True)
    assert decl.clearance.estimated_clearance_hours == 3
    assert decl.items[0].hs_code == "610910" and decl.items[0].origin == "MY"
    assert (decl.exporter.name, decl.importer.country, decl.declarant.name) == (
        "Yiwu Crafts Co",
        "RW",
        "Hub Broker",
    )
    assert log.find("S-1") == decl
    assert "DFTZ duty factor 0" in decl.landed_cost.lines[0].duty_rule


def test_non_member_hubs_pay_full_duty_on_the_standard_lane() -> None:
    ship = shipment(
        "S-2",
        "RW",
        [line("610910", 100_000, "RWF")],
        "RWF",
        freight_minor=10_000,
        origin_hub="shenzhen",
        destination_hub="kigali",
    )
    decl = declare(ship, ON, MemoryDeclarationLog())
    assert (decl.dftz, decl.duty_minor, decl.clearance.estimated_clearance_hours) == (
        False,
        38_500,
        6,
    )


def test_destination_hub_must_be_in_the_destination_country() -> None:
    with pytest.raises(InvalidLine):
        landed_cost(
            "RW",
            [line("610910", 100, "RWF")],
            freight_minor=0,
            insurance_minor=0,
            incoterm="FOB",
            on=ON,
            currency="RWF",
            origin_hub="yiwu",
            destination_hub="liege",
        )


def test_declare_is_idempotent_by_shipment_id() -> None:
    log = MemoryDeclarationLog()
    first = declare(kl_to_kigali(), ON, log)
    assert declare(kl_to_kigali(), ON, log) is first
    with pytest.raises(DeclarationConflict) as exc:
        declare(kl_to_kigali(goods=200_000), ON, log)
    assert exc.value.code == "customs_declaration_conflict"
    assert log.all() == (first,)


@pytest.mark.parametrize(
    ("hs", "aeo", "mass", "lane", "points", "hours"),
    [
        ("610910", True, "1", "green", 0, 6),
        ("610910", False, "1", "amber", 1, 24),
        ("240220", True, "1", "amber", 2, 24),
        ("240220", False, "0", "red", 4, 72),
    ],
)
def test_clearance_lane_by_points(
    hs: str, aeo: bool, mass: str, lane: str, points: int, hours: int
) -> None:
    ship = shipment(
        "S-3",
        "US",
        [line(hs, 100_000, "USD", net_mass_kg=mass, origin="ID")],
        "USD",
        importer_aeo=aeo,
    )
    clearance = declare(ship, date(2025, 9, 1), MemoryDeclarationLog()).clearance
    assert (clearance.lane, clearance.risk_points, clearance.estimated_clearance_hours) == (
        lane,
        points,
        hours,
    )


def test_dftz_red_lane_is_not_shortened() -> None:
    ship = shipment(
        "S-4",
        "BE",
        [line("240220", 10_000, "EUR", net_mass_kg="0")],
        "EUR",
        origin_hub="yiwu",
        destination_hub="liege",
        importer_aeo=False,
    )
    clearance = declare(ship, ON, MemoryDeclarationLog()).clearance
    assert (clearance.lane, clearance.fast_lane, clearance.estimated_clearance_hours) == (
        "red",
        True,
        72,
    )
