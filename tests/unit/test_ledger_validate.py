"""check_transfers: flags spelt as TransferFlags (as the payments and lending code does) come
out as plain ints, cheaply; anything else keeps the full per-field check."""

from __future__ import annotations

import pytest

from entrepot.ledger import AccountFlags, LedgerInputError, Transfer, TransferFlags
from entrepot.ledger.validate import check_transfers


def test_transfer_flags_become_plain_ints() -> None:
    batch = [
        Transfer(1, 1, 2, 5, ledger=978, code=1, flags=TransferFlags.LINKED),
        Transfer(
            2, 1, 2, 5, ledger=978, code=1, flags=TransferFlags.PENDING | TransferFlags.LINKED
        ),
        Transfer(3, 1, 2, 5, ledger=978, code=1),
        Transfer(4, 1, 2, 5, ledger=978, code=1, flags=AccountFlags.LINKED),  # another IntFlag
    ]
    out = check_transfers(batch)
    assert [t.flags for t in out] == [1, 3, 0, 1]
    assert all(type(t.flags) is int for t in out)
    assert out[2] is batch[2]  # untouched events are not copied
    assert all(type(t.flags) is TransferFlags for t in batch[:2])  # the caller's batch intact


def test_a_plain_int_batch_is_returned_as_it_is() -> None:
    batch = [Transfer(1, 1, 2, 5, ledger=978, code=1, flags=1)]
    assert check_transfers(batch) is batch


@pytest.mark.parametrize("flags", [True, 1.0, "1", 1 << 16])
def test_bad_flags_are_refused(flags: object) -> None:
    with pytest.raises(LedgerInputError, match="flags"):
        check_transfers([Transfer(1, 1, 2, 5, ledger=978, code=1, flags=flags)])  # type: ignore[arg-type]


@pytest.mark.parametrize("batch", [None, "ab", b"ab", iter([]), 7, {1: 2}])
def test_a_batch_that_is_not_a_list_is_refused_by_name(batch: object) -> None:
    """``create_transfers(None)`` was a TypeError from ``len()``; a generator would have been
    read twice (sized, then checked)."""
    with pytest.raises(LedgerInputError, match="transfers must be a list, got"):
        check_transfers(batch)  # type: ignore[arg-type]
