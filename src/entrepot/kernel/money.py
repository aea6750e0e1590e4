"""Money: ISO 4217 currencies and integer amounts in minor units.

Rules every context follows (design guide, section 4):

- An amount is an ``int`` in the currency's minor unit (cents for EUR, yen for JPY, fils for
  BHD), paired with a :class:`Currency` that carries its ISO 4217 exponent. Never ``float``:
  constructing :class:`Money` with anything but an ``int`` raises ``TypeError``.
- Text is parsed exactly. ``"12.34"`` EUR is 1234 minor units; more fractional digits than the
  currency's exponent is an error, never a silent rounding. :func:`format_amount` is the inverse:
  ``parse_amount(format_amount(x, c), c) == x`` for every int ``x``.
- ``Decimal`` is used only for FX rates. :func:`convert` computes the exact product and rounds
  once, to the target's minor unit, with a rounding mode the caller must state.
- :func:`allocate` splits an amount by integer ratios; the parts always sum to the total.
- Arithmetic and ordering only combine amounts of one currency (else :class:`CurrencyMismatch`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import (
    ROUND_05UP,
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
    localcontext,
)
from types import MappingProxyType

from entrepot.kernel.errors import InvalidInput

__all__ = [
    "AMOUNT_TEXT_LEN_MAX",
    "CURRENCIES",
    "RATE_DIGITS_MAX",
    "RATE_EXPONENT_MAX",
    "ROUNDING_MODES",
    "Currency",
    "CurrencyMismatch",
    "InvalidAmount",
    "InvalidRate",
    "InvalidRatios",
    "InvalidRounding",
    "Money",
    "MoneyError",
    "UnknownCurrency",
    "allocate",
    "check_rate",
    "check_rounding",
    "convert",
    "find_currency",
    "format_amount",
    "get_currency",
    "parse_amount",
]

#: Longest amount text accepted; below Python's 4300-digit int/str conversion limit.
AMOUNT_TEXT_LEN_MAX = 4_000
#: Significant digits an FX rate may carry.
RATE_DIGITS_MAX = 50
#: An FX rate must lie within 1E-30 .. 1E+30 (by its adjusted exponent).
RATE_EXPONENT_MAX = 30
#: Minimum working precision for conversions: covers 128-bit amounts times 50-digit rates.
_DECIMAL_PREC_MIN = 100

ROUNDING_MODES: frozenset[str] = frozenset(
    {
        ROUND_05UP,
        ROUND_CEILING,
        ROUND_DOWN,
        ROUND_FLOOR,
        ROUND_HALF_DOWN,
        ROUND_HALF_EVEN,
        ROUND_HALF_UP,
        ROUND_UP,
    }
)

_CODE_RE = re.compile(r"[A-Z]{3}")
_NUMERIC_RE = re.compile(r"[0-9]{3}")
_AMOUNT_RE = re.compile(r"([+-]?)([0-9]+)(?:\.([0-9]+))?")
_NON_FINITE = frozenset({"nan", "snan", "inf", "infinity"})
_RATE_TEXT_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")


class MoneyError(InvalidInput, ValueError):
    """Base of money errors: bad input, so a ValueError and a problem+json ``invalid_input``."""

    code = "money_error"


class UnknownCurrency(MoneyError):
    code = "unknown_currency"


class CurrencyMismatch(MoneyError):
    code = "currency_mismatch"


class InvalidAmount(MoneyError):
    code = "invalid_amount"


class InvalidRate(MoneyError):
    code = "invalid_rate"


class InvalidRounding(MoneyError):
    code = "invalid_rounding"


class InvalidRatios(MoneyError):
    code = "invalid_ratios"


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency: alphabetic code, numeric code, minor-unit exponent, name."""

    code: str
    numeric: str
    exponent: int
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or _CODE_RE.fullmatch(self.code) is None:
            raise ValueError(f"currency code must be three upper-case letters, got {self.code!r}")
        if not isinstance(self.numeric, str) or _NUMERIC_RE.fullmatch(self.numeric) is None:
            raise ValueError(f"numeric code must be three digits, got {self.numeric!r}")
        if type(self.exponent) is not int or not 0 <= self.exponent <= 4:
            raise ValueError(f"exponent must be an int in 0..4, got {self.exponent!r}")

    def __str__(self) -> str:
        return self.code


# ISO 4217 List One (active codes with a minor unit), including fund codes such as CLF.
# Precious metals, XDR and test codes have no minor unit and are left out on purpose.
_TABLE: tuple[tuple[str, str, int, str], ...] = (
    ("AED", "784", 2, "UAE Dirham"),
    ("AFN", "971", 2, "Afghani"),
    ("ALL", "008", 2, "Lek"),
    ("AMD", "051", 2, "Armenian Dram"),
    ("ANG", "532", 2, "Netherlands Antillean Guilder"),
    ("AOA", "973", 2, "Kwanza"),
    ("ARS", "032", 2, "Argentine Peso"),
    ("AUD", "036", 2, "Australian Dollar"),
    ("AWG", "533", 2, "Aruban Florin"),
    ("AZN", "944", 2, "Azerbaijan Manat"),
    ("BAM", "977", 2, "Convertible Mark"),
    ("BBD", "052", 2, "Barbados Dollar"),
    ("BDT", "050", 2, "Taka"),
    ("BGN", "975", 2, "Bulgarian Lev"),
    ("BHD", "048", 3, "Bahraini Dinar"),
    ("BIF", "108", 0, "Burundi Franc"),
    ("BMD", "060", 2, "Bermudian Dollar"),
    ("BND", "096", 2, "Brunei Dollar"),
    ("BOB", "068", 2, "Boliviano"),
    ("BOV", "984", 2, "Mvdol"),
    ("BRL", "986", 2, "Brazilian Real"),
    ("BSD", "044", 2, "Bahamian Dollar"),
    ("BTN", "064", 2, "Ngultrum"),
    ("BWP", "072", 2, "Pula"),
    ("BYN", "933", 2, "Belarusian Ruble"),
    ("BZD", "084", 2, "Belize Dollar"),
    ("CAD", "124", 2, "Canadian Dollar"),
    ("CDF", "976", 2, "Congolese Franc"),
    ("CHE", "947", 2, "WIR Euro"),
    ("CHF", "756", 2, "Swiss Franc"),
    ("CHW", "948", 2, "WIR Franc"),
    ("CLF", "990", 4, "Unidad de Fomento"),
    ("CLP", "152", 0, "Chilean Peso"),
    ("CNY", "156", 2, "Yuan Renminbi"),
    ("COP", "170", 2, "Colombian Peso"),
    ("COU", "970", 2, "Unidad de Valor Real"),
    ("CRC", "188", 2, "Costa Rican Colon"),
    ("CUP", "192", 2, "Cuban Peso"),
    ("CVE", "132", 2, "Cabo Verde Escudo"),
    ("CZK", "203", 2, "Czech Koruna"),
    ("DJF", "262", 0, "Djibouti Franc"),
    ("DKK", "208", 2, "Danish Krone"),
    ("DOP", "214", 2, "Dominican Peso"),
    ("DZD", "012", 2, "Algerian Dinar"),
    ("EGP", "818", 2, "Egyptian Pound"),
    ("ERN", "232", 2, "Nakfa"),
    ("ETB", "230", 2, "Ethiopian Birr"),
    ("EUR", "978", 2, "Euro"),
    ("FJD", "242", 2, "Fiji Dollar"),
    ("FKP", "238", 2, "Falkland Islands Pound"),
    ("GBP", "826", 2, "Pound Sterling"),
    ("GEL", "981", 2, "Lari"),
    ("GHS", "936", 2, "Ghana Cedi"),
    ("GIP", "292", 2, "Gibraltar Pound"),
    ("GMD", "270", 2, "Dalasi"),
    ("GNF", "324", 0, "Guinean Franc"),
    ("GTQ", "320", 2, "Quetzal"),
    ("GYD", "328", 2, "Guyana Dollar"),
    ("HKD", "344", 2, "Hong Kong Dollar"),
    ("HNL", "340", 2, "Lempira"),
    ("HTG", "332", 2, "Gourde"),
    ("HUF", "348", 2, "Forint"),
    ("IDR", "360", 2, "Rupiah"),
    ("ILS", "376", 2, "New Israeli Sheqel"),
    ("INR", "356", 2, "Indian Rupee"),
    ("IQD", "368", 3, "Iraqi Dinar"),
    ("IRR", "364", 2, "Iranian Rial"),
    ("ISK", "352", 0, "Iceland Krona"),
    ("JMD", "388", 2, "Jamaican Dollar"),
    ("JOD", "400", 3, "Jordanian Dinar"),
    ("JPY", "392", 0, "Yen"),
    ("KES", "404", 2, "Kenyan Shilling"),
    ("KGS", "417", 2, "Som"),
    ("KHR", "116", 2, "Riel"),
    ("KMF", "174", 0, "Comorian Franc"),
    ("KPW", "408", 2, "North Korean Won"),
    ("KRW", "410", 0, "Won"),
    ("KWD", "414", 3, "Kuwaiti Dinar"),
    ("KYD", "136", 2, "Cayman Islands Dollar"),
    ("KZT", "398", 2, "Tenge"),
    ("LAK", "418", 2, "Lao Kip"),
    ("LBP", "422", 2, "Lebanese Pound"),
    ("LKR", "144", 2, "Sri Lanka Rupee"),
    ("LRD", "430", 2, "Liberian Dollar"),
    ("LSL", "426", 2, "Loti"),
    ("LYD", "434", 3, "Libyan Dinar"),
    ("MAD", "504", 2, "Moroccan Dirham"),
    ("MDL", "498", 2, "Moldovan Leu"),
    ("MGA", "969", 2, "Malagasy Ariary"),
    ("MKD", "807", 2, "Denar"),
    ("MMK", "104", 2, "Kyat"),
    ("MNT", "496", 2, "Tugrik"),
    ("MOP", "446", 2, "Pataca"),
    ("MRU", "929", 2, "Ouguiya"),
    ("MUR", "480", 2, "Mauritius Rupee"),
    ("MVR", "462", 2, "Rufiyaa"),
    ("MWK", "454", 2, "Malawi Kwacha"),
    ("MXN", "484", 2, "Mexican Peso"),
    ("MXV", "979", 2, "Mexican Unidad de Inversion (UDI)"),
    ("MYR", "458", 2, "Malaysian Ringgit"),
    ("MZN", "943", 2, "Mozambique Metical"),
    ("NAD", "516", 2, "Namibia Dollar"),
    ("NGN", "566", 2, "Naira"),
    ("NIO", "558", 2, "Cordoba Oro"),
    ("NOK", "578", 2, "Norwegian Krone"),
    ("NPR", "524", 2, "Nepalese Rupee"),
    ("NZD", "554", 2, "New Zealand Dollar"),
    ("OMR", "512", 3, "Rial Omani"),
    ("PAB", "590", 2, "Balboa"),
    ("PEN", "604", 2, "Sol"),
    ("PGK", "598", 2, "Kina"),
    ("PHP", "608", 2, "Philippine Peso"),
    ("PKR", "586", 2, "Pakistan Rupee"),
    ("PLN", "985", 2, "Zloty"),
    ("PYG", "600", 0, "Guarani"),
    ("QAR", "634", 2, "Qatari Rial"),
    ("RON", "946", 2, "Romanian Leu"),
    ("RSD", "941", 2, "Serbian Dinar"),
    ("RUB", "643", 2, "Russian Ruble"),
    ("RWF", "646", 0, "Rwanda Franc"),
    ("SAR", "682", 2, "Saudi Riyal"),
    ("SBD", "090", 2, "Solomon Islands Dollar"),
    ("SCR", "690", 2, "Seychelles Rupee"),
    ("SDG", "938", 2, "Sudanese Pound"),
    ("SEK", "752", 2, "Swedish Krona"),
    ("SGD", "702", 2, "Singapore Dollar"),
    ("SHP", "654", 2, "Saint Helena Pound"),
    ("SLE", "925", 2, "Leone"),
    ("SOS", "706", 2, "Somali Shilling"),
    ("SRD", "968", 2, "Surinam Dollar"),
    ("SSP", "728", 2, "South Sudanese Pound"),
    ("STN", "930", 2, "Dobra"),
    ("SVC", "222", 2, "El Salvador Colon"),
    ("SYP", "760", 2, "Syrian Pound"),
    ("SZL", "748", 2, "Lilangeni"),
    ("THB", "764", 2, "Baht"),
    ("TJS", "972", 2, "Somoni"),
    ("TMT", "934", 2, "Turkmenistan New Manat"),
    ("TND", "788", 3, "Tunisian Dinar"),
    ("TOP", "776", 2, "Pa'anga"),
    ("TRY", "949", 2, "Turkish Lira"),
    ("TTD", "780", 2, "Trinidad and Tobago Dollar"),
    ("TWD", "901", 2, "New Taiwan Dollar"),
    ("TZS", "834", 2, "Tanzanian Shilling"),
    ("UAH", "980", 2, "Hryvnia"),
    ("UGX", "800", 0, "Uganda Shilling"),
    ("USD", "840", 2, "US Dollar"),
    ("USN", "997", 2, "US Dollar (Next day)"),
    ("UYI", "940", 0, "Uruguay Peso en Unidades Indexadas (UI)"),
    ("UYU", "858", 2, "Peso Uruguayo"),
    ("UYW", "927", 4, "Unidad Previsional"),
    ("UZS", "860", 2, "Uzbekistan Sum"),
    ("VED", "926", 2, "Bolivar Soberano"),
    ("VES", "928", 2, "Bolivar Soberano"),
    ("VND", "704", 0, "Dong"),
    ("VUV", "548", 0, "Vatu"),
    ("WST", "882", 2, "Tala"),
    ("XAF", "950", 0, "CFA Franc BEAC"),
    ("XCD", "951", 2, "East Caribbean Dollar"),
    ("XOF", "952", 0, "CFA Franc BCEAO"),
    ("XPF", "953", 0, "CFP Franc"),
    ("YER", "886", 2, "Yemeni Rial"),
    ("ZAR", "710", 2, "Rand"),
    ("ZMW", "967", 2, "Zambian Kwacha"),
    ("ZWG", "924", 2, "Zimbabwe Gold"),
)

CURRENCIES: Mapping[str, Currency] = MappingProxyType({row[0]: Currency(*row) for row in _TABLE})


def find_currency(code: str) -> Currency | None:
    """The currency with this ISO 4217 alphabetic code, or None."""
    if not isinstance(code, str):
        return None
    return CURRENCIES.get(code)


#: The most characters of a refused value an error quotes: the value came from a request,
#: and its error goes into the answer and every log line recording it.
QUOTE_LEN_MAX = 64


def _quoted(value: object) -> str:
    """``repr(value)``, or for a long string its first characters, '...' and its length."""
    if isinstance(value, str) and len(value) > QUOTE_LEN_MAX:
        return f"{value[:QUOTE_LEN_MAX]!r}... ({len(value)} characters)"
    return repr(value)


def get_currency(code: str) -> Currency:
    """The currency with this ISO 4217 alphabetic code; raises UnknownCurrency."""
    if not isinstance(code, str) or _CODE_RE.fullmatch(code) is None:
        raise UnknownCurrency(
            f"malformed currency code {_quoted(code)}: expected three upper-case letters like "
            "'EUR'",
            field="currency",
        )
    currency = CURRENCIES.get(code)
    if currency is None:
        raise UnknownCurrency(f"unknown currency code {code!r}: not in ISO 4217", field="currency")
    return currency


def _as_currency(currency: Currency | str) -> Currency:
    return currency if isinstance(currency, Currency) else get_currency(currency)


def _check_int(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")


def format_amount(amount_minor: int, currency: Currency | str) -> str:
    """Canonical decimal text of an amount: 1234 EUR -> "12.34", -5 -> "-0.05", 7 JPY -> "7"."""
    _check_int(amount_minor, "amount_minor")
    exponent = _as_currency(currency).exponent
    sign = "-" if amount_minor < 0 else ""
    digits = str(abs(amount_minor))
    if exponent == 0:
        return sign + digits
    digits = digits.rjust(exponent + 1, "0")
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"


def parse_amount(text: str, currency: Currency | str) -> int:
    """Exact minor units of decimal text: "12.34" EUR -> 1234. Never rounds; raises InvalidAmount.

    Accepted: an optional sign, ASCII digits, then optionally "." and 1..exponent digits.
    """
    resolved = _as_currency(currency)
    if not isinstance(text, str):
        raise TypeError(f"amount text must be a str, got {type(text).__name__} {text!r}")
    if len(text) > AMOUNT_TEXT_LEN_MAX:
        raise InvalidAmount(
            f"invalid amount {text[:20]!r}...: {len(text)} characters, "
            f"at most {AMOUNT_TEXT_LEN_MAX}",
            field="amount",
        )
    match = _AMOUNT_RE.fullmatch(text)
    if match is None:
        raise InvalidAmount(
            f"invalid amount {_quoted(text)}: {_why_malformed(text)}", field="amount"
        )
    sign, whole, fraction = match.group(1), match.group(2), match.group(3) or ""
    if len(fraction) > resolved.exponent:
        raise InvalidAmount(
            f"invalid amount {_quoted(text)}: {resolved.code} allows at most {resolved.exponent} "
            f"fractional digits, got {len(fraction)} (amounts are never rounded)",
            field="amount",
        )
    minor = int(whole + fraction.ljust(resolved.exponent, "0"))
    return -minor if sign == "-" else minor


def _why_malformed(text: str) -> str:
    if text == "":
        return "it is empty"
    if any(char.isspace() for char in text):
        return "it contains whitespace"
    if "," in text:
        return "it contains ','; use '.' as the decimal point and no digit grouping"
    if text.lstrip("+-").lower() in _NON_FINITE:
        return "it is not a finite number"
    if "e" in text.lower():
        return "scientific notation is not accepted; write plain digits like '1200.50'"
    return "expected an optional sign, digits, and optionally '.' and digits, like '-12.34'"


@dataclass(frozen=True, slots=True, repr=False)
class Money:
    """An exact amount: ``amount_minor`` minor units of ``currency``."""

    amount_minor: int
    currency: Currency

    def __post_init__(self) -> None:
        _check_int(self.amount_minor, "amount_minor")
        if not isinstance(self.currency, Currency):
            raise TypeError(f"currency must be a Currency, got {type(self.currency).__name__}")

    @classmethod
    def parse(cls, text: str, currency: Currency | str) -> Money:
        """``Money.parse("12.34", "EUR")`` is 1234 minor units of EUR; see :func:`parse_amount`."""
        resolved = _as_currency(currency)
        return cls(parse_amount(text, resolved), resolved)

    @classmethod
    def zero(cls, currency: Currency | str) -> Money:
        return cls(0, _as_currency(currency))

    def is_zero(self) -> bool:
        return self.amount_minor == 0

    def is_positive(self) -> bool:
        return self.amount_minor > 0

    def is_negative(self) -> bool:
        return self.amount_minor < 0

    def check_same_currency(self, other: Money) -> None:
        """Raises CurrencyMismatch unless ``other`` is in this currency."""
        if other.currency != self.currency:
            raise CurrencyMismatch(
                f"currency mismatch: {self.currency.code} and {other.currency.code}"
            )

    def __str__(self) -> str:
        return f"{format_amount(self.amount_minor, self.currency)} {self.currency.code}"

    def __repr__(self) -> str:
        return f"Money(amount_minor={self.amount_minor}, currency={self.currency.code})"

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self.check_same_currency(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self.check_same_currency(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_minor, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount_minor), self.currency)

    def __mul__(self, factor: int) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, int):
            return NotImplemented
        return Money(self.amount_minor * factor, self.currency)

    def __rmul__(self, factor: int) -> Money:
        return self.__mul__(factor)

    def __lt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self.check_same_currency(other)
        return self.amount_minor < other.amount_minor

    def __le__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self.check_same_currency(other)
        return self.amount_minor <= other.amount_minor

    def __gt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self.check_same_currency(other)
        return self.amount_minor > other.amount_minor

    def __ge__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self.check_same_currency(other)
        return self.amount_minor >= other.amount_minor


def check_rate(rate: Decimal) -> None:
    """Raises InvalidRate unless ``rate`` is a finite Decimal > 0 of sane size and precision."""
    if not isinstance(rate, Decimal):
        raise InvalidRate(
            f"rate must be a decimal.Decimal, got {type(rate).__name__} {rate!r}", field="rate"
        )
    if not rate.is_finite() or rate <= 0:
        raise InvalidRate(f"rate must be finite and > 0, got {rate}", field="rate")
    if abs(rate.adjusted()) > RATE_EXPONENT_MAX:
        raise InvalidRate(
            f"rate {rate} is outside 1E-{RATE_EXPONENT_MAX}..1E+{RATE_EXPONENT_MAX}", field="rate"
        )
    if len(rate.as_tuple().digits) > RATE_DIGITS_MAX:
        raise InvalidRate(
            f"rate {rate} has more than {RATE_DIGITS_MAX} significant digits", field="rate"
        )


def parse_rate_text(text: str) -> Decimal:
    """A rate as a provider writes it: ASCII digits, optionally a point and more digits
    ("0.0032"). Python's Decimal also reads an exponent ("5e-3"), a sign, surrounding
    whitespace, digits of other scripts and "1_0" (as ten: a typo posted as ten times the
    rate); each is refused here (InvalidRate, naming the text), as amounts are. The value's
    range is :func:`check_rate`'s."""
    if not isinstance(text, str) or _RATE_TEXT_RE.fullmatch(text) is None:
        raise InvalidRate(
            f"rate {_quoted(text)} is not a plain decimal such as 0.0032: ASCII digits and at "
            "most one point, no sign, exponent, spaces or digit separators",
            field="rate",
        )
    return Decimal(text)


def check_rounding(rounding: str) -> None:
    """Raises InvalidRounding unless ``rounding`` is one of decimal's ROUND_* constants."""
    if not isinstance(rounding, str) or rounding not in ROUNDING_MODES:
        raise InvalidRounding(
            f"rounding must be one of {', '.join(sorted(ROUNDING_MODES))}, got {rounding!r}",
            field="rounding",
        )


def convert(money: Money, rate: Decimal, to: Currency | str, rounding: str) -> Money:
    """``money`` in ``to`` at ``rate`` (units of ``to`` per one unit of ``money.currency``).

    The product is exact; it is rounded once, to ``to``'s minor unit, with ``rounding``.
    """
    check_rate(rate)
    check_rounding(rounding)
    target = _as_currency(to)
    sign, digits, exponent = rate.as_tuple()
    assert sign == 0 and isinstance(exponent, int)  # check_rate: finite and positive
    coefficient = int("".join(map(str, digits)))
    shift = exponent + target.exponent - money.currency.exponent
    # Built from integers and a string: exact, no context rounding before the one below.
    exact = Decimal(f"{money.amount_minor * coefficient}E{shift}")
    with localcontext() as ctx:
        ctx.prec = max(_DECIMAL_PREC_MIN, len(exact.as_tuple().digits) + max(shift, 0) + 1)
        minor = exact.quantize(Decimal(1), rounding=rounding)
    return Money(int(minor), target)


def allocate(money: Money, ratios: Sequence[int]) -> list[Money]:
    """Split ``money`` in proportion to ``ratios``; the parts sum exactly to ``money``.

    Each part is rounded toward zero; the leftover minor units go one each to the parts with
    the largest remainders (ties: first part first), so every part is less than one minor unit
    from its exact share. Equal ratios give parts at most one minor unit apart.
    """
    _check_ratios(ratios)
    total = sum(ratios)
    magnitude = abs(money.amount_minor)
    parts = [magnitude * ratio // total for ratio in ratios]
    leftover = magnitude - sum(parts)
    by_remainder = sorted(range(len(ratios)), key=lambda i: (-(magnitude * ratios[i] % total), i))
    for index in by_remainder[:leftover]:
        parts[index] += 1
    sign = -1 if money.amount_minor < 0 else 1
    return [Money(sign * part, money.currency) for part in parts]


def _check_ratios(ratios: Sequence[int]) -> None:
    for ratio in ratios:
        _check_int(ratio, "ratio")
    if len(ratios) == 0:
        raise InvalidRatios("ratios must not be empty", field="ratios")
    if any(ratio < 0 for ratio in ratios):
        raise InvalidRatios(f"ratios must not be negative, got {list(ratios)}", field="ratios")
    if sum(ratios) == 0:
        raise InvalidRatios(f"ratios must not all be zero, got {list(ratios)}", field="ratios")
