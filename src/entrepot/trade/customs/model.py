"""Customs model: declaration lines, shipments, landed-cost breakdowns, declarations.

Every amount is an ``int`` in minor units of the breakdown's ``currency``; every rate is a
``Decimal``. Each tax line (duty, excise, VAT/GST, fee, per declaration line) is rounded once,
half up, to the minor unit, as customs administrations do (:data:`ROUNDING`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from entrepot.kernel.money import MoneyError, get_currency
from entrepot.trade.customs.errors import InvalidLine, NegativeValue, UnknownIncoterm
from entrepot.trade.customs.hs import check_hs_code

__all__ = [
    "INCOTERMS",
    "ROUNDING",
    "ROUNDING_NOTE",
    "Clearance",
    "Declaration",
    "DeclarationItem",
    "DeclarationLine",
    "ExchangeRate",
    "FeeLine",
    "LandedCost",
    "LineCost",
    "LowValueDecision",
    "Party",
    "Shipment",
]

ROUNDING = ROUND_HALF_UP
ROUNDING_NOTE = "each tax line rounded once, half up, to the minor unit (ROUND_HALF_UP)"

#: Incoterms 2020 and which international costs the invoice price already includes.
#: EXW/FCA/FAS/FOB: neither; CFR/CPT: freight; CIF/CIP/DAP/DPU/DDP: freight and insurance.
INCOTERMS: dict[str, tuple[bool, bool]] = {
    "EXW": (False, False),
    "FCA": (False, False),
    "FAS": (False, False),
    "FOB": (False, False),
    "CFR": (True, False),
    "CPT": (True, False),
    "CIF": (True, True),
    "CIP": (True, True),
    "DAP": (True, True),
    "DPU": (True, True),
    "DDP": (True, True),
}

_COUNTRY = re.compile(r"[A-Z]{2}")
_UNIT = re.compile(r"[a-z0-9_]{1,16}")
Lane = Literal["green", "amber", "red"]


def check_country(code: object, what: str) -> str:
    """Shaped like an ISO 3166 code. Whether it is an assigned one is checked where a country
    enters the platform (a hub, an item's origin, a participant): a line built from what was
    stored before that check (an origin of "ZZ") is still priced, not refused."""
    if not isinstance(code, str) or _COUNTRY.fullmatch(code) is None:
        raise InvalidLine(
            f"{what} must be an ISO 3166 alpha-2 code like 'NL', got {code!r}", field=what
        )
    return code


def check_non_negative(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidLine(f"{what} must be an int in minor units, got {value!r}", field=what)
    if value < 0:
        raise NegativeValue(f"{what} must not be negative, got {value}", field=what)
    return value


def check_currency(code: object, what: str) -> str:
    try:
        return get_currency(code).code  # type: ignore[arg-type]
    except MoneyError:
        raise InvalidLine(f"{what}: unknown currency {code!r}", field=what) from None


def check_incoterm(code: object) -> str:
    if not isinstance(code, str) or code not in INCOTERMS:
        raise UnknownIncoterm(
            f"unknown incoterm {code!r}; expected one of {', '.join(INCOTERMS)}", field="incoterm"
        )
    return code


def _check_quantity(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise InvalidLine(f"{what} must be a Decimal, got {value!r}", field=what)
    quantity = Decimal(value)
    if not quantity.is_finite():
        raise InvalidLine(f"{what} must be finite, got {value}", field=what)
    if quantity < 0:
        raise NegativeValue(f"{what} must not be negative, got {value}", field=what)
    return quantity


@dataclass(frozen=True, slots=True)
class Party:
    """A party to a declaration: exporter, importer or declarant."""

    name: str
    country: str
    identifier: str = ""
    authorised_operator: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidLine("party name must be non-empty text", field="party")
        check_country(self.country, "party.country")


@dataclass(frozen=True, slots=True)
class DeclarationLine:
    """One goods item: HS code, description, origin, quantity and unit, net weight, value.

    ``value_minor`` is the invoice (transaction) value in ``value_currency``, which includes
    freight and insurance only if the shipment's incoterm says so.
    """

    hs_code: str
    description: str
    origin: str
    quantity: Decimal
    unit: str
    net_mass_kg: Decimal
    value_minor: int
    value_currency: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "hs_code", check_hs_code(self.hs_code))
        if not isinstance(self.description, str) or not self.description.strip():
            raise InvalidLine("line description must be non-empty text", field="description")
        check_country(self.origin, "origin")
        object.__setattr__(self, "quantity", _check_quantity(self.quantity, "quantity"))
        object.__setattr__(self, "net_mass_kg", _check_quantity(self.net_mass_kg, "net_mass_kg"))
        if not isinstance(self.unit, str) or _UNIT.fullmatch(self.unit) is None:
            raise InvalidLine(
                f"unit must be short lower-case text like 'pcs', 'l', got {self.unit!r}",
                field="unit",
            )
        check_non_negative(self.value_minor, "value_minor")
        object.__setattr__(
            self, "value_currency", check_currency(self.value_currency, "value_currency")
        )


@dataclass(frozen=True, slots=True)
class Shipment:
    """A consignment to declare: parties, lines, international freight and insurance."""

    shipment_id: str
    exporter: Party
    importer: Party
    declarant: Party
    destination: str
    lines: tuple[DeclarationLine, ...]
    freight_minor: int
    insurance_minor: int
    currency: str
    incoterm: str
    origin_hub: str | None = None
    destination_hub: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.shipment_id, str) or not self.shipment_id.strip():
            raise InvalidLine("shipment_id must be non-empty text", field="shipment_id")
        check_country(self.destination, "destination")
        if not self.lines:
            raise InvalidLine("a shipment needs at least one line", field="lines")
        object.__setattr__(self, "lines", tuple(self.lines))
        check_non_negative(self.freight_minor, "freight_minor")
        check_non_negative(self.insurance_minor, "insurance_minor")
        check_currency(self.currency, "currency")
        check_incoterm(self.incoterm)


@dataclass(frozen=True, slots=True)
class LowValueDecision:
    """Whether a de-minimis rule applied, with its threshold and the valuation basis used."""

    applies_to: Literal["duty", "vat"]
    applied: bool
    treatment: str | None
    threshold_minor: int | None
    threshold_currency: str | None
    threshold_in_currency_minor: int | None
    basis: str | None
    compared_value_minor: int | None
    explanation: str


@dataclass(frozen=True, slots=True)
class LineCost:
    """One line's values and taxes, in minor units of the breakdown's currency."""

    item: int
    hs_code: str
    invoice_minor: int
    goods_minor: int
    freight_minor: int
    insurance_minor: int
    customs_value_minor: int
    duty_minor: int
    duty_rule: str
    excise_minor: int
    excise_rule: str
    vat_base_minor: int
    vat_rate: Decimal
    vat_minor: int
    vat_rule: str
    vat_collected_by: Literal["border", "vendor", "none"]


@dataclass(frozen=True, slots=True)
class ExchangeRate:
    """A rate the valuation converted at: ``rate`` units of the breakdown's currency per one
    unit of ``currency``, and where it came from (``source``), so that the declaration can be
    valued again, to the minor unit, from what it records."""

    currency: str
    rate: Decimal
    source: str


@dataclass(frozen=True, slots=True)
class FeeLine:
    name: str
    amount_minor: int
    rule: str


@dataclass(frozen=True, slots=True)
class LandedCost:
    """The landed-cost breakdown of one consignment.

    ``total_minor`` = goods + freight + insurance + duty + excise + VAT/GST + fees.
    """

    destination: str
    on: date
    currency: str
    incoterm: str
    valuation_basis: str
    regime: Literal["general", "cbec"]
    dftz: bool
    lines: tuple[LineCost, ...]
    goods_minor: int
    freight_minor: int
    insurance_minor: int
    customs_value_minor: int
    duty_minor: int
    excise_minor: int
    vat_base_minor: int
    vat_minor: int
    fees: tuple[FeeLine, ...]
    fees_minor: int
    total_minor: int
    low_value: tuple[LowValueDecision, ...]
    explanations: tuple[str, ...]
    rounding: str = ROUNDING_NOTE
    #: the rates every amount in another currency was converted at, by currency
    fx_rates: tuple[ExchangeRate, ...] = ()


@dataclass(frozen=True, slots=True)
class Clearance:
    """Lane (green: release, amber: documents, red: physical check) and estimated hours."""

    lane: Lane
    fast_lane: bool
    risk_points: int
    reasons: tuple[str, ...]
    estimated_clearance_hours: int


@dataclass(frozen=True, slots=True)
class DeclarationItem:
    """A goods item of a declaration (WCO data model: GovernmentAgencyGoodsItem)."""

    sequence: int
    hs_code: str
    description: str
    origin: str
    quantity: Decimal
    unit: str
    net_mass_kg: Decimal
    customs_value_minor: int
    duty_minor: int
    excise_minor: int
    vat_minor: int


@dataclass(frozen=True, slots=True)
class Declaration:
    """A WCO-style import declaration: parties, goods items, valuation, totals, clearance."""

    declaration_id: str
    shipment_id: str
    type_code: str
    on: date
    destination: str
    exporter: Party
    importer: Party
    declarant: Party
    incoterm: str
    valuation_basis: str
    currency: str
    regime: str
    dftz: bool
    items: tuple[DeclarationItem, ...]
    customs_value_minor: int
    duty_minor: int
    excise_minor: int
    vat_minor: int
    fees_minor: int
    total_taxes_minor: int
    clearance: Clearance
    landed_cost: LandedCost = field(repr=False)
    #: the rates customs valued at (amounts declared in another currency than ``currency``)
    fx_rates: tuple[ExchangeRate, ...] = ()
