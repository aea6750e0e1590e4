"""One internal model, served as ISO 20022: pacs.008 for a transfer, pacs.002 for its status,
camt.053 for a participant's position account."""

from __future__ import annotations

import uuid

from entrepot.kernel.clock import Clock, ns_to_datetime
from entrepot.payments import iso20022 as iso
from entrepot.payments.model import Participant, Party, PaymentTransfer, TransferState
from entrepot.payments.services import PaymentScheme

_STATUS = {
    TransferState.COMMITTED: ("ACSC", None, None),
    TransferState.RESERVED: ("ACSP", None, None),
    TransferState.RECEIVED: ("PDNG", None, None),
    TransferState.HOLD: ("PDNG", None, "held for review"),
    TransferState.ABORTED: ("RJCT", "AB05", None),  # AB05: timeout / aborted
}


def uetr(transfer_id: str) -> str:
    """The transfer id when it is a version-4 UUID, else a stable version-4-shaped UUID derived
    from it (a UETR must be a UUIDv4)."""
    try:
        parsed = uuid.UUID(transfer_id)
        if parsed.version == 4 and str(parsed) == transfer_id.lower():
            return str(parsed)
    except ValueError:
        pass
    derived = uuid.uuid5(uuid.NAMESPACE_URL, f"entrepot:transfer:{transfer_id}")
    return str(uuid.UUID(bytes=derived.bytes, version=4))


def _agent(p: Participant) -> iso.Agent:
    return iso.Agent(participant_id=p.id, bic=p.bic, name=p.name[:140])


def credit_transfer(
    scheme: PaymentScheme, t: PaymentTransfer, payee: Party | None
) -> iso.CreditTransfer:
    payer = scheme.get_participant(t.payer_participant)
    payee_p = scheme.get_participant(t.payee_participant)
    created = ns_to_datetime(t.created_at_ns)
    cross = t.source_currency != t.target_currency
    return iso.CreditTransfer(
        message_id=f"pacs008-{t.id}"[:35],
        transfer_id=uetr(t.id),
        end_to_end_id=t.id[:35],
        created_at=created,
        settlement_date=created.date(),
        amount_minor=t.target_amount_minor,
        currency=t.target_currency,
        debtor=iso.Party(
            name=payer.name[:140],
            alias_type=None,
            alias=None,
            iban=None,
            country=payer.country if payer.country != "ZZ" else None,
        ),
        debtor_agent=_agent(payer),
        creditor=iso.Party(
            name=(payee.display_name if payee else payee_p.name)[:140],
            alias_type=payee.alias_type.value if payee else None,
            alias=payee.alias if payee else None,
            iban=payee.alias if payee and payee.alias_type.value == "IBAN" else None,
            country=payee.country if payee else None,
        ),
        creditor_agent=_agent(payee_p),
        remittance=t.note,
        instructed_amount_minor=t.source_amount_minor - t.fee_minor if cross else None,
        instructed_currency=t.source_currency if cross else None,
        fx_rate=iso.fit_exchange_rate(t.fx_rate) if cross and t.fx_rate is not None else None,
    )


def status_report(t: PaymentTransfer, clock: Clock) -> iso.TransferStatus:
    status, code, text = _STATUS[t.state]
    why = t.reason or text
    return iso.TransferStatus(
        message_id=f"pacs002-{t.id}-{t.state.value}"[:35],
        original_message_id=f"pacs008-{t.id}"[:35],
        original_transfer_id=uetr(t.id),
        original_end_to_end_id=t.id[:35],
        status=status,
        reason_code=code,
        reason_text=why[:105] if why else None,
        created_at=ns_to_datetime(clock.now_ns()),
    )


def account_statement(
    scheme: PaymentScheme, participant_id: str, currency: str, since_ns: int, until_ns: int
) -> iso.Statement:
    p = scheme.get_participant(participant_id)
    pc = p.check_currency(currency)
    st = scheme.ledger.statement(pc.position_account, since_ns=since_ns, until_ns=until_ns)
    entries = [
        iso.StatementEntry(
            entry_ref=f"{line.transfer.timestamp}",
            booked_at=ns_to_datetime(line.transfer.timestamp),
            amount_minor=line.credit_minor or line.debit_minor,
            currency=currency,
            credit=bool(line.credit_minor),
            transfer_id=uetr(str(uuid.UUID(int=line.transfer.id))),
        )
        for line in st.lines
        if line.credit_minor or line.debit_minor
    ]
    now = scheme.clock.now_ns()
    return iso.Statement(
        message_id=f"camt053-{participant_id}-{now}"[:35],
        statement_id=f"{participant_id}-{currency}-{since_ns}"[:35],
        created_at=ns_to_datetime(now),
        account_id=f"{participant_id}-{currency}-position"[:34],
        account_iban=None,
        owner=_agent(p),
        currency=currency,
        from_dt=ns_to_datetime(since_ns),
        to_dt=ns_to_datetime(min(until_ns, now)),
        opening_balance_minor=st.opening_balance_minor,
        closing_balance_minor=st.closing_balance_minor,
        entries=entries,
    )
