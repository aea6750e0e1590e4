"""The scheme's participant cache (``store.ParticipantCache``): a payment reads the participants
from memory, yet sees every change as a query would, whoever made it (another API worker,
an operator's SQL) and whenever (inside its own transaction too). Runs on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from entrepot.kernel.clock import FakeClock
from entrepot.ledger import Ledger
from entrepot.payments import PaymentScheme
from entrepot.payments import store as st
from entrepot.payments.errors import ParticipantSuspended
from entrepot.storage.migrate import downgrade, upgrade
from entrepot.storage.uow import UnitOfWork

TILL = ("MERCHANT", "KL-TILL-42")


def other_worker(scheme: PaymentScheme, clock: FakeClock) -> PaymentScheme:
    """A second scheme on the same database, with its own cache: another API worker."""
    return PaymentScheme(scheme.engine, Ledger(scheme.engine, clock), clock)


@contextmanager
def participant_queries(engine: sa.Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_c: object, _cur: object, statement: str, *_: object) -> None:
        if "pay_participants" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def pay(scheme: PaymentScheme, n: int) -> None:
    scheme.create_quote("mtn-rw", f"q{n}", *TILL, 1000, "RECEIVE", "RWF")
    scheme.prepare_transfer("mtn-rw", f"t{n}", f"q{n}")
    scheme.commit_transfer("maybank", f"t{n}")


def test_a_payment_reads_no_participant_row_once_cached(scheme: PaymentScheme) -> None:
    pay(scheme, 1)
    with participant_queries(scheme.engine) as seen:
        pay(scheme, 2)
    assert seen == []


def test_another_workers_suspension_is_seen_at_once(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    pay(scheme, 1)  # the payer, payee and FX provider are cached now
    other_worker(scheme, clock).set_active("mtn-rw", False)
    with pytest.raises(ParticipantSuspended):
        scheme.create_quote("mtn-rw", "q2", *TILL, 1000, "RECEIVE", "RWF")
    assert not scheme.get_participant("mtn-rw").active
    other_worker(scheme, clock).set_active("mtn-rw", True)
    pay(scheme, 3)


def test_a_change_by_plain_sql_is_seen(scheme: PaymentScheme) -> None:
    """The triggers, not the scheme's code, bump the version: an operator's UPDATE counts."""
    assert scheme.get_participant("maybank").currencies["MYR"].net_debit_cap_minor == 500_000
    pc = st.participant_currencies
    with scheme.engine.begin() as conn:
        conn.execute(
            sa.update(pc).where(pc.c.participant_id == "maybank").values(net_debit_cap=123)
        )
    assert scheme.get_participant("maybank").currencies["MYR"].net_debit_cap_minor == 123
    with scheme.engine.begin() as conn:
        conn.execute(
            sa.update(st.participants).where(st.participants.c.id == "maybank").values(active=False)
        )
    assert not scheme.get_participant("maybank").active


def test_the_version_counts_every_kind_of_change(scheme: PaymentScheme) -> None:
    def version() -> int:
        with scheme.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(st.versions.c.version).where(st.versions.c.name == "participants")
                ).scalar_one()
            )

    start = version()
    scheme.register_participant("bk-rw", "Bank of Kigali", "bank", "RW", [])
    after_insert = version()
    scheme.add_currency("bk-rw", "RWF")
    after_currency = version()
    scheme.set_active("bk-rw", False)
    after_update = version()
    with scheme.engine.begin() as conn:
        conn.execute(
            sa.delete(st.participant_currencies).where(
                st.participant_currencies.c.participant_id == "bk-rw"
            )
        )
    after_delete = version()
    assert start < after_insert < after_currency < after_update < after_delete


def test_a_transaction_sees_its_own_participant_changes(scheme: PaymentScheme) -> None:
    """Inside one unit of work the version read at its start no longer names what it has
    changed: each change makes the rest of the transaction read through the cache."""
    pay(scheme, 1)
    with UnitOfWork(scheme.engine) as uow, scheme.joined(uow):
        scheme.get_participant("mtn-rw")  # snapshot reads are outside the joined unit
        scheme.set_active("mtn-rw", False)
        with pytest.raises(ParticipantSuspended):
            scheme.create_quote("mtn-rw", "q2", *TILL, 1000, "RECEIVE", "RWF")
    # not committed: nothing changed, and the cache did not keep what the transaction saw
    assert scheme.get_participant("mtn-rw").active
    pay(scheme, 3)


def test_a_cap_set_in_the_same_transaction_is_what_it_reads_next(
    scheme: PaymentScheme,
) -> None:
    pay(scheme, 1)
    with UnitOfWork(scheme.engine) as uow, scheme.joined(uow):
        scheme.set_net_debit_cap("mtn-rw", "RWF", 9_000_000)
        cap = scheme._participant(uow.connection, "mtn-rw").currencies["RWF"]
        assert cap.net_debit_cap_minor == 9_000_000
        scheme.set_net_debit_cap("mtn-rw", "RWF", 9_500_000)  # its delta is from 9,000,000
    assert scheme.get_participant("mtn-rw").currencies["RWF"].net_debit_cap_minor == 10_000_000
    scheme.set_net_debit_cap("mtn-rw", "RWF", 9_500_000)
    assert scheme.liquidity("mtn-rw", "RWF")["net_debit_cap_minor"] == 9_500_000


def test_a_snapshot_keeps_the_version_it_began_with(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """A read that began before a change sees the participant as it was, cached or not."""
    from entrepot.storage.engine import read_connection

    pay(scheme, 1)
    with read_connection(scheme.engine) as conn:
        assert scheme._participant(conn, "mtn-rw").active
        other_worker(scheme, clock).set_active("mtn-rw", False)
        assert scheme._participant(conn, "mtn-rw").active
    assert not scheme.get_participant("mtn-rw").active


def test_a_cap_changed_elsewhere_is_the_base_of_the_next_change(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """Setting a cap posts the difference from the current cap to the position account: from
    a stale cap, the position and the cap would disagree for ever."""
    assert scheme.get_participant("mtn-rw").currencies["RWF"].net_debit_cap_minor == 10_000_000
    other_worker(scheme, clock).set_net_debit_cap("mtn-rw", "RWF", 5_000_000)
    scheme.set_net_debit_cap("mtn-rw", "RWF", 8_000_000)
    seen = scheme.liquidity("mtn-rw", "RWF")
    assert seen["net_debit_cap_minor"] == 8_000_000
    assert seen["position_available_minor"] == 8_000_000


def test_migration_0009_goes_down_and_up(scheme: PaymentScheme) -> None:
    downgrade(scheme.engine, "0008_ledger_segments")
    assert "pay_versions" not in sa.inspect(scheme.engine).get_table_names()
    with scheme.engine.begin() as conn:  # no trigger left behind to fail on the missing table
        conn.execute(
            sa.update(st.participants).where(st.participants.c.id == "maybank").values(active=False)
        )
    upgrade(scheme.engine)
    fresh = other_worker(scheme, FakeClock())
    assert not fresh.get_participant("maybank").active
    fresh.set_active("maybank", True)
    assert scheme.get_participant("maybank").active


def outbox_of(scheme: PaymentScheme, participant: str) -> list[str]:
    with scheme.engine.connect() as conn:
        rows = conn.execute(
            sa.select(st.outbox.c.resource_id).where(st.outbox.c.participant_id == participant)
        ).all()
    return [r[0] for r in rows]


def test_an_endpoint_registered_by_another_worker_gets_the_next_notice(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    pay(scheme, 1)  # cached: nobody has an endpoint
    assert outbox_of(scheme, "maybank") == []
    other_worker(scheme, clock).set_endpoint("maybank", "http://127.0.0.1:9/cb")
    pay(scheme, 2)
    assert outbox_of(scheme, "maybank") == ["t2"]  # prepared: the payee is told


def test_an_endpoint_set_in_the_same_transaction_gets_its_notice(scheme: PaymentScheme) -> None:
    pay(scheme, 1)
    with UnitOfWork(scheme.engine) as uow, scheme.joined(uow):
        scheme.set_endpoint("maybank", "http://127.0.0.1:9/cb")
        scheme.create_quote("mtn-rw", "q2", *TILL, 1000, "RECEIVE", "RWF")
        scheme.prepare_transfer("mtn-rw", "t2", "q2")
        uow.commit()
    assert outbox_of(scheme, "maybank") == ["t2"]
