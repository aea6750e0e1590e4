"""Batch-level input checks, run before anything is read or written.

A field of the wrong type or outside its range (a negative or oversize amount, an id that is
not an unsigned 128-bit integer) rejects the whole request with a message naming the event
index and the field, exactly as a TigerBeetle client refuses to encode such a batch. Values in
range but not allowed (zero ids, unknown flags, ...) are per-event result codes instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from entrepot.kernel.ids import U128_MAX
from entrepot.kernel.limits import AMOUNT_MAX, BATCH_EVENTS_MAX, U16_MAX, U32_MAX, USER_DATA_64_MAX
from entrepot.ledger.errors import BatchTooLarge, LedgerInputError
from entrepot.ledger.model import Account, AccountFlags, Transfer, TransferFlags

assert int(AccountFlags.LINKED) == int(TransferFlags.LINKED)

#: Each transfer field and its largest value (all are at least 0), in the record's order.
TRANSFER_RANGES: tuple[tuple[str, int], ...] = (
    ("id", U128_MAX),
    ("debit_account_id", U128_MAX),
    ("credit_account_id", U128_MAX),
    ("amount", AMOUNT_MAX),
    ("pending_id", U128_MAX),
    ("user_data_128", U128_MAX),
    ("user_data_64", USER_DATA_64_MAX),
    ("user_data_32", U32_MAX),
    ("timeout", U32_MAX),
    ("ledger", U32_MAX),
    ("code", U16_MAX),
    ("flags", U16_MAX),
    ("timestamp", AMOUNT_MAX),
)
_ACCOUNT_RANGES: tuple[tuple[str, int], ...] = (
    ("id", U128_MAX),
    ("ledger", U32_MAX),
    ("code", U16_MAX),
    ("flags", U16_MAX),
    ("user_data_128", U128_MAX),
    ("user_data_64", USER_DATA_64_MAX),
    ("user_data_32", U32_MAX),
    ("debits_pending", AMOUNT_MAX),
    ("debits_posted", AMOUNT_MAX),
    ("credits_pending", AMOUNT_MAX),
    ("credits_posted", AMOUNT_MAX),
    ("timestamp", AMOUNT_MAX),
)


def check_batch_size(batch: Sequence[object], what: str) -> None:
    if type(batch) is not list and (
        isinstance(batch, str | bytes) or not isinstance(batch, Sequence)
    ):  # None was a TypeError from len(); a generator would be read twice
        raise LedgerInputError(f"{what} must be a list, got {type(batch).__name__}", field="batch")
    if len(batch) > BATCH_EVENTS_MAX:
        raise BatchTooLarge(
            f"{len(batch)} {what} in one request; at most {BATCH_EVENTS_MAX:,} are allowed",
            field="batch",
        )


def chain_batches(flags: Sequence[int], size: int | None = None) -> list[tuple[int, int]]:
    """``(start, stop)`` slices, in order and none empty, of at most ``size`` events (given by
    their flags) that never cut a linked chain: a chain may not span two requests. The one
    place a list longer than a request is split (the CLI's files, the deadline pass's voids,
    settlement); a chain longer than ``size`` is refused (BatchTooLarge). Accounts' flags
    too: the linked flag is the same bit for both. ``size`` defaults to BATCH_EVENTS_MAX."""
    if size is None:
        size = BATCH_EVENTS_MAX
    slices: list[tuple[int, int]] = []
    start = 0
    chain_start = 0
    for index, event_flags in enumerate(flags):
        if index - start == size:
            if chain_start == start:
                raise BatchTooLarge(
                    f"a linked chain longer than {size:,} events cannot go in one request",
                    field="batch",
                )
            slices.append((start, chain_start))
            start = chain_start
        if not event_flags & TransferFlags.LINKED:
            chain_start = index + 1
    slices.append((start, len(flags)))
    return [s for s in slices if s[0] < s[1]]


def _normalise(
    index: int, record: tuple[object, ...], ranges: tuple[tuple[str, int], ...]
) -> list[int]:
    """Plain ints for int subclasses such as IntFlag (never bool); raise on anything else."""
    out: list[int] = []
    for (name, high), value in zip(ranges, record, strict=True):
        if isinstance(value, int) and not isinstance(value, bool):
            value = int(value)
        else:
            raise LedgerInputError(
                f"event {index}: {name} must be an integer, got {type(value).__name__} {value!r}",
                field=f"{index}.{name}",
            )
        if not 0 <= value <= high:
            raise LedgerInputError(
                f"event {index}: {name}={value} is outside 0..{high}", field=f"{index}.{name}"
            )
        out.append(value)
    return out


def check_transfers(batch: Sequence[Transfer]) -> Sequence[Transfer]:
    """Return the batch, with int subclasses (IntFlag) made plain ints; raise if malformed."""
    check_batch_size(batch, "transfers")
    fixed: list[Transfer] | None = None
    for index, t in enumerate(batch):
        if type(t) is not Transfer:
            raise LedgerInputError(
                f"event {index}: expected a Transfer, got {type(t).__name__}", field=str(index)
            )
        (id_, dr, cr, amount, pid, u128, u64, u32, timeout, ledger, code, flags, ts) = t
        if not (
            type(id_) is int
            and type(dr) is int
            and type(cr) is int
            and type(amount) is int
            and type(pid) is int
            and type(u128) is int
            and type(u64) is int
            and type(u32) is int
            and type(timeout) is int
            and type(ledger) is int
            and type(code) is int
            and (type(flags) is int or type(flags) is TransferFlags)
            and type(ts) is int
            and 0 <= id_ <= U128_MAX
            and 0 <= dr <= U128_MAX
            and 0 <= cr <= U128_MAX
            and 0 <= amount <= AMOUNT_MAX
            and 0 <= pid <= U128_MAX
            and 0 <= u128 <= U128_MAX
            and 0 <= u64 <= USER_DATA_64_MAX
            and 0 <= u32 <= U32_MAX
            and 0 <= timeout <= U32_MAX
            and 0 <= ledger <= U32_MAX
            and 0 <= code <= U16_MAX
            and 0 <= flags <= U16_MAX
            and 0 <= ts <= AMOUNT_MAX
        ):
            if fixed is None:
                fixed = list(batch)
            fixed[index] = Transfer(*_normalise(index, t, TRANSFER_RANGES))
        elif type(flags) is not int:  # TransferFlags, the usual way to spell them: a plain int
            if fixed is None:
                fixed = list(batch)
            fixed[index] = t._replace(flags=int(flags))
    return batch if fixed is None else fixed


def check_accounts(batch: Sequence[Account]) -> list[Account]:
    """Return the batch with plain ints; raise if any event is malformed."""
    check_batch_size(batch, "accounts")
    out: list[Account] = []
    for index, a in enumerate(batch):
        if type(a) is not Account:
            raise LedgerInputError(
                f"event {index}: expected an Account, got {type(a).__name__}", field=str(index)
            )
        out.append(Account(*_normalise(index, a, _ACCOUNT_RANGES)))
    return out
