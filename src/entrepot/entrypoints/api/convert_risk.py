"""Risk model -> response bodies (``schemas_risk``), and request bodies -> risk inputs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from entrepot.entrypoints.api import schemas_risk as r
from entrepot.entrypoints.api.convert import camel, iso, money
from entrepot.entrypoints.api.convert_trade import merchant_history
from entrepot.risk.decisions import Decision
from entrepot.risk.lending import Contest, CreditPolicy, Loan, LoanEvent, Offer, Repayment
from entrepot.risk.lending.model import LoanTerms
from entrepot.risk.sanctions import Candidate, Screening

NO_CANDIDATE = "no listed name is close enough"


def _time(ts_ns: int) -> str:
    return iso(ts_ns) or ""


def snake(name: str) -> str:
    """``limitMinMinor`` -> ``limit_min_minor`` (the inverse of ``camel``)."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


# ------------------------------------------------------------------ sanctions
def candidate(c: Candidate) -> r.CandidateOut:
    return r.CandidateOut(
        entNum=c.ent_num,
        listedName=c.listed_name,
        partyType=c.party_type,
        programs=c.programs,
        nameScore=c.name_score,
        score=c.score,
        decision=c.decision,
        reasons=list(c.reasons),
    )


def screening(s: Screening) -> r.ScreeningOut:
    best = s.best
    return r.ScreeningOut(
        name=s.query,
        decision=s.decision,  # type: ignore[arg-type]  # the screener decides one of the three
        score=s.score,
        best=None if best is None else candidate(best),
        reasons=[NO_CANDIDATE] if best is None else list(best.reasons),
        listVersion=s.list_version,
        decisionId=s.decision_id,
    )


def screenings(results: Sequence[Screening]) -> r.ScreeningListOut:
    counts = Counter(s.decision for s in results)
    return r.ScreeningListOut(
        listVersion=results[0].list_version,
        counts={d: counts.get(d, 0) for d in ("clear", "review", "match")},
        screenings=[screening(s) for s in results],
    )


def decision(d: Decision, explanation: str) -> r.DecisionOut:
    return r.DecisionOut(
        decisionId=d.decision_id,
        kind=d.kind,
        at=d.at,
        modelVersion=d.model_version,
        outcome=d.outcome,
        score=d.score,
        reasons=list(d.reasons),
        inputs=dict(d.inputs),
        explanation=explanation,
    )


# ------------------------------------------------------------------ lending
def policy_fields(body: r.PolicyIn) -> dict[str, Any]:
    """The request's rules as ``CreditPolicy``'s keyword arguments."""
    return {snake(k): v for k, v in body.model_dump().items()}


def policy(p: CreditPolicy) -> r.PolicyOut:
    rules = {camel(k): v for k, v in p.rules_dict().items()}
    return r.PolicyOut(
        lenderId=p.lender_id,
        currency=p.currency,
        version=p.version,
        setAt=_time(p.set_at_ns),
        **rules,
    )


def terms(t: LoanTerms) -> r.TermsOut:
    return r.TermsOut(
        termDays=t.term_days,
        repaymentShareBps=t.repayment_share_bps,
        lateAfterDays=t.late_after_days,
        defaultAfterDays=t.default_after_days,
        scheduleToleranceBps=t.schedule_tolerance_bps,
    )


def _features(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {camel(k): v for k, v in raw.items()}


def offer(o: Offer) -> r.OfferOut:
    cur = o.currency
    return r.OfferOut(
        offerId=o.offer_id,
        lenderId=o.lender_id,
        merchantId=o.merchant_id,
        currency=cur,
        outcome=o.outcome.value,
        state=o.state.value,
        limit=money(o.limit_minor, cur),
        principal=money(o.principal_minor, cur),
        fee=money(o.fee_minor, cur),
        totalDue=money(o.total_due_minor, cur),
        terms=terms(o.terms),
        reasons=[
            r.ReasonOut(rule=x.rule, text=x.text, value=x.value, threshold=x.threshold)
            for x in o.reasons
        ],
        features=_features(o.features.to_dict()),
        history=merchant_history(o.history),
        policyVersion=o.policy_version,
        modelVersion=o.model_version,
        score=None if o.score is None else str(o.score),
        createdAt=_time(o.created_at_ns),
        expiresAt=_time(o.expires_at_ns),
        requestedBy=o.requested_by,
        origin=o.origin,
        supersedes=o.supersedes,
        contested=o.contested,
        decisionId=o.log_id or None,
    )


def loan(x: Loan) -> r.LoanOut:
    cur = x.currency
    return r.LoanOut(
        loanId=x.loan_id,
        lenderId=x.lender_id,
        merchantId=x.merchant_id,
        currency=cur,
        state=x.state.value,
        principal=money(x.principal_minor, cur),
        fee=money(x.fee_minor, cur),
        totalDue=money(x.total_due_minor, cur),
        repaid=money(x.repaid_minor, cur),
        outstanding=money(x.outstanding_minor, cur),
        terms=terms(x.terms),
        disbursedAt=_time(x.disbursed_at_ns),
        dueAt=_time(x.due_at_ns),
        stateSince=_time(x.state_since_ns),
        lastRepaymentAt=iso(x.last_repayment_at_ns),
        receivableAccount=str(x.receivable_account),
    )


def loan_event(e: LoanEvent) -> r.LoanEventOut:
    return r.LoanEventOut(
        seq=e.seq,
        at=_time(e.at_ns),
        fromState=None if e.from_state is None else e.from_state.value,
        toState=e.to_state.value,
        reason=e.reason,
        actor=e.actor,
    )


def repayment(p: Repayment, currency: str) -> r.RepaymentOut:
    return r.RepaymentOut(
        reference=p.reference,
        amount=money(p.amount_minor, currency),
        source=p.source,
        at=_time(p.at_ns),
        actor=p.actor,
    )


def contest(c: Contest) -> r.ContestOut:
    return r.ContestOut(
        offerId=c.offer_id,
        merchantId=c.merchant_id,
        lenderId=c.lender_id,
        statement=c.statement,
        contestedAt=_time(c.contested_at_ns),
        status=c.status.value,
        reviewerId=c.reviewer_id,
        reviewedAt=iso(c.reviewed_at_ns),
        reviewReason=c.review_reason,
        newPrincipalMinor=c.new_principal_minor,
        newOfferId=c.new_offer_id,
        decisionId=c.log_id,
    )


def book(b: Mapping[str, Any]) -> r.BookOut:
    """``Lending.loan_book``'s document."""
    cur = str(b["currency"])
    return r.BookOut(
        lenderId=str(b["lender_id"]),
        currency=cur,
        loans=int(b["loans"]),
        byState={str(k): int(v) for k, v in b["by_state"].items()},
        principal=money(int(b["principal_minor"]), cur),
        fees=money(int(b["fees_minor"]), cur),
        repaid=money(int(b["repaid_minor"]), cur),
        outstanding=money(int(b["outstanding_minor"]), cur),
        fundingBalance=money(int(b["funding_balance_minor"]), cur),
        feeIncome=money(int(b["fee_income_minor"]), cur),
        reconciled=bool(b["reconciled"]),
    )
