"""Bad input gets a clear error with a stable code; the tariff data is well-formed and sourced."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from entrepot.trade.customs import (
    HS_EDITION,
    InvalidHsCode,
    LandedCost,
    MissingFxRate,
    NegativeValue,
    NoRateForDate,
    TariffDataInvalid,
    UnknownDestination,
    UnknownHsCode,
    UnknownIncoterm,
    UnknownRegime,
    check_hs_code,
    classify,
    default_tariffs,
    get_hs_code,
    landed_cost,
    load_tariffs,
    parse_tariffs,
)
from tests.trade.helpers import line

DATA = Path(__file__).parents[2] / "src/entrepot/trade/customs/data/tariffs.json"


def cost(**overrides: Any) -> LandedCost:
    args: dict[str, Any] = {
        "destination": "NL",
        "lines": [line("610910", 10_000, "EUR")],
        "freight_minor": 0,
        "insurance_minor": 0,
        "incoterm": "FOB",
        "on": date(2025, 3, 1),
        "currency": "EUR",
    }
    args.update(overrides)
    return landed_cost(**args)


def test_hs_codes_are_validated_against_hs_2022() -> None:
    assert HS_EDITION == "HS 2022"
    assert check_hs_code("6109.10") == "610910"
    hs = get_hs_code("851713")  # smartphones: a subheading new in HS 2022
    assert (hs.heading, hs.chapter, hs.section) == ("8517", "85", "XVI")
    assert [h.code for h in classify("T-shirts")][:1] == ["610910"]


@pytest.mark.parametrize("bad", ["61091", "6109100", "61091A", "", "six", 610910])
def test_malformed_hs_code(bad: object) -> None:
    with pytest.raises(InvalidHsCode) as exc:
        check_hs_code(bad)  # type: ignore[arg-type]
    assert exc.value.code == "customs_invalid_hs_code"


@pytest.mark.parametrize("unknown", ["000000", "999999", "851712", "610900"])
def test_unknown_hs_code(unknown: str) -> None:
    # 851712 (mobile phones) was split into 851713/851714 by HS 2022; 999999 is statistical.
    with pytest.raises(UnknownHsCode) as exc:
        line(unknown, 100, "EUR")
    assert exc.value.code == "customs_unknown_hs_code"


def test_date_outside_all_rates() -> None:
    with pytest.raises(NoRateForDate) as exc:
        cost(on=date(2020, 12, 31))
    assert exc.value.code == "customs_no_rate_for_date"
    assert "2020-12-31" in exc.value.detail


def test_negative_values() -> None:
    with pytest.raises(NegativeValue):
        line("610910", -1, "EUR")
    with pytest.raises(NegativeValue):
        line("610910", 100, "EUR", quantity="-1")
    with pytest.raises(NegativeValue):
        cost(freight_minor=-1)
    with pytest.raises(NegativeValue) as exc:  # a CIF invoice below its own freight
        cost(incoterm="CIF", freight_minor=10_001)
    assert exc.value.code == "customs_negative_value"


def test_other_bad_input() -> None:
    with pytest.raises(MissingFxRate):
        cost(lines=[line("610910", 100, "USD")])
    with pytest.raises(MissingFxRate):
        cost(lines=[line("610910", 100, "USD")], fx_rates={"USD": Decimal(0)})
    with pytest.raises(UnknownDestination):
        cost(destination="FR")
    with pytest.raises(UnknownIncoterm):
        cost(incoterm="FOQ")
    with pytest.raises(UnknownRegime):
        cost(regime="cbec")


def test_packaged_data_covers_every_country_and_every_entry_has_a_source() -> None:
    tariffs = default_tariffs()
    assert set(tariffs.countries) == {"NL", "BE", "US", "AU", "MY", "RW", "ET", "CN"}
    assert set(tariffs.dftz_hubs.values()) == {"CN", "MY", "BE", "RW", "ET"}
    raw = json.loads(DATA.read_text(encoding="utf-8"))

    def entries(node: object) -> list[dict[str, Any]]:
        if isinstance(node, dict):
            found = [node] if "effective_from" in node else []
            return found + [e for v in node.values() for e in entries(v)]
        if isinstance(node, list):
            return [e for v in node for e in entries(v)]
        return []

    dated = entries(raw)
    assert len(dated) > 40
    for entry in dated:
        assert entry["source"].strip() and "effective_to" in entry
        if "illustrative" in entry["source"]:
            assert "verify" in entry["source"]
    kinds = {e.get("kind") for e in dated}
    assert {"ad_valorem", "specific", "compound"} <= kinds


def test_overlapping_dated_entries_are_rejected(tmp_path: Path) -> None:
    raw = json.loads(DATA.read_text(encoding="utf-8"))
    vat = raw["countries"]["NL"]["vat"]["default"]
    vat.append(dict(vat[0], effective_from="2024-01-01"))
    path = tmp_path / "tariffs.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(TariffDataInvalid) as exc:
        load_tariffs(path)
    assert "countries.NL.vat.default" in exc.value.detail


def test_malformed_data_names_the_path() -> None:
    raw = json.loads(DATA.read_text(encoding="utf-8"))
    raw["countries"]["US"]["duty"]["61"][0]["rate"] = "sixteen"
    with pytest.raises(TariffDataInvalid) as exc:
        parse_tariffs(raw)
    assert "countries.US.duty.61[0]" in exc.value.detail
