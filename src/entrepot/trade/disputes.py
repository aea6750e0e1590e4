"""Disputes and online arbitration, part of the trade network's service.

The ladder (UNCITRAL's technical notes: negotiation -> facilitated settlement -> final stage,
with eBay's and PayPal's clocks): the buyer opens a dispute (not received, while the parcel is
on its way; not as described, within the dispute window after delivery); the merchant answers
within 3 days or the buyer is refunded; both sides negotiate with evidence and may settle on a
refund; after 10 days, or when either side asks, the case goes to an arbitrator of the hub's
panel, who rules within 5 days (or the case passes to the next panel member); either side may
appeal once within 5 days to another panel member, whose ruling is final. The final ruling
moves the escrow (release, refund or split, to the minor unit). Every step is recorded with
who and when.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection

from entrepot.payments.errors import PaymentError
from entrepot.payments.keyed import TRADE_DISPUTE
from entrepot.storage.engine import read_connection
from entrepot.trade import store as st
from entrepot.trade.errors import (
    AlreadyExists,
    DisputeNotFound,
    Forbidden,
    IdConflict,
    InvalidTradeInput,
    InvalidTransition,
    TradeError,
    WindowClosed,
)
from entrepot.trade.model import (
    DAY_NS,
    Dispute,
    DisputeReason,
    DisputeState,
    Order,
    OrderState,
    Outcome,
    Role,
    Ruling,
    check_id,
    check_ruling,
    check_state_filter,
    check_text,
    parse_principal,
)

RESPOND_DAYS = 3
NEGOTIATE_DAYS = 10
RULE_DAYS = 5
APPEAL_DAYS = 5
TEXT_MAX = 2_000
SYSTEM = "scheme"

if TYPE_CHECKING:
    from entrepot.storage.uow import UnitOfWork
    from entrepot.trade.model import Hub


class DisputeDesk:
    """Mixed into TradeNetwork, whose plumbing it uses."""

    if TYPE_CHECKING:

        def _write(self, result: str = "") -> AbstractContextManager[UnitOfWork]: ...
        def _now(self) -> int: ...
        def _order(self, conn: Connection, order_id: str) -> Order: ...
        def _hub(self, conn: Connection, hub_id: str) -> Hub: ...
        def _hub_of_caller(self, conn: Connection, caller: str) -> Hub: ...
        def _event(
            self, conn: Connection, order_id: str, kind: str, actor: str, **detail: object
        ) -> None: ...
        def _set_state(self, conn: Connection, order: Order, **values: object) -> Order: ...
        def _settle(
            self, conn: Connection, order: Order, refund_minor: int, actor: str, kind: str
        ) -> Order: ...
        def _after(self, order_id: str) -> None: ...
        def _window_closes(self, conn: Connection, order: Order) -> int: ...

        engine: Any

    # ------------------------------------------------------------------ reading
    def _dispute(self, conn: Connection, dispute_id: str) -> Dispute:
        row = conn.execute(sa.select(st.disputes).where(st.disputes.c.id == dispute_id)).first()
        if row is None:
            raise DisputeNotFound(f"dispute {dispute_id!r} does not exist", field="dispute")
        return st.dispute_from_row(row)

    def _arbitrates(self, conn: Connection, arbitrator: str, order_id: str) -> bool:
        row = conn.execute(
            sa.select(st.disputes.c.arbitrator, st.disputes.c.appeal_arbitrator).where(
                st.disputes.c.order_id == order_id
            )
        ).first()
        return row is not None and arbitrator in (row[0], row[1])

    def _party_of(self, conn: Connection, caller: str, order: Order) -> str:
        """'buyer' or 'merchant' for the order's two sides; Forbidden for anyone else."""
        role, actor = parse_principal(caller)
        if role is Role.BUYER and actor == order.buyer_id:
            return "buyer"
        if role is Role.MERCHANT and actor == order.merchant_id:
            return "merchant"
        # not naming the order: a dispute's caller may know only the dispute's id
        raise Forbidden("only the order's buyer or merchant may do this")

    def _check_sees_dispute(self, conn: Connection, caller: str, d: Dispute, o: Order) -> None:
        role, actor = parse_principal(caller)
        if role in (Role.BUYER, Role.MERCHANT):
            self._party_of(conn, caller, o)
            return
        if role is Role.ARBITRATOR and actor in (d.arbitrator, d.appeal_arbitrator):
            return
        if role is Role.HUB and self._hub_of_caller(conn, caller).id == d.hub_id:
            return
        raise Forbidden(f"dispute {d.id} is not yours to see")

    def get_dispute(self, caller: str, dispute_id: str) -> Dispute:
        with read_connection(self.engine) as conn:
            d = self._dispute(conn, dispute_id)
            self._check_sees_dispute(conn, caller, d, self._order(conn, d.order_id))
        return d

    def dispute_events(self, caller: str, dispute_id: str) -> list[dict[str, object]]:
        with read_connection(self.engine) as conn:
            d = self._dispute(conn, dispute_id)
            self._check_sees_dispute(conn, caller, d, self._order(conn, d.order_id))
            rows = conn.execute(
                sa.select(st.dispute_events)
                .where(st.dispute_events.c.dispute_id == dispute_id)
                .order_by(st.dispute_events.c.seq)
            ).all()
        return [
            {"seq": r.seq, "kind": r.kind, "actor": r.actor, "at_ns": r.at, "detail": r.detail}
            for r in rows
        ]

    def list_disputes(self, caller: str, state: str | None = None) -> list[Dispute]:
        """An arbitrator's cases, a hub's disputes, or a buyer's or merchant's own."""
        role, actor = parse_principal(caller)
        state = check_state_filter(state, DisputeState, "dispute state")
        q = sa.select(st.disputes)
        with read_connection(self.engine) as conn:
            if role is Role.ARBITRATOR:
                q = q.where(
                    (st.disputes.c.arbitrator == actor) | (st.disputes.c.appeal_arbitrator == actor)
                )
            elif role is Role.HUB:
                q = q.where(st.disputes.c.hub_id == self._hub_of_caller(conn, caller).id)
            else:
                side = st.orders.c.buyer_id if role is Role.BUYER else st.orders.c.merchant_id
                q = q.join(st.orders, st.orders.c.id == st.disputes.c.order_id).where(side == actor)
            if state is not None:
                q = q.where(st.disputes.c.state == state)
            rows = conn.execute(q.order_by(st.disputes.c.id)).all()
        return [st.dispute_from_row(r) for r in rows]

    # ------------------------------------------------------------------ recording
    def _record(
        self, conn: Connection, dispute_id: str, kind: str, actor: str, detail: str = ""
    ) -> None:
        conn.execute(
            sa.insert(st.dispute_events).values(
                dispute_id=dispute_id,
                seq=st.next_seq(conn, st.dispute_events, "dispute_id", dispute_id),
                kind=kind,
                actor=actor,
                at=self._now(),
                detail=detail[:TEXT_MAX],
            )
        )

    def _save(self, conn: Connection, d: Dispute) -> Dispute:
        values = st.dispute_values(d)
        conn.execute(sa.update(st.disputes).where(st.disputes.c.id == d.id).values(**values))
        return d

    # ------------------------------------------------------------------ the buyer opens
    def open_dispute(
        self, caller: str, dispute_id: str, order_id: str, reason: DisputeReason | str, claim: str
    ) -> Dispute:
        """Open a dispute: not received (parcel handed over, not delivered) or not as described
        (delivered, within the dispute window). The escrow stays held until it ends."""
        check_id(dispute_id, "dispute")
        claim = check_text(claim, "claim", TEXT_MAX)
        try:
            why = DisputeReason(reason)
        except ValueError:
            raise InvalidTradeInput(
                "reason must be not_received or not_as_described", field="reason"
            ) from None
        with self._write(f"{TRADE_DISPUTE}:{dispute_id}") as uow:
            conn = uow.connection
            row = conn.execute(sa.select(st.disputes).where(st.disputes.c.id == dispute_id)).first()
            if row is not None:
                # a resend (ADR 0009) is answered with the dispute as it is now, even after
                # its window closed; another request with the id is told only that it is taken
                found = st.dispute_from_row(row)
                if (found.order_id, found.reason, found.opened_by, found.claim) != (
                    order_id,
                    why,
                    caller,
                    claim,
                ):
                    raise IdConflict(
                        f"dispute {dispute_id} exists, created by a different request",
                        field="disputeId",
                    )
                return found
            order = self._order(conn, order_id)
            if self._party_of(conn, caller, order) != "buyer":
                raise Forbidden("only the buyer opens a dispute")
            if conn.execute(
                sa.select(st.disputes.c.id).where(st.disputes.c.order_id == order_id)
            ).first():
                raise AlreadyExists(f"order {order_id} already has a dispute (one per order)")
            self._check_window(conn, order, why)
            now = self._now()
            d = Dispute(
                dispute_id,
                order.id,
                order.hub_id,
                why,
                DisputeState.NEGOTIATION,
                caller,
                claim,
                None,
                None,
                None,
                None,
                None,
                now + RESPOND_DAYS * DAY_NS,
                now + NEGOTIATE_DAYS * DAY_NS,
                None,
                None,
                None,
                None,
                now,
            )
            conn.execute(sa.insert(st.disputes).values(**st.dispute_values(d)))
            self._record(conn, d.id, "opened", caller, f"{why.value}: {claim}")
            self._event(conn, order.id, "disputed", caller, dispute=d.id, reason=why.value)
            self._set_state(conn, order)
        return d

    def _check_window(self, conn: Connection, order: Order, why: DisputeReason) -> None:
        """Whether the buyer may still open a dispute for ``why``, by the clocks as they read
        now, whether or not the deadline pass has acted on them yet."""
        now = self._now()
        if order.state in (OrderState.COMPLETED, OrderState.CANCELLED, OrderState.REFUNDED):
            raise WindowClosed(
                f"order {order.id} is {order.state.value}: its dispute window has closed"
            )
        if why is DisputeReason.NOT_RECEIVED:
            if order.state is not OrderState.SHIPPED:
                raise InvalidTransition(
                    f"order {order.id} is {order.state.value}: 'not received' is for a parcel "
                    "handed over and not delivered (before hand-over, cancel instead)"
                )
            if now >= order.deliver_by_ns:
                # the deadline refunds it (the pass's rule, which a delivery scan now meets
                # too): a dispute opened before the pass ran took the order out of SHIPPED,
                # and a late scan then paid the merchant the refund the buyer was owed
                raise WindowClosed(
                    f"order {order.id} was not delivered by its delivery deadline: it is "
                    "refunded without a dispute"
                )
            return
        if order.state not in (OrderState.DELIVERED, OrderState.RETURN_REQUESTED):
            raise InvalidTransition(
                f"order {order.id} is {order.state.value}: 'not as described' follows delivery"
            )
        if (
            order.state is OrderState.RETURN_REQUESTED
            and order.release_at_ns is not None
            and now >= order.release_at_ns
        ):
            # the merchant's time to answer is over: its silence accepted the return, which
            # the pass refunds; a dispute opened before the pass ran took the order out of
            # RETURN_REQUESTED and the refund was lost (found by a review)
            raise WindowClosed(
                f"the merchant did not answer the return of order {order.id} in time: the "
                "return is accepted and refunded without a dispute"
            )
        # from delivery, whatever ``release_at`` says: while a return is asked for, it holds
        # the merchant's time to answer, which a dispute opened then stretched the window by
        closes = (
            self._window_closes(conn, order)
            if order.state is OrderState.RETURN_REQUESTED
            else order.release_at_ns
        )
        if closes is not None and now >= closes:
            raise WindowClosed(f"the dispute window of order {order.id} has closed")

    # ------------------------------------------------------------------ negotiation
    def add_evidence(self, caller: str, dispute_id: str, text: str) -> Dispute:
        """A statement, document reference or photo link from either side."""
        text = check_text(text, "evidence", TEXT_MAX)
        with self._write() as uow:
            conn = uow.connection
            d = self._dispute(conn, dispute_id)
            side = self._party_of(conn, caller, self._order(conn, d.order_id))
            if d.state is DisputeState.RESOLVED:
                raise InvalidTransition(f"dispute {dispute_id} is resolved")
            self._check_answer_in_time(d, side)
            self._record(conn, d.id, "evidence", caller, text)
            if side == "merchant" and d.respond_by_ns is not None:
                d = self._save(conn, _with(d, respond_by_ns=None))
        return d

    def offer_settlement(self, caller: str, dispute_id: str, refund_minor: int) -> Dispute:
        """Either side proposes a refund to the buyer (0 .. all of the goods escrow)."""
        with self._write() as uow:
            conn = uow.connection
            d = self._dispute(conn, dispute_id)
            order = self._order(conn, d.order_id)
            side = self._party_of(conn, caller, order)
            if d.state is not DisputeState.NEGOTIATION:
                raise InvalidTransition(f"dispute {dispute_id} is in {d.state.value}")
            self._check_answer_in_time(d, side)
            self._check_negotiating(d)
            if type(refund_minor) is not int or not 0 <= refund_minor <= order.goods_escrow_minor:
                raise InvalidTradeInput(
                    f"a settlement refunds 0..{order.goods_escrow_minor}", field="refundMinor"
                )
            changes: dict[str, Any] = {"offer_refund_minor": refund_minor, "offer_by": caller}
            if side == "merchant":
                changes["respond_by_ns"] = None
            d = self._save(conn, _with(d, **changes))
            self._record(conn, d.id, "offer", caller, f"refund {refund_minor} {order.currency}")
        return d

    def accept_settlement(
        self, caller: str, dispute_id: str, refund_minor: int | None = None
    ) -> Dispute:
        """The other side accepts the open offer: the escrow moves as agreed; final. Naming
        the refund accepted (``refund_minor``) makes sure the offer did not change meanwhile."""
        with self._write() as uow:
            conn = uow.connection
            d = self._dispute(conn, dispute_id)
            order = self._order(conn, d.order_id)
            side = self._party_of(conn, caller, order)
            if d.state is not DisputeState.NEGOTIATION or d.offer_refund_minor is None:
                raise InvalidTransition(f"dispute {dispute_id} has no open offer")
            if d.offer_by == caller:
                raise InvalidTransition("the other side accepts an offer, not its maker")
            # an acceptance is an answer too: after its 3 days the merchant's took back the
            # buyer's full refund by accepting the buyer's smaller offer
            self._check_answer_in_time(d, side)
            self._check_negotiating(d)
            if refund_minor is not None and refund_minor != d.offer_refund_minor:
                raise InvalidTransition(
                    f"the offer is now a refund of {d.offer_refund_minor}, not {refund_minor}",
                    field="refundMinor",
                )
            self._record(conn, d.id, "settled", caller, f"refund {d.offer_refund_minor}")
            d = self._execute(conn, d, order, d.offer_refund_minor, caller)
        self._after(d.order_id)
        return d

    def escalate(self, caller: str, dispute_id: str) -> Dispute:
        """Either side takes the case to the hub's arbitrator before negotiation ends."""
        with self._write() as uow:
            conn = uow.connection
            d = self._dispute(conn, dispute_id)
            side = self._party_of(conn, caller, self._order(conn, d.order_id))
            if d.state is not DisputeState.NEGOTIATION:
                raise InvalidTransition(f"dispute {dispute_id} is in {d.state.value}")
            self._check_answer_in_time(d, side)
            d = self._to_arbitration(conn, d, caller)
        return d

    def _check_answer_in_time(self, d: Dispute, side: str) -> None:
        """The merchant's first answer (evidence, an offer, escalation) comes within its 3
        days: after them the buyer's refund is due, and a late answer clearing the clock took
        it back whenever the deadline pass had not paid it yet (not run, or the wallet
        suspended, which could last)."""
        if side == "merchant" and d.respond_by_ns is not None and self._now() >= d.respond_by_ns:
            raise WindowClosed(
                f"the merchant's time to answer dispute {d.id} has passed: the buyer is refunded"
            )

    def _check_negotiating(self, d: Dispute) -> None:
        """Offers and their acceptance come within the negotiation's 10 days: after them the
        case is the arbitrator's, whether or not the deadline pass has handed it on (an
        acceptance settled it or was refused by whether the pass had run)."""
        if self._now() >= d.negotiate_until_ns:
            raise WindowClosed(
                f"the negotiation of dispute {d.id} has ended: the case goes to arbitration"
            )

    def _to_arbitration(self, conn: Connection, d: Dispute, actor: str) -> Dispute:
        panel = self._hub(conn, d.hub_id).arbitrators
        pick = panel[int(hashlib.sha256(d.id.encode()).hexdigest(), 16) % len(panel)]
        d = self._save(
            conn,
            _with(
                d,
                state=DisputeState.ARBITRATION,
                arbitrator=pick,
                rule_by_ns=self._now() + RULE_DAYS * DAY_NS,
                respond_by_ns=None,
            ),
        )
        self._record(conn, d.id, "escalated", actor, f"assigned to arbitrator {pick}")
        return d

    # ------------------------------------------------------------------ arbitration
    def rule(
        self, caller: str, dispute_id: str, outcome: Outcome | str, refund_minor: int, reason: str
    ) -> Dispute:
        """The assigned arbitrator rules. At first instance the ruling waits out the appeal
        window; on appeal it is final and the escrow moves at once."""
        reason = check_text(reason, "reason", TEXT_MAX)
        with self._write() as uow:
            conn = uow.connection
            d = self._dispute(conn, dispute_id)
            role, actor = parse_principal(caller)
            expected = d.appeal_arbitrator if d.state is DisputeState.APPEAL else d.arbitrator
            if role is not Role.ARBITRATOR or actor != expected:
                # not naming the arbitrator: who sits on a case is its parties' and hub's;
                # asked first, or anyone was told the stage of a case not theirs (a review)
                raise Forbidden(f"only the assigned arbitrator rules on dispute {dispute_id}")
            if d.state not in (DisputeState.ARBITRATION, DisputeState.APPEAL):
                raise InvalidTransition(f"dispute {dispute_id} is in {d.state.value}")
            if d.rule_by_ns is not None and self._now() >= d.rule_by_ns:
                # the case passes to the next panel member: a ruling before the deadline pass
                # had handed it on decided a case that was no longer the arbitrator's
                raise WindowClosed(
                    f"the time to rule on dispute {dispute_id} has passed: the case goes to "
                    "the next panel member"
                )
            order = self._order(conn, d.order_id)
            kind, refund = check_ruling(str(outcome), refund_minor, order.goods_escrow_minor)
            ruling = Ruling(kind, refund, actor, reason, self._now())
            detail = f"{kind.value}: refund {refund} {order.currency}; {reason}"
            if d.state is DisputeState.ARBITRATION:
                d = self._save(
                    conn,
                    _with(
                        d,
                        state=DisputeState.RULED,
                        ruling=ruling,
                        rule_by_ns=None,
                        appeal_until_ns=self._now() + APPEAL_DAYS * DAY_NS,
                    ),
                )
                self._record(conn, d.id, "ruled", caller, detail)
                return d
            d = self._save(conn, _with(d, appeal_ruling=ruling, rule_by_ns=None))
            self._record(conn, d.id, "appeal_ruled", caller, detail)
            d = self._execute(conn, d, order, refund, caller)
        self._after(d.order_id)
        return d

    def appeal(self, caller: str, dispute_id: str, grounds: str) -> Dispute:
        """Either side appeals a first-instance ruling once, within the appeal window."""
        grounds = check_text(grounds, "grounds", TEXT_MAX)
        with self._write() as uow:
            conn = uow.connection
            d = self._dispute(conn, dispute_id)
            self._party_of(conn, caller, self._order(conn, d.order_id))
            if d.state is not DisputeState.RULED:
                raise InvalidTransition(
                    f"dispute {dispute_id} is in {d.state.value}: only a first-instance ruling "
                    "can be appealed, once"
                )
            assert d.appeal_until_ns is not None
            if self._now() >= d.appeal_until_ns:
                raise WindowClosed(f"the appeal window of dispute {dispute_id} has closed")
            panel = [a for a in self._hub(conn, d.hub_id).arbitrators if a != d.arbitrator]
            d = self._save(
                conn,
                _with(
                    d,
                    state=DisputeState.APPEAL,
                    appealed_by=caller,
                    appeal_arbitrator=panel[0],
                    appeal_until_ns=None,
                    rule_by_ns=self._now() + RULE_DAYS * DAY_NS,
                ),
            )
            self._record(conn, d.id, "appealed", caller, f"to {panel[0]}: {grounds}")
        return d

    def _execute(
        self, conn: Connection, d: Dispute, order: Order, refund_minor: int, actor: str
    ) -> Dispute:
        order = self._order(conn, order.id)
        kind = (
            "released"
            if refund_minor == 0
            else "refunded"
            if refund_minor == order.goods_escrow_minor
            else "split"
        )
        self._settle(conn, order, refund_minor, actor, kind)
        d = self._save(conn, _with(d, state=DisputeState.RESOLVED, rule_by_ns=None))
        self._record(conn, d.id, "resolved", actor, f"{kind}: refund {refund_minor}")
        return d

    # ------------------------------------------------------------------ deadlines
    def process_dispute_deadlines(self) -> dict[str, int]:
        now = self._now()
        counts = {
            "disputes_unanswered": 0,
            "disputes_escalated": 0,
            "disputes_reassigned": 0,
            "rulings_final": 0,
        }
        counts["disputes_failed"] = 0
        for d in self._open_disputes():
            try:
                with self._write() as uow:
                    conn = uow.connection
                    d = self._dispute(conn, d.id)  # re-read under the write lock
                    acted = self._deadline(conn, d, now)
            except (TradeError, PaymentError) as exc:  # one case must not stop the others
                with self._write() as uow:
                    conn = uow.connection
                    detail = str(exc)[:TEXT_MAX]
                    # once while it keeps failing for the same reason (the pass runs every 30 s)
                    if not st.last_event_is(
                        conn, st.dispute_events, "dispute_id", d.id, "deadline_failed", detail
                    ):
                        self._record(conn, d.id, "deadline_failed", SYSTEM, detail)
                counts["disputes_failed"] += 1
                continue
            if acted:
                counts[acted] += 1
                self._after(d.order_id)
        return counts

    def _open_disputes(self) -> Iterator[Dispute]:
        with read_connection(self.engine) as conn:
            rows = conn.execute(
                sa.select(st.disputes)
                .where(sa.text(st.OPEN_DISPUTE))  # through its partial index (store.py)
                .order_by(st.disputes.c.id)
            ).all()
        return iter([st.dispute_from_row(r) for r in rows])

    def _deadline(self, conn: Connection, d: Dispute, now: int) -> str | None:
        order = self._order(conn, d.order_id)
        if d.state is DisputeState.NEGOTIATION:
            if d.respond_by_ns is not None and now >= d.respond_by_ns:
                self._record(conn, d.id, "unanswered", SYSTEM, "the merchant did not answer")
                self._execute(conn, d, order, order.goods_escrow_minor, SYSTEM)
                return "disputes_unanswered"
            if now >= d.negotiate_until_ns:
                self._to_arbitration(conn, d, SYSTEM)
                return "disputes_escalated"
        elif d.state in (DisputeState.ARBITRATION, DisputeState.APPEAL):
            if d.rule_by_ns is not None and now >= d.rule_by_ns:
                self._reassign(conn, d)
                return "disputes_reassigned"
        elif d.state is DisputeState.RULED:
            assert d.appeal_until_ns is not None and d.ruling is not None
            if now >= d.appeal_until_ns:
                self._record(conn, d.id, "final", SYSTEM, "no appeal within the window")
                self._execute(conn, d, order, d.ruling.refund_minor, SYSTEM)
                return "rulings_final"
        return None

    def _reassign(self, conn: Connection, d: Dispute) -> None:
        """A missed ruling deadline passes the case to the next panel member (never the
        first-instance arbitrator on appeal)."""
        panel = list(self._hub(conn, d.hub_id).arbitrators)
        appeal = d.state is DisputeState.APPEAL
        current = d.appeal_arbitrator if appeal else d.arbitrator
        assert current is not None
        # the members after the current one, in the panel's order and round again: the first
        # other member was always taken, so a case bounced between the panel's first two and
        # a third member never had it
        at = panel.index(current) + 1 if current in panel else 0
        turn = panel[at:] + panel[:at]
        others = [a for a in turn if a != current and (not appeal or a != d.arbitrator)]
        nxt = others[0] if others else current
        ev = st.dispute_events.c
        appealed_at = (  # the appeal's misses only: the first instance's are not its panel's
            sa.select(sa.func.coalesce(sa.func.max(ev.seq), -1))
            .where(ev.dispute_id == d.id, ev.kind == "appealed")
            .scalar_subquery()
        )
        missed = conn.execute(
            sa.select(sa.func.count())
            .select_from(st.dispute_events)
            .where(ev.dispute_id == d.id, ev.kind == "reassigned", ev.seq > appealed_at)
        ).scalar_one()
        if appeal and missed >= len(panel):
            # The appeal panel keeps missing its deadline: the first ruling stands, so the
            # escrow cannot outlive the trade's clocks.
            self._record(conn, d.id, "appeal_lapsed", SYSTEM, "no appeal ruling in time")
            assert d.ruling is not None
            self._execute(conn, d, self._order(conn, d.order_id), d.ruling.refund_minor, SYSTEM)
            return
        deadline = self._now() + RULE_DAYS * DAY_NS
        if appeal:
            d = _with(d, appeal_arbitrator=nxt, rule_by_ns=deadline)
        else:
            d = _with(d, arbitrator=nxt, rule_by_ns=deadline)
        self._save(conn, d)
        self._record(conn, d.id, "reassigned", SYSTEM, f"{current} missed the deadline -> {nxt}")


def _with(d: Dispute, **changes: Any) -> Dispute:
    from dataclasses import replace

    return replace(d, **changes)
