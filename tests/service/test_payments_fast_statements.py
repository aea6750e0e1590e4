"""The payment path's statements on the driver cursor (``store.Fast``): they run inside the
connection's SQLAlchemy transaction, never beside it, on every backend."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from entrepot.payments import PaymentScheme
from entrepot.payments import store as st
from entrepot.storage.engine import read_connection
from entrepot.storage.uow import UnitOfWork


def test_a_statement_on_a_fresh_connection_begins_its_transaction(
    scheme: PaymentScheme,
) -> None:
    with scheme.engine.connect() as conn:
        assert not conn.in_transaction()
        assert st.SCHEME_ACCOUNT.first(conn, ("RWF", "reserve")) is not None
        assert conn.in_transaction()  # so a rollback undoes what follows, and a commit keeps it
        conn.rollback()


def test_writes_follow_the_transaction_they_run_in(scheme: PaymentScheme) -> None:
    """A write through the driver cursor is undone with the SQLAlchemy transaction."""
    scheme.create_quote("mtn-rw", "q1", "MERCHANT", "KL-TILL-42", 1_000, "RECEIVE", "RWF")
    with UnitOfWork(scheme.engine) as uow:
        scheme.ledger.store.take_write_lock(uow.connection)
        assert st.SET_QUOTE_STATE.execute(uow.connection, ("EXPIRED", "q1")) == 1
        assert st.QUOTE_BY_ID.first(uow.connection, ("q1",)).state == "EXPIRED"
    # left without commit: rolled back
    assert scheme.get_quote("mtn-rw", "q1").state.value == "QUOTED"


def test_a_snapshot_read_sees_its_snapshot(scheme: PaymentScheme) -> None:
    scheme.create_quote("mtn-rw", "q1", "MERCHANT", "KL-TILL-42", 1_000, "RECEIVE", "RWF")
    with read_connection(scheme.engine) as conn:
        assert st.QUOTE_BY_ID.first(conn, ("q1",)).state == "QUOTED"
        scheme.accept_quote("mtn-rw", "q1")  # committed by another connection meanwhile
        assert st.QUOTE_BY_ID.first(conn, ("q1",)).state == "QUOTED"
    assert scheme.get_quote("mtn-rw", "q1").state.value == "ACCEPTED"


def test_rows_read_as_sqlalchemys_do(scheme: PaymentScheme) -> None:
    scheme.create_quote("mtn-rw", "q1", "MERCHANT", "KL-TILL-42", 1_000, "RECEIVE", "RWF")
    with read_connection(scheme.engine) as conn:
        fast = st.QUOTE_BY_ID.first(conn, ("q1",))
        core = conn.execute(sa.select(st.quotes).where(st.quotes.c.id == "q1")).one()
    assert fast._asdict() == dict(core._mapping)
    assert st.quote_from_row(fast) == st.quote_from_row(core)


def test_an_insert_needs_every_column(scheme: PaymentScheme) -> None:
    """A value left out is a KeyError naming the column, not a NULL written silently."""
    with UnitOfWork(scheme.engine) as uow, pytest.raises(KeyError, match="payer_participant"):
        st.INSERT_QUOTE.insert(uow.connection, {"id": "q9", "fee": 0})
