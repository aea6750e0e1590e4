"""``entrepot trade ...``: every trade-network use case from the command line.

``--as CALLER`` names who acts, as on the HTTP API: a hub operator by its payment participant
id (``hub-kigali``), ``merchant:ID``, ``buyer:ID``, ``arbitrator:ID``, or ``scheme``; the
service scopes what each may see and do (the CLI itself runs with the database's rights).
Amounts are integers of minor units (``--price-minor 45000 --currency RWF``). ``--json``
prints the same document the HTTP API returns; otherwise Rich tables. A refused request exits
2 (bad input) or 1 (anything else) with ``error: <code>: <detail>`` on stderr.

Start with ``entrepot trade network init`` (the seed's six hubs on top of the payment scheme's
members), then onboard merchants and buyers at their hubs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from entrepot.entrypoints.api import convert_trade as cv
from entrepot.entrypoints.api import schemas_trade as t
from entrepot.entrypoints.cli.output import bad_input, emit_json, guard, open_app
from entrepot.entrypoints.cli.trade_render import doc, show_record, show_rows
from entrepot.payments import SCHEME
from entrepot.sim.trade_network import build_trade_network, post_rates
from entrepot.trade import Dispute, FreightCard, TradeNetwork
from entrepot.trade.credentials import (
    issue_actor_credential,
    list_actor_credentials,
    revoke_actor_credential,
)
from entrepot.trade.model import check_tracking_code


def _typer(help_text: str) -> typer.Typer:
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None)


app = _typer("The trade network: hubs, merchants, buyers, catalogue, quotes, orders, disputes.")
network_app = _typer("The seed's six-hub scenario.")
hubs_app = _typer("Hubs and their warehouses.")
merchant_app = _typer("Merchants: onboarding at a hub, review.")
buyer_app = _typer("Buyers: registration at a hub.")
item_app = _typer("The catalogue: items with HS codes and prices.")
stock_app = _typer("Stock per warehouse.")
orders_app = _typer("Orders: the caller's list, one order, its events, tracking, payouts.")
return_app = _typer("Returns after delivery.")
dispute_app = _typer("Disputes and online arbitration.")
credentials_app = _typer("API credentials for merchants, buyers and arbitrators.")
for sub, name in (
    (network_app, "network"),
    (hubs_app, "hubs"),
    (merchant_app, "merchant"),
    (buyer_app, "buyer"),
    (item_app, "item"),
    (stock_app, "stock"),
    (orders_app, "orders"),
    (return_app, "return"),
    (dispute_app, "dispute"),
    (credentials_app, "credentials"),
):
    app.add_typer(sub, name=name)

As = Annotated[
    str,
    typer.Option(
        "--as", help="Who acts: hub-<hub> (a hub operator), merchant:ID, buyer:ID, arbitrator:ID."
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=1000)]
Reason = Annotated[str, typer.Option("--reason", help="Why, in words (recorded).")]
HUB_COLUMNS = ("hubId", "name", "kind", "country", "currency", "operator", "dftz")
BUYER_COLUMNS = ("buyerId", "name", "hubId", "currency", "walletConsent")
ORDER_COLUMNS = ("orderId", "state", "buyerId", "merchantId", "hubId", "destinationHubId", "total")
EVENT_COLUMNS = ("seq", "kind", "actor", "at", "detail")
DISPUTE_COLUMNS = ("disputeId", "orderId", "reason", "state", "arbitrator", "offer", "ruling")


@contextmanager
def _trade() -> Iterator[TradeNetwork]:
    with open_app() as a:
        yield a.trade


# ------------------------------------------------------------------ network and hubs
@network_app.command("init")
@guard
def network_init(as_json: Json = False) -> None:
    """Build the seed's network: payment members, customs authorities, the six hubs (Yiwu,
    Hangzhou, Kuala Lumpur, Liège, Kigali, Addis Ababa) with operators, arbitration panels
    and fulfilment centres, and a day of FX rates."""
    with open_app() as a:
        build_trade_network(a.payments, a.trade)
        hubs = [doc(cv.hub(h)) for h in a.trade.list_hubs()]
    show_rows({"hubs": hubs}, "hubs", as_json, "Hubs", HUB_COLUMNS)


@network_app.command("rates")
@guard
def network_rates(as_json: Json = False) -> None:
    """Re-post the FX provider's rates between every network currency (valid for a day)."""
    with open_app() as a:
        post_rates(a.payments)
        show_record({"posted": True, "validSeconds": 86_400}, as_json, "FX rates")


@hubs_app.command("list")
@guard
def hubs_list(as_json: Json = False) -> None:
    """The network's hubs."""
    with _trade() as trade:
        hubs = [doc(cv.hub(h)) for h in trade.list_hubs()]
    show_rows({"hubs": hubs}, "hubs", as_json, "Hubs", HUB_COLUMNS)


@hubs_app.command("show")
@guard
def hubs_show(hub_id: str, as_json: Json = False) -> None:
    """One hub: operator, panel, customs authority, partners, freight card."""
    with _trade() as trade:
        show_record(doc(cv.hub(trade.get_hub(hub_id))), as_json, f"Hub {hub_id}")


@hubs_app.command("warehouses")
@guard
def hubs_warehouses(hub_id: str, as_json: Json = False) -> None:
    """A hub's fulfilment centres."""
    with _trade() as trade:
        trade.get_hub(hub_id)
        rows = [doc(cv.warehouse(w)) for w in trade.list_warehouses(hub_id)]
    show_rows({"warehouses": rows}, "warehouses", as_json, "Warehouses", ("warehouseId", "name"))


@hubs_app.command("add-warehouse")
@guard
def hubs_add_warehouse(
    caller: As,
    warehouse_id: str,
    name: Annotated[str, typer.Option("--name")],
    as_json: Json = False,
) -> None:
    """The hub operator adds a fulfilment centre to its hub."""
    with _trade() as trade:
        w = trade.add_warehouse(caller, warehouse_id, name)
    show_record(doc(cv.warehouse(w)), as_json, "Warehouse added")


def _freight(text: str, insurance_bps: int) -> FreightCard:
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
        raise bad_input(
            "--freight is DOMESTIC_BASE,DOMESTIC_PER_KG,INTERNATIONAL_BASE,INTERNATIONAL_PER_KG "
            "in minor units of the hub's currency, e.g. 3000,1000,8000,6000"
        )
    base, per_kg, int_base, int_per_kg = (int(p) for p in parts)
    return FreightCard(base, per_kg, int_base, int_per_kg, insurance_bps)


@hubs_app.command("create")
@guard
def hubs_create(
    caller: As,
    hub_id: str,
    name: Annotated[str, typer.Option("--name")],
    kind: Annotated[str, typer.Option("--kind", help="export|import|ehub")],
    country: Annotated[str, typer.Option("--country")],
    currency: Annotated[str, typer.Option("--currency")],
    operator: Annotated[str, typer.Option("--operator", help="The operator's participant id.")],
    arbitrator: Annotated[list[str], typer.Option("--arbitrator", help="Panel member (2+).")],
    customs: Annotated[str, typer.Option("--customs", help="The customs authority participant.")],
    freight: Annotated[str, typer.Option("--freight", help="Minor units: DOM,DOM/KG,INT,INT/KG.")],
    partner: Annotated[list[str], typer.Option("--partner")] = [],  # noqa: B006
    dftz: Annotated[bool, typer.Option("--dftz", help="A Digital Free Trade Zone member.")] = False,
    commission_bps: Annotated[int, typer.Option("--commission-bps")] = 500,
    handling_days: Annotated[int, typer.Option("--handling-days")] = 5,
    delivery_days: Annotated[int, typer.Option("--delivery-days")] = 30,
    dispute_days: Annotated[int, typer.Option("--dispute-days")] = 7,
    insurance_bps: Annotated[int, typer.Option("--insurance-bps")] = 100,
    as_json: Json = False,
) -> None:
    """The scheme operator adds a hub run by an existing payment participant."""
    card = _freight(freight, insurance_bps)
    with _trade() as trade:
        hub = trade.create_hub(
            caller,
            hub_id,
            name,
            kind,
            country,
            currency,
            operator,
            arbitrators=arbitrator,
            customs_authority=customs,
            partners=partner,
            dftz=dftz,
            commission_bps=commission_bps,
            handling_days=handling_days,
            delivery_days=delivery_days,
            dispute_days=dispute_days,
            freight=card,
        )
    show_record(doc(cv.hub(hub)), as_json, f"Hub {hub.id}")


# ------------------------------------------------------------------ merchants and buyers
@merchant_app.command("onboard")
@guard
def merchant_onboard(
    caller: As,
    merchant_id: str,
    name: Annotated[str, typer.Option("--name", help="Legal name.")],
    registration: Annotated[str, typer.Option("--registration", help="Registration number.")],
    alias_type: Annotated[str, typer.Option("--alias-type", help="Settlement alias type.")],
    alias: Annotated[str, typer.Option("--alias", help="Settlement alias (at a partner).")],
    currency: Annotated[list[str], typer.Option("--currency", help="More currencies.")] = [],  # noqa: B006
    as_json: Json = False,
) -> None:
    """An eHub operator onboards a business paid at one of its partner banks or wallets."""
    with _trade() as trade:
        m = trade.onboard_merchant(
            caller, merchant_id, name, registration, alias_type, alias, currencies=currency
        )
    show_record(doc(cv.merchant(m)), as_json, f"Merchant {m.id}")


@merchant_app.command("show")
@guard
def merchant_show(caller: As, merchant_id: str, as_json: Json = False) -> None:
    """A merchant (the merchant itself or its hub)."""
    with _trade() as trade:
        m = trade.get_merchant(caller, merchant_id)
    show_record(doc(cv.merchant(m)), as_json, f"Merchant {m.id}")


@merchant_app.command("review")
@guard
def merchant_review(
    caller: As,
    merchant_id: str,
    reason: Reason,
    approve: Annotated[bool, typer.Option("--approve/--suspend")] = True,
    as_json: Json = False,
) -> None:
    """The merchant's hub clears it or suspends it after a screening review."""
    with _trade() as trade:
        m = trade.review_merchant(caller, merchant_id, approve, reason)
    show_record(doc(cv.merchant(m)), as_json, f"Merchant {m.id}")


@merchant_app.command("history")
@guard
def merchant_history(
    caller: As,
    merchant_id: str,
    months: Annotated[int, typer.Option("--months", min=1, max=36)] = 12,
    as_json: Json = False,
) -> None:
    """The merchant's trade record as a lender's credit policy reads it."""
    with _trade() as trade:
        history = trade.merchant_history(caller, merchant_id, months)
    show_record(doc(cv.merchant_history(history)), as_json, f"History of {merchant_id}")


@buyer_app.command("register")
@guard
def buyer_register(
    caller: As,
    buyer_id: str,
    name: Annotated[str, typer.Option("--name")],
    alias_type: Annotated[str, typer.Option("--alias-type", help="Wallet alias type.")],
    alias: Annotated[str, typer.Option("--alias", help="Wallet alias (at a partner).")],
    as_json: Json = False,
) -> None:
    """A hub's buyer app registers a buyer paying from a wallet at one of its partners."""
    with _trade() as trade:
        b = trade.register_buyer(caller, buyer_id, name, alias_type, alias)
    show_record(doc(cv.buyer(b)), as_json, f"Buyer {b.id}")


@buyer_app.command("show")
@guard
def buyer_show(caller: As, buyer_id: str, as_json: Json = False) -> None:
    """A buyer (the buyer itself, its hub, or the wallet it pays from)."""
    with _trade() as trade:
        b = trade.get_buyer(caller, buyer_id)
    show_record(doc(cv.buyer(b)), as_json, f"Buyer {b.id}")


@buyer_app.command("list")
@guard
def buyer_list(
    caller: As,
    wallet_consent: Annotated[
        str | None,
        typer.Option("--wallet-consent", help="pending, granted or revoked."),
    ] = None,
    limit: Limit = 100,
    after: Annotated[
        str | None, typer.Option("--after", help="The last buyer id of the page before.")
    ] = None,
    as_json: Json = False,
) -> None:
    """A hub operator's buyers, and a wallet's (those paying from it), in id order."""
    with _trade() as trade:
        found = trade.list_buyers(caller, wallet_consent, limit, after)
        buyers = [doc(cv.buyer(b)) for b in found]
    show_rows({"buyers": buyers}, "buyers", as_json, "Buyers", BUYER_COLUMNS)


@buyer_app.command("consent")
@guard
def buyer_consent(
    caller: As,
    buyer_id: str,
    revoke: Annotated[
        bool, typer.Option("--revoke", help="Withdraw the consent: no new orders.")
    ] = False,
    as_json: Json = False,
) -> None:
    """The wallet a buyer pays from grants (or revokes) its consent to pay for the buyer's
    orders; checkout refuses without it."""
    with _trade() as trade:
        if revoke:
            b = trade.revoke_wallet_consent(caller, buyer_id)
        else:
            b = trade.grant_wallet_consent(caller, buyer_id)
    show_record(doc(cv.buyer(b)), as_json, f"Buyer {b.id}")


# ------------------------------------------------------------------ catalogue and stock
def _dimensions(text: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise bad_input(f"--dims is LENGTHxWIDTHxHEIGHT in millimetres, not {text!r}")
    length, width, height = (int(p) for p in parts)
    return length, width, height


CustomsUnitOpt = Annotated[
    str | None,
    typer.Option(
        "--customs-unit",
        help="Its customs (supplementary) unit: l, pair, m2... With --customs-per-piece.",
    ),
]
CustomsPerPieceOpt = Annotated[
    str | None,
    typer.Option("--customs-per-piece", help="How much of --customs-unit one piece is, e.g. 0.75."),
]


@item_app.command("add")
@guard
def item_add(
    caller: As,
    sku: str,
    title: Annotated[str, typer.Option("--title")],
    hs_code: Annotated[str, typer.Option("--hs-code", help="HS 2022, six digits.")],
    origin: Annotated[str, typer.Option("--origin", help="Country of origin (ISO alpha-2).")],
    weight_g: Annotated[int, typer.Option("--weight-g")],
    dims: Annotated[str, typer.Option("--dims", help="LxWxH in millimetres, e.g. 300x300x250.")],
    price_minor: Annotated[int, typer.Option("--price-minor")],
    currency: Annotated[str, typer.Option("--currency")],
    customs_unit: CustomsUnitOpt = None,
    customs_per_piece: CustomsPerPieceOpt = None,
    as_json: Json = False,
) -> None:
    """A merchant lists an item, priced in a currency it holds (wine: --customs-unit l
    --customs-per-piece 0.75, what a duty per litre is charged on)."""
    dimensions = _dimensions(dims)
    with _trade() as trade:
        i = trade.add_item(
            caller,
            sku,
            title,
            hs_code,
            origin,
            weight_g=weight_g,
            dimensions_mm=dimensions,
            price_minor=price_minor,
            currency=currency,
            customs_unit=customs_unit,
            customs_quantity_per_piece=customs_per_piece,
        )
    show_record(doc(cv.item(i)), as_json, f"Item {i.sku}")


@item_app.command("update")
@guard
def item_update(
    caller: As,
    sku: str,
    price_minor: Annotated[int | None, typer.Option("--price-minor")] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive")] = None,
    customs_unit: CustomsUnitOpt = None,
    customs_per_piece: CustomsPerPieceOpt = None,
    no_customs_unit: Annotated[
        bool,
        typer.Option("--no-customs-unit", help="Declare it in pieces (and kg) only again."),
    ] = False,
    as_json: Json = False,
) -> None:
    """Change an item's price (minor units of its currency), take it off sale, or set (or
    clear) its customs unit and quantity per piece."""
    if no_customs_unit and (customs_unit is not None or customs_per_piece is not None):
        raise bad_input("--no-customs-unit clears the customs unit: give it alone")
    customs: dict[str, Any] = {}
    if no_customs_unit:
        customs = {"customs_unit": None, "customs_quantity_per_piece": None}
    elif customs_unit is not None or customs_per_piece is not None:
        customs = {"customs_unit": customs_unit, "customs_quantity_per_piece": customs_per_piece}
    with _trade() as trade:
        i = trade.update_item(caller, sku, price_minor=price_minor, active=active, **customs)
    show_record(doc(cv.item(i)), as_json, f"Item {i.sku}")


@item_app.command("list")
@guard
def item_list(
    merchant: Annotated[str | None, typer.Option("--merchant", help="One merchant's.")] = None,
    limit: Limit = 100,
    as_json: Json = False,
) -> None:
    """The public catalogue: items on sale."""
    with _trade() as trade:
        items = [doc(cv.item(i)) for i in trade.catalogue(merchant, limit)]
    columns = ("sku", "merchantId", "title", "hsCode", "origin", "price", "chargeableG")
    show_rows({"items": items}, "items", as_json, "Catalogue", columns)


@stock_app.command("set")
@guard
def stock_set(caller: As, sku: str, warehouse_id: str, on_hand: int, as_json: Json = False) -> None:
    """The item's merchant sets what a warehouse of its hub holds."""
    with _trade() as trade:
        level = trade.set_stock(caller, sku, warehouse_id, on_hand)
    show_record(doc(cv.stock(level)), as_json, f"Stock of {sku}")


@stock_app.command("show")
@guard
def stock_show(sku: str, as_json: Json = False) -> None:
    """What may be ordered, per warehouse."""
    with _trade() as trade:
        levels = trade.stock(sku)
    show_record(doc(cv.availability(sku, levels)), as_json, f"Stock of {sku}")


# ------------------------------------------------------------------ quotes and orders
def _lines(specs: list[str]) -> list[tuple[str, int]]:
    lines = []
    for spec in specs:
        sku, sep, qty = spec.partition("=")
        if not sep or not qty.isdigit():
            raise bad_input(f"a line is SKU=QUANTITY, not {spec!r}")
        lines.append((sku, int(qty)))
    return lines


@app.command("quote")
@guard
def quote(
    caller: As,
    quote_id: str,
    lines: Annotated[list[str], typer.Argument(help="SKU=QUANTITY, one or more.")],
    ttl_s: Annotated[int, typer.Option("--ttl-s", help="Valid for (60..86400 s).")] = 900,
    as_json: Json = False,
) -> None:
    """A buyer's landed-cost quote, delivered duty paid, in its own currency."""
    wanted = _lines(lines)
    with _trade() as trade:
        q = trade.quote(caller, quote_id, wanted, ttl_s=ttl_s)
    show_record(doc(cv.quote(q)), as_json, f"Quote {q.id}")


@app.command("quote-show")
@guard
def quote_show(caller: As, quote_id: str, as_json: Json = False) -> None:
    """A quote (its buyer only)."""
    with _trade() as trade:
        q = trade.get_quote(caller, quote_id)
    show_record(doc(cv.quote(q)), as_json, f"Quote {q.id}")


@app.command("checkout")
@guard
def checkout(caller: As, order_id: str, quote_id: str, as_json: Json = False) -> None:
    """The buyer pays a quote into escrow (idempotent by order id)."""
    with _trade() as trade:
        o = trade.checkout(caller, order_id, quote_id)
    show_record(doc(cv.order(o)), as_json, f"Order {o.id}")


@orders_app.command("list")
@guard
def orders_list(
    caller: As,
    state: Annotated[str | None, typer.Option("--state", help="PAID, SHIPPED, ...")] = None,
    limit: Limit = 100,
    as_json: Json = False,
) -> None:
    """The caller's orders: a buyer's, a merchant's, or those passing through a hub."""
    with _trade() as trade:
        orders = [doc(cv.order(o)) for o in trade.list_orders(caller, state, limit)]
    show_rows({"orders": orders}, "orders", as_json, "Orders", ORDER_COLUMNS)


@orders_app.command("show")
@guard
def orders_show(caller: As, order_id: str, as_json: Json = False) -> None:
    """One order (its buyer, merchant, hubs, or assigned arbitrator)."""
    with _trade() as trade:
        o = trade.get_order(caller, order_id)
    show_record(doc(cv.order(o)), as_json, f"Order {o.id}")


@orders_app.command("events")
@guard
def orders_events(caller: As, order_id: str, as_json: Json = False) -> None:
    """Every recorded step of the order, with who and when."""
    with _trade() as trade:
        events = [doc(cv.event(e)) for e in trade.order_events(caller, order_id)]
    show_rows({"events": events}, "events", as_json, f"Order {order_id}", EVENT_COLUMNS)


@orders_app.command("tracking")
@guard
def orders_tracking(caller: As, order_id: str, as_json: Json = False) -> None:
    """The parcel's status, events in order, and import clearance lane."""
    with _trade() as trade:
        tracking = doc(cv.tracking(trade.tracking(caller, order_id)))
    show_record(tracking, as_json, f"Tracking of {order_id}")


@orders_app.command("payouts")
@guard
def orders_payouts(caller: As, order_id: str, as_json: Json = False) -> None:
    """What the merchant was paid for the order, in its currency."""
    with _trade() as trade:
        payouts = [doc(cv.payout(p)) for p in trade.payouts(caller, order_id)]
    columns = ("transferId", "state", "amount", "withheld", "source")
    show_rows({"payouts": payouts}, "payouts", as_json, f"Payouts of {order_id}", columns)


@app.command("track")
@guard
def track(
    caller: As,
    order_id: str,
    codes: Annotated[list[str], typer.Argument(help="Event codes in order: EMA EMB ... EMI.")],
    note: Annotated[str, typer.Option("--note")] = "",
    as_json: Json = False,
) -> None:
    """A hub operator records postal events for a parcel on its leg, in order (each is
    committed as it goes; the first refused one stops the rest)."""
    for code in codes:  # a typo among them is bad input: refused before any is recorded
        check_tracking_code(code)
    recorded = []
    with _trade() as trade:
        for code in codes:
            recorded.append(doc(cv.tracking_event(trade.track(caller, order_id, code, note))))
    columns = ("seq", "code", "description", "hubId", "at")
    show_rows({"events": recorded}, "events", as_json, f"Tracking of {order_id}", columns)


@app.command("consolidate")
@guard
def consolidate(
    caller: As,
    consolidation_id: str,
    order_ids: Annotated[list[str], typer.Argument(help="The parcels (order ids).")],
    code: Annotated[str, typer.Option("--code", help="EXD, EMC or EMD.")] = "EXD",
    as_json: Json = False,
) -> None:
    """A hub operator moves many parcels as one consignment: all or none."""
    with _trade() as trade:
        events = trade.consolidate(caller, consolidation_id, order_ids, code)
    document = doc(cv.consolidation(consolidation_id, code, events))
    columns = ("orderId", "seq", "code", "hubId", "note")
    show_rows(document, "events", as_json, f"Consolidation {consolidation_id}", columns)


@app.command("cancel")
@guard
def cancel(caller: As, order_id: str, reason: Reason, as_json: Json = False) -> None:
    """Buyer, merchant or the merchant's hub cancels before hand-over: a full refund."""
    with _trade() as trade:
        o = trade.cancel(caller, order_id, reason)
    show_record(doc(cv.order(o)), as_json, f"Order {o.id}")


@app.command("confirm")
@guard
def confirm(caller: As, order_id: str, as_json: Json = False) -> None:
    """The buyer confirms receipt: the escrow is released and the merchant paid."""
    with _trade() as trade:
        o = trade.confirm_receipt(caller, order_id)
    show_record(doc(cv.order(o)), as_json, f"Order {o.id}")


@return_app.command("request")
@guard
def return_request(caller: As, order_id: str, reason: Reason, as_json: Json = False) -> None:
    """The buyer asks to return the goods, within the dispute window."""
    with _trade() as trade:
        o = trade.request_return(caller, order_id, reason)
    show_record(doc(cv.order(o)), as_json, f"Order {o.id}")


@return_app.command("answer")
@guard
def return_answer(
    caller: As,
    order_id: str,
    accept: Annotated[bool, typer.Option("--accept/--refuse")],
    note: Annotated[str, typer.Option("--note")] = "",
    as_json: Json = False,
) -> None:
    """The merchant accepts (refund when the goods are back) or refuses a return."""
    with _trade() as trade:
        o = trade.answer_return(caller, order_id, accept, note)
    show_record(doc(cv.order(o)), as_json, f"Order {o.id}")


# ------------------------------------------------------------------ disputes
def _show_dispute(trade: TradeNetwork, caller: str, d: Dispute, as_json: bool) -> None:
    currency = trade.get_order(caller, d.order_id).currency
    show_record(doc(cv.dispute(d, currency)), as_json, f"Dispute {d.id}")


@dispute_app.command("open")
@guard
def dispute_open(
    caller: As,
    dispute_id: str,
    order_id: str,
    reason: Annotated[str, typer.Option("--reason", help="not_received|not_as_described")],
    claim: Annotated[str, typer.Option("--claim")],
    as_json: Json = False,
) -> None:
    """The buyer opens a dispute: not_received (in transit) or not_as_described."""
    with _trade() as trade:
        _show_dispute(
            trade, caller, trade.open_dispute(caller, dispute_id, order_id, reason, claim), as_json
        )


@dispute_app.command("evidence")
@guard
def dispute_evidence(caller: As, dispute_id: str, text: str, as_json: Json = False) -> None:
    """Either side adds a statement, document reference or photo link."""
    with _trade() as trade:
        _show_dispute(trade, caller, trade.add_evidence(caller, dispute_id, text), as_json)


@dispute_app.command("offer")
@guard
def dispute_offer(
    caller: As,
    dispute_id: str,
    refund_minor: Annotated[int, typer.Option("--refund-minor")],
    as_json: Json = False,
) -> None:
    """Propose a refund to the buyer, in minor units of the order's currency."""
    with _trade() as trade:
        d = trade.offer_settlement(caller, dispute_id, refund_minor)
        _show_dispute(trade, caller, d, as_json)


@dispute_app.command("accept")
@guard
def dispute_accept(caller: As, dispute_id: str, as_json: Json = False) -> None:
    """The other side accepts the open offer: the escrow moves as agreed."""
    with _trade() as trade:
        _show_dispute(trade, caller, trade.accept_settlement(caller, dispute_id), as_json)


@dispute_app.command("escalate")
@guard
def dispute_escalate(caller: As, dispute_id: str, as_json: Json = False) -> None:
    """Either side takes the case to the hub's arbitrator now."""
    with _trade() as trade:
        _show_dispute(trade, caller, trade.escalate(caller, dispute_id), as_json)


@dispute_app.command("rule")
@guard
def dispute_rule(
    caller: As,
    dispute_id: str,
    outcome: Annotated[str, typer.Option("--outcome", help="release|refund|split")],
    reason: Reason,
    refund_minor: Annotated[int, typer.Option("--refund-minor", help="For a split.")] = 0,
    as_json: Json = False,
) -> None:
    """The assigned arbitrator rules."""
    with _trade() as trade:
        d = trade.rule(caller, dispute_id, outcome, refund_minor, reason)
        _show_dispute(trade, caller, d, as_json)


@dispute_app.command("appeal")
@guard
def dispute_appeal(
    caller: As,
    dispute_id: str,
    grounds: Annotated[str, typer.Option("--grounds")],
    as_json: Json = False,
) -> None:
    """Either side appeals a first-instance ruling, once."""
    with _trade() as trade:
        _show_dispute(trade, caller, trade.appeal(caller, dispute_id, grounds), as_json)


@dispute_app.command("show")
@guard
def dispute_show(caller: As, dispute_id: str, as_json: Json = False) -> None:
    """One dispute (its parties, its hub, its assigned arbitrators)."""
    with _trade() as trade:
        _show_dispute(trade, caller, trade.get_dispute(caller, dispute_id), as_json)


@dispute_app.command("list")
@guard
def dispute_list(
    caller: As,
    state: Annotated[str | None, typer.Option("--state", help="NEGOTIATION, ...")] = None,
    as_json: Json = False,
) -> None:
    """An arbitrator's cases, a hub's disputes, or a buyer's or merchant's own."""
    with _trade() as trade:
        rows = [
            doc(cv.dispute(d, trade.get_order(caller, d.order_id).currency))
            for d in trade.list_disputes(caller, state)
        ]
    show_rows({"disputes": rows}, "disputes", as_json, "Disputes", DISPUTE_COLUMNS)


@dispute_app.command("events")
@guard
def dispute_events(caller: As, dispute_id: str, as_json: Json = False) -> None:
    """Every step of the dispute, with who and when."""
    with _trade() as trade:
        events = [doc(cv.dispute_event(e)) for e in trade.dispute_events(caller, dispute_id)]
    show_rows({"events": events}, "events", as_json, f"Dispute {dispute_id}", EVENT_COLUMNS)


# ------------------------------------------------------------------ operations
@app.command("deadlines")
@guard
def deadlines(as_json: Json = False) -> None:
    """Act on every trade deadline that has passed (as the scheme operator)."""
    with _trade() as trade:
        document = doc(cv.deadlines(trade.process_deadlines()))
    if as_json:
        emit_json(document)
        return
    show_record(document["counts"], False, "Deadlines acted on")


# One trade actor, named by exactly one of these (``_one_actor``)
MerchantOpt = Annotated[str | None, typer.Option("--merchant", help="Merchant id.")]
BuyerOpt = Annotated[str | None, typer.Option("--buyer", help="Buyer id.")]
ArbitratorOpt = Annotated[str | None, typer.Option("--arbitrator", help="Arbitrator id.")]
ActorOrIssuer = Annotated[
    str, typer.Option("--as", help="scheme, the actor's hub operator, or the actor.")
]


@credentials_app.command("issue")
@guard
def credentials_issue(
    merchant: MerchantOpt = None,
    buyer: BuyerOpt = None,
    arbitrator: ArbitratorOpt = None,
    caller: Annotated[
        str, typer.Option("--as", help="The issuer: scheme, or the actor's hub operator.")
    ] = SCHEME,
    public_key: Annotated[str | None, typer.Option("--public-key", help="Ed25519, base64.")] = None,
    as_json: Json = False,
) -> None:
    """API credentials for one trade actor (the secret is shown once; only its hash is
    stored). Use the token as ``Authorization: Bearer <token>`` on /v1/trade."""
    principal = _one_actor(merchant, buyer, arbitrator)
    with _trade() as trade:
        issued = issue_actor_credential(trade, caller, principal, public_key_b64=public_key)
    out_doc = t.TradeCredentialOut(
        keyId=issued.key_id, secret=issued.secret, token=issued.token, principal=principal
    )
    show_record(doc(out_doc), as_json, "Credential issued (the secret is shown once)")


def _one_actor(merchant: str | None, buyer: str | None, arbitrator: str | None) -> str:
    named = [
        (role, actor)
        for role, actor in (("merchant", merchant), ("buyer", buyer), ("arbitrator", arbitrator))
        if actor is not None
    ]
    if len(named) != 1:
        raise bad_input("name exactly one of --merchant, --buyer, --arbitrator")
    return f"{named[0][0]}:{named[0][1]}"


@credentials_app.command("list")
@guard
def credentials_list(
    merchant: MerchantOpt = None,
    buyer: BuyerOpt = None,
    arbitrator: ArbitratorOpt = None,
    caller: ActorOrIssuer = SCHEME,
    as_json: Json = False,
) -> None:
    """One trade actor's credentials, revoked ones too (never a secret)."""
    principal = _one_actor(merchant, buyer, arbitrator)
    with _trade() as trade:
        found = list_actor_credentials(trade, caller, principal)
    listed = {"credentials": [doc(cv.credential_info(c)) for c in found]}
    show_rows(
        listed,
        "credentials",
        as_json,
        f"Credentials of {principal}",
        ("keyId", "revoked", "createdAt", "publicKey"),
    )


@credentials_app.command("revoke")
@guard
def credentials_revoke(
    key_id: Annotated[str, typer.Argument(help="The credential's key id.", show_default=False)],
    caller: ActorOrIssuer = SCHEME,
    as_json: Json = False,
) -> None:
    """Revoke a trade actor's credential: refused from the next request on."""
    with _trade() as trade:
        revoked = revoke_actor_credential(trade, caller, key_id)
    show_record(doc(cv.credential_info(revoked)), as_json, "Credential revoked")
