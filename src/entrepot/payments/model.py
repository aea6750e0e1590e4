"""Payment scheme entities (frozen dataclasses). Amounts are int minor units; currencies are
ISO 4217 codes; times are UTC nanoseconds from the injected clock."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext
from enum import StrEnum
from typing import TypedDict

_URL_NAMESPACE = uuid.NAMESPACE_URL.bytes

#: The largest amount the scheme quotes, moves or holds, in minor units
SCHEME_AMOUNT_MAX = 10**15
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (4 << 76) | (0x8000 << 48)


def uetr(transfer_id: str) -> str:
    """A transfer's UETR (ISO 20022's end-to-end reference, a version-4 UUID): the transfer
    id when it is one, else a stable version-4-shaped UUID derived from it. Its pacs.008 and
    pacs.002 carry it, and so do the ledger legs of the payment (``user_data_128``), whose
    statement entries name it."""
    return str(uuid.UUID(int=uetr_int(transfer_id)))


def uetr_int(transfer_id: str) -> int:
    """:func:`uetr` as a 128-bit integer, made without UUID objects where it can be (every
    prepare makes one): the transfer id's own when it is a canonical version-4 UUID (any
    case), else the SHA-1 of ``entrepot:transfer:<id>`` in the URL namespace (as uuid5) with
    the version and variant bits of a version 4."""
    if len(transfer_id) == 36 and transfer_id[14] == "4":
        try:
            parsed = uuid.UUID(transfer_id)
        except ValueError:
            pass
        else:
            if parsed.version == 4 and str(parsed) == transfer_id.lower():
                return parsed.int
    name = f"entrepot:transfer:{transfer_id}".encode()
    digest = hashlib.sha1(_URL_NAMESPACE + name).digest()
    return (int.from_bytes(digest[:16], "big") & _V4_CLEAR) | _V4_SET


class ParticipantKind(StrEnum):
    BANK = "bank"
    WALLET = "wallet"
    FX_PROVIDER = "fx_provider"
    CENTRAL_BANK = "central_bank"
    HUB = "hub"  # a trade hub's operator: decides escrows it controls
    GOVERNMENT = "government"  # a public body paid through the scheme (a customs authority)


class AliasType(StrEnum):
    MSISDN = "MSISDN"
    MERCHANT = "MERCHANT"  # merchant till id
    IBAN = "IBAN"
    BUSINESS = "BUSINESS"  # business registration id


class AmountType(StrEnum):
    SEND = "SEND"
    RECEIVE = "RECEIVE"


class QuoteState(StrEnum):
    QUOTED = "QUOTED"
    ACCEPTED = "ACCEPTED"  # the FX provider's liquidity is reserved until expiry
    USED = "USED"
    EXPIRED = "EXPIRED"


class TransferState(StrEnum):
    """Mojaloop's states, plus HOLD (screening asked for a person's review)."""

    RECEIVED = "RECEIVED"
    RESERVED = "RESERVED"
    HOLD = "HOLD"
    COMMITTED = "COMMITTED"
    ABORTED = "ABORTED"


class EscrowState(StrEnum):
    HELD = "HELD"
    CLOSED = "CLOSED"


class DeadlineAction(StrEnum):
    RELEASE = "release"
    REFUND = "refund"


class WindowState(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    SETTLED = "SETTLED"


@dataclass(frozen=True, slots=True)
class ParticipantCurrency:
    currency: str
    ledger: int
    position_account: int
    settlement_account: int
    net_debit_cap_minor: int


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    name: str
    kind: ParticipantKind
    country: str
    active: bool
    currencies: dict[str, ParticipantCurrency] = field(default_factory=dict)
    bic: str | None = None

    def check_currency(self, currency: str) -> ParticipantCurrency:
        from entrepot.payments.errors import CurrencyNotSupported, InvalidPaymentInput

        found = self.currencies.get(currency)
        if found is None:
            if not (isinstance(currency, str) and _CURRENCY_CODE.fullmatch(currency)):
                # not a code at all ("rwf", "RWF:x"): bad input, as every other path says
                raise InvalidPaymentInput(
                    f"currency {currency!r} is not an ISO 4217 code (three capitals)",
                    field="currency",
                )
            raise CurrencyNotSupported(
                f"participant {self.id} does not hold {currency}", field="currency"
            )
        return found


_CURRENCY_CODE = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A participant suspended (``active`` False) or resumed: when, by whom, and why."""

    participant_id: str
    seq: int
    active: bool
    reason: str | None
    actor: str
    at_ns: int


@dataclass(frozen=True, slots=True)
class Party:
    alias_type: AliasType
    alias: str
    participant_id: str
    display_name: str
    currency: str
    country: str
    #: when the participant registered the alias: an alias removed and registered again (a
    #: number given to a new customer) is another registration (None: not read)
    registered_at_ns: int | None = field(default=None, compare=False)


def less_spread(rate: Decimal, spread_bps: int) -> Decimal:
    """A provider's posted ``rate`` less its spread in basis points: what a payer gets,
    exact. (A rate holds up to 30 digits: 18 whole, 12 decimal; the default context's 28
    rounded the product, up as well as down, and a SEND paid more than it funded.)"""
    with localcontext() as ctx:
        ctx.prec = 60
        return rate * (Decimal(10_000 - spread_bps) / Decimal(10_000))


@dataclass(frozen=True, slots=True)
class FxRate:
    provider_id: str
    source_currency: str
    target_currency: str
    rate: Decimal  # target units per source unit, before the spread
    spread_bps: int
    valid_until_ns: int

    @property
    def effective_rate(self) -> Decimal:
        """What the payer gets: the rate less the provider's spread."""
        return less_spread(self.rate, self.spread_bps)


@dataclass(frozen=True, slots=True)
class Quote:
    id: str
    payer_participant: str
    payee_participant: str
    payee_alias_type: AliasType
    payee_alias: str
    amount_type: AmountType
    source_currency: str
    target_currency: str
    source_amount_minor: int  # what the payer participant pays in total (fee included)
    fee_minor: int  # scheme fee, in the source currency
    target_amount_minor: int  # what the payee receives
    fx_provider: str | None
    fx_rate: Decimal | None
    expires_at_ns: int
    state: QuoteState
    created_at_ns: int
    payer_alias: str | None = None  # the payer party, "TYPE:alias" (Mojaloop's payer), if given
    #: the payee alias's registration priced (when its directory row was made), if dated
    payee_registered_at_ns: int | None = None

    @property
    def cross_currency(self) -> bool:
        return self.source_currency != self.target_currency


@dataclass(frozen=True, slots=True)
class PaymentTransfer:
    id: str
    quote_id: str
    payer_participant: str
    payee_participant: str
    source_currency: str
    target_currency: str
    source_amount_minor: int
    fee_minor: int
    target_amount_minor: int
    fx_provider: str | None
    fx_rate: Decimal | None
    state: TransferState
    expires_at_ns: int
    created_at_ns: int
    updated_at_ns: int
    window_id: int | None
    reason: str | None = None
    note: str | None = None
    payer_alias: str | None = None  # the payer party from the quote, "TYPE:alias"
    payee_alias: str | None = None  # a bulk item's payee party (no quote), "TYPE:alias"

    def seen_by(self, participant: str) -> PaymentTransfer:
        """The transfer as ``participant`` may see it. Why screening held it (a fraud score
        and evidence about the payer's customer, a sanctions candidate) and what the reviewer
        wrote are the payer's and the operator's to read, not the payee's, which sees the
        state (on hold, reserved, aborted) and no reason: not even that a review rejected it
        (no tipping off a payee screening suspected). The FX provider, whose liquidity runs a
        cross-currency transfer's legs, sees it as the payee does, less the customers' data:
        the payer party, the payee alias and the payer's note for the payee."""
        t = self
        if participant == self.fx_provider and participant not in (
            self.payer_participant,
            self.payee_participant,
        ):
            t = replace(self, note=None, payer_alias=None, payee_alias=None)
        if participant == self.payer_participant or t.reason is None:
            return t
        if t.state is TransferState.HOLD or t.reason.startswith((REVIEW_RELEASED, REVIEW_REJECTED)):
            return replace(t, reason=None)
        return t


#: What a review records as a held transfer's reason, before the reviewer's words
REVIEW_RELEASED = "released: "
REVIEW_REJECTED = "held and rejected: "


@dataclass(frozen=True, slots=True)
class Escrow:
    id: str
    payer_participant: str
    payee_participant: str
    controller: str  # the participant allowed to decide (a hub, or the payer's bank)
    currency: str
    amount_minor: int
    released_minor: int
    refunded_minor: int
    purpose: str
    deadline_ns: int
    on_deadline: DeadlineAction
    state: EscrowState
    created_at_ns: int
    #: the context whose use cases alone decide it (an order's escrow is trade's: its
    #: controller, the hub, cannot release it past the order's dispute through the API)
    managed_by: str | None = None

    @property
    def held_minor(self) -> int:
        return self.amount_minor - self.released_minor - self.refunded_minor


@dataclass(frozen=True, slots=True)
class NetPosition:
    """A participant's position in a closed window: gross sent/received by its committed
    transfers, and its multilateral net read from its ledger position (escrow moves included).
    Positive net: the participant is owed; negative: it owes. ``settled_minor``: what
    settling the window moved (None until then). A debtor pays its whole net; a creditor is
    paid what its position can give back (it may have spent what it was owed before the
    settlement), and the rest stays in its position for the next window's net."""

    participant_id: str
    currency: str
    sent_minor: int
    received_minor: int
    net_minor: int
    settled_minor: int | None = None
    #: what of ``net_minor`` the previous window's settlement could not pay this creditor
    #: (it stayed in its position): owed from then, settled with this window, not moved in it
    carried_minor: int = 0


class WindowFigures(TypedDict):
    """One currency's line of a settlement window's report."""

    gross_minor: int
    net_minor: int
    carried_minor: int
    liquidity_saved_minor: int
    #: gross over net, a decimal string rounded half up to two places (``gross_to_net``);
    #: None (JSON's null) where nothing nets: infinity is no JSON number (the CLI's --json
    #: printed ``Infinity``, which JSON parsers refuse)
    gross_to_net: str | None


def gross_to_net(gross_minor: int, net_minor: int) -> str | None:
    """Gross over net as a decimal string, rounded half up to two places from the exact
    ratio of the two integers (214 over 80: ``"2.68"``); None where nothing nets. It was a
    binary float rounded by ``round``, which read 2.675 as 2.67, beside figures stated
    exactly in minor units (a review)."""
    if not net_minor:
        return None
    hundredths = (200 * gross_minor + net_minor) // (2 * net_minor)
    return f"{hundredths // 100}.{hundredths % 100:02d}"


@dataclass(frozen=True, slots=True)
class SettlementWindow:
    id: int
    state: WindowState
    opened_at_ns: int
    closed_at_ns: int | None
    settled_at_ns: int | None
    positions: tuple[NetPosition, ...] = ()
    #: per currency, what the scheme's escrow account paid out in the window (releases and
    #: refunds): sent by no participant, so no position's ``sent_minor`` counts it
    escrow_paid: tuple[tuple[str, int], ...] = ()

    def report(self) -> dict[str, WindowFigures]:
        """Per currency: gross value, net value and the liquidity saved by netting.

        Gross is the value moved, each move once, as it would settle one at a time: what
        the participants sent (a payment's legs, fees and FX legs included, each sent by one
        and received by another; an escrow hold, sent by its payer to the scheme's escrow
        account) and what that escrow account paid out (a release or refund, received by a
        participant, sent by none). It was the larger of what was sent and what was
        received, which counted one side of a window's escrow moves: a hold of 500 released
        in the window moved 1,000 and reported 500 (a review). Net is the larger of what
        debtors pay in and creditors are paid: a window whose only move released an escrow
        held earlier moved its amount, which summing what was sent and what debtors owe (0
        and 0) did not show.

        Net is what the window's own moves net to: what an earlier settlement could not pay
        a creditor (``carried_minor``, counted in its position's net) is reported apart, as
        owed from before. Counted in net, a window with no moves but a carried 500 reported
        net 500 against gross 0, a liquidity saving of -500, and the 500 as net twice."""
        sums: dict[str, list[int]] = {}
        for p in self.positions:
            acc = sums.setdefault(p.currency, [0, 0, 0, 0, 0])
            own = p.net_minor - p.carried_minor
            acc[0] += p.sent_minor
            acc[1] += p.received_minor
            acc[2] += max(0, -own)
            acc[3] += max(0, own)
            acc[4] += p.carried_minor
        paid = dict(self.escrow_paid)
        out: dict[str, WindowFigures] = {}
        for currency, (sent, _received, owed, owing, carried) in sums.items():
            gross, net = sent + paid.get(currency, 0), max(owed, owing)
            out[currency] = WindowFigures(
                gross_minor=gross,
                net_minor=net,
                carried_minor=carried,
                liquidity_saved_minor=gross - net,
                gross_to_net=gross_to_net(gross, net),
            )
        return out
