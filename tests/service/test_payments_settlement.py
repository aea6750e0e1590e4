"""Settlement windows: closing computes each participant's multilateral net per currency from
its position, the report compares gross and net, settling moves the nets between settlement
accounts and restores every position exactly. Only the scheme operator closes and settles."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
import sqlalchemy as sa

from entrepot.kernel import limits
from entrepot.kernel.clock import NS_PER_S, FakeClock, ns_to_datetime
from entrepot.kernel.errors import InvalidInput
from entrepot.ledger import validate
from entrepot.payments import (
    SCHEME,
    NetPosition,
    PaymentScheme,
    SettlementWindow,
    WindowState,
    messages,
)
from entrepot.payments.errors import (
    InvalidState,
    LedgerRefused,
    NetDebitCapExceeded,
    NotYours,
    WindowNotFound,
)
from entrepot.payments.services import ledger_id
from tests.conftest import build_scheme
from tests.service.test_payments import (
    ALINE,
    BK_CUSTOMER,
    TILL,
    assert_ledger_ok,
    join,
    join_bk,
    liquidity,
    moves,
    pay,
    unchanged,
)


def nets(window_positions: tuple[NetPosition, ...]) -> dict[tuple[str, str], tuple[int, int, int]]:
    return {
        (p.participant_id, p.currency): (p.sent_minor, p.received_minor, p.net_minor)
        for p in window_positions
    }


def restored(scheme: PaymentScheme) -> None:
    """Every position is back to its cap, nothing reserved."""
    for (pid, cur), liq in liquidity(scheme).items():
        assert liq["net_position_minor"] == 0, (pid, cur)
        assert liq["position_reserved_minor"] == 0, (pid, cur)
        assert liq["position_available_minor"] == liq["net_debit_cap_minor"], (pid, cur)


def settled_whole(
    scheme: PaymentScheme,
    before: dict[tuple[str, str], dict[str, int]],
    closed: SettlementWindow,
    settled: SettlementWindow,
) -> None:
    """Every net of ``closed`` was settled whole, moved between settlement accounts since
    ``before`` (the liquidity before its payments), and every position restored."""
    assert settled.positions == tuple(
        replace(p, settled_minor=abs(p.net_minor)) for p in closed.positions
    )
    assert moves(before, liquidity(scheme)) == {
        (pid, cur, "settlement_balance"): net
        for (pid, cur), (_, _, net) in nets(closed.positions).items()
    }
    restored(scheme)


def test_close_and_settle_a_window_of_payments_in_both_directions(
    scheme: PaymentScheme,
) -> None:
    join_bk(scheme)
    # fxco also sells RWF for MYR: 312.5 less 100 bps = 309.375 RWF per MYR.
    scheme.post_fx_rate("fxco", "MYR", "RWF", Decimal("312.5"), 100, 3_600)
    before = liquidity(scheme)
    transfers = [
        # 200,000 RWF: fee 1,000, bk-rw gets 199,000.
        pay(scheme, "mtn-rw", "p1", BK_CUSTOMER, 200_000, "RWF"),
        # 150,000 RWF: fee 750, mtn-rw gets 149,250.
        pay(scheme, "bk-rw", "p2", ALINE, 150_000, "RWF"),
        # 100,100 RWF: fee 501, fxco gets 99,599 RWF and pays maybank 31,552 sen.
        pay(scheme, "mtn-rw", "p3", TILL, 100_100, "RWF"),
        # 100.00 MYR: fee 50 sen; 99.50 MYR * 309.375 = 30,782.8125 -> 30,782 RWF to mtn-rw.
        pay(scheme, "maybank", "p4", ALINE, 10_000, "MYR"),
    ]
    assert [(t.fee_minor, t.target_amount_minor) for t in transfers] == [
        (1_000, 199_000),
        (750, 149_250),
        (501, 31_552),
        (50, 30_782),
    ]
    rejected = pay(scheme, "mtn-rw", "p5", BK_CUSTOMER, 77_777, "RWF", commit=False)
    scheme.reject_transfer("bk-rw", rejected.id)
    window_id = transfers[0].window_id
    assert window_id is not None
    assert {t.window_id for t in transfers} == {window_id}
    assert scheme.get_window(window_id).state is WindowState.OPEN

    w = scheme.close_window(SCHEME)
    assert w.state is WindowState.CLOSED
    assert w.closed_at_ns is not None
    # (sent, received, net): a payer sends what it pays (fee included), the scheme receives
    # the fees, an FX provider receives one currency and sends the other.
    assert nets(w.positions) == {
        ("mtn-rw", "RWF"): (300_100, 180_032, -120_068),
        ("bk-rw", "RWF"): (150_000, 199_000, 49_000),
        (SCHEME, "RWF"): (0, 2_251, 2_251),
        ("fxco", "RWF"): (30_782, 99_599, 68_817),
        ("maybank", "MYR"): (10_000, 31_552, 21_552),
        (SCHEME, "MYR"): (0, 50, 50),
        ("fxco", "MYR"): (31_552, 9_950, -21_602),
    }
    for p in w.positions:
        assert p.net_minor == p.received_minor - p.sent_minor
    for cur in ("RWF", "MYR"):
        assert sum(p.net_minor for p in w.positions if p.currency == cur) == 0
    # Gross: everything sent; net: what the net debtors owe; netting saved the difference.
    report = w.report()
    assert report == {
        "RWF": {
            "gross_minor": 480_882,
            "net_minor": 120_068,
            "carried_minor": 0,
            "liquidity_saved_minor": 360_814,
            "gross_to_net": "4.01",
        },
        "MYR": {
            "gross_minor": 41_552,
            "net_minor": 21_602,
            "carried_minor": 0,
            "liquidity_saved_minor": 19_950,
            "gross_to_net": "1.92",
        },
    }
    assert report["RWF"]["gross_minor"] == sum(
        t.source_amount_minor for t in transfers if t.source_currency == "RWF"
    ) + sum(t.target_amount_minor for t in transfers if t.target_currency == "RWF" and t.fx_rate)
    # Closing moved no money and opened the next window.
    assert moves(before, liquidity(scheme)) == {
        (pid, cur, "net_position"): net for (pid, cur), (_, _, net) in nets(w.positions).items()
    }
    nxt = scheme.current_window()
    assert (nxt.id, nxt.state) == (window_id + 1, WindowState.OPEN)

    settled = scheme.settle_window(SCHEME, window_id)
    assert settled.state is WindowState.SETTLED
    assert settled.settled_at_ns is not None
    settled_whole(scheme, before, w, settled)
    # The settlement hub passes the nets through and keeps nothing.
    for cur in ("RWF", "MYR"):
        hub = scheme.ledger.get_account(ledger_id("scheme-account", cur, "settlement_hub"))
        assert hub.debits_posted == hub.credits_posted > 0
    assert [x.state for x in scheme.list_windows()] == [WindowState.SETTLED, WindowState.OPEN]
    assert_ledger_ok(scheme)


def test_a_transfer_reserved_at_close_settles_in_the_window_it_commits_in(
    scheme: PaymentScheme,
) -> None:
    join_bk(scheme)
    before = liquidity(scheme)
    pending = pay(scheme, "mtn-rw", "t1", TILL, 100_100, "RWF", commit=False)
    done = pay(scheme, "mtn-rw", "t2", BK_CUSTOMER, 10_000, "RWF")
    w1 = scheme.close_window()
    assert nets(w1.positions) == {
        ("mtn-rw", "RWF"): (10_000, 0, -10_000),
        ("bk-rw", "RWF"): (0, 9_950, 9_950),
        (SCHEME, "RWF"): (0, 50, 50),
    }
    assert done.window_id == w1.id
    committed = scheme.commit_transfer("maybank", pending.id)
    assert committed.window_id == w1.id + 1
    scheme.settle_window(SCHEME, w1.id)
    # Window 1 settled; t1 is still in mtn-rw's position, waiting for window 2.
    assert liquidity(scheme)[("mtn-rw", "RWF")]["net_position_minor"] == -100_100
    w2 = scheme.close_window()
    assert nets(w2.positions) == {
        ("mtn-rw", "RWF"): (100_100, 0, -100_100),
        (SCHEME, "RWF"): (0, 501, 501),
        ("fxco", "RWF"): (0, 99_599, 99_599),
        ("fxco", "MYR"): (31_552, 0, -31_552),
        ("maybank", "MYR"): (0, 31_552, 31_552),
    }
    scheme.settle_window(SCHEME, w2.id)
    assert moves(before, liquidity(scheme)) == {
        ("mtn-rw", "RWF", "settlement_balance"): -110_100,
        ("bk-rw", "RWF", "settlement_balance"): 9_950,
        (SCHEME, "RWF", "settlement_balance"): 551,
        ("fxco", "RWF", "settlement_balance"): 99_599,
        ("fxco", "MYR", "settlement_balance"): -31_552,
        ("maybank", "MYR", "settlement_balance"): 31_552,
    }
    restored(scheme)
    assert_ledger_ok(scheme)


def test_a_window_closed_before_the_previous_one_settles_does_not_count_it_twice(
    scheme: PaymentScheme,
) -> None:
    join_bk(scheme)
    before = liquidity(scheme)
    pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 10_000, "RWF")  # fee 50
    w1 = scheme.close_window()
    pay(scheme, "mtn-rw", "t2", BK_CUSTOMER, 20_000, "RWF")  # fee 100
    try:
        w2 = scheme.close_window()
    except InvalidState:  # refusing to close while a closed window is unsettled is also fine
        scheme.settle_window(SCHEME, w1.id)
        w2 = scheme.close_window()
    else:
        scheme.settle_window(SCHEME, w1.id)
    # Window 2 holds only window 2's payment.
    assert nets(w2.positions) == {
        ("mtn-rw", "RWF"): (20_000, 0, -20_000),
        ("bk-rw", "RWF"): (0, 19_900, 19_900),
        (SCHEME, "RWF"): (0, 100, 100),
    }
    scheme.settle_window(SCHEME, w2.id)
    assert moves(before, liquidity(scheme)) == {
        ("mtn-rw", "RWF", "settlement_balance"): -30_000,
        ("bk-rw", "RWF", "settlement_balance"): 29_850,
        (SCHEME, "RWF", "settlement_balance"): 150,
    }
    restored(scheme)
    assert_ledger_ok(scheme)


def test_only_the_scheme_closes_and_settles_and_each_window_settles_once(
    scheme: PaymentScheme,
) -> None:
    t = pay(scheme, "mtn-rw", "t1", TILL, 100_100, "RWF")
    assert t.window_id is not None
    for intruder in ("maybank", "mtn-rw", "fxco"):
        with unchanged(scheme), pytest.raises(NotYours):
            scheme.close_window(intruder)
    with unchanged(scheme), pytest.raises(InvalidState):
        scheme.settle_window(SCHEME, t.window_id)  # still OPEN
    with unchanged(scheme), pytest.raises(WindowNotFound):
        scheme.settle_window(SCHEME, t.window_id + 99)
    w = scheme.close_window()
    for intruder in ("maybank", "mtn-rw", "fxco"):
        with unchanged(scheme), pytest.raises(NotYours):
            scheme.settle_window(intruder, w.id)
    scheme.settle_window(SCHEME, w.id)
    with unchanged(scheme), pytest.raises(InvalidState):
        scheme.settle_window(SCHEME, w.id)
    # An empty window closes and settles to nothing.
    empty = scheme.close_window()
    assert (empty.positions, empty.report()) == ((), {})
    assert scheme.settle_window(SCHEME, empty.id).state is WindowState.SETTLED
    restored(scheme)
    assert_ledger_ok(scheme)


def test_nets_include_escrow_moves(scheme: PaymentScheme) -> None:
    join_bk(scheme)
    before = liquidity(scheme)
    pay(scheme, "bk-rw", "t1", ALINE, 10_000, "RWF")  # fee 50: mtn-rw +9,950
    scheme.create_escrow("mtn-rw", "e1", "bk-rw", "RWF", 40_000, "order 1", 3_600)
    w1 = scheme.close_window()
    # The escrow holds 40,000 outside every participant: the nets sum to minus that.
    assert sum(p.net_minor for p in w1.positions) == -40_000
    assert nets(w1.positions)[("mtn-rw", "RWF")][2] == 9_950 - 40_000
    scheme.settle_window(SCHEME, w1.id)
    scheme.release_escrow("mtn-rw", "e1", 25_000)
    scheme.refund_escrow("mtn-rw", "e1", 15_000)
    w2 = scheme.close_window()
    assert sum(p.net_minor for p in w2.positions) == 40_000
    assert {k: v[2] for k, v in nets(w2.positions).items()} == {
        ("mtn-rw", "RWF"): 15_000,
        ("bk-rw", "RWF"): 25_000,
    }
    # gross counts the escrow's moves too: the hold was sent in w1, the release and refund
    # received in w2 (so gross never falls below net)
    assert nets(w1.positions)[("mtn-rw", "RWF")][:2] == (40_000, 9_950)
    assert {k: v[:2] for k, v in nets(w2.positions).items()} == {
        ("mtn-rw", "RWF"): (0, 15_000),
        ("bk-rw", "RWF"): (0, 25_000),
    }
    assert w1.report()["RWF"]["gross_minor"] >= w1.report()["RWF"]["net_minor"]
    # w2 moved nothing but the escrow's 40,000 out to its payee and payer: its report says so
    # (it said gross 0, net 0 once)
    assert w2.report()["RWF"] == {
        "gross_minor": 40_000,
        "net_minor": 40_000,
        "carried_minor": 0,
        "liquidity_saved_minor": 0,
        "gross_to_net": "1.00",
    }
    scheme.settle_window(SCHEME, w2.id)
    assert moves(before, liquidity(scheme)) == {
        ("mtn-rw", "RWF", "settlement_balance"): 9_950 - 25_000,
        ("bk-rw", "RWF", "settlement_balance"): 25_000 - 10_000,
        (SCHEME, "RWF", "settlement_balance"): 50,
    }
    restored(scheme)
    hub = scheme.ledger.get_account(ledger_id("scheme-account", "RWF", "settlement_hub"))
    assert hub.debits_posted == hub.credits_posted
    assert_ledger_ok(scheme)


def test_gross_counts_every_escrow_move_once(scheme: PaymentScheme) -> None:
    """Found by a review: gross was the larger of what was sent and what was received, so a
    window with escrow holds and releases reported one side only: a hold of 500 released in
    it moved 500 into the escrow and 500 out (1,000, each move in full as a payment's legs
    are), and reported 500, netting saving nothing. Gross is the value moved, each move once:
    a payment's legs, an escrow's hold sent by its payer, a release or refund sent by the
    escrow account."""
    join_bk(scheme)
    join(scheme, "bk2", "RWF", deposit=10_000, cap=10_000)
    scheme.create_escrow("mtn-rw", "before", "bk2", "RWF", 700, "order 0", 600)
    scheme.settle_window(SCHEME, scheme.close_window().id)
    scheme.create_escrow("mtn-rw", "e1", "bk-rw", "RWF", 500, "order 1", 600)
    scheme.release_escrow("mtn-rw", "e1", 500)  # 500 in, 500 out
    scheme.create_escrow("bk2", "e2", "bk-rw", "RWF", 300, "order 2", 600)  # 300 in
    scheme.refund_escrow("mtn-rw", "before", 400)  # 400 out of w1's hold
    w = scheme.close_window()
    assert nets(w.positions) == {
        ("mtn-rw", "RWF"): (500, 400, -100),
        ("bk-rw", "RWF"): (0, 500, 500),
        ("bk2", "RWF"): (300, 0, -300),
    }
    assert w.report()["RWF"] == {
        "gross_minor": 500 + 500 + 300 + 400,
        "net_minor": 500,
        "carried_minor": 0,
        "liquidity_saved_minor": 1_200,
        "gross_to_net": "3.40",
    }
    assert_ledger_ok(scheme)


def test_gross_to_net_is_a_decimal_string_rounded_half_up_from_the_exact_ratio() -> None:
    """Found by a review: ``gross_to_net`` was a binary float rounded to two places, beside
    figures stated exactly in minor units: 214 over 80 is 2.675, which ``round`` read as
    2.67 (the float nearest 2.675 is below it) where a report rounding half up states 2.68.
    It is a decimal string now, from the exact ratio, as the API states its rates."""
    window = SettlementWindow(
        1,
        WindowState.CLOSED,
        0,
        1,
        None,
        (  # a pays b 147, b pays a 67: 214 moved, 80 net
            NetPosition("a", "RWF", 147, 67, -80),
            NetPosition("b", "RWF", 67, 147, 80),
            # c pays d 3, e pays c 1: 4 moved, 3 net
            NetPosition("c", "MYR", 3, 1, -2),
            NetPosition("d", "MYR", 0, 3, 3),
            NetPosition("e", "MYR", 1, 0, -1),
        ),
    )
    report = window.report()
    assert report["RWF"]["gross_to_net"] == "2.68"
    assert report["MYR"]["gross_to_net"] == "1.33"  # 4 over 3, not an unending decimal


class _Ticking(FakeClock):
    """A clock that moves a microsecond each time it is read, as a real one does between
    the statements of one request."""

    def now_ns(self) -> int:
        self._now_ns += 1_000
        return self._now_ns


def test_a_settlement_just_before_midnight_is_dated_the_day_its_entries_are_booked(
    engine: sa.Engine,
) -> None:
    """Found by a review: a window settled a moment before midnight UTC read settled that
    day (the settling server's clock when it claimed the window) while camt.053 booked its
    nets the next day (the ledger stamps each entry when it posts it, later). The window's
    settlement is dated as the ledger booked it: its last entry's stamp."""
    clock = _Ticking()
    s = build_scheme(engine, clock)
    join_bk(s)
    s.create_escrow("mtn-rw", "e1", "bk-rw", "RWF", 500, "order", 600)
    s.release_escrow("mtn-rw", "e1", 500)
    w = s.close_window()
    day_ns = 86_400 * NS_PER_S
    clock.set_ns((clock.now_ns() // day_ns + 1) * day_ns - 2_000)  # the day's last 2 us
    w = s.settle_window(SCHEME, w.id)
    assert w.settled_at_ns is not None
    settled = ns_to_datetime(w.settled_at_ns)
    for pid in ("mtn-rw", "bk-rw"):
        st = messages.account_statement(
            s, pid, "RWF", 0, clock.now_ns() + NS_PER_S, account="settlement"
        )
        ref = f"{ledger_id('settle', str(w.id), pid, 'RWF'):032x}"
        [entry] = [e for e in st.entries if e.servicer_ref == ref]  # its net, paid or received
        assert entry.booked_at.date() == settled.date(), (pid, entry.booked_at, settled)
        assert entry.booked_at <= settled
    assert s.get_window(w.id).settled_at_ns == w.settled_at_ns
    assert_ledger_ok(s)


def settled_of(window_positions: tuple[NetPosition, ...]) -> dict[tuple[str, str], int | None]:
    return {(p.participant_id, p.currency): p.settled_minor for p in window_positions}


def test_a_creditor_that_spends_what_it_is_owed_before_settlement_does_not_block_it(
    scheme: PaymentScheme,
) -> None:
    """bk2 is owed 500 at the close and spends it (with its whole cap) before the window
    settles: settling could not take the 500 back out of its position, failed whole, and no
    window could close after it. bk2 is now paid what its position gives back (nothing), the
    500 stays in its position, and the next window's net counts it."""
    join_bk(scheme)
    join(scheme, "bk2", "RWF", deposit=1_000, cap=1_000)
    scheme.create_escrow("mtn-rw", "in", "bk2", "RWF", 500, "order", 600)
    scheme.release_escrow("mtn-rw", "in", 500)
    w1 = scheme.close_window()
    assert nets(w1.positions)[("bk2", "RWF")] == (0, 500, 500)
    scheme.create_escrow("bk2", "out", "bk-rw", "RWF", 1_500, "order", 600)  # cap + the 500
    scheme.release_escrow("bk2", "out", 1_500)
    w1 = scheme.settle_window(SCHEME, w1.id)
    assert w1.state is WindowState.SETTLED
    assert settled_of(w1.positions) == {("mtn-rw", "RWF"): 500, ("bk2", "RWF"): 0}
    w2 = scheme.close_window()
    # 500 carried in, 1,500 out: bk2 owes 1,000 net, what it has
    assert nets(w2.positions)[("bk2", "RWF")] == (1_500, 0, -1_000)
    assert {p.participant_id: p.carried_minor for p in w2.positions}["bk2"] == 500
    # the report's net is the window's own: 1,500 moved bk2 -> bk-rw (not 1,000 + 500);
    # gross its two moves, bk2 -> escrow and escrow -> bk-rw
    assert w2.report()["RWF"] == {
        "gross_minor": 3_000,
        "net_minor": 1_500,
        "carried_minor": 500,
        "liquidity_saved_minor": 1_500,
        "gross_to_net": "2.00",
    }
    w2 = scheme.settle_window(SCHEME, w2.id)
    assert settled_of(w2.positions)[("bk2", "RWF")] == 1_000
    assert scheme.liquidity("bk2", "RWF")["settlement_balance_minor"] == 0  # 1,000 + 500 - 1,500
    assert scheme.close_window().state is WindowState.CLOSED
    assert_ledger_ok(scheme)


def test_a_remainder_carried_into_a_window_is_reported_apart_from_its_own_net(
    scheme: PaymentScheme,
) -> None:
    """Found by a review: bk2 (no cap) is owed 500 at w1's close and reserves it before the
    settlement, so it is paid nothing; the payment it reserved for is then rejected. w2
    moves nothing, yet reported net 500 against gross 0 (a liquidity saving of -500), and
    the same 500 as net in both windows. w2's report now carries it apart."""
    join_bk(scheme)
    join(scheme, "bk2", "RWF", deposit=1_000, cap=0)
    scheme.create_escrow("mtn-rw", "in", "bk2", "RWF", 500, "order", 600)
    scheme.release_escrow("mtn-rw", "in", 500)
    w1 = scheme.close_window()
    scheme.create_quote("bk2", "q-x", *ALINE, 500, "SEND", "RWF")
    t = scheme.prepare_transfer("bk2", "x", "q-x")
    w1 = scheme.settle_window(SCHEME, w1.id)
    assert settled_of(w1.positions)[("bk2", "RWF")] == 0
    scheme.reject_transfer("mtn-rw", t.id)
    w2 = scheme.close_window()
    assert [(p.participant_id, p.net_minor, p.carried_minor) for p in w2.positions] == [
        ("bk2", 500, 500)
    ]
    assert w2.report()["RWF"] == {
        "gross_minor": 0,
        "net_minor": 0,
        "carried_minor": 500,
        "liquidity_saved_minor": 0,
        "gross_to_net": None,  # nothing nets: no ratio
    }
    w2 = scheme.settle_window(SCHEME, w2.id)
    assert settled_of(w2.positions)[("bk2", "RWF")] == 500  # paid now
    w3 = scheme.close_window()
    assert all(p.carried_minor == 0 for p in w3.positions)  # nothing left to carry
    assert_ledger_ok(scheme)


def test_a_debtors_cap_comes_down_with_the_settlement_balance_that_covers_it(
    scheme: PaymentScheme,
) -> None:
    """bk2's cap of 1,000 is covered by its 1,000 deposit. Once it has paid 1,000 at a
    settlement, a cap left at 1,000 would let it owe 1,000 it does not have, and that
    window's settlement would fail and stop every later one. The cap comes down to what
    still covers it; a new deposit lets the operator raise it again."""
    join_bk(scheme)
    join(scheme, "bk2", "RWF", deposit=1_000, cap=1_000)
    scheme.create_escrow("bk2", "e1", "bk-rw", "RWF", 700, "order", 600)
    scheme.release_escrow("bk2", "e1", 700)
    w = scheme.settle_window(SCHEME, scheme.close_window().id)
    assert settled_of(w.positions)[("bk2", "RWF")] == 700
    assert scheme.liquidity("bk2", "RWF") == {
        "settlement_balance_minor": 300,
        "net_debit_cap_minor": 300,
        "position_available_minor": 300,
        "position_reserved_minor": 0,
        "net_position_minor": 0,
    }
    with unchanged(scheme), pytest.raises(NetDebitCapExceeded):
        scheme.create_escrow("bk2", "e2", "bk-rw", "RWF", 301, "order", 600)
    scheme.create_escrow("bk2", "e2", "bk-rw", "RWF", 300, "order", 600)
    scheme.release_escrow("bk2", "e2", 300)
    w = scheme.settle_window(SCHEME, scheme.close_window().id)  # pays its last 300
    assert settled_of(w.positions)[("bk2", "RWF")] == 300
    assert scheme.get_participant("bk2").check_currency("RWF").net_debit_cap_minor == 0
    scheme.deposit("bk2", "RWF", 2_000, "dep-bk2-2")
    scheme.set_net_debit_cap("bk2", "RWF", 2_000)
    scheme.create_escrow("bk2", "e3", "bk-rw", "RWF", 2_000, "order", 600)
    assert scheme.close_window().state is WindowState.CLOSED
    assert_ledger_ok(scheme)


def test_a_second_settle_that_read_the_window_before_the_first_committed_changes_nothing(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two settles of one window at once: the second had read the window CLOSED before the
    first committed, settled it again on the moved balances, lowered caps a second time and
    recorded creditors as paid nothing. The window is now claimed inside the transaction."""
    join_bk(scheme)
    join(scheme, "bk2", "RWF", deposit=2_000, cap=1_000)
    scheme.create_escrow("bk2", "e1", "bk-rw", "RWF", 1_000, "order", 600)
    scheme.release_escrow("bk2", "e1", 1_000)
    w = scheme.close_window()
    stale = scheme.get_window(w.id)  # CLOSED, as the second settle saw it
    done = scheme.settle_window(SCHEME, w.id)
    monkeypatch.setattr(scheme, "get_window", lambda _id: stale)
    with unchanged(scheme), pytest.raises(InvalidState, match="SETTLED, not CLOSED"):
        scheme.settle_window(SCHEME, w.id)
    monkeypatch.undo()
    assert scheme.get_window(w.id).positions == done.positions
    assert scheme.liquidity("bk2", "RWF")["net_debit_cap_minor"] == 1_000  # still covered
    assert_ledger_ok(scheme)


def test_a_settlement_its_debtor_cannot_pay_names_whom_to_fund_and_changes_nothing(
    scheme: PaymentScheme,
) -> None:
    """A hub's net debit cap need not be covered by its settlement balance: a hub that
    released more than it holds there owes a net its settlement account cannot pay. The
    refusal named no one ("a net debtor's settlement account"): the operator had to find whom
    to fund among every debtor of the window."""
    join_bk(scheme)
    scheme.register_participant("th", "Trade hub", "hub", "RW", ["RWF"])
    scheme.set_net_debit_cap("th", "RWF", 5_000)
    scheme.create_escrow("th", "h1", "bk-rw", "RWF", 5_000, "order 1", 600)
    scheme.release_escrow("th", "h1", 5_000)
    w = scheme.close_window()
    with unchanged(scheme), pytest.raises(LedgerRefused) as refused:
        scheme.settle_window(SCHEME, w.id)
    assert "th lacks 5000 RWF" in str(refused.value), refused.value
    assert "bk-rw" not in str(refused.value)  # a creditor: nothing to fund
    scheme.deposit("th", "RWF", 5_000, "dep-th")
    settled = scheme.settle_window(SCHEME, w.id)
    assert {p.participant_id: p.settled_minor for p in settled.positions}["th"] == 5_000
    assert_ledger_ok(scheme)


def test_a_window_settles_in_batches_the_ledger_takes(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a review: a settlement posted every position's transfers (a linked pair, and
    a cap lowered) in one ledger batch; past 8,190 (~4,000 positions) the ledger refused it,
    at every retry, and no later window could close. Here the ledger takes 3 a batch: the
    window settles in several, a participant's pair never split, as it did in one."""
    join_bk(scheme)
    before = liquidity(scheme)
    pay(scheme, "mtn-rw", "p1", BK_CUSTOMER, 200_000, "RWF")
    pay(scheme, "bk-rw", "p2", ALINE, 150_000, "RWF")
    pay(scheme, "mtn-rw", "p3", TILL, 100_100, "RWF")
    w = scheme.close_window(SCHEME)
    assert len([p for p in w.positions if p.net_minor]) > 2  # more than one batch's worth
    monkeypatch.setattr(limits, "BATCH_EVENTS_MAX", 3)
    monkeypatch.setattr(validate, "BATCH_EVENTS_MAX", 3)
    settled = scheme.settle_window(SCHEME, w.id)
    settled_whole(scheme, before, w, settled)
    assert_ledger_ok(scheme)


def test_a_creditors_reservation_past_its_timeout_does_not_cut_what_it_is_paid(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """Found by a review: bk2, owed 10,000 at the close, reserved 9,000 of it for a payment
    that then expired; settled before the deadline pass voided it, the reservation counted
    against what bk2's position could give back: it was paid 1,000, the 9,000 deferred a
    whole window. The settlement releases what has expired first."""
    join_bk(scheme)
    join(scheme, "bk2", "RWF", deposit=1_000, cap=0, alias=("MSISDN", "+250722999999"))
    pay(scheme, "mtn-rw", "t1", ("MSISDN", "+250722999999"), 10_050, "RWF")
    w = scheme.close_window()
    assert {p.participant_id: p.net_minor for p in w.positions}["bk2"] == 10_000
    scheme.create_quote("bk2", "q-x", *ALINE, 9_000, "SEND", "RWF")
    scheme.prepare_transfer("bk2", "x", "q-x", ttl_s=30)
    clock.advance(120)
    settled = scheme.settle_window(SCHEME, w.id)
    assert settled_of(settled.positions)["bk2", "RWF"] == 10_000
    assert scheme.liquidity("bk2", "RWF")["settlement_balance_minor"] == 11_000
    assert scheme.close_window().state is WindowState.CLOSED
    assert_ledger_ok(scheme)


def test_windows_are_listed_a_page_at_a_time_oldest_first(scheme: PaymentScheme) -> None:
    """Found by a review: every window ever was one answer (a year of hourly windows, 60 MB,
    each read in a snapshot of its own, ~20 s of a worker)."""
    for _ in range(4):
        scheme.close_window()
        scheme.settle_window(SCHEME, scheme.list_windows()[-2].id)
    every = scheme.list_windows()
    assert [w.id for w in every] == [1, 2, 3, 4, 5]
    assert [w.id for w in scheme.list_windows(limit=2)] == [1, 2]
    assert [w.id for w in scheme.list_windows(2, 2)] == [3, 4]
    assert scheme.list_windows(4, 2) == [every[-1]]
    assert scheme.list_windows(5) == []
    for bad in ({"limit": 0}, {"limit": 1001}, {"after": -1}, {"after": 2**63}):
        with pytest.raises(InvalidInput):
            scheme.list_windows(**bad)  # type: ignore[arg-type]
