"""The writer's account cache across units of work (ADR 0002, decision 3 as amended): a write
inside a caller's unit of work keeps the cache, which is trusted only while the meta row holds
the version that write gave it. A rolled-back write must never leave a cache that looks
current, even when another process writes next."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
import sqlalchemy as sa

from entrepot.kernel.clock import FakeClock
from entrepot.ledger import AMOUNT_FULL, Account, AccountFlags, Ledger, Transfer, TransferFlags
from entrepot.storage.uow import UnitOfWork

EUR = 978
LIMITED = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)


@pytest.fixture
def ledgers(engine: sa.Engine) -> tuple[Ledger, Ledger]:
    """Two writers on one database, as two processes."""
    clock = FakeClock()
    here, there = Ledger(engine, clock), Ledger(engine, clock)
    here.define_ledger(EUR, "EUR")
    assert here.create_accounts([Account(1, EUR, 1, LIMITED), Account(2, EUR, 1)]) == ["ok"] * 2
    assert here.create_transfers([Transfer(10, 2, 1, 100, ledger=EUR, code=1)]) == ["ok"]
    return here, there


def test_a_rolled_back_write_then_another_processs_write_leaves_no_stale_cache(
    ledgers: tuple[Ledger, Ledger],
) -> None:
    here, there = ledgers
    with pytest.raises(RuntimeError), UnitOfWork(here.engine) as uow:
        spend = Transfer(20, 1, 2, 60, ledger=EUR, code=1)
        assert here.create_transfers([spend], uow=uow) == ["ok"]
        raise RuntimeError("the caller fails after the ledger wrote")  # rolled back
    # Another process writes next: with counted versions its write took the number the
    # rolled-back one had, and ``here`` went on trusting a cache that had spent 60.
    assert there.create_transfers([Transfer(30, 2, 1, 1, ledger=EUR, code=1)]) == ["ok"]
    assert here.create_transfers([Transfer(40, 1, 2, 101, ledger=EUR, code=1)]) == ["ok"]
    assert [a.debits_posted for a in here.lookup_accounts([1, 2])] == [101, 101]
    assert here.lookup_transfers([20]) == []
    assert here.check_invariants().ok


def test_a_committed_unit_of_work_keeps_the_cache_and_its_balances(
    ledgers: tuple[Ledger, Ledger],
) -> None:
    here, there = ledgers
    with UnitOfWork(here.engine) as uow:
        assert here.create_transfers([Transfer(20, 1, 2, 60, ledger=EUR, code=1)], uow=uow) == [
            "ok"
        ]
        # a second write in the same unit of work sees the first
        over = Transfer(21, 1, 2, 41, ledger=EUR, code=1)
        assert here.create_transfers([over], uow=uow) == ["exceeds_credits"]
        uow.commit()
    version = here._cache_version
    assert version is not None and here._cache  # kept, and current
    assert here.create_transfers([Transfer(22, 1, 2, 40, ledger=EUR, code=1)]) == ["ok"]
    assert there.create_transfers([Transfer(23, 1, 2, 1, ledger=EUR, code=1)]) == [
        "exceeds_credits"
    ]
    assert here.get_account(1).debits_posted == 100


def test_a_rolled_back_savepoint_inside_a_unit_of_work_is_not_trusted(
    ledgers: tuple[Ledger, Ledger],
) -> None:
    here, _ = ledgers
    with UnitOfWork(here.engine) as uow:
        first = Transfer(20, 1, 2, 30, ledger=EUR, code=1)
        assert here.create_transfers([first], uow=uow) == ["ok"]
        savepoint = uow.connection.begin_nested()
        assert here.create_transfers([Transfer(21, 1, 2, 70, ledger=EUR, code=1)], uow=uow) == [
            "ok"
        ]
        savepoint.rollback()
        # 70 was rolled back: 70 more fits again (30 + 70 = 100)
        assert here.create_transfers([Transfer(22, 1, 2, 70, ledger=EUR, code=1)], uow=uow) == [
            "ok"
        ]
        uow.commit()
    assert here.get_account(1).debits_posted == 100
    assert here.lookup_transfers([21]) == []
    assert here.check_invariants().ok


def test_a_ledger_another_process_defines_is_seen_by_a_kept_cache(
    ledgers: tuple[Ledger, Ledger],
) -> None:
    """The set of ledgers is cached with the accounts: defining one changes the version, so
    a writer whose cache survived a unit of work reloads it (found in review: it answered
    ``ledger_not_found``, and the first lending policy in a new currency failed)."""
    here, there = ledgers
    with UnitOfWork(here.engine) as uow:
        assert here.create_accounts([Account(3, EUR, 1)], uow=uow) == ["ok"]
        uow.commit()
    there.define_ledger(840, "USD")
    with UnitOfWork(here.engine) as uow:
        assert here.create_accounts([Account(4, 840, 1)], uow=uow) == ["ok"]
        uow.commit()


def test_a_post_with_its_accounts_cached_reads_no_account_rows(
    ledgers: tuple[Ledger, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A post or void names accounts 0 (its pending transfer's): 0 is no account, and is
    not looked up in the accounts table on every call."""
    here, _ = ledgers
    pending = Transfer(40, 2, 1, 5, ledger=EUR, code=1, flags=TransferFlags.PENDING)
    assert here.create_transfers([pending]) == ["ok"]
    asked: list[list[int]] = []
    load = here.store.load_accounts

    def spy(conn: sa.Connection, ids: Iterable[int], *args: Any) -> list[Account]:
        asked.append(list(ids))
        return load(conn, asked[-1], *args)

    monkeypatch.setattr(here.store, "load_accounts", spy)
    post = Transfer(
        41, pending_id=40, amount=AMOUNT_FULL, flags=TransferFlags.POST_PENDING_TRANSFER
    )
    assert here.create_transfers([post]) == ["ok"]
    assert asked == []  # both accounts cached by the pending transfer's write
    assert here.lookup_accounts([1])[0].credits_posted == 105


# The earliest expiry of the pending transfers is kept with the cache, so that a write before
# it need not look for due ones: it must never hide a transfer that is due.
def test_a_pending_transfer_another_process_wrote_expires_at_this_ones_next_write(
    ledgers: tuple[Ledger, Ledger], engine: sa.Engine
) -> None:
    here, there = ledgers
    clock = here.clock
    assert isinstance(clock, FakeClock)
    # ``here`` learns that nothing is pending with a timeout (nothing can be due)
    assert here.create_transfers([Transfer(20, 2, 1, 1, ledger=EUR, code=1)]) == ["ok"]
    timed = Transfer(21, 2, 1, 7, ledger=EUR, code=1, flags=TransferFlags.PENDING, timeout=1)
    assert there.create_transfers([timed]) == ["ok"]
    clock.advance(2)
    assert here.create_transfers([Transfer(22, 2, 1, 1, ledger=EUR, code=1)]) == ["ok"]
    assert here.get_account(1).credits_pending == 0
    assert _status(engine, 21) == "expired"


def test_a_pending_transfer_this_process_wrote_expires_though_none_was_due_before(
    ledgers: tuple[Ledger, Ledger], engine: sa.Engine
) -> None:
    here, _ = ledgers
    clock = here.clock
    assert isinstance(clock, FakeClock)
    late = Transfer(20, 2, 1, 5, ledger=EUR, code=1, flags=TransferFlags.PENDING, timeout=10)
    assert here.create_transfers([late]) == ["ok"]
    soon = Transfer(21, 2, 1, 7, ledger=EUR, code=1, flags=TransferFlags.PENDING, timeout=1)
    assert here.create_transfers([soon]) == ["ok"]  # expires before the one known
    clock.advance(2)
    assert here.create_transfers([Transfer(22, 2, 1, 1, ledger=EUR, code=1)]) == ["ok"]
    assert (_status(engine, 20), _status(engine, 21)) == ("pending", "expired")
    clock.advance(10)
    assert here.expire_pending() == 1
    assert here.get_account(1).credits_pending == 0


def test_an_expiry_rolled_back_with_its_unit_of_work_happens_again(
    ledgers: tuple[Ledger, Ledger], engine: sa.Engine
) -> None:
    here, _ = ledgers
    clock = here.clock
    assert isinstance(clock, FakeClock)
    timed = Transfer(20, 2, 1, 7, ledger=EUR, code=1, flags=TransferFlags.PENDING, timeout=1)
    assert here.create_transfers([timed]) == ["ok"]
    clock.advance(2)
    with pytest.raises(RuntimeError), UnitOfWork(here.engine) as uow:
        assert here.expire_pending(uow=uow) == 1
        raise RuntimeError("the caller fails after the ledger wrote")  # rolled back
    assert _status(engine, 20) == "pending"
    assert here.create_transfers([Transfer(21, 2, 1, 1, ledger=EUR, code=1)]) == ["ok"]
    assert _status(engine, 20) == "expired"
    assert here.check_invariants().ok


def _status(engine: sa.Engine, transfer_id: int) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                sa.text(
                    "SELECT p.status FROM ledger_pending p JOIN ledger_transfers t "
                    "ON t.timestamp = p.timestamp WHERE t.id = :id"
                ),
                {"id": transfer_id.to_bytes(16, "big")},
            ).scalar_one()
        )
