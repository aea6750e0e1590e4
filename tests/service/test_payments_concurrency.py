"""Races between API workers acting at the same moment, on real threads: each worker is its own
``PaymentScheme`` on its own engine (its own connections, caches and group commit), as the
API's processes are, on one database. A ``threading.Barrier`` lines the workers' calls up so
that they reach the database together; each race is run for several rounds, and what must
hold whatever the interleaving is checked after each (exactly one outcome, funds moved once,
every committed transfer in exactly one settlement window, nets summing to zero).

Where tests/service/test_payments_races.py stages one interleaving deterministically, these
let the database's own locking decide: they guard the write lock and the re-reads under it
(SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's ``ledger_meta`` row lock over READ COMMITTED)
against a change that would let two workers decide on the same rows at once. Two processes
(``fork``) race once too, as ``entrepot serve``'s workers do. The Idempotency-Key tests are
the servers with other homes, whose in-progress claims do not reach each other: the key's
marker, written with the operation, decides there (payments/keyed.py)."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.responses import JSONResponse

from entrepot.entrypoints.api.problems import domain_error
from entrepot.entrypoints.api.security import SecurityMiddleware
from entrepot.kernel.clock import FakeClock
from entrepot.ledger import Ledger
from entrepot.payments import FeeSchedule, PaymentScheme
from entrepot.payments import store as st
from entrepot.payments.bulk import BulkItem, bulk_transfers
from entrepot.payments.credentials import issue_credential
from entrepot.payments.errors import (
    FxLiquidityExhausted,
    InvalidState,
    KeyInUse,
    NetDebitCapExceeded,
    PaymentError,
)
from entrepot.payments.keyed import ANSWER_LOST, KEYED_REQUEST, KeyedRequest
from entrepot.payments.model import EscrowState, TransferState
from entrepot.storage.engine import create_engine_from_url
from tests.e2e.test_api_middleware import QUOTE, _apost, _body, _headers, _status
from tests.service.test_payments import BK_CUSTOMER, assert_ledger_ok, join_bk

Outcome = object  # what a call returned, or the exception it raised


@contextmanager
def workers(engine: sa.Engine, clock: FakeClock, n: int) -> Iterator[list[PaymentScheme]]:
    """``n`` API workers on the scheme's database: each its own engine, ledger and caches."""
    url = engine.url.render_as_string(hide_password=False)
    engines = [create_engine_from_url(url) for _ in range(n)]
    try:
        yield [PaymentScheme(e, Ledger(e, clock), clock, fees=FeeSchedule(bps=50)) for e in engines]
    finally:
        for e in engines:
            e.dispose()


def race(*calls: Callable[[], object]) -> list[Outcome]:
    """Run each call on its own thread, released together by a barrier; what each returned
    or raised, in the order given."""
    barrier = threading.Barrier(len(calls))
    out: list[Outcome] = [None] * len(calls)

    def run(i: int, call: Callable[[], object]) -> None:
        barrier.wait()
        try:
            out[i] = call()
        except Exception as exc:  # the outcome to check
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a worker is stuck"
    return out


def ok(outcomes: list[Outcome]) -> list[object]:
    return [o for o in outcomes if not isinstance(o, BaseException)]


def unexpected(outcomes: list[Outcome], *expected: type[BaseException]) -> list[BaseException]:
    return [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, expected)]


def position(scheme: PaymentScheme, pid: str, cur: str) -> dict[str, int]:
    return scheme.liquidity(pid, cur)


ROUNDS = 8


def test_two_prepares_over_the_payers_cap_never_both_reserve(
    scheme: PaymentScheme, engine: sa.Engine, clock: FakeClock
) -> None:
    """Two workers prepare mtn-rw's transfers at once, each within what its position could
    send but not both: one is reserved, the other refused for the cap; the position never
    goes below zero."""
    join_bk(scheme)
    with workers(engine, clock, 2) as (a, b):
        for n in range(ROUNDS):
            free = position(scheme, "mtn-rw", "RWF")["position_available_minor"]
            amount = free * 6 // 10
            for tag in "ab":
                scheme.create_quote("mtn-rw", f"q{n}{tag}", *BK_CUSTOMER, amount, "SEND", "RWF")
            got = race(
                lambda n=n: a.prepare_transfer("mtn-rw", f"t{n}a", f"q{n}a"),
                lambda n=n: b.prepare_transfer("mtn-rw", f"t{n}b", f"q{n}b"),
            )
            assert not unexpected(got, NetDebitCapExceeded), got
            assert len(ok(got)) == 1, got
            liq = position(scheme, "mtn-rw", "RWF")
            assert liq["position_available_minor"] >= 0
            assert liq["position_reserved_minor"] == amount
            (t,) = ok(got)
            scheme.commit_transfer("bk-rw", t.id)  # type: ignore[attr-defined]
    assert_ledger_ok(scheme)


def test_a_prepare_and_a_bulk_over_the_payers_cap_never_both_take_it(
    scheme: PaymentScheme, engine: sa.Engine, clock: FakeClock
) -> None:
    """A prepare and a bulk of the same payer at once, each fitting alone but not together:
    whichever comes second is refused (the prepare for the cap, the bulk's item aborted)."""
    join_bk(scheme)
    with workers(engine, clock, 2) as (a, b):
        for n in range(ROUNDS):
            free = position(scheme, "mtn-rw", "RWF")["position_available_minor"]
            amount = free * 6 // 10
            scheme.create_quote("mtn-rw", f"q{n}", *BK_CUSTOMER, amount, "SEND", "RWF")
            item = BulkItem(f"b{n}", *BK_CUSTOMER, amount - amount // 200)  # fee on top
            got = race(
                lambda n=n: a.prepare_transfer("mtn-rw", f"t{n}", f"q{n}"),
                lambda n=n, item=item: bulk_transfers(b, "mtn-rw", f"bulk{n}", "RWF", [item]),
            )
            assert not unexpected(got, NetDebitCapExceeded), got
            prepared = not isinstance(got[0], BaseException)
            bulked = [r.state for r in got[1]] == [TransferState.COMMITTED]  # type: ignore[union-attr]
            assert prepared != bulked, got
            assert position(scheme, "mtn-rw", "RWF")["position_available_minor"] >= 0
            if prepared:
                scheme.reject_transfer("bk-rw", f"t{n}")
    assert_ledger_ok(scheme)


def test_commit_reject_and_the_expiry_pass_on_one_transfer_have_one_outcome(
    scheme: PaymentScheme, engine: sa.Engine, clock: FakeClock
) -> None:
    """The payee's commit, its reject (another worker, a retry with the other answer) and the
    deadline pass, at once on one transfer at its expiry instant or just before: exactly one
    of them decides it, and the ledger moved the funds that one's way, once."""
    join_bk(scheme)
    with workers(engine, clock, 3) as (a, b, c):
        for n in range(ROUNDS * 2):
            amount = 10_000 + n
            scheme.create_quote("mtn-rw", f"q{n}", *BK_CUSTOMER, amount, "SEND", "RWF")
            scheme.prepare_transfer("mtn-rw", f"t{n}", f"q{n}", ttl_s=30)
            before = position(scheme, "mtn-rw", "RWF")
            clock.advance(30 if n % 2 else 29)  # at the expiry instant, or a second before
            got = race(
                lambda n=n: a.commit_transfer("bk-rw", f"t{n}"),
                lambda n=n: b.reject_transfer("bk-rw", f"t{n}"),
                lambda: c.process_deadlines(),
            )
            assert not unexpected(got[:2], PaymentError), got
            assert not isinstance(got[2], BaseException), got
            t = scheme.get_transfer("bk-rw", f"t{n}")
            decided = [o for o in got[:2] if not isinstance(o, BaseException)]
            aborted_by_pass = got[2]["transfers_aborted"]  # type: ignore[index]
            assert len(decided) + aborted_by_pass <= 1, got
            after = position(scheme, "mtn-rw", "RWF")
            assert after["position_reserved_minor"] == before["position_reserved_minor"] - amount
            if t.state is TransferState.COMMITTED:
                assert decided == [t] or [d.state for d in decided] == [TransferState.COMMITTED]  # type: ignore[attr-defined]
                assert t.window_id is not None
                sent = before["position_available_minor"] - after["position_available_minor"]
                assert sent == 0  # reserved before, posted now: available does not move
                assert after["net_position_minor"] == before["net_position_minor"] - amount
            else:
                assert t.state is TransferState.ABORTED
                assert after["net_position_minor"] == before["net_position_minor"]
            clock.advance(5)
    assert_ledger_ok(scheme)


def test_an_escrow_decided_by_its_controller_and_its_deadline_at_once_moves_once(
    scheme: PaymentScheme, engine: sa.Engine, clock: FakeClock
) -> None:
    """Past its deadline, the controller's release, its refund (another worker) and the
    deadline pass race for one escrow: it closes once, its funds paid out once, to one
    side, and what it held is all that moved."""
    join_bk(scheme)
    with workers(engine, clock, 3) as (a, b, c):
        for n in range(ROUNDS * 2):
            amount = 50_000 + n
            scheme.create_escrow("mtn-rw", f"e{n}", "bk-rw", "RWF", amount, f"order {n}", 60)
            payer0 = position(scheme, "mtn-rw", "RWF")["net_position_minor"]
            payee0 = position(scheme, "bk-rw", "RWF")["net_position_minor"]
            clock.advance(60 if n % 2 else 59)  # at the deadline, or a second before it
            got = race(
                lambda n=n, m=amount: a.release_escrow("mtn-rw", f"e{n}", m),
                lambda n=n, m=amount: b.refund_escrow("mtn-rw", f"e{n}", m),
                lambda: c.process_deadlines(),
            )
            assert not unexpected(got[:2], PaymentError), got
            assert not isinstance(got[2], BaseException), got
            assert got[2]["escrows_failed"] == 0  # type: ignore[index]
            e = scheme.get_escrow("mtn-rw", f"e{n}")
            assert e.state is EscrowState.CLOSED
            assert (e.released_minor, e.refunded_minor) in ((amount, 0), (0, amount)), e
            payer = position(scheme, "mtn-rw", "RWF")["net_position_minor"] - payer0
            payee = position(scheme, "bk-rw", "RWF")["net_position_minor"] - payee0
            assert (payer, payee) == (e.refunded_minor, e.released_minor)
            moved = [o for o in got[:2] if not isinstance(o, BaseException)]
            if moved:
                assert len(moved) == 1 and got[2]["escrows_resolved"] == 0, got  # type: ignore[index]
            else:
                assert all(isinstance(o, InvalidState) for o in got[:2]), got
            clock.advance(5)
    assert_ledger_ok(scheme)


def test_two_partial_releases_of_one_escrow_at_once_never_pay_more_than_it_holds(
    scheme: PaymentScheme, engine: sa.Engine, clock: FakeClock
) -> None:
    """Two workers release 60% of one escrow each at once: one is paid, the other refused
    (it holds 40%); the escrow's books and the payee's position agree."""
    join_bk(scheme)
    with workers(engine, clock, 2) as (a, b):
        for n in range(ROUNDS):
            scheme.create_escrow("mtn-rw", f"e{n}", "bk-rw", "RWF", 100_000, f"order {n}", 600)
            payee0 = position(scheme, "bk-rw", "RWF")["net_position_minor"]
            got = race(
                lambda n=n: a.release_escrow("mtn-rw", f"e{n}", 60_000),
                lambda n=n: b.release_escrow("mtn-rw", f"e{n}", 60_000),
            )
            assert len(ok(got)) == 1, got
            assert not unexpected(got, PaymentError), got
            e = scheme.get_escrow("mtn-rw", f"e{n}")
            assert (e.state, e.released_minor) == (EscrowState.HELD, 60_000)
            assert position(scheme, "bk-rw", "RWF")["net_position_minor"] - payee0 == 60_000
    assert_ledger_ok(scheme)


def test_fx_liquidity_is_never_reserved_twice_by_two_quote_accepts_at_once(
    scheme: PaymentScheme, engine: sa.Engine, clock: FakeClock
) -> None:
    """fxco's MYR liquidity, reserved by two payers' quote accepts at once, each within it
    but not both: one is reserved, the other refused; fxco's position never goes below zero."""
    scheme.deposit("mtn-rw", "RWF", 900_000_000, "dep-big")
    scheme.set_net_debit_cap("mtn-rw", "RWF", 900_000_000)
    with workers(engine, clock, 2) as (a, b):
        for n in range(ROUNDS):
            scheme.post_fx_rate("fxco", "RWF", "MYR", Decimal("0.0032"), 100, 3600)
            free = position(scheme, "fxco", "MYR")["position_available_minor"]
            target = free * 6 // 10
            for tag in "ab":
                scheme.create_quote(
                    "mtn-rw", f"q{n}{tag}", "MERCHANT", "KL-TILL-42", target, "RECEIVE", "RWF"
                )
            got = race(
                lambda n=n: a.accept_quote("mtn-rw", f"q{n}a"),
                lambda n=n: b.accept_quote("mtn-rw", f"q{n}b"),
            )
            assert not unexpected(got, FxLiquidityExhausted), got
            assert len(ok(got)) == 1, got
            liq = position(scheme, "fxco", "MYR")
            assert liq["position_available_minor"] >= 0
            assert liq["position_reserved_minor"] == target
            clock.advance(3600)  # the accepted quote expires, its reservation is voided
            scheme.process_deadlines()
    assert_ledger_ok(scheme)


def test_window_close_racing_commits_and_bulks_puts_each_transfer_in_one_window(
    scheme: PaymentScheme, engine: sa.Engine, clock: FakeClock
) -> None:
    """While the operator closes the settlement window, other workers commit transfers and
    run bulks: every committed transfer lands in exactly one window, each window's nets are
    what was sent and received in it, and they sum to zero per currency."""
    join_bk(scheme)
    with workers(engine, clock, 3) as (a, b, c):
        for n in range(ROUNDS):
            scheme.create_quote("mtn-rw", f"q{n}", *BK_CUSTOMER, 20_000 + n, "SEND", "RWF")
            scheme.prepare_transfer("mtn-rw", f"t{n}", f"q{n}")
            item = BulkItem(f"b{n}", *BK_CUSTOMER, 7_000 + n)
            got = race(
                lambda n=n: a.commit_transfer("bk-rw", f"t{n}"),
                lambda n=n, item=item: bulk_transfers(b, "mtn-rw", f"bulk{n}", "RWF", [item]),
                lambda: c.close_window(),
            )
            assert not any(isinstance(o, BaseException) for o in got), got
            closed = got[2]
            scheme.settle_window("scheme", closed.id)  # type: ignore[attr-defined]
        last = scheme.close_window()
        scheme.settle_window("scheme", last.id)
    with engine.connect() as conn:
        committed = conn.execute(
            sa.select(st.transfers.c.id, st.transfers.c.window_id).where(
                st.transfers.c.state == TransferState.COMMITTED.value
            )
        ).all()
    assert len(committed) == 2 * ROUNDS
    windows = {w.id: w for w in scheme.list_windows()}
    assert all(wid in windows and windows[wid].closed_at_ns is not None for _, wid in committed)
    for w in windows.values():
        nets: dict[str, int] = {}
        for p in w.positions:
            nets[p.currency] = nets.get(p.currency, 0) + p.net_minor
            assert p.net_minor == p.received_minor - p.sent_minor, (w.id, p)
        assert all(v == 0 for v in nets.values()), (w.id, nets)
    assert_ledger_ok(scheme)


def _keyed(worker: PaymentScheme, key: str, call: Callable[[PaymentScheme], object]) -> object:
    """``call`` as the API runs a request with Idempotency-Key ``key`` whose lookup found no
    answer stored for it (its first use, as far as this server knew)."""
    token = KEYED_REQUEST.set(KeyedRequest("mtn-rw", key, "digest-of-the-request", fresh=True))
    try:
        return call(worker)
    finally:
        KEYED_REQUEST.reset(token)


def test_one_idempotency_key_sent_to_two_servers_at_once_releases_an_escrow_once(
    scheme: PaymentScheme, engine: sa.Engine, clock: FakeClock
) -> None:
    """A client's retry, sent with the same Idempotency-Key and body while its first request
    still runs, reaches another server of the database (another host: the in-progress claims
    are per home, claims.py). Both found no answer for the key and ran. A partial release
    names nothing of its own for the second to be refused by: the escrow was paid out twice.
    Now the second to write finds the key's marker under the write lock and is refused."""
    join_bk(scheme)
    with workers(engine, clock, 2) as (a, b):
        for n in range(ROUNDS):
            scheme.create_escrow("mtn-rw", f"e{n}", "bk-rw", "RWF", 100_000, f"order {n}", 600)
            payee0 = position(scheme, "bk-rw", "RWF")["net_position_minor"]

            def release(w: PaymentScheme, n: int = n) -> object:
                return w.release_escrow("mtn-rw", f"e{n}", 30_000)

            got = race(
                lambda n=n, release=release: _keyed(a, f"k{n}", release),
                lambda n=n, release=release: _keyed(b, f"k{n}", release),
            )
            assert len(ok(got)) == 1, got
            assert not unexpected(got, KeyInUse), got
            e = scheme.get_escrow("mtn-rw", f"e{n}")
            assert e.released_minor == 30_000, got
            assert position(scheme, "bk-rw", "RWF")["net_position_minor"] - payee0 == 30_000
    assert_ledger_ok(scheme)


def _other_servers_marker(scheme: PaymentScheme, key: str, digest: str) -> None:
    """Another server's request with ``key`` committed its operation: its marker waits for
    its answer."""
    with scheme.engine.begin() as conn:
        conn.execute(
            sa.insert(st.idempotency).values(
                caller="mtn-rw",
                key=key,
                request_hash=digest,
                status_code=ANSWER_LOST,
                response="",
                created_at=1,
            )
        )


def test_a_request_whose_key_another_server_used_meanwhile_is_told_to_retry(
    scheme: PaymentScheme,
) -> None:
    """Through the API's middleware: the key had no answer when the request began; another
    server's request with it wrote its operation before this one's could. This one is
    refused, answered 409 ``request_in_progress`` (retry, to be answered as the other was),
    and its refusal is not stored over the other request's marker as the key's answer."""
    credential = issue_credential(scheme.engine, "mtn-rw").token
    ran: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        keyed = KEYED_REQUEST.get()
        assert keyed is not None and keyed.fresh
        _other_servers_marker(scheme, "k-elsewhere", keyed.digest)
        try:
            with scheme.unit_of_work():  # this one's write: refused when it marks the key
                ran.append("wrote")
        except KeyInUse as exc:
            await domain_error(None, exc)(scope, receive, send)  # type: ignore[arg-type]
            return
        await JSONResponse({}, status_code=201)(scope, receive, send)

    guarded = SecurityMiddleware(app, engine=scheme.engine)
    sent = asyncio.run(_apost(guarded, credential, [QUOTE], key="k-elsewhere"))
    assert ran == ["wrote"]
    assert _status(sent) == [409]
    assert _body(sent)["code"] == "request_in_progress"
    assert _headers(sent)[b"retry-after"] == b"1"
    with scheme.engine.connect() as conn:
        row = st.IDEMPOTENT_ANSWER.first(conn, ("mtn-rw", "k-elsewhere"))
    assert row[1] == ANSWER_LOST  # still the other request's, waiting for its answer


def _release_in_a_process(
    url: str, clock: FakeClock, barrier: Any, escrow_id: str, results: Any
) -> None:
    """A worker process: its own engine and scheme; releases 60,000 of the escrow once the
    other process is ready too, and reports what happened."""
    eng = create_engine_from_url(url)
    try:
        worker = PaymentScheme(eng, Ledger(eng, clock), clock)
        barrier.wait(30)
        try:
            worker.release_escrow("mtn-rw", escrow_id, 60_000)
            results.put("released")
        except PaymentError as exc:
            results.put(exc.code)
    finally:
        eng.dispose()


def test_two_worker_processes_releasing_one_escrow_at_once_pay_it_out_once(
    scheme: PaymentScheme, engine: sa.Engine, clock: FakeClock
) -> None:
    """As ``entrepot serve`` runs them: two processes (SQLite: each queues on the writers'
    lock file, then SQLite's lock; PostgreSQL: the meta row's lock) release 60% of one escrow
    each at once: one is paid, the other refused, and the books agree."""
    join_bk(scheme)
    url = engine.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("fork")
    for n in range(3):
        scheme.create_escrow("mtn-rw", f"e{n}", "bk-rw", "RWF", 100_000, f"order {n}", 600)
        payee0 = position(scheme, "bk-rw", "RWF")["net_position_minor"]
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [
            ctx.Process(target=_release_in_a_process, args=(url, clock, barrier, f"e{n}", results))
            for _ in range(2)
        ]
        for p in procs:
            p.start()
        got = sorted(results.get(timeout=60) for _ in procs)
        for p in procs:
            p.join(30)
        assert [p.exitcode for p in procs] == [0, 0]
        assert got == ["insufficient_escrow", "released"], got
        assert scheme.get_escrow("mtn-rw", f"e{n}").released_minor == 60_000
        assert position(scheme, "bk-rw", "RWF")["net_position_minor"] - payee0 == 60_000
    assert_ledger_ok(scheme)


def test_a_refusal_on_one_server_is_not_stored_over_the_keys_operation_on_another(
    scheme: PaymentScheme,
) -> None:
    """Two servers (other homes) take one key at once. The request on the other server did
    its operation (its marker, waiting for its answer); this one wrote nothing and was
    refused (a 409 of its own, say the cap, read before the other's work). This refusal
    was stored over the other's marker as the key's answer: the other's 201 was then never
    stored, and every replay of the key answered 409 for an operation that was done."""
    credential = issue_credential(scheme.engine, "mtn-rw").token

    async def app(scope: Any, receive: Any, send: Any) -> None:
        keyed = KEYED_REQUEST.get()
        assert keyed is not None and keyed.fresh
        _other_servers_marker(scheme, "k-refused", keyed.digest)
        refusal = NetDebitCapExceeded("mtn-rw would exceed its net debit cap in RWF")
        await domain_error(None, refusal)(scope, receive, send)  # type: ignore[arg-type]

    guarded = SecurityMiddleware(app, engine=scheme.engine)
    sent = asyncio.run(_apost(guarded, credential, [QUOTE], key="k-refused"))
    assert _status(sent) == [409] and _body(sent)["code"] == "request_in_progress"
    with scheme.engine.connect() as conn:
        row = st.IDEMPOTENT_ANSWER.first(conn, ("mtn-rw", "k-refused"))
    assert row[1] == ANSWER_LOST  # the other request's marker, for its own answer


def test_a_marker_undone_with_its_transaction_does_not_let_a_refusal_fill_another_servers(
    scheme: PaymentScheme,
) -> None:
    """Pay-by-QR quotes and prepares in one transaction: the quote's write claims the key
    (its marker), then the prepare is refused (the cap) and the whole transaction, marker
    included, is rolled back. Another server's request with the same key then did its
    operation (its marker, waiting for its answer). This request's refusal was stored as if
    the marker there were its own: over the other's, so the key answered 409 for an
    operation that was done. It now fills only the marker it wrote itself."""
    credential = issue_credential(scheme.engine, "mtn-rw").token

    async def app(scope: Any, receive: Any, send: Any) -> None:
        keyed = KEYED_REQUEST.get()
        assert keyed is not None and keyed.fresh
        refusal = NetDebitCapExceeded("mtn-rw would exceed its net debit cap in RWF")
        try:
            with scheme.unit_of_work() as uow, scheme.joined(uow):
                with scheme.unit_of_work():  # the quote's write, joined: marks the key
                    pass
                assert keyed.progress.marked
                raise refusal  # the prepare's: everything is rolled back
        except NetDebitCapExceeded:
            pass
        _other_servers_marker(scheme, "k-undone", keyed.digest)
        await domain_error(None, refusal)(scope, receive, send)  # type: ignore[arg-type]

    guarded = SecurityMiddleware(app, engine=scheme.engine)
    sent = asyncio.run(_apost(guarded, credential, [QUOTE], key="k-undone"))
    assert _status(sent) == [409]
    with scheme.engine.connect() as conn:
        row = st.IDEMPOTENT_ANSWER.first(conn, ("mtn-rw", "k-undone"))
    assert row[1] == ANSWER_LOST  # the other request's marker, for its own answer


def test_a_refusal_whose_marker_was_undone_is_still_the_keys_answer_where_nobody_else_wrote(
    scheme: PaymentScheme,
) -> None:
    """The same rolled-back marker, no other server: the refusal is the key's answer, and a
    replay of the key is answered with it."""
    credential = issue_credential(scheme.engine, "mtn-rw").token
    runs: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        runs.append(1)
        refusal = NetDebitCapExceeded("mtn-rw would exceed its net debit cap in RWF")
        try:
            with scheme.unit_of_work() as uow, scheme.joined(uow):
                with scheme.unit_of_work():
                    pass
                raise refusal
        except NetDebitCapExceeded:
            pass
        await domain_error(None, refusal)(scope, receive, send)  # type: ignore[arg-type]

    guarded = SecurityMiddleware(app, engine=scheme.engine)
    first = asyncio.run(_apost(guarded, credential, [QUOTE], key="k-alone"))
    again = asyncio.run(_apost(guarded, credential, [QUOTE], key="k-alone"))
    assert _status(first) == _status(again) == [409]
    assert runs == [1]  # the replay was answered from what was stored
    with scheme.engine.connect() as conn:
        row = st.IDEMPOTENT_ANSWER.first(conn, ("mtn-rw", "k-alone"))
    assert row[1] == 409


def test_a_write_after_the_requests_marker_was_undone_is_refused_if_another_server_marked(
    scheme: PaymentScheme, engine: sa.Engine, clock: FakeClock
) -> None:
    """A request whose first write (and marker) was rolled back writes again, after another
    server's request with the key did its operation: refused (``KeyInUse``), as a first
    write would be, not taken for a later write of a key it holds."""
    join_bk(scheme)
    scheme.create_escrow("mtn-rw", "e-undone", "bk-rw", "RWF", 100_000, "order", 600)
    keyed = KeyedRequest("mtn-rw", "k-again", "digest-of-the-request", fresh=True)
    token = KEYED_REQUEST.set(keyed)
    try:
        with pytest.raises(ZeroDivisionError), scheme.unit_of_work():
            _ = 1 / 0  # marks nothing: the block failed
        with suppress(ZeroDivisionError), scheme.unit_of_work() as uow, scheme.joined(uow):
            with scheme.unit_of_work():
                pass  # marks the key, then everything is rolled back
            _ = 1 / 0
        assert keyed.progress.marked
        _other_servers_marker(scheme, "k-again", keyed.digest)
        with pytest.raises(KeyInUse):
            scheme.release_escrow("mtn-rw", "e-undone", 30_000)
    finally:
        KEYED_REQUEST.reset(token)
    assert scheme.get_escrow("mtn-rw", "e-undone").released_minor == 0
    # the same request's own marker, still there, is its own: a later write goes on
    keyed = KeyedRequest("mtn-rw", "k-own", "digest-of-the-request", fresh=True)
    token = KEYED_REQUEST.set(keyed)
    try:
        with scheme.unit_of_work():
            pass
        scheme.release_escrow("mtn-rw", "e-undone", 30_000)
    finally:
        KEYED_REQUEST.reset(token)
    assert scheme.get_escrow("mtn-rw", "e-undone").released_minor == 30_000


def test_a_refusal_for_what_another_servers_request_with_the_key_did_is_not_its_answer(
    scheme: PaymentScheme,
) -> None:
    """Found by a review (two servers on other homes, each sent the same keyed commit at
    once): the request that lost the write lock found the transfer committed by the other's
    request and was refused ("already COMMITTED") without writing, so no ``KeyInUse``; its
    refusal was not stored (the key's row was the other's) but was sent: one key, two
    outcomes, and a client that takes a 409 as final thought its commit failed. It is asked
    to retry while the other's answer is to come, and given that answer once stored."""
    credential = issue_credential(scheme.engine, "mtn-rw").token
    other_answer: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        keyed = KEYED_REQUEST.get()
        assert keyed is not None and keyed.fresh
        key = "k-answered" if other_answer else "k-pending"
        _other_servers_marker(scheme, key, keyed.digest)
        if other_answer:  # the other request's answer is stored already
            with scheme.engine.begin() as conn:
                conn.execute(
                    sa.update(st.idempotency)
                    .where(st.idempotency.c.key == key)
                    .values(status_code=200, response='{"state":"COMMITTED"}')
                )
        refusal = InvalidState("transfer t1 is already COMMITTED")
        await domain_error(None, refusal)(scope, receive, send)  # type: ignore[arg-type]

    guarded = SecurityMiddleware(app, engine=scheme.engine)
    sent = asyncio.run(_apost(guarded, credential, [QUOTE], key="k-pending"))
    assert _status(sent) == [409] and _body(sent)["code"] == "request_in_progress", sent
    assert _headers(sent)[b"retry-after"] == b"1"
    other_answer.append(True)
    sent = asyncio.run(_apost(guarded, credential, [QUOTE], key="k-answered"))
    assert _status(sent) == [200] and _body(sent) == {"state": "COMMITTED"}, sent
    assert _headers(sent)[b"idempotent-replayed"] == b"true"
    with scheme.engine.connect() as conn:
        row = st.IDEMPOTENT_ANSWER.first(conn, ("mtn-rw", "k-pending"))
    assert row[1] == ANSWER_LOST  # still the other request's, waiting for its answer
