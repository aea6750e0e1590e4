"""The plain-batch fast path (ADR 0003) at its edges, each case against an oracle: the same
events through a second ledger that decides everything event by event (the state machine).

Each case says whether the fast path must take the batch (one segment, no transfer rows) or
hand it to the state machine; either way results, balances, stored transfers, history and
statements must be identical to the oracle's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

import entrepot.ledger.services as services
from entrepot.kernel.clock import FakeClock
from entrepot.kernel.limits import AMOUNT_MAX
from entrepot.ledger import Account, AccountFlags, Ledger, LedgerInputError, Transfer
from entrepot.ledger.store import LedgerStore
from entrepot.storage import upgrade
from entrepot.storage.engine import create_engine_from_url
from entrepot.storage.migrate import downgrade
from entrepot.storage.uow import UnitOfWork

EUR, USD = 978, 840
DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
HISTORY = int(AccountFlags.HISTORY)


class Pair:
    """The ledger under test (every batch eligible for the fast path) and its oracle."""

    def __init__(self, engine: sa.Engine, oracle_engine: sa.Engine) -> None:
        self.clock = FakeClock()
        self.fast = Ledger(engine, self.clock, plain_batch_min=1)
        self.oracle = Ledger(oracle_engine, self.clock, plain_batch_min=10**9)
        for ledger in (self.fast, self.oracle):
            ledger.define_ledger(EUR, "EUR")
            ledger.define_ledger(USD, "USD")
        self.ids: list[int] = []
        self.accounts: list[int] = []

    def open(self, *accounts: Account) -> None:
        for ledger in (self.fast, self.oracle):
            assert ledger.create_accounts(list(accounts)) == ["ok"] * len(accounts)
        self.accounts.extend(a.id for a in accounts)

    def segments(self) -> int:
        with self.fast.engine.connect() as conn:
            return int(
                conn.exec_driver_sql("SELECT COUNT(*) FROM ledger_transfer_segments").scalar_one()
            )

    def batch(
        self, transfers: Sequence[Transfer], *, fast: bool, queries: bool = True
    ) -> list[str]:
        """Both ledgers take the batch; ``fast``: whether it must become one segment."""
        before = self.segments()
        got = [str(r) for r in self.fast.create_transfers(transfers)]
        want = [str(r) for r in self.oracle.create_transfers(transfers)]
        assert got == want
        assert self.segments() == before + (1 if fast else 0)
        self.ids.extend(t.id for t in transfers)
        self.clock.advance(1)
        self.check(queries=queries)
        return got

    def check(self, *, queries: bool = True) -> None:
        fast, oracle = self.fast, self.oracle
        assert fast.lookup_accounts(self.accounts) == oracle.lookup_accounts(self.accounts)
        assert fast.lookup_transfers(self.ids) == oracle.lookup_transfers(self.ids)
        for a in self.accounts if queries else ():
            assert fast.get_account_transfers(a) == oracle.get_account_transfers(a)
            assert fast.statement(a) == oracle.statement(a)
            account = fast.get_account(a)
            if account.flags & HISTORY:
                assert fast.get_account_balances(a) == oracle.get_account_balances(a)
        assert fast.check_invariants().ok and oracle.check_invariants().ok


@pytest.fixture
def pair(engine: sa.Engine, tmp_path: Path) -> Iterator[Pair]:
    oracle_engine = create_engine_from_url(f"sqlite:///{tmp_path / 'oracle.db'}")
    upgrade(oracle_engine)
    yield Pair(engine, oracle_engine)
    oracle_engine.dispose()


def t(id_: int, dr: int, cr: int, amount: int, ledger: int = EUR, **kw: int) -> Transfer:
    return Transfer(id_, dr, cr, amount, ledger=ledger, code=kw.pop("code", 1), **kw)


def test_a_plain_batch_is_one_segment_and_reads_back_exactly(pair: Pair) -> None:
    pair.open(Account(1, EUR, 1), Account(2, EUR, 1), Account(3, EUR, 1))
    batch = [
        t(10, 1, 2, 5, user_data_128=2**127 + 3, user_data_64=2**63 - 1, user_data_32=7),
        t(11, 2, 3, 0, code=9),
        t(12, 3, 1, AMOUNT_MAX // 4),
    ]
    assert pair.batch(batch, fast=True) == ["ok"] * 3
    stored = pair.fast.lookup_transfers([12, 10, 11])
    assert [s.id for s in stored] == [12, 10, 11]
    assert stored[1].user_data_128 == 2**127 + 3 and stored[1].user_data_64 == 2**63 - 1
    stamps = sorted(s.timestamp for s in stored)
    assert stamps == list(range(stamps[0], stamps[0] + 3))  # consecutive, as in a batch


def test_limits_are_checked_in_batch_order(pair: Pair) -> None:
    pair.open(Account(1, EUR, 1), Account(2, EUR, 1, DMNEC), Account(3, EUR, 1, CMNED))
    pair.batch([t(10, 1, 2, 50), t(11, 3, 1, 40)], fast=True)  # 2 holds 50; 3 may take 40
    # Each debit of 2 fits alone, not both: the second fails, so the state machine decides.
    assert pair.batch([t(20, 2, 1, 30), t(21, 2, 1, 30)], fast=False) == [
        "ok",
        "exceeds_credits",
    ]
    # A credit before the debit funds it: all ok, at once.
    assert pair.batch([t(30, 1, 2, 25), t(31, 2, 1, 40)], fast=True) == ["ok", "ok"]
    # The same two the other way round: the debit comes first and fails.
    assert pair.batch([t(40, 2, 1, 40), t(41, 1, 2, 25)], fast=False) == [
        "exceeds_credits",
        "ok",
    ]
    # Credits-must-not-exceed-debits, the mirror image: 3 may take 40 in all, 30 at a time.
    assert pair.batch([t(50, 1, 3, 30), t(51, 1, 3, 30)], fast=False) == [
        "ok",
        "exceeds_debits",
    ]
    assert pair.batch([t(60, 3, 1, 20), t(61, 1, 3, 30)], fast=True) == ["ok", "ok"]


def test_overflow_on_either_side_goes_to_the_state_machine(pair: Pair) -> None:
    pair.open(*(Account(i, EUR, 1) for i in range(1, 5)))
    pair.batch([t(10, 1, 2, AMOUNT_MAX - 10)], fast=True)
    # 3 -> 2 would overflow 2's credits; 1 -> 4 would overflow 1's debits.
    assert pair.batch([t(20, 3, 2, 11)], fast=False) == ["overflows_credits_posted"]
    assert pair.batch([t(21, 1, 4, 11)], fast=False) == ["overflows_debits_posted"]
    assert pair.batch([t(22, 1, 4, 10), t(23, 3, 2, 10)], fast=True) == ["ok", "ok"]


@pytest.mark.parametrize(
    ("flaw", "result"),
    [
        ({"credit_account_id": 99}, "credit_account_not_found"),
        ({"credit_account_id": 1}, "accounts_must_be_different"),
        ({"credit_account_id": 5}, "accounts_must_have_the_same_ledger"),
        ({"ledger": USD}, "transfer_must_have_the_same_ledger_as_accounts"),
        ({"code": 0}, "code_must_not_be_zero"),
        ({"id": 10}, "exists_with_different_debit_account_id"),  # event 0's id, in the batch
        ({"flags": 1}, "linked_event_chain_open"),
        ({"pending_id": 3}, "pending_id_must_be_zero"),
        ({"timestamp": 1}, "timestamp_must_be_zero"),
    ],
)
def test_a_batch_with_one_bad_event_is_decided_event_by_event(
    pair: Pair, flaw: dict[str, int], result: str
) -> None:
    pair.open(*(Account(i, EUR, 1) for i in range(1, 5)), Account(5, USD, 1))
    batch = [t(10, 1, 2, 5), t(11, 3, 4, 6), t(12, 2, 3, 7)]
    if flaw != {"id": 10}:
        batch[2] = batch[2]._replace(debit_account_id=1)
    batch[2] = batch[2]._replace(**flaw)
    assert pair.batch(batch, fast=False) == ["ok", "ok", result]


def test_reused_ids_history_accounts_and_failed_ids_take_the_state_machine(pair: Pair) -> None:
    pair.open(Account(1, EUR, 1), Account(2, EUR, 1), Account(3, EUR, 1, HISTORY))
    pair.batch([t(100, 1, 2, 5)], fast=True)
    assert pair.batch([t(50, 1, 2, 5), t(101, 2, 1, 1)], fast=False) == ["ok", "ok"]  # 50 < 100
    assert pair.batch([t(100, 1, 2, 5)], fast=False) == ["exists"]
    assert pair.batch([t(100, 1, 2, 6)], fast=False) == ["exists_with_different_amount"]
    assert pair.batch([t(200, 1, 3, 5), t(201, 3, 2, 2)], fast=False) == ["ok", "ok"]  # history
    assert pair.batch([t(300, 1, 99, 5)], fast=False) == ["credit_account_not_found"]
    assert pair.batch([t(299, 1, 2, 5)], fast=False) == ["ok"]  # below the failed id 300
    assert pair.batch([t(300, 1, 2, 5)], fast=False) == ["id_already_failed"]
    # A pending transfer may not name a segment's transfer; posting one is "not pending".
    assert pair.batch([t(400, 1, 2, 1, flags=4, pending_id=100)], fast=False) == [
        "pending_transfer_not_pending"
    ]
    assert pair.batch([t(500, 2, 1, 3), t(501, 1, 2, 4)], fast=True) == ["ok", "ok"]


def test_malformed_plain_batches_are_refused_whole(pair: Pair) -> None:
    pair.open(Account(1, EUR, 1), Account(2, EUR, 1))
    for bad in (
        t(10, 1, 2, 5.0),  # type: ignore[arg-type]
        t(10, 1, 2, True),
        t(10, 1, 2, -1),
        t(10, 1, 2, AMOUNT_MAX + 1),
        t(10, 1, 2, 5, user_data_32=2**32),
        t(2**128, 1, 2, 5),
        t(10, -1, 2, 5),
        t(10, 1, 2**128, 5),
    ):
        with pytest.raises(LedgerInputError):
            pair.fast.create_transfers([t(9, 1, 2, 1), bad])
    assert pair.segments() == 0
    assert pair.fast.lookup_transfers([9, 10]) == []


def test_a_rolled_back_unit_of_work_leaves_no_segment(pair: Pair) -> None:
    pair.open(Account(1, EUR, 1), Account(2, EUR, 1))
    pair.batch([t(10, 1, 2, 5)], fast=True)
    with pytest.raises(RuntimeError), UnitOfWork(pair.fast.engine) as uow:
        assert pair.fast.create_transfers([t(20, 1, 2, 7), t(21, 2, 1, 1)], uow=uow) == ["ok"] * 2
        raise RuntimeError("the caller fails after the ledger wrote")
    assert pair.segments() == 1
    assert pair.fast.lookup_transfers([20, 21]) == []
    pair.check()
    pair.batch([t(20, 1, 2, 7), t(21, 2, 1, 1)], fast=True)


def test_deferred_balances_reach_the_rows_and_other_processes(pair: Pair) -> None:
    """Between flushes the balance columns lag and every reader adds the segments; a write
    event by event (here by another Ledger, as another process) flushes them first."""
    pair.open(Account(1, EUR, 1), Account(2, EUR, 1))
    pair.batch([t(10, 1, 2, 5), t(11, 1, 2, 6)], fast=True)
    with pair.fast.engine.connect() as conn:
        raw = conn.exec_driver_sql(
            "SELECT debits_posted FROM ledger_accounts ORDER BY timestamp"
        ).scalars()
        assert list(raw) == [0, 0]  # deferred
    other = Ledger(pair.fast.engine, pair.clock, plain_batch_min=1)
    assert other.get_account(1).debits_posted == 11
    assert other.create_transfers([t(5, 2, 1, 1)]) == ["ok"]  # an old id: event by event
    pair.oracle.create_transfers([t(5, 2, 1, 1)])
    pair.ids.append(5)
    with pair.fast.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT debits_posted, credits_posted FROM ledger_accounts ORDER BY timestamp"
        ).all()
        assert [tuple(r) for r in rows] == [(11, 1), (1, 11)]
    pair.check()
    pair.batch([t(20, 2, 1, 3)], fast=True)  # the first ledger sees the other's write


def test_each_limited_account_counts_only_its_own_movements(pair: Pair) -> None:
    """Running sums restart for every account: a credit to one limited account in the batch
    does not fund another's debit."""
    pair.open(Account(1, EUR, 1), Account(2, EUR, 1, DMNEC), Account(3, EUR, 1, DMNEC))
    pair.batch([t(10, 1, 2, 50)], fast=True)
    # 3 comes first (a debit of 0), then is credited 30; 2 then spends 60 of its 50.
    assert pair.batch([t(20, 3, 1, 0), t(21, 1, 3, 30), t(22, 2, 1, 60)], fast=False) == [
        "ok",
        "ok",
        "exceeds_credits",
    ]
    assert pair.batch([t(30, 3, 1, 0), t(31, 1, 3, 30), t(32, 2, 1, 50)], fast=True) == ["ok"] * 3
    # Both limited accounts spend in one batch, each within its own credits: at once.
    assert pair.batch([t(40, 1, 2, 30), t(41, 2, 1, 30), t(42, 3, 1, 40)], fast=True) == ["ok"] * 3


def test_segments_name_their_accounts_however_few_of_the_cached_ones_they_touch(
    pair: Pair,
) -> None:
    """A batch touching a few of many cached accounts numbers them by sorting, one touching
    most of them by marking rows; the table also grows past its first capacity."""
    pair.open(*(Account(i, EUR, 1) for i in range(1, 1201)))
    everyone = [t(10_000 + i, i, i % 1200 + 1, i) for i in range(1, 1201)]
    assert pair.batch(everyone, fast=True, queries=False) == ["ok"] * 1200
    assert pair.batch([t(20_000, 7, 1100, 5)], fast=True, queries=False) == ["ok"]
    two = [t(20_001, 1100, 3, 2), t(20_002, 3, 7, 1)]
    assert pair.batch(two, fast=True, queries=False) == ["ok"] * 2
    for a in (3, 7, 1100):
        assert pair.fast.statement(a) == pair.oracle.statement(a)


@pytest.mark.parametrize("hook", ["read_meta", "_fetch_by_ids"])
def test_a_reader_sees_one_snapshot_while_another_process_flushes(
    pair: Pair, hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush (here: another process's event-by-event write) that commits while a reader is
    between reading the meta row and the balance rows must not make a balance go back."""
    pair.open(Account(1, EUR, 1), Account(2, EUR, 1), Account(3, EUR, 1))
    pair.batch([t(10, 1, 2, 5), t(11, 1, 2, 6)], fast=True)  # deferred balances
    other = Ledger(pair.fast.engine, pair.clock)
    reader = Ledger(pair.fast.engine, pair.clock)
    original = getattr(LedgerStore, hook)
    fired: list[bool] = []

    def racing(self: LedgerStore, *args: object, **kwargs: object) -> object:
        if not fired:
            fired.append(True)
            assert other.create_transfers([t(5, 3, 2, 1)]) == ["ok"]  # flushes, commits
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LedgerStore, hook, racing)
    assert reader.get_account(1).debits_posted == 11
    assert fired
    monkeypatch.setattr(LedgerStore, hook, original)
    assert reader.get_account(1).debits_posted == 11
    assert reader.get_account(3).debits_posted == 1


def test_a_unit_of_work_reads_balances_no_flush_can_change_under_it(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: ``lookup_accounts(uow=...)`` read the meta row, the balance rows and the
    segments after the meta's mark in the caller's READ COMMITTED transaction; a flush that
    another writer committed in between was counted twice (a balance that never was). It
    now takes the write lock first, as SQLite's BEGIN IMMEDIATE always did: the flush waits
    for the unit of work. Found in review."""
    import threading

    if pair.fast.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's unit of work holds the write lock from its BEGIN IMMEDIATE")
    pair.open(Account(1, EUR, 1), Account(2, EUR, 1), Account(3, EUR, 1))
    pair.batch([t(10, 1, 2, 5)], fast=True)  # a segment: the balance rows are deferred
    other = Ledger(create_engine_from_url(str(pair.fast.engine.url)), pair.clock)
    results: list[object] = []
    writer = threading.Thread(
        target=lambda: results.append(other.create_transfers([t(11, 3, 2, 1)]))  # flushes
    )
    original = LedgerStore._fetch_by_ids

    def racing(self: LedgerStore, *args: object, **kwargs: object) -> object:
        if not writer.is_alive() and not results:
            writer.start()
            writer.join(2.0)  # done at once unless the unit of work holds the lock
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(LedgerStore, "_fetch_by_ids", racing)
    with UnitOfWork(pair.fast.engine) as uow:
        (account,) = pair.fast.lookup_accounts([1], uow=uow)
        assert account.debits_posted == 5
        assert not results  # the flushing writer waits for this unit of work
    writer.join(10.0)
    monkeypatch.setattr(LedgerStore, "_fetch_by_ids", original)
    assert results == [["ok"]]
    assert pair.fast.get_account(1).debits_posted == 5
    assert pair.fast.get_account(3).debits_posted == 1
    other.engine.dispose()


def test_small_segments_are_flushed_and_merged_by_count(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However small the segments, a reader never adds up more than FLUSH_SEGMENTS of them
    and a query never reads more than MERGE_SEGMENTS unmerged ones."""
    monkeypatch.setattr(services, "FLUSH_SEGMENTS", 3)
    monkeypatch.setattr(services, "MERGE_SEGMENTS", 7)
    pair.open(Account(1, EUR, 1), Account(2, EUR, 1))
    for k in range(16):
        pair.batch([t(100 + 2 * k, 1, 2, k), t(101 + 2 * k, 2, 1, 1)], fast=True, queries=k > 12)
        with pair.fast.engine.connect() as conn:
            meta = pair.fast.store.read_meta(conn)
            raw = conn.exec_driver_sql(
                "SELECT debits_posted FROM ledger_accounts ORDER BY timestamp"
            ).scalars()
            flushed = raw.first()
        assert meta.unflushed_segments < 3 and meta.unindexed_segments < 7
        if meta.unflushed_segments == 0:  # just flushed: the rows hold everything
            assert flushed == pair.fast.get_account(1).debits_posted


def test_downgrade_below_segments_refuses_to_lose_transfers(pair: Pair) -> None:
    pair.open(Account(1, EUR, 1), Account(2, EUR, 1))
    pair.batch([t(10, 1, 2, 5)], fast=True)
    with pytest.raises(RuntimeError, match="1 segment"):
        downgrade(pair.fast.engine, "0007_notifications")
    assert pair.fast.lookup_transfers([10])[0].amount == 5
