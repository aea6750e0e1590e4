"""What the scheme's operator watches, read on demand (a monitoring system's scrape, every
15-60 s), never on the payment path: each participant's position against its net debit cap
(a bank about to be refused for its cap, before its customers are), the transfers a person
must review and how long the oldest has waited, what escrow holds, the settlement window
open and those closed but not settled, and the notices a participant's endpoint has not
taken. Every query reads the rows open now through the partial indexes of ``store.py`` (or
a table as small as the participants), so a scrape costs the same after a billion payments
as after one."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from entrepot.kernel.clock import NS_PER_S
from entrepot.payments import store as st
from entrepot.payments.model import ParticipantKind
from entrepot.payments.services import PaymentScheme
from entrepot.storage.engine import read_connection


@dataclass(frozen=True, slots=True)
class PositionGauge:
    """One participant's position in one currency, in minor units (as ``liquidity``)."""

    participant_id: str
    kind: ParticipantKind
    currency: str
    active: bool
    settlement_balance_minor: int
    net_debit_cap_minor: int
    position_available_minor: int  # what it may still send: cap + received - sent - reserved
    position_reserved_minor: int
    net_position_minor: int  # received - sent since the last settlement (negative: it owes)

    @property
    def cap_used(self) -> float | None:
        """How much of its net debit cap the participant uses now (sent and reserved beyond
        what it received), 0 to 1; None without a cap (it can send only what it received)."""
        if self.net_debit_cap_minor <= 0:
            return None
        used = self.net_debit_cap_minor - self.position_available_minor
        return min(1.0, max(0.0, used / self.net_debit_cap_minor))


@dataclass(frozen=True, slots=True)
class SchemeSnapshot:
    at_ns: int
    positions: tuple[PositionGauge, ...]
    transfers_open: dict[str, int]  # RESERVED (awaiting the payee), HOLD (awaiting review),
    # not expired
    oldest_hold_age_s: float | None  # how long the longest-waiting review has waited
    escrows_held: dict[str, tuple[int, int]]  # currency -> (escrows, minor units held)
    window_open_id: int | None
    window_open_age_s: float | None
    windows_unsettled: int  # closed, waiting to be settled
    notices_pending: dict[str, int]  # participant -> notices its endpoint has not taken
    oldest_notice_age_s: dict[str, float]  # participant -> age of its oldest such notice
    notices_abandoned: dict[str, int]  # participant -> notices the dispatcher gave up on


def _age_s(now_ns: int, then_ns: int | None) -> float | None:
    return None if then_ns is None else max(0.0, (now_ns - int(then_ns)) / NS_PER_S)


def _positions(scheme: PaymentScheme, conn: sa.Connection) -> list[PositionGauge]:
    """Each participant's position in each of its currencies, read in ``conn``'s snapshot."""
    rows = conn.execute(sa.select(st.participants.c.id).order_by(st.participants.c.id)).all()
    participants = [scheme._participant(conn, r[0]) for r in rows]
    wanted = [
        (p, pc)
        for p in participants
        for pc in sorted(p.currencies.values(), key=lambda c: c.currency)
    ]
    ids = [a for _, pc in wanted for a in (pc.position_account, pc.settlement_account)]
    accounts = {a.id: a for a in scheme.ledger.lookup_accounts(ids, snapshot=conn)}
    positions = []
    for p, pc in wanted:
        pos, sett = accounts[pc.position_account], accounts[pc.settlement_account]
        positions.append(
            PositionGauge(
                p.id,
                p.kind,
                pc.currency,
                p.active,
                sett.credits_posted - sett.debits_posted,
                pc.net_debit_cap_minor,
                pos.credits_posted - pos.debits_posted - pos.debits_pending,
                pos.debits_pending,
                pos.credits_posted - pos.debits_posted - pc.net_debit_cap_minor,
            )
        )
    return positions


def _escrows_held(
    scheme: PaymentScheme, conn: sa.Connection, now: int
) -> dict[str, tuple[int, int]]:
    """Per currency, the escrows held at ``now`` and what they hold, as reading each shows it
    (``get_escrow``): one past its deadline is decided, whether or not the deadline pass has
    recorded it, unless its deadline cannot act (its recipient cannot receive: it stays the
    controller's). It was counted held until the pass. Those past it are the few the next
    pass takes; both queries read the held escrows' partial index on their deadline."""
    e = st.escrows.c
    rows = conn.execute(
        sa.select(e.currency, sa.func.count(), sa.func.sum(e.amount - e.released - e.refunded))
        .where(sa.text(st.HELD_ESCROW), e.deadline > now)
        .group_by(e.currency)
    ).all()
    held = {cur: (int(n), int(amount or 0)) for cur, n, amount in rows}
    due = conn.execute(
        sa.select(st.escrows).where(sa.text(st.HELD_ESCROW), e.deadline <= now)
    ).all()
    for row in due:
        escrow = st.escrow_from_row(row)
        if scheme._deadline_can_act(conn, escrow):
            continue
        n, amount = held.get(escrow.currency, (0, 0))
        held[escrow.currency] = (n + 1, amount + escrow.held_minor)
    return held


def scheme_snapshot(scheme: PaymentScheme) -> SchemeSnapshot:
    """The scheme as it is now: its tables and the ledger's balances in one read snapshot
    (the balances read in one of their own, a cap change or a settlement committed in between
    made a net position of what the cap moved)."""
    now = scheme.clock.now_ns()
    t, w, o = st.transfers.c, st.windows.c, st.outbox.c
    with read_connection(scheme.engine) as conn:
        positions = _positions(scheme, conn)
        open_rows = conn.execute(
            sa.select(t.state, sa.func.count(), sa.func.min(t.updated_at))
            # past its expiry it is no longer open, whether or not the deadline pass has run
            .where(sa.text(st.OPEN_TRANSFER), t.expires_at > now)
            .group_by(t.state)
        ).all()
        held = _escrows_held(scheme, conn, now)
        window = st.OPEN_WINDOW.first(conn)
        unsettled = conn.execute(
            sa.select(sa.func.count()).select_from(st.windows).where(w.state == "CLOSED")
        ).scalar_one()
        notices = conn.execute(
            sa.select(
                o.participant_id,
                o.abandoned_at.is_(None),
                sa.func.count(),
                sa.func.min(o.created_at),
            )
            .where(o.delivered_at.is_(None))
            .group_by(o.participant_id, o.abandoned_at.is_(None))
        ).all()
    open_counts = {"RESERVED": 0, "HOLD": 0}
    oldest_hold = None
    for state, count, since in open_rows:
        open_counts[state] = int(count)
        if state == "HOLD":
            oldest_hold = _age_s(now, since)
    pending: dict[str, int] = {}
    oldest: dict[str, float] = {}
    abandoned: dict[str, int] = {}
    for pid, live, count, since in notices:
        if live:
            pending[pid] = int(count)
            oldest[pid] = _age_s(now, since) or 0.0
        else:
            abandoned[pid] = int(count)
    return SchemeSnapshot(
        at_ns=now,
        positions=tuple(positions),
        transfers_open=open_counts,
        oldest_hold_age_s=oldest_hold,
        escrows_held=held,
        window_open_id=None if window is None else int(window.id),
        window_open_age_s=None if window is None else _age_s(now, window.opened_at),
        windows_unsettled=int(unsettled),
        notices_pending=pending,
        oldest_notice_age_s=oldest,
        notices_abandoned=abandoned,
    )


__all__ = ["PositionGauge", "SchemeSnapshot", "scheme_snapshot"]
