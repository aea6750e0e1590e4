"""Lending tables (SQLAlchemy Core) and the rows <-> model mapping.

Migration ``0004_lending`` creates these tables; keep the two in step. Structured values (a
policy's rules, an offer's history, features and reasons, a loan's terms) are JSON text: written
and read back exactly (decimals as text), on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from entrepot.kernel.ids import id_from_bytes, id_to_bytes
from entrepot.risk.lending.model import (
    Contest,
    ContestStatus,
    CreditPolicy,
    Features,
    Loan,
    LoanEvent,
    LoanState,
    LoanTerms,
    MerchantHistory,
    Offer,
    OfferOutcome,
    OfferState,
    Reason,
    Repayment,
    jsonable,
)

metadata = sa.MetaData()
ACCOUNT_ID = sa.LargeBinary(16)
ID = sa.String(64)

policies = sa.Table(
    "lend_policies",
    metadata,
    sa.Column("lender_id", ID, primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("rules", sa.Text, nullable=False),
    sa.Column("set_at", sa.BigInteger, nullable=False),
)
lender_accounts = sa.Table(
    "lend_lender_accounts",
    metadata,
    sa.Column("lender_id", ID, primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("ledger", sa.BigInteger, nullable=False),
    sa.Column("funding_account", ACCOUNT_ID, nullable=False),
    sa.Column("fee_account", ACCOUNT_ID, nullable=False),
)
offers = sa.Table(
    "lend_offers",
    metadata,
    sa.Column("offer_id", ID, primary_key=True),
    sa.Column("lender_id", ID, nullable=False, index=True),
    sa.Column("merchant_id", ID, nullable=False, index=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("limit_minor", sa.BigInteger, nullable=False),
    sa.Column("principal_minor", sa.BigInteger, nullable=False),
    sa.Column("fee_minor", sa.BigInteger, nullable=False),
    sa.Column("terms", sa.Text, nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("history", sa.Text, nullable=False),
    sa.Column("policy_version", sa.Integer, nullable=False),
    sa.Column("model_version", sa.String(200), nullable=False),
    sa.Column("score", sa.String(32)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("requested_by", ID, nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("supersedes", ID),
    sa.Column("log_id", sa.String(32), nullable=False),
)
loans = sa.Table(
    "lend_loans",
    metadata,
    sa.Column("loan_id", ID, primary_key=True),
    sa.Column("lender_id", ID, nullable=False, index=True),
    sa.Column("merchant_id", ID, nullable=False, index=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("ledger", sa.BigInteger, nullable=False),
    sa.Column("receivable_account", ACCOUNT_ID, nullable=False, unique=True),
    sa.Column("principal_minor", sa.BigInteger, nullable=False),
    sa.Column("fee_minor", sa.BigInteger, nullable=False),
    sa.Column("terms", sa.Text, nullable=False),
    sa.Column("disbursed_at", sa.BigInteger, nullable=False),
    sa.Column("due_at", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("state_since", sa.BigInteger, nullable=False),
    sa.Column("last_repayment_at", sa.BigInteger),
    # "<lender>/<merchant>" while the loan is open, NULL once repaid: the database itself
    # refuses a second open loan per merchant and lender (NULLs never collide).
    sa.Column("open_key", sa.String(130), unique=True),
)
loan_events = sa.Table(
    "lend_loan_events",
    metadata,
    sa.Column("loan_id", ID, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("from_state", sa.String(16)),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", ID, nullable=False),
)
repayments = sa.Table(
    "lend_repayments",
    metadata,
    sa.Column("reference", ID, primary_key=True),
    sa.Column("loan_id", ID, primary_key=True),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("actor", ID, nullable=False),
    sa.Column("transfer_id", ACCOUNT_ID, nullable=False),
)
withholdings = sa.Table(
    "lend_withholdings",
    metadata,
    sa.Column("reference", ID, primary_key=True),
    sa.Column("merchant_id", ID, nullable=False, index=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("payout_minor", sa.BigInteger, nullable=False),
    sa.Column("withheld_minor", sa.BigInteger, nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
)
#: Credit decisions written in the transaction that makes them, appended to the decision log
#: once it has committed (a crash or a refusing log leaves them for the deadline pass).
decision_outbox = sa.Table(
    "lend_decision_outbox",
    metadata,
    sa.Column("decision_id", sa.String(32), primary_key=True),
    sa.Column("record", sa.Text, nullable=False),  # the decision as the log writes it (JSON)
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # until when one worker or pass appends it (the deciding worker's, then a pass that claimed
    # it); past it, the next pass claims it
    sa.Column("claimed_until", sa.BigInteger, nullable=False, index=True),
)
contests = sa.Table(
    "lend_contests",
    metadata,
    sa.Column("offer_id", ID, primary_key=True),
    sa.Column("merchant_id", ID, nullable=False, index=True),
    sa.Column("lender_id", ID, nullable=False, index=True),
    sa.Column("statement", sa.Text, nullable=False),
    sa.Column("contested_at", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reviewer_id", ID),
    sa.Column("reviewed_at", sa.BigInteger),
    sa.Column("review_reason", sa.Text),
    sa.Column("new_principal_minor", sa.BigInteger),
    sa.Column("new_offer_id", ID),
    sa.Column("log_id", sa.String(32)),
)

TABLES = (
    policies,
    lender_accounts,
    offers,
    loans,
    loan_events,
    repayments,
    withholdings,
    contests,
)


def dumps(value: Any) -> str:
    return json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------- policies
def policy_from_row(row: Any) -> CreditPolicy:
    rules = json.loads(row.rules)
    return CreditPolicy(
        lender_id=row.lender_id,
        currency=row.currency,
        version=row.version,
        set_at_ns=row.set_at,
        **rules,
    )


def policy_values(policy: CreditPolicy) -> dict[str, Any]:
    return {
        "lender_id": policy.lender_id,
        "currency": policy.currency,
        "version": policy.version,
        "rules": dumps(policy.rules_dict()),
        "set_at": policy.set_at_ns,
    }


def load_policy(
    conn: Connection, lender_id: str, currency: str, version: int | None = None
) -> CreditPolicy | None:
    """The given version, or the latest when ``version`` is None."""
    query = sa.select(policies).where(
        policies.c.lender_id == lender_id, policies.c.currency == currency
    )
    if version is not None:
        query = query.where(policies.c.version == version)
    row = conn.execute(query.order_by(policies.c.version.desc()).limit(1)).first()
    return None if row is None else policy_from_row(row)


def load_lender_accounts(conn: Connection, lender_id: str, currency: str) -> tuple[int, int, int]:
    """(ledger, funding account, fee account) of a lender in a currency; KeyError if none."""
    row = conn.execute(
        sa.select(lender_accounts).where(
            lender_accounts.c.lender_id == lender_id, lender_accounts.c.currency == currency
        )
    ).first()
    if row is None:
        raise KeyError((lender_id, currency))
    return row.ledger, id_from_bytes(row.funding_account), id_from_bytes(row.fee_account)


# --------------------------------------------------------------------------- offers
def terms_from_json(text: str) -> LoanTerms:
    return LoanTerms(**json.loads(text))


def offer_values(offer: Offer) -> dict[str, Any]:
    return {
        "offer_id": offer.offer_id,
        "lender_id": offer.lender_id,
        "merchant_id": offer.merchant_id,
        "currency": offer.currency,
        "outcome": offer.outcome.value,
        "state": offer.state.value,
        "limit_minor": offer.limit_minor,
        "principal_minor": offer.principal_minor,
        "fee_minor": offer.fee_minor,
        "terms": dumps(offer.terms.to_dict()),
        "reasons": dumps([r.to_dict() for r in offer.reasons]),
        "features": dumps(offer.features.to_dict()),
        "history": dumps(offer.history.to_dict()),
        "policy_version": offer.policy_version,
        "model_version": offer.model_version,
        "score": None if offer.score is None else str(offer.score),
        "created_at": offer.created_at_ns,
        "expires_at": offer.expires_at_ns,
        "requested_by": offer.requested_by,
        "origin": offer.origin,
        "supersedes": offer.supersedes,
        "log_id": offer.log_id,
    }


def offer_from_row(row: Any, contested: bool = False) -> Offer:
    return Offer(
        offer_id=row.offer_id,
        lender_id=row.lender_id,
        merchant_id=row.merchant_id,
        currency=row.currency,
        outcome=OfferOutcome(row.outcome),
        state=OfferState(row.state),
        limit_minor=row.limit_minor,
        principal_minor=row.principal_minor,
        fee_minor=row.fee_minor,
        terms=terms_from_json(row.terms),
        reasons=tuple(Reason.from_dict(r) for r in json.loads(row.reasons)),
        features=Features.from_dict(json.loads(row.features)),
        history=MerchantHistory.from_dict(json.loads(row.history)),
        policy_version=row.policy_version,
        model_version=row.model_version,
        score=None if row.score is None else Decimal(row.score),
        created_at_ns=row.created_at,
        expires_at_ns=row.expires_at,
        requested_by=row.requested_by,
        origin=row.origin,
        supersedes=row.supersedes,
        log_id=row.log_id,
        contested=contested,
    )


def load_offer(conn: Connection, offer_id: str) -> Offer | None:
    row = conn.execute(sa.select(offers).where(offers.c.offer_id == offer_id)).first()
    if row is None:
        return None
    contested = conn.execute(
        sa.select(contests.c.offer_id).where(contests.c.offer_id == offer_id)
    ).first()
    return offer_from_row(row, contested is not None)


# --------------------------------------------------------------------------- loans
def loan_from_row(row: Any, debits_posted: int, credits_posted: int) -> Loan:
    """A loan row with its receivable account's posted debits (what is owed in total) and
    credits (what was repaid)."""
    return Loan(
        loan_id=row.loan_id,
        lender_id=row.lender_id,
        merchant_id=row.merchant_id,
        currency=row.currency,
        principal_minor=row.principal_minor,
        fee_minor=row.fee_minor,
        terms=terms_from_json(row.terms),
        disbursed_at_ns=row.disbursed_at,
        due_at_ns=row.due_at,
        state=LoanState(row.state),
        state_since_ns=row.state_since,
        last_repayment_at_ns=row.last_repayment_at,
        receivable_account=id_from_bytes(row.receivable_account),
        total_due_minor=debits_posted,
        repaid_minor=credits_posted,
    )


def open_key(lender_id: str, merchant_id: str) -> str:
    return f"{lender_id}/{merchant_id}"


def loan_values(loan: Loan, ledger: int) -> dict[str, Any]:
    return {
        "loan_id": loan.loan_id,
        "lender_id": loan.lender_id,
        "merchant_id": loan.merchant_id,
        "currency": loan.currency,
        "ledger": ledger,
        "receivable_account": id_to_bytes(loan.receivable_account),
        "principal_minor": loan.principal_minor,
        "fee_minor": loan.fee_minor,
        "terms": dumps(loan.terms.to_dict()),
        "disbursed_at": loan.disbursed_at_ns,
        "due_at": loan.due_at_ns,
        "state": loan.state.value,
        "state_since": loan.state_since_ns,
        "last_repayment_at": loan.last_repayment_at_ns,
        "open_key": open_key(loan.lender_id, loan.merchant_id),
    }


def event_from_row(row: Any) -> LoanEvent:
    return LoanEvent(
        loan_id=row.loan_id,
        seq=row.seq,
        at_ns=row.at,
        from_state=None if row.from_state is None else LoanState(row.from_state),
        to_state=LoanState(row.to_state),
        reason=row.reason,
        actor=row.actor,
    )


def repayment_from_row(row: Any) -> Repayment:
    return Repayment(row.reference, row.loan_id, row.amount_minor, row.source, row.at, row.actor)


# --------------------------------------------------------------------------- contests
def contest_from_row(row: Any) -> Contest:
    return Contest(
        offer_id=row.offer_id,
        merchant_id=row.merchant_id,
        lender_id=row.lender_id,
        statement=row.statement,
        contested_at_ns=row.contested_at,
        status=ContestStatus(row.status),
        reviewer_id=row.reviewer_id,
        reviewed_at_ns=row.reviewed_at,
        review_reason=row.review_reason,
        new_principal_minor=row.new_principal_minor,
        new_offer_id=row.new_offer_id,
        log_id=row.log_id,
    )


def load_contest(conn: Connection, offer_id: str) -> Contest | None:
    row = conn.execute(sa.select(contests).where(contests.c.offer_id == offer_id)).first()
    return None if row is None else contest_from_row(row)
