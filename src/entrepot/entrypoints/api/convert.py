"""Model -> response body conversions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, overload

from entrepot.entrypoints.api import schemas as s
from entrepot.kernel.clock import iso_utc
from entrepot.kernel.money import format_amount, get_currency, parse_amount
from entrepot.payments import (
    Escrow,
    FeeSchedule,
    FxRate,
    Participant,
    Party,
    PaymentTransfer,
    Quote,
    SettlementWindow,
)


@overload
def iso(ts_ns: int) -> str: ...


@overload
def iso(ts_ns: int | None) -> str | None: ...


def iso(ts_ns: int | None) -> str | None:
    return None if ts_ns is None else iso_utc(ts_ns)


def money(minor: int, currency: str) -> s.MoneyOut:
    return s.MoneyOut(amount=format_amount(minor, currency), currency=currency, minor=minor)


def decimal_text(value: Decimal) -> str:
    """A rate as a plain decimal: ``str`` gives ``1E-12`` for a small one."""
    return format(value, "f")


def camel(name: str) -> str:
    """A snake_case key as the API spells it (``tip_indicator`` -> ``tipIndicator``)."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def minor(m: s.MoneyIn) -> int:
    get_currency(m.currency)
    return parse_amount(m.amount, m.currency)


def fx_rate(fx: FxRate) -> s.FxRateOut:
    return s.FxRateOut(
        providerId=fx.provider_id,
        sourceCurrency=fx.source_currency,
        targetCurrency=fx.target_currency,
        rate=decimal_text(fx.rate),
        effectiveRate=decimal_text(fx.effective_rate),
        validUntil=iso(fx.valid_until_ns),
    )


def participant(p: Participant) -> s.ParticipantOut:
    return s.ParticipantOut(
        id=p.id,
        name=p.name,
        kind=p.kind.value,
        country=p.country,
        active=p.active,
        bic=p.bic,
        currencies=[
            s.ParticipantCurrencyOut(
                currency=c.currency,
                ledger=c.ledger,
                netDebitCap=money(c.net_debit_cap_minor, c.currency),
            )
            for c in sorted(p.currencies.values(), key=lambda c: c.currency)
        ],
    )


def party(p: Party) -> s.PartyOut:
    return s.PartyOut(
        partyIdType=p.alias_type.value,
        partyIdentifier=p.alias,
        fspId=p.participant_id,
        name=p.display_name,
        currency=p.currency,
        country=p.country,
    )


def quote(q: Quote) -> s.QuoteOut:
    return s.QuoteOut(
        quoteId=q.id,
        state=q.state.value,
        payer=q.payer_alias,
        payerFsp=q.payer_participant,
        payeeFsp=q.payee_participant,
        amountType=q.amount_type.value,
        sendAmount=money(q.source_amount_minor, q.source_currency),
        fee=money(q.fee_minor, q.source_currency),
        receiveAmount=money(q.target_amount_minor, q.target_currency),
        fxProvider=q.fx_provider,
        fxRate=decimal_text(q.fx_rate) if q.fx_rate is not None else None,
        expiration=iso(q.expires_at_ns) or "",
    )


def transfer(t: PaymentTransfer) -> s.TransferOut:
    return s.TransferOut(
        transferId=t.id,
        quoteId=t.quote_id,
        state=t.state.value,
        payerFsp=t.payer_participant,
        payeeFsp=t.payee_participant,
        sendAmount=money(t.source_amount_minor, t.source_currency),
        fee=money(t.fee_minor, t.source_currency),
        receiveAmount=money(t.target_amount_minor, t.target_currency),
        fxProvider=t.fx_provider,
        fxRate=decimal_text(t.fx_rate) if t.fx_rate is not None else None,
        expiration=iso(t.expires_at_ns) or "",
        settlementWindowId=t.window_id,
        reason=t.reason,
    )


def escrow(e: Escrow) -> s.EscrowOut:
    return s.EscrowOut(
        escrowId=e.id,
        state=e.state.value,
        payerFsp=e.payer_participant,
        payeeFsp=e.payee_participant,
        controller=e.controller,
        amount=money(e.amount_minor, e.currency),
        released=money(e.released_minor, e.currency),
        refunded=money(e.refunded_minor, e.currency),
        held=money(e.held_minor, e.currency),
        purpose=e.purpose,
        deadline=iso(e.deadline_ns) or "",
        onDeadline=e.on_deadline.value,
    )


def escrow_events(e: Escrow, events: Sequence[Mapping[str, Any]]) -> s.EscrowEventListOut:
    return s.EscrowEventListOut(
        events=[
            s.EscrowEventOut(
                seq=int(ev["seq"]),
                action=str(ev["action"]),
                amount=money(int(ev["amount_minor"]), e.currency),
                actor=str(ev["actor"]),
                at=iso(int(ev["at_ns"])) or "",
            )
            for ev in events
        ]
    )


def window(w: SettlementWindow) -> s.WindowOut:
    return s.WindowOut(
        id=w.id,
        state=w.state.value,
        openedAt=iso(w.opened_at_ns) or "",
        closedAt=iso(w.closed_at_ns),
        settledAt=iso(w.settled_at_ns),
        positions=[
            s.PositionOut(
                participantId=p.participant_id,
                currency=p.currency,
                sent=money(p.sent_minor, p.currency),
                received=money(p.received_minor, p.currency),
                net=money(p.net_minor, p.currency),
                settled=None if p.settled_minor is None else money(p.settled_minor, p.currency),
                carried=money(p.carried_minor, p.currency),
            )
            for p in w.positions
        ],
        report={cur: s.WindowFiguresOut(**f) for cur, f in w.report().items()},
    )


def fee_rule(schedule: FeeSchedule, currency: str) -> s.FeeRuleOut:
    r = schedule.rule(currency)
    return s.FeeRuleOut(
        currency=currency,
        bps=r.bps,
        fixed=money(r.fixed_minor, currency),
        min=money(r.min_minor, currency),
        max=None if r.max_minor is None else money(r.max_minor, currency),
    )


def fee_schedule(schedule: FeeSchedule) -> s.FeeScheduleOut:
    return s.FeeScheduleOut(
        bps=schedule.bps,
        currencies=[fee_rule(schedule, code) for code in sorted(schedule.currencies)],
    )
