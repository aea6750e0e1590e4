"""Payer-initiated bulk credit transfers (payroll, supplier runs): up to 8,000 items in one
currency, each priced, checked and committed at once, an item that fails rejected alone.

A bulk clears on the ledger as one posting per payee participant and one for the scheme's
fees (ADR 0004), not two per item: the ledger holds participants' positions, and a payee
participant's position moves by the sum of its credits whichever way they are posted. Which
items fit is decided first, in item order, against the accounts' balances read under the
ledger's write lock (:class:`_Positions` applies the state machine's checks for a posted
transfer, each item's fee and payment legs as one linked chain: both or neither), so every item
gets exactly the result that posting its two legs would have given. The postings then carry
the sums, each with the bulk's id (``user_data_128``) and how many items it carries
(``user_data_64``); every item is a ``pay_transfers`` row with its own amounts, so the ledger
and the rows reconcile per bulk and per payee.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy import Connection

from entrepot.kernel.errors import InvalidInput
from entrepot.kernel.limits import AMOUNT_MAX
from entrepot.ledger import Account, AccountFlags, CreateTransferResult, Transfer
from entrepot.payments import store as st
from entrepot.payments.aliases import alias_text, normalise_alias
from entrepot.payments.errors import InvalidPaymentInput, LedgerRefused
from entrepot.payments.model import (
    SCHEME_AMOUNT_MAX,
    AliasType,
    Participant,
    ParticipantCurrency,
    Party,
    PaymentTransfer,
    TransferState,
)
from entrepot.payments.notify import notify_bulk
from entrepot.payments.services import (
    SCHEME,
    Code,
    PaymentScheme,
    ScreeningDecision,
    _check_amount,
    _check_id,
    _check_not_scheme,
    _on_rollback,
    ledger_id,
    screen_all,
    screens_bulks_ahead,
)
from entrepot.storage.engine import driver_connection

BULK_ITEMS_MAX = 8_000
_QUOTE_ID_LEN = 64  # pay_transfers.quote_id is a String(64)
#: transfer id, payee participant, amount, fee, payee alias ("TYPE:value")
_Committed = tuple[str, str, int, int, str]
_DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
R = CreateTransferResult
_COMMITTED = TransferState.COMMITTED.value
#: pay_transfers columns that differ between a bulk's items, in the order a row tuple gives
#: them; the others are the bulk's (``insert_rows``'s constants).
_ROW_COLUMNS = (
    "id",
    "quote_id",
    "payee_participant",
    "source_amount",
    "fee",
    "target_amount",
    "payee_alias",
    "seq",
)


# Named tuples rather than frozen dataclasses: a bulk builds 8,000 of each, and a frozen
# dataclass's __init__ (one object.__setattr__ per field) costs twice as much.
class BulkItem(NamedTuple):
    transfer_id: str
    payee_alias_type: AliasType | str
    payee_alias: str
    amount_minor: int


class BulkResult(NamedTuple):
    transfer_id: str
    state: TransferState
    reason: str | None = None


class _Positions:
    """Balances of the accounts a bulk moves, changed item by item as the ledger would change
    them. :meth:`post` takes one item's legs as a linked chain and returns the result code of
    the first leg that fails (nothing applied), or None (all applied). The checks are the state
    machine's for a posted transfer (``machine._create``), in its order; the ones a bulk cannot
    fail (ledgers, accounts that exist, amounts > 0) are not repeated."""

    def __init__(self, accounts: Iterable[Account]) -> None:
        # per account: [debits_pending, debits_posted, credits_pending, credits_posted, flags]
        self.b = {
            a.id: [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted, a.flags]
            for a in accounts
        }

    def fits_whole(self, dr_id: int, debit: int, credits: dict[int, int]) -> bool:
        """Whether every chain would post, whatever their order, if ``dr_id`` is debited
        ``debit`` in all and each account of ``credits`` credited its sum, and no account is
        both. Then each leg's checks compare a sum that only grows with a bound that does not
        move (a debited account's credits, a credited account's debits): if the whole passes,
        so does every prefix of it, and :meth:`post` would apply every chain. False may
        also mean that some chain fails: ask :meth:`post`, chain by chain."""
        if dr_id in credits:
            return False
        b = self.b
        dr = b[dr_id]
        if dr[1] + debit > AMOUNT_MAX or dr[0] + dr[1] + debit > AMOUNT_MAX:
            return False
        if dr[4] & _DMNEC and dr[0] + dr[1] + debit > dr[3]:
            return False
        for cr_id, credit in credits.items():
            cr = b[cr_id]
            if cr[3] + credit > AMOUNT_MAX or cr[2] + cr[3] + credit > AMOUNT_MAX:
                return False
            if cr[4] & _CMNED and cr[2] + cr[3] + credit > cr[1]:
                return False
        return True

    def post(self, legs: Sequence[tuple[int, int, int]]) -> R | None:
        b = self.b
        for k, (dr_id, cr_id, amount) in enumerate(legs):
            dr, cr = b[dr_id], b[cr_id]
            why = None
            if dr_id == cr_id:
                why = R.ACCOUNTS_MUST_BE_DIFFERENT
            elif dr[1] + amount > AMOUNT_MAX:
                why = R.OVERFLOWS_DEBITS_POSTED
            elif cr[3] + amount > AMOUNT_MAX:
                why = R.OVERFLOWS_CREDITS_POSTED
            elif dr[0] + dr[1] + amount > AMOUNT_MAX:
                why = R.OVERFLOWS_DEBITS
            elif cr[2] + cr[3] + amount > AMOUNT_MAX:
                why = R.OVERFLOWS_CREDITS
            elif dr[4] & _DMNEC and dr[0] + dr[1] + amount > dr[3]:
                why = R.EXCEEDS_CREDITS
            elif cr[4] & _CMNED and cr[2] + cr[3] + amount > cr[1]:
                why = R.EXCEEDS_DEBITS
            if why is not None:
                for d, c, a in legs[:k]:  # the chain fails whole: undo its earlier legs
                    b[d][1] -= a
                    b[c][3] -= a
                return why
            dr[1] += amount
            cr[3] += amount
        return None


def bulk_quote_id(transfer_id: str) -> str:
    """A bulk item has no quote; its row's unique ``quote_id`` is derived from its transfer id,
    with a '#' no client-chosen quote id may hold, so a participant cannot take it first:
    ``bulk#<transfer id>``, or for an id too long to fit, ``bulk##`` and a hash of it. Not a
    hash throughout: a payroll's ids run in order, and so then do these index keys (random
    keys cost a cache miss per row in the index, ~10 % of a bulk item)."""
    if len(transfer_id) <= _QUOTE_ID_LEN - len("bulk#"):
        return "bulk#" + transfer_id
    return "bulk##" + hashlib.blake2b(transfer_id.encode(), digest_size=16).hexdigest()


def _reason(code: R) -> str:
    return "net debit cap exceeded" if code is R.EXCEEDS_CREDITS else str(code)


# Where in a bulk item the field an item's check names is (its own name otherwise).
_ITEM_FIELDS = {
    "transfer id": "transferId",
    "type": "payee.partyIdType",
    "id": "payee.partyIdentifier",
}


def item_error(exc: InvalidInput, n: int, transfer_id: str) -> InvalidInput:
    """``exc``, raised by a check of item ``n`` of a bulk, as an error of the same kind that
    names the item (its index and transfer id) and the field in the bulk's body: in a bulk of
    thousands, "amount must be a positive integer" alone did not say which."""
    where = _ITEM_FIELDS.get(exc.field or "", exc.field or "")
    return type(exc)(
        f"transfers[{n}] (transferId {transfer_id!r}): {exc.detail}",
        field=f"transfers.{n}.{where}".rstrip("."),
        code=exc.code,
    )


def bulk_transfers(
    scheme: PaymentScheme, caller: str, bulk_id: str, currency: str, items: Sequence[BulkItem]
) -> list[BulkResult]:
    """Commit every item that can be, in order, in one transaction; an item that fails (unknown
    payee, other currency, on-us, suspended payee, net debit cap) is rejected alone with its
    reason. Bad input (ids, amounts, aliases, size) rejects the whole bulk and changes
    nothing."""
    _check_id(bulk_id, "bulk id")
    _check_not_scheme(caller)
    if not 1 <= len(items) <= BULK_ITEMS_MAX:
        raise InvalidPaymentInput(
            f"a bulk holds 1..{BULK_ITEMS_MAX} transfers, not {len(items)}", field="transfers"
        )
    aliases: dict[tuple[AliasType | str, str], tuple[str, str]] = {}
    keys = []
    totals: dict[int, int] = {}  # amount -> with its fee (a payroll repeats a few amounts)
    for n, item in enumerate(items):
        try:
            _check_id(item.transfer_id, "transfer id")
            _check_amount(item.amount_minor)
            total = totals.get(item.amount_minor)
            if total is None:  # what the payer is charged, as a single payment's quote checks
                total = totals[item.amount_minor] = item.amount_minor + scheme.fees.fee(
                    item.amount_minor, currency
                )
            if total > SCHEME_AMOUNT_MAX:  # named by the item's own amount, not the sum alone
                raise InvalidPaymentInput(
                    f"amount {item.amount_minor} and its fee {total - item.amount_minor} make "
                    f"{total}, past the scheme's maximum ({SCHEME_AMOUNT_MAX})",
                    field="amount",
                )
            key = (item.payee_alias_type, item.payee_alias)
            if key not in aliases:  # a payroll pays few payees many times: normalise each once
                kind, alias = normalise_alias(*key)
                aliases[key] = (kind.value, alias)
        except InvalidInput as exc:
            raise item_error(exc, n, item.transfer_id) from None
        keys.append(aliases[key])
    if len({i.transfer_id for i in items}) != len(items):
        # Named as any bad item is (its index, id and field): in a payroll of thousands,
        # "transfer ids repeat" alone did not say which, and the CLI could name no line.
        first: dict[str, int] = {}
        for n, item in enumerate(items):
            earlier = first.setdefault(item.transfer_id, n)
            if earlier != n:
                repeat = InvalidPaymentInput(
                    f"transfer id repeats transfers[{earlier}]'s within the bulk",
                    field="transfer id",
                )
                raise item_error(repeat, n, item.transfer_id)
    note = f"bulk {bulk_id}"
    ahead = _screen_ahead(scheme, items, keys, caller, currency, note)
    with scheme._uow() as uow:
        conn = uow.connection
        existing = _existing(conn, [i.transfer_id for i in items])
        # A bulk resent is answered as it was made, by a payer suspended since too (as a
        # resent prepare is): its new items (those the first one rejected, left without a
        # transfer) are then rejected one by one. Refused whole, a retry after a lost answer
        # told the payer's system the bulk failed while it had paid (a review). Only a bulk
        # none of whose items this bulk made before is refused for a suspended payer (an id
        # another request made is no sign of a resend).
        resend = any(s.payer == caller and s.note == note for s in existing.values())
        payer = (scheme._participant if resend else scheme._active)(conn, caller)
        payer_out = None if payer.active else f"payer participant {caller} is suspended"
        src = payer.check_currency(currency)
        fee_to = scheme._participant(conn, SCHEME).check_currency(currency)
        parties = _parties(conn, set(aliases.values()))
        payees = _payees(conn, {p.participant_id for p in parties.values()})
        dsts = {
            pid: p.check_currency(currency)
            for pid, p in payees.items()
            if p is not None and currency in p.currencies
        }
        # Each item: why it cannot be paid whatever the balances, its result if it was paid
        # before (a resend), else its payee.
        fates: list[str | BulkResult | Party] = []
        for item, key in zip(items, keys, strict=True):
            party = parties.get(key)
            stored = existing.get(item.transfer_id)
            if stored is not None:
                fates.append(_resent(stored, item, caller, note, currency, key, party))
            elif payer_out is not None:
                fates.append(payer_out)
            elif party is None:
                fates.append(f"no party for {key[0]} {key[1]}")
            elif party.currency != currency:
                fates.append(f"payee takes {party.currency}, not {currency}")
            elif party.participant_id == caller:
                fates.append("on-us: the payee is at the payer's own participant")
            elif payees.get(party.participant_id) is None:
                fates.append(f"payee participant {party.participant_id} is not active")
            elif party.participant_id not in dsts:
                fates.append(f"payee participant {party.participant_id} does not hold {currency}")
            else:
                fates.append(party)
        _screen(scheme, items, fates, caller, currency, note, ahead)
        accounts = [src.position_account, fee_to.position_account]
        accounts += [pc.position_account for pc in dsts.values()]
        # Decide on the balances the postings will find: reservations that fall due are
        # voided first, and if more fall due while the items are decided (8,000 take ~0.1 s),
        # they are decided again on the balances those voids free.
        scheme.ledger.expire_pending(uow=uow)
        while True:
            positions = _Positions(scheme.ledger.lookup_accounts(accounts, uow=uow))
            decided = _decide(scheme, items, fates, positions, src, fee_to, dsts)
            if not scheme.ledger.expire_pending(uow=uow):
                break
        results, committed, credits, fee_total = decided
        now = scheme._now()
        rows: list[tuple[object, ...]] = []
        constants: dict[str, object] = {}
        if committed:  # a bulk that commits nothing opens no settlement window
            window = scheme._open_window(conn).id
            quote_ids = map(bulk_quote_id, (c[0] for c in committed))
            last = st.LAST_TRANSFER_SEQ.first(conn)[0]  # under the write lock
            rows = [
                (tid, qid, payee, amount + fee, fee, amount, alias, last + n)
                for n, ((tid, payee, amount, fee, alias), qid) in enumerate(
                    zip(committed, quote_ids, strict=True), 1
                )
            ]  # fmt: skip
            constants = {
                "payer_participant": caller,
                "source_currency": currency,
                "target_currency": currency,
                "state": _COMMITTED,
                "expires_at": now,
                "created_at": now,
                "updated_at": now,
                "window_id": window,
                "note": note,
            }
        postings = _postings(bulk_id, src, fee_to, dsts, credits, fee_total, rows)
        if postings:
            refused = [r for r in scheme._post(uow, postings) if r != "ok"]
            if refused:  # the balances were read under the write lock: this is a defect
                raise LedgerRefused(f"ledger refused the bulk's postings: {sorted(set(refused))}")
        st.insert_rows(conn, st.transfers, _ROW_COLUMNS, rows, constants)
        notify_bulk(conn, bulk_id, caller, currency, credits, now)
    return results


#: The start of a bulk item's reason when screening holds its payee (the reasons follow)
HELD_IN_BULK = "held for review, which a bulk cannot wait for: pay it as a single transfer: "


#: A payee party as screened: the party read, and the decision on it
_Screened = tuple[Party, ScreeningDecision]


def _screened(
    scheme: PaymentScheme,
    first: Iterable[tuple[BulkItem, Party]],
    caller: str,
    currency: str,
    note: str,
) -> list[_Screened]:
    """Each payee party screened, together, as the bulk's first item to it (a transfer)."""
    now = scheme._now()
    pairs = [
        (
            PaymentTransfer(
                item.transfer_id, bulk_quote_id(item.transfer_id), caller, party.participant_id,
                currency, currency, item.amount_minor, 0, item.amount_minor, None, None,
                TransferState.RECEIVED, now, now, now, None, None, note, None,
                alias_text(party.alias_type.value, party.alias),
            ),
            party,
        )
        for item, party in first
    ]  # fmt: skip
    decisions = screen_all(scheme.screening, pairs)
    return [(party, d) for (_, party), d in zip(pairs, decisions, strict=True)]


def _screen_ahead(
    scheme: PaymentScheme,
    items: Sequence[BulkItem],
    keys: Sequence[tuple[str, str]],
    caller: str,
    currency: str,
    note: str,
) -> dict[tuple[str, str], _Screened]:
    """The bulk's payee parties screened before the write lock, from a snapshot (as a prepare
    is: a payroll's thousands of payees take about a millisecond each, which under the lock
    every other writer would wait for); each decision is used inside only if the party read
    there is the one screened. None is screened where the screening keeps state of what it
    sees of a bulk (fraud screening keeps none: ``screens_bulks_ahead``), or inside a
    caller's unit of work (:meth:`PaymentScheme._screen_ahead`). Nor where the snapshot
    shows the bulk refused (its payer suspended or without the currency), nor a party the
    bulk would not pay (its participant suspended or without the currency): the
    transaction refuses those before it screens, and a decision was logged for a payment
    that never was."""
    if not screens_bulks_ahead(scheme.screening) or scheme._joined_uow() is not None:
        return {}
    with scheme._read() as conn:
        payer = scheme._participants.get(conn, caller)
        if payer is None or not payer.active or currency not in payer.currencies:
            return {}
        parties = _parties(conn, set(keys))
        payable = {
            pid
            for pid, p in _payees(conn, {p.participant_id for p in parties.values()}).items()
            if p is not None and currency in p.currencies
        }
        # A bulk resent (a client that timed out sends it again) is answered as it was made:
        # what it paid before is not screened (and logged) again. Every item is looked up:
        # the first one alone missed a resend whose first item the bulk had rejected.
        paid = set(_existing(conn, [i.transfer_id for i in items]))
    first: dict[tuple[str, str], tuple[BulkItem, Party]] = {}
    for item, key in zip(items, keys, strict=True):
        party = parties.get(key)
        if (
            party is not None
            and item.transfer_id not in paid
            and key not in first
            and party.currency == currency
            and party.participant_id != caller
            and party.participant_id in payable
        ):
            first[key] = (item, party)
    screened = _screened(scheme, first.values(), caller, currency, note)
    return dict(zip(first, screened, strict=True))


def _screen(
    scheme: PaymentScheme,
    items: Sequence[BulkItem],
    fates: list[str | BulkResult | Party],
    caller: str,
    currency: str,
    note: str,
    ahead: dict[tuple[str, str], _Screened],
) -> None:
    """Screen each payee party the bulk would pay, once however many items pay it (the first
    stands for them: sanctions screening is of the party), the decisions logged together;
    a party screened ahead (:func:`_screen_ahead`) and read the same here is not screened
    again. An item to a payee screening holds is rejected alone, its reason saying why (a
    bulk commits at once: nothing in it waits for a person); one screening blocks is
    rejected. Bulks were never screened: a payee a single payment held for review was paid
    at once in a bulk, and nothing was logged."""
    verdicts: dict[int, ScreeningDecision] = {}  # by id(party): one Party object per alias
    first: dict[int, tuple[BulkItem, Party]] = {}  # the parties to screen here
    for item, fate in zip(items, fates, strict=True):
        if not isinstance(fate, Party) or id(fate) in verdicts or id(fate) in first:
            continue
        screened = ahead.get((fate.alias_type.value, fate.alias))
        if screened is not None and screened[0] == fate:
            verdicts[id(fate)] = screened[1]
        else:
            first[id(fate)] = (item, fate)
    if first:
        here = _screened(scheme, first.values(), caller, currency, note)
        verdicts.update((id(party), d) for party, d in here)
    # What a screening that keeps state learned from the bulk is taken back should the bulk
    # not be written after all (its COMMIT failing, say), as a prepare's is: it counted
    # payments that never were, and again at each retry.
    _on_rollback([u for d in verdicts.values() for u in d.undo])
    for n, fate in enumerate(fates):
        if not isinstance(fate, Party):
            continue
        d = verdicts[id(fate)]
        if d.block:
            fates[n] = f"blocked by screening: {d.reason()}"
        elif d.hold:
            fates[n] = HELD_IN_BULK + d.reason()


def _decide(
    scheme: PaymentScheme,
    items: Sequence[BulkItem],
    fates: Sequence[str | BulkResult | Party],
    positions: _Positions,
    src: ParticipantCurrency,
    fee_to: ParticipantCurrency,
    dsts: dict[str, ParticipantCurrency],
    *,
    fits_whole: bool = True,
) -> tuple[list[BulkResult], list[_Committed], dict[str, list[tuple[str, int]]], int]:
    """Each item in order against ``positions``: its result; the committed items (transfer
    id, payee participant, amount, fee, payee alias); the credits per payee participant; the
    fees. When every payable item fits at once (:meth:`_Positions.fits_whole`) none is
    checked on its own, and ``positions`` is left as it was; ``fits_whole=False`` checks
    each whatever (the tests compare the two)."""
    results: list[BulkResult] = []
    committed: list[_Committed] = []
    credits: dict[str, list[tuple[str, int]]] = {}
    fee_total = 0
    fees: dict[int, int] = {}
    aliases: dict[int, str] = {}  # by id(party): a payroll pays few payees many times
    schedule, currency = scheme.fees, src.currency
    src_acc, fee_acc = src.position_account, fee_to.position_account
    # A payroll usually fits whole: then no item needs checking on its own (about a quarter
    # of a bulk's time went to checking 8,000 items one by one).
    debit = 0
    credits_to: dict[int, int] = {}  # account -> what the payable items credit it
    for item, fate in zip(items, fates, strict=True):
        if isinstance(fate, Party):
            amount = item.amount_minor
            fee = fees.get(amount)
            if fee is None:
                fee = fees[amount] = schedule.fee(amount, currency)
            debit += amount + fee
            acc = dsts[fate.participant_id].position_account
            credits_to[acc] = credits_to.get(acc, 0) + amount
            if fee:
                credits_to[fee_acc] = credits_to.get(fee_acc, 0) + fee
    whole = fits_whole and positions.fits_whole(src_acc, debit, credits_to)
    for item, fate in zip(items, fates, strict=True):
        tid = item.transfer_id
        if isinstance(fate, str):
            results.append(BulkResult(tid, TransferState.ABORTED, fate))
            continue
        if isinstance(fate, BulkResult):  # paid by an earlier send of this bulk
            results.append(fate)
            continue
        amount = item.amount_minor
        fee = fees[amount]
        if not whole:
            legs = [(src_acc, dsts[fate.participant_id].position_account, amount)]
            if fee:
                legs.insert(0, (src_acc, fee_acc, fee))
            failed = positions.post(legs)
            if failed is not None:
                results.append(BulkResult(tid, TransferState.ABORTED, _reason(failed)))
                continue
        results.append(BulkResult(tid, TransferState.COMMITTED))
        fee_total += fee
        credits.setdefault(fate.participant_id, []).append((tid, amount))
        alias = aliases.get(id(fate))
        if alias is None:
            alias = aliases[id(fate)] = alias_text(fate.alias_type.value, fate.alias)
        committed.append((tid, fate.participant_id, amount, fee, alias))
    return results, committed, credits, fee_total


def _postings(
    bulk_id: str,
    src: ParticipantCurrency,
    fee_to: ParticipantCurrency,
    dsts: dict[str, ParticipantCurrency],
    credits: dict[str, list[tuple[str, int]]],
    fee_total: int,
    rows: Sequence[tuple[object, ...]],
) -> list[Transfer]:
    """One posting per payee participant and one for the fees, named after the first item
    each carries (transfer ids are unique, so posting ids are too)."""
    tag = ledger_id("bulk", bulk_id)
    out = []
    if fee_total:
        carried = sum(1 for r in rows if r[4])  # items that carry a fee
        out.append(
            Transfer(
                ledger_id("bulk-fee", str(rows[0][0])),
                src.position_account,
                fee_to.position_account,
                fee_total,
                user_data_128=tag,
                user_data_64=carried,
                ledger=src.ledger,
                code=Code.FEE,
            )
        )
    for pid, paid in credits.items():
        out.append(
            Transfer(
                ledger_id("bulk-credit", paid[0][0]),
                src.position_account,
                dsts[pid].position_account,
                sum(a for _, a in paid),
                user_data_128=tag,
                user_data_64=len(paid),
                ledger=src.ledger,
                code=Code.PAYMENT,
            )
        )
    return out


class _Stored(NamedTuple):
    """What a transfer that exists says of the request that created it."""

    payer: str
    payee: str
    currency: str
    amount: int
    note: str | None
    state: str
    payee_alias: str | None  # None in rows written before migration 0011


def _existing(conn: Connection, ids: list[str]) -> dict[str, _Stored]:
    """The transfers among ``ids`` that exist (through the driver: SQLAlchemy's expanding IN
    costs more than the query for thousands of ids)."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    cur = driver_connection(conn).cursor()
    out: dict[str, _Stored] = {}
    for start in range(0, len(ids), 1_000):
        chunk = ids[start : start + 1_000]
        cur.execute(
            "SELECT id, payer_participant, payee_participant, source_currency, target_amount, "
            f"note, state, payee_alias FROM {st.transfers.name} "
            f"WHERE id IN ({', '.join([mark] * len(chunk))})",
            chunk,
        )
        out.update((r[0], _Stored(*r[1:])) for r in cur.fetchall())
    return out


def _resent(
    stored: _Stored,
    item: BulkItem,
    caller: str,
    note: str,
    currency: str,
    payee: tuple[str, str],
    party: Party | None,
) -> BulkResult:
    """An item whose transfer id exists: a bulk resent (after a timeout, say) is answered
    with what the first one did to that item, so the payer's system does not pay it again
    another way; an id that some other request created is refused. The same item names the
    same payee alias (``payee``, normalised), wherever that alias points now. (An item the
    first bulk rejected left no transfer: the resend tries it again.)"""
    same = (stored.payer, stored.note, stored.currency, stored.amount) == (
        caller,
        note,
        currency,
        item.amount_minor,
    )
    if stored.payee_alias is not None:
        same = same and stored.payee_alias == alias_text(*payee)
    else:  # written before the row kept its alias: the payee's participant, if it resolves
        same = same and party is not None and stored.payee == party.participant_id
    if same:
        return BulkResult(item.transfer_id, TransferState(stored.state))
    return BulkResult(
        item.transfer_id,
        TransferState.ABORTED,
        "transfer id already exists, created by a different request",
    )


def _parties(conn: Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Party]:
    out: dict[tuple[str, str], Party] = {}
    by_type: dict[str, list[str]] = {}
    for kind, alias in keys:
        by_type.setdefault(kind, []).append(alias)
    for kind, values in by_type.items():
        for start in range(0, len(values), 500):
            rows = conn.execute(
                sa.select(st.aliases).where(
                    st.aliases.c.alias_type == kind,
                    st.aliases.c.alias.in_(values[start : start + 500]),
                )
            ).all()
            for r in rows:
                out[(r.alias_type, r.alias)] = st.party_from_row(r)
    return out


def _payees(conn: Connection, ids: set[str]) -> dict[str, Participant | None]:
    """The payee participants by id, None for a suspended one."""
    out: dict[str, Participant | None] = {}
    for pid in ids:
        found = st.load_participant(conn, pid)
        out[pid] = found if found is not None and found.active else None
    return out


__all__ = ["BULK_ITEMS_MAX", "BulkItem", "BulkResult", "bulk_transfers"]
