"""The ledger's state machine: applies a batch of events to the rows it touches, in memory.

Pure: no I/O. The store loads a :class:`LedgerView` (the accounts, transfers, failed ids and
pending transfers a batch refers to), the machine decides every event in order and records its
effects, and the store writes those effects set-based in one transaction. Deciding a whole
batch in memory, then writing it at once, is what makes the ledger fast (ADR 0002).

Linked chains are all-or-nothing: effects of a chain's events are kept in an undo log until
the chain closes, and rolled back if any event in it fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from entrepot.kernel.clock import NS_PER_S
from entrepot.kernel.ids import U128_MAX
from entrepot.kernel.limits import AMOUNT_MAX
from entrepot.ledger.model import (
    ACCOUNT_FLAGS_ALL,
    AMOUNT_FULL,
    TRANSFER_FLAGS_ALL,
    TRANSIENT_TRANSFER_RESULTS,
    Account,
    AccountBalance,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    PendingStatus,
    Transfer,
    TransferFlags,
)

R = CreateTransferResult
A = CreateAccountResult

LINKED = int(TransferFlags.LINKED)
PENDING = int(TransferFlags.PENDING)
POST = int(TransferFlags.POST_PENDING_TRANSFER)
VOID = int(TransferFlags.VOID_PENDING_TRANSFER)
BAL_DEBIT = int(TransferFlags.BALANCING_DEBIT)
BAL_CREDIT = int(TransferFlags.BALANCING_CREDIT)
RESOLVE = POST | VOID
DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
HISTORY = int(AccountFlags.HISTORY)
NOT_TRANSFER_FLAGS = ~TRANSFER_FLAGS_ALL
NOT_ACCOUNT_FLAGS = ~ACCOUNT_FLAGS_ALL
OK = R.OK
# Builds a Transfer without NamedTuple's keyword handling (hot path).
_new_transfer: Callable[[type[Transfer], tuple[int, ...]], Transfer] = tuple.__new__


class AccountState:
    """An account's mutable balances while a batch is decided (the store's cache entry)."""

    __slots__ = (
        "code",
        "cp",
        "cpo",
        "dp",
        "dpo",
        "flags",
        "id",
        "ledger",
        "timestamp",
        "user_data_32",
        "user_data_64",
        "user_data_128",
    )

    def __init__(self, a: Account) -> None:
        self.id = a.id
        self.ledger = a.ledger
        self.code = a.code
        self.flags = a.flags
        self.user_data_128 = a.user_data_128
        self.user_data_64 = a.user_data_64
        self.user_data_32 = a.user_data_32
        self.dp = a.debits_pending
        self.dpo = a.debits_posted
        self.cp = a.credits_pending
        self.cpo = a.credits_posted
        self.timestamp = a.timestamp

    def snapshot(self) -> Account:
        return Account(
            self.id,
            self.ledger,
            self.code,
            self.flags,
            self.user_data_128,
            self.user_data_64,
            self.user_data_32,
            self.dp,
            self.dpo,
            self.cp,
            self.cpo,
            self.timestamp,
        )


class PendingState:
    """A transfer that a post or void refers to, with its resolution status."""

    __slots__ = ("expires_at", "resolved_timestamp", "status", "transfer")

    def __init__(
        self,
        transfer: Transfer,
        status: PendingStatus | None,
        expires_at: int = 0,
        resolved_timestamp: int = 0,
    ) -> None:
        self.transfer = transfer
        self.status = status  # None when the referenced transfer is not pending
        self.expires_at = expires_at
        self.resolved_timestamp = resolved_timestamp


@dataclass
class LedgerView:
    """The rows a batch refers to. Missing keys mean "does not exist"."""

    accounts: dict[int, AccountState] = field(default_factory=dict)
    transfers: dict[int, Transfer] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    pending: dict[int, PendingState] = field(default_factory=dict)
    ledgers: set[int] = field(default_factory=set)


@dataclass
class TransferEffects:
    results: list[CreateTransferResult]
    created: list[Transfer] = field(default_factory=list)
    touched: dict[int, AccountState] = field(default_factory=dict)
    pending_created: list[PendingState] = field(default_factory=list)
    pending_resolved: list[PendingState] = field(default_factory=list)
    failed: list[tuple[int, str, int]] = field(default_factory=list)
    history: list[AccountBalance] = field(default_factory=list)
    last_timestamp: int = 0


@dataclass
class AccountEffects:
    results: list[CreateAccountResult]
    created: list[Account] = field(default_factory=list)
    last_timestamp: int = 0


class _Undo:
    """Undo log for an open linked chain."""

    __slots__ = ("balances", "created_len", "history_len", "pending_created_len", "resolved")

    def __init__(self, fx: TransferEffects) -> None:
        self.balances: dict[int, tuple[AccountState, int, int, int, int]] = {}
        self.resolved: list[tuple[PendingState, PendingStatus | None, int]] = []
        self.created_len = len(fx.created)
        self.history_len = len(fx.history)
        self.pending_created_len = len(fx.pending_created)

    def save(self, a: AccountState) -> None:
        if a.id not in self.balances:
            self.balances[a.id] = (a, a.dp, a.dpo, a.cp, a.cpo)

    def rollback(self, fx: TransferEffects, view: LedgerView) -> None:
        for a, dp, dpo, cp, cpo in self.balances.values():
            a.dp, a.dpo, a.cp, a.cpo = dp, dpo, cp, cpo
        for p, status, resolved_ts in reversed(self.resolved):
            p.status = status
            p.resolved_timestamp = resolved_ts
            fx.pending_resolved.remove(p)
        for t in fx.created[self.created_len :]:
            view.transfers.pop(t.id, None)
            view.pending.pop(t.id, None)
        del fx.created[self.created_len :]
        del fx.history[self.history_len :]
        del fx.pending_created[self.pending_created_len :]


def expire_pending(
    view: LedgerView, due: Sequence[PendingState], fx: TransferEffects, ts_first: int
) -> int:
    """Void pending transfers whose timeout has passed; each expiry takes one timestamp."""
    ts = ts_first
    for p in due:
        if p.status is not PendingStatus.PENDING:
            continue
        t = p.transfer
        dr = view.accounts[t.debit_account_id]
        cr = view.accounts[t.credit_account_id]
        dr.dp -= t.amount
        cr.cp -= t.amount
        p.status = PendingStatus.EXPIRED
        p.resolved_timestamp = ts
        fx.pending_resolved.append(p)
        fx.touched[dr.id] = dr
        fx.touched[cr.id] = cr
        _record_history(fx, dr, cr, ts)
        ts += 1
    return ts


def _record_history(fx: TransferEffects, dr: AccountState, cr: AccountState, ts: int) -> None:
    if dr.flags & HISTORY:
        fx.history.append(AccountBalance(dr.id, ts, dr.dp, dr.dpo, dr.cp, dr.cpo))
    if cr.flags & HISTORY:
        fx.history.append(AccountBalance(cr.id, ts, cr.dp, cr.dpo, cr.cp, cr.cpo))


def _exists_result(t: Transfer, e: Transfer, pending: Transfer | None) -> R:
    """Compare a replayed event with the stored transfer. A post or void may leave fields
    zero: zero means "the pending transfer's value", so it is compared as that value."""
    if t.flags != e.flags:
        return R.EXISTS_WITH_DIFFERENT_FLAGS
    if t.pending_id != e.pending_id:
        return R.EXISTS_WITH_DIFFERENT_PENDING_ID
    if t.timeout != e.timeout:
        return R.EXISTS_WITH_DIFFERENT_TIMEOUT
    p = pending if e.flags & RESOLVE else None
    if (t.debit_account_id or (p.debit_account_id if p else 0)) != e.debit_account_id:
        return R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
    if (t.credit_account_id or (p.credit_account_id if p else 0)) != e.credit_account_id:
        return R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
    if t.amount != e.amount and not _same_requested_amount(t, e, p):
        return R.EXISTS_WITH_DIFFERENT_AMOUNT
    if (t.user_data_128 or (p.user_data_128 if p else 0)) != e.user_data_128:
        return R.EXISTS_WITH_DIFFERENT_USER_DATA_128
    if (t.user_data_64 or (p.user_data_64 if p else 0)) != e.user_data_64:
        return R.EXISTS_WITH_DIFFERENT_USER_DATA_64
    if (t.user_data_32 or (p.user_data_32 if p else 0)) != e.user_data_32:
        return R.EXISTS_WITH_DIFFERENT_USER_DATA_32
    if (t.ledger or (p.ledger if p else 0)) != e.ledger:
        return R.EXISTS_WITH_DIFFERENT_LEDGER
    if (t.code or (p.code if p else 0)) != e.code:
        return R.EXISTS_WITH_DIFFERENT_CODE
    return R.EXISTS


def _same_requested_amount(t: Transfer, e: Transfer, pending: Transfer | None) -> bool:
    """The stored amount is what moved; "all of it" matches only if all of it moved."""
    if e.flags & RESOLVE:
        full = pending is not None and e.amount == pending.amount
        return full and (t.amount == AMOUNT_FULL or (e.flags & VOID != 0 and t.amount == 0))
    if e.flags & (BAL_DEBIT | BAL_CREDIT):
        return t.amount >= e.amount
    return False


class TransferMachine:
    """Decides one batch of transfers against a view. Build one per batch."""

    def __init__(self, view: LedgerView, fx: TransferEffects) -> None:
        self.view = view
        self.fx = fx
        self.undo: _Undo | None = None

    def run(self, batch: Sequence[Transfer], ts_first: int) -> None:
        results = self.fx.results
        create = self._create
        transient = TRANSIENT_TRANSFER_RESULTS
        n = len(batch)
        chain_start = -1
        i = 0
        while i < n:
            t = batch[i]
            linked = t[11] & LINKED  # flags
            if linked and chain_start < 0:
                chain_start = i
                self.undo = _Undo(self.fx)
            if linked and i == n - 1:
                result = R.LINKED_EVENT_CHAIN_OPEN
            else:
                result = create(t, ts_first + i)
                if result is not OK and result in transient:
                    self._remember_failed(t.id, result, ts_first + i)
            results[i] = result
            if chain_start >= 0:
                if result is not OK:
                    i = self._fail_chain(batch, chain_start, i)
                    chain_start = -1
                elif not linked:
                    chain_start = -1
                    self.undo = None
            i += 1

    def _fail_chain(self, batch: Sequence[Transfer], start: int, failed_at: int) -> int:
        """Roll back the chain; mark its other events; return the index of its last event."""
        undo = self.undo
        assert undo is not None
        undo.rollback(self.fx, self.view)
        self.undo = None
        results = self.fx.results
        for j in range(start, failed_at):
            results[j] = R.LINKED_EVENT_FAILED
        j = failed_at
        n = len(batch)
        while batch[j].flags & LINKED and j + 1 < n:
            j += 1
            results[j] = (
                R.LINKED_EVENT_CHAIN_OPEN
                if j == n - 1 and batch[j].flags & LINKED
                else R.LINKED_EVENT_FAILED
            )
        return j

    def _remember_failed(self, transfer_id: int, result: R, ts: int) -> None:
        self.view.failed[transfer_id] = result
        self.fx.failed.append((transfer_id, str(result), ts))

    def _create(self, t: Transfer, ts: int) -> R:
        (
            id_,
            dr_id,
            cr_id,
            amount,
            pending_id,
            u128,
            u64,
            u32,
            timeout,
            ledger,
            code,
            flags,
            t_ts,
        ) = t
        if t_ts:
            return R.TIMESTAMP_MUST_BE_ZERO
        if flags & NOT_TRANSFER_FLAGS:
            return R.RESERVED_FLAG
        if id_ == 0:
            return R.ID_MUST_NOT_BE_ZERO
        if id_ == U128_MAX:
            return R.ID_MUST_NOT_BE_INT_MAX
        view = self.view
        existing = view.transfers.get(id_)
        if existing is not None:
            ref = view.pending.get(existing.pending_id) if existing.pending_id else None
            return _exists_result(t, existing, ref.transfer if ref is not None else None)
        if id_ in view.failed:
            return R.ID_ALREADY_FAILED
        if flags & RESOLVE:
            if (
                flags & PENDING
                or (flags & POST and flags & VOID)
                or flags & (BAL_DEBIT | BAL_CREDIT)
            ):
                return R.FLAGS_ARE_MUTUALLY_EXCLUSIVE
            return self._resolve(t, ts)
        if dr_id == 0:
            return R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
        if dr_id == U128_MAX:
            return R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
        if cr_id == 0:
            return R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
        if cr_id == U128_MAX:
            return R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
        if dr_id == cr_id:
            return R.ACCOUNTS_MUST_BE_DIFFERENT
        if pending_id:
            return R.PENDING_ID_MUST_BE_ZERO
        pending = flags & PENDING
        if timeout and not pending:
            return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        if ledger == 0:
            return R.LEDGER_MUST_NOT_BE_ZERO
        if code == 0:
            return R.CODE_MUST_NOT_BE_ZERO
        accounts = view.accounts
        dr = accounts.get(dr_id)
        if dr is None:
            return R.DEBIT_ACCOUNT_NOT_FOUND
        cr = accounts.get(cr_id)
        if cr is None:
            return R.CREDIT_ACCOUNT_NOT_FOUND
        if dr.ledger != cr.ledger:
            return R.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER
        if ledger != dr.ledger:
            return R.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS
        if flags & (BAL_DEBIT | BAL_CREDIT):
            amount = _balanced_amount(amount, flags, dr, cr)
        dr_dp, dr_dpo, cr_cp, cr_cpo = dr.dp, dr.dpo, cr.cp, cr.cpo
        if pending:
            if dr_dp + amount > AMOUNT_MAX:
                return R.OVERFLOWS_DEBITS_PENDING
            if cr_cp + amount > AMOUNT_MAX:
                return R.OVERFLOWS_CREDITS_PENDING
        # As TigerBeetle: a pending transfer must be postable later, so posted is checked too.
        if dr_dpo + amount > AMOUNT_MAX:
            return R.OVERFLOWS_DEBITS_POSTED
        if cr_cpo + amount > AMOUNT_MAX:
            return R.OVERFLOWS_CREDITS_POSTED
        if dr_dp + dr_dpo + amount > AMOUNT_MAX:
            return R.OVERFLOWS_DEBITS
        if cr_cp + cr_cpo + amount > AMOUNT_MAX:
            return R.OVERFLOWS_CREDITS
        expires_at = 0
        if pending and timeout:
            expires_at = ts + timeout * NS_PER_S
            if expires_at > AMOUNT_MAX:
                return R.OVERFLOWS_TIMEOUT
        if dr.flags & DMNEC and dr_dp + dr_dpo + amount > dr.cpo:
            return R.EXCEEDS_CREDITS
        if cr.flags & CMNED and cr_cp + cr_cpo + amount > cr.dpo:
            return R.EXCEEDS_DEBITS
        undo = self.undo
        if undo is not None:
            undo.save(dr)
            undo.save(cr)
        if pending:
            dr.dp = dr_dp + amount
            cr.cp = cr_cp + amount
        else:
            dr.dpo = dr_dpo + amount
            cr.cpo = cr_cpo + amount
        stored = _new_transfer(
            Transfer,
            (id_, dr_id, cr_id, amount, 0, u128, u64, u32, timeout, ledger, code, flags, ts),
        )
        fx = self.fx
        fx.created.append(stored)
        view.transfers[id_] = stored
        touched = fx.touched
        touched[dr_id] = dr
        touched[cr_id] = cr
        if (dr.flags | cr.flags) & HISTORY:
            _record_history(fx, dr, cr, ts)
        if pending:
            p = PendingState(stored, PendingStatus.PENDING, expires_at)
            view.pending[id_] = p
            self.fx.pending_created.append(p)
        return OK

    def _store(self, stored: Transfer, dr: AccountState, cr: AccountState) -> None:
        fx = self.fx
        fx.created.append(stored)
        self.view.transfers[stored.id] = stored
        touched = fx.touched
        touched[dr.id] = dr
        touched[cr.id] = cr
        if (dr.flags | cr.flags) & HISTORY:
            _record_history(fx, dr, cr, stored.timestamp)

    def _resolve(self, t: Transfer, ts: int) -> R:
        (id_, dr_id, cr_id, amount, pending_id, u128, u64, u32, timeout, ledger, code, flags, _) = t
        # Named accounts need only match the pending transfer's (checked below).
        if pending_id == 0:
            return R.PENDING_ID_MUST_NOT_BE_ZERO
        if pending_id == U128_MAX:
            return R.PENDING_ID_MUST_NOT_BE_INT_MAX
        if pending_id == id_:
            return R.PENDING_ID_MUST_BE_DIFFERENT
        if timeout:
            return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        p = self.view.pending.get(pending_id)
        if p is None:
            if pending_id in self.view.transfers:  # made earlier in this batch, not pending
                return R.PENDING_TRANSFER_NOT_PENDING
            return R.PENDING_TRANSFER_NOT_FOUND
        pt = p.transfer
        if p.status is None:
            return R.PENDING_TRANSFER_NOT_PENDING
        if dr_id and dr_id != pt.debit_account_id:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
        if cr_id and cr_id != pt.credit_account_id:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
        if ledger and ledger != pt.ledger:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER
        if code and code != pt.code:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_CODE
        post = flags & POST
        if post:
            if amount == AMOUNT_FULL:
                amount = pt.amount
            elif amount > pt.amount:
                return R.EXCEEDS_PENDING_TRANSFER_AMOUNT
        else:
            if pt.amount < amount < AMOUNT_FULL:
                return R.EXCEEDS_PENDING_TRANSFER_AMOUNT
            if amount not in (0, pt.amount, AMOUNT_FULL):
                return R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
            amount = pt.amount
        status = p.status
        if status is PendingStatus.POSTED:
            return R.PENDING_TRANSFER_ALREADY_POSTED
        if status is PendingStatus.VOIDED:
            return R.PENDING_TRANSFER_ALREADY_VOIDED
        if status is PendingStatus.EXPIRED or (p.expires_at and p.expires_at <= ts):
            return R.PENDING_TRANSFER_EXPIRED
        dr = self.view.accounts[pt.debit_account_id]
        cr = self.view.accounts[pt.credit_account_id]
        if post:
            if dr.dpo + amount > AMOUNT_MAX:
                return R.OVERFLOWS_DEBITS_POSTED
            if cr.cpo + amount > AMOUNT_MAX:
                return R.OVERFLOWS_CREDITS_POSTED
        undo = self.undo
        if undo is not None:
            undo.save(dr)
            undo.save(cr)
            undo.resolved.append((p, p.status, p.resolved_timestamp))
        dr.dp -= pt.amount
        cr.cp -= pt.amount
        if post:
            dr.dpo += amount
            cr.cpo += amount
        p.status = PendingStatus.POSTED if post else PendingStatus.VOIDED
        p.resolved_timestamp = ts
        self.fx.pending_resolved.append(p)
        stored = Transfer(
            id_,
            pt.debit_account_id,
            pt.credit_account_id,
            amount,
            pending_id,
            u128 or pt.user_data_128,
            u64 or pt.user_data_64,
            u32 or pt.user_data_32,
            0,
            pt.ledger,
            pt.code,
            flags,
            ts,
        )
        self._store(stored, dr, cr)
        return OK


def _balanced_amount(amount: int, flags: int, dr: AccountState, cr: AccountState) -> int:
    if flags & BAL_DEBIT:
        amount = min(amount, max(0, dr.cpo - dr.dpo - dr.dp))
    if flags & BAL_CREDIT:
        amount = min(amount, max(0, cr.dpo - cr.cpo - cr.cp))
    return amount


def decide_transfers(
    batch: Sequence[Transfer],
    view: LedgerView,
    ts_first: int,
    due: Sequence[PendingState] = (),
) -> TransferEffects:
    """Expire what is due, then decide every event; mutates the view's account states."""
    fx = TransferEffects(results=[OK] * len(batch))
    ts = expire_pending(view, due, fx, ts_first)
    TransferMachine(view, fx).run(batch, ts)
    fx.last_timestamp = ts + len(batch) - 1  # expiries took ts_first..ts-1, the batch the rest
    return fx


# ---------------------------------------------------------------------------------- accounts


def _account_exists(a: Account, e: Account) -> A:
    if a.flags != e.flags:
        return A.EXISTS_WITH_DIFFERENT_FLAGS
    if a.user_data_128 != e.user_data_128:
        return A.EXISTS_WITH_DIFFERENT_USER_DATA_128
    if a.user_data_64 != e.user_data_64:
        return A.EXISTS_WITH_DIFFERENT_USER_DATA_64
    if a.user_data_32 != e.user_data_32:
        return A.EXISTS_WITH_DIFFERENT_USER_DATA_32
    if a.ledger != e.ledger:
        return A.EXISTS_WITH_DIFFERENT_LEDGER
    if a.code != e.code:
        return A.EXISTS_WITH_DIFFERENT_CODE
    return A.EXISTS


def _create_account(a: Account, view: LedgerView, ts: int) -> A | Account:
    if a.timestamp:
        return A.TIMESTAMP_MUST_BE_ZERO
    if a.flags & NOT_ACCOUNT_FLAGS:
        return A.RESERVED_FLAG
    if a.id == 0:
        return A.ID_MUST_NOT_BE_ZERO
    if a.id == U128_MAX:
        return A.ID_MUST_NOT_BE_INT_MAX
    existing = view.accounts.get(a.id)
    if existing is not None:
        return _account_exists(a, existing.snapshot())
    if a.flags & DMNEC and a.flags & CMNED:
        return A.FLAGS_ARE_MUTUALLY_EXCLUSIVE
    if a.debits_pending:
        return A.DEBITS_PENDING_MUST_BE_ZERO
    if a.debits_posted:
        return A.DEBITS_POSTED_MUST_BE_ZERO
    if a.credits_pending:
        return A.CREDITS_PENDING_MUST_BE_ZERO
    if a.credits_posted:
        return A.CREDITS_POSTED_MUST_BE_ZERO
    if a.ledger == 0:
        return A.LEDGER_MUST_NOT_BE_ZERO
    if a.code == 0:
        return A.CODE_MUST_NOT_BE_ZERO
    if a.ledger not in view.ledgers:
        return A.LEDGER_NOT_FOUND
    return a._replace(timestamp=ts)


def decide_accounts(batch: Sequence[Account], view: LedgerView, ts_first: int) -> AccountEffects:
    fx = AccountEffects(results=[A.OK] * len(batch))
    n = len(batch)
    chain_start = -1
    chain_created = 0
    i = 0
    while i < n:
        a = batch[i]
        linked = a.flags & int(AccountFlags.LINKED)
        if linked and chain_start < 0:
            chain_start, chain_created = i, len(fx.created)
        outcome: A | Account = (
            A.LINKED_EVENT_CHAIN_OPEN
            if linked and i == n - 1
            else _create_account(a, view, ts_first + i)
        )
        if isinstance(outcome, Account):
            fx.created.append(outcome)
            view.accounts[outcome.id] = AccountState(outcome)
            fx.results[i] = A.OK
            if chain_start >= 0 and not linked:
                chain_start = -1
        else:
            fx.results[i] = outcome
            if chain_start >= 0:
                i = _fail_account_chain(batch, fx, view, chain_start, chain_created, i)
                chain_start = -1
        i += 1
    fx.last_timestamp = ts_first + n - 1
    return fx


def _fail_account_chain(
    batch: Sequence[Account],
    fx: AccountEffects,
    view: LedgerView,
    start: int,
    created_len: int,
    failed_at: int,
) -> int:
    for made in fx.created[created_len:]:
        view.accounts.pop(made.id, None)
    del fx.created[created_len:]
    for j in range(start, failed_at):
        fx.results[j] = A.LINKED_EVENT_FAILED
    j, n = failed_at, len(batch)
    linked = int(AccountFlags.LINKED)
    while batch[j].flags & linked and j + 1 < n:
        j += 1
        last_open = j == n - 1 and batch[j].flags & linked
        fx.results[j] = A.LINKED_EVENT_CHAIN_OPEN if last_open else A.LINKED_EVENT_FAILED
    return j
