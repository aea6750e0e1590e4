"""Money: currencies, exact parsing and formatting, arithmetic, FX conversion, allocation."""

from __future__ import annotations

import dataclasses
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
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from entrepot.kernel.money import (
    AMOUNT_TEXT_LEN_MAX,
    CURRENCIES,
    ROUNDING_MODES,
    Currency,
    CurrencyMismatch,
    InvalidAmount,
    InvalidRate,
    InvalidRatios,
    InvalidRounding,
    Money,
    MoneyError,
    UnknownCurrency,
    allocate,
    convert,
    find_currency,
    format_amount,
    get_currency,
    parse_amount,
    parse_rate_text,
)

EUR = get_currency("EUR")
USD = get_currency("USD")
CNY = get_currency("CNY")
JPY = get_currency("JPY")
BHD = get_currency("BHD")
CLF = get_currency("CLF")
RWF = get_currency("RWF")

currencies = st.sampled_from(sorted(CURRENCIES.values(), key=lambda c: c.code))


def usd(amount_minor: int) -> Money:
    return Money(amount_minor, USD)


# --- Currency table ----------------------------------------------------------------------------

EXPECTED_EXPONENTS = {
    "CNY": 2, "MYR": 2, "EUR": 2, "RWF": 0, "ETB": 2, "USD": 2, "GBP": 2, "INR": 2, "AUD": 2,
    "JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3, "IQD": 3, "LYD": 3,
    "CLF": 4, "UYW": 4, "CHF": 2, "CAD": 2, "SGD": 2, "HKD": 2, "NZD": 2, "ZAR": 2, "KES": 2,
    "UGX": 0, "TZS": 2, "NGN": 2, "GHS": 2, "EGP": 2, "AED": 2, "SAR": 2, "THB": 2, "IDR": 2,
    "VND": 0, "PHP": 2, "BRL": 2, "MXN": 2, "XOF": 0, "XAF": 0, "ISK": 0, "PYG": 0, "CLP": 0,
    "BIF": 0, "DJF": 0, "GNF": 0, "KMF": 0, "VUV": 0, "XPF": 0, "UYI": 0,
}  # fmt: skip


@pytest.mark.parametrize(("code", "exponent"), sorted(EXPECTED_EXPONENTS.items()))
def test_exponent_follows_iso_4217(code: str, exponent: int) -> None:
    assert get_currency(code).exponent == exponent


def test_currency_records_are_complete() -> None:
    assert get_currency("CNY") == Currency("CNY", "156", 2, "Yuan Renminbi")
    assert get_currency("RWF") == Currency("RWF", "646", 0, "Rwanda Franc")
    assert get_currency("ETB") == Currency("ETB", "230", 2, "Ethiopian Birr")
    assert get_currency("MYR") == Currency("MYR", "458", 2, "Malaysian Ringgit")
    assert get_currency("USD").numeric == "840"
    assert str(EUR) == "EUR"


def test_table_is_consistent() -> None:
    assert len(CURRENCIES) == 165
    assert all(code == currency.code for code, currency in CURRENCIES.items())
    numerics = [currency.numeric for currency in CURRENCIES.values()]
    assert len(set(numerics)) == len(numerics)
    assert {c.exponent for c in CURRENCIES.values()} == {0, 2, 3, 4}


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        CURRENCIES["XXX"] = EUR  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        EUR.exponent = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("XYZ", "unknown currency code 'XYZ': not in ISO 4217"),
        ("XAU", "unknown currency code 'XAU': not in ISO 4217"),
        ("eur", "malformed currency code 'eur': expected three upper-case letters like 'EUR'"),
        ("EURO", "malformed currency code 'EURO': expected three upper-case letters like 'EUR'"),
        ("", "malformed currency code '': expected three upper-case letters like 'EUR'"),
        (" EUR", "malformed currency code ' EUR': expected three upper-case letters like 'EUR'"),
        (978, "malformed currency code 978: expected three upper-case letters like 'EUR'"),
    ],
)
def test_get_currency_rejects(code: Any, message: str) -> None:
    with pytest.raises(UnknownCurrency) as caught:
        get_currency(code)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)
    assert caught.value.code == "unknown_currency"
    assert caught.value.field == "currency"


def test_find_currency() -> None:
    assert find_currency("EUR") is EUR
    assert find_currency("XYZ") is None
    assert find_currency("eur") is None
    assert find_currency(None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [("eur", "978", 2, "Euro"), ("EUR", "78", 2, "Euro"), ("EUR", "978", 5, "Euro")],
)
def test_currency_checks_its_fields(fields: tuple[str, str, int, str]) -> None:
    with pytest.raises(ValueError):
        Currency(*fields)


# --- Money construction and arithmetic -----------------------------------------------------------


@pytest.mark.parametrize("amount", [1.0, 1.5, True, False, Decimal("1"), "100", None])
def test_money_rejects_non_int_amounts(amount: Any) -> None:
    with pytest.raises(TypeError, match="amount_minor must be an int"):
        Money(amount, EUR)


def test_money_rejects_currency_code_string() -> None:
    with pytest.raises(TypeError, match="currency must be a Currency, got str"):
        Money(1, "EUR")  # type: ignore[arg-type]


def test_money_is_frozen_and_hashable() -> None:
    money = Money(1234, EUR)
    with pytest.raises(dataclasses.FrozenInstanceError):
        money.amount_minor = 1  # type: ignore[misc]
    assert {money, Money(1234, EUR)} == {Money(1234, EUR)}
    assert repr(money) == "Money(amount_minor=1234, currency=EUR)"


def test_arithmetic_within_one_currency() -> None:
    assert usd(1234) + usd(66) == usd(1300)
    assert usd(1234) - usd(1300) == usd(-66)
    assert -usd(5) == usd(-5)
    assert abs(usd(-5)) == usd(5)
    assert usd(250) * 3 == usd(750)
    assert 3 * usd(250) == usd(750)
    assert usd(250) * -2 == usd(-500)
    assert sum([usd(1), usd(2), usd(3)], Money.zero("USD")) == usd(6)


def test_predicates() -> None:
    assert Money.zero(EUR).is_zero()
    assert not Money(1, EUR).is_zero()
    assert Money(1, EUR).is_positive() and not Money(1, EUR).is_negative()
    assert Money(-1, EUR).is_negative() and not Money(-1, EUR).is_positive()


@pytest.mark.parametrize("factor", [1.5, True, Decimal("2"), "2"])
def test_multiplication_only_by_int(factor: Any) -> None:
    with pytest.raises(TypeError):
        usd(100) * factor
    with pytest.raises(TypeError):
        factor * usd(100)


def test_addition_only_with_money() -> None:
    with pytest.raises(TypeError):
        usd(100) + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        usd(100) < 1  # type: ignore[operator]  # noqa: B015


def test_comparisons_within_one_currency() -> None:
    assert usd(1) < usd(2) <= usd(2) < usd(3)
    assert usd(3) > usd(2) >= usd(2) > usd(-1)
    assert max(usd(5), usd(-7), usd(2)) == usd(5)
    assert usd(1) != Money(1, EUR)


@pytest.mark.parametrize(
    "operation",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
)
def test_currency_mismatch(operation: Any) -> None:
    with pytest.raises(CurrencyMismatch) as caught:
        operation(usd(100), Money(100, EUR))
    assert str(caught.value) == "currency mismatch: USD and EUR"
    assert isinstance(caught.value, ValueError)
    assert caught.value.code == "currency_mismatch"


# --- Parsing and formatting ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "amount_minor"),
    [
        ("12.34", "EUR", 1234),
        ("12.3", "EUR", 1230),
        ("12", "EUR", 1200),
        ("0.05", "EUR", 5),
        ("-0.05", "EUR", -5),
        ("+7.00", "EUR", 700),
        ("-0", "EUR", 0),
        ("007.10", "EUR", 710),
        ("1000", "JPY", 1000),
        ("-1000", "JPY", -1000),
        ("2500", "RWF", 2500),
        ("12.345", "BHD", 12345),
        ("12.34", "BHD", 12340),
        ("-0.001", "KWD", -1),
        ("1.2345", "CLF", 12345),
        ("340282366920938463463374607431768211455", "JPY", 2**128 - 1),
    ],
)
def test_parse_amount(text: str, code: str, amount_minor: int) -> None:
    assert parse_amount(text, code) == amount_minor
    assert Money.parse(text, code) == Money(amount_minor, get_currency(code))
    assert Money.parse(text, get_currency(code)) == Money(amount_minor, get_currency(code))


@pytest.mark.parametrize(
    ("amount_minor", "code", "text"),
    [
        (1234, "EUR", "12.34"),
        (-5, "EUR", "-0.05"),
        (0, "EUR", "0.00"),
        (100000, "EUR", "1000.00"),
        (1000, "JPY", "1000"),
        (-7, "RWF", "-7"),
        (12340, "BHD", "12.340"),
        (-1, "OMR", "-0.001"),
        (12345, "CLF", "1.2345"),
        (2**63 - 1, "USD", "92233720368547758.07"),
    ],
)
def test_format_amount(amount_minor: int, code: str, text: str) -> None:
    assert format_amount(amount_minor, code) == text
    assert format_amount(amount_minor, get_currency(code)) == text


def test_str_of_money() -> None:
    assert str(Money(1234, EUR)) == "12.34 EUR"
    assert str(Money(-5, EUR)) == "-0.05 EUR"
    assert str(Money(1000, JPY)) == "1000 JPY"
    assert str(Money(12340, BHD)) == "12.340 BHD"


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("", "EUR", "invalid amount '': it is empty"),
        ("12.345", "EUR", "invalid amount '12.345': EUR allows at most 2 fractional digits, "
         "got 3 (amounts are never rounded)"),
        ("12.340", "EUR", "invalid amount '12.340': EUR allows at most 2 fractional digits, "
         "got 3 (amounts are never rounded)"),
        ("1.5", "JPY", "invalid amount '1.5': JPY allows at most 0 fractional digits, "
         "got 1 (amounts are never rounded)"),
        ("100.0", "RWF", "invalid amount '100.0': RWF allows at most 0 fractional digits, "
         "got 1 (amounts are never rounded)"),
        ("1.2345", "BHD", "invalid amount '1.2345': BHD allows at most 3 fractional digits, "
         "got 4 (amounts are never rounded)"),
        ("1e5", "EUR", "invalid amount '1e5': scientific notation is not accepted; "
         "write plain digits like '1200.50'"),
        ("1.5E+2", "EUR", "invalid amount '1.5E+2': scientific notation is not accepted; "
         "write plain digits like '1200.50'"),
        ("1,000.00", "EUR", "invalid amount '1,000.00': it contains ','; "
         "use '.' as the decimal point and no digit grouping"),
        ("12,34", "EUR", "invalid amount '12,34': it contains ','; "
         "use '.' as the decimal point and no digit grouping"),
        ("1 000", "EUR", "invalid amount '1 000': it contains whitespace"),
        (" 12.34", "EUR", "invalid amount ' 12.34': it contains whitespace"),
        ("12.34\n", "EUR", "invalid amount '12.34\\n': it contains whitespace"),
        ("- 5", "EUR", "invalid amount '- 5': it contains whitespace"),
        ("NaN", "EUR", "invalid amount 'NaN': it is not a finite number"),
        ("-Infinity", "EUR", "invalid amount '-Infinity': it is not a finite number"),
        ("inf", "EUR", "invalid amount 'inf': it is not a finite number"),
        ("sNaN", "EUR", "invalid amount 'sNaN': it is not a finite number"),
        ("12.", "EUR", "invalid amount '12.': expected an optional sign, digits, "
         "and optionally '.' and digits, like '-12.34'"),
        (".5", "EUR", "invalid amount '.5': expected an optional sign, digits, "
         "and optionally '.' and digits, like '-12.34'"),
        ("+-5", "EUR", "invalid amount '+-5': expected an optional sign, digits, "
         "and optionally '.' and digits, like '-12.34'"),
        ("1.2.3", "EUR", "invalid amount '1.2.3': expected an optional sign, digits, "
         "and optionally '.' and digits, like '-12.34'"),
        ("1_000", "EUR", "invalid amount '1_000': expected an optional sign, digits, "
         "and optionally '.' and digits, like '-12.34'"),
        ("\u0661\u0662", "EUR", "invalid amount '\u0661\u0662': expected an optional sign, "
         "digits, and optionally '.' and digits, like '-12.34'"),
        ("$5", "USD", "invalid amount '$5': expected an optional sign, digits, "
         "and optionally '.' and digits, like '-12.34'"),
        ("-", "EUR", "invalid amount '-': expected an optional sign, digits, "
         "and optionally '.' and digits, like '-12.34'"),
    ],
)  # fmt: skip
def test_parse_amount_rejects(text: str, code: str, message: str) -> None:
    with pytest.raises(InvalidAmount) as caught:
        parse_amount(text, code)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)
    assert caught.value.to_dict() == {
        "code": "invalid_amount",
        "detail": message,
        "field": "amount",
    }


def test_parse_amount_rejects_overlong_text() -> None:
    text = "1" * (AMOUNT_TEXT_LEN_MAX + 1)
    with pytest.raises(InvalidAmount) as caught:
        parse_amount(text, "JPY")
    assert str(caught.value) == (
        f"invalid amount '11111111111111111111'...: {AMOUNT_TEXT_LEN_MAX + 1} characters, "
        f"at most {AMOUNT_TEXT_LEN_MAX}"
    )
    assert parse_amount("1" * AMOUNT_TEXT_LEN_MAX, "JPY") == int("1" * AMOUNT_TEXT_LEN_MAX)


def test_parse_amount_rejects_unknown_currency_and_non_text() -> None:
    with pytest.raises(UnknownCurrency):
        parse_amount("1.00", "ABC")
    with pytest.raises(TypeError, match=r"amount text must be a str, got float 1\.5"):
        parse_amount(1.5, "EUR")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="amount_minor must be an int, got float"):
        format_amount(1.5, "EUR")  # type: ignore[arg-type]


@given(amount_minor=st.integers(min_value=-(10**60), max_value=10**60), currency=currencies)
def test_format_then_parse_round_trips(amount_minor: int, currency: Currency) -> None:
    text = format_amount(amount_minor, currency)
    assert parse_amount(text, currency) == amount_minor
    assert Money.parse(text, currency) == Money(amount_minor, currency)


@given(amount_minor=st.integers(min_value=-(10**200), max_value=10**200), currency=currencies)
def test_format_is_the_exact_decimal_value(amount_minor: int, currency: Currency) -> None:
    text = format_amount(amount_minor, currency)
    with localcontext(prec=300):
        assert Decimal(text) == Decimal(amount_minor).scaleb(-currency.exponent)
    assert text.count(".") == (1 if currency.exponent else 0)


@given(
    whole=st.integers(min_value=0, max_value=10**30),
    fraction=st.text(alphabet="0123456789", max_size=4),
    negative=st.booleans(),
    currency=currencies,
)
def test_parse_agrees_with_decimal(
    whole: int, fraction: str, negative: bool, currency: Currency
) -> None:
    text = ("-" if negative else "") + str(whole) + ("." + fraction if fraction else "")
    if len(fraction) > currency.exponent:
        with pytest.raises(InvalidAmount):
            parse_amount(text, currency)
        return
    with localcontext(prec=100):
        assert parse_amount(text, currency) == Decimal(text).scaleb(currency.exponent)


# --- FX conversion --------------------------------------------------------------------------------


def test_convert_usd_to_cny() -> None:
    result = convert(usd(10000), Decimal("7.1234"), CNY, ROUND_HALF_EVEN)
    assert result == Money(71234, CNY)
    assert str(result) == "712.34 CNY"
    assert convert(usd(10000), Decimal("7.1234"), "CNY", ROUND_HALF_EVEN) == Money(71234, CNY)


@pytest.mark.parametrize(
    ("rounding", "jpy"),
    [(ROUND_HALF_EVEN, 15124), (ROUND_HALF_UP, 15124), (ROUND_DOWN, 15123), (ROUND_UP, 15124)],
)
def test_convert_to_zero_exponent_currency(rounding: str, jpy: int) -> None:
    # 100.00 USD * 151.237 = 15123.7 JPY
    assert convert(usd(10000), Decimal("151.237"), JPY, rounding) == Money(jpy, JPY)


def test_convert_between_exponents() -> None:
    assert convert(usd(1000), Decimal("0.376"), BHD, ROUND_HALF_EVEN) == Money(3760, BHD)
    # 1.000 BHD * 2.6596 = 2.6596 USD -> 265.96 cents
    assert convert(Money(1000, BHD), Decimal("2.6596"), USD, ROUND_HALF_EVEN) == usd(266)
    assert convert(Money(1000, JPY), Decimal("0.0066"), USD, ROUND_HALF_EVEN) == usd(660)
    assert convert(Money(5000, RWF), Decimal("0.00075"), USD, ROUND_HALF_EVEN) == usd(375)
    assert convert(Money(1, JPY), Decimal("1E+3"), JPY, ROUND_HALF_EVEN) == Money(1000, JPY)
    assert convert(Money(12345, CLF), Decimal("38000"), CLF, ROUND_DOWN) == Money(469110000, CLF)


# 0.01 USD * 0.5 = 0.5 cent; 0.03 -> 1.5; 0.05 -> 2.5; -0.05 -> -2.5; 0.07 * 0.3 = 2.1 cents.
HALF_CASES = [(1, "0.5"), (3, "0.5"), (5, "0.5"), (-5, "0.5"), (7, "0.3"), (-7, "0.3")]
EXPECTED_BY_MODE = {
    ROUND_HALF_EVEN: [0, 2, 2, -2, 2, -2],
    ROUND_HALF_UP: [1, 2, 3, -3, 2, -2],
    ROUND_HALF_DOWN: [0, 1, 2, -2, 2, -2],
    ROUND_UP: [1, 2, 3, -3, 3, -3],
    ROUND_DOWN: [0, 1, 2, -2, 2, -2],
    ROUND_CEILING: [1, 2, 3, -2, 3, -2],
    ROUND_FLOOR: [0, 1, 2, -3, 2, -3],
    ROUND_05UP: [1, 1, 2, -2, 2, -2],
}


@pytest.mark.parametrize(("rounding", "expected"), sorted(EXPECTED_BY_MODE.items()))
def test_convert_rounds_with_the_given_mode(rounding: str, expected: list[int]) -> None:
    results = [
        convert(usd(cents), Decimal(rate), EUR, rounding).amount_minor for cents, rate in HALF_CASES
    ]
    assert results == expected
    assert set(EXPECTED_BY_MODE) == ROUNDING_MODES


def test_convert_is_exact_for_128_bit_amounts() -> None:
    amount = 2**127 - 1
    rate = Decimal("1.00000000000000000000000000000000000001")  # 39 significant digits
    coefficient, scale = 10**38 + 1, 10**38
    down = convert(Money(amount, JPY), rate, JPY, ROUND_DOWN)
    up = convert(Money(amount, JPY), rate, JPY, ROUND_UP)
    assert down.amount_minor == amount * coefficient // scale
    assert up.amount_minor == -(-amount * coefficient // scale)
    assert up.amount_minor - down.amount_minor == 1


@given(
    amount_minor=st.integers(min_value=-(2**127), max_value=2**127),
    coefficient=st.integers(min_value=1, max_value=10**12),
    scale=st.integers(min_value=0, max_value=12),
)
def test_convert_floor_matches_integer_arithmetic(
    amount_minor: int, coefficient: int, scale: int
) -> None:
    rate = Decimal(coefficient).scaleb(-scale)
    floor = convert(Money(amount_minor, USD), rate, EUR, ROUND_FLOOR)
    assert floor == Money(amount_minor * coefficient // 10**scale, EUR)


@pytest.mark.parametrize(
    ("rate", "message"),
    [
        (7.1234, "rate must be a decimal.Decimal, got float 7.1234"),
        (7, "rate must be a decimal.Decimal, got int 7"),
        ("7.1234", "rate must be a decimal.Decimal, got str '7.1234'"),
        (Decimal("0"), "rate must be finite and > 0, got 0"),
        (Decimal("-7.1"), "rate must be finite and > 0, got -7.1"),
        (Decimal("NaN"), "rate must be finite and > 0, got NaN"),
        (Decimal("sNaN"), "rate must be finite and > 0, got sNaN"),
        (Decimal("Infinity"), "rate must be finite and > 0, got Infinity"),
        (Decimal("1E+31"), "rate 1E+31 is outside 1E-30..1E+30"),
        (Decimal("1E-31"), "rate 1E-31 is outside 1E-30..1E+30"),
        (Decimal("1." + "0" * 50), f"rate 1.{'0' * 50} has more than 50 significant digits"),
    ],
)
def test_convert_rejects_bad_rates(rate: Any, message: str) -> None:
    with pytest.raises(InvalidRate) as caught:
        convert(usd(100), rate, EUR, ROUND_HALF_EVEN)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == "rate"


@pytest.mark.parametrize(
    ("text", "value"),
    [("0.0032", "0.0032"), ("7", "7"), ("0", "0"), ("123456789.123456789", "123456789.123456789")],
)
def test_parse_rate_text_reads_plain_decimals_exactly(text: str, value: str) -> None:
    assert parse_rate_text(text) == Decimal(value)
    assert str(parse_rate_text(text)) == value


@pytest.mark.parametrize(
    "text",
    # each of these Decimal() reads, "1_0" as ten (found by a review of POST /v1/fxRates)
    [
        "1_0",
        "5e-3",
        "1E+2",
        "+0.5",
        "-0.5",
        " 0.5",
        "0.5\n",
        "\u0660.\u0665",
        "\uff10.\uff15",
        ".5",
        "5.",
        "NaN",
        "Infinity",
        "",
        "0x10",
        5,
        None,
    ],
)
def test_parse_rate_text_refuses_what_is_not_plain_decimal_text(text: Any) -> None:
    with pytest.raises(InvalidRate) as caught:
        parse_rate_text(text)
    assert caught.value.field == "rate"
    assert "not a plain decimal" in str(caught.value) and repr(text) in str(caught.value)


@pytest.mark.parametrize("rounding", ["ROUND_BANKERS", "half_even", "", None, 4])
def test_convert_rejects_bad_rounding(rounding: Any) -> None:
    with pytest.raises(InvalidRounding) as caught:
        convert(usd(100), Decimal("1.1"), EUR, rounding)
    assert str(caught.value) == (
        "rounding must be one of ROUND_05UP, ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, "
        f"ROUND_HALF_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, got {rounding!r}"
    )


def test_convert_requires_rounding() -> None:
    with pytest.raises(TypeError):
        convert(usd(100), Decimal("1.1"), EUR)  # type: ignore[call-arg]


# --- Allocation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount_minor", "ratios", "parts"),
    [
        (100, [1, 1, 1], [34, 33, 33]),
        (-100, [1, 1, 1], [-34, -33, -33]),
        (5, [0, 1, 1], [0, 3, 2]),
        (1000, [70, 30], [700, 300]),
        (1001, [70, 30], [701, 300]),
        (2, [1, 1, 1, 1], [1, 1, 0, 0]),
        (0, [3, 1], [0, 0]),
        (7, [5], [7]),
        (10, [1, 0, 1], [5, 0, 5]),
    ],
)
def test_allocate(amount_minor: int, ratios: list[int], parts: list[int]) -> None:
    assert allocate(Money(amount_minor, EUR), ratios) == [Money(p, EUR) for p in parts]


@pytest.mark.parametrize(
    ("ratios", "error", "message"),
    [
        ([], InvalidRatios, "ratios must not be empty"),
        ([0, 0], InvalidRatios, "ratios must not all be zero, got [0, 0]"),
        ([-1, 2], InvalidRatios, "ratios must not be negative, got [-1, 2]"),
        ([1.5, 1], TypeError, "ratio must be an int, got float 1.5"),
        ([True, 1], TypeError, "ratio must be an int, got bool True"),
    ],
)
def test_allocate_rejects(ratios: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        allocate(Money(100, EUR), ratios)
    assert str(caught.value) == message


@given(
    amount_minor=st.integers(min_value=-(10**20), max_value=10**20),
    ratios=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=20).filter(any),
)
@example(amount_minor=15315, ratios=[470, 551, 1021])  # 470/2042 of it is exactly 3525
def test_allocate_parts_sum_exactly(amount_minor: int, ratios: list[int]) -> None:
    parts = allocate(Money(amount_minor, USD), ratios)
    total = sum(ratios)
    assert len(parts) == len(ratios)
    assert sum(parts, Money.zero(USD)) == Money(amount_minor, USD)
    for part, ratio in zip(parts, ratios, strict=True):
        assert part.currency == USD
        assert abs(part.amount_minor * total - amount_minor * ratio) < total
        if ratio == 0:
            assert part.is_zero()


@given(
    amount_minor=st.integers(min_value=-(10**20), max_value=10**20),
    count=st.integers(min_value=1, max_value=50),
    ratio=st.integers(min_value=1, max_value=1000),
)
def test_allocate_equal_ratios_differ_by_at_most_one(
    amount_minor: int, count: int, ratio: int
) -> None:
    amounts = [part.amount_minor for part in allocate(Money(amount_minor, USD), [ratio] * count)]
    assert sum(amounts) == amount_minor
    assert max(amounts) - min(amounts) <= 1
    assert amounts == sorted(amounts, reverse=amount_minor >= 0)


def test_an_error_quotes_a_long_refused_value_at_a_bounded_length() -> None:
    """A value from a request went whole into the error (4,000 characters of an amount, any
    length of a currency code), so into the API's answer and every log line recording it."""
    for call, value in (
        (lambda v: parse_amount(v, "EUR"), "1" * 3_000 + "x"),
        (lambda v: parse_amount(v, "EUR"), "1." + "0" * 3_000),
        (get_currency, "E" * 10_000),
    ):
        with pytest.raises(MoneyError) as refused:
            call(value)
        detail = refused.value.detail
        assert len(detail) < 300, detail
        assert f"({len(value)} characters)" in detail
        assert repr(value[:64]) in detail
    with pytest.raises(MoneyError, match=r"invalid amount '1\.234': EUR allows at most 2"):
        parse_amount("1.234", "EUR")  # a short one is quoted whole
