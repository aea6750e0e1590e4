"""Plain batches, decided all at once (ADR 0003).

Most of a ledger's traffic is plain posted transfers with fresh ids: no flags, no pending id,
no timeout. For such a batch the state machine's per-event checks reduce to column checks, and
its effect on every account is a sum. :func:`decide_plain` decides the whole batch with numpy
and returns its effects only when *every* event would be ``ok`` in the state machine
(:mod:`entrepot.ledger.machine`): ids above every id ever stored or failed and unique in the
batch, known accounts, one ledger per transfer and its accounts, no overflow, and limit flags
holding after every event, in order. Otherwise it returns ``None`` and the caller decides the
batch event by event, which gives the exact result code of each event. The fast path is thus
an optimisation that can never change a result; the property tests hold it to that.

The cached accounts' balances live in an :class:`AccountTable` of numpy columns, so that a
batch is checked and applied without a Python step per account. The state machine works on
:class:`~entrepot.ledger.machine.AccountState` objects: :meth:`AccountTable.sync_states`
brings them up to date before it runs, and :meth:`AccountTable.refresh` takes back what it
changed.

Pure: no I/O. :func:`plain_columns` validates and transposes the batch before the write
transaction; the caller finds the accounts' rows (:meth:`AccountTable.rows`), loading missing
accounts, then calls :func:`decide_plain` and, once the batch is written, :func:`apply_plain`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from entrepot.kernel.ids import U128_MAX
from entrepot.kernel.limits import AMOUNT_MAX
from entrepot.ledger.machine import CMNED, DMNEC, HISTORY, AccountState
from entrepot.ledger.model import Transfer
from entrepot.ledger.validate import TRANSFER_RANGES

#: Fields a plain transfer leaves zero (pending id, timeout, flags, timestamp) and the others
#: with their largest values, by position in the record.
_ZERO_FIELDS = tuple(
    i
    for i, (name, _) in enumerate(TRANSFER_RANGES)
    if name in ("pending_id", "timeout", "flags", "timestamp")
)
_VALUE_RANGES = tuple(
    (i, high) for i, (_, high) in enumerate(TRANSFER_RANGES) if i not in _ZERO_FIELDS
)
_TRANSFER_TYPE = {Transfer}
_INT_TYPE = {int}
I64 = npt.NDArray[np.int64]
U32 = npt.NDArray[np.uint32]


class PlainColumns(NamedTuple):
    """A batch as columns."""

    ids: tuple[int, ...]
    debit_account_ids: tuple[int, ...]
    credit_account_ids: tuple[int, ...]
    amounts: tuple[int, ...]
    ledgers: tuple[int, ...]
    codes: tuple[int, ...]
    user_data_128: tuple[int, ...]
    user_data_64: tuple[int, ...]
    user_data_32: tuple[int, ...]


class PlainBatch(NamedTuple):
    """A plain batch in which every event is ``ok``, its accounts as table rows."""

    columns: PlainColumns
    debit_rows: I64
    credit_rows: I64
    amounts: I64
    ledgers: I64


class AccountTable:
    """The cached accounts as numpy columns, one row each (rows are never reused until the
    table is dropped with the cache). The plain path reads and adds to the balance columns
    here; rows it changed are *ahead* of their AccountState until :meth:`sync_states`, and
    *dirty* (not yet in the database's balance columns) until the caller flushes them."""

    ledger: I64
    flags: I64
    d_total: I64  # pending + posted debits
    c_total: I64
    dpo: I64
    cpo: I64
    stamp: I64  # the account's timestamp (its row's key)
    key: npt.NDArray[np.uint64]  # the account's id as two big-endian 64-bit halves
    ahead: npt.NDArray[np.bool_]
    dirty: npt.NDArray[np.bool_]

    def __init__(self, capacity: int = 1024) -> None:
        self.row_of: dict[int, int] = {}
        self.states: list[AccountState] = []
        # Whether a row may be ahead: False lets sync_states, run before every batch decided
        # event by event, skip scanning the column (most of a payment's writes have no plain
        # batch between them).
        self.any_ahead = False
        self._grow(capacity)

    def _grow(self, capacity: int) -> None:
        old = getattr(self, "ledger", None)
        n = len(self.states)

        for name, dtype, width in (
            ("ledger", np.int64, 0),
            ("flags", np.int64, 0),
            ("d_total", np.int64, 0),
            ("c_total", np.int64, 0),
            ("dpo", np.int64, 0),
            ("cpo", np.int64, 0),
            ("stamp", np.int64, 0),
            ("key", ">u8", 2),
            ("ahead", np.bool_, 0),
            ("dirty", np.bool_, 0),
        ):
            col = np.zeros((capacity, width) if width else (capacity,), dtype=dtype)
            if old is not None:
                col[:n] = getattr(self, name)[:n]
            setattr(self, name, col)

    def __len__(self) -> int:
        return len(self.states)

    def add(self, states: Iterable[AccountState]) -> None:
        for s in states:
            if s.id in self.row_of:
                continue
            i = len(self.states)
            if i == len(self.ledger):
                self._grow(2 * i)
            self.row_of[s.id] = i
            self.states.append(s)
            self.ledger[i] = s.ledger
            self.flags[i] = s.flags
            self.stamp[i] = s.timestamp
            self.key[i] = (s.id >> 64, s.id & 0xFFFF_FFFF_FFFF_FFFF)
            self._set(i, s)

    def _set(self, i: int, s: AccountState) -> None:
        self.d_total[i] = s.dp + s.dpo
        self.c_total[i] = s.cp + s.cpo
        self.dpo[i] = s.dpo
        self.cpo[i] = s.cpo

    def rows(self, account_ids: Sequence[int]) -> I64 | None:
        """The rows of these accounts, or None if one is not in the table."""
        try:
            return np.fromiter(
                map(self.row_of.__getitem__, account_ids), dtype=np.int64, count=len(account_ids)
            )
        except KeyError:
            return None

    def sync_states(self) -> None:
        """Bring the AccountStates of rows the plain path changed up to date."""
        if not self.any_ahead:
            return
        self.any_ahead = False
        ahead = np.flatnonzero(self.ahead[: len(self)])
        if not len(ahead):
            return
        states = self.states
        for i, dpo, cpo in zip(
            ahead.tolist(), self.dpo[ahead].tolist(), self.cpo[ahead].tolist(), strict=True
        ):
            s = states[i]
            s.dpo = dpo
            s.cpo = cpo
        self.ahead[ahead] = False

    def refresh(self, states: Iterable[AccountState]) -> None:
        """Take back balances the state machine changed."""
        row_of = self.row_of
        for s in states:
            i = row_of.get(s.id)
            if i is not None:
                self._set(i, s)

    def take_dirty(self) -> list[tuple[int, int, int]]:
        """(debits posted, credits posted, timestamp) of every dirty row; clears the marks."""
        dirty = np.flatnonzero(self.dirty[: len(self)])
        self.dirty[dirty] = False
        return list(
            zip(
                self.dpo[dirty].tolist(),
                self.cpo[dirty].tolist(),
                self.stamp[dirty].tolist(),
                strict=True,
            )
        )


def plain_columns(batch: Sequence[Transfer]) -> PlainColumns | None:
    """The batch as columns if it may be plain, else None (then the caller runs
    :func:`entrepot.ledger.validate.check_transfers` and decides event by event).

    Checks everything ``check_transfers`` does, column by column: every record a
    ``Transfer``, every field a plain ``int`` in its range. Flags, pending ids, timeouts and
    timestamps must be zero; ledgers and codes non-zero; ids unique in the batch. Account ids
    are checked by finding them among the loaded accounts (:meth:`AccountTable.rows`).
    """
    if not batch or set(map(type, batch)) != _TRANSFER_TYPE:
        return None
    columns = tuple(zip(*batch, strict=True))
    if any(set(map(type, c)) != _INT_TYPE for c in columns):
        return None  # bool, IntFlag or a wrong type: check_transfers says which
    if any(any(columns[i]) for i in _ZERO_FIELDS):
        return None
    for i, high in _VALUE_RANGES:  # as check_transfers bounds them
        column = columns[i]
        if any(column) and (min(column) < 0 or max(column) > high):
            return None  # out of range: check_transfers says so
    (ids, drs, crs, amounts, _, u128, u64, u32, _, ledgers, codes, _, _) = columns
    # In range, but a result code rather than ok: the state machine gives it.
    if min(ids) == 0 or max(ids) == U128_MAX or len(set(ids)) != len(ids):
        return None
    if min(ledgers) == 0 or min(codes) == 0:
        return None
    return PlainColumns(ids, drs, crs, amounts, ledgers, codes, u128, u64, u32)


def decide_plain(
    cols: PlainColumns, table: AccountTable, debit_rows: I64, credit_rows: I64
) -> PlainBatch | None:
    """Every event of the batch ``ok``, or None. Changes nothing: :func:`apply_plain` does,
    once the batch is written."""
    dr, cr = debit_rows, credit_rows
    if bool((dr == cr).any()):
        return None
    total = sum(cols.amounts)
    if total > AMOUNT_MAX:  # then no sum below can overflow int64
        return None
    ledgers = np.array(cols.ledgers, dtype=np.int64)
    if bool((table.ledger[dr] != ledgers).any() or (table.ledger[cr] != ledgers).any()):
        return None
    dr_flags, cr_flags = table.flags[dr], table.flags[cr]
    if bool(((dr_flags | cr_flags) & HISTORY).any()):  # history rows: the machine's job
        return None
    amounts = np.array(cols.amounts, dtype=np.int64)
    # Balances only grow here: pending + posted on each side must stay within AMOUNT_MAX
    # (which keeps posted within it too). No account gets more than the batch's total, so
    # that bound settles it unless an account is near the limit; then sum per account.
    headroom = AMOUNT_MAX - total
    if int(table.d_total[dr].max()) > headroom and _overflows(table.d_total, dr, amounts):
        return None
    if int(table.c_total[cr].max()) > headroom and _overflows(table.c_total, cr, amounts):
        return None
    if bool((dr_flags & DMNEC).any() or (cr_flags & CMNED).any()) and not _limits_hold(
        dr, cr, amounts, table.flags, table.d_total, table.dpo, table.c_total, table.cpo
    ):
        return None
    return PlainBatch(cols, dr, cr, amounts, ledgers)


def _overflows(totals: I64, rows: I64, amounts: I64) -> bool:
    accounts, inverse = np.unique(rows, return_inverse=True)
    sums = np.zeros(len(accounts), dtype=np.int64)
    np.add.at(sums, inverse, amounts)
    return bool((AMOUNT_MAX - totals[accounts] < sums).any())


def _limits_hold(
    dr: I64, cr: I64, amounts: I64, flags: I64, d_total: I64, dpo: I64, c_total: I64, cpo: I64
) -> bool:
    """Whether every limit flag holds after every event, in batch order, as the state machine
    checks it: a debit to a debits-must-not-exceed-credits account needs ``dp + dpo + amount``
    within its credits so far; a credit to a credits-must-not-exceed-debits account likewise.
    ``d_total`` and ``c_total`` are each account's pending plus posted debits and credits."""
    limited = (flags & (DMNEC | CMNED)) != 0
    pos = np.arange(len(amounts), dtype=np.int64)
    on_dr, on_cr = limited[dr], limited[cr]
    acct = np.concatenate([dr[on_dr], cr[on_cr]]).astype(np.int64)
    order = np.lexsort((np.concatenate([pos[on_dr], pos[on_cr]]), acct))
    acct = acct[order]
    is_debit = np.concatenate(
        [np.ones(int(on_dr.sum()), dtype=bool), np.zeros(int(on_cr.sum()), dtype=bool)]
    )[order]
    amt = np.concatenate([amounts[on_dr], amounts[on_cr]])[order]
    dd = np.where(is_debit, amt, 0)
    cd = np.where(is_debit, 0, amt)
    # Running sums within each account's touches (inclusive of the touch itself).
    cum_d, cum_c = np.cumsum(dd), np.cumsum(cd)
    idx = np.arange(len(acct))
    starts = np.ones(len(acct), dtype=bool)
    starts[1:] = acct[1:] != acct[:-1]
    first = np.maximum.accumulate(np.where(starts, idx, 0))
    run_d = cum_d - cum_d[first] + dd[first]
    run_c = cum_c - cum_c[first] + cd[first]
    check_d = is_debit & ((flags[acct] & DMNEC) != 0)
    check_c = ~is_debit & ((flags[acct] & CMNED) != 0)
    over_d = (d_total[acct] + run_d > cpo[acct] + run_c) & check_d
    over_c = (c_total[acct] + run_c > dpo[acct] + run_d) & check_c
    return not bool(over_d.any() or over_c.any())


def apply_plain(plain: PlainBatch, table: AccountTable) -> None:
    """Add the batch to the table's balances; its rows are ahead and dirty."""
    dr, cr, amounts = plain.debit_rows, plain.credit_rows, plain.amounts
    np.add.at(table.dpo, dr, amounts)
    np.add.at(table.d_total, dr, amounts)
    np.add.at(table.cpo, cr, amounts)
    np.add.at(table.c_total, cr, amounts)
    table.any_ahead = True
    for marks in (table.ahead, table.dirty):
        marks[dr] = True
        marks[cr] = True


def segment_accounts(plain: PlainBatch, table: AccountTable) -> tuple[bytes, U32, U32]:
    """The batch's distinct accounts (16-byte ids, packed) and, per transfer, the index of
    its debit and credit account among them: how a segment stores accounts."""
    rows = np.concatenate([plain.debit_rows, plain.credit_rows])
    n = len(plain.debit_rows)
    if len(table) <= 8 * len(rows):  # a mark per table row costs less than a sort
        seen = np.zeros(len(table), dtype=np.bool_)
        seen[rows] = True
        distinct = np.flatnonzero(seen)
        number = np.zeros(len(table), dtype=np.uint32)
        number[distinct] = np.arange(len(distinct), dtype=np.uint32)
        index = number[rows]
    else:
        distinct, inverse = np.unique(rows, return_inverse=True)
        index = inverse.astype(np.uint32)
    return table.key[distinct].tobytes(), index[:n], index[n:]
