"""``entrepot trade`` end to end on the embedded SQLite default: the seed's six hubs, a Kigali
merchant's basket quoted, bought, tracked and delivered to Kuala Lumpur, and paid out; and
refusals with their exit codes, one error line, and nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_cli import Cli
from tests.trade.network import DESTINATION, ORIGIN

MERCHANT = "merchant:m-inzozi"
BUYER = "buyer:b-aisyah"
COMPONENTS = ("goods", "freight", "insurance", "duty", "excise", "vat", "customsFees")


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    c = Cli(tmp_path)
    c.env["ENTREPOT_SCREENING"] = "off"
    return c


def _network(cli: Cli) -> None:
    """Six hubs; a Kigali merchant with 10 baskets; a Kuala Lumpur buyer."""
    hubs = cli.json("trade network init")["hubs"]
    assert [(h["hubId"], h["operator"]) for h in hubs] == [
        ("addis-ababa", "hub-addis-ababa"),
        ("hangzhou", "hub-hangzhou"),
        ("kigali", "hub-kigali"),
        ("kuala-lumpur", "hub-kuala-lumpur"),
        ("liege", "hub-liege"),
        ("yiwu", "hub-yiwu"),
    ]
    cli('payments alias-add --as mtn-rw BUSINESS RW-100200 --name "Inzozi" --currency RWF')
    merchant = cli.json(
        'trade merchant onboard --as hub-kigali m-inzozi --name "Inzozi Crafts Ltd" '
        "--registration RW-100200 --alias-type BUSINESS --alias RW-100200"
    )
    assert (merchant["state"], merchant["settlement"]["fspId"]) == ("active", "mtn-rw")
    cli("payments alias-add --as maybank-my MSISDN +60123456789 --name Aisyah --currency MYR")
    buyer = cli.json(
        'trade buyer register --as hub-kuala-lumpur b-aisyah --name "Aisyah binti Ali" '
        "--alias-type MSISDN --alias +60123456789"
    )
    assert (buyer["currency"], buyer["hubId"], buyer["walletConsent"]) == (
        "MYR",
        "kuala-lumpur",
        "pending",
    )
    pending = cli.json("trade buyer list --as maybank-my --wallet-consent pending")["buyers"]
    assert [b["buyerId"] for b in pending] == ["b-aisyah"]
    consented = cli.json("trade buyer consent --as maybank-my b-aisyah")
    assert consented["walletConsent"] == "granted"
    item = cli.json(
        f'trade item add --as {MERCHANT} sku-basket --title "Woven agaseke basket" '
        "--hs-code 460219 --origin RW --weight-g 800 --dims 300x300x250 "
        "--price-minor 45000 --currency RWF"
    )
    assert (item["chargeableG"], item["price"]["minor"], item["price"]["currency"]) == (
        4_500,
        45_000,
        "RWF",
    )
    stock = cli.json(f"trade stock set --as {MERCHANT} sku-basket kigali-fc1 10")
    assert (stock["onHand"], stock["available"]) == (10, 10)


def test_a_basket_is_quoted_bought_tracked_delivered_and_paid_out(cli: Cli) -> None:
    _network(cli)
    quote = cli.json(f"trade quote --as {BUYER} q-1 sku-basket=2")
    assert (quote["currency"], quote["goodsMerchant"]["minor"], quote["dftz"]) == (
        "MYR",
        90_000,
        True,
    )
    assert quote["total"]["minor"] == sum(quote[k]["minor"] for k in COMPONENTS)
    order = cli.json(f"trade checkout --as {BUYER} o-1 q-1")
    assert (order["state"], order["total"]) == ("PAID", quote["total"])
    assert order["merchantNet"] == {"amount": "85500", "currency": "RWF", "minor": 85_500}
    assert cli.json("trade stock show sku-basket")["available"] == 8

    recorded = cli.json(f"trade track --as hub-kigali o-1 {' '.join(ORIGIN)}")["events"]
    assert [(e["seq"], e["code"]) for e in recorded] == list(enumerate(ORIGIN))
    cli(f"trade track --as hub-kuala-lumpur o-1 {' '.join(DESTINATION)}")
    tracking = cli.json(f"trade orders tracking --as {BUYER} o-1")
    assert tracking["status"] == "delivered"
    assert [e["code"] for e in tracking["events"]] == [*ORIGIN, *DESTINATION]
    shown = cli.json(f"trade orders show --as {MERCHANT} o-1")
    assert (shown["orderId"], shown["state"], shown["destinationHubId"]) == (
        "o-1",
        "DELIVERED",
        "kuala-lumpur",
    )
    assert shown["releaseAt"] is not None

    assert cli.json(f"trade confirm --as {BUYER} o-1")["state"] == "COMPLETED"
    [payout] = cli.json(f"trade orders payouts --as {MERCHANT} o-1")["payouts"]
    assert (payout["state"], payout["amount"]["minor"], payout["withheld"]["minor"]) == (
        "PAID",
        85_500,
        0,
    )
    kinds = [e["kind"] for e in cli.json(f"trade orders events --as {MERCHANT} o-1")["events"]]
    assert kinds == ["paid", "shipped", "import_cleared", "delivered", "released", "payout"]
    listed = cli.json(f"trade orders list --as {BUYER}")["orders"]
    assert [(o["orderId"], o["state"]) for o in listed] == [("o-1", "COMPLETED")]
    # the table view names the order and its state too
    table = cli(f"trade orders show --as {BUYER} o-1").stdout
    assert "o-1" in table and "COMPLETED" in table and "85500 RWF" in table

    issued = cli.json("trade credentials issue --as hub-kigali --merchant m-inzozi")
    assert issued["principal"] == MERCHANT
    assert issued["token"] == f"{issued['keyId']}.{issued['secret']}"
    listed = cli.json("trade credentials list --as hub-kigali --merchant m-inzozi")
    assert [(c["keyId"], c["revoked"]) for c in listed["credentials"]] == [(issued["keyId"], False)]
    assert "trade_forbidden" in cli.error(
        f"trade credentials revoke --as hub-liege {issued['keyId']}", code=1
    )
    revoked = cli.json(f"trade credentials revoke --as hub-kigali {issued['keyId']}")
    assert (revoked["principal"], revoked["revoked"]) == (MERCHANT, True)
    table = cli("trade credentials list --merchant m-inzozi").stdout
    (row,) = [line for line in table.splitlines() if issued["keyId"] in line]
    assert "│ yes " in row  # the revoked column


def test_refusals_exit_non_zero_with_one_clear_line_and_change_nothing(cli: Cli) -> None:
    _network(cli)
    assert cli.error(
        f"trade item add --as {MERCHANT} sku-x --title X --hs-code 999999 --origin RW "
        "--weight-g 100 --dims 10x10x10 --price-minor 100 --currency RWF",
        code=2,
    ) == ("error: customs_unknown_hs_code: unknown HS code '999999': not a subheading of HS 2022")
    assert "trade_currency_not_held" in cli.error(
        f"trade item add --as {MERCHANT} sku-x --title X --hs-code 460219 --origin RW "
        "--weight-g 100 --dims 10x10x10 --price-minor 100 --currency MYR",
        code=2,
    )
    assert "--dims is LENGTHxWIDTHxHEIGHT" in cli.error(
        f"trade item add --as {MERCHANT} sku-x --title X --hs-code 460219 --origin RW "
        "--weight-g 100 --dims 10x10 --price-minor 100 --currency RWF",
        code=2,
    )
    assert [i["sku"] for i in cli.json("trade item list")["items"]] == ["sku-basket"]
    assert "trade_forbidden" in cli.error(
        "trade buyer consent --as hub-kuala-lumpur b-aisyah", code=1
    )
    assert "wallet consent 'maybe'" in cli.error(
        "trade buyer list --as maybank-my --wallet-consent maybe", code=2
    )

    cli(f"trade quote --as {BUYER} q-1 sku-basket=2")
    cli("trade buyer consent --as maybank-my b-aisyah --revoke")
    assert "trade_wallet_consent_missing" in cli.error(
        f"trade checkout --as {BUYER} o-1 q-1", code=1
    )
    assert cli.json(f"trade orders list --as {BUYER}")["orders"] == []
    cli("trade buyer consent --as maybank-my b-aisyah")
    cli(f"trade checkout --as {BUYER} o-1 q-1")
    assert cli.error("trade orders show --as merchant:m-other o-1", code=1) == (
        "error: trade_forbidden: order o-1 is not yours to see"
    )
    assert cli.error("trade track --as hub-liege o-1 EMA", code=1) == (
        "error: trade_forbidden: order o-1 does not pass through hub liege"
    )
    assert "trade_invalid_transition" in cli.error("trade track --as hub-kigali o-1 EMB", code=1)
    assert "a line is SKU=QUANTITY" in cli.error(f"trade quote --as {BUYER} q-2 sku-basket", code=2)
    assert "exactly one of" in cli.error("trade credentials issue", code=2)
    # no such item: said so, not an empty stock that reads as sold out
    assert cli.error("trade stock show sku-nope", code=1) == (
        "error: trade_item_not_found: item 'sku-nope' does not exist"
    )
    # nothing moved: no tracking, the order paid, two baskets reserved
    assert cli.json(f"trade orders tracking --as {BUYER} o-1")["events"] == []
    assert cli.json(f"trade orders show --as {BUYER} o-1")["state"] == "PAID"
    assert cli.json("trade stock show sku-basket")["available"] == 8


def test_a_merchant_lists_wine_in_litres_and_changes_its_customs_unit(cli: Cli) -> None:
    _network(cli)
    wine = (
        f'trade item add --as {MERCHANT} sku-wine --title "Still red wine, 75 cl" '
        "--hs-code 220421 --origin ZA --weight-g 1300 --dims 90x90x330 --price-minor 45000 "
        "--currency RWF"
    )
    assert "customs unit 'l' needs the quantity" in cli.error(f"{wine} --customs-unit l", code=2)
    assert [i["sku"] for i in cli.json("trade item list")["items"]] == ["sku-basket"]
    item = cli.json(f"{wine} --customs-unit l --customs-per-piece 0.75")
    assert item["customs"] == {"unit": "l", "quantityPerPiece": "0.75"}
    assert "--no-customs-unit clears" in cli.error(
        f"trade item update --as {MERCHANT} sku-wine --no-customs-unit --customs-unit l", code=2
    )
    assert cli.error(
        f"trade item update --as {MERCHANT} sku-wine --customs-unit pair --customs-per-piece 0",
        code=2,
    ) == ("error: trade_invalid_input: customsQuantityPerPiece must be above zero, not 0")
    listed = {i["sku"]: i for i in cli.json("trade item list")["items"]}
    assert listed["sku-wine"]["customs"] == {"unit": "l", "quantityPerPiece": "0.75"}
    cleared = cli.json(f"trade item update --as {MERCHANT} sku-wine --no-customs-unit")
    assert cleared["customs"] is None


def test_a_suspended_hub_onboards_no_merchant_from_the_command_line(cli: Cli) -> None:
    """The CLI calls the same use case: a hub operator the scheme suspended onboards no
    merchant (exit 1, ``participant_suspended``, nothing written); resumed, it does (found
    by a review)."""
    _network(cli)
    cli('payments alias-add --as mtn-rw BUSINESS RW-300400 --name "Umucyo" --currency RWF')
    onboard = (
        'trade merchant onboard --as hub-kigali m-umucyo --name "Umucyo Ltd" '
        "--registration RW-300400 --alias-type BUSINESS --alias RW-300400"
    )
    cli('payments suspend hub-kigali --reason "licence under review"')
    assert cli.error(onboard, code=1).startswith(
        "error: participant_suspended: participant 'hub-kigali' is suspended"
    )
    assert "trade_merchant_not_found" in cli.error(
        "trade merchant show --as hub-kigali m-umucyo", code=1
    )
    cli("payments resume hub-kigali")
    assert cli.json(onboard)["state"] == "active"
