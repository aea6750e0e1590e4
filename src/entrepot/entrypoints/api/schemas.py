"""Request and response bodies (pydantic). Amounts travel as decimal strings in their
currency, Mojaloop style: ``{"amount": "100.50", "currency": "MYR"}``."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from typing_extensions import TypedDict

from entrepot.kernel.limits import RATE_BURST_MAX, RATE_PER_S_MAX, RATE_PER_S_MIN
from entrepot.kernel.money import parse_rate_text
from entrepot.payments.aliases import TILL_LEN_MAX

ID_PATTERN = r"^[A-Za-z0-9_-]+$"
Id = Field(min_length=1, max_length=64, pattern=ID_PATTERN)


def optional_id(description: str) -> Any:
    """An id field a body may leave out (null), as ``Id`` where given."""
    return Field(
        default=None, min_length=1, max_length=64, pattern=ID_PATTERN, description=description
    )


CurrencyCode = Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")
PartyIdentifier = Field(min_length=1, max_length=64)
AmountText = Field(min_length=1, max_length=32, pattern=r"^[0-9]+(\.[0-9]+)?$")
#: An integer in a request body: a JSON integer and nothing else, refused (422, naming the
#: field) as a boolean, a string or a float. Pydantic's lax mode read ``true`` as 1 and
#: ``"600"`` as 600: ``"deadlineSeconds": true`` made a one-second escrow, whose deadline then
#: paid the payee, where the services refuse a bool. Query and path parameters are text on
#: the wire and stay lax; a response's integers are the scheme's own.
JsonInt = Annotated[int, Field(strict=True)]
#: A request body's boolean: JSON ``true`` or ``false`` only. Lax parsing read ``"yes"``, ``"on"``,
#: ``1`` and ``"0"`` as booleans: a review's ``"approve": "no"`` is refused, not taken for one.
JsonBool = Annotated[bool, Field(strict=True)]


def _decimal_text(value: Any) -> Any:
    if isinstance(value, float):  # a JSON number with a fraction or an exponent
        raise ValueError(
            'a decimal string such as "0.0031": a JSON number is read as a binary float, '
            "which keeps about 17 significant digits"
        )
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # a JSON integer is exact
    if isinstance(value, str):
        return parse_rate_text(value)  # the schema's pattern, which pydantic's Decimal skips
    raise ValueError('a decimal string such as "0.0031"')


#: A rate in a request body: a decimal string of ASCII digits and at most one point (or a JSON
#: integer), never a JSON number with a fraction. Read as a float first, "rate":
#: 123456789.123456789 was posted as 123456789.12345679, a rate its provider never set; read
#: by Decimal, "1_0" was posted as ten and "5e-3", " 0.5", "+0.5" and other scripts' digits
#: were taken where the published pattern refuses them.
DecimalText = Annotated[
    Decimal,
    BeforeValidator(_decimal_text),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
                {"type": "integer", "minimum": 1},
            ]
        }
    ),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MoneyIn(Strict):
    amount: str = AmountText
    currency: str = CurrencyCode


class MoneyOut(BaseModel):
    amount: str
    currency: str
    minor: int


class ParticipantIn(Strict):
    id: str = Id
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["bank", "wallet", "fx_provider", "central_bank", "hub", "government"]
    country: str = Field(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")
    currencies: list[str] = Field(default_factory=list, max_length=20)
    bic: str | None = Field(default=None, pattern=r"^[A-Z]{6}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{3})?$")


class ParticipantCurrencyOut(BaseModel):
    currency: str
    ledger: int
    netDebitCap: MoneyOut


class ParticipantOut(BaseModel):
    id: str
    name: str
    kind: str
    country: str
    active: bool
    bic: str | None
    currencies: list[ParticipantCurrencyOut]


class LiquidityOut(BaseModel):
    """A participant's liquidity in one currency."""

    participantId: str
    currency: str
    settlementBalance: MoneyOut = Field(description="central bank money: deposits and settled nets")
    netDebitCap: MoneyOut
    positionAvailable: MoneyOut = Field(
        description="what the position can still send: the cap plus receipts less sends and "
        "reservations since the last settlement"
    )
    positionReserved: MoneyOut = Field(description="held by prepared transfers not yet decided")
    netPosition: MoneyOut = Field(
        description="owed to it (positive) or owed by it (negative) since the last settlement"
    )


class DepositIn(Strict):
    depositId: str = Id
    amount: MoneyIn


class CapIn(Strict):
    cap: MoneyIn


class RateLimitIn(Strict):
    """A participant's own request rate limit, replacing the scheme's for it."""

    requestsPerSecond: float = Field(
        strict=True,
        ge=RATE_PER_S_MIN,
        le=RATE_PER_S_MAX,
        allow_inf_nan=False,
        description="requests a second the participant may send, counted across the workers",
    )
    burst: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        le=RATE_BURST_MAX,
        description="requests it may send at once within the rate (default: a second's worth)",
    )


class RateLimitOut(BaseModel):
    """The request rate limit a participant is held to, and whose it is."""

    participantId: str
    source: Literal["participant", "scheme", "none"] = Field(
        description="participant: its own, set by the operator; scheme: the scheme's, "
        "ENTREPOT_RATE_LIMIT; none: not limited"
    )
    requestsPerSecond: float | None
    burst: int | None
    setBy: str | None = Field(description="who set the participant's own limit")
    setAt: str | None = Field(description="when the participant's own limit was set")


class CredentialIn(Strict):
    publicKey: str | None = Field(default=None, max_length=64)


class CredentialOut(BaseModel):
    keyId: str
    secret: str
    token: str
    participantId: str


class CredentialInfoOut(BaseModel):
    """A credential without its secret (shown once, at issue) or hash."""

    keyId: str
    participantId: str
    publicKey: str | None
    revoked: bool
    createdAt: str


class PartyIn(Strict):
    displayName: str = Field(min_length=1, max_length=200)
    currency: str = CurrencyCode


class PartyOut(BaseModel):
    partyIdType: str
    partyIdentifier: str
    fspId: str
    name: str
    currency: str
    country: str


class FxRateIn(Strict):
    sourceCurrency: str = CurrencyCode
    targetCurrency: str = CurrencyCode
    rate: DecimalText = Field(gt=0, max_digits=23, decimal_places=12)  # under 10^11
    spreadBps: JsonInt = Field(ge=0, le=9999)
    validSeconds: JsonInt = Field(ge=1, le=86_400)


class FxRateOut(BaseModel):
    providerId: str
    sourceCurrency: str
    targetCurrency: str
    rate: str = Field(description="target units per source unit, as posted (plain decimal)")
    effectiveRate: str = Field(description="the rate less the provider's spread")
    validUntil: str


class PayeeIn(Strict):
    partyIdType: Literal["MSISDN", "MERCHANT", "IBAN", "BUSINESS"]
    partyIdentifier: str = PartyIdentifier


class QuoteIn(Strict):
    quoteId: str = Id
    payee: PayeeIn
    payer: PayeeIn | None = Field(
        default=None, description="the payer party at the caller (fraud screening uses it)"
    )
    amountType: Literal["SEND", "RECEIVE"]
    amount: MoneyIn
    sourceCurrency: str = CurrencyCode
    expirySeconds: JsonInt = Field(default=60, ge=1, le=86_400)


class QuoteOut(BaseModel):
    quoteId: str
    state: str
    payer: str | None = None
    payerFsp: str
    payeeFsp: str
    amountType: str
    sendAmount: MoneyOut
    fee: MoneyOut
    receiveAmount: MoneyOut
    fxProvider: str | None
    fxRate: str | None
    expiration: str


class TransferIn(Strict):
    transferId: str = Id
    quoteId: str = Id
    expirySeconds: JsonInt = Field(default=60, ge=1, le=86_400)
    note: str | None = Field(default=None, max_length=200)


class SuspendIn(Strict):
    reason: str = Field(min_length=1, max_length=200, description="why, told to the participant")


class ResumeIn(Strict):
    reason: str | None = Field(default=None, min_length=1, max_length=200)


class StatusChangeOut(BaseModel):
    """A suspension (``active`` false) or resumption of a participant, and why."""

    seq: int
    active: bool
    reason: str | None
    actor: str
    at: str


class StatusHistoryOut(BaseModel):
    participantId: str
    active: bool
    changes: list[StatusChangeOut]


class RejectIn(Strict):
    reason: str = Field(default="rejected by payee", min_length=1, max_length=200)


class ReviewIn(Strict):
    approve: JsonBool
    reason: str = Field(min_length=1, max_length=200)
    reviewerId: str | None = optional_id(
        "the person at the operator who decided (a staff id): the verdict the decision log "
        "keeps names them, with the credential the request came with"
    )


class TransferOut(BaseModel):
    transferId: str
    quoteId: str
    state: str
    payerFsp: str
    payeeFsp: str
    sendAmount: MoneyOut
    fee: MoneyOut
    receiveAmount: MoneyOut
    fxProvider: str | None
    fxRate: str | None
    expiration: str
    settlementWindowId: int | None
    reason: str | None


class TransferPage(BaseModel):
    transfers: list[TransferOut]
    next: str | None


# A bulk carries up to 8,000 items: its bodies are TypedDicts, which pydantic checks about
# four times faster than models (no object per item); the constraints are the same.
_Forbid = ConfigDict(extra="forbid")
IdStr = Annotated[str, Id]


class BulkPayeeIn(TypedDict):
    __pydantic_config__ = _Forbid  # type: ignore[misc]
    partyIdType: Literal["MSISDN", "MERCHANT", "IBAN", "BUSINESS"]
    partyIdentifier: Annotated[str, PartyIdentifier]


class BulkMoneyIn(TypedDict):
    __pydantic_config__ = _Forbid  # type: ignore[misc]
    amount: Annotated[str, AmountText]
    currency: Annotated[str, CurrencyCode]


class BulkItemIn(TypedDict):
    __pydantic_config__ = _Forbid  # type: ignore[misc]
    transferId: IdStr
    payee: BulkPayeeIn
    amount: BulkMoneyIn


class BulkIn(TypedDict):
    __pydantic_config__ = _Forbid  # type: ignore[misc]
    bulkId: IdStr
    transfers: Annotated[list[BulkItemIn], Field(min_length=1, max_length=8_000)]


class BulkItemOut(BaseModel):
    transferId: str
    state: str
    reason: str | None = None


class BulkOut(BaseModel):
    bulkId: str
    committed: int
    rejected: int
    results: list[BulkItemOut]


class QrEncodeIn(Strict):
    # as long as the directory registers (it took 25 of a till's 32); the first character's
    # rule is the directory's to tell (422 "malformed", naming tillId)
    tillId: str = Field(min_length=1, max_length=TILL_LEN_MAX, pattern=r"^[A-Za-z0-9._-]+$")
    merchantName: str = Field(min_length=1, max_length=25)
    city: str = Field(min_length=1, max_length=15)
    country: str = Field(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")
    currency: str = CurrencyCode
    mcc: str = Field(default="5999", pattern=r"^[0-9]{4}$")
    amount: str | None = Field(default=None, max_length=13, pattern=r"^[0-9]+(\.[0-9]+)?$")
    reference: str | None = Field(default=None, max_length=25)


class QrOut(BaseModel):
    payload: str
    crc: str


class QrDecodeIn(Strict):
    payload: str = Field(min_length=1, max_length=512)


class QrPromptedIn(Strict):
    """What the payer entered where the QR asks for it (its tag 62 holds ``***``)."""

    billNumber: str | None = Field(None, min_length=1, max_length=25)
    referenceLabel: str | None = Field(None, min_length=1, max_length=25)
    terminalLabel: str | None = Field(None, min_length=1, max_length=25)


class QrPayIn(Strict):
    payload: str = Field(min_length=1, max_length=512)
    transferId: str = Id
    quoteId: str = Id
    sourceCurrency: str = CurrencyCode
    amount: MoneyIn | None = Field(
        None,
        description="The transaction amount in the QR's currency: needed for a static QR, a "
        "dynamic QR's own if sent. A convenience fee the QR states (tag 55 = 02 or 03) is "
        "added to it",
    )
    tip: MoneyIn | None = Field(
        None, description="The payer's tip, where the QR asks for one (tag 55 = 01)"
    )
    prompted: QrPromptedIn | None = Field(
        None,
        description="The bill number, reference label or terminal label the payer entered, "
        "each where the QR asks for it (`***` in tag 62; `/v1/qr/decode` lists them in "
        "`prompts`): needed then, refused otherwise; carried in the transfer's note",
    )
    payer: PayeeIn | None = None


class QrPayOut(BaseModel):
    party: PartyOut
    quote: QuoteOut
    transfer: TransferOut


class EscrowIn(Strict):
    escrowId: str = Id
    payeeFsp: str = Id
    amount: MoneyIn
    purpose: str = Field(min_length=1, max_length=200)
    deadlineSeconds: JsonInt = Field(ge=1, le=366 * 86_400)
    onDeadline: Literal["release", "refund"] = "refund"
    controller: str | None = optional_id(
        "who decides: the payer (the default), the payee or an active escrow agent (a hub); "
        "another is 403 controller_not_allowed"
    )


class EscrowMoveIn(Strict):
    amount: MoneyIn


class EscrowSplitIn(Strict):
    """One decision: ``release`` to the payee and ``refund`` to the payer (either may be
    zero, not both), in the escrow's currency."""

    release: MoneyIn
    refund: MoneyIn


class EscrowEventOut(BaseModel):
    """One decision on an escrow: its hold, a release, a refund (by whom, when, how much)."""

    seq: int
    action: str
    amount: MoneyOut
    actor: str
    at: str


class EscrowEventListOut(BaseModel):
    events: list[EscrowEventOut]


class EscrowOut(BaseModel):
    escrowId: str
    state: str
    payerFsp: str
    payeeFsp: str
    controller: str
    amount: MoneyOut
    released: MoneyOut
    refunded: MoneyOut
    held: MoneyOut
    purpose: str
    deadline: str
    onDeadline: str


class PositionOut(BaseModel):
    participantId: str
    currency: str
    sent: MoneyOut
    received: MoneyOut
    net: MoneyOut
    settled: MoneyOut | None = Field(
        None,
        description="What settling the window moved (null until settled): a debtor's whole "
        "net; for a creditor what its position could give back, the rest counted in the next "
        "window's net",
    )
    carried: MoneyOut = Field(
        description="What of net the previous window's settlement could not pay (a creditor's "
        "remainder, owed from then): settled with this window, not moved in it",
    )


class WindowFiguresOut(BaseModel):
    """One currency's line of a window's report (payments/model.py ``WindowFigures``)."""

    gross_minor: int
    net_minor: int
    carried_minor: int
    liquidity_saved_minor: int
    gross_to_net: str | None = Field(
        description="gross over net, a decimal string rounded half up to two places "
        '("2.68"; a JSON number before); null where nothing nets',
        pattern=r"^[0-9]+\.[0-9]{2}$",
    )


class WindowOut(BaseModel):
    id: int
    state: str
    openedAt: str
    closedAt: str | None
    settledAt: str | None
    positions: list[PositionOut]
    report: dict[str, WindowFiguresOut]


class Problem(BaseModel):
    """application/problem+json (RFC 9457) with Entrepot's stable code."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    field: str | None = None
    errorCode: str | None = None


class EndpointIn(Strict):
    url: str = Field(min_length=8, max_length=500, description="http(s) URL for notifications")


class FeeRuleOut(BaseModel):
    """One currency's scheme fee: ``bps`` basis points of the amount the payer sends (half
    up), plus ``fixed``, then at least ``min`` and at most ``max`` (none: no maximum)."""

    currency: str
    bps: int
    fixed: MoneyOut
    min: MoneyOut
    max: MoneyOut | None


class FeeScheduleOut(BaseModel):
    """The scheme's fee schedule: a rule per named currency, and for every other currency
    ``bps`` basis points alone."""

    bps: int
    currencies: list[FeeRuleOut]


class EndpointOut(BaseModel):
    participantId: str
    url: str | None


class NotificationOut(BaseModel):
    id: int
    event: str
    resourceId: str
    body: dict[str, Any]
    createdAt: int
    attempts: int
    deliveredAt: int | None
    lastError: str | None
    abandonedAt: int | None = Field(
        None,
        description="When the scheme stopped trying to deliver it (its endpoint refused it, "
        "or it failed too often): read it here",
    )


class NotificationList(BaseModel):
    notifications: list[NotificationOut]
