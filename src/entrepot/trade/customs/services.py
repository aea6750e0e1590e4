"""Customs use cases: landed cost, declaration with a clearance decision, CBEC rate.

Pure and deterministic: the same inputs and tariff data give the same result. Amounts are int
minor units of the caller's ``currency``; FX rates are given explicitly as Decimals (units of
``currency`` per one unit of the keyed currency); every conversion and every tax line is rounded
once, half up, to the minor unit.

Formulas (docs/customs.md):
- customs value (CV) = goods (FOB) + freight + insurance where the destination values CIF; the
  goods value alone where it values FOB;
- duty = CV x rate (ad valorem), amount x quantity (specific), or both (compound);
- excise = (CV + duty) x rate, or (CV + duty) / (1 - rate) x rate for a tax-inclusive base
  (China's consumption tax);
- VAT/GST base = goods + freight + insurance + duty + excise (the EU's CIF value + duty, and
  Australia's value of the taxable importation = CV + duty + transport and insurance);
- landed cost = goods + freight + insurance + duty + excise + VAT/GST + fees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal, localcontext
from typing import Literal, Protocol

from entrepot.kernel.money import (
    Currency,
    InvalidRate,
    Money,
    allocate,
    check_rate,
    get_currency,
)
from entrepot.trade.customs.errors import (
    DeclarationConflict,
    InvalidLine,
    MissingFxRate,
    NegativeValue,
    UnitMismatch,
    UnknownRegime,
)
from entrepot.trade.customs.model import (
    INCOTERMS,
    ROUNDING,
    Clearance,
    Declaration,
    DeclarationItem,
    DeclarationLine,
    ExchangeRate,
    FeeLine,
    LandedCost,
    LineCost,
    LowValueDecision,
    Shipment,
    check_currency,
    check_incoterm,
    check_non_negative,
)
from entrepot.trade.customs.tariffs import (
    CbecRule,
    CountryTariff,
    Dated,
    DftzRule,
    DutyRate,
    LowValueRule,
    Tariffs,
    default_tariffs,
)

__all__ = [
    "CLEARANCE_HOURS",
    "DFTZ_CLEARANCE_HOURS",
    "SENSITIVE_CHAPTERS",
    "DeclarationLog",
    "MemoryDeclarationLog",
    "clearance_decision",
    "comprehensive_rate",
    "declare",
    "landed_cost",
]

#: Decimal working precision: exact for 64-bit amounts times 50-digit rates.
_PREC = 100
_ONE = Decimal(1)
Regime = Literal["general", "cbec"]

#: HS chapters that always raise risk: tobacco, pharmaceuticals, explosives, precious metals
#: and stones, arms, works of art and antiques.
SENSITIVE_CHAPTERS = frozenset({"24", "30", "36", "71", "93", "97"})
#: Estimated clearance hours by lane; the DFTZ fast lane halves green and amber (Malaysia's
#: DFTZ cut cargo clearance from 6 hours to 3). Entrepot policy figures, not a customs promise.
CLEARANCE_HOURS: Mapping[str, int] = {"green": 6, "amber": 24, "red": 72}
DFTZ_CLEARANCE_HOURS: Mapping[str, int] = {"green": 3, "amber": 12, "red": 72}
RISK_AMBER_MIN = 1
RISK_RED_MIN = 3


def _round(value: Decimal) -> int:
    return int(value.quantize(_ONE, rounding=ROUNDING))


def _pct(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"


@dataclass(slots=True)
class _Calc:
    """What one landed-cost computation knows: country, date, currency, FX, explanations."""

    country: CountryTariff
    on: date
    currency: Currency
    fx_rates: Mapping[str, Decimal]
    explanations: list[str] = field(default_factory=list)
    used: dict[str, Decimal] = field(default_factory=dict)  # the rates converted at

    def exact(self, amount: Decimal, code: str, *, minor: bool = True) -> Decimal:
        """``amount`` of ``code`` (minor units, or major units if not ``minor``) in our minor."""
        source = get_currency(code)
        rate = _ONE if code == self.currency.code else self._rate(code)
        shift = self.currency.exponent - (source.exponent if minor else 0)
        return amount * rate * Decimal(10) ** shift

    def convert(self, amount_minor: int, code: str) -> int:
        return _round(self.exact(Decimal(amount_minor), code))

    def _rate(self, code: str) -> Decimal:
        rate = self.fx_rates.get(code)
        if rate is None:
            raise MissingFxRate(
                f"an FX rate for {code} (units of {self.currency.code} per 1 {code}) is needed",
                field="fx_rates",
            )
        try:
            check_rate(rate)
        except InvalidRate as exc:
            raise MissingFxRate(f"FX rate for {code}: {exc.detail}", field="fx_rates") from None
        self.used[code] = rate
        return rate


@dataclass(frozen=True, slots=True)
class _Values:
    invoice: int
    goods: int
    freight: int
    insurance: int
    customs_value: int

    @property
    def cif(self) -> int:
        return self.goods + self.freight + self.insurance


def _values(
    calc: _Calc, lines: Sequence[DeclarationLine], freight: int, insurance: int, incoterm: str
) -> tuple[str, list[_Values]]:
    invoice = [calc.convert(line.value_minor, line.value_currency) for line in lines]
    ratios = invoice if sum(invoice) > 0 else [1] * len(invoice)
    freights = [m.amount_minor for m in allocate(Money(freight, calc.currency), ratios)]
    insurances = [m.amount_minor for m in allocate(Money(insurance, calc.currency), ratios)]
    has_freight, has_insurance = INCOTERMS[incoterm]
    valuation = calc.country.valuation_on(calc.on)
    out = []
    for item, (inv, fr, ins) in enumerate(zip(invoice, freights, insurances, strict=True), 1):
        goods = inv - (fr if has_freight else 0) - (ins if has_insurance else 0)
        if goods < 0:
            raise NegativeValue(
                f"line {item}: invoice value {inv} is below the freight and insurance that "
                f"{incoterm} says it includes",
                field="value_minor",
            )
        cv = goods + fr + ins if valuation.value == "CIF" else goods
        out.append(_Values(inv, goods, fr, ins, cv))
    included = "freight and insurance" if has_insurance else "freight" if has_freight else "none"
    calc.explanations.append(
        f"valuation {valuation.value}: {incoterm} invoice includes {included}; freight and "
        f"insurance allocated to lines by invoice value; {valuation.describe()}"
    )
    return valuation.value, out


def _low_value(
    calc: _Calc,
    applies_to: Literal["duty", "vat"],
    lines: Sequence[DeclarationLine],
    values: Sequence[_Values],
) -> tuple[LowValueDecision, LowValueRule | None]:
    entry = calc.country.low_value_on(applies_to, calc.on)
    if entry is None:
        text = f"no {applies_to} de-minimis rule in force on {calc.on.isoformat()}"
        return LowValueDecision(applies_to, False, None, None, None, None, None, None, text), None
    rule = entry.value
    threshold = calc.convert(rule.threshold_minor, rule.currency)
    compared = sum(v.goods if rule.basis == "goods" else v.customs_value for v in values)
    origins = sorted({ln.origin for ln in lines if ln.origin in rule.origins_excluded})
    codes = sorted({ln.hs_code for ln in lines if ln.hs_code.startswith(rule.codes_excluded)})
    applied = not origins and not codes and compared <= threshold
    why = (
        f"origin {', '.join(origins)} excluded"
        if origins
        else f"HS {', '.join(codes)} excluded"
        if codes
        else f"{rule.basis} value {compared} {'<=' if applied else '>'} threshold {threshold}"
    )
    text = (
        f"{applies_to} de minimis ({rule.treatment}, "
        f"{Money(rule.threshold_minor, get_currency(rule.currency))}): "
        f"{'applied' if applied else 'not applied'}: {why} {calc.currency.code} minor units; "
        f"{entry.describe()}"
    )
    decision = LowValueDecision(
        applies_to,
        applied,
        rule.treatment,
        rule.threshold_minor,
        rule.currency,
        threshold,
        rule.basis,
        compared,
        text,
    )
    return decision, rule if applied else None


def _quantity(line: DeclarationLine, rate: DutyRate) -> Decimal:
    if rate.unit == "kg":
        return line.net_mass_kg
    if rate.unit == line.unit:
        return line.quantity
    raise UnitMismatch(
        f"HS {line.hs_code}: the duty is per {rate.unit!r} but the line declares {line.unit!r}",
        field="unit",
    )


def _charged_on(line: DeclarationLine, rate: DutyRate) -> str:
    """The quantity the per-unit part of a duty was charged on: '; per unit on 4.5 l'."""
    if rate.kind == "ad_valorem":
        return ""
    return f"; per unit on {_quantity(line, rate).normalize():f} {rate.unit}"


def _duty_exact(calc: _Calc, rate: DutyRate, line: DeclarationLine, cv: int) -> Decimal:
    ad_valorem = Decimal(cv) * rate.rate
    if rate.kind == "ad_valorem":
        return ad_valorem
    assert rate.currency is not None
    specific = calc.exact(rate.amount * _quantity(line, rate), rate.currency, minor=False)
    return specific if rate.kind == "specific" else specific + ad_valorem


@dataclass(frozen=True, slots=True)
class _Regime:
    cbec: CbecRule | None
    dftz: Dated[DftzRule] | None
    duty_low: LowValueRule | None
    vat_low: LowValueRule | None


def _duty(
    calc: _Calc, line: DeclarationLine, v: _Values, regime: _Regime, flat_due: bool
) -> tuple[int, str]:
    if regime.cbec is not None:
        rate = regime.cbec.duty_rate
        return _round(v.customs_value * rate), f"CBEC within limits: tariff {_pct(rate)}"
    low = regime.duty_low
    if low is not None and low.treatment == "relief":
        return 0, "de minimis: duty relief"
    if low is not None:  # flat_per_tariff_line: one flat amount per distinct HS code
        flat = Decimal(low.flat_amount_minor) if flat_due else Decimal(0)
        exact = calc.exact(flat, low.currency)
        first = "first line of this tariff line" if flat_due else "tariff line already charged"
        rule = f"de minimis: flat {low.currency} duty per tariff line ({first})"
    else:
        entry = calc.country.duty_on(line.hs_code, calc.on)
        exact = _duty_exact(calc, entry.value, line, v.customs_value)
        rule = f"duty {entry.value.describe()}{_charged_on(line, entry.value)} {entry.describe()}"
    # The zone's factor applies to every duty, the flat low-value one too: a DFTZ parcel
    # under the EU's EUR 150 paid EUR 3 a tariff line, one over it none.
    if regime.dftz is not None:
        exact *= regime.dftz.value.duty_factor
        rule += f"; DFTZ duty factor {regime.dftz.value.duty_factor}"
    return _round(exact), rule


def _excise(
    calc: _Calc, line: DeclarationLine, cv: int, duty: int, cbec: CbecRule | None
) -> tuple[int, int, str]:
    """(excise charged, statutory excise before any CBEC factor, rule)."""
    entry = calc.country.excise_on(line.hs_code, calc.on)
    if entry is None:
        return 0, 0, "no excise"
    rate = entry.value
    base = Decimal(cv + duty)
    if rate.base == "inclusive":
        base /= _ONE - rate.rate
    full = base * rate.rate
    rule = f"{rate.name} {_pct(rate.rate)} ({rate.base} base) {entry.describe()}"
    if cbec is None:
        return _round(full), _round(full), rule
    return _round(full * cbec.tax_factor), _round(full), f"{rule}; CBEC x {cbec.tax_factor}"


def _vat(
    calc: _Calc, line: DeclarationLine, v: _Values, duty: int, excise_full: int, regime: _Regime
) -> tuple[int, Decimal, int, str, Literal["border", "vendor", "none"]]:
    low = regime.vat_low
    if low is not None and low.treatment == "relief":
        return 0, Decimal(0), 0, "de minimis: VAT/GST relief", "none"
    if low is not None:  # vendor_collected: the seller charges it on the delivered price
        rate = low.vendor_tax_rate
        text = f"low-value goods tax {_pct(rate)} on goods + freight + insurance, vendor-collected"
        return v.cif, rate, _round(v.cif * rate), text, "vendor"
    entry = calc.country.vat_on(line.hs_code, calc.on)
    rate = entry.value.rate
    base = v.cif + duty + excise_full
    rule = f"{entry.value.name} {_pct(rate)} on goods + freight + insurance + duty + excise"
    factor = regime.cbec.tax_factor if regime.cbec is not None else _ONE
    if regime.cbec is not None:
        rule += f"; CBEC x {factor}"
    collected: Literal["border", "none"] = "border" if rate > 0 else "none"
    return base, rate, _round(base * rate * factor), f"{rule} {entry.describe()}", collected


def _choose_regime(
    calc: _Calc, regime: str, annual_minor: int, values: Sequence[_Values]
) -> CbecRule | None:
    if regime == "general":
        return None
    entry = calc.country.cbec_on(calc.on) if regime == "cbec" else None
    if entry is None:
        raise UnknownRegime(
            f"regime {regime!r} is not available for {calc.country.code} on {calc.on}; "
            f"use 'general'" + (" or 'cbec' (CN)" if regime == "cbec" else ""),
            field="regime",
        )
    rule = entry.value
    order = sum(v.cif for v in values)
    order_limit = calc.convert(rule.order_limit_minor, rule.currency)
    annual_limit = calc.convert(rule.annual_limit_minor, rule.currency)
    if order <= order_limit and annual_minor + order <= annual_limit:
        calc.explanations.append(
            f"CBEC retail import within limits: order {order} <= {order_limit} and annual "
            f"{annual_minor} + {order} <= {annual_limit} (minor units); {entry.describe()}"
        )
        return rule
    calc.explanations.append(
        f"CBEC limit exceeded (order {order} vs {order_limit}, annual {annual_minor} + {order} "
        f"vs {annual_limit}): general trade treatment; {entry.describe()}"
    )
    return None


def _choose_dftz(
    calc: _Calc, tariffs: Tariffs, origin_hub: str | None, destination_hub: str | None
) -> Dated[DftzRule] | None:
    if origin_hub is None and destination_hub is None:
        return None
    hubs = tariffs.dftz_hubs
    dest_country = hubs.get(destination_hub) if destination_hub is not None else None
    if dest_country is not None and dest_country != calc.country.code:
        raise InvalidLine(
            f"destination hub {destination_hub!r} is in {dest_country}, not in {calc.country.code}",
            field="destination_hub",
        )
    members = origin_hub in hubs and destination_hub in hubs and origin_hub != destination_hub
    entry = tariffs.dftz_on(calc.on) if members else None
    if entry is None:
        calc.explanations.append(
            f"DFTZ not applied: hubs {origin_hub!r} -> {destination_hub!r} are not two member "
            f"hubs with a rule in force on {calc.on.isoformat()}"
        )
        return None
    calc.explanations.append(f"DFTZ {origin_hub} -> {destination_hub}: {entry.describe()}")
    return entry


def _fees(calc: _Calc, customs_value: int, low_applied: bool) -> tuple[FeeLine, ...]:
    out = []
    for entry in calc.country.fees_on(calc.on):
        fee = entry.value
        if low_applied:
            calc.explanations.append(f"{fee.name} not charged: low-value consignment")
            continue
        if fee.kind == "flat":
            assert fee.currency is not None
            amount = calc.convert(fee.amount_minor, fee.currency)
            rule = f"flat {Money(fee.amount_minor, get_currency(fee.currency))}"
        else:
            amount = _round(customs_value * fee.rate)
            rule = f"{_pct(fee.rate)} of customs value"
        out.append(FeeLine(fee.name, amount, f"{rule} {entry.describe()}"))
    return tuple(out)


def _check_inputs(
    lines: Sequence[DeclarationLine],
    freight: int,
    insurance: int,
    incoterm: str,
    on: date,
    currency: str,
    annual_minor: int,
) -> None:
    if not lines:
        raise InvalidLine("a consignment needs at least one line", field="lines")
    for line in lines:
        if not isinstance(line, DeclarationLine):
            raise InvalidLine(
                f"lines must be DeclarationLine, got {type(line).__name__}", field="lines"
            )
    check_non_negative(freight, "freight_minor")
    check_non_negative(insurance, "insurance_minor")
    check_non_negative(annual_minor, "annual_purchases_minor")
    check_incoterm(incoterm)
    check_currency(currency, "currency")
    if not isinstance(on, date) or isinstance(on, datetime):
        raise InvalidLine(f"date must be a datetime.date, got {on!r}", field="date")


def landed_cost(
    destination: str,
    lines: Sequence[DeclarationLine],
    *,
    freight_minor: int,
    insurance_minor: int,
    incoterm: str,
    on: date,
    currency: str,
    fx_rates: Mapping[str, Decimal] | None = None,
    fx_source: str = "given by the caller",
    regime: str = "general",
    annual_purchases_minor: int = 0,
    origin_hub: str | None = None,
    destination_hub: str | None = None,
    tariffs: Tariffs | None = None,
) -> LandedCost:
    """The landed cost of a consignment to ``destination`` on date ``on``, in ``currency``.

    ``freight_minor`` and ``insurance_minor`` are the international transport and insurance to
    the destination, in ``currency``; ``incoterm`` says whether line values already include
    them. ``regime='cbec'`` asks for China's cross-border e-commerce retail import treatment
    (``annual_purchases_minor``: the buyer's CBEC purchases this year, in ``currency``).
    ``fx_rates``: units of ``currency`` per one unit of each other currency an amount is in
    (line values, thresholds, flat fees), with ``fx_source`` saying where they come from; the
    ones used are recorded in the result (``fx_rates``), so that it can be computed again.
    """
    _check_inputs(
        lines, freight_minor, insurance_minor, incoterm, on, currency, annual_purchases_minor
    )
    country = (tariffs or default_tariffs()).get_country(destination)
    with localcontext() as ctx:
        ctx.prec = _PREC
        calc = _Calc(country, on, get_currency(currency), dict(fx_rates or {}))
        basis, values = _values(calc, lines, freight_minor, insurance_minor, incoterm)
        cbec = _choose_regime(calc, regime, annual_purchases_minor, values)
        dftz = _choose_dftz(calc, tariffs or default_tariffs(), origin_hub, destination_hub)
        decisions: list[LowValueDecision] = []
        duty_low = vat_low = None
        if cbec is None:
            duty_decision, duty_low = _low_value(calc, "duty", lines, values)
            vat_decision, vat_low = _low_value(calc, "vat", lines, values)
            decisions = [duty_decision, vat_decision]
        state = _Regime(cbec, dftz, duty_low, vat_low)
        costs = _line_costs(calc, lines, values, state)
        cv_total = sum(c.customs_value_minor for c in costs)
        fees = _fees(calc, cv_total, duty_low is not None or vat_low is not None)
    used = tuple(ExchangeRate(c, r, fx_source) for c, r in sorted(calc.used.items()))
    for x in used:
        calc.explanations.append(
            f"converted at 1 {x.currency} = {x.rate} {calc.currency.code} ({x.source})"
        )
    return replace(
        _summarise(calc, incoterm, basis, cbec, dftz, costs, fees, decisions), fx_rates=used
    )


def _line_costs(
    calc: _Calc, lines: Sequence[DeclarationLine], values: Sequence[_Values], state: _Regime
) -> list[LineCost]:
    seen: set[str] = set()
    out = []
    for item, (line, v) in enumerate(zip(lines, values, strict=True), 1):
        duty, duty_rule = _duty(calc, line, v, state, line.hs_code not in seen)
        seen.add(line.hs_code)
        excise, excise_full, excise_rule = _excise(calc, line, v.customs_value, duty, state.cbec)
        base, rate, vat, vat_rule, collected = _vat(calc, line, v, duty, excise_full, state)
        out.append(
            LineCost(
                item,
                line.hs_code,
                v.invoice,
                v.goods,
                v.freight,
                v.insurance,
                v.customs_value,
                duty,
                duty_rule,
                excise,
                excise_rule,
                base,
                rate,
                vat,
                vat_rule,
                collected,
            )
        )
    return out


def _summarise(
    calc: _Calc,
    incoterm: str,
    basis: str,
    cbec: CbecRule | None,
    dftz: Dated[DftzRule] | None,
    costs: Sequence[LineCost],
    fees: tuple[FeeLine, ...],
    decisions: Sequence[LowValueDecision],
) -> LandedCost:
    goods = sum(c.goods_minor for c in costs)
    freight = sum(c.freight_minor for c in costs)
    insurance = sum(c.insurance_minor for c in costs)
    duty = sum(c.duty_minor for c in costs)
    excise = sum(c.excise_minor for c in costs)
    vat = sum(c.vat_minor for c in costs)
    fees_minor = sum(f.amount_minor for f in fees)
    return LandedCost(
        destination=calc.country.code,
        on=calc.on,
        currency=calc.currency.code,
        incoterm=incoterm,
        valuation_basis=basis,
        regime="cbec" if cbec is not None else "general",
        dftz=dftz is not None,
        lines=tuple(costs),
        goods_minor=goods,
        freight_minor=freight,
        insurance_minor=insurance,
        customs_value_minor=sum(c.customs_value_minor for c in costs),
        duty_minor=duty,
        excise_minor=excise,
        vat_base_minor=sum(c.vat_base_minor for c in costs),
        vat_minor=vat,
        fees=fees,
        fees_minor=fees_minor,
        total_minor=goods + freight + insurance + duty + excise + vat + fees_minor,
        low_value=tuple(decisions),
        explanations=tuple(calc.explanations),
    )


def comprehensive_rate(
    vat_rate: Decimal,
    consumption_tax_rate: Decimal = Decimal(0),
    tax_factor: Decimal = Decimal("0.7"),
) -> Decimal:
    """China CBEC comprehensive rate, exact: (ct + vat) / (1 - ct) x factor.

    Published figures are this rounded half up to 0.01 percentage point: 0.091 (9.1%) at VAT
    13%; 0.230588... -> 0.2306 (23.06%) with a 15% consumption tax.
    """
    for name, rate in (
        ("vat_rate", vat_rate),
        ("consumption_tax_rate", consumption_tax_rate),
        ("tax_factor", tax_factor),
    ):
        if not isinstance(rate, Decimal) or not rate.is_finite() or rate < 0:
            raise InvalidLine(f"{name} must be a finite Decimal >= 0, got {rate!r}", field=name)
    if consumption_tax_rate >= 1:
        raise InvalidLine("consumption_tax_rate must be below 1", field="consumption_tax_rate")
    with localcontext() as ctx:
        ctx.prec = 28
        return (consumption_tax_rate + vat_rate) / (1 - consumption_tax_rate) * tax_factor


def clearance_decision(shipment: Shipment, cost: LandedCost) -> Clearance:
    """Lane by an explicit points rule; the DFTZ fast lane shortens green and amber.

    +2 if any line is in a sensitive HS chapter; +1 if the importer is not an authorised
    economic operator; +1 if any line declares no net mass. 0 points: green; 1-2: amber;
    3 or more: red.
    """
    points, reasons = 0, []
    sensitive = sorted({ln.hs_code[:2] for ln in shipment.lines} & SENSITIVE_CHAPTERS)
    if sensitive:
        points += 2
        reasons.append(f"+2 sensitive HS chapter {', '.join(sensitive)}")
    if not shipment.importer.authorised_operator:
        points += 1
        reasons.append("+1 importer is not an authorised economic operator")
    if any(ln.net_mass_kg == 0 for ln in shipment.lines):
        points += 1
        reasons.append("+1 a line declares no net mass")
    lane: Literal["green", "amber", "red"] = (
        "red" if points >= RISK_RED_MIN else "amber" if points >= RISK_AMBER_MIN else "green"
    )
    hours = (DFTZ_CLEARANCE_HOURS if cost.dftz else CLEARANCE_HOURS)[lane]
    if cost.dftz:
        reasons.append("DFTZ fast lane between member hubs")
    return Clearance(lane, cost.dftz, points, tuple(reasons), hours)


class DeclarationLog(Protocol):
    """Where declarations are recorded, idempotently by shipment id."""

    def record(self, declaration: Declaration) -> Declaration: ...

    def find(self, shipment_id: str) -> Declaration | None: ...


class MemoryDeclarationLog:
    """An in-memory declaration log. TODO(#4): a store.py table once customs is persisted."""

    def __init__(self) -> None:
        self._by_shipment: dict[str, Declaration] = {}

    def record(self, declaration: Declaration) -> Declaration:
        first = self._by_shipment.get(declaration.shipment_id)
        if first is None:
            self._by_shipment[declaration.shipment_id] = declaration
            return declaration
        if first != declaration:
            raise DeclarationConflict(
                f"shipment {declaration.shipment_id!r} is already declared differently",
                field="shipment_id",
            )
        return first

    def find(self, shipment_id: str) -> Declaration | None:
        return self._by_shipment.get(shipment_id)

    def all(self) -> tuple[Declaration, ...]:
        return tuple(self._by_shipment.values())


def declare(
    shipment: Shipment,
    on: date,
    log: DeclarationLog,
    *,
    fx_rates: Mapping[str, Decimal] | None = None,
    fx_source: str = "given by the caller",
    regime: str = "general",
    annual_purchases_minor: int = 0,
    tariffs: Tariffs | None = None,
) -> Declaration:
    """Compute the landed cost, build the import declaration and clearance, and record it.

    Idempotent by ``shipment.shipment_id``: a replay returns the first declaration; the same id
    with a different result raises DeclarationConflict and records nothing.
    """
    cost = landed_cost(
        shipment.destination,
        shipment.lines,
        freight_minor=shipment.freight_minor,
        insurance_minor=shipment.insurance_minor,
        incoterm=shipment.incoterm,
        on=on,
        currency=shipment.currency,
        fx_rates=fx_rates,
        fx_source=fx_source,
        regime=regime,
        annual_purchases_minor=annual_purchases_minor,
        origin_hub=shipment.origin_hub,
        destination_hub=shipment.destination_hub,
        tariffs=tariffs,
    )
    items = tuple(
        DeclarationItem(
            c.item,
            ln.hs_code,
            ln.description,
            ln.origin,
            ln.quantity,
            ln.unit,
            ln.net_mass_kg,
            c.customs_value_minor,
            c.duty_minor,
            c.excise_minor,
            c.vat_minor,
        )
        for ln, c in zip(shipment.lines, cost.lines, strict=True)
    )
    declaration = Declaration(
        declaration_id=f"IM-{shipment.destination}-{shipment.shipment_id}",
        shipment_id=shipment.shipment_id,
        type_code="IM",
        on=on,
        destination=shipment.destination,
        exporter=shipment.exporter,
        importer=shipment.importer,
        declarant=shipment.declarant,
        incoterm=shipment.incoterm,
        valuation_basis=cost.valuation_basis,
        currency=cost.currency,
        regime=cost.regime,
        dftz=cost.dftz,
        items=items,
        customs_value_minor=cost.customs_value_minor,
        duty_minor=cost.duty_minor,
        excise_minor=cost.excise_minor,
        vat_minor=cost.vat_minor,
        fees_minor=cost.fees_minor,
        total_taxes_minor=cost.duty_minor + cost.excise_minor + cost.vat_minor + cost.fees_minor,
        clearance=clearance_decision(shipment, cost),
        landed_cost=cost,
        fx_rates=cost.fx_rates,
    )
    return log.record(declaration)
