"""check_transfers: flags spelt as TransferFlags (as the payments and lending code does) come
out as plain ints, cheaply; anything else keeps the full per-field check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from entrepot.ledger import (
    AccountFlags,
    BatchTooLarge,
    LedgerInputError,
    Transfer,
    TransferFlags,
    chain_batches,
)
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


# chain_batches: the one splitter of lists longer than a request (the CLI's files, the
# deadline pass's voids, settlement's posts).


def test_chain_batches_cut_only_at_chain_ends() -> None:
    L = int(TransferFlags.LINKED)
    # chains: [0,1,2] [3] [4,5] [6]
    flags = [L, L, 0, 0, L, 0, 0]
    assert chain_batches(flags, size=3) == [(0, 3), (3, 6), (6, 7)]
    assert chain_batches(flags, size=4) == [(0, 4), (4, 7)]
    assert chain_batches(flags, size=7) == [(0, 7)]
    assert chain_batches([], size=3) == []


@given(
    st.lists(st.booleans(), max_size=60),
    st.integers(min_value=1, max_value=12),
)
def test_chain_batches_cover_everything_in_order(linked: list[bool], size: int) -> None:
    flags = [int(TransferFlags.LINKED) if x else 0 for x in linked]
    try:
        slices = chain_batches(flags, size=size)
    except BatchTooLarge:
        # only when some chain really is longer than a request
        run = longest = 0
        for x in linked:
            run += 1
            longest = max(longest, run)
            if not x:
                run = 0
        assert longest > size
        return
    assert [i for a, b in slices for i in range(a, b)] == list(range(len(flags)))
    for a, b in slices:
        assert 0 < b - a <= size
        if b < len(flags):
            assert not flags[b - 1] & TransferFlags.LINKED  # a chain never spans two


def test_a_chain_longer_than_a_request_is_refused() -> None:
    L = int(TransferFlags.LINKED)
    with pytest.raises(BatchTooLarge, match="linked chain longer than 3"):
        chain_batches([0, L, L, L, 0], size=3)
