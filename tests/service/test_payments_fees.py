"""The scheme's fee schedule: a rule per currency (basis points, a fixed amount, a minimum and
a maximum, each in that currency), the default for every other currency, and the operator's
TOML file (``ENTREPOT_FEE_SCHEDULE``), refused whole when anything in it is wrong."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from entrepot.bootstrap import bootstrap
from entrepot.config import load_settings
from entrepot.entrypoints.cli.main import app as cli
from entrepot.kernel.errors import ConfigurationError
from entrepot.payments import SCHEME, FeeRule, FeeSchedule, PaymentScheme, load_fee_schedule
from entrepot.payments.bulk import BulkItem, bulk_transfers
from entrepot.payments.errors import InvalidPaymentInput
from entrepot.payments.fees import BPS_MAX, parse_fee_schedule
from entrepot.payments.model import SCHEME_AMOUNT_MAX
from tests.service.test_payments import (
    ALINE,
    BK_CUSTOMER,
    TILL,
    assert_ledger_ok,
    join,
    join_bk,
    liquidity,
    moves,
    unchanged,
)

CIMB = ("MSISDN", "+60123000001")
#: RWF has no minor unit (100 = 100 francs), MYR two (50 = 0.50 ringgit): one number of minor
#: units for both (the schedule before) charged 100 francs and 1.00 ringgit alike
SCHEDULE = """
bps = 0

[currencies.RWF]
fixed = "100"

[currencies.MYR]
bps = 20
fixed = "0.50"
min = "1.00"
max = "25.00"
"""


@pytest.fixture
def priced(scheme: PaymentScheme) -> PaymentScheme:
    scheme.fees = parse_fee_schedule(_toml(SCHEDULE))
    join_bk(scheme)
    join(scheme, "cimb", "MYR", country="MY", deposit=5_000_000, alias=CIMB)
    return scheme


def _toml(text: str) -> dict[str, object]:
    import tomllib

    return tomllib.loads(text)


# ------------------------------------------------------------------------------ the rules
def test_a_rule_is_basis_points_half_up_plus_fixed_within_its_bounds() -> None:
    rule = FeeRule(bps=20, fixed_minor=50, min_minor=100, max_minor=2_500)
    assert rule.fee(0) == 100  # 0 + 50 -> the minimum
    assert rule.fee(25_000) == 100  # 50 + 50
    assert rule.fee(25_250) == 101  # 50.5 -> 51, + 50
    assert rule.fee(100_000) == 250  # 200 + 50
    assert rule.fee(10**9) == 2_500  # 2,000,050 -> the maximum
    assert FeeRule(bps=50).fee(101) == 1  # 0.505 half up
    assert FeeRule(bps=50).fee(99) == 0  # 0.495


@given(principal=st.integers(0, 10**40), bps=st.integers(0, BPS_MAX))
def test_a_rules_basis_points_are_exact_half_up_for_any_principal(principal: int, bps: int) -> None:
    with localcontext() as ctx:
        ctx.prec = 100
        want = (Decimal(principal) * bps / BPS_MAX).quantize(Decimal(1), ROUND_HALF_UP)
    assert FeeRule(bps=bps).fee(principal) == int(want)


def test_a_rule_refuses_what_no_fee_can_be() -> None:
    for kwargs in (
        {"bps": -1},
        {"bps": 10_001},
        {"fixed_minor": -1},
        {"min_minor": 10, "max_minor": 9},
        {"fixed_minor": 10, "max_minor": 9},
        {"min_minor": SCHEME_AMOUNT_MAX + 1},
        {"bps": 1.5},
    ):
        with pytest.raises(ValueError):
            FeeRule(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ISO 4217"):
        FeeSchedule(currencies={"ABC": FeeRule()})
    with pytest.raises(ValueError, match="not a FeeRule"):
        FeeSchedule(currencies={"USD": 5})  # type: ignore[dict-item]


def test_a_currency_not_named_pays_the_default_basis_points_alone() -> None:
    schedule = parse_fee_schedule(_toml(SCHEDULE))
    assert schedule.fee(100_000, "EUR") == 0  # bps = 0 and nothing fixed
    assert parse_fee_schedule(_toml("bps = 30")).fee(100_000, "JPY") == 300
    assert FeeSchedule().fee(100_000, "USD") == 300  # with no file: 30 bps
    # a named currency without its own bps takes the schedule's
    assert (
        parse_fee_schedule(_toml('bps = 7\n[currencies.USD]\nfixed = "1"')).fee(10_000, "USD")
        == 7 + 100
    )


# ------------------------------------------------------------------ quotes and transfers
def test_a_fixed_fee_is_an_amount_of_the_payers_currency(priced: PaymentScheme) -> None:
    before = liquidity(priced)
    rw = priced.create_quote("mtn-rw", "q-rw", *BK_CUSTOMER, 10_000, "SEND", "RWF")
    assert (rw.fee_minor, rw.target_amount_minor) == (100, 9_900)  # 100 francs
    my = priced.create_quote("maybank", "q-my", *CIMB, 100_000, "SEND", "MYR")
    assert (my.fee_minor, my.target_amount_minor) == (250, 99_750)  # 2.00 + 0.50 ringgit
    for payer, quote, payee in (("mtn-rw", "q-rw", "bk-rw"), ("maybank", "q-my", "cimb")):
        priced.prepare_transfer(payer, f"t-{quote}", quote)
        priced.commit_transfer(payee, f"t-{quote}")
    assert moves(before, liquidity(priced)) == {
        ("mtn-rw", "RWF", "net_position"): -10_000,
        ("bk-rw", "RWF", "net_position"): 9_900,
        (SCHEME, "RWF", "net_position"): 100,
        ("maybank", "MYR", "net_position"): -100_000,
        ("cimb", "MYR", "net_position"): 99_750,
        (SCHEME, "MYR", "net_position"): 250,
    }
    assert_ledger_ok(priced)


def test_a_cross_currency_fee_follows_the_source_currency(priced: PaymentScheme) -> None:
    q = priced.create_quote("mtn-rw", "q-x", "MERCHANT", "KL-TILL-42", 10_000, "SEND", "RWF")
    assert (q.source_currency, q.fee_minor) == ("RWF", 100)


def test_the_minimum_and_maximum_hold_for_send_and_receive(priced: PaymentScheme) -> None:
    small = priced.create_quote("maybank", "q-small", *CIMB, 150, "SEND", "MYR")
    assert (small.fee_minor, small.target_amount_minor) == (100, 50)  # the 1.00 minimum
    big = priced.create_quote("maybank", "q-big", *CIMB, 5_000_000, "RECEIVE", "MYR")
    assert (big.fee_minor, big.source_amount_minor) == (2_500, 5_002_500)  # the 25.00 maximum
    with (
        unchanged(priced),
        pytest.raises(InvalidPaymentInput, match=r"a SEND of 1\.00 MYR pays a fee of 1\.00 MYR"),
    ):
        priced.create_quote("maybank", "q-tiny", *CIMB, 100, "SEND", "MYR")


def test_a_huge_receive_principal_is_refused_not_a_crash(scheme: PaymentScheme) -> None:
    """Found by a review: at 10,000 bps a RECEIVE whose tiny rate makes a principal of ~1e29
    overflowed the fee's Decimal (28 digits): InvalidOperation, a 500 over HTTP. (The least
    rate is 1e-10 now, what a pacs.008 can state: the principal ~1e23.)"""
    scheme.fees = FeeSchedule(bps=10_000)
    scheme.post_fx_rate("fxco", "RWF", "MYR", Decimal("0.0000000001"), 0, 3600)
    with unchanged(scheme), pytest.raises(InvalidPaymentInput, match="exceeds the scheme"):
        scheme.create_quote("mtn-rw", "q-huge", *TILL, 999_999_999_999_999, "RECEIVE", "RWF")


def test_a_bulk_charges_each_item_its_currencys_rule(priced: PaymentScheme) -> None:
    priced.deposit("maybank", "MYR", 20_000_000, "dep-payroll")
    priced.set_net_debit_cap("maybank", "MYR", 21_000_000)
    before = liquidity(priced)
    items = [BulkItem("b-1", *CIMB, 10_000), BulkItem("b-2", *CIMB, 20_000_000)]
    results = bulk_transfers(priced, "maybank", "bulk-fees", "MYR", items)
    assert [r.state.value for r in results] == ["COMMITTED", "COMMITTED"]
    fees = 100 + 2_500  # 0.70 -> the 1.00 minimum; 40,050 -> the 25.00 maximum
    assert moves(before, liquidity(priced)) == {
        ("maybank", "MYR", "net_position"): -(10_000 + 20_000_000 + fees),
        ("cimb", "MYR", "net_position"): 10_000 + 20_000_000,
        (SCHEME, "MYR", "net_position"): fees,
    }
    assert_ledger_ok(priced)


def test_a_payment_to_a_wallet_customer_uses_the_payers_rule(priced: PaymentScheme) -> None:
    q = priced.create_quote("bk-rw", "q-al", *ALINE, 5_000, "RECEIVE", "RWF")
    assert (q.fee_minor, q.source_amount_minor) == (100, 5_100)


# --------------------------------------------------------------------- the operator's file
@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("bps = 30\nfee = 1", "unknown key fee in the schedule"),
        ("bps = 10001", "bps must be a whole number of basis points 0..10000"),
        ("bps = 2.5", "bps must be a whole number"),
        ("bps = true", "bps must be a whole number"),
        ("[currencies.ABC]\nbps = 1", "'ABC' is not an ISO 4217 currency code"),
        ("[currencies.usd]\nbps = 1", "'usd' is not an ISO 4217 currency code"),
        ('[currencies.USD]\nfixed = "0.105"', "currencies.USD.fixed: invalid amount '0.105'"),
        ("[currencies.USD]\nfixed = 1", "currencies.USD.fixed must be an amount in USD"),
        ('[currencies.USD]\nmin = "-1"', "currencies.USD.min must not be negative"),
        ('[currencies.USD]\nmin = "2"\nmax = "1"', "currencies.USD: max 1 is below min 2"),
        ('[currencies.USD]\nfixed = "5"\nmax = "1"', "currencies.USD: max 1 is below fixed 5"),
        (
            '[currencies.MYR]\nmin = "99999999999999"',
            "currencies.MYR.min 99999999999999 is above the most the scheme moves",
        ),
        ('[currencies.USD]\ncap = "2"', "unknown key cap in currencies.USD"),
        ("[currencies.USD]\nbps = -3", "currencies.USD.bps must be a whole number"),
        ("currencies = 3", "currencies must be a table"),
        ("currencies.USD = 3", "currencies.USD must be a table"),
    ],
)
def test_a_wrong_schedule_is_refused_saying_where(text: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_fee_schedule(_toml(text))
    assert says in caught.value.detail
    assert caught.value.field == "ENTREPOT_FEE_SCHEDULE"


def test_an_unreadable_or_malformed_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_fee_schedule(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("bps = = 3")
    with pytest.raises(ConfigurationError, match="is not valid TOML"):
        load_fee_schedule(bad)


def test_the_server_and_cli_charge_the_operators_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "fees.toml"
    path.write_text(SCHEDULE)
    env = {"ENTREPOT_HOME": str(tmp_path / "home"), "ENTREPOT_FEE_SCHEDULE": str(path)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = bootstrap(load_settings())
    try:
        assert app.payments.fees.fee(10_000, "RWF") == 100
        assert app.payments.fees.fee(100_000, "MYR") == 250
    finally:
        app.engine.dispose()
    shown = CliRunner().invoke(cli, ["payments", "fees", "--json"])
    assert shown.exit_code == 0, shown.output

    def money(amount: str, currency: str, minor: int) -> dict[str, object]:
        return {"amount": amount, "currency": currency, "minor": minor}

    # as GET /v1/scheme/fees answers it
    assert json.loads(shown.output) == {
        "bps": 0,
        "currencies": [
            {
                "currency": "MYR",
                "bps": 20,
                "fixed": money("0.50", "MYR", 50),
                "min": money("1.00", "MYR", 100),
                "max": money("25.00", "MYR", 2_500),
            },
            {
                "currency": "RWF",
                "bps": 0,
                "fixed": money("100", "RWF", 100),
                "min": money("0", "RWF", 0),
                "max": None,
            },
        ],
    }
    one = CliRunner().invoke(cli, ["payments", "fees", "--currency", "EUR", "--json"])
    assert json.loads(one.output) == {
        "currency": "EUR",
        "bps": 0,
        "fixed": money("0.00", "EUR", 0),
        "min": money("0.00", "EUR", 0),
        "max": None,
    }
    lower = CliRunner().invoke(cli, ["payments", "fees", "--currency", "eur"])
    assert lower.exit_code == 2 and "malformed currency code 'eur'" in lower.output
    unknown = CliRunner().invoke(cli, ["payments", "fees", "--currency", "XXZ"])
    assert unknown.exit_code == 2 and "unknown currency code 'XXZ'" in unknown.output
    path.write_text('[currencies.USD]\nfixed = "0.105"')  # a wrong file stops the start
    with pytest.raises(ConfigurationError, match=r"currencies\.USD\.fixed"):
        bootstrap(load_settings())
    refused = CliRunner().invoke(cli, ["payments", "fees"])
    assert refused.exit_code == 2 and "currencies.USD.fixed" in refused.output
