"""Races between the scheme's use cases, as the API's workers run them at the same time
(several processes, each its own ``PaymentScheme``, on one database). A race is staged at
the point where it bites: a second scheme's write is made between two steps of the first
one, so the test is deterministic. Runs on every backend; PostgreSQL's READ COMMITTED is the
one these were found on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
import sqlalchemy as sa

from entrepot.kernel.clock import FakeClock
from entrepot.ledger import Account, Ledger
from entrepot.payments import SCHEME, FeeSchedule, Participant, PaymentScheme
from entrepot.payments import store as st
from entrepot.payments.monitoring import scheme_snapshot
from entrepot.storage.engine import create_engine_from_url
from entrepot.storage.uow import UnitOfWork
from tests.service.test_payments import assert_ledger_ok, join_bk, liquidity, moves


@pytest.fixture
def other(engine: sa.Engine, clock: FakeClock) -> Iterator[PaymentScheme]:
    """The same scheme as another API worker sees it: its own engine, ledger and caches."""
    eng = create_engine_from_url(engine.url.render_as_string(hide_password=False))
    yield PaymentScheme(eng, Ledger(eng, clock), clock, fees=FeeSchedule(bps=50))
    eng.dispose()


def _cap_raised_mid_lookup(
    scheme: PaymentScheme, other: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> list[object]:
    """The first ledger lookup of ``scheme`` runs only after ``other`` (another worker) raised
    mtn-rw's RWF cap to 12,000,000; the list returned holds that change once it happened."""
    lookup = scheme.ledger.lookup_accounts
    raised: list[object] = []

    def lookup_after_a_cap_change(ids: list[int], **kw: object) -> list[Account]:
        if not raised:
            raised.append(other.set_net_debit_cap("mtn-rw", "RWF", 12_000_000))
        return lookup(ids, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(scheme.ledger, "lookup_accounts", lookup_after_a_cap_change)
    return raised


def test_liquidity_reads_the_cap_and_the_balances_at_one_moment(
    scheme: PaymentScheme, other: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker raises mtn-rw's cap while a liquidity read is half done: the answer is
    the liquidity before the change or after it, never the cap of one and the position of the
    other (that said mtn-rw was owed the 2,000,000 the cap grew by)."""
    before = scheme.liquidity("mtn-rw", "RWF")
    raised = _cap_raised_mid_lookup(scheme, other, monkeypatch)
    seen = scheme.liquidity("mtn-rw", "RWF")
    assert raised
    after = {**before, "net_debit_cap_minor": 12_000_000, "position_available_minor": 12_000_000}
    assert seen in (before, after)
    assert seen["net_position_minor"] == 0
    monkeypatch.undo()
    assert scheme.liquidity("mtn-rw", "RWF") == after
    assert_ledger_ok(scheme)


def test_a_metrics_scrape_reads_the_caps_and_the_balances_at_one_moment(
    scheme: PaymentScheme, other: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scrape's positions, as ``liquidity``'s: a cap raised by another worker while the
    scrape is half done is in both the cap and the position, or in neither."""
    raised = _cap_raised_mid_lookup(scheme, other, monkeypatch)
    gauges = {(g.participant_id, g.currency): g for g in scheme_snapshot(scheme).positions}
    assert raised
    mtn = gauges[("mtn-rw", "RWF")]
    assert (mtn.net_debit_cap_minor, mtn.position_available_minor) in (
        (10_000_000, 10_000_000),
        (12_000_000, 12_000_000),
    )
    assert all(g.net_position_minor == 0 for g in gauges.values())


def test_deadline_passes_racing_each_other_report_an_escrow_resolved_once(
    scheme: PaymentScheme, other: PaymentScheme, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``entrepot serve`` runs the deadline pass, and an operator's ``payments deadlines`` (or
    another host's runner) may run at the same time: docs/payments.md says it does no harm.
    The other pass refunds the escrow between this pass's read of what is due and its own
    refund: the escrow is refunded once, and this pass does not report it failed (an
    operator would look for an escrow left held for a person, and find none)."""
    join_bk(scheme)
    scheme.create_escrow("mtn-rw", "esc-1", "bk-rw", "RWF", 100_000, "order 42", 60)
    before = liquidity(scheme)
    clock.advance(61)
    uow = scheme._uow
    calls = []

    def other_pass_after_the_read() -> AbstractContextManager[UnitOfWork]:
        calls.append(1)
        if len(calls) == 2:  # the first unit of work read what is due: the other pass acts
            assert other.process_deadlines()["escrows_resolved"] == 1
        return uow()

    monkeypatch.setattr(scheme, "_uow", other_pass_after_the_read)
    done = scheme.process_deadlines()
    assert len(calls) >= 2
    assert (done["escrows_resolved"], done["escrows_failed"]) == (0, 0)
    monkeypatch.undo()
    assert scheme.get_escrow("mtn-rw", "esc-1").refunded_minor == 100_000
    assert moves(before, liquidity(scheme)) == {("mtn-rw", "RWF", "net_position"): 100_000}
    assert_ledger_ok(scheme)


def test_currencies_enabled_at_once_on_a_new_scheme_are_both_the_operators(
    engine: sa.Engine, clock: FakeClock, other: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first currency enabled registers the scheme operator (participant ``scheme``).
    Two operators' ``payments enable-currency`` at once on a new database both found no
    operator, and the second to register it was refused "already exists": its currency was
    left without the operator's accounts until it was enabled again."""
    first = PaymentScheme(engine, Ledger(engine, clock), clock)
    register = first.register_participant

    def the_other_registers_first(*args: Any, **kw: Any) -> Participant:
        other.enable_currency("EUR")  # found no operator either, and registered it
        return register(*args, **kw)

    monkeypatch.setattr(first, "register_participant", the_other_registers_first)
    first.enable_currency("RWF")
    monkeypatch.undo()
    assert sorted(first.get_participant(SCHEME).currencies) == ["EUR", "RWF"]
    assert first.scheme_currencies() == ["EUR", "RWF"]
    assert_ledger_ok(first)


def _status_record(scheme: PaymentScheme, pid: str) -> tuple[list[tuple[int, bool]], list[str]]:
    """The participant's recorded status changes (seq, active) and the notices told of them."""
    with scheme.engine.connect() as conn:
        notices = conn.execute(
            sa.select(st.outbox.c.event)
            .where(st.outbox.c.event.like("participant.%"))
            .order_by(st.outbox.c.event)
        ).all()
    changes = scheme.status_history(SCHEME, pid)
    return [(c.seq, c.active) for c in changes], [r[0] for r in notices]


def test_a_suspension_that_read_the_participant_stale_records_nothing(
    scheme: PaymentScheme, other: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two operators suspend mtn-rw at once. The second decided from a read of the
    participant that did not see the first's suspension (a stale read: its snapshot or its
    cache), and recorded a second suspension, and told mtn-rw twice. The change is made
    only if the row is still in the state read (``UPDATE ... WHERE active = <read>``), and
    recorded only if a row changed."""
    scheme.set_endpoint("mtn-rw", "https://mtn.example/callbacks")
    was = scheme.get_participant("mtn-rw")
    assert other.set_active("mtn-rw", False, "first operator").active is False
    get = scheme._participants.get

    def stale(conn: sa.Connection, participant_id: str) -> Participant | None:
        return was if participant_id == "mtn-rw" else get(conn, participant_id)

    monkeypatch.setattr(scheme._participants, "get", stale)
    scheme.set_active("mtn-rw", False, "second operator")
    monkeypatch.undo()
    assert not scheme.get_participant("mtn-rw").active
    assert _status_record(scheme, "mtn-rw") == ([(1, False)], ["participant.suspended"])
    assert [c.reason for c in scheme.status_history(SCHEME, "mtn-rw")] == ["first operator"]


@pytest.mark.parametrize("active", [False, True], ids=["suspend", "resume"])
def test_two_operators_changing_a_status_at_once_record_one_change(
    scheme: PaymentScheme, other: PaymentScheme, active: bool
) -> None:
    """Two workers (their own engines, ledgers and caches) suspend, or resume, the same
    participant at the same moment: one change is recorded and told, and both answer the
    participant in the state asked for."""
    scheme.set_endpoint("mtn-rw", "https://mtn.example/callbacks")
    if active:
        scheme.set_active("mtn-rw", False, "to resume")
    start = threading.Barrier(2)
    answers: list[object] = []

    def operator(s: PaymentScheme, n: int) -> None:
        start.wait()
        try:
            answers.append(s.set_active("mtn-rw", active, f"operator {n}").active)
        except BaseException as exc:  # reported below, in the test's thread
            answers.append(exc)

    threads = [
        threading.Thread(target=operator, args=(s, n)) for n, s in enumerate((scheme, other))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [active, active]
    changes, notices = _status_record(scheme, "mtn-rw")
    expected = [(1, False), (2, True)] if active else [(1, False)]
    assert changes == expected
    assert notices == sorted(
        ["participant.suspended"] + (["participant.resumed"] if active else [])
    )
