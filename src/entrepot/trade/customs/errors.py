"""Errors of the customs engine. Every one names the problem; codes are stable snake_case."""

from __future__ import annotations

from entrepot.kernel.errors import ConfigurationError, Conflict, InvalidInput


class CustomsError(InvalidInput):
    """Base of the customs engine's bad-input errors."""

    code = "customs_error"


class InvalidHsCode(CustomsError):
    """An HS code that is not six digits (dots and spaces allowed: ``6109.10``)."""

    code = "customs_invalid_hs_code"


class UnknownHsCode(CustomsError):
    """A well-formed HS code that is not a subheading of HS 2022."""

    code = "customs_unknown_hs_code"


class UnknownDestination(CustomsError):
    code = "customs_unknown_destination"


class NoRateForDate(CustomsError):
    """No dated rule covers the date asked for: the tariff data does not reach that far."""

    code = "customs_no_rate_for_date"


class NegativeValue(CustomsError):
    code = "customs_negative_value"


class InvalidLine(CustomsError):
    """A declaration line or shipment with a malformed field (currency, quantity, unit...)."""

    code = "customs_invalid_line"


class MissingFxRate(CustomsError):
    code = "customs_missing_fx_rate"


class UnitMismatch(CustomsError):
    """A specific duty per unit that the line does not declare (e.g. per litre, line in kg)."""

    code = "customs_unit_mismatch"


class UnknownIncoterm(CustomsError):
    code = "customs_unknown_incoterm"


class UnknownRegime(CustomsError):
    code = "customs_unknown_regime"


class TariffDataInvalid(ConfigurationError):
    """The tariff data file is malformed or inconsistent (e.g. overlapping dated rules)."""

    code = "customs_tariff_data_invalid"


class DeclarationConflict(Conflict):
    """A shipment id already declared with a different declaration."""

    code = "customs_declaration_conflict"
