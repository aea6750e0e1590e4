"""Merchant lending use cases. Each runs in one unit of work that first takes the ledger's write
lock: lending's rows and its ledger postings commit together or not at all, and writes are
serialised with every other writer (no lost update). The trade context calls :meth:`withhold`
inside its own unit of work (``uow=...`` or :meth:`Lending.joined`).

Ledger layout, per currency (ledger = ISO 4217 numeric code):
- per lender: ``lender_funding`` (code 300), credited with each principal disbursed and debited
  with each repayment; ``lender_fee_income`` (code 302), credited with each loan's fee;
- per loan: ``loan_receivable`` (code 301, flag ``credits_must_not_exceed_debits``), debited
  with principal and fee at disbursement, credited with each repayment. What a loan still owes
  is this account's debits minus credits; the flag makes the ledger itself refuse an
  over-repayment. Per lender and currency, funding + fee income = sum of what loans owe.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from entrepot.kernel.clock import NS_PER_S, Clock, SystemClock
from entrepot.kernel.ids import id_from_bytes, id_to_bytes
from entrepot.ledger import (
    Account,
    AccountFlags,
    Ledger,
    Transfer,
    TransferFlags,
    ledger_for_currency,
)
from entrepot.risk.decisions import Decision, DecisionSink, make_decision, sha256_text
from entrepot.risk.lending import store as st
from entrepot.risk.lending.errors import (
    AlreadyContested,
    ContestClosed,
    ContestNotFound,
    ExceedsOutstanding,
    IdConflict,
    InvalidHistory,
    InvalidLendingInput,
    LedgerRefused,
    LoanAlreadyOpen,
    LoanClosed,
    LoanNotFound,
    NotAnOffer,
    NotYours,
    OfferClosed,
    OfferExpired,
    OfferNotFound,
    PolicyChanged,
    PolicyNotFound,
    ReferenceNotFound,
    ReviewerNotIndependent,
    ScorerMissing,
    UnderReview,
)
from entrepot.risk.lending.model import (
    NS_PER_DAY,
    PARTY_ID_LEN_MAX,
    POLICY_VERSION_MAX,
    Contest,
    ContestStatus,
    CreditPolicy,
    Features,
    Loan,
    LoanEvent,
    LoanState,
    MerchantHistory,
    ModelScore,
    Offer,
    OfferOutcome,
    OfferState,
    Repayment,
    assess_loan,
    check_amount,
    check_currency,
    check_id,
    check_text,
    day_text,
    derive_features,
    evaluate,
    fee_for,
    money_text,
    review_reasons,
    split_withholding,
)
from entrepot.storage.engine import read_connection
from entrepot.storage.outbox import claim_due, waiting_and_due
from entrepot.storage.uow import UnitOfWork

LEND_NAMESPACE = uuid.UUID("0b5a1f0e-7c1d-4f5e-b0a4-2c6e8d9f1a3b")
DECISION_KIND = "credit"  # lending decisions are credit decisions in the risk decision log
REVIEW_SUFFIX = "-review"


#: A decision waiting in the outbox this long (its worker died, or the log refused it) is
#: appended by the next deadline pass; until then the deciding worker appends it itself.
DECISION_GRACE_S = 60
#: Decisions one deadline pass appends at most (the rest wait for the next pass).
DECISIONS_A_PASS = 1_000

log = logging.getLogger(__name__)


class Code:
    """Ledger account and transfer codes used by lending."""

    FUNDING = 300
    RECEIVABLE = 301
    FEE_INCOME = 302
    DISBURSEMENT = 30
    FEE = 31
    REPAYMENT = 32


def check_asked_offer_id(offer_id: str) -> None:
    """An id a merchant or lender may ask for credit under: a well-formed id not ending in
    ``-review`` (taken by a request, ``<id>-review`` would leave no id for overturning
    ``<id>``; asked again, it would read the reviewer's offer back as a replay)."""
    check_id(offer_id, "offer_id")
    if offer_id.endswith(REVIEW_SUFFIX):
        raise InvalidLendingInput(
            f"offer ids ending in {REVIEW_SUFFIX!r} are kept for decisions made on review",
            field="offer_id",
        )


def ledger_id(*parts: str) -> int:
    """Deterministic 128-bit ledger ids from lending ids: retries post the same ids."""
    return uuid.uuid5(LEND_NAMESPACE, ":".join(parts)).int


class Scorer(Protocol):
    """A credit model that scores a merchant's features (policies with ``max_pd`` need one)."""

    def score(self, features: Features) -> ModelScore: ...


_JOINED: ContextVar[UnitOfWork | None] = ContextVar("entrepot_lending_joined", default=None)


class Lending:
    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        clock: Clock | None = None,
        *,
        sink: DecisionSink | None = None,
        scorer: Scorer | None = None,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.clock: Clock = clock or SystemClock()
        self.sink = sink
        self.scorer = scorer

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _uow(self, uow: UnitOfWork | None = None) -> Iterator[UnitOfWork]:
        outer = uow if uow is not None else _JOINED.get()
        if outer is not None:
            assert outer.engine is self.engine, "a joined unit of work must share the engine"
            self.ledger.store.take_write_lock(outer.connection)
            yield outer  # the caller commits, or rolls everything back
            return
        with UnitOfWork(self.engine) as own:
            # Take the ledger's write lock first: every lending write is serialised with it.
            self.ledger.store.take_write_lock(own.connection)
            yield own
            own.commit()

    @contextmanager
    def joined(self, uow: UnitOfWork) -> Iterator[Lending]:
        """Run lending use cases inside a caller's unit of work (trade releasing a payout): their
        writes and the caller's commit together or not at all. Lending does not commit; the
        caller does. Decisions made in it wait in the decision outbox, claimable at once: the
        deadline pass appends them to the log once the caller has committed (never, if it
        rolled back)."""
        self.ledger.store.take_write_lock(uow.connection)
        token = _JOINED.set(uow)
        try:
            yield self
        finally:
            _JOINED.reset(token)

    def _now(self) -> int:
        return self.clock.now_ns()

    def _stage(self, uow: UnitOfWork, decisions: Sequence[Decision]) -> None:
        """Write ``decisions`` to the decision outbox in ``uow``: they take effect with it, and
        are appended to the log once it has committed (:meth:`_publish`, or the deadline
        pass), so the log holds a decision if and only if it took effect."""
        if self.sink is None or not decisions:
            return
        now = self._now()
        # a joined unit of work commits after this call returns: the pass appends it then
        claimed_until = now if _JOINED.get() is not None else now + DECISION_GRACE_S * NS_PER_S
        uow.connection.execute(
            sa.insert(st.decision_outbox),
            [
                {
                    "decision_id": d.decision_id,
                    "record": json.dumps(d.to_dict(), sort_keys=True),
                    "created_at": now,
                    "claimed_until": claimed_until,
                }
                for d in decisions
            ],
        )

    def _publish(self, decisions: Sequence[Decision]) -> None:
        """After their transaction committed: append the staged ``decisions`` to the log and
        take them out of the outbox. A log that refuses them now (disk full) is not the
        caller's error: the decision stands and the deadline pass appends it later."""
        if self.sink is None or not decisions or _JOINED.get() is not None:
            return
        try:
            self._append(decisions)
        except Exception:
            log.warning(
                "credit decision %s took effect but the decision log did not take it now; "
                "the deadline pass appends it",
                decisions[0].decision_id,
                exc_info=True,
            )

    def _append(self, decisions: Sequence[Decision]) -> None:
        assert self.sink is not None
        self.sink.append(decisions)
        with self._uow() as uow:
            c = st.decision_outbox.c
            uow.connection.execute(
                sa.delete(st.decision_outbox).where(
                    c.decision_id.in_([d.decision_id for d in decisions])
                )
            )

    def log_pending_decisions(self) -> dict[str, int]:
        """Credit decisions that took effect but are not in the decision log yet (the process
        died after the commit, or the log refused them then) appended now; the deadline pass
        runs it. Each waits for its claim to lapse (the deciding worker appends it itself
        within ``DECISION_GRACE_S``), then is claimed in a write (a pass of another process
        at the same time skips it) and appended. A log that refuses is reported, not raised.
        A process that dies between an append and its delete appends that decision again
        once its claim lapses: it is then in the log twice, under one decision id."""
        if self.sink is None:
            return {"decisions_logged": 0, "decisions_waiting": 0}
        with read_connection(self.engine) as conn:
            waiting, due = waiting_and_due(conn, st.decision_outbox, self._now())
        if not due:
            return {"decisions_logged": 0, "decisions_waiting": waiting}
        with self._uow() as uow:
            waiting, rows = claim_due(
                uow.connection,
                st.decision_outbox,
                self._now(),
                DECISION_GRACE_S * NS_PER_S,
                DECISIONS_A_PASS,
            )
        if not rows:
            return {"decisions_logged": 0, "decisions_waiting": waiting}
        try:
            self._append([Decision.from_dict(json.loads(r.record)) for r in rows])
        except Exception:  # the log refuses (disk full, say): the next pass tries again
            log.warning("the decision log refused credit decisions", exc_info=True)
            return {"decisions_logged": 0, "decisions_waiting": waiting}
        return {"decisions_logged": len(rows), "decisions_waiting": waiting - len(rows)}

    def _post_ok(self, uow: UnitOfWork, batch: Sequence[Transfer], what: str) -> None:
        results = [str(r) for r in self.ledger.create_transfers(batch, uow=uow)]
        failures = [r for r in results if r not in ("ok", "exists")]
        if not failures:
            return
        if "exceeds_debits" in failures:
            raise ExceedsOutstanding(f"the ledger refused {what}: it exceeds what the loan owes")
        raise LedgerRefused(f"the ledger refused {what}: {', '.join(sorted(set(failures)))}")

    # ------------------------------------------------------------------ policies
    def set_policy(self, caller: str, policy: CreditPolicy) -> CreditPolicy:
        """Store a lender's policy for a currency as its next version (1, 2, ...) and open the
        lender's ledger accounts. Setting the rules already current returns that version."""
        if not isinstance(policy, CreditPolicy):
            raise InvalidLendingInput("policy must be a CreditPolicy", field="policy")
        if caller != policy.lender_id:
            raise NotYours(f"{caller!r} may not set the policy of lender {policy.lender_id!r}")
        number = ledger_for_currency(policy.currency)
        if all(d.ledger != number for d in self.ledger.ledgers()):
            self.ledger.define_ledger(number, policy.currency)
        with self._uow() as uow:
            conn = uow.connection
            current = st.load_policy(conn, policy.lender_id, policy.currency)
            if current is not None and current.rules_dict() == policy.rules_dict():
                return current
            stored = CreditPolicy(
                **{
                    **policy.to_dict(),
                    "version": 1 if current is None else current.version + 1,
                    "set_at_ns": self._now(),
                }
            )
            conn.execute(sa.insert(st.policies).values(**st.policy_values(stored)))
            self._open_lender_accounts(uow, stored.lender_id, stored.currency, number)
        return stored

    def _open_lender_accounts(
        self, uow: UnitOfWork, lender_id: str, currency: str, number: int
    ) -> None:
        conn = uow.connection
        try:
            st.load_lender_accounts(conn, lender_id, currency)
            return
        except KeyError:
            pass
        funding = ledger_id("lend-funding", lender_id, currency)
        fees = ledger_id("lend-fee-income", lender_id, currency)
        results = self.ledger.create_accounts(
            [
                Account(funding, number, Code.FUNDING, flags=AccountFlags.HISTORY),
                Account(fees, number, Code.FEE_INCOME, flags=AccountFlags.HISTORY),
            ],
            uow=uow,
        )
        assert all(r in ("ok", "exists") for r in results), results
        conn.execute(
            sa.insert(st.lender_accounts).values(
                lender_id=lender_id,
                currency=currency,
                ledger=number,
                funding_account=id_to_bytes(funding),
                fee_account=id_to_bytes(fees),
            )
        )

    def get_policy(self, lender_id: str, currency: str, version: int | None = None) -> CreditPolicy:
        """The lender's current policy for the currency, or the version asked for."""
        found = None
        if version is None or 1 <= version <= POLICY_VERSION_MAX:  # none past what is stored
            with read_connection(self.engine) as conn:
                found = st.load_policy(conn, lender_id, currency, version)
        if found is None:
            which = "" if version is None else f" version {version}"
            raise PolicyNotFound(f"lender {lender_id!r} has no {currency} credit policy{which}")
        return found

    # ------------------------------------------------------------------ offers
    def offer(
        self,
        caller: str,
        offer_id: str,
        lender_id: str,
        history: MerchantHistory,
        *,
        window: int | None = None,
    ) -> Offer:
        """Decide on credit for the merchant of ``history`` under the lender's current policy:
        an offer (amount, fee, term, repayment share) or a decline, each with its reasons,
        stored with the exact history, features and policy version used, and logged.
        ``offer_id`` is the client's idempotency key. The merchant or the lender may ask.
        Ids ending in ``-review`` are kept for the offers a person makes on review.
        ``window``: the months the history was built on, read from the policy then; a policy
        that names others now (changed meanwhile) is ``PolicyChanged``, decided on nothing."""
        check_asked_offer_id(offer_id)
        check_id(lender_id, "lender_id", length_max=PARTY_ID_LEN_MAX)
        if not isinstance(history, MerchantHistory):
            raise InvalidLendingInput("history must be a MerchantHistory", field="history")
        if caller not in (history.merchant_id, lender_id):
            raise NotYours(f"{caller!r} may not ask for credit for {history.merchant_id!r}")
        now = self._now()
        if history.as_of_ns > now:
            raise InvalidHistory("the history is dated in the future", field="as_of_ns")
        with read_connection(self.engine) as conn:
            replay = self._replayed_offer(conn, offer_id, lender_id, history)
            policy = st.load_policy(conn, lender_id, history.currency)
        if replay is not None:
            return replay
        if policy is None:
            raise PolicyNotFound(f"lender {lender_id!r} has no {history.currency} credit policy")
        if window is not None and window != policy.history_months:
            # read twice (to build the history, then to decide): one decision, one policy
            raise PolicyChanged(
                f"lender {lender_id!r} changed its policy while the history was built (now "
                f"{policy.history_months} months, built on {window}): ask again"
            )
        if len(history.monthly_sales_minor) > policy.history_months:
            # the lender decides on its window: a longer one is not the merchant's to give
            raise InvalidHistory(
                f"the history covers {len(history.monthly_sales_minor)} months; lender "
                f"{lender_id!r} decides on the last {policy.history_months}",
                field="monthly_sales_minor",
            )
        offer, decision = self._decide(caller, offer_id, policy, history, now)
        with self._uow() as uow:
            replay = self._replayed_offer(uow.connection, offer_id, lender_id, history)
            if replay is not None:
                return replay
            # Staged once no other request with this id has stored its own (under the write
            # lock: a racing request's decision was logged under the id it was then refused,
            # its merchant's features readable by the other's lender; found by a review), in
            # the transaction that stores it: logged if and only if it takes effect.
            self._stage(uow, [decision])
            uow.connection.execute(sa.insert(st.offers).values(**st.offer_values(offer)))
        self._publish([decision])
        return offer

    def _replayed_offer(
        self, conn: Connection, offer_id: str, lender_id: str, history: MerchantHistory
    ) -> Offer | None:
        found = st.load_offer(conn, offer_id)
        if found is None:
            return None
        if found.lender_id != lender_id or found.history != history:
            raise IdConflict(f"offer id {offer_id!r} was used for another request")
        return found

    def _decide(
        self, caller: str, offer_id: str, policy: CreditPolicy, history: MerchantHistory, now: int
    ) -> tuple[Offer, Decision]:
        features = derive_features(history)
        score: ModelScore | None = None
        if policy.max_pd is not None:
            if self.scorer is None:
                raise ScorerMissing(
                    f"policy v{policy.version} of {policy.lender_id!r} has a model cutoff "
                    "(max_pd) but no credit model is configured"
                )
            score = self.scorer.score(features)
        ev = evaluate(policy, features, score)
        model_version = policy.model_version
        if score is not None:
            model_version += f"+{score.model_version}"
        decision = make_decision(
            DECISION_KIND,
            model_version=model_version,
            outcome=ev.outcome.value,
            score=None if score is None else float(score.pd),
            reasons=[r.text for r in ev.reasons],
            inputs=_log_inputs(offer_id, policy, history, features, ev.principal_minor),
            clock=self.clock,
        )
        is_offer = ev.outcome is OfferOutcome.OFFER
        offer = Offer(
            offer_id=offer_id,
            lender_id=policy.lender_id,
            merchant_id=history.merchant_id,
            currency=policy.currency,
            outcome=ev.outcome,
            state=OfferState.OPEN if is_offer else OfferState.DECLINED,
            limit_minor=ev.limit_minor,
            principal_minor=ev.principal_minor,
            fee_minor=ev.fee_minor,
            terms=policy.terms,
            reasons=ev.reasons,
            features=features,
            history=history,
            policy_version=policy.version,
            model_version=model_version,
            score=None if score is None else score.pd,
            created_at_ns=now,
            expires_at_ns=now + policy.offer_valid_days * NS_PER_DAY if is_offer else now,
            requested_by=caller,
            log_id=decision.decision_id,
        )
        return offer, decision

    def _visible_offer(self, conn: Connection, caller: str, offer_id: str) -> Offer:
        found = st.load_offer(conn, offer_id)
        if found is None or caller not in (found.lender_id, found.merchant_id):
            raise OfferNotFound(f"offer {offer_id!r} does not exist")
        return found

    def asked_before(self, caller: str, offer_id: str, lender_id: str) -> Offer | None:
        """The decision already made under ``offer_id`` for ``caller``, which a retry of the
        request returns before any history is built (built again, it is stamped now and
        differs from the first: the retry was refused as another request); None if there is
        none the caller sees. The same id asked of another lender is ``IdConflict``."""
        check_asked_offer_id(offer_id)
        try:
            found = self.get_offer(caller, offer_id)
        except OfferNotFound:
            return None
        if found.lender_id != lender_id:
            raise IdConflict(f"offer id {offer_id!r} was used for another request")
        return found

    def get_offer(self, caller: str, offer_id: str) -> Offer:
        """An offer or decline, seen by its merchant or its lender only."""
        with read_connection(self.engine) as conn:
            return self._visible_offer(conn, caller, offer_id)

    def list_offers(self, caller: str, *, state: OfferState | str | None = None) -> list[Offer]:
        """The caller's offers and declines (as lender or as merchant), oldest first."""
        t = st.offers
        query = sa.select(t.c.offer_id).where(
            sa.or_(t.c.lender_id == caller, t.c.merchant_id == caller)
        )
        if state is not None:
            query = query.where(t.c.state == _enum(OfferState, state, "state").value)
        with read_connection(self.engine) as conn:
            ids = conn.execute(query.order_by(t.c.created_at, t.c.offer_id)).scalars().all()
            return [self._visible_offer(conn, caller, i) for i in ids]

    # ------------------------------------------------------------------ acceptance
    def accept(self, caller: str, offer_id: str, amount_minor: int | None = None) -> Loan:
        """The merchant accepts an open offer before it expires, for the offered principal or
        less (at least the policy's smallest loan; the fee is recomputed on what is taken).
        The loan is disbursed through the ledger in the same transaction. Accepting again
        returns the loan."""
        if amount_minor is not None:
            check_amount(amount_minor, "amount_minor")
        with self._uow() as uow:
            conn = uow.connection
            offer = self._visible_offer(conn, caller, offer_id)
            if caller != offer.merchant_id:
                raise NotYours(f"only merchant {offer.merchant_id!r} may accept {offer_id!r}")
            if offer.state is OfferState.ACCEPTED:
                return self._replayed_accept(conn, offer, amount_minor)
            self._check_acceptable(conn, offer)
            policy = st.load_policy(conn, offer.lender_id, offer.currency, offer.policy_version)
            assert policy is not None, "an offer's policy version is never deleted"
            principal = offer.principal_minor if amount_minor is None else amount_minor
            if not policy.limit_min_minor <= principal <= offer.principal_minor:
                raise InvalidLendingInput(
                    f"amount must be between the smallest loan "
                    f"{money_text(policy.limit_min_minor, offer.currency)} and the offer's "
                    f"{money_text(offer.principal_minor, offer.currency)}",
                    field="amount_minor",
                )
            self._check_no_open_loan(conn, offer)
            loan = self._disburse(uow, offer, principal, fee_for(principal, policy.fee_bps))
        return loan

    def _replayed_accept(self, conn: Connection, offer: Offer, amount_minor: int | None) -> Loan:
        loan = self._load_loan(conn, offer.offer_id)
        assert loan is not None, "an accepted offer has its loan"
        if amount_minor is not None and amount_minor != loan.principal_minor:
            raise IdConflict(
                f"offer {offer.offer_id!r} was already accepted for "
                f"{money_text(loan.principal_minor, loan.currency)}"
            )
        return loan

    def _check_acceptable(self, conn: Connection, offer: Offer) -> None:
        if offer.state is OfferState.SUPERSEDED:
            raise OfferClosed(
                f"offer {offer.offer_id!r} was replaced on review by "
                f"{offer.offer_id + REVIEW_SUFFIX!r}"
            )
        if offer.outcome is OfferOutcome.DECLINE:
            raise NotAnOffer(f"{offer.offer_id!r} is a decline: there is nothing to accept")
        contest = st.load_contest(conn, offer.offer_id)
        if contest is not None and contest.status is ContestStatus.OPEN:
            raise UnderReview(f"offer {offer.offer_id!r} is contested and waits for review")
        if offer.state is OfferState.EXPIRED or self._now() >= offer.expires_at_ns:
            raise OfferExpired(
                f"offer {offer.offer_id!r} expired on {day_text(offer.expires_at_ns)}"
            )

    def _check_no_open_loan(self, conn: Connection, offer: Offer) -> None:
        open_loan = conn.execute(
            sa.select(st.loans.c.loan_id).where(
                st.loans.c.open_key == st.open_key(offer.lender_id, offer.merchant_id)
            )
        ).scalar()
        if open_loan is not None:
            raise LoanAlreadyOpen(
                f"merchant {offer.merchant_id!r} already has loan {open_loan!r} open with "
                f"{offer.lender_id!r}; one open loan per lender at a time"
            )

    def _disburse(self, uow: UnitOfWork, offer: Offer, principal: int, fee: int) -> Loan:
        conn = uow.connection
        number, funding, fees = st.load_lender_accounts(conn, offer.lender_id, offer.currency)
        receivable = ledger_id("lend-receivable", offer.offer_id)
        limited = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS | AccountFlags.HISTORY
        results = self.ledger.create_accounts(
            [Account(receivable, number, Code.RECEIVABLE, flags=limited)], uow=uow
        )
        assert all(r in ("ok", "exists") for r in results), results
        batch = [
            Transfer(
                ledger_id("lend-disburse", offer.offer_id),
                receivable,
                funding,
                principal,
                ledger=number,
                code=Code.DISBURSEMENT,
                flags=TransferFlags.LINKED if fee else TransferFlags.NONE,
            )
        ]
        if fee:
            batch.append(
                Transfer(
                    ledger_id("lend-fee", offer.offer_id),
                    receivable,
                    fees,
                    fee,
                    ledger=number,
                    code=Code.FEE,
                )
            )
        self._post_ok(uow, batch, "the disbursement")
        now = self._now()
        loan = Loan(
            loan_id=offer.offer_id,
            lender_id=offer.lender_id,
            merchant_id=offer.merchant_id,
            currency=offer.currency,
            principal_minor=principal,
            fee_minor=fee,
            terms=offer.terms,
            disbursed_at_ns=now,
            due_at_ns=now + offer.terms.term_days * NS_PER_DAY,
            state=LoanState.CURRENT,
            state_since_ns=now,
            last_repayment_at_ns=None,
            receivable_account=receivable,
            total_due_minor=principal + fee,
            repaid_minor=0,
        )
        conn.execute(sa.insert(st.loans).values(**st.loan_values(loan, number)))
        conn.execute(
            sa.update(st.offers)
            .where(st.offers.c.offer_id == offer.offer_id)
            .values(state=OfferState.ACCEPTED.value)
        )
        why = (
            f"disbursed {money_text(principal, loan.currency)} with a fee of "
            f"{money_text(fee, loan.currency)}, due {day_text(loan.due_at_ns)}"
        )
        self._record_event(conn, loan.loan_id, None, LoanState.CURRENT, why, offer.merchant_id)
        return loan

    # ------------------------------------------------------------------ loans
    def _load_loans(self, conn: Connection, where: Any) -> list[Loan]:
        t = st.loans
        rows = conn.execute(sa.select(t).where(where).order_by(t.c.disbursed_at, t.c.loan_id)).all()
        accounts = self.ledger.store.load_accounts(
            conn, {id_from_bytes(r.receivable_account) for r in rows}
        )
        by_id = {a.id: a for a in accounts}
        loans = []
        for r in rows:
            account = by_id[id_from_bytes(r.receivable_account)]
            loans.append(st.loan_from_row(r, account.debits_posted, account.credits_posted))
        return loans

    def _load_loan(self, conn: Connection, loan_id: str) -> Loan | None:
        found = self._load_loans(conn, st.loans.c.loan_id == loan_id)
        return found[0] if found else None

    def _visible_loan(self, conn: Connection, caller: str, loan_id: str) -> Loan:
        loan = self._load_loan(conn, loan_id)
        if loan is None or caller not in (loan.lender_id, loan.merchant_id):
            raise LoanNotFound(f"loan {loan_id!r} does not exist")
        return loan

    def get_loan(self, caller: str, loan_id: str) -> Loan:
        """A loan with what it owes read from the ledger; seen by its merchant or lender only."""
        with read_connection(self.engine) as conn:
            return self._visible_loan(conn, caller, loan_id)

    def list_loans(self, caller: str, *, state: LoanState | str | None = None) -> list[Loan]:
        """The caller's loans (as lender or as merchant), oldest first."""
        t = st.loans
        where = sa.or_(t.c.lender_id == caller, t.c.merchant_id == caller)
        if state is not None:
            where = sa.and_(where, t.c.state == _enum(LoanState, state, "state").value)
        with read_connection(self.engine) as conn:
            return self._load_loans(conn, where)

    def loan_events(self, caller: str, loan_id: str) -> list[LoanEvent]:
        """Every state change of the loan with its reason, who and when."""
        with read_connection(self.engine) as conn:
            self._visible_loan(conn, caller, loan_id)
            rows = conn.execute(
                sa.select(st.loan_events)
                .where(st.loan_events.c.loan_id == loan_id)
                .order_by(st.loan_events.c.seq)
            ).all()
        return [st.event_from_row(r) for r in rows]

    def repayments(self, caller: str, loan_id: str) -> list[Repayment]:
        with read_connection(self.engine) as conn:
            self._visible_loan(conn, caller, loan_id)
            rows = conn.execute(
                sa.select(st.repayments)
                .where(st.repayments.c.loan_id == loan_id)
                .order_by(st.repayments.c.at, st.repayments.c.reference)
            ).all()
        return [st.repayment_from_row(r) for r in rows]

    def _record_event(
        self,
        conn: Connection,
        loan_id: str,
        from_state: LoanState | None,
        to_state: LoanState,
        reason: str,
        actor: str,
    ) -> None:
        now = self._now()
        seq = conn.execute(
            sa.select(sa.func.count())
            .select_from(st.loan_events)
            .where(st.loan_events.c.loan_id == loan_id)
        ).scalar_one()
        conn.execute(
            sa.insert(st.loan_events).values(
                loan_id=loan_id,
                seq=seq + 1,
                at=now,
                from_state=None if from_state is None else from_state.value,
                to_state=to_state.value,
                reason=reason,
                actor=actor,
            )
        )
        if from_state is not None:
            values: dict[str, Any] = {"state": to_state.value, "state_since": now}
            if to_state is LoanState.REPAID:
                values["open_key"] = None
            conn.execute(sa.update(st.loans).where(st.loans.c.loan_id == loan_id).values(**values))

    # ------------------------------------------------------------------ repayment
    def withhold(
        self,
        merchant_id: str,
        currency: str,
        payout_minor: int,
        reference: str,
        *,
        uow: UnitOfWork | None = None,
        lender_id: str | None = None,
    ) -> int:
        """How much of a payout to the merchant is withheld to repay its loans in this
        currency: each open loan's repayment share of the payout, rounded down, capped at what
        it owes (and at what is left of the payout), oldest loan first; 0 without an open loan.
        ``lender_id`` limits it to that lender's loans (the bank the payout goes to: only it
        can keep the repayment).
        Posted to the loan book and recorded in the same unit of work (the caller's, if given).
        ``reference`` (e.g. the escrow release) is the idempotency key: a replay returns the
        first answer; the same reference for another payout is an error."""
        check_id(merchant_id, "merchant_id", length_max=PARTY_ID_LEN_MAX)
        code = check_currency(currency)
        check_amount(payout_minor, "payout_minor", zero_ok=True)
        check_id(reference, "reference")
        with self._uow(uow) as u:
            conn = u.connection
            replay = self._replayed_withholding(conn, merchant_id, code, payout_minor, reference)
            if replay is not None:
                return replay
            loans = self._load_loans(
                conn,
                sa.and_(
                    st.loans.c.merchant_id == merchant_id,
                    st.loans.c.currency == code,
                    st.loans.c.open_key.is_not(None),
                    sa.true() if lender_id is None else st.loans.c.lender_id == lender_id,
                ),
            )
            parts = split_parts(payout_minor, loans)
            # A direct repayment's reference is the lender's to choose: one of these loans'
            # under this reference made the withholding fail on the repayments' key (a
            # database error, found by a review); refused by name instead, nothing booked.
            used = conn.execute(
                sa.select(st.repayments.c.loan_id).where(
                    st.repayments.c.reference == reference,
                    st.repayments.c.loan_id.in_([loan.loan_id for loan in loans]),
                )
            ).first()
            if used is not None:
                raise IdConflict(
                    f"reference {reference!r} was used for a direct repayment of loan "
                    f"{used.loan_id!r}: a payout's withholding needs a reference of its own"
                )
            for loan, part in zip(loans, parts, strict=True):
                if part:
                    self._repay_in(u, loan, part, reference, "withhold", merchant_id)
            conn.execute(
                sa.insert(st.withholdings).values(
                    reference=reference,
                    merchant_id=merchant_id,
                    currency=code,
                    payout_minor=payout_minor,
                    withheld_minor=sum(parts),
                    at=self._now(),
                )
            )
        return sum(parts)

    def _replayed_withholding(
        self, conn: Connection, merchant_id: str, currency: str, payout: int, reference: str
    ) -> int | None:
        row = conn.execute(
            sa.select(st.withholdings).where(st.withholdings.c.reference == reference)
        ).first()
        if row is None:
            return None
        if (row.merchant_id, row.currency, row.payout_minor) != (merchant_id, currency, payout):
            raise IdConflict(f"reference {reference!r} was used for another payout")
        withheld: int = row.withheld_minor
        return withheld

    def _repay_in(
        self, uow: UnitOfWork, loan: Loan, amount: int, reference: str, source: str, actor: str
    ) -> None:
        conn = uow.connection
        number, funding, _ = st.load_lender_accounts(conn, loan.lender_id, loan.currency)
        transfer_id = ledger_id("lend-repay", loan.loan_id, reference)
        self._post_ok(
            uow,
            [
                Transfer(
                    transfer_id,
                    funding,
                    loan.receivable_account,
                    amount,
                    ledger=number,
                    code=Code.REPAYMENT,
                )
            ],
            f"a repayment of {money_text(amount, loan.currency)} to loan {loan.loan_id!r}",
        )
        now = self._now()
        conn.execute(
            sa.insert(st.repayments).values(
                reference=reference,
                loan_id=loan.loan_id,
                amount_minor=amount,
                source=source,
                at=now,
                actor=actor,
                transfer_id=id_to_bytes(transfer_id),
            )
        )
        conn.execute(
            sa.update(st.loans)
            .where(st.loans.c.loan_id == loan.loan_id)
            .values(last_repayment_at=now)
        )
        if amount == loan.outstanding_minor:
            why = f"repaid in full ({source} {reference})"
            self._record_event(conn, loan.loan_id, loan.state, LoanState.REPAID, why, actor)

    def repay(
        self,
        caller: str,
        loan_id: str,
        amount_minor: int,
        reference: str,
        *,
        uow: UnitOfWork | None = None,
    ) -> Loan:
        """A repayment outside payouts (the merchant paid the lender directly), recorded by the
        lender, who received the money: a merchant cannot mark its own loan repaid. At most
        what the loan owes; ``reference`` is the idempotency key."""
        check_amount(amount_minor, "amount_minor")
        check_id(reference, "reference")
        with self._uow(uow) as u:
            conn = u.connection
            loan = self._visible_loan(conn, caller, loan_id)
            if caller != loan.lender_id:
                raise NotYours(
                    f"only the lender {loan.lender_id} records a direct repayment of {loan_id!r}"
                )
            done = conn.execute(
                sa.select(st.repayments).where(
                    st.repayments.c.reference == reference, st.repayments.c.loan_id == loan_id
                )
            ).first()
            if done is not None:
                if (done.source, done.amount_minor) != ("direct", amount_minor):
                    raise IdConflict(f"reference {reference!r} was used for another repayment")
                return loan
            if loan.state is LoanState.REPAID:
                raise LoanClosed(f"loan {loan_id!r} is repaid: nothing is owed")
            if amount_minor > loan.outstanding_minor:
                raise ExceedsOutstanding(
                    f"{money_text(amount_minor, loan.currency)} exceeds the "
                    f"{money_text(loan.outstanding_minor, loan.currency)} loan {loan_id!r} owes",
                    field="amount_minor",
                )
            self._repay_in(u, loan, amount_minor, reference, "direct", caller)
            repaid = self._load_loan(conn, loan_id)
        assert repaid is not None
        return repaid

    def get_withholding(self, merchant_id: str, reference: str) -> dict[str, Any]:
        """What was withheld from the merchant's payout ``reference``, and per loan."""
        with read_connection(self.engine) as conn:
            row = conn.execute(
                sa.select(st.withholdings).where(
                    st.withholdings.c.reference == reference,
                    st.withholdings.c.merchant_id == merchant_id,
                )
            ).first()
            if row is None:
                raise ReferenceNotFound(f"no payout {reference!r} of merchant {merchant_id!r}")
            parts = conn.execute(
                sa.select(st.repayments.c.loan_id, st.repayments.c.amount_minor).where(
                    st.repayments.c.reference == reference,
                    st.repayments.c.source == "withhold",
                )
            ).all()
        return {
            "reference": reference,
            "merchant_id": merchant_id,
            "currency": row.currency,
            "payout_minor": row.payout_minor,
            "withheld_minor": row.withheld_minor,
            "loans": {p.loan_id: p.amount_minor for p in parts},
        }

    # ------------------------------------------------------------------ deadlines
    def process_deadlines(self) -> dict[str, int]:
        """Expire open offers past their deadline (not those under review) and move each open
        loan's delinquency state by the clock (see :func:`assess_loan`), recording each change
        with its reason. Returns how many of each happened."""
        counts = {"offers_expired": 0, **{f"loans_{s.value}": 0 for s in LoanState}}
        with self._uow() as uow:
            conn = uow.connection
            now = self._now()
            contested = sa.select(st.contests.c.offer_id).where(
                st.contests.c.status == ContestStatus.OPEN.value
            )
            expired = conn.execute(
                sa.update(st.offers)
                .where(
                    st.offers.c.state == OfferState.OPEN.value,
                    st.offers.c.expires_at <= now,
                    st.offers.c.offer_id.not_in(contested),
                )
                .values(state=OfferState.EXPIRED.value)
            )
            counts["offers_expired"] = expired.rowcount
            for loan in self._load_loans(conn, st.loans.c.open_key.is_not(None)):
                change = assess_loan(loan, now)
                if change is not None:
                    state, why = change
                    self._record_event(conn, loan.loan_id, loan.state, state, why, "deadline")
                    counts[f"loans_{state.value}"] += 1
        return counts

    # ------------------------------------------------------------------ contests
    def contest(self, caller: str, offer_id: str, statement: str) -> Contest:
        """The merchant contests an offer or a decline, once, with a statement; it waits in the
        lender's review queue. Repeating the same statement returns the contest."""
        text = check_text(statement, "statement")
        with self._uow() as uow:
            conn = uow.connection
            offer = self._visible_offer(conn, caller, offer_id)
            if caller != offer.merchant_id:
                raise NotYours(f"only merchant {offer.merchant_id!r} may contest {offer_id!r}")
            existing = st.load_contest(conn, offer_id)
            if existing is not None:
                if existing.statement == text:
                    return existing
                raise AlreadyContested(
                    f"decision {offer_id!r} was contested already; a decision is contested once"
                )
            if offer.origin == "review":
                raise ContestClosed(f"{offer_id!r} was decided on review; that decision is final")
            if offer.state in (OfferState.ACCEPTED, OfferState.SUPERSEDED):
                raise ContestClosed(f"offer {offer_id!r} is {offer.state.value}")
            contest = Contest(
                offer_id, offer.merchant_id, offer.lender_id, text, self._now(), ContestStatus.OPEN
            )
            conn.execute(
                sa.insert(st.contests).values(
                    offer_id=offer_id,
                    merchant_id=contest.merchant_id,
                    lender_id=contest.lender_id,
                    statement=text,
                    contested_at=contest.contested_at_ns,
                    status=contest.status.value,
                )
            )
        return contest

    def list_contests(
        self, caller: str, *, status: ContestStatus | str | None = None
    ) -> list[Contest]:
        """The lender's review queue (or a merchant's own contests), oldest first."""
        t = st.contests
        query = sa.select(t).where(sa.or_(t.c.lender_id == caller, t.c.merchant_id == caller))
        if status is not None:
            query = query.where(t.c.status == _enum(ContestStatus, status, "status").value)
        with read_connection(self.engine) as conn:
            rows = conn.execute(query.order_by(t.c.contested_at, t.c.offer_id)).all()
        return [st.contest_from_row(r) for r in rows]

    def review(
        self,
        caller: str,
        offer_id: str,
        reviewer_id: str,
        outcome: ContestStatus | str,
        reason: str,
        *,
        new_principal_minor: int | None = None,
    ) -> Contest:
        """A person at the lender reviews a contest: ``upheld`` (the decision stands; an offer
        gets a fresh expiry, as the review took its time) or ``overturned`` with a new principal,
        which makes a new offer ``<offer_id>-review`` and supersedes the old decision. Who,
        when and why are recorded and logged."""
        verdict = _enum(ContestStatus, outcome, "outcome")
        if verdict is ContestStatus.OPEN:
            raise InvalidLendingInput("outcome must be upheld or overturned", field="outcome")
        check_id(reviewer_id, "reviewer_id", length_max=PARTY_ID_LEN_MAX)
        why = check_text(reason, "reason")
        if verdict is ContestStatus.OVERTURNED:
            if new_principal_minor is None:
                raise InvalidLendingInput(
                    "overturning needs the new principal", field="new_principal_minor"
                )
            check_amount(new_principal_minor, "new_principal_minor")
        elif new_principal_minor is not None:
            raise InvalidLendingInput(
                "an upheld decision keeps its amount", field="new_principal_minor"
            )
        with self._uow() as uow:
            conn = uow.connection
            contest = st.load_contest(conn, offer_id)
            if contest is None or caller != contest.lender_id:
                raise ContestNotFound(f"no contest of {offer_id!r} in your review queue")
            if reviewer_id == contest.merchant_id:
                raise ReviewerNotIndependent(
                    "the merchant who contested may not review its own contest",
                    field="reviewer_id",
                )
            if contest.status is not ContestStatus.OPEN:
                return _replayed_review(contest, reviewer_id, verdict, why, new_principal_minor)
            offer = self._visible_offer(conn, caller, offer_id)
            done, decision = self._apply_review(
                conn, contest, offer, reviewer_id, verdict, why, new_principal_minor
            )
            self._stage(uow, [decision])  # logged if and only if the review takes effect
        self._publish([decision])
        return done

    def _apply_review(
        self,
        conn: Connection,
        contest: Contest,
        offer: Offer,
        reviewer_id: str,
        verdict: ContestStatus,
        why: str,
        new_principal: int | None,
    ) -> tuple[Contest, Decision]:
        now = self._now()
        policy = st.load_policy(conn, offer.lender_id, offer.currency, offer.policy_version)
        assert policy is not None, "an offer's policy version is never deleted"
        overturned = verdict is ContestStatus.OVERTURNED
        new_offer_id = offer.offer_id + REVIEW_SUFFIX if overturned else None
        decision = make_decision(
            DECISION_KIND,
            model_version=f"review:{reviewer_id}",
            outcome=verdict.value,
            score=None,
            reasons=[why],
            inputs={
                "context": "lending",
                "review_of": offer.offer_id,
                "original_decision": offer.log_id,
                "reviewer": reviewer_id,
                "new_offer_id": new_offer_id,
                "new_principal_minor": new_principal,
            },
            clock=self.clock,
        )
        if overturned:
            assert new_principal is not None
            self._overturn(
                conn, offer, policy, reviewer_id, why, new_principal, decision.decision_id
            )
        elif offer.outcome is OfferOutcome.OFFER:
            # The decision stands; the merchant gets the full acceptance window again.
            conn.execute(
                sa.update(st.offers)
                .where(st.offers.c.offer_id == offer.offer_id)
                .values(
                    state=OfferState.OPEN.value,
                    expires_at=now + policy.offer_valid_days * NS_PER_DAY,
                )
            )
        values = {
            "status": verdict.value,
            "reviewer_id": reviewer_id,
            "reviewed_at": now,
            "review_reason": why,
            "new_principal_minor": new_principal,
            "new_offer_id": new_offer_id,
            "log_id": decision.decision_id,
        }
        conn.execute(
            sa.update(st.contests).where(st.contests.c.offer_id == offer.offer_id).values(**values)
        )
        loaded = st.load_contest(conn, offer.offer_id)
        assert loaded is not None
        return loaded, decision

    def _overturn(
        self,
        conn: Connection,
        offer: Offer,
        policy: CreditPolicy,
        reviewer_id: str,
        why: str,
        principal: int,
        log_id: str,
    ) -> None:
        """The new offer ``<offer_id>-review``, made by the review decision ``log_id``."""
        cur = offer.currency
        if not policy.limit_min_minor <= principal <= policy.limit_max_minor:
            raise InvalidLendingInput(
                f"the new principal must be within the policy's loan sizes "
                f"{money_text(policy.limit_min_minor, cur)} to "
                f"{money_text(policy.limit_max_minor, cur)}",
                field="new_principal_minor",
            )
        if offer.outcome is OfferOutcome.OFFER and principal == offer.principal_minor:
            raise InvalidLendingInput(
                "the new principal equals the offer's: uphold the decision instead",
                field="new_principal_minor",
            )
        now = self._now()
        fee = fee_for(principal, policy.fee_bps)
        new = Offer(
            offer_id=offer.offer_id + REVIEW_SUFFIX,
            lender_id=offer.lender_id,
            merchant_id=offer.merchant_id,
            currency=cur,
            outcome=OfferOutcome.OFFER,
            state=OfferState.OPEN,
            limit_minor=principal,
            principal_minor=principal,
            fee_minor=fee,
            terms=offer.terms,
            reasons=review_reasons(policy, offer, principal, fee, reviewer_id, why),
            features=offer.features,
            history=offer.history,
            policy_version=offer.policy_version,
            model_version=f"review:{reviewer_id}",
            score=None,
            created_at_ns=now,
            expires_at_ns=now + policy.offer_valid_days * NS_PER_DAY,
            requested_by=reviewer_id,
            origin="review",
            supersedes=offer.offer_id,
            log_id=log_id,
        )
        conn.execute(sa.insert(st.offers).values(**st.offer_values(new)))
        conn.execute(
            sa.update(st.offers)
            .where(st.offers.c.offer_id == offer.offer_id)
            .values(state=OfferState.SUPERSEDED.value)
        )

    # ------------------------------------------------------------------ the book
    def loan_book(self, caller: str, currency: str) -> dict[str, Any]:
        """A lender's book in a currency, reconciled with the ledger: what its loans owe (sum
        of their receivables) must equal its funding account's balance plus its fee income."""
        code = check_currency(currency)
        with read_connection(self.engine) as conn:
            try:
                _, funding, fees = st.load_lender_accounts(conn, caller, code)
            except KeyError:
                raise PolicyNotFound(f"lender {caller!r} has no {code} loan book") from None
            loans = self._load_loans(
                conn, sa.and_(st.loans.c.lender_id == caller, st.loans.c.currency == code)
            )
            accounts = {a.id: a for a in self.ledger.store.load_accounts(conn, [funding, fees])}
        funding_balance = accounts[funding].balance_credit_normal
        fee_income = accounts[fees].balance_credit_normal
        owed = sum(loan.outstanding_minor for loan in loans)
        by_state = {s.value: 0 for s in LoanState}
        for loan in loans:
            by_state[loan.state.value] += 1
        return {
            "lender_id": caller,
            "currency": code,
            "loans": len(loans),
            "by_state": by_state,
            "principal_minor": sum(loan.principal_minor for loan in loans),
            "fees_minor": sum(loan.fee_minor for loan in loans),
            "repaid_minor": sum(loan.repaid_minor for loan in loans),
            "outstanding_minor": owed,
            "funding_balance_minor": funding_balance,
            "fee_income_minor": fee_income,
            "reconciled": owed == funding_balance + fee_income,
        }


def split_parts(payout_minor: int, loans: Sequence[Loan]) -> list[int]:
    return split_withholding(
        payout_minor, [(loan.terms.repayment_share_bps, loan.outstanding_minor) for loan in loans]
    )


def _replayed_review(
    contest: Contest,
    reviewer_id: str,
    verdict: ContestStatus,
    why: str,
    new_principal: int | None,
) -> Contest:
    same = (
        contest.reviewer_id,
        contest.status,
        contest.review_reason,
        contest.new_principal_minor,
    ) == (reviewer_id, verdict, why, new_principal)
    if not same:
        raise ContestClosed(
            f"the contest of {contest.offer_id!r} was already reviewed "
            f"({contest.status.value} by {contest.reviewer_id})"
        )
    return contest


def _log_inputs(
    offer_id: str,
    policy: CreditPolicy,
    history: MerchantHistory,
    features: Features,
    principal: int,
) -> dict[str, Any]:
    """What the decision log keeps: the features and policy in the clear (they explain the
    outcome); the merchant and its history only as SHA-256 digests (the full history stays in
    lending's own tables, seen only by the merchant and its lender)."""
    return {
        "context": "lending",
        "offer_id": offer_id,
        "lender_id": policy.lender_id,
        "currency": policy.currency,
        "policy_version": policy.version,
        "merchant_sha256": sha256_text(history.merchant_id),
        "history_sha256": sha256_text(st.dumps(history.to_dict())),
        "features": features.to_dict(),
        "principal_minor": principal,
    }


E = TypeVar("E", bound=StrEnum)


def _enum(kind: type[E], value: object, what: str) -> E:
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return kind(value)
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise InvalidLendingInput(
            f"{what} must be one of {choices}, got {value!r}", field=what
        ) from None
