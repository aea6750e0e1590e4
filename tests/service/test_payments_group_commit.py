"""The scheme's writes under group commit (ADR 0005): concurrent payments share transactions
and every one of them is exact; a use case that records an abort and then fails keeps the
abort inside a shared batch. Runs on every backend."""

from __future__ import annotations

import threading
import time

import pytest

from entrepot.kernel.clock import FakeClock
from entrepot.payments import SCHEME, PaymentScheme, TransferState
from entrepot.payments.errors import NetDebitCapExceeded, QuoteNotFound, TransferExpired
from entrepot.payments.services import TRANSFER_TTL_S
from tests.service.test_payments import TILL, assert_ledger_ok, liquidity, moves
from tests.storage.test_group_commit import in_threads, queued


def test_concurrent_payments_are_each_exact(scheme: PaymentScheme) -> None:
    before = liquidity(scheme)
    quoted: dict[str, tuple[int, int, int]] = {}
    lock = threading.Lock()

    def payer(w: int) -> None:
        for i in range(6):
            qid, tid = f"q{w}-{i}", f"t{w}-{i}"
            q = scheme.create_quote("mtn-rw", qid, *TILL, 1_000 + w, "RECEIVE", "RWF")
            scheme.prepare_transfer("mtn-rw", tid, qid)
            if i % 3 == 2:  # every third is rejected by the payee: its reservation released
                assert scheme.reject_transfer("maybank", tid).state is TransferState.ABORTED
                continue
            assert scheme.commit_transfer("maybank", tid).state is TransferState.COMMITTED
            with lock:
                quoted[tid] = (q.source_amount_minor, q.fee_minor, q.target_amount_minor)

    assert in_threads(*(lambda w=w: payer(w) for w in range(6))) == [None] * 6
    sent = sum(s for s, _, _ in quoted.values())
    fees = sum(f for _, f, _ in quoted.values())
    received = sum(r for _, _, r in quoted.values())
    assert len(quoted) == 24
    assert moves(before, liquidity(scheme)) == {
        ("mtn-rw", "RWF", "net_position"): -sent,
        ("fxco", "RWF", "net_position"): sent - fees,
        ("scheme", "RWF", "net_position"): fees,
        ("fxco", "MYR", "net_position"): -received,
        ("maybank", "MYR", "net_position"): received,
    }
    assert_ledger_ok(scheme)


def test_an_abort_recorded_before_an_error_holds_inside_a_shared_batch(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """Committing an expired transfer aborts it (releasing its reservations), commits that,
    then reports the expiry: in a batch, the abort is committed with the batch."""
    group = scheme._group
    assert group is not None
    group.age_max_s = 10.0  # one batch, however slow the machine
    scheme.create_quote("mtn-rw", "q1", *TILL, 1_000, "RECEIVE", "RWF")
    scheme.prepare_transfer("mtn-rw", "t1", "q1")
    reserved = liquidity(scheme)
    clock.advance(TRANSFER_TTL_S + 1)

    def holder() -> None:
        with group.unit():
            queued(group, 2)  # the others join this transaction

    def expired_commit() -> None:
        time.sleep(0.01)
        with pytest.raises(TransferExpired):
            scheme.commit_transfer("maybank", "t1")

    def refused() -> None:
        time.sleep(0.01)
        with pytest.raises(QuoteNotFound):
            scheme.prepare_transfer("mtn-rw", "t2", "no-such-quote")

    commits = group.commits
    assert in_threads(holder, expired_commit, refused) == [None, None, None]
    assert group.commits == commits + 1
    t = scheme.get_transfer("maybank", "t1")
    assert (t.state, t.reason) == (TransferState.ABORTED, "expired")
    released = moves(reserved, liquidity(scheme))
    assert released[("mtn-rw", "RWF", "position_reserved")] < 0
    assert_ledger_ok(scheme)


def _queue_behind(
    monkeypatch: pytest.MonkeyPatch, scheme: PaymentScheme, method: str, thread: str
) -> threading.Event:
    """Make ``method``, when the thread named ``thread`` calls it inside its use case, wait
    until another use case queues behind it: the two then share a batch."""
    group = scheme._group
    assert group is not None
    group.age_max_s = 10.0
    inside = threading.Event()
    original = getattr(scheme, method)

    def hooked(*args: object, **kwargs: object) -> object:
        if threading.current_thread().name == thread and not inside.is_set():
            inside.set()
            queued(group, 1)
        return original(*args, **kwargs)

    monkeypatch.setattr(scheme, method, hooked)
    return inside


def test_a_window_closed_in_the_batch_of_a_commit_nets_it(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The close reads the positions in the shared transaction, not a snapshot without the
    commit just before it (the report would not reconcile)."""
    scheme.create_quote("mtn-rw", "q1", *TILL, 1_000, "RECEIVE", "RWF")
    scheme.prepare_transfer("mtn-rw", "t1", "q1")
    inside = _queue_behind(monkeypatch, scheme, "_open_window", "committer")

    def committer() -> None:
        threading.current_thread().name = "committer"
        scheme.commit_transfer("maybank", "t1")

    def closer() -> None:
        assert inside.wait(10)
        scheme.close_window(SCHEME)

    assert in_threads(committer, closer) == [None, None]
    window = scheme.get_window(1)
    assert any(p.net_minor for p in window.positions)
    for p in window.positions:
        assert p.net_minor == p.received_minor - p.sent_minor, p


def test_a_cap_set_in_the_batch_of_a_settlement_sees_it(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cap must be covered by the settlement balance as it is in the transaction: after
    a settlement just before it in the batch, not before."""
    scheme.create_quote("mtn-rw", "q1", *TILL, 1_000_000, "RECEIVE", "RWF")
    scheme.prepare_transfer("mtn-rw", "t1", "q1")
    scheme.commit_transfer("maybank", "t1")
    window = scheme.close_window(SCHEME)
    before = liquidity(scheme)[("mtn-rw", "RWF")]["settlement_balance_minor"]
    inside = _queue_behind(monkeypatch, scheme, "_post_ok", "settler")

    def settler() -> None:
        threading.current_thread().name = "settler"
        scheme.settle_window(SCHEME, window.id)

    def capper() -> None:
        assert inside.wait(10)
        with pytest.raises(NetDebitCapExceeded):  # covered before the settlement, not after
            scheme.set_net_debit_cap("mtn-rw", "RWF", before)

    assert in_threads(settler, capper) == [None, None]
    after = liquidity(scheme)[("mtn-rw", "RWF")]
    assert after["settlement_balance_minor"] < before
    assert after["net_debit_cap_minor"] <= after["settlement_balance_minor"]
    assert_ledger_ok(scheme)
