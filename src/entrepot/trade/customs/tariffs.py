"""Dated tariff data: duty, VAT/GST, excise, low-value (de minimis) rules, fees, regimes.

The data lives in ``data/tariffs.json`` with a source note on every entry. Every entry is valid
from ``effective_from`` to ``effective_to`` inclusive (``null``: open-ended); entries under one
key never overlap, which :func:`load_tariffs` checks. A lookup for a date that no entry covers
raises :class:`NoRateForDate`: the engine never guesses a rate.

Duty, VAT and excise tables are keyed by HS subheading (6 digits), heading (4), chapter (2) or
``default``; the most specific key with an entry covering the date wins.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeVar, cast

from entrepot.kernel.money import MoneyError, get_currency, parse_amount
from entrepot.trade.customs.errors import NoRateForDate, TariffDataInvalid, UnknownDestination

__all__ = [
    "CbecRule",
    "CountryTariff",
    "Dated",
    "DftzRule",
    "DutyRate",
    "ExciseRate",
    "Fee",
    "LowValueRule",
    "Tariffs",
    "TaxRate",
    "default_tariffs",
    "load_tariffs",
    "pick",
]

T = TypeVar("T")
DutyKind = Literal["ad_valorem", "specific", "compound"]
Valuation = Literal["CIF", "FOB"]
LowValueTreatment = Literal["relief", "flat_per_tariff_line", "vendor_collected"]
LowValueBasis = Literal["goods", "customs_value"]
ExciseBase = Literal["inclusive", "exclusive"]
DEFAULT_KEY = "default"


@dataclass(frozen=True, slots=True)
class Dated(Generic[T]):
    """A value valid from ``effective_from`` to ``effective_to`` inclusive, with its source."""

    value: T
    effective_from: date
    effective_to: date | None
    source: str

    def covers(self, on: date) -> bool:
        return self.effective_from <= on and (self.effective_to is None or on <= self.effective_to)

    def describe(self) -> str:
        until = self.effective_to.isoformat() if self.effective_to else "open"
        return f"[{self.effective_from.isoformat()}..{until}] {self.source}"


@dataclass(frozen=True, slots=True)
class DutyRate:
    """Ad valorem (``rate``), specific (``amount`` per ``unit``) or compound (both, summed)."""

    kind: DutyKind
    rate: Decimal = Decimal(0)
    amount: Decimal = Decimal(0)
    currency: str | None = None
    unit: str | None = None

    def describe(self) -> str:
        ad = f"{(self.rate * 100).normalize():f}%"
        per = f"{self.currency} {self.amount:f}/{self.unit}"
        return {"ad_valorem": ad, "specific": per, "compound": f"{per} + {ad}"}[self.kind]


@dataclass(frozen=True, slots=True)
class TaxRate:
    name: str
    rate: Decimal


@dataclass(frozen=True, slots=True)
class ExciseRate:
    """Ad valorem excise. ``inclusive``: base (CV + duty) / (1 - rate), China's composite base."""

    name: str
    rate: Decimal
    base: ExciseBase


@dataclass(frozen=True, slots=True)
class LowValueRule:
    """A de-minimis rule for consignments whose ``basis`` value is <= ``threshold_minor``."""

    applies_to: Literal["duty", "vat"]
    treatment: LowValueTreatment
    threshold_minor: int
    currency: str
    basis: LowValueBasis
    flat_amount_minor: int = 0
    vendor_tax_rate: Decimal = Decimal(0)
    origins_excluded: frozenset[str] = frozenset()
    codes_excluded: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Fee:
    """A charge per declaration: flat ``amount_minor`` in ``currency`` or ``rate`` x CV."""

    name: str
    kind: Literal["flat", "ad_valorem"]
    amount_minor: int = 0
    currency: str | None = None
    rate: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class CbecRule:
    """China's cross-border e-commerce retail import regime (limits in ``currency`` minor)."""

    order_limit_minor: int
    annual_limit_minor: int
    currency: str
    duty_rate: Decimal
    tax_factor: Decimal


@dataclass(frozen=True, slots=True)
class DftzRule:
    duty_factor: Decimal


@dataclass(frozen=True, slots=True)
class CountryTariff:
    code: str
    name: str
    currency: str
    valuation: tuple[Dated[Valuation], ...]
    duty: Mapping[str, tuple[Dated[DutyRate], ...]]
    vat: Mapping[str, tuple[Dated[TaxRate], ...]]
    excise: Mapping[str, tuple[Dated[ExciseRate], ...]]
    low_value: tuple[Dated[LowValueRule], ...]
    fees: tuple[Dated[Fee], ...]
    cbec: tuple[Dated[CbecRule], ...]

    def valuation_on(self, on: date) -> Dated[Valuation]:
        return pick(self.valuation, on, f"{self.code} valuation basis")

    def duty_on(self, hs_code: str, on: date) -> Dated[DutyRate]:
        found = _by_code(self.duty, hs_code, on)
        if found is None:
            raise _no_rate(f"{self.code} duty for HS {hs_code}", on)
        return found

    def vat_on(self, hs_code: str, on: date) -> Dated[TaxRate]:
        found = _by_code(self.vat, hs_code, on)
        if found is None:
            raise _no_rate(f"{self.code} VAT/GST for HS {hs_code}", on)
        return found

    def excise_on(self, hs_code: str, on: date) -> Dated[ExciseRate] | None:
        """The excise rule for this code on this date, or None: excise is not universal."""
        return _by_code(self.excise, hs_code, on)

    def low_value_on(self, applies_to: str, on: date) -> Dated[LowValueRule] | None:
        found = [e for e in self.low_value if e.value.applies_to == applies_to and e.covers(on)]
        return found[0] if found else None

    def fees_on(self, on: date) -> tuple[Dated[Fee], ...]:
        return tuple(e for e in self.fees if e.covers(on))

    def cbec_on(self, on: date) -> Dated[CbecRule] | None:
        found = [e for e in self.cbec if e.covers(on)]
        return found[0] if found else None


@dataclass(frozen=True, slots=True)
class Tariffs:
    countries: Mapping[str, CountryTariff]
    dftz_hubs: Mapping[str, str]
    dftz: tuple[Dated[DftzRule], ...]

    def get_country(self, code: str) -> CountryTariff:
        country = self.countries.get(code) if isinstance(code, str) else None
        if country is None:
            known = ", ".join(sorted(self.countries))
            raise UnknownDestination(
                f"no tariff data for destination {code!r}; known: {known}", field="destination"
            )
        return country

    def dftz_on(self, on: date) -> Dated[DftzRule] | None:
        found = [e for e in self.dftz if e.covers(on)]
        return found[0] if found else None


def pick(entries: Sequence[Dated[T]], on: date, what: str) -> Dated[T]:
    """The entry covering ``on``; raises NoRateForDate if none does."""
    for entry in entries:
        if entry.covers(on):
            return entry
    raise _no_rate(what, on)


def _no_rate(what: str, on: date) -> NoRateForDate:
    return NoRateForDate(
        f"no {what} in force on {on.isoformat()}: the tariff data does not cover that date",
        field="date",
    )


def _by_code(table: Mapping[str, tuple[Dated[T], ...]], hs_code: str, on: date) -> Dated[T] | None:
    for key in (hs_code[:6], hs_code[:4], hs_code[:2], DEFAULT_KEY):
        for entry in table.get(key, ()):
            if entry.covers(on):
                return entry
    return None


# ---- loading -------------------------------------------------------------------------------


class _Reader:
    """Reads one JSON object, naming the path of anything wrong in the error."""

    def __init__(self, raw: object, path: str) -> None:
        if not isinstance(raw, dict):
            raise TariffDataInvalid(f"{path}: expected an object")
        self.raw: dict[str, Any] = raw
        self.path = path

    def fail(self, detail: str) -> TariffDataInvalid:
        return TariffDataInvalid(f"tariff data {self.path}: {detail}")

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{key!r} must be non-empty text")
        return value

    def decimal(self, key: str, default: str | None = None) -> Decimal:
        text = self.text(key, default)
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise self.fail(f"{key!r} is not a decimal: {text!r}") from None
        if not value.is_finite() or value < 0:
            raise self.fail(f"{key!r} must be finite and >= 0, got {text!r}")
        return value

    def money(self, key: str, currency: str) -> int:
        try:
            minor = parse_amount(self.text(key), currency)
        except MoneyError as exc:
            raise self.fail(f"{key!r}: {exc.detail}") from None
        if minor < 0:
            raise self.fail(f"{key!r} must be >= 0")
        return minor

    def currency(self, key: str = "currency") -> str:
        try:
            return get_currency(self.text(key)).code
        except MoneyError as exc:
            raise self.fail(exc.detail) from None

    def date(self, key: str) -> date | None:
        value = self.raw.get(key)
        if value is None and key == "effective_to":
            return None
        try:
            return date.fromisoformat(cast(str, value))
        except (TypeError, ValueError):
            raise self.fail(f"{key!r} must be an ISO date, got {value!r}") from None

    def choice(self, key: str, allowed: Iterable[str]) -> str:
        value = self.text(key)
        if value not in allowed:
            raise self.fail(f"{key!r} must be one of {sorted(allowed)}, got {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(f"{key!r} must be a list of text")
        return tuple(value)


def _dated(reader: _Reader, value: T) -> Dated[T]:
    start = reader.date("effective_from")
    end = reader.date("effective_to")
    assert start is not None
    if end is not None and end < start:
        raise reader.fail(f"effective_to {end} is before effective_from {start}")
    return Dated(value, start, end, reader.text("source"))


def _check_no_overlap(entries: Sequence[Dated[Any]], path: str) -> None:
    ordered = sorted(entries, key=lambda e: e.effective_from)
    for before, after in itertools.pairwise(ordered):
        if before.effective_to is None or before.effective_to >= after.effective_from:
            raise TariffDataInvalid(
                f"tariff data {path}: entries from {before.effective_from} and "
                f"{after.effective_from} overlap"
            )


def _duty(r: _Reader) -> DutyRate:
    kind = cast(DutyKind, r.choice("kind", ("ad_valorem", "specific", "compound")))
    rate = r.decimal("rate") if kind != "specific" else Decimal(0)
    if kind == "ad_valorem":
        return DutyRate(kind, rate=rate)
    return DutyRate(kind, rate, r.decimal("amount"), r.currency(), r.text("unit"))


def _excise(r: _Reader) -> ExciseRate:
    rate = r.decimal("rate")
    if rate >= 1:
        raise r.fail("excise rate must be below 1")
    base = cast(ExciseBase, r.choice("base", ("inclusive", "exclusive")))
    return ExciseRate(r.text("name"), rate, base)


def _low_value(r: _Reader) -> LowValueRule:
    currency = r.currency()
    treatment = cast(
        LowValueTreatment,
        r.choice("treatment", ("relief", "flat_per_tariff_line", "vendor_collected")),
    )
    return LowValueRule(
        applies_to=cast(Literal["duty", "vat"], r.choice("applies_to", ("duty", "vat"))),
        treatment=treatment,
        threshold_minor=r.money("threshold", currency),
        currency=currency,
        basis=cast(LowValueBasis, r.choice("basis", ("goods", "customs_value"))),
        flat_amount_minor=(
            r.money("flat_amount", currency) if treatment == "flat_per_tariff_line" else 0
        ),
        vendor_tax_rate=(
            r.decimal("vendor_tax_rate") if treatment == "vendor_collected" else Decimal(0)
        ),
        origins_excluded=frozenset(r.strings("origins_excluded")),
        codes_excluded=r.strings("codes_excluded"),
    )


def _fee(r: _Reader) -> Fee:
    kind = cast(Literal["flat", "ad_valorem"], r.choice("kind", ("flat", "ad_valorem")))
    if kind == "flat":
        currency = r.currency()
        return Fee(r.text("name"), kind, r.money("amount", currency), currency)
    return Fee(r.text("name"), kind, rate=r.decimal("rate"))


def _cbec(r: _Reader) -> CbecRule:
    currency = r.currency()
    return CbecRule(
        order_limit_minor=r.money("order_limit", currency),
        annual_limit_minor=r.money("annual_limit", currency),
        currency=currency,
        duty_rate=r.decimal("duty_rate"),
        tax_factor=r.decimal("tax_factor"),
    )


def _list(raw: object, path: str, parse: Any, *, overlap_key: Any = None) -> tuple[Dated[Any], ...]:
    if not isinstance(raw, list):
        raise TariffDataInvalid(f"tariff data {path}: expected a list")
    out = []
    for index, item in enumerate(raw):
        reader = _Reader(item, f"{path}[{index}]")
        out.append(_dated(reader, parse(reader)))
    groups: dict[object, list[Dated[Any]]] = {}
    for entry in out:
        groups.setdefault(overlap_key(entry.value) if overlap_key else None, []).append(entry)
    for group in groups.values():
        _check_no_overlap(group, path)
    return tuple(out)


def _table(raw: object, path: str, parse: Any) -> Mapping[str, tuple[Dated[Any], ...]]:
    if not isinstance(raw, dict):
        raise TariffDataInvalid(f"tariff data {path}: expected an object")
    for key in raw:
        if key != DEFAULT_KEY and (not key.isdigit() or len(key) not in (2, 4, 6)):
            raise TariffDataInvalid(f"tariff data {path}: key {key!r} is not 2, 4 or 6 digits")
    return MappingProxyType({k: _list(v, f"{path}.{k}", parse) for k, v in raw.items()})


def _country(code: str, raw: dict[str, Any], groups: Mapping[str, Any]) -> CountryTariff:
    path = f"countries.{code}"
    merged: dict[str, Any] = {}
    if "group" in raw:
        if raw["group"] not in groups:
            raise TariffDataInvalid(f"tariff data {path}: unknown group {raw['group']!r}")
        merged.update(groups[raw["group"]])
    merged.update(raw)
    head = _Reader(merged, path)
    for section in ("valuation", "duty", "vat"):
        if section not in merged:
            raise head.fail(f"missing {section!r}")
    return CountryTariff(
        code=code,
        name=head.text("name"),
        currency=head.currency(),
        valuation=_list(
            merged["valuation"], f"{path}.valuation", lambda r: r.choice("basis", ("CIF", "FOB"))
        ),
        duty=_table(merged["duty"], f"{path}.duty", _duty),
        vat=_table(
            merged["vat"], f"{path}.vat", lambda r: TaxRate(r.text("name"), r.decimal("rate"))
        ),
        excise=_table(merged.get("excise", {}), f"{path}.excise", _excise),
        low_value=_list(
            merged.get("low_value", []),
            f"{path}.low_value",
            _low_value,
            overlap_key=lambda v: v.applies_to,
        ),
        fees=_list(merged.get("fees", []), f"{path}.fees", _fee, overlap_key=lambda v: v.name),
        cbec=_list(merged.get("cbec", []), f"{path}.cbec", _cbec),
    )


def parse_tariffs(raw: object) -> Tariffs:
    """Tariffs from decoded JSON; raises TariffDataInvalid naming the path of any fault."""
    top = _Reader(raw, "(root)")
    if top.raw.get("schema") != 1:
        raise top.fail("'schema' must be 1")
    countries = top.raw.get("countries")
    if not isinstance(countries, dict) or not countries:
        raise top.fail("'countries' must be a non-empty object")
    groups = top.raw.get("groups", {})
    parsed = {code: _country(code, body, groups) for code, body in countries.items()}
    dftz = _Reader(top.raw.get("dftz", {"hubs": {}, "rules": []}), "dftz")
    hubs = dftz.raw.get("hubs", {})
    if not isinstance(hubs, dict) or not all(v in parsed for v in hubs.values()):
        raise dftz.fail("'hubs' must map hub ids to countries in the data")
    rules = _list(
        dftz.raw.get("rules", []), "dftz.rules", lambda r: DftzRule(r.decimal("duty_factor"))
    )
    return Tariffs(MappingProxyType(parsed), MappingProxyType(dict(hubs)), rules)


def load_tariffs(path: str | Path | None = None) -> Tariffs:
    """Tariffs from a JSON file, or the packaged ``data/tariffs.json`` when ``path`` is None."""
    if path is None:
        text = (resources.files("entrepot.trade.customs") / "data" / "tariffs.json").read_text(
            encoding="utf-8"
        )
    else:
        text = Path(path).read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TariffDataInvalid(f"tariff data is not valid JSON: {exc}") from None
    return parse_tariffs(raw)


@cache
def default_tariffs() -> Tariffs:
    """The packaged tariff data, loaded once."""
    return load_tariffs()
