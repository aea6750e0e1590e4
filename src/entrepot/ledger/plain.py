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

Pure: no I/O. :func:`plain_columns` validates and transposes the batch before the write
transaction; the caller loads the accounts it names, then calls :func:`decide_plain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from entrepot.kernel.ids import U128_MAX
from entrepot.kernel.limits import AMOUNT_MAX, U16_MAX, U32_MAX, USER_DATA_64_MAX
from entrepot.ledger.machine import CMNED, DMNEC, HISTORY, AccountState
from entrepot.ledger.model import Transfer

_TRANSFER_TYPE = {Transfer}
_INT_TYPE = {int}
I64 = npt.NDArray[np.int64]
U32 = npt.NDArray[np.uint32]


class PlainColumns(NamedTuple):
    """A batch as columns, with every account numbered in order of first appearance."""

    ids: tuple[int, ...]
    accounts: list[int]  # distinct account ids; debit_index/credit_index point into it
    debit_index: U32
    credit_index: U32
    amounts: tuple[int, ...]
    ledgers: tuple[int, ...]
    codes: tuple[int, ...]
    user_data_128: tuple[int, ...]
    user_data_64: tuple[int, ...]
    user_data_32: tuple[int, ...]


class PlainBatch(NamedTuple):
    """The effects of a plain batch in which every event is ``ok``."""

    columns: PlainColumns
    states: list[AccountState]  # the accounts' cache entries, as ``columns.accounts``
    debits: I64  # per account: the amount this batch debits it
    credits: I64
    amounts: I64
    ledgers: U32


def plain_columns(batch: Sequence[Transfer]) -> PlainColumns | None:
    """The batch as columns if it may be plain, else None (then the caller runs
    :func:`entrepot.ledger.validate.check_transfers` and decides event by event).

    Checks everything ``check_transfers`` does, column by column: every record a
    ``Transfer``, every field a plain ``int`` in its range. Flags, pending ids, timeouts and
    timestamps must be zero; ledgers and codes non-zero; ids unique in the batch. Account ids
    are checked by finding them among the loaded accounts (:func:`decide_plain`).
    """
    if not batch or set(map(type, batch)) != _TRANSFER_TYPE:
        return None
    columns = tuple(zip(*batch, strict=True))
    if any(set(map(type, c)) != _INT_TYPE for c in columns):
        return None  # bool, IntFlag or a wrong type: check_transfers says which
    (ids, drs, crs, amounts, pids, u128, u64, u32, timeouts, ledgers, codes, flags, stamps) = (
        columns
    )
    if any(flags) or any(pids) or any(timeouts) or any(stamps):
        return None
    if min(ids) <= 0 or max(ids) >= U128_MAX or len(set(ids)) != len(ids):
        return None
    if min(amounts) < 0 or max(amounts) > AMOUNT_MAX:
        return None
    if min(ledgers) <= 0 or max(ledgers) > U32_MAX or min(codes) <= 0 or max(codes) > U16_MAX:
        return None
    if any(u128) and (min(u128) < 0 or max(u128) > U128_MAX):
        return None
    if any(u64) and (min(u64) < 0 or max(u64) > USER_DATA_64_MAX):
        return None
    if any(u32) and (min(u32) < 0 or max(u32) > U32_MAX):
        return None
    index = {a: k for k, a in enumerate(dict.fromkeys(drs + crs))}
    n = len(ids)
    get = index.__getitem__
    return PlainColumns(
        ids,
        list(index),
        np.fromiter(map(get, drs), dtype=np.uint32, count=n),
        np.fromiter(map(get, crs), dtype=np.uint32, count=n),
        amounts,
        ledgers,
        codes,
        u128,
        u64,
        u32,
    )


def decide_plain(cols: PlainColumns, accounts: dict[int, AccountState]) -> PlainBatch | None:
    """Every event of the batch ``ok``, and the sums it adds per account; or None.

    Does not change the account states: :func:`apply_plain` does, once the batch is written.
    """
    states = [accounts.get(a) for a in cols.accounts]
    if None in states:
        return None
    known: list[AccountState] = states  # type: ignore[assignment]
    dr, cr = cols.debit_index, cols.credit_index
    if bool((dr == cr).any()):
        return None
    if sum(cols.amounts) > AMOUNT_MAX:  # then no sum below can overflow int64
        return None
    u = len(known)
    # One pass per value over the accounts: ledger and flags packed in one integer, pending
    # plus posted on each side (the overflow checks need only those; limits need more).
    static = np.fromiter((s.ledger << 16 | s.flags for s in known), dtype=np.int64, count=u)
    acc_ledger = static >> 16
    acc_flags = static & 0xFFFF
    ledgers = np.array(cols.ledgers, dtype=np.uint32)
    if bool((acc_ledger[dr] != ledgers).any() or (acc_ledger[cr] != ledgers).any()):
        return None
    if bool((acc_flags & HISTORY).any()):  # history rows are per event: the machine's job
        return None
    amounts = np.array(cols.amounts, dtype=np.int64)
    debits = np.zeros(u, dtype=np.int64)
    credits = np.zeros(u, dtype=np.int64)
    np.add.at(debits, dr, amounts)
    np.add.at(credits, cr, amounts)
    # uint64: the sums fit even if a stored balance were out of range.
    d_sum = np.fromiter((s.dp + s.dpo for s in known), dtype=np.uint64, count=u)
    c_sum = np.fromiter((s.cp + s.cpo for s in known), dtype=np.uint64, count=u)
    # Balances only grow here, so the final sums are the largest; pending + posted within
    # AMOUNT_MAX also keeps posted within it.
    if bool((d_sum > AMOUNT_MAX).any() or (c_sum > AMOUNT_MAX).any()):
        return None
    d_total: I64 = d_sum.astype(np.int64)
    c_total: I64 = c_sum.astype(np.int64)
    if bool((AMOUNT_MAX - d_total < debits).any() or (AMOUNT_MAX - c_total < credits).any()):
        return None
    if bool((acc_flags & (DMNEC | CMNED)).any()):
        dpo = np.fromiter((s.dpo for s in known), dtype=np.int64, count=u)
        cpo = np.fromiter((s.cpo for s in known), dtype=np.int64, count=u)
        if not _limits_hold(dr, cr, amounts, acc_flags, d_total, dpo, c_total, cpo):
            return None
    return PlainBatch(cols, known, debits, credits, amounts, ledgers)


def _limits_hold(
    dr: U32, cr: U32, amounts: I64, flags: I64, d_total: I64, dpo: I64, c_total: I64, cpo: I64
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


def apply_plain(plain: PlainBatch) -> None:
    """Add the batch's sums to the cached account states."""
    for s, d, c in zip(plain.states, plain.debits.tolist(), plain.credits.tolist(), strict=True):
        s.dpo += d
        s.cpo += c
