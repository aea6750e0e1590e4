"""/v1 routes. Each builds a command from the validated body and calls one use case; the
caller (from the credentials) scopes every read and write."""

from __future__ import annotations

import io
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BeforeValidator, TypeAdapter, ValidationError
from pydantic_core import to_json

from entrepot.entrypoints.api import convert as cv
from entrepot.entrypoints.api import schemas as s
from entrepot.entrypoints.api.asgi import run_read
from entrepot.entrypoints.api.metrics import METRICS_MEDIA_TYPE, prometheus_text
from entrepot.entrypoints.api.security import caller_dependency
from entrepot.kernel.clock import NS_PER_S, parse_time
from entrepot.kernel.errors import FieldsNamed, InvalidInput
from entrepot.kernel.money import get_currency, parse_amount
from entrepot.payments import (
    SCHEME,
    AliasType,
    PaymentScheme,
    PaymentTransfer,
    TransferState,
    iso20022,
    messages,
    qr,
)
from entrepot.payments.aliases import normalise_alias
from entrepot.payments.bulk import BulkItem, bulk_transfers, item_error
from entrepot.payments.credentials import (
    CredentialInfo,
    issue_credential,
    list_credentials,
    revoke_credential,
)
from entrepot.payments.errors import (
    InvalidPaymentInput,
    NotYours,
)
from entrepot.payments.monitoring import scheme_snapshot
from entrepot.payments.notify import public_key_b64
from entrepot.payments.rate_limits import (
    ParticipantRateLimit,
    clear_rate_limit,
    held_limit,
    rate_limit_of,
    set_rate_limit,
)

_PROBLEM: dict[str, object] = {
    "description": "An error: application/problem+json with a stable code",
    "content": {"application/problem+json": {"schema": s.Problem.model_json_schema()}},
}
router = APIRouter(
    prefix="/v1",
    responses={status: _PROBLEM for status in (400, 401, 403, 404, 409, 422)},
)
Caller = Annotated[str, Depends(caller_dependency)]
_DIGITS = re.compile(r"[1-9][0-9]*")


def _digits_only(raw: object) -> object:
    """A window id as the path writes it: digits, no sign, point or leading zero (pydantic's
    lax int took ``1.0``, ``+1`` and ``01`` for window 1, and settled it)."""
    if isinstance(raw, str) and _DIGITS.fullmatch(raw) is None:
        raise ValueError("a window id is a positive whole number in digits (1, 2, ...)")
    return raw


WindowId = Annotated[int, Path(ge=1, le=2**63 - 1), BeforeValidator(_digits_only)]
XML = "application/xml"


async def scheme_of(request: Request) -> PaymentScheme:
    scheme = request.app.state.scheme
    assert isinstance(scheme, PaymentScheme)
    return scheme


Scheme = Annotated[PaymentScheme, Depends(scheme_of)]


def _operator(caller: str) -> None:
    if caller != SCHEME:
        raise NotYours("only the scheme operator may do this")


def _self_or_operator(caller: str, participant_id: str) -> None:
    if caller not in (participant_id, SCHEME):
        raise NotYours(f"participant {participant_id} is not you")


# ------------------------------------------------------------------ participants
@router.post("/participants", status_code=201, response_model=s.ParticipantOut)
def create_participant(body: s.ParticipantIn, caller: Caller, scheme: Scheme) -> s.ParticipantOut:
    _operator(caller)
    for currency in body.currencies:
        get_currency(currency)
    p = scheme.register_participant(
        body.id, body.name, body.kind, body.country, body.currencies, bic=body.bic
    )
    return cv.participant(p)


@router.get("/participants", response_model=list[s.ParticipantOut])
def list_participants(caller: Caller, scheme: Scheme) -> list[s.ParticipantOut]:
    if caller == SCHEME:
        return [cv.participant(p) for p in scheme.list_participants()]
    return [cv.participant(scheme.get_participant(caller))]


@router.get("/participants/{participant_id}", response_model=s.ParticipantOut)
def get_participant(participant_id: str, caller: Caller, scheme: Scheme) -> s.ParticipantOut:
    _self_or_operator(caller, participant_id)
    return cv.participant(scheme.get_participant(participant_id))


@router.put("/participants/{participant_id}/endpoint", response_model=s.EndpointOut)
def set_endpoint(
    participant_id: str, body: s.EndpointIn, caller: Caller, scheme: Scheme
) -> s.EndpointOut:
    """Where the participant's notifications (transfer reserved, committed, aborted...) go."""
    if caller != participant_id:
        raise NotYours("a participant sets only its own endpoint")
    return s.EndpointOut(participantId=caller, url=scheme.set_endpoint(caller, body.url))


@router.get("/participants/{participant_id}/endpoint", response_model=s.EndpointOut)
def get_endpoint(participant_id: str, caller: Caller, scheme: Scheme) -> s.EndpointOut:
    _self_or_operator(caller, participant_id)
    return s.EndpointOut(participantId=participant_id, url=scheme.get_endpoint(participant_id))


@router.get("/scheme/public-key")
def scheme_public_key(request: Request, caller: Caller) -> dict[str, str | None]:
    """The Ed25519 public key that signs the scheme's callbacks (``X-Signature``)."""
    key = getattr(request.app.state, "callback_key", None)
    return {"algorithm": "Ed25519", "publicKey": None if key is None else public_key_b64(key)}


@router.get("/scheme/fees", response_model=s.FeeScheduleOut)
def scheme_fees(caller: Caller, scheme: Scheme) -> s.FeeScheduleOut:
    """The scheme's fee schedule, as every quote is priced (``ENTREPOT_FEE_SCHEDULE``): open to
    every participant, so a fee can be checked before it is paid."""
    return cv.fee_schedule(scheme.fees)


@router.get("/scheme/fees/{currency}", response_model=s.FeeRuleOut)
def scheme_fee(currency: str, caller: Caller, scheme: Scheme) -> s.FeeRuleOut:
    """The fee rule a payment sent in ``currency`` pays (the default's basis points alone for
    a currency the schedule does not name)."""
    return cv.fee_rule(scheme.fees, get_currency(currency).code)


_METRICS_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the scheme's state in Prometheus' text exposition format",
        "content": {METRICS_MEDIA_TYPE: {"schema": {"type": "string"}}},
    }
}


@router.get("/metrics", response_class=Response, responses=_METRICS_ANSWER)
def metrics(caller: Caller, scheme: Scheme, request: Request) -> Response:
    """For the operator's monitoring (a Prometheus scrape with the operator's credential):
    each participant's position against its net debit cap, transfers awaiting the payee or
    a review, escrow held, settlement windows, notices not delivered, the API's requests
    by route, method and status with their latency, and how busy the database's writer is
    (docs/payments.md)."""
    _operator(caller)
    counts = request.app.state.request_counts.collectors
    return Response(
        prometheus_text(scheme_snapshot(scheme), *counts), media_type=METRICS_MEDIA_TYPE
    )


@router.get("/notifications", response_model=s.NotificationList)
def list_notifications(
    caller: Caller,
    scheme: Scheme,
    pending: bool = False,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> s.NotificationList:
    """The caller's notifications, oldest first: what was (or will be) called back."""
    found = scheme.notifications(caller, pending_only=pending, after=after, limit=limit)
    return s.NotificationList(notifications=[s.NotificationOut.model_validate(n) for n in found])


@router.post("/participants/{participant_id}/suspend", response_model=s.ParticipantOut)
def suspend(
    participant_id: str, body: s.SuspendIn, caller: Caller, scheme: Scheme
) -> s.ParticipantOut:
    """The operator suspends a participant: it can neither send nor receive until resumed.
    The reason is recorded and sent to the participant (``participant.suspended``)."""
    _operator(caller)
    return cv.participant(scheme.set_active(participant_id, False, body.reason))


@router.post("/participants/{participant_id}/resume", response_model=s.ParticipantOut)
def resume(
    participant_id: str, caller: Caller, scheme: Scheme, body: s.ResumeIn | None = None
) -> s.ParticipantOut:
    """The operator lets a suspended participant send and receive again."""
    _operator(caller)
    reason = None if body is None else body.reason
    return cv.participant(scheme.set_active(participant_id, True, reason))


@router.get("/participants/{participant_id}/statusHistory", response_model=s.StatusHistoryOut)
def status_history(participant_id: str, caller: Caller, scheme: Scheme) -> s.StatusHistoryOut:
    """Each suspension and resumption of the participant, oldest first, with the reason: the
    participant's own and the operator's to read."""
    participant, changes = scheme.status_with_history(caller, participant_id)  # one read
    return s.StatusHistoryOut(
        participantId=participant_id,
        active=participant.active,
        changes=[
            s.StatusChangeOut(
                seq=c.seq, active=c.active, reason=c.reason, actor=c.actor, at=cv.iso(c.at_ns)
            )
            for c in changes
        ],
    )


@router.post(
    "/participants/{participant_id}/currencies/{currency}", response_model=s.ParticipantOut
)
def add_currency(
    participant_id: str, currency: str, caller: Caller, scheme: Scheme
) -> s.ParticipantOut:
    _operator(caller)
    return cv.participant(scheme.add_currency(participant_id, currency))


@router.post(
    "/participants/{participant_id}/deposits", status_code=201, response_model=s.LiquidityOut
)
def deposit(
    participant_id: str, body: s.DepositIn, caller: Caller, scheme: Scheme
) -> s.LiquidityOut:
    _operator(caller)
    scheme.deposit(participant_id, body.amount.currency, cv.minor(body.amount), body.depositId)
    return _liquidity(scheme, participant_id, body.amount.currency)


@router.put("/participants/{participant_id}/netDebitCap", response_model=s.ParticipantOut)
def set_cap(participant_id: str, body: s.CapIn, caller: Caller, scheme: Scheme) -> s.ParticipantOut:
    _operator(caller)
    return cv.participant(
        scheme.set_net_debit_cap(participant_id, body.cap.currency, cv.minor(body.cap))
    )


@router.get("/participants/{participant_id}/liquidity/{currency}", response_model=s.LiquidityOut)
def liquidity(participant_id: str, currency: str, caller: Caller, scheme: Scheme) -> s.LiquidityOut:
    _self_or_operator(caller, participant_id)
    return _liquidity(scheme, participant_id, currency)


def _liquidity(scheme: PaymentScheme, participant_id: str, currency: str) -> s.LiquidityOut:
    get_currency(currency)
    f = scheme.liquidity(participant_id, currency)
    return s.LiquidityOut(
        participantId=participant_id,
        currency=currency,
        settlementBalance=cv.money(f["settlement_balance_minor"], currency),
        netDebitCap=cv.money(f["net_debit_cap_minor"], currency),
        positionAvailable=cv.money(f["position_available_minor"], currency),
        positionReserved=cv.money(f["position_reserved_minor"], currency),
        netPosition=cv.money(f["net_position_minor"], currency),
    )


@router.post(
    "/participants/{participant_id}/credentials", status_code=201, response_model=s.CredentialOut
)
def credentials(
    participant_id: str,
    caller: Caller,
    scheme: Scheme,
    response: Response,
    body: s.CredentialIn | None = None,
) -> s.CredentialOut:
    """Issue a credential; the body (a public key to bind) is optional, as its field is."""
    _operator(caller)
    response.headers["Cache-Control"] = "no-store"  # a secret: kept nowhere (security.py)
    public_key = body.publicKey if body is not None else None
    issued = issue_credential(
        scheme.engine, participant_id, public_key_b64=public_key, clock=scheme.clock
    )
    return s.CredentialOut(
        keyId=issued.key_id, secret=issued.secret, token=issued.token, participantId=participant_id
    )


def _credential(c: CredentialInfo) -> s.CredentialInfoOut:
    return s.CredentialInfoOut(
        keyId=c.key_id,
        participantId=c.participant_id,
        publicKey=c.public_key,
        revoked=c.revoked,
        createdAt=cv.iso(c.created_at_ns) or "",
    )


@router.get("/participants/{participant_id}/credentials", response_model=list[s.CredentialInfoOut])
def list_participant_credentials(
    participant_id: str, caller: Caller, scheme: Scheme
) -> list[s.CredentialInfoOut]:
    """The participant's credentials, revoked ones too (the participant or the operator)."""
    _self_or_operator(caller, participant_id)
    if caller != participant_id:
        # The operator naming no participant: 404, as every other route of a participant
        # answers it (an empty list said it was one without credentials). Only the operator
        # gets here, and it lists every participant anyway.
        scheme.get_participant(participant_id)
    return [_credential(c) for c in list_credentials(scheme.engine, participant_id)]


@router.delete(
    "/participants/{participant_id}/credentials/{key_id}", response_model=s.CredentialInfoOut
)
def revoke_participant_credential(
    participant_id: str, key_id: str, caller: Caller, scheme: Scheme
) -> s.CredentialInfoOut:
    """Revoke a credential (a lost secret, a key rotated): refused from the next request on,
    in every worker. The participant may revoke its own, the operator any participant's."""
    _self_or_operator(caller, participant_id)
    return _credential(revoke_credential(scheme.engine, key_id, participant_id=participant_id))


# ------------------------------------------------------------------ request rate limits
@router.get("/participants/{participant_id}/rateLimit", response_model=s.RateLimitOut)
def get_rate_limit(
    participant_id: str, caller: Caller, scheme: Scheme, request: Request
) -> s.RateLimitOut:
    """The request rate limit the participant is held to: its own, else the scheme's."""
    _self_or_operator(caller, participant_id)
    return _rate_limit(request, participant_id, rate_limit_of(scheme.engine, participant_id))


@router.put("/participants/{participant_id}/rateLimit", response_model=s.RateLimitOut)
def put_rate_limit(
    participant_id: str, body: s.RateLimitIn, caller: Caller, scheme: Scheme, request: Request
) -> s.RateLimitOut:
    """Give the participant its own request rate limit, replacing the scheme's for it (a large
    bank's above, a misbehaving participant's below): the worker answering applies it at once,
    every other within a second, no restart. The operator's alone."""
    _operator(caller)
    own = set_rate_limit(
        scheme.engine,
        participant_id,
        body.requestsPerSecond,
        body.burst,
        actor=caller,
        clock=scheme.clock,
    )
    request.app.state.rate_limiter.forget(participant_id)  # this worker: at once
    return _rate_limit(request, participant_id, own)


@router.delete("/participants/{participant_id}/rateLimit", response_model=s.RateLimitOut)
def delete_rate_limit(
    participant_id: str, caller: Caller, scheme: Scheme, request: Request
) -> s.RateLimitOut:
    """The participant back on the scheme's limit. The operator's alone."""
    _operator(caller)
    clear_rate_limit(scheme.engine, participant_id)
    request.app.state.rate_limiter.forget(participant_id)  # this worker: at once
    return _rate_limit(request, participant_id, None)


def _rate_limit(
    request: Request, participant_id: str, own: ParticipantRateLimit | None
) -> s.RateLimitOut:
    default = request.app.state.rate_limiter.default
    held = held_limit(own, (default.rate_per_s, default.burst) if default is not None else None)
    return s.RateLimitOut(
        participantId=participant_id,
        source=held.source,
        requestsPerSecond=held.per_s,
        burst=held.burst,
        setBy=own.set_by if own is not None else None,
        setAt=cv.iso(own.set_at) if own is not None else None,
    )


# ------------------------------------------------------------------ directory
@router.post("/parties/{party_type}/{party_id}", status_code=201, response_model=s.PartyOut)
def register_party(
    party_type: str, party_id: str, body: s.PartyIn, caller: Caller, scheme: Scheme
) -> s.PartyOut:
    return cv.party(
        scheme.register_alias(caller, party_type, party_id, body.displayName, body.currency)
    )


@router.get("/parties/{party_type}/{party_id}", response_model=s.PartyOut)
async def lookup_party(
    party_type: str, party_id: str, caller: Caller, scheme: Scheme
) -> s.PartyOut:
    _participant_only(caller)
    return cv.party(await run_read(scheme.engine, scheme.lookup_payee, party_type, party_id))


def _participant_only(caller: str) -> None:
    """Refuse a trade principal ("buyer:b-1": no participant id holds a colon) a route that
    reads the directory. It tells who holds an account behind a phone number, an IBAN or a
    till, and in what currency: for the scheme's participants, which pay them, not for every
    merchant's or buyer's token. One check of the caller's id: the payment path's cost."""
    if ":" in caller:
        raise NotYours("the payment directory is for the scheme's participants")


@router.delete("/parties/{party_type}/{party_id}", status_code=204)
def remove_party(party_type: str, party_id: str, caller: Caller, scheme: Scheme) -> Response:
    # a trade principal's 403 "another's" against 404 "none" told it what the directory holds
    _participant_only(caller)
    scheme.remove_alias(caller, party_type, party_id)
    return Response(status_code=204)


# ------------------------------------------------------------------ FX and quotes
@router.post("/fxRates", status_code=201, response_model=s.FxRateOut)
def post_rate(body: s.FxRateIn, caller: Caller, scheme: Scheme) -> s.FxRateOut:
    fx = scheme.post_fx_rate(
        caller,
        body.sourceCurrency,
        body.targetCurrency,
        body.rate,
        body.spreadBps,
        body.validSeconds,
    )
    return cv.fx_rate(fx)


#: Where a request's ``amount`` object puts its currency (the shared check says ``currency``)
_AMOUNT_AS_SENT = FieldsNamed({"currency": "amount.currency"})


@router.post("/quotes", status_code=201, response_model=s.QuoteOut)
def create_quote(body: s.QuoteIn, caller: Caller, scheme: Scheme) -> s.QuoteOut:
    with _AMOUNT_AS_SENT:  # an unknown currency named "currency", a field the body lacks
        amount = cv.minor(body.amount)
    q = scheme.create_quote(
        caller,
        body.quoteId,
        body.payee.partyIdType,
        body.payee.partyIdentifier,
        amount,
        body.amountType,
        body.sourceCurrency,
        ttl_s=body.expirySeconds,
        payer_alias_type=body.payer.partyIdType if body.payer else None,
        payer_alias=body.payer.partyIdentifier if body.payer else None,
        amount_currency=body.amount.currency,
    )
    return cv.quote(q)


@router.get("/quotes/{quote_id}", response_model=s.QuoteOut)
def get_quote(quote_id: str, caller: Caller, scheme: Scheme) -> s.QuoteOut:
    return cv.quote(scheme.get_quote(caller, quote_id))


@router.post("/quotes/{quote_id}/accept", response_model=s.QuoteOut)
def accept_quote(quote_id: str, caller: Caller, scheme: Scheme) -> s.QuoteOut:
    return cv.quote(scheme.accept_quote(caller, quote_id))


# ------------------------------------------------------------------ transfers
@router.post("/transfers", status_code=201, response_model=s.TransferOut)
def prepare(body: s.TransferIn, caller: Caller, scheme: Scheme) -> s.TransferOut:
    return cv.transfer(
        scheme.prepare_transfer(
            caller, body.transferId, body.quoteId, ttl_s=body.expirySeconds, note=body.note
        )
    )


@router.get("/transfers", response_model=s.TransferPage)
def list_transfers(
    caller: Caller,
    scheme: Scheme,
    after: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> s.TransferPage:
    page = scheme.list_transfers(caller, limit=limit, after=after)
    return s.TransferPage(
        transfers=[cv.transfer(t) for t in page], next=page[-1].id if len(page) == limit else None
    )


@router.get("/transfers/{transfer_id}", response_model=s.TransferOut)
def get_transfer(transfer_id: str, caller: Caller, scheme: Scheme) -> s.TransferOut:
    return cv.transfer(scheme.get_transfer(caller, transfer_id))


@router.post("/transfers/{transfer_id}/commit", response_model=s.TransferOut)
def commit(transfer_id: str, caller: Caller, scheme: Scheme) -> s.TransferOut:
    return cv.transfer(scheme.commit_transfer(caller, transfer_id))


@router.post("/transfers/{transfer_id}/reject", response_model=s.TransferOut)
def reject(
    transfer_id: str, caller: Caller, scheme: Scheme, body: s.RejectIn | None = None
) -> s.TransferOut:
    """The payee declines; the body (its reason) is optional, as commit takes none."""
    reason = (body or s.RejectIn()).reason
    return cv.transfer(scheme.reject_transfer(caller, transfer_id, reason))


@router.post("/transfers/{transfer_id}/review", response_model=s.TransferOut)
def review(
    transfer_id: str, body: s.ReviewIn, caller: Caller, scheme: Scheme, request: Request
) -> s.TransferOut:
    return cv.transfer(
        scheme.review_hold(
            caller,
            transfer_id,
            body.approve,
            body.reason,
            reviewer_id=body.reviewerId,
            credential=getattr(request.state, "credential", None),
        )
    )


# The bulk body is parsed and checked in one pass from its bytes (pydantic's JSON parser
# straight into the TypedDicts: about half the cost of ``json.loads`` and then validation, and
# off the event loop). FastAPI would parse it on the event loop first, so the route takes the
# raw request; the OpenAPI document still names the body (BULK_OPENAPI_SCHEMAS, added to the
# document's components by the app).
_BULK_IN = TypeAdapter(s.BulkIn)
BULK_OPENAPI_SCHEMAS = _BULK_IN.json_schema(ref_template="#/components/schemas/{model}")
_BULK_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BulkIn"}}},
    }
}


def bulk_body(raw: bytes) -> s.BulkIn:
    """The bulk body, or a RequestValidationError (422 invalid_input) naming what is wrong."""
    try:
        return _BULK_IN.validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


@router.post("/transfers/bulk", status_code=201, response_model=s.BulkOut, openapi_extra=_BULK_BODY)
async def bulk(request: Request, caller: Caller, scheme: Scheme) -> Response:
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/json" and not (
        kind.startswith("application/") and kind.endswith("+json")
    ):
        # as FastAPI's own body parsing requires of every other route (a cross-site form
        # post cannot send JSON with this type)
        raise RequestValidationError(
            [
                {
                    "type": "content_type",
                    "loc": ("body",),
                    "msg": f"the body must be application/json, not {kind or 'untyped'}",
                    "input": None,
                }
            ]
        )
    raw = await request.body()
    return await run_in_threadpool(_bulk, raw, caller, scheme)


def _bulk(raw: bytes, caller: str, scheme: PaymentScheme) -> Response:
    body = bulk_body(raw)
    transfers = body["transfers"]
    currency = transfers[0]["amount"]["currency"]
    for n, i in enumerate(transfers):
        if i["amount"]["currency"] != currency:  # named as any bad item is: which one
            other = InvalidPaymentInput(
                f"a bulk is in one currency, transfers[0]'s {currency}, not "
                f"{i['amount']['currency']}",
                field="amount.currency",
            )
            raise item_error(other, n, i["transferId"])
    # the body has no ``currency``: its items' amounts name it (the first as all)
    as_sent = FieldsNamed({"currency": "transfers.0.amount.currency"})
    with as_sent:
        get_currency(currency)
    minor: dict[str, int] = {}  # a payroll repeats its amounts: parse each once
    items = []
    for n, i in enumerate(transfers):
        text = i["amount"]["amount"]
        if text not in minor:
            try:
                minor[text] = parse_amount(text, currency)
            except InvalidInput as exc:  # which item, in thousands
                raise item_error(exc, n, i["transferId"]) from None
        payee = i["payee"]
        items.append(
            BulkItem(i["transferId"], payee["partyIdType"], payee["partyIdentifier"], minor[text])
        )
    with as_sent:
        results = bulk_transfers(scheme, caller, body["bulkId"], currency, items)
    committed = sum(1 for r in results if r.state is TransferState.COMMITTED)
    # Built as plain JSON (the shape of BulkOut) and encoded by pydantic-core: validating 8,000
    # result models, or the standard library's encoder, costs more than the rest of the reply.
    content = {
        "bulkId": body["bulkId"],
        "committed": committed,
        "rejected": len(results) - committed,
        "results": [
            {"transferId": r.transfer_id, "state": r.state.value, "reason": r.reason}
            for r in results
        ],
    }
    return Response(to_json(content), status_code=201, media_type="application/json")


# ------------------------------------------------------------------ QR
@router.post("/qr/encode", response_model=s.QrOut)
def qr_encode(body: s.QrEncodeIn, caller: Caller, scheme: Scheme) -> s.QrOut:
    payload = _merchant_qr(body, caller, scheme)
    text = qr.encode(payload)
    return s.QrOut(payload=text, crc=text[-4:])


#: The QR's tags as the encode request names them
_QR_FIELDS = FieldsNamed(
    {
        "52": "mcc",
        "53": "currency",
        "54": "amount",
        "58": "country",
        "59": "merchantName",
        "60": "city",
        "62.05": "reference",
    }
)


def _merchant_qr(body: s.QrEncodeIn, caller: str, scheme: PaymentScheme) -> qr.QrPayload:
    """The till's QR. For a participant, naming the participant the till is registered at if
    it is (a payment by the QR is then refused once the till moves to another), and refused
    in a currency the till is not paid in (no payment of it could be made). A trade
    principal's QR names none and is not checked: the directory is the participants'
    (:func:`_participant_only`), and the answer told a buyer's token who held any till."""
    amount = parse_amount(body.amount, body.currency) if body.amount is not None else None
    with FieldsNamed({"id": "tillId"}):  # one that can be registered
        _, till = normalise_alias(AliasType.MERCHANT, body.tillId)
    acquirer = None if ":" in caller else scheme.till_participant(till, body.currency)
    with _QR_FIELDS:
        return qr.build_merchant_qr(
            acquirer=acquirer,
            merchant_alias=till,
            mcc=body.mcc,
            currency=body.currency,
            country=body.country,
            merchant_name=body.merchantName,
            city=body.city,
            amount_minor=amount,
            reference_label=body.reference,
        )


#: What ``/qr/image`` answers (the route returns a Response of its own, so FastAPI declared
#: a 200 without content: a generated client saw no body)
_QR_IMAGE_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the QR code as an image: PNG (`fmt=png`, the default) or SVG (`fmt=svg`)",
        "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/svg+xml": {"schema": {"type": "string"}},
        },
    }
}


@router.post("/qr/image", response_class=Response, responses=_QR_IMAGE_ANSWER)
def qr_image(
    body: s.QrEncodeIn,
    caller: Caller,
    scheme: Scheme,
    fmt: Annotated[str, Query(pattern="^(png|svg)$")] = "png",
) -> Response:
    text = qr.encode(_merchant_qr(body, caller, scheme))
    buffer = io.BytesIO()
    if fmt == "png":
        qr.render_png(text, buffer)
        return Response(buffer.getvalue(), media_type="image/png")
    qr.render_svg(text, buffer)
    return Response(buffer.getvalue(), media_type="image/svg+xml")


@router.post("/qr/decode")
def qr_decode(body: s.QrDecodeIn, caller: Caller) -> dict[str, object]:
    decoded = qr.decode(body.payload)
    shown = qr.shown(decoded)
    # named as /v1/qr/pay's ``prompted`` names them
    shown["prompts"] = [cv.camel(name) for name in decoded.prompts]
    for nested in ("alternate_language", "additional_data"):  # as the API names fields
        named = shown[nested]
        if isinstance(named, dict):  # tag 62's sub-tags 12-99 keep their ids ("50")
            shown[nested] = {cv.camel(k): v for k, v in named.items()}
    return {cv.camel(k): v for k, v in shown.items()}


_PROMPTED_FIELDS = FieldsNamed(
    {
        "prompted.bill_number": "prompted.billNumber",
        "prompted.reference_label": "prompted.referenceLabel",
        "prompted.terminal_label": "prompted.terminalLabel",
    }
)


@router.post("/qr/pay", status_code=201, response_model=s.QrPayOut)
def qr_pay(body: s.QrPayIn, caller: Caller, scheme: Scheme) -> s.QrPayOut:
    """Decode the merchant's QR, look up its till id, quote in the payer's currency and
    prepare, the last two in one transaction: a refused payment leaves no quote behind. A
    dynamic QR is paid once: again while its payment stands, 409 ``qr_already_paid``."""
    _participant_only(caller)  # its till's lookup comes first: no probing it as a trade token
    prompted = {}
    if body.prompted is not None:
        prompted = {
            name: value
            for name, value in (
                ("bill_number", body.prompted.billNumber),
                ("reference_label", body.prompted.referenceLabel),
                ("terminal_label", body.prompted.terminalLabel),
            )
            if value is not None
        }
    with _PROMPTED_FIELDS:
        party, q, t = scheme.pay_qr_payload(
            caller,
            body.quoteId,
            body.transferId,
            body.payload,
            body.sourceCurrency,
            amount=body.amount.amount if body.amount else None,
            amount_currency=body.amount.currency if body.amount else None,
            payer_alias_type=body.payer.partyIdType if body.payer else None,
            payer_alias=body.payer.partyIdentifier if body.payer else None,
            tip=body.tip.amount if body.tip else None,
            tip_currency=body.tip.currency if body.tip else None,
            prompted=prompted,
        )
    return s.QrPayOut(party=cv.party(party), quote=cv.quote(q), transfer=cv.transfer(t))


# ------------------------------------------------------------------ escrow
# Where an escrow request's amounts are (a problem's field as the body spells it: the shared
# checks say ``currency``, ``amount``, and a split's ``release_minor``/``refund_minor``).
_ESCROW_AMOUNT = FieldsNamed({"currency": "amount.currency"})
_SPLIT_RELEASE = FieldsNamed({"currency": "release.currency", "amount": "release.amount"})
_SPLIT_REFUND = FieldsNamed({"currency": "refund.currency", "amount": "refund.amount"})
_SPLIT_PARTS = FieldsNamed({"release_minor": "release.amount", "refund_minor": "refund.amount"})


@router.post("/escrows", status_code=201, response_model=s.EscrowOut)
def create_escrow(body: s.EscrowIn, caller: Caller, scheme: Scheme) -> s.EscrowOut:
    with _ESCROW_AMOUNT:
        return cv.escrow(
            scheme.create_escrow(
                caller,
                body.escrowId,
                body.payeeFsp,
                body.amount.currency,
                cv.minor(body.amount),
                body.purpose,
                body.deadlineSeconds,
                body.onDeadline,
                body.controller,
            )
        )


@router.get("/escrows/{escrow_id}", response_model=s.EscrowOut)
def get_escrow(escrow_id: str, caller: Caller, scheme: Scheme) -> s.EscrowOut:
    return cv.escrow(scheme.get_escrow(caller, escrow_id))


@router.get("/escrows/{escrow_id}/events", response_model=s.EscrowEventListOut)
def escrow_events(escrow_id: str, caller: Caller, scheme: Scheme) -> s.EscrowEventListOut:
    """Every decision on the escrow, in order: for its payer, payee, controller and the
    scheme operator."""
    return cv.escrow_events(*scheme.escrow_history(caller, escrow_id))


@router.post("/escrows/{escrow_id}/split", response_model=s.EscrowOut)
def split(escrow_id: str, body: s.EscrowSplitIn, caller: Caller, scheme: Scheme) -> s.EscrowOut:
    """Release part to the payee and refund part to the payer in one decision (a dispute's
    ruling): both moves, or neither."""
    if body.refund.currency != body.release.currency:
        raise InvalidPaymentInput(
            "a split's release and refund are in one currency, the escrow's",
            field="refund.currency",
        )
    with _SPLIT_RELEASE:
        release = cv.minor(body.release)
    with _SPLIT_REFUND:
        refund = cv.minor(body.refund)
    with _SPLIT_PARTS:
        e = scheme.split_escrow(caller, escrow_id, release, refund, currency=body.release.currency)
    return cv.escrow(e)


@router.post("/escrows/{escrow_id}/release", response_model=s.EscrowOut)
def release(escrow_id: str, body: s.EscrowMoveIn, caller: Caller, scheme: Scheme) -> s.EscrowOut:
    with _ESCROW_AMOUNT:
        amount = cv.minor(body.amount)
    return cv.escrow(
        scheme.release_escrow(caller, escrow_id, amount, currency=body.amount.currency)
    )


@router.post("/escrows/{escrow_id}/refund", response_model=s.EscrowOut)
def refund(escrow_id: str, body: s.EscrowMoveIn, caller: Caller, scheme: Scheme) -> s.EscrowOut:
    with _ESCROW_AMOUNT:
        amount = cv.minor(body.amount)
    return cv.escrow(scheme.refund_escrow(caller, escrow_id, amount, currency=body.amount.currency))


# ------------------------------------------------------------------ settlement
@router.get("/settlementWindows", response_model=list[s.WindowOut])
def windows(
    caller: Caller,
    scheme: Scheme,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[s.WindowOut]:
    """The settlement windows after window ``after``, oldest first, at most ``limit``: the
    next page starts after the last id of a full one."""
    _operator(caller)
    return [cv.window(w) for w in scheme.list_windows(after, limit)]


@router.post("/settlementWindows/close", response_model=s.WindowOut)
def close_window(caller: Caller, scheme: Scheme) -> s.WindowOut:
    return cv.window(scheme.close_window(caller))


@router.get("/settlementWindows/{window_id}", response_model=s.WindowOut)
def get_window(window_id: WindowId, caller: Caller, scheme: Scheme) -> s.WindowOut:
    _operator(caller)
    return cv.window(scheme.get_window(window_id))


@router.post("/settlementWindows/{window_id}/settle", response_model=s.WindowOut)
def settle(window_id: WindowId, caller: Caller, scheme: Scheme) -> s.WindowOut:
    return cv.window(scheme.settle_window(caller, window_id))


# ------------------------------------------------------------------ ISO 20022
#: What the OpenAPI document says these answer: an ISO 20022 XML message
_XML_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"description": "the ISO 20022 message", "content": {XML: {"schema": {"type": "string"}}}}
}


def _messaged(scheme: PaymentScheme, caller: str, transfer_id: str) -> PaymentTransfer:
    """The transfer whose ISO 20022 messages the caller may read: its payer's, its payee's or
    the operator's. They name the customers (debtor, creditor, remittance), which the FX
    provider, a reader of the transfer itself, is not shown."""
    t = scheme.get_transfer(caller, transfer_id)
    if caller not in (t.payer_participant, t.payee_participant, SCHEME):
        raise NotYours(f"transfer {transfer_id}'s payment messages are its payer's and payee's")
    return t


@router.get("/iso20022/pacs008/{transfer_id}", response_class=Response, responses=_XML_ANSWER)
def pacs008(transfer_id: str, caller: Caller, scheme: Scheme) -> Response:
    t = _messaged(scheme, caller, transfer_id)
    party = messages.payee_party(scheme, t)
    return Response(iso20022.pacs008(messages.credit_transfer(scheme, t, party)), media_type=XML)


@router.get("/iso20022/pacs002/{transfer_id}", response_class=Response, responses=_XML_ANSWER)
def pacs002(transfer_id: str, caller: Caller, scheme: Scheme) -> Response:
    t = _messaged(scheme, caller, transfer_id)
    return Response(iso20022.pacs002(messages.status_report(scheme, t)), media_type=XML)


@router.get(
    "/iso20022/camt053/{participant_id}/{currency}", response_class=Response, responses=_XML_ANSWER
)
def camt053(
    participant_id: str,
    currency: str,
    caller: Caller,
    scheme: Scheme,
    since: Annotated[str | None, Query(alias="from", min_length=1, max_length=40)] = None,
    until: Annotated[str | None, Query(alias="to", min_length=1, max_length=40)] = None,
    account: Annotated[
        str,
        Query(
            pattern="^(position|settlement)$",
            description="position (the net debit cap plus receipts less sends since the last "
            "settlement) or settlement (central bank money: deposits and settled nets)",
        ),
    ] = "position",
    page: Annotated[
        int,
        Query(
            ge=1,
            le=iso20022.PAGE_NUMBER_MAX,
            description="which page of the statement (from 1): a period is served as pages of "
            f"at most {messages.STATEMENT_PAGE_ENTRIES} entries, GrpHdr/MsgPgntn says which "
            "and LastPgInd the last; one past the last is a 422 naming how many there are",
        ),
    ] = 1,
) -> Response:
    _self_or_operator(caller, participant_id)
    get_currency(currency)
    since_ns = _time_param(since, "from") if since else 0
    until_ns = _time_param(until, "to") if until else scheme.clock.now_ns() + NS_PER_S
    if since_ns > until_ns:  # (without to, its default is now: a from to come is named so)
        detail = "from is after to" if until else "from is in the future (to defaults to now)"
        raise InvalidPaymentInput(detail, field="from")
    statement = messages.account_statement(
        scheme, participant_id, currency, since_ns, until_ns, account, page
    )
    return Response(iso20022.camt053(statement), media_type=XML)


def _time_param(text: str, field: str) -> int:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise InvalidPaymentInput(f"{field}: {exc}", field=field) from None


# The payment path: called directly, past FastAPI's router (direct.py, ADR 0006). What goes
# to FastAPI still (an ill-formed request) finds them first: Starlette tries a router's routes
# in order, twice for an included router, at a few microseconds each. None of them matches
# another route's requests (tests/e2e/test_api.py checks every route), so either way a
# request to one of them is that route's.
PAYMENT_PATH = (
    ("GET", "/v1/parties/{party_type}/{party_id}"),
    ("POST", "/v1/quotes"),
    ("POST", "/v1/transfers"),
    ("POST", "/v1/transfers/{transfer_id}/commit"),
    ("POST", "/v1/qr/pay"),
)


def _payment_path_first() -> None:
    def rank(route: object) -> int:
        methods = getattr(route, "methods", None) or set()
        path = getattr(route, "path", "")
        for k, (method, hot) in enumerate(PAYMENT_PATH):
            if method in methods and path == hot:
                return k
        return len(PAYMENT_PATH)

    router.routes.sort(key=rank)  # stable: the others keep their order


_payment_path_first()
