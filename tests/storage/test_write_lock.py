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
