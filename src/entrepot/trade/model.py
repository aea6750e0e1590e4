"""Trade network entities (frozen dataclasses) and the pure rules over them: the tracking
event machine, order states derived from events, freight pricing, dispute outcomes.

Amounts are int minor units; times are UTC nanoseconds from the injected clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from entrepot.kernel.clock import iso_utc
from entrepot.trade.errors import InvalidTradeInput, InvalidTransition

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}")
# What no stored text may hold: C0 controls but tab and line breaks, DEL, lone surrogates
# (SQLite cannot encode them), non-characters; PostgreSQL refuses NUL. Either was a 500.
_ILLEGAL_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
DAY_NS = 86_400 * 1_000_000_000
HOUR_NS = 3_600 * 1_000_000_000


def half_up(value: Decimal) -> int:
    """An exact amount rounded once, half up, to a whole minor unit."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or ID_RE.fullmatch(value) is None:
        raise InvalidTradeInput(
            f"{what} {value!r} must be 1-48 letters, digits, '-' or '_' (starting with a "
            "letter or digit)",
            field=what,
        )
    return value


def check_text(value: object, what: str, max_len: int = 200) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise InvalidTradeInput(f"{what} must be 1-{max_len} characters of text", field=what)
    check_note(value, what, max_len)
    return value.strip()


def check_note(value: object, what: str, max_len: int) -> str:
    """Optional text (may be empty): at most ``max_len`` characters, none of the illegal."""
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidTradeInput(f"{what} is at most {max_len} characters of text", field=what)
    bad = _ILLEGAL_TEXT.search(value)
    if bad is not None:
        raise InvalidTradeInput(
            f"{what} holds a control character (U+{ord(bad.group()):04X}) at {bad.start()}",
            field=what,
        )
    return value


def check_positive(value: object, what: str, max_value: int = 10**15) -> int:
    if type(value) is not int or not 0 < value <= max_value:
        raise InvalidTradeInput(f"{what} must be a positive integer up to {max_value}", field=what)
    return value


def check_non_negative(value: object, what: str, max_value: int = 10**15) -> int:
    if type(value) is not int or not 0 <= value <= max_value:
        raise InvalidTradeInput(
            f"{what} must be a non-negative integer up to {max_value}", field=what
        )
    return value


def check_state_filter(value: str | None, states: type[StrEnum], what: str) -> str | None:
    """A list's state filter names a state: a typo (``paid``, ``SHIPED``) is refused, not
    answered with an empty list that reads as "there are none"."""
    if value is None or value in {s.value for s in states}:
        return value
    allowed = ", ".join(s.value for s in states)
    raise InvalidTradeInput(f"{what} {value!r}: expected one of {allowed}", field="state")


# ---------------------------------------------------------------------- customs measure
#: the customs engine's unit format (``DeclarationLine.unit``): ``l``, ``pair``, ``m2``...
CUSTOMS_UNIT_RE = re.compile(r"[a-z0-9_]{1,16}")
#: the most of its unit one piece may be, and the finest step: a per-piece quantity beyond
#: either is a typo, not a declaration (a millilitre is 0.001 l; 6 places leave room)
CUSTOMS_PER_PIECE_MAX = Decimal(1_000_000)
CUSTOMS_PER_PIECE_PLACES = 6
_DECIMAL_TEXT = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class CustomsMeasure:
    """How an item is declared to customs besides its pieces and weight: its supplementary
    unit and how much of it one piece is (0.75 ``l`` a bottle of wine, 1 ``pair`` a pair of
    shoes). A line of ``n`` pieces is declared as ``n x per_piece`` of ``unit``, the quantity
    a specific duty per that unit is charged on (the EU's EUR 0.131 per litre of wine)."""

    unit: str
    per_piece: Decimal

    def quantity(self, pieces: int) -> Decimal:
        return plain_decimal(self.per_piece * pieces)


def plain_decimal(value: Decimal) -> Decimal:
    """``value`` without trailing zeros or an exponent: 4.50 -> 4.5, 1E+1 -> 10."""
    return Decimal(format(value.normalize(), "f"))


def check_customs_measure(unit: object, per_piece: object) -> CustomsMeasure | None:
    """The customs unit and per-piece quantity a merchant gives, both or neither (None)."""
    if unit is None and per_piece is None:
        return None
    if per_piece is None:
        raise InvalidTradeInput(
            f"customs unit {unit!r} needs the quantity of it in one piece "
            "(customsQuantityPerPiece, e.g. '0.75' for a 75 cl bottle in l)",
            field="customsQuantityPerPiece",
        )
    if unit is None:
        raise InvalidTradeInput(
            "a customs quantity per piece needs its unit (customsUnit, e.g. 'l')",
            field="customsUnit",
        )
    if not isinstance(unit, str) or CUSTOMS_UNIT_RE.fullmatch(unit) is None:
        raise InvalidTradeInput(
            f"customs unit must be 1-16 lower-case letters, digits or '_' like 'l', 'pair', "
            f"'m2', not {unit!r}",
            field="customsUnit",
        )
    if unit == "kg":
        raise InvalidTradeInput(
            "kg is declared from the item's weight (weightG), not as a customs unit",
            field="customsUnit",
        )
    return CustomsMeasure(unit, _check_per_piece(per_piece))


def _check_per_piece(value: object) -> Decimal:
    what = "customsQuantityPerPiece"
    if isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value.strip()):
        value = Decimal(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        value = Decimal(value)
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidTradeInput(
            f"{what} must be decimal text like '0.75', not {value!r}", field=what
        )
    if value <= 0:
        raise InvalidTradeInput(f"{what} must be above zero, not {value}", field=what)
    if value > CUSTOMS_PER_PIECE_MAX:
        raise InvalidTradeInput(f"{what} is at most {CUSTOMS_PER_PIECE_MAX}", field=what)
    # Compared exactly, not through normalize(), which rounds to the context's 28 digits:
    # '1.0000000000000000000000000001' was taken as 1. Under the maximum, the quantized value
    # has at most 13 digits, so quantize itself is exact.
    if value != value.quantize(Decimal(1).scaleb(-CUSTOMS_PER_PIECE_PLACES)):
        raise InvalidTradeInput(
            f"{what} has at most {CUSTOMS_PER_PIECE_PLACES} decimal places, not {value}",
            field=what,
        )
    return plain_decimal(value)


# ---------------------------------------------------------------------- principals
class Role(StrEnum):
    HUB = "hub"  # a hub's operator, authenticated as the hub's payment participant
    MERCHANT = "merchant"
    BUYER = "buyer"
    ARBITRATOR = "arbitrator"


def principal(role: Role, actor_id: str) -> str:
    """The caller string of a trade actor: ``merchant:m-1``, ``buyer:b-7``... A hub operator
    is its payment participant id (no prefix)."""
    return actor_id if role is Role.HUB else f"{role.value}:{actor_id}"


def parse_principal(caller: str) -> tuple[Role, str]:
    kind, sep, rest = caller.partition(":")
    if not sep:
        return Role.HUB, caller
    try:
        return Role(kind), rest
    except ValueError:
        raise InvalidTradeInput(f"unknown principal {caller!r}", field="caller") from None


# ---------------------------------------------------------------------- network
class HubKind(StrEnum):
    EXPORT = "export"  # central export hub: consolidation, export clearance
    IMPORT = "import"  # central import hub: import clearance
    EHUB = "ehub"  # national eHub: merchants, fulfilment centre, local banks


@dataclass(frozen=True, slots=True)
class FreightCard:
    """A hub's freight rates in its currency: a parcel's chargeable weight is the larger of
    its actual weight and its volumetric weight (L x W x H / 5,000 cm^3 per kg)."""

    domestic_base_minor: int
    domestic_per_kg_minor: int
    international_base_minor: int
    international_per_kg_minor: int
    insurance_bps: int = 100  # of the goods value

    def freight(self, chargeable_g: int, international: bool) -> int:
        base, per_kg = (
            (self.international_base_minor, self.international_per_kg_minor)
            if international
            else (self.domestic_base_minor, self.domestic_per_kg_minor)
        )
        # per started 100 g, rounded half up to the minor unit
        kg = Decimal(-(-chargeable_g // 100)) / 10
        return base + half_up(kg * per_kg)

    def insurance(self, goods_minor: int) -> int:
        return half_up(Decimal(goods_minor) * self.insurance_bps / 10_000)


@dataclass(frozen=True, slots=True)
class Hub:
    id: str
    name: str
    kind: HubKind
    country: str
    currency: str
    participant_id: str  # the hub operator's payment participant: it controls order escrows
    arbitrators: tuple[str, ...]  # its online arbitration panel (at least two: one appeal)
    customs_authority: str  # payment participant receiving duties and taxes for the country
    partners: tuple[str, ...]  # banks and wallets (payment participants) serving its merchants
    dftz: bool
    commission_bps: int
    handling_days: int  # the merchant hands the parcel over within this
    delivery_days: int  # delivered within this of payment, or the buyer is refunded
    dispute_days: int  # after delivery, before the escrow is released
    freight: FreightCard


@dataclass(frozen=True, slots=True)
class Warehouse:
    id: str
    hub_id: str
    name: str


class MerchantState(StrEnum):
    ACTIVE = "active"
    REVIEW = "review"  # onboarding screening asked a person to look
    SUSPENDED = "suspended"


@dataclass(frozen=True, slots=True)
class Merchant:
    id: str
    hub_id: str
    legal_name: str
    registration_number: str
    country: str
    currencies: tuple[str, ...]
    settlement_alias_type: str
    settlement_alias: str
    settlement_participant: str
    state: MerchantState
    # the onboarding screening outcome and why, and the hub's review: the hub's to read
    # (None where the merchant itself reads its record: ``TradeNetwork.get_merchant``)
    screening: str | None
    created_at_ns: int

    @property
    def settlement_currency(self) -> str:
        """The currency its payouts arrive in: its settlement alias's (listed first)."""
        return self.currencies[0]


class WalletConsent(StrEnum):
    """Whether the wallet a buyer pays from lets the buyer's orders take money from it: the
    hub registers a buyer with an alias of the hub's choosing, and checkout debits that
    wallet, so the wallet (for its customer) decides, like a direct debit mandate."""

    PENDING = "pending"  # registered; the wallet has not answered
    GRANTED = "granted"
    REVOKED = "revoked"  # no new orders; open ones run their course (refunds go back to it)


@dataclass(frozen=True, slots=True)
class Buyer:
    id: str
    name: str
    country: str
    hub_id: str
    currency: str
    wallet_alias_type: str
    wallet_alias: str
    wallet_participant: str
    created_at_ns: int
    wallet_consent: WalletConsent = WalletConsent.PENDING
    wallet_consent_at_ns: int | None = None  # when the wallet last granted or revoked it
    #: the registration of the alias the consent was given for (the directory's time of it)
    wallet_consent_alias_at_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    merchant_id: str
    title: str
    hs_code: str
    origin: str
    weight_g: int
    length_mm: int
    width_mm: int
    height_mm: int
    price_minor: int
    currency: str
    active: bool
    #: its customs unit and quantity per piece; None: declared in pieces (and kg) only
    customs: CustomsMeasure | None = None

    @property
    def chargeable_g(self) -> int:
        volumetric_g = self.length_mm * self.width_mm * self.height_mm // 5_000
        return max(self.weight_g, volumetric_g)


@dataclass(frozen=True, slots=True)
class StockLevel:
    sku: str
    warehouse_id: str
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


# ---------------------------------------------------------------------- quotes and orders
@dataclass(frozen=True, slots=True)
class QuoteLine:
    sku: str
    quantity: int
    warehouse_id: str
    unit_price_minor: int  # merchant currency
    line_minor: int  # merchant currency
    line_buyer_minor: int  # the buyer's currency, at the quote's rate
    #: the item's customs measure when quoted: what the declaration declares, whatever the
    #: merchant changes later (the taxes were quoted and escrowed on it)
    customs: CustomsMeasure | None = None

    @property
    def customs_unit(self) -> str:
        return "pcs" if self.customs is None else self.customs.unit

    @property
    def customs_quantity(self) -> Decimal:
        return (
            Decimal(self.quantity) if self.customs is None else self.customs.quantity(self.quantity)
        )


@dataclass(frozen=True, slots=True)
class CustomsFx:
    """How customs valued an order paid in another currency than the destination's: at the
    scheme's rate from the buyer's currency to customs' (the provider's posted ``rate``, before
    its spread), read once when the order was quoted and kept with the quote, so that the
    declaration lodged weeks later is valued at the same rate, never at a rate read then.
    Amounts are in ``currency``, customs'; the buyer pays the taxes in its own currency, each
    at the rate the scheme sells ``currency`` at (the rate less the spread), rounded up."""

    currency: str  # the destination's, customs'
    rate: Decimal  # units of ``currency`` per one unit of the buyer's currency
    provider_id: str
    spread_bps: int
    read_at_ns: int
    valid_until_ns: int
    freight_minor: int
    insurance_minor: int
    customs_value_minor: int
    duty_minor: int
    excise_minor: int
    vat_minor: int
    fees_minor: int

    @property
    def taxes_minor(self) -> int:
        """What the destination hub pays customs at clearance, in ``currency``."""
        return self.duty_minor + self.excise_minor + self.vat_minor + self.fees_minor

    def source(self, buyer_currency: str) -> str:
        """The rate's provenance, as the declaration records it."""
        at = iso_utc(self.read_at_ns)
        return (
            f"scheme rate {buyer_currency}->{self.currency} posted by {self.provider_id}, "
            f"read at {at} for the quote"
        )


@dataclass(frozen=True, slots=True)
class TradeQuote:
    """A landed-cost quote, delivered duty paid, in the buyer's currency."""

    id: str
    buyer_id: str
    merchant_id: str
    lines: tuple[QuoteLine, ...]
    currency: str  # the buyer's
    merchant_currency: str
    fx_rate: Decimal  # merchant-currency units per buyer-currency unit (1 when the same)
    goods_merchant_minor: int
    goods_minor: int
    freight_minor: int
    insurance_minor: int
    duty_minor: int
    excise_minor: int
    vat_minor: int
    customs_fees_minor: int
    total_minor: int
    regime: str
    dftz: bool
    explanations: tuple[str, ...]
    expires_at_ns: int
    created_at_ns: int
    used: bool = False
    #: the rate customs values at when the buyer pays in another currency than customs'
    customs_fx: CustomsFx | None = None

    @property
    def goods_escrow_minor(self) -> int:
        """Held for the merchant's hub: goods, freight and insurance."""
        return self.goods_minor + self.freight_minor + self.insurance_minor

    @property
    def taxes_minor(self) -> int:
        """Held for the destination's customs: duty, excise, VAT/GST and customs fees."""
        return self.duty_minor + self.excise_minor + self.vat_minor + self.customs_fees_minor


class OrderState(StrEnum):
    PAID = "PAID"  # in escrow, awaiting hand-over
    SHIPPED = "SHIPPED"  # in the logistics chain
    DELIVERED = "DELIVERED"  # dispute window open, escrow still held
    RETURN_REQUESTED = "RETURN_REQUESTED"
    DISPUTED = "DISPUTED"
    COMPLETED = "COMPLETED"  # escrow released (fully or by a ruling)
    CANCELLED = "CANCELLED"  # refunded before hand-over
    REFUNDED = "REFUNDED"  # refunded after hand-over (return, missed delivery, ruling)


TERMINAL_ORDER_STATES = frozenset({OrderState.COMPLETED, OrderState.CANCELLED, OrderState.REFUNDED})

# order event kind -> the state it leads to (None: the state does not change)
ORDER_EVENT_STATES: dict[str, OrderState | None] = {
    "paid": OrderState.PAID,
    "shipped": OrderState.SHIPPED,
    "import_cleared": None,
    "delivered": OrderState.DELIVERED,
    "return_requested": OrderState.RETURN_REQUESTED,
    "return_refused": OrderState.DELIVERED,
    "disputed": OrderState.DISPUTED,
    "released": OrderState.COMPLETED,
    "cancelled": OrderState.CANCELLED,
    "refunded": OrderState.REFUNDED,
    "split": OrderState.COMPLETED,
    "payout": None,
    "payout_held": None,
    "payout_failed": None,
    "payout_retry": None,
    "withholding_refused": None,  # the loan book refused the payout's id: paid whole
    "deadline_failed": None,
}


def derive_order_state(events: list[str]) -> OrderState:
    """The order's state is a fold over its events (the stored state is only a cache)."""
    state: OrderState | None = None
    for kind in events:
        if kind not in ORDER_EVENT_STATES:
            raise InvalidTradeInput(f"unknown order event {kind!r}", field="event")
        nxt = ORDER_EVENT_STATES[kind]
        if state is OrderState.DISPUTED and kind == "delivered":
            continue  # a parcel delivered during a dispute: the dispute decides
        if nxt is not None:
            state = nxt
    if state is None:
        raise InvalidTradeInput("an order starts with its payment", field="event")
    return state


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    quote_id: str
    buyer_id: str
    merchant_id: str
    hub_id: str  # the merchant's eHub: it holds the escrow and arbitrates
    destination_hub_id: str
    destination: str  # country
    currency: str
    total_minor: int
    goods_escrow_id: str
    goods_escrow_minor: int
    tax_escrow_id: str | None
    tax_escrow_minor: int
    merchant_currency: str
    merchant_amount_minor: int  # goods in the merchant's currency
    commission_minor: int  # the hub's, in the merchant's currency
    state: OrderState
    ship_by_ns: int
    deliver_by_ns: int
    release_at_ns: int | None  # set at delivery: end of the dispute window
    created_at_ns: int

    @property
    def merchant_net_minor(self) -> int:
        return self.merchant_amount_minor - self.commission_minor


def merchant_share(order: Order, released_minor: int) -> int:
    """What the merchant is paid, in its currency, when ``released_minor`` of the goods escrow
    goes to the hub: the same share of its net, rounded down (the hub absorbs the remainder)."""
    if released_minor == order.goods_escrow_minor:
        return order.merchant_net_minor
    # exact in integers: a Decimal product past its 28 digits (amounts near 10^15) was
    # rounded below an exact share, which rounding down then cost the merchant a unit
    return order.merchant_net_minor * released_minor // order.goods_escrow_minor


# ---------------------------------------------------------------------- logistics
# UPU EMSEVT-style event codes, in the order a cross-border parcel meets them.
TRACKING_CODES: dict[str, str] = {
    "EMA": "posted: collected from the merchant at its eHub",
    "EMB": "arrived at the export hub (outward office of exchange)",
    "EXA": "presented to export customs",
    "EXB": "held by export customs",
    "EXC": "released by export customs",
    "EXD": "consolidated for line-haul at the export hub",
    "EMC": "departed the export hub (line-haul)",
    "EMD": "arrived at the import hub (inward office of exchange)",
    "EDA": "held at the import hub for customs",
    "EDB": "presented to import customs",
    "EDC": "released by import customs (duties and taxes paid)",
    "EMF": "departed the import hub for delivery",
    "EMG": "arrived at the delivery office",
    "EMH": "delivery attempted, unsuccessful",
    "EMI": "delivered",
}
_NEXT: dict[str | None, frozenset[str]] = {
    None: frozenset({"EMA"}),
    "EMA": frozenset({"EMB"}),
    "EMB": frozenset({"EXA"}),
    "EXA": frozenset({"EXB", "EXC"}),
    "EXB": frozenset({"EXC"}),
    "EXC": frozenset({"EXD"}),
    "EXD": frozenset({"EMC"}),
    "EMC": frozenset({"EMD"}),
    "EMD": frozenset({"EDA"}),
    "EDA": frozenset({"EDB"}),
    "EDB": frozenset({"EDC"}),
    "EDC": frozenset({"EMF"}),
    "EMF": frozenset({"EMG"}),
    "EMG": frozenset({"EMH", "EMI"}),
    "EMH": frozenset({"EMH", "EMI"}),
    "EMI": frozenset(),
}
# A domestic parcel skips customs and line-haul.
_NEXT_DOMESTIC: dict[str | None, frozenset[str]] = {
    None: frozenset({"EMA"}),
    "EMA": frozenset({"EMG"}),
    "EMG": frozenset({"EMH", "EMI"}),
    "EMH": frozenset({"EMH", "EMI"}),
    "EMI": frozenset(),
}


def check_tracking_code(code: object) -> str:
    """An event code of ``TRACKING_CODES``: checked before whose leg it is, so a typo is named
    as a typo, not as another hub's event."""
    if not isinstance(code, str) or code not in TRACKING_CODES:
        raise InvalidTradeInput(
            f"unknown tracking event {code!r}; known: {', '.join(TRACKING_CODES)}", field="code"
        )
    return code


def check_tracking_step(last: str | None, code: str, *, domestic: bool) -> None:
    """Raise unless ``code`` may follow ``last`` on this kind of parcel."""
    check_tracking_code(code)
    allowed = (_NEXT_DOMESTIC if domestic else _NEXT).get(last, frozenset())
    if code not in allowed:
        expected = " or ".join(sorted(allowed)) or "nothing (delivered)"
        raise InvalidTransition(
            f"tracking event {code} cannot follow {last or 'no event'}; expected {expected}",
            field="code",
        )


def fulfilment_status(last: str | None) -> str:
    """A normalised status for buyers (Karrio's style)."""
    if last is None:
        return "awaiting_handover"
    if last in ("EMA", "EMB"):
        return "in_transit_origin"
    if last.startswith("EX"):
        return "export_customs"
    if last in ("EMC", "EMD"):
        return "line_haul"
    if last.startswith("ED"):
        return "import_customs" if last != "EDC" else "cleared"
    if last in ("EMF", "EMG"):
        return "out_for_delivery"
    if last == "EMH":
        return "delivery_failed"
    return "delivered"


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    shipment_id: str
    seq: int
    code: str
    hub_id: str
    actor: str
    at_ns: int
    note: str


# ---------------------------------------------------------------------- disputes
class DisputeReason(StrEnum):
    NOT_RECEIVED = "not_received"
    NOT_AS_DESCRIBED = "not_as_described"


class DisputeState(StrEnum):
    NEGOTIATION = "NEGOTIATION"
    ARBITRATION = "ARBITRATION"
    RULED = "RULED"  # first-instance ruling, appeal window open
    APPEAL = "APPEAL"
    RESOLVED = "RESOLVED"  # the escrow has moved; final


class Outcome(StrEnum):
    RELEASE = "release"  # all to the merchant's side
    REFUND = "refund"  # all back to the buyer
    SPLIT = "split"


@dataclass(frozen=True, slots=True)
class Ruling:
    outcome: Outcome
    refund_minor: int  # of the goods escrow, to the buyer; the rest is released
    by: str
    reason: str
    at_ns: int


def check_ruling(outcome: str, refund_minor: int, held_minor: int) -> tuple[Outcome, int]:
    """Normalise a ruling against what the goods escrow holds: release refunds 0, refund
    refunds all, a split refunds strictly between."""
    try:
        o = Outcome(outcome)
    except ValueError:
        raise InvalidTradeInput(
            "outcome must be release, refund or split", field="outcome"
        ) from None
    if o is Outcome.RELEASE:
        return o, 0
    if o is Outcome.REFUND:
        return o, held_minor
    if type(refund_minor) is not int or not 0 < refund_minor < held_minor:
        raise InvalidTradeInput(
            f"a split refunds more than 0 and less than the {held_minor} held",
            field="refundMinor",
        )
    return o, refund_minor


@dataclass(frozen=True, slots=True)
class Dispute:
    id: str
    order_id: str
    hub_id: str
    reason: DisputeReason
    state: DisputeState
    opened_by: str
    claim: str
    arbitrator: str | None
    appeal_arbitrator: str | None
    ruling: Ruling | None
    appeal_ruling: Ruling | None
    appealed_by: str | None
    respond_by_ns: int | None  # merchant's first answer
    negotiate_until_ns: int
    rule_by_ns: int | None
    appeal_until_ns: int | None
    offer_refund_minor: int | None  # the open settlement offer, if any
    offer_by: str | None
    created_at_ns: int

    @property
    def final_ruling(self) -> Ruling | None:
        return self.appeal_ruling or self.ruling


@dataclass(frozen=True, slots=True)
class DisputeEvent:
    dispute_id: str
    seq: int
    kind: str
    actor: str
    at_ns: int
    detail: str
