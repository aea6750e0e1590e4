"""The scheme's fee schedule: what the scheme charges a payer for a payment, per currency.

A fee is ``bps`` basis points of the amount sent (half up to the minor unit), plus a fixed
amount, then held within a minimum and a maximum. The fixed part and the bounds are amounts of
one currency, so they are set per currency (``100`` minor units are 1.00 USD but 100 JPY): the
schedule has one rule per named currency and, for every other currency, a default rule that is
basis points alone.

The operator writes the schedule in a TOML file named by ``ENTREPOT_FEE_SCHEDULE`` (amounts in
the currency's own units, as text, never rounded)::

    bps = 30                    # every currency not named below

    [currencies.USD]
    bps = 25
    fixed = "0.10"
    min = "0.25"
    max = "5.00"

    [currencies.RWF]
    bps = 0
    fixed = "100"

``entrepot serve`` reads the file once, before its workers start, and they read that copy:
a worker respawned later charges what the others do, whatever became of the file. A changed
schedule takes effect when the server is restarted; a quote carries the fee it was priced
with, so it never reprices a quote already given.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from entrepot.kernel.errors import ConfigurationError
from entrepot.kernel.money import MoneyError, find_currency, format_amount, parse_amount
from entrepot.payments.model import SCHEME_AMOUNT_MAX

__all__ = [
    "BPS_MAX",
    "FeeRule",
    "FeeSchedule",
    "load_fee_schedule",
    "parse_fee_schedule",
    "snapshot_fee_schedule",
]

#: 10,000 basis points: a fee of the whole amount sent
BPS_MAX = 10_000
_ENV = "ENTREPOT_FEE_SCHEDULE"


@dataclass(frozen=True, slots=True)
class FeeRule:
    """One currency's fee: ``bps`` of the amount plus ``fixed_minor``, then at least
    ``min_minor`` and at most ``max_minor`` (none: no maximum), all in that currency's minor
    units."""

    bps: int = 30
    fixed_minor: int = 0
    min_minor: int = 0
    max_minor: int | None = None

    def __post_init__(self) -> None:
        for name in ("bps", "fixed_minor", "min_minor"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if self.bps > BPS_MAX:
            raise ValueError(f"bps must be at most {BPS_MAX}, got {self.bps}")
        if self.max_minor is not None and (
            type(self.max_minor) is not int
            or self.max_minor < max(self.min_minor, self.fixed_minor)
        ):
            raise ValueError(
                f"max_minor must be an int at least min_minor ({self.min_minor}) and "
                f"fixed_minor ({self.fixed_minor}), got {self.max_minor!r}"
            )
        for name in ("fixed_minor", "min_minor", "max_minor"):
            value = getattr(self, name)
            if value is not None and value > SCHEME_AMOUNT_MAX:
                raise ValueError(f"{name} must be at most {SCHEME_AMOUNT_MAX}, got {value}")

    def fee(self, principal_minor: int) -> int:
        # half up in integers: exact for any principal (a Decimal at its default 28 digits
        # raised InvalidOperation on a huge RECEIVE principal, a 500, before it was refused)
        variable = (2 * principal_minor * self.bps + BPS_MAX) // (2 * BPS_MAX)
        fee = max(self.fixed_minor + variable, self.min_minor)
        return fee if self.max_minor is None else min(fee, self.max_minor)


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """The scheme fee on the amount sent, by its currency: the named currency's rule, else
    ``bps`` basis points alone. A SEND quote's fee is on the amount given (fee included), a
    RECEIVE quote's on the principal its amount needs (the fee added on top)."""

    bps: int = 30
    currencies: Mapping[str, FeeRule] = field(default_factory=dict)
    #: the default rule, built once (``bps`` alone)
    _default: FeeRule = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_default", FeeRule(bps=self.bps))
        for code, rule in self.currencies.items():
            if find_currency(code) is None:
                raise ValueError(f"unknown ISO 4217 currency {code!r} in the fee schedule")
            if not isinstance(rule, FeeRule):
                raise ValueError(f"the rule for {code} is not a FeeRule: {rule!r}")
        object.__setattr__(self, "currencies", MappingProxyType(dict(self.currencies)))

    def rule(self, currency: str) -> FeeRule:
        return self.currencies.get(currency, self._default)

    def fee(self, principal_minor: int, currency: str) -> int:
        return self.currencies.get(currency, self._default).fee(principal_minor)


def _bps(value: object, where: str) -> int:
    if type(value) is not int or not 0 <= value <= BPS_MAX:
        raise ConfigurationError(
            f"{_ENV}: {where} must be a whole number of basis points 0..{BPS_MAX}, got {value!r}",
            field=_ENV,
        )
    return value


def _amount(value: object, code: str, where: str) -> int:
    if not isinstance(value, str):
        raise ConfigurationError(
            f'{_ENV}: {where} must be an amount in {code} written as text ("0.10"), got {value!r}',
            field=_ENV,
        )
    try:
        minor = parse_amount(value, code)
    except MoneyError as exc:
        raise ConfigurationError(f"{_ENV}: {where}: {exc.detail}", field=_ENV) from None
    if minor < 0:
        raise ConfigurationError(f"{_ENV}: {where} must not be negative, got {value!r}", field=_ENV)
    if minor > SCHEME_AMOUNT_MAX:  # a fee no payment could pay: every quote refused
        raise ConfigurationError(
            f"{_ENV}: {where} {value} is above the most the scheme moves, "
            f"{format_amount(SCHEME_AMOUNT_MAX, code)} {code}",
            field=_ENV,
        )
    return minor


def _unknown_keys(table: Mapping[str, object], allowed: tuple[str, ...], where: str) -> None:
    extra = sorted(set(table) - set(allowed))
    if extra:
        raise ConfigurationError(
            f"{_ENV}: unknown key{'s' if len(extra) > 1 else ''} {', '.join(extra)} in {where} "
            f"(expected {', '.join(allowed)})",
            field=_ENV,
        )


def parse_fee_schedule(data: Mapping[str, Any]) -> FeeSchedule:
    """The schedule a parsed TOML document describes; anything unknown, malformed or
    inconsistent is refused naming where it is."""
    _unknown_keys(data, ("bps", "currencies"), "the schedule")
    bps = _bps(data.get("bps", 30), "bps")
    tables = data.get("currencies", {})
    if not isinstance(tables, dict):
        raise ConfigurationError(f"{_ENV}: currencies must be a table of currencies", field=_ENV)
    rules = {}
    for code, table in tables.items():
        where = f"currencies.{code}"
        if find_currency(code) is None:
            raise ConfigurationError(
                f"{_ENV}: {where}: {code!r} is not an ISO 4217 currency code", field=_ENV
            )
        if not isinstance(table, dict):
            raise ConfigurationError(f"{_ENV}: {where} must be a table", field=_ENV)
        _unknown_keys(table, ("bps", "fixed", "min", "max"), where)
        fixed = _amount(table.get("fixed", "0"), code, f"{where}.fixed")
        low = _amount(table.get("min", "0"), code, f"{where}.min")
        high = _amount(table["max"], code, f"{where}.max") if "max" in table else None
        for name, bound in (("min", low), ("fixed", fixed)):
            if high is not None and high < bound:  # a published part never charged
                raise ConfigurationError(
                    f"{_ENV}: {where}: max {table['max']} is below {name} {table[name]}",
                    field=_ENV,
                )
        rules[code] = FeeRule(
            bps=_bps(table.get("bps", bps), f"{where}.bps"),
            fixed_minor=fixed,
            min_minor=low,
            max_minor=high,
        )
    return FeeSchedule(bps=bps, currencies=rules)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"{_ENV}={str(path)!r} cannot be read: {exc.strerror or exc}", field=_ENV
        ) from None


def _parse(data: bytes, path: Path) -> FeeSchedule:
    try:
        document = tomllib.loads(data.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(
            f"{_ENV}={str(path)!r} is not valid TOML: {exc}", field=_ENV
        ) from None
    return parse_fee_schedule(document)


def load_fee_schedule(path: Path) -> FeeSchedule:
    """The schedule in the TOML file at ``path``."""
    return _parse(_read(path), path)


def snapshot_fee_schedule(path: Path, directory: Path) -> Path:
    """A private copy, in ``directory``, of the schedule at ``path``, checked first: what a
    server's workers read, so that one respawned after the operator edits the file charges
    what the others do (and a wrong edit cannot stop it starting). The caller removes it."""
    data = _read(path)
    _parse(data, path)
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".fee-schedule-", suffix=".toml", dir=directory)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)
