"""/v1/risk routes: sanctions screening, the decision log, and merchant lending over HTTP.

Who may call what (docs/risk-api.md):
- screenings: any payment participant (a bank's compliance officer), not while suspended;
  not trade principals;
- decisions: the scheme operator reads any; the lender and the merchant of a lending decision
  read that decision (and its review); nothing else is visible (decisions carry no owner);
- lending: a lender is a payment participant (a bank or wallet), a merchant authenticates as
  ``merchant:<id>`` and is ``<id>`` to lending. Each sees only the offers, loans and contests
  on its own side: a merchant never another merchant's, a bank never another bank's. The
  deadlines run for the scheme operator only.

Each route builds the use case's arguments from the validated body and calls one ``Lending``
(or screener) method; errors are the risk and lending codes, their ``field`` in the API's
camelCase. Idempotency-Key on POST and PUT is handled by the security middleware.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as ApiPath
from fastapi.routing import APIRoute
from starlette.responses import Response

from entrepot.config import shared_data_dir
from entrepot.entrypoints.api import convert_risk as cv
from entrepot.entrypoints.api import schemas_risk as r
from entrepot.entrypoints.api.convert import camel
from entrepot.entrypoints.api.schemas import Problem
from entrepot.entrypoints.api.schemas_trade import DeadlinesOut
from entrepot.entrypoints.api.security import caller_dependency, caller_of
from entrepot.entrypoints.lending_standing import (
    active_merchant,
    check_lender_kind,
    check_merchants_bank,
)
from entrepot.kernel.errors import DomainError, InvalidInput, NotFound
from entrepot.payments import SCHEME, PaymentScheme
from entrepot.payments.errors import ParticipantSuspended
from entrepot.risk.decisions import Decision, DecisionSink, JsonlSink, MemorySink
from entrepot.risk.decisions import explain_decision as explain
from entrepot.risk.decisions import get_decision as find_decision
from entrepot.risk.errors import UnknownDecision
from entrepot.risk.lending import (
    CreditPolicy,
    IdConflict,
    Lending,
    Loan,
    LoanNotFound,
    NotYours,
    Offer,
    OfferNotFound,
    OfferState,
    ScorerMissing,
)
from entrepot.risk.lending.model import POLICY_VERSION_MAX
from entrepot.risk.sanctions import SDN_FILE, Screener, make_party
from entrepot.trade import TradeNetwork
from entrepot.trade.model import Role, parse_principal

PAGE_MAX = 1_000


# ------------------------------------------------------------------ errors of this API
class RiskForbidden(DomainError):
    code = "risk_forbidden"
    http_status = 403


class ListsUnavailable(DomainError):
    """No readable watch lists are configured (ENTREPOT_SANCTIONS_DIR or the shared data)."""

    code = "risk_lists_unavailable"
    http_status = 503


class LogNotKept(DomainError):
    """The app was built without a log file (a test or a script's app)."""

    code = "risk_log_not_kept"
    http_status = 409


class DecisionNotFound(NotFound):
    """Unknown, or not the caller's to read: the same answer, so ids reveal nothing."""

    code = "risk_unknown_decision"


class CamelFieldRoute(APIRoute):
    """Lending names a bad field in snake_case (``amount_minor``); the API says
    ``amountMinor``, as the request did."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def camel_fields(request: Request) -> Response:
            try:
                return await handler(request)
            except DomainError as exc:
                if exc.field:
                    exc.field = camel(exc.field)
                raise

        return camel_fields


# ------------------------------------------------------------------ what the routes need
class RiskApi:
    """Lending, the trade network (merchant histories), the scheme (participants), the decision
    log, and the sanctions lists, loaded on the first screening (about a second)."""

    def __init__(
        self,
        scheme: PaymentScheme,
        trade: TradeNetwork,
        lending: Lending,
        log: DecisionSink,
        lists_dir: Path,
    ) -> None:
        self.scheme = scheme
        self.trade = trade
        self.lending = lending
        self.log = log
        self.lists_dir = lists_dir
        self._screener: Screener | None = None
        self._lock = threading.Lock()

    @classmethod
    def compose(
        cls,
        scheme: PaymentScheme,
        trade: TradeNetwork,
        lending: Lending | None = None,
        decisions_dir: Path | None = None,
        sanctions_dir: Path | None = None,
    ) -> RiskApi:
        """Lending: the one given, else the trade network's, else a new one. The decision log:
        ``decisions_dir``, else lending's, else kept in memory (an app built in a test or a
        script). The lists: ``sanctions_dir``, else the shared reference data, as
        ``bootstrap`` screens payees."""
        found = lending if lending is not None else trade.lending
        log: DecisionSink
        if decisions_dir is not None:
            log = JsonlSink(decisions_dir)
        elif isinstance(found, Lending) and found.sink is not None:
            log = found.sink
        else:
            log = MemorySink()
        if not isinstance(found, Lending):
            found = Lending(scheme.engine, scheme.ledger, scheme.clock, sink=log)
        lists = sanctions_dir if sanctions_dir is not None else shared_data_dir() / "sanctions"
        return cls(scheme, trade, found, log, lists)

    def screener(self) -> Screener:
        if self._screener is None:
            with self._lock:
                if self._screener is None:
                    self._screener = self._load_screener()
        return self._screener

    def _load_screener(self) -> Screener:
        lists = self.lists_dir
        if not (lists / SDN_FILE).is_file():
            raise ListsUnavailable(
                f"no sanctions lists: {lists} holds no {SDN_FILE} (set ENTREPOT_SANCTIONS_DIR)"
            )
        try:
            return Screener.from_directory(lists, sink=self.log, clock=self.scheme.clock)
        except InvalidInput as exc:
            raise ListsUnavailable(
                f"the sanctions lists at {lists} are unusable: {exc.detail}"
            ) from None


async def risk_of(request: Request) -> RiskApi:
    risk = request.app.state.risk
    assert isinstance(risk, RiskApi)
    return risk


@dataclass(frozen=True, slots=True)
class LendingParty:
    """The caller as lending knows it: a lender (a payment participant) or a merchant."""

    id: str
    is_merchant: bool

    def owns(self, lender_id: str, merchant_id: str) -> bool:
        """Whether the object is on the caller's own side (lending alone matches either side,
        and a merchant id may equal a participant id)."""
        return (merchant_id if self.is_merchant else lender_id) == self.id

    def check_merchant(self, action: str) -> None:
        if not self.is_merchant:
            raise NotYours(f"only the merchant {action}")

    def check_lender(self, action: str) -> None:
        if self.is_merchant:
            raise NotYours(f"only the lender {action}")


def lending_party(caller: str) -> LendingParty:
    role, actor = parse_principal(caller)
    if role is Role.HUB:  # a payment participant, unprefixed
        return LendingParty(actor, is_merchant=False)
    if role is Role.MERCHANT:
        return LendingParty(actor, is_merchant=True)
    raise NotYours(f"a {role.value} has no part in lending")


async def party_of(request: Request) -> LendingParty:
    return lending_party(caller_of(request))


_PROBLEM: dict[str, object] = {
    "description": "An error: application/problem+json with a stable code",
    "content": {"application/problem+json": {"schema": Problem.model_json_schema()}},
}
router = APIRouter(
    prefix="/v1/risk",
    tags=["risk"],
    responses={status: _PROBLEM for status in (400, 401, 403, 404, 409, 422, 503)},
    route_class=CamelFieldRoute,
)
Caller = Annotated[str, Depends(caller_dependency)]
Risk = Annotated[RiskApi, Depends(risk_of)]
Party = Annotated[LendingParty, Depends(party_of)]
StateFilter = Annotated[str | None, Query(max_length=16, pattern=r"^[a-z_]+$")]
Cursor = Annotated[str | None, Query(max_length=80, pattern=r"^[0-9]+-[A-Za-z0-9_.:-]+$")]
Limit = Annotated[int, Query(ge=1, le=PAGE_MAX)]
T = TypeVar("T")


def page(
    items: list[T], key: Callable[[T], tuple[int, str]], cursor: str | None, limit: int
) -> tuple[list[T], str | None]:
    """Items after ``cursor`` (``<time_ns>-<id>`` of the last one seen), oldest first."""
    ordered = sorted(items, key=key)
    if cursor is not None:
        at, _, last = cursor.partition("-")
        ordered = [i for i in ordered if key(i) > (int(at), last)]
    shown = ordered[:limit]
    more = len(ordered) > limit
    return shown, (f"{key(shown[-1])[0]}-{key(shown[-1])[1]}" if more else None)


# ------------------------------------------------------------------ sanctions screening
@router.post("/screenings", response_model=r.ScreeningListOut)
def screen(body: r.ScreeningIn, caller: Caller, risk: Risk) -> r.ScreeningListOut:
    """Screen 1 to 1,000 parties against the configured watch lists: clear, review (a person
    decides; a name alone is never a match) or match, each with its best candidate, reasons
    and decision id. Every party is checked before any is screened: one bad party refuses the
    batch and nothing is logged."""
    if ":" in caller:  # merchant:, buyer:, arbitrator: principals are not participants
        raise RiskForbidden("screening is for payment participants (a bank's compliance)")
    if not risk.scheme.get_participant(caller).active:
        # A suspended hub operator still had parties screened, each logged in its compliance
        # file (found by a review): it neither sends nor receives, nor onboards a merchant,
        # so it has nothing to screen for until the scheme resumes it.
        raise ParticipantSuspended(f"participant {caller!r} is suspended: it screens no party")
    parties = []
    for i, p in enumerate(body.parties):
        try:
            parties.append(make_party(p.name, p.dob, p.country, p.type))
        except InvalidInput as exc:
            exc.field = f"parties.{i}.{exc.field or 'name'}"
            raise
    return cv.screenings(risk.screener().screen_many(parties, requested_by=caller))


# ------------------------------------------------------------------ decision log
@router.get("/decisions/head", response_model=r.LogHeadOut)
def decision_log_head(caller: Caller, risk: Risk) -> r.LogHeadOut:
    """The decision log's head: the byte offset its whole lines end at and the SHA-256 of the
    last line, which names the hash of the one before it, and so on back to the first. Any
    authenticated caller may read it (it names no decision); a consortium member that records
    heads from time to time can later have the operator's log checked against them
    (``entrepot risk verify-log --anchor OFFSET:HASH``): a rewrite of anything before a
    recorded head shows, even one that recomputed every hash after it."""
    if not isinstance(risk.log, JsonlSink):
        raise LogNotKept("this server keeps its decision log in memory: it has no head")
    head = risk.log.head()
    return r.LogHeadOut(offset=head.offset, hash=head.hash, anchor=str(head))


@router.get("/decisions/{decision_id}", response_model=r.DecisionOut)
def get_decision(
    decision_id: Annotated[str, ApiPath(pattern=r"^[0-9a-fA-F]{32}$")],
    caller: Caller,
    risk: Risk,
) -> r.DecisionOut:
    """A logged decision explained: model or list version, score, reasons, minimised inputs.
    The scheme operator reads any; a lending decision's lender and merchant read it too, and
    a screening the participant that asked for it."""
    try:
        found = find_decision(risk.log, decision_id)
    except UnknownDecision as exc:
        raise DecisionNotFound(exc.detail, field="decisionId") from None
    if caller != SCHEME and not _may_read(risk.lending, caller, found):
        raise DecisionNotFound(
            f"no decision with id {decision_id!r} in the log", field="decisionId"
        )
    one = MemorySink()
    one.append([found])
    return cv.decision(found, explain(one, found.decision_id))


def _may_read(lending: Lending, caller: str, d: Decision) -> bool:
    """A lending decision (an offer, a decline or its review) is its lender's and merchant's;
    a screening asked for through the API, the asking participant's (its compliance file;
    the payee screenings of payments name no requester: the scheme's, for its reviewers)."""
    if d.kind == "sanctions":
        return d.inputs.get("requested_by") == caller and ":" not in caller
    offer_id = d.inputs.get("offer_id") or d.inputs.get("review_of")
    if d.kind != "credit" or d.inputs.get("context") != "lending" or not offer_id:
        return False
    try:
        party = lending_party(caller)
        offer = lending.get_offer(party.id, str(offer_id))
    except DomainError:
        return False
    return party.owns(offer.lender_id, offer.merchant_id)


# ------------------------------------------------------------------ lending: policies
CurrencyPath = Annotated[str, ApiPath(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")]


@router.put("/lending/policies/{currency}", response_model=r.PolicyOut)
def set_policy(currency: CurrencyPath, body: r.PolicyIn, party: Party, risk: Risk) -> r.PolicyOut:
    """A bank or wallet sets its credit policy for a currency, stored as the next version
    (setting the rules already current returns that version). A model cutoff (``maxPd``)
    needs a credit model configured in the app."""
    party.check_lender("sets its credit policy")
    check_lender_kind(risk.scheme, party.id)
    policy = CreditPolicy(lender_id=party.id, currency=currency, **cv.policy_fields(body))
    if policy.max_pd is not None and risk.lending.scorer is None:
        # refused now rather than at every offer the policy could not decide
        raise ScorerMissing("maxPd needs a credit model and none is configured", field="maxPd")
    return cv.policy(risk.lending.set_policy(party.id, policy))


@router.get("/lending/policies/{currency}", response_model=r.PolicyOut)
def get_policy(
    currency: CurrencyPath,
    party: Party,
    risk: Risk,
    version: Annotated[int | None, Query(ge=1, le=POLICY_VERSION_MAX)] = None,
) -> r.PolicyOut:
    """The caller's own policy for the currency: the current version, or the one asked for."""
    party.check_lender("reads its credit policy")
    return cv.policy(risk.lending.get_policy(party.id, currency, version))


# ------------------------------------------------------------------ lending: offers
def _offer(risk: RiskApi, party: LendingParty, offer_id: str) -> Offer:
    found = risk.lending.get_offer(party.id, offer_id)
    if not party.owns(found.lender_id, found.merchant_id):
        raise OfferNotFound(f"offer {offer_id!r} does not exist")
    return found


@router.post("/lending/offers", status_code=201, response_model=r.OfferOut)
def ask_for_offer(body: r.OfferIn, caller: Caller, party: Party, risk: Risk) -> r.OfferOut:
    """A merchant in good standing asks its own bank for credit: an offer or a decline, with
    reasons, decided on its trade history under the bank's current policy (idempotent by
    offerId)."""
    party.check_merchant("asks for credit; its bank sees its history through the request")
    # The merchant's offer already decided under this id: a retry returns it (its history may
    # have moved on since; the first decision stands). A review's id is not a request's.
    replay = risk.lending.asked_before(party.id, body.offerId, body.lenderId)
    if replay is not None:
        if not party.owns(replay.lender_id, replay.merchant_id):
            # lending matched a merchant named like its bank as the lender: the id is another
            # merchant's, whose decision and history it was given (found by a review)
            raise IdConflict(f"offer id {body.offerId!r} was used for another request")
        return cv.offer(replay)
    merchant = active_merchant(risk.trade, party.id)
    check_merchants_bank(merchant, body.lenderId, field="lenderId")
    # the months are the bank's policy's, not the merchant's to choose (found by a review)
    window = risk.lending.get_policy(body.lenderId, merchant.settlement_currency).history_months
    history = risk.trade.merchant_history(caller, party.id, window)
    decided = risk.lending.offer(party.id, body.offerId, body.lenderId, history, window=window)
    return cv.offer(decided)


@router.get("/lending/offers", response_model=r.OfferListOut)
def list_offers(
    party: Party,
    risk: Risk,
    state: StateFilter = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> r.OfferListOut:
    """The caller's offers and declines (as the lender, or as the merchant), oldest first."""
    found = risk.lending.list_offers(party.id, state=state)
    mine = [o for o in found if party.owns(o.lender_id, o.merchant_id)]
    shown, after = page(mine, lambda o: (o.created_at_ns, o.offer_id), cursor, limit)
    return r.OfferListOut(offers=[cv.offer(o) for o in shown], nextCursor=after)


@router.get("/lending/offers/{offer_id}", response_model=r.OfferOut)
def get_offer(offer_id: str, party: Party, risk: Risk) -> r.OfferOut:
    return cv.offer(_offer(risk, party, offer_id))


@router.post("/lending/offers/{offer_id}/accept", status_code=201, response_model=r.LoanOut)
def accept_offer(
    offer_id: str, party: Party, risk: Risk, body: r.AcceptIn | None = None
) -> r.LoanOut:
    """The merchant takes an open offer (or less of it): the loan is disbursed on the ledger
    in the same transaction. Accepting again returns the loan. A merchant suspended since the
    offer was made (or with its screening in review) cannot take it."""
    offer = _offer(risk, party, offer_id)
    party.check_merchant("accepts its offer")
    if offer.state is not OfferState.ACCEPTED:  # a retry only reads the loan back
        active_merchant(risk.trade, party.id)
    amount = None if body is None else body.amountMinor
    return cv.loan(risk.lending.accept(party.id, offer_id, amount))


@router.post("/lending/offers/{offer_id}/contest", status_code=201, response_model=r.ContestOut)
def contest_offer(offer_id: str, body: r.ContestIn, party: Party, risk: Risk) -> r.ContestOut:
    """The merchant contests an offer or a decline, once; it waits in the lender's queue."""
    _offer(risk, party, offer_id)
    party.check_merchant("contests its decision")
    return cv.contest(risk.lending.contest(party.id, offer_id, body.statement))


# ------------------------------------------------------------------ lending: loans
def _loan(risk: RiskApi, party: LendingParty, loan_id: str) -> Loan:
    found = risk.lending.get_loan(party.id, loan_id)
    if not party.owns(found.lender_id, found.merchant_id):
        raise LoanNotFound(f"loan {loan_id!r} does not exist")
    return found


@router.get("/lending/loans", response_model=r.LoanListOut)
def list_loans(
    party: Party,
    risk: Risk,
    state: StateFilter = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> r.LoanListOut:
    """The caller's loans (as the lender, or as the merchant), oldest first."""
    found = risk.lending.list_loans(party.id, state=state)
    mine = [x for x in found if party.owns(x.lender_id, x.merchant_id)]
    shown, after = page(mine, lambda x: (x.disbursed_at_ns, x.loan_id), cursor, limit)
    return r.LoanListOut(loans=[cv.loan(x) for x in shown], nextCursor=after)


@router.get("/lending/loans/{loan_id}", response_model=r.LoanOut)
def get_loan(loan_id: str, party: Party, risk: Risk) -> r.LoanOut:
    """A loan with what it owes read from its receivable account on the ledger."""
    return cv.loan(_loan(risk, party, loan_id))


@router.get("/lending/loans/{loan_id}/events", response_model=r.LoanEventListOut)
def loan_events(loan_id: str, party: Party, risk: Risk) -> r.LoanEventListOut:
    """Every state change of the loan with its reason, who and when."""
    _loan(risk, party, loan_id)
    events = risk.lending.loan_events(party.id, loan_id)
    return r.LoanEventListOut(events=[cv.loan_event(e) for e in events])


@router.get("/lending/loans/{loan_id}/repayments", response_model=r.RepaymentListOut)
def list_repayments(loan_id: str, party: Party, risk: Risk) -> r.RepaymentListOut:
    loan = _loan(risk, party, loan_id)
    paid = risk.lending.repayments(party.id, loan_id)
    return r.RepaymentListOut(repayments=[cv.repayment(p, loan.currency) for p in paid])


@router.post("/lending/loans/{loan_id}/repayments", status_code=201, response_model=r.LoanOut)
def repay(loan_id: str, body: r.RepaymentIn, party: Party, risk: Risk) -> r.LoanOut:
    """A repayment made outside payouts, recorded by the lender that received it: at most what
    the loan owes (idempotent by reference). Checked here, not left to lending, which matches
    a caller on either side: a merchant whose id is its bank's participant id is its loan's
    lender there, and recorded repayments it never made."""
    _loan(risk, party, loan_id)
    party.check_lender("records a direct repayment")
    return cv.loan(risk.lending.repay(party.id, loan_id, body.amountMinor, body.reference))


# ------------------------------------------------------------------ lending: contests, book
@router.get("/lending/contests", response_model=r.ContestListOut)
def list_contests(
    party: Party,
    risk: Risk,
    status: StateFilter = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> r.ContestListOut:
    """The lender's review queue (``status=open``), or a merchant's own contests."""
    found = risk.lending.list_contests(party.id, status=status)
    mine = [c for c in found if party.owns(c.lender_id, c.merchant_id)]
    shown, after = page(mine, lambda c: (c.contested_at_ns, c.offer_id), cursor, limit)
    return r.ContestListOut(contests=[cv.contest(c) for c in shown], nextCursor=after)


@router.post("/lending/contests/{offer_id}/review", response_model=r.ContestOut)
def review_contest(offer_id: str, body: r.ReviewIn, party: Party, risk: Risk) -> r.ContestOut:
    """A person at the lender (``reviewerId``) upholds the decision or overturns it with a
    new principal; who, when and why are recorded and logged."""
    party.check_lender("reviews a contest")
    done = risk.lending.review(
        party.id,
        offer_id,
        body.reviewerId,
        body.outcome,
        body.reason,
        new_principal_minor=body.newPrincipalMinor,
    )
    return cv.contest(done)


@router.get("/lending/book/{currency}", response_model=r.BookOut)
def loan_book(currency: CurrencyPath, party: Party, risk: Risk) -> r.BookOut:
    """The lender's loan book in a currency, reconciled with the ledger."""
    party.check_lender("reads its loan book")
    return cv.book(risk.lending.loan_book(party.id, currency))


@router.post("/lending/deadlines", response_model=DeadlinesOut)
def process_deadlines(caller: Caller, risk: Risk) -> DeadlinesOut:
    """The scheme operator expires offers past their deadline, moves loans between current,
    late and defaulted by the clock, and appends credit decisions still waiting for the
    decision log."""
    if caller != SCHEME:
        raise NotYours("only the scheme operator runs the lending deadlines")
    counts = {**risk.lending.process_deadlines(), **risk.lending.log_pending_decisions()}
    return DeadlinesOut(counts={camel(k): v for k, v in counts.items()})
