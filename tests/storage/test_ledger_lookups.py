"""Lookups by id and by timestamp go to the database in chunks whose IN (...) lists are padded
to a few sizes (LOOKUP_SIZES). Every size boundary must find exactly what was asked."""

from __future__ import annotations

from typing import Any

import pytest

from entrepot.ledger import TIME_MAX, Account, Ledger, LedgerInputError, Transfer, TransferFlags
from entrepot.ledger.store import LOOKUP_CHUNK, LOOKUP_SIZES, padded_chunks

COUNTS = (1, 3, 4, 5, 31, 32, 33, 499, 500, 501, 1_001)


@pytest.mark.parametrize("n", [0, *COUNTS])
def test_padded_chunks_cover_every_value_once_in_the_smallest_size(n: int) -> None:
    values = list(range(n))
    chunks = list(padded_chunks(values))
    assert [v for c in chunks for v in c if v is not None] == values
    for chunk in chunks:
        assert len(chunk) in LOOKUP_SIZES
        real = sum(1 for v in chunk if v is not None)
        assert 0 < real <= LOOKUP_CHUNK
        smaller = [s for s in LOOKUP_SIZES if s < len(chunk)]
        assert not smaller or real > max(smaller), "a smaller size would have held the chunk"


@pytest.fixture
def filled(ledger: Ledger) -> Ledger:
    ledger.define_ledger(978, "EUR")
    accounts = [Account(id=i, ledger=978, code=1) for i in range(1, 1_102)]
    assert set(ledger.create_accounts(accounts)) == {"ok"}
    # pending transfers are stored as rows (plain batches become segments, ADR 0003)
    transfers = [
        Transfer(
            id=10_000 + k,
            debit_account_id=1 + k % 50,
            credit_account_id=1_101,
            amount=1 + k,
            ledger=978,
            code=1,
            flags=TransferFlags.PENDING,
        )
        for k in range(1_001)
    ]
    assert set(ledger.create_transfers(transfers)) == {"ok"}
    return ledger


def test_lookups_find_exactly_the_ids_asked_at_every_size(filled: Ledger) -> None:
    for n in COUNTS:
        wanted = list(range(n, 0, -1))  # in an order of the caller's
        asked = [*wanted, 5_000_000, 6_000_000]  # and ids that do not exist
        assert [a.id for a in filled.lookup_accounts(asked)] == wanted
        transfers = [10_000 + k for k in range(n)]
        found = filled.lookup_transfers([*transfers, 9_999])
        assert [t.id for t in found] == transfers
        assert [t.amount for t in found] == [1 + k for k in range(n)]


def test_an_accounts_transfers_by_timestamp_past_one_chunk(filled: Ledger) -> None:
    # account 1_101 is credited by all 1,001 transfers: its history spans three chunks
    history = filled.get_account_transfers(1_101, limit=1_001)
    assert [t.id for t in history] == [10_000 + k for k in range(1_001)]
    assert len({t.timestamp for t in history}) == 1_001


def test_a_lookup_of_an_id_no_account_or_transfer_can_have_is_a_clear_error(
    ledger: Ledger,
) -> None:
    """Writes refuse such ids by name; reads raised the OverflowError of packing them."""
    from entrepot.ledger import LedgerInputError

    for read in (
        lambda: ledger.lookup_transfers([2**128]),
        lambda: ledger.lookup_accounts([-1]),
        lambda: ledger.get_account_transfers(2**128),
        lambda: ledger.get_transfer(-5),
        lambda: ledger.get_account(2**200),
    ):
        with pytest.raises(LedgerInputError) as refused:
            read()
        assert refused.value.field == "ids" and "0..2^128-1" in str(refused.value)
    assert ledger.lookup_accounts([2**128 - 1]) == [] and ledger.lookup_transfers([0]) == []


def test_a_statement_of_an_id_no_account_can_have_is_a_clear_error(ledger: Ledger) -> None:
    """Found in review: statement() packed the id unchecked (OverflowError), and read
    account 1 for ``True``."""
    from entrepot.ledger import LedgerInputError

    for account_id in (-1, 2**128, True):
        with pytest.raises(LedgerInputError) as refused:
            ledger.statement(account_id)
        assert refused.value.field == "ids"


def test_a_time_range_past_time_max_or_not_integers_is_a_clear_error(ledger: Ledger) -> None:
    """Found in review: an ``until_ns`` past TIME_MAX reached the database (SQLite raised
    OverflowError, PostgreSQL its own error), and a float ``since_ns`` was used as given."""
    from entrepot.ledger import TIME_MAX, AccountFlags, LedgerInputError

    ledger.define_ledger(978, "EUR")
    assert ledger.create_accounts([Account(1, 978, 1, flags=AccountFlags.HISTORY)]) == ["ok"]
    queries = (ledger.statement, ledger.get_account_transfers, ledger.get_account_balances)
    for query in queries:
        for bad in ({"until_ns": TIME_MAX + 1}, {"since_ns": 1.5}, {"limit": True}):
            with pytest.raises(LedgerInputError):
                query(1, **bad)  # type: ignore[operator]
        query(1, until_ns=TIME_MAX)  # the largest range is fine


@pytest.mark.parametrize("merged", [True, False], ids=["merged-runs", "unmerged"])
def test_a_recent_statement_reads_the_period_not_the_history(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, merged: bool
) -> None:
    """A statement's opening balance summed every earlier transfer of the account, so a
    statement of the last few on an old account read its whole history (found by a review);
    it is the balance now less the period's transfers where those are fewer, the sides told
    apart without reading the history (posting runs' counts, a run spanning the start split,
    the unmerged transfers read). Counted here by the transfers read, not by time."""
    import entrepot.ledger.services as services
    from entrepot.ledger.store import LedgerStore

    if merged:  # the history merged into posting runs, the period inside the newest one
        monkeypatch.setattr(services, "POSTINGS_MERGE_TRANSFERS", 1_000)
    ledger.define_ledger(978, "EUR")
    assert set(ledger.create_accounts([Account(1, 978, 1), Account(2, 978, 1)])) == {"ok"}
    for n in range(2_000):  # one by one: rows, merged every 1,000 where asked
        assert ledger.create_transfers([Transfer(n + 1, 1, 2, 3, ledger=978, code=1)]) == ["ok"]
    read: list[tuple[int, int]] = []
    summed: list[int] = []
    range_sums, posted_sums = LedgerStore._range_sums, LedgerStore._posted_sums

    def ranged(self: LedgerStore, conn: Any, account_id: int, since: int, until: int) -> Any:
        read.append((since, until))
        return range_sums(self, conn, account_id, since, until)

    def counted(self: LedgerStore, conn: Any, account_id: int, stamps: Any) -> Any:
        summed.append(len(stamps))
        return posted_sums(self, conn, account_id, stamps)

    since = ledger.get_account_transfers(1, reverse=True, limit=5)[-1].timestamp
    early = ledger.get_account_transfers(1, limit=5)[-1].timestamp
    monkeypatch.setattr(LedgerStore, "_range_sums", ranged)
    monkeypatch.setattr(LedgerStore, "_posted_sums", counted)
    statement = ledger.statement(1, since_ns=since)
    assert len(statement.lines) == 5
    assert statement.opening_balance_minor == -3 * 1_995  # the debits before it
    assert read == [(since, TIME_MAX)]  # the opening's sum: the period's 5 ...
    assert sum(summed) <= 5, summed  # ... not the 1,995 before (loaded from runs)
    # an early period: its few earlier transfers summed, the later side not read
    read.clear()
    assert ledger.statement(1, since_ns=early, limit=3).opening_balance_minor == -3 * 4
    assert read == [(0, early - 1)]


@pytest.mark.parametrize("merged", [True, False], ids=["merged-runs", "unmerged"])
def test_the_first_timestamps_of_a_range_are_those_of_the_whole_range(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, merged: bool
) -> None:
    """``limit`` bounds what is read of a range (a statement's row limit was checked on the
    whole period's timestamps, read first): the first ``limit`` are the whole range's first,
    whatever the range's ends cut (posting runs spanning them, rows and segments not yet
    merged, interleaved), and a range ending early keeps its end."""
    import entrepot.ledger.services as services

    if merged:  # runs of some 60 transfers, the last ones left unmerged
        monkeypatch.setattr(services, "POSTINGS_MERGE_TRANSFERS", 40)
        monkeypatch.setattr(services, "PLAIN_MERGE_TRANSFERS", 40)
    ledger.define_ledger(978, "EUR")
    assert set(ledger.create_accounts([Account(n, 978, 1) for n in (1, 2, 3)])) == {"ok"}
    next_id = 1
    for round_ in range(6):
        # a plain batch (a segment), 1's transfers among 3's, then single ones (rows)
        batch = [
            Transfer(next_id + k, 1 if k % 3 else 3, 2, 1 + k, ledger=978, code=1)
            for k in range(30)
        ]
        assert set(ledger.create_transfers(batch)) == {"ok"}
        next_id += len(batch)
        for _ in range(7 + round_):
            assert ledger.create_transfers([Transfer(next_id, 2, 1, 5, ledger=978, code=1)]) == [
                "ok"
            ]
            next_id += 1
    whole = ledger.get_account_timestamps(1)
    assert len(whole) == 6 * 20 + sum(7 + r for r in range(6))
    for lo, hi in ((0, len(whole)), (7, len(whole) - 3), (33, 34), (50, 140)):
        since, until = whole[lo], whole[hi - 1]
        expected = whole[lo:hi]
        for limit in (1, 2, 19, 20, 21, 59, 60, 61, 100, len(expected), len(expected) + 1):
            got = ledger.get_account_timestamps(1, since_ns=since, until_ns=until, limit=limit)
            assert got == expected[:limit], (lo, hi, limit)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(LedgerInputError):
            ledger.get_account_timestamps(1, limit=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("merged", [True, False], ids=["merged-runs", "unmerged"])
@pytest.mark.parametrize("plain", [True, False], ids=["segments", "rows-alone"])
def test_a_ranges_transfers_are_counted_and_located_as_the_whole_range_holds_them(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, merged: bool, plain: bool
) -> None:
    """locate_account_transfers counts a range (``limit`` at most) and finds the timestamps
    at some places in it without reading the others (a statement's page read the whole
    period's to find where it starts): the same as the whole range read and indexed, over
    posting runs, rows and segments, merged or not, the range's ends inside runs."""
    import entrepot.ledger.services as services

    if merged:
        monkeypatch.setattr(services, "POSTINGS_MERGE_TRANSFERS", 40)
        monkeypatch.setattr(services, "PLAIN_MERGE_TRANSFERS", 40)
    ledger.define_ledger(978, "EUR")
    assert set(ledger.create_accounts([Account(n, 978, 1) for n in (1, 2, 3)])) == {"ok"}
    next_id = 1
    for round_ in range(6):
        if plain:  # a plain batch (a segment), 1's transfers among 3's
            batch = [
                Transfer(next_id + k, 1 if k % 3 else 3, 2, 1 + k, ledger=978, code=1)
                for k in range(30)
            ]
            assert set(ledger.create_transfers(batch)) == {"ok"}
            next_id += len(batch)
        for k in range(9 + round_):  # single ones (rows), 3's among them
            t = Transfer(next_id, 2, 1 if k % 4 else 3, 5, ledger=978, code=1)
            assert ledger.create_transfers([t]) == ["ok"]
            next_id += 1
    whole = ledger.get_account_timestamps(1)
    assert len(whole) > 40
    for lo, hi in ((0, len(whole)), (7, len(whole) - 3), (20, 21), (len(whole) - 9, len(whole))):
        since, until = whole[lo], whole[hi - 1]
        expected = whole[lo:hi]
        places = [0, 1, 5, 19, 20, 39, 40, len(expected) - 1, len(expected), len(expected) + 7]
        for limit in (1, 6, 20, 41, len(expected), len(expected) + 1):
            n, at = ledger.locate_account_transfers(
                1, since_ns=since, until_ns=until, positions=places, limit=limit
            )
            assert n == min(limit, len(expected)), (lo, hi, limit)
            assert at == [expected[p] if p < n else None for p in places], (lo, hi, limit)
    for bad in ({"limit": 0}, {"limit": True}, {"positions": [-1]}, {"positions": [1.5]}):
        with pytest.raises(LedgerInputError):
            ledger.locate_account_transfers(1, **bad)  # type: ignore[arg-type]
