"""``LedgerStore.take_write_lock``: another context's unit of work (the scheme's, lending's)
is serialised with the ledger's writers without reading the ledger's meta."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from entrepot.ledger import Account, Ledger
from entrepot.storage import UnitOfWork


def test_a_unit_of_work_holding_the_write_lock_keeps_ledger_writers_waiting(
    engine: sa.Engine, ledger: Ledger
) -> None:
    ledger.define_ledger(978, "EUR")
    done = threading.Event()

    def write() -> None:
        ledger.create_accounts([Account(id=7, ledger=978, code=1)])
        done.set()

    with UnitOfWork(engine) as uow:
        ledger.store.take_write_lock(uow.connection)
        assert uow.connection.in_transaction()
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        assert not done.wait(0.5), "a ledger write went through while the lock was held"
        uow.commit()
    assert done.wait(30)
    writer.join(30)
    assert [a.id for a in ledger.lookup_accounts([7])] == [7]


def test_taking_it_twice_in_one_unit_of_work_is_harmless(engine: sa.Engine, ledger: Ledger) -> None:
    ledger.define_ledger(978, "EUR")
    with UnitOfWork(engine) as uow:
        ledger.store.take_write_lock(uow.connection)
        ledger.store.take_write_lock(uow.connection)  # a joined use case takes it again
        ledger.create_accounts([Account(id=8, ledger=978, code=1)], uow=uow)
        uow.commit()
    assert [a.id for a in ledger.lookup_accounts([8])] == [8]


def test_a_unit_of_work_without_the_lock_never_deadlocks_with_one_holding_it(
    engine: sa.Engine, ledger: Ledger
) -> None:
    """Found in review: a ledger write in a unit of work that did not hold the write lock yet
    (it had only read, as the scheme's ``add_currency`` does, or done nothing) took the
    ledger's in-memory lock first, then waited for the database's. Another unit of work
    holding the database's lock and writing to the ledger next then waited for the in-memory
    lock: each waited for the other, for ever (SQLite), or until a lock timeout (PostgreSQL)."""
    results: dict[str, object] = {}
    with UnitOfWork(engine) as reader, UnitOfWork(engine) as holder:
        if engine.dialect.name == "postgresql":
            reader.connection.exec_driver_sql("SELECT 1")  # in a transaction, no write lock
            # so that the deadlock, before the fix, ends in an error rather than for ever
            reader.connection.exec_driver_sql("SET lock_timeout = '5s'")
        ledger.store.take_write_lock(holder.connection)

        def write(name: str, uow: UnitOfWork, account_id: int) -> None:
            try:
                results[name] = ledger.create_accounts(
                    [Account(id=account_id, ledger=978, code=1)], uow=uow
                )
                uow.commit()
            except Exception as exc:
                results[name] = exc

        first = threading.Thread(target=write, args=("reader", reader, 1), daemon=True)
        first.start()
        waited = 0.0
        while not ledger._lock.locked() and waited < 1.0:  # the reader is waiting by now
            waited += 0.01
            threading.Event().wait(0.01)
        second = threading.Thread(target=write, args=("holder", holder, 2), daemon=True)
        second.start()
        second.join(15)
        first.join(15)
        assert not second.is_alive() and not first.is_alive(), "the two writers deadlocked"
    assert results == {"holder": ["ok"], "reader": ["ok"]}
    assert [a.id for a in ledger.lookup_accounts([1, 2])] == [1, 2]
