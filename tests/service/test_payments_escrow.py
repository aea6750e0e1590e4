"""Escrow: funds held for a purpose, released, partly released, refunded or split by the
controller's decision, or by the deadline on its own; every decision is an event with its
actor. Rejections change nothing."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from entrepot.kernel.clock import NS_PER_S, FakeClock
from entrepot.payments import SCHEME, DeadlineAction, EscrowState, PaymentScheme
from entrepot.payments.errors import (
    ControllerNotAllowed,
    CurrencyNotSupported,
    DuplicateWithDifferentBody,
    InsufficientEscrow,
    InvalidPaymentInput,
    InvalidState,
    NetDebitCapExceeded,
    NotYours,
    ParticipantSuspended,
)
from entrepot.payments.services import ledger_id
from entrepot.storage.uow import UnitOfWork
from tests.conftest import build_scheme
from tests.service.test_payments import (
    assert_ledger_ok,
    join_bk,
    liquidity,
    moves,
    unchanged,
)


@pytest.fixture
def hub(scheme: PaymentScheme) -> PaymentScheme:
    """The fixture's scheme with bank ``bk-rw`` (RWF) and a trade hub ``tradehub``."""
    join_bk(scheme)
    scheme.register_participant("tradehub", "Kigali Trade Hub", "hub", "RW", [])
    return scheme


def held_in_escrow(scheme: PaymentScheme, currency: str = "RWF") -> int:
    a = scheme.ledger.get_account(ledger_id("scheme-account", currency, "escrow"))
    return a.credits_posted - a.debits_posted


def events(scheme: PaymentScheme, caller: str, escrow_id: str) -> list[tuple[str, int, str]]:
    return [
        (str(e["action"]), int(str(e["amount_minor"])), str(e["actor"]))
        for e in scheme.escrow_events(caller, escrow_id)
    ]


def test_hold_partial_release_refund_and_final_release(
    hub: PaymentScheme, clock: FakeClock
) -> None:
    s = hub
    before = liquidity(s)
    t0 = clock.now_ns()
    e = s.create_escrow(
        "mtn-rw", "esc-1", "bk-rw", "RWF", 100_000, "order 42", 3_600, controller="tradehub"
    )
    assert (e.state, e.controller, e.held_minor) == (EscrowState.HELD, "tradehub", 100_000)
    assert (e.deadline_ns, e.on_deadline) == (t0 + 3_600 * NS_PER_S, DeadlineAction.REFUND)
    assert moves(before, liquidity(s)) == {("mtn-rw", "RWF", "net_position"): -100_000}
    assert held_in_escrow(s) == 100_000

    clock.advance(10)
    e = s.release_escrow("tradehub", "esc-1", 30_000)
    assert (e.released_minor, e.refunded_minor, e.held_minor) == (30_000, 0, 70_000)
    clock.advance(10)
    e = s.refund_escrow("tradehub", "esc-1", 20_000)
    assert (e.released_minor, e.refunded_minor, e.held_minor, e.state) == (
        30_000,
        20_000,
        50_000,
        EscrowState.HELD,
    )
    assert s.get_escrow("bk-rw", "esc-1") == e
    assert moves(before, liquidity(s)) == {
        ("mtn-rw", "RWF", "net_position"): -80_000,
        ("bk-rw", "RWF", "net_position"): 30_000,
    }
    assert held_in_escrow(s) == 50_000
    # Not one RWF more than is held can be released or refunded.
    with unchanged(s), pytest.raises(InsufficientEscrow):
        s.release_escrow("tradehub", "esc-1", 50_001)
    with unchanged(s), pytest.raises(InsufficientEscrow):
        s.refund_escrow("tradehub", "esc-1", 50_001)
    for amount in (0, -1):
        with unchanged(s), pytest.raises(InvalidPaymentInput):
            s.release_escrow("tradehub", "esc-1", amount)

    clock.advance(10)
    e = s.release_escrow("tradehub", "esc-1", 50_000)
    assert (e.released_minor, e.held_minor, e.state) == (80_000, 0, EscrowState.CLOSED)
    assert moves(before, liquidity(s)) == {
        ("mtn-rw", "RWF", "net_position"): -80_000,
        ("bk-rw", "RWF", "net_position"): 80_000,
    }
    assert held_in_escrow(s) == 0
    log = s.escrow_events("mtn-rw", "esc-1")
    assert events(s, "tradehub", "esc-1") == [
        ("hold", 100_000, "mtn-rw"),
        ("release", 30_000, "tradehub"),
        ("refund", 20_000, "tradehub"),
        ("release", 50_000, "tradehub"),
    ]
    assert [x["seq"] for x in log] == [0, 1, 2, 3]
    assert [x["at_ns"] for x in log] == [t0 + k * 10 * NS_PER_S for k in range(4)]
    with unchanged(s), pytest.raises(InvalidState):
        s.release_escrow("tradehub", "esc-1", 1)
    with unchanged(s), pytest.raises(InvalidState):
        s.refund_escrow("tradehub", "esc-1", 1)
    assert_ledger_ok(s)


def test_split_is_exact(hub: PaymentScheme) -> None:
    s = hub
    before = liquidity(s)
    s.create_escrow("mtn-rw", "esc-1", "bk-rw", "RWF", 100_001, "order 7", 600)
    e = s.split_escrow("mtn-rw", "esc-1", 66_667, 33_334)
    assert (e.released_minor, e.refunded_minor, e.held_minor) == (66_667, 33_334, 0)
    assert e.state is EscrowState.CLOSED
    assert moves(before, liquidity(s)) == {
        ("mtn-rw", "RWF", "net_position"): -66_667,
        ("bk-rw", "RWF", "net_position"): 66_667,
    }
    assert events(s, "bk-rw", "esc-1") == [
        ("hold", 100_001, "mtn-rw"),
        ("release", 66_667, "mtn-rw"),
        ("refund", 33_334, "mtn-rw"),
    ]
    # A split of part of what is held leaves the rest held.
    s.create_escrow("mtn-rw", "esc-2", "bk-rw", "RWF", 10_000, "order 8", 600)
    e = s.split_escrow("mtn-rw", "esc-2", 2_500, 1_500)
    assert (e.held_minor, e.state) == (6_000, EscrowState.HELD)
    assert held_in_escrow(s) == 6_000
    assert_ledger_ok(s)


class _Ticking(FakeClock):
    """A clock that moves 1 ns each time it is read, as a real one does between statements."""

    def now_ns(self) -> int:
        self._now_ns += 1
        return self._now_ns


@pytest.mark.parametrize("before_deadline_ns", range(1, 8))
def test_a_split_is_decided_at_one_instant_whatever_the_clock_does_meanwhile(
    engine: sa.Engine, before_deadline_ns: int
) -> None:
    """Found by a review: a split read the clock again for its second part; a deadline
    passing between the two postings kept the first part's release, refunded the rest by
    the deadline, and refused the split ("passed its deadline") with half of it done. One
    decision: decided before the deadline, both parts stand; after, the deadline acts."""
    clock = _Ticking()
    s = build_scheme(engine, clock)
    join_bk(s)
    e = s.create_escrow("mtn-rw", "e", "bk-rw", "RWF", 10_000, "order", 60, "refund")
    clock.set_ns(e.deadline_ns - before_deadline_ns)
    try:
        e = s.split_escrow("mtn-rw", "e", 3_000, 2_000)
    except InvalidState:  # the deadline came first: it refunded everything, alone
        e = s.get_escrow("mtn-rw", "e")
        assert (e.released_minor, e.refunded_minor) == (0, 10_000)
        assert [a for a, _, who in events(s, "mtn-rw", "e")] == ["hold", "refund"]
    else:
        assert (e.released_minor, e.refunded_minor, e.held_minor) == (3_000, 2_000, 5_000)
        assert events(s, "mtn-rw", "e")[1:] == [
            ("release", 3_000, "mtn-rw"),
            ("refund", 2_000, "mtn-rw"),
        ]
    assert_ledger_ok(s)


def test_a_split_beyond_what_is_held_changes_nothing(hub: PaymentScheme) -> None:
    s = hub
    s.create_escrow("mtn-rw", "esc-1", "bk-rw", "RWF", 100_000, "order 9", 600)
    # 80,000 + 30,000 > 100,000: one decision, refused as a whole.
    with unchanged(s), pytest.raises(InsufficientEscrow):
        s.split_escrow("mtn-rw", "esc-1", 80_000, 30_000)
    # parts that are no amount: told which, not a TypeError from adding them up
    for parts, field in (
        ((1_000, "10"), "refund_minor"),
        ((-1, 5), "release_minor"),
        ((1_000, False), "refund_minor"),  # no part is an int 0, not a bool or a float
        ((0.0, 1_000), "release_minor"),
    ):
        with unchanged(s), pytest.raises(InvalidPaymentInput) as refused:
            s.split_escrow("mtn-rw", "esc-1", *parts)
        assert refused.value.field == field
    assert_ledger_ok(s)


def test_only_the_controller_decides_and_only_parties_see(hub: PaymentScheme) -> None:
    s = hub
    s.create_escrow(
        "mtn-rw", "esc-1", "bk-rw", "RWF", 50_000, "order 1", 600, controller="tradehub"
    )
    s.create_escrow("mtn-rw", "esc-2", "bk-rw", "RWF", 50_000, "order 2", 600)  # payer controls
    # Neither the payer, nor the payee, nor the scheme decides an escrow the hub controls.
    for caller in ("mtn-rw", "bk-rw", "scheme"):
        with unchanged(s), pytest.raises(NotYours):
            s.release_escrow(caller, "esc-1", 1)
    with unchanged(s), pytest.raises(NotYours):
        s.refund_escrow("mtn-rw", "esc-1", 1)
    with unchanged(s), pytest.raises(NotYours):
        s.split_escrow("bk-rw", "esc-1", 1, 1)
    for caller in ("bk-rw", "tradehub"):
        with unchanged(s), pytest.raises(NotYours):
            s.release_escrow(caller, "esc-2", 1)
    for caller in ("icbc", "fxco"):
        with unchanged(s), pytest.raises(NotYours):
            s.get_escrow(caller, "esc-1")
        with unchanged(s), pytest.raises(NotYours):
            s.escrow_events(caller, "esc-1")
    # the scheme operator holds every escrow in its account: it reads any, decides none
    for caller in ("mtn-rw", "bk-rw", "tradehub", "scheme"):
        assert s.get_escrow(caller, "esc-1").held_minor == 50_000
    assert [e["actor"] for e in s.escrow_events("scheme", "esc-1")] == ["mtn-rw"]
    assert s.release_escrow("tradehub", "esc-1", 50_000).state is EscrowState.CLOSED
    assert s.refund_escrow("mtn-rw", "esc-2", 50_000).state is EscrowState.CLOSED
    assert_ledger_ok(s)


def test_the_deadline_acts_by_itself(hub: PaymentScheme, clock: FakeClock) -> None:
    s = hub
    before = liquidity(s)
    s.create_escrow("mtn-rw", "esc-r", "bk-rw", "RWF", 30_000, "goods", 60, "release", "tradehub")
    s.create_escrow("mtn-rw", "esc-f", "bk-rw", "RWF", 50_000, "goods", 120, "refund", "tradehub")
    s.release_escrow("tradehub", "esc-f", 10_000)

    clock.advance(59)
    assert s.process_deadlines()["escrows_resolved"] == 0
    clock.advance(2)
    assert s.process_deadlines() == {
        "quotes_expired": 0,
        "transfers_aborted": 0,
        "escrows_resolved": 1,
        "escrows_failed": 0,
    }
    e = s.get_escrow("tradehub", "esc-r")
    assert (e.state, e.released_minor, e.refunded_minor) == (EscrowState.CLOSED, 30_000, 0)
    assert s.get_escrow("tradehub", "esc-f").state is EscrowState.HELD
    assert events(s, "bk-rw", "esc-r") == [
        ("hold", 30_000, "mtn-rw"),
        ("release", 30_000, "deadline"),
    ]

    clock.advance(60)
    assert s.process_deadlines()["escrows_resolved"] == 1
    e = s.get_escrow("tradehub", "esc-f")
    assert (e.state, e.released_minor, e.refunded_minor) == (EscrowState.CLOSED, 10_000, 40_000)
    assert events(s, "mtn-rw", "esc-f") == [
        ("hold", 50_000, "mtn-rw"),
        ("release", 10_000, "tradehub"),
        ("refund", 40_000, "deadline"),
    ]
    assert moves(before, liquidity(s)) == {
        ("mtn-rw", "RWF", "net_position"): -40_000,
        ("bk-rw", "RWF", "net_position"): 40_000,
    }
    assert held_in_escrow(s) == 0
    assert s.process_deadlines()["escrows_resolved"] == 0  # nothing left to do
    assert_ledger_ok(s)


def test_the_scheme_makes_no_escrow_and_none_is_to_its_own_payer(hub: PaymentScheme) -> None:
    """Found by a review: the scheme operator's participant (which sends no payments: its
    quote is refused) paid fee income out to a bank through an escrow it made and released;
    and an escrow to its own payer, released, was counted in the settlement report's gross
    (and as liquidity netting saved) though no money changed hands. Both are refused, and
    change nothing."""
    s = hub
    with unchanged(s), pytest.raises(NotYours, match="sends no payments"):
        s.create_escrow(SCHEME, "esc-fees", "bk-rw", "RWF", 5_000, "from fees", 600)
    with unchanged(s), pytest.raises(InvalidPaymentInput, match="itself") as caught:
        s.create_escrow("mtn-rw", "esc-self", "mtn-rw", "RWF", 5_000, "order 1", 600)
    assert caught.value.field == "payeeFsp"
    # ... whoever would decide it
    with unchanged(s), pytest.raises(InvalidPaymentInput, match="itself"):
        s.create_escrow(
            "mtn-rw", "esc-self", "mtn-rw", "RWF", 5_000, "o", 600, controller="tradehub"
        )
    assert_ledger_ok(s)


def test_creating_an_escrow_is_checked(hub: PaymentScheme) -> None:
    s = hub
    e = s.create_escrow("mtn-rw", "esc-1", "bk-rw", "RWF", 10_000, "order 1", 600)
    with unchanged(s):  # the same id and request again (a resend): the escrow, held once
        assert s.create_escrow("mtn-rw", "esc-1", "bk-rw", "RWF", 10_000, "order 1", 600) == e
    for caller, payee, amount, purpose, deadline, options in (  # the same id, another request
        ("bk-rw", "mtn-rw", 5_000, "order 2", 600, {}),
        ("bk-rw", "bk-rw", 10_000, "order 1", 600, {}),
        ("mtn-rw", "bk-rw", 10_001, "order 1", 600, {}),
        ("mtn-rw", "bk-rw", 10_000, "order 2", 600, {}),
        ("mtn-rw", "bk-rw", 10_000, "order 1", 601, {}),
        ("mtn-rw", "bk-rw", 10_000, "order 1", 600, {"on_deadline": "release"}),
        ("mtn-rw", "bk-rw", 10_000, "order 1", 600, {"controller": "tradehub"}),
    ):
        with unchanged(s), pytest.raises(DuplicateWithDifferentBody):
            s.create_escrow(caller, "esc-1", payee, "RWF", amount, purpose, deadline, **options)  # type: ignore[arg-type]
    # mtn-rw may go 10,000,000 RWF net debit; 10,000 of it is already held.
    with unchanged(s), pytest.raises(NetDebitCapExceeded):
        s.create_escrow("mtn-rw", "esc-2", "bk-rw", "RWF", 9_990_001, "too much", 600)
    s.create_escrow("mtn-rw", "esc-3", "bk-rw", "RWF", 9_990_000, "all of it", 600)
    assert liquidity(s)[("mtn-rw", "RWF")]["position_available_minor"] == 0
    with unchanged(s), pytest.raises(CurrencyNotSupported):
        s.create_escrow("mtn-rw", "esc-4", "maybank", "RWF", 1_000, "no RWF", 600)
    with unchanged(s), pytest.raises(ControllerNotAllowed):  # as one that may not control
        s.create_escrow("bk-rw", "esc-4", "mtn-rw", "RWF", 1_000, "x", 600, controller="nobody")
    for bad in (
        lambda: s.create_escrow("bk-rw", "esc-4", "mtn-rw", "RWF", 1_000, "x", 0),
        lambda: s.create_escrow("bk-rw", "esc-4", "mtn-rw", "RWF", 1_000, "", 60),
        lambda: s.create_escrow("bk-rw", "esc-4", "mtn-rw", "RWF", 1_000, "x", 60, "keep"),
        lambda: s.create_escrow("bk-rw", "esc 4", "mtn-rw", "RWF", 1_000, "x", 60),
    ):
        with unchanged(s), pytest.raises(InvalidPaymentInput):
            bad()
    # A suspended participant neither holds funds in escrow nor has funds held for it.
    s.set_active("mtn-rw", False)
    with unchanged(s), pytest.raises(ParticipantSuspended):
        s.create_escrow("mtn-rw", "esc-4", "bk-rw", "RWF", 1_000, "x", 60)
    with unchanged(s), pytest.raises(ParticipantSuspended):
        s.create_escrow("bk-rw", "esc-4", "mtn-rw", "RWF", 1_000, "x", 60)
    assert_ledger_ok(s)


def test_no_release_to_a_suspended_payee(hub: PaymentScheme) -> None:
    s = hub
    s.create_escrow("mtn-rw", "esc-1", "bk-rw", "RWF", 10_000, "order 1", 600, "release")
    s.set_active("bk-rw", False)
    with unchanged(s), pytest.raises(ParticipantSuspended):
        s.release_escrow("mtn-rw", "esc-1", 10_000)
    # Handing the funds back to the (active) payer stays possible.
    assert s.refund_escrow("mtn-rw", "esc-1", 10_000).state is EscrowState.CLOSED
    assert_ledger_ok(s)


def test_an_escrows_controller_is_its_payer_its_payee_or_an_active_escrow_agent(
    hub: PaymentScheme,
) -> None:
    """The controller decides where the held funds go. A payer could name any participant
    (a bank, a wallet, an FX provider) as the controller of its escrow, and that participant
    had agreed to nothing: it now decides others' money, and answers for it. The controller
    is the payer (the default), the payee, or an escrow agent: a participant of kind ``hub``
    (a trade hub's operator, the scheme operator), active. Any other is refused
    ``controller_not_allowed`` (403), as one that does not exist is: the answer tells a payer
    nothing of participants it has no part with. Nothing is held or written."""
    s = hub
    s.register_participant("cimb", "CIMB", "bank", "MY", ["MYR"])
    s.register_participant("gone-hub", "Closed hub", "hub", "RW", [])
    s.set_active("gone-hub", False, "closed")
    refused = []
    for name in ("maybank", "fxco", "cimb", "icbc", "nobody"):  # unrelated, or no one
        with unchanged(s), pytest.raises(ControllerNotAllowed) as e:
            s.create_escrow("mtn-rw", "esc-c", "bk-rw", "RWF", 1_000, "x", 600, controller=name)
        assert (e.value.code, e.value.http_status, e.value.field) == (
            "controller_not_allowed",
            403,
            "controller",
        )
        refused.append(e.value.detail.replace(name, "<name>"))
    assert len(set(refused)) == 1, refused  # one answer, whoever was named
    # An escrow agent must be active to take control (it could decide nothing).
    with unchanged(s), pytest.raises(ParticipantSuspended):
        s.create_escrow("mtn-rw", "esc-c", "bk-rw", "RWF", 1_000, "x", 600, controller="gone-hub")
    # The payer, the payee, a hub and the scheme operator may control it.
    for n, name in enumerate((None, "mtn-rw", "bk-rw", "tradehub", "scheme")):
        e = s.create_escrow("mtn-rw", f"esc-{n}", "bk-rw", "RWF", 1_000, "x", 600, controller=name)
        assert e.controller == (name or "mtn-rw")
    assert_ledger_ok(s)


def test_a_suspended_controller_decides_nothing_and_the_deadline_still_acts(
    hub: PaymentScheme, clock: FakeClock
) -> None:
    """A suspended participant neither sends nor receives; its decisions on escrows it
    controls (a trade hub's) moved money all the same. A release, or a split that releases,
    is refused now and changes nothing; resumed, it decides again, and its deadline acts
    while it is suspended."""
    s = hub
    s.create_escrow("mtn-rw", "esc-h", "bk-rw", "RWF", 10_000, "order", 600, controller="tradehub")
    s.create_escrow("mtn-rw", "esc-d", "bk-rw", "RWF", 5_000, "order", 60, controller="tradehub")
    s.set_active("tradehub", False)
    with unchanged(s):
        for decide in (
            lambda: s.release_escrow("tradehub", "esc-h", 1_000),
            lambda: s.split_escrow("tradehub", "esc-h", 1_000, 1_000),
        ):
            with pytest.raises(ParticipantSuspended):
                decide()
    clock.advance(61)
    assert s.process_deadlines()["escrows_resolved"] == 1  # the deadline acts alone
    assert s.get_escrow("tradehub", "esc-d").state is EscrowState.CLOSED
    s.set_active("tradehub", True)
    assert s.release_escrow("tradehub", "esc-h", 1_000).released_minor == 1_000
    assert_ledger_ok(s)


def test_a_suspended_controller_still_refunds_the_payer(hub: PaymentScheme) -> None:
    """A refund gives the payer back its own money, to where it came from, never to the
    controller: a suspended trade hub's buyers, their orders cancelled, were refused their
    refunds until the hub was resumed or the escrow's deadline (up to a year) acted. To a
    payer itself suspended, nothing moves."""
    s = hub
    s.create_escrow("mtn-rw", "esc-r", "bk-rw", "RWF", 10_000, "order", 600, controller="tradehub")
    s.set_active("tradehub", False)
    before = liquidity(s)
    assert s.refund_escrow("tradehub", "esc-r", 4_000).refunded_minor == 4_000
    assert s.split_escrow("tradehub", "esc-r", 0, 1_000).refunded_minor == 5_000
    assert moves(before, liquidity(s)) == {("mtn-rw", "RWF", "net_position"): 5_000}
    assert held_in_escrow(s) == 5_000
    s.set_active("mtn-rw", False)
    with unchanged(s), pytest.raises(ParticipantSuspended, match="mtn-rw"):
        s.refund_escrow("tradehub", "esc-r", 1_000)  # the payer receives nothing
    assert_ledger_ok(s)


def test_a_decision_in_another_currency_is_refused_and_changes_nothing(hub: PaymentScheme) -> None:
    """An amount stated in another currency than the escrow's (2.00 EUR against RWF, whose
    minor units differ) is refused, not read as minor units of the escrow's currency."""
    s = hub
    s.create_escrow("mtn-rw", "esc-c", "bk-rw", "RWF", 1_000, "goods", 600, controller="tradehub")
    with unchanged(s):
        for move in (s.release_escrow, s.refund_escrow):
            with pytest.raises(InvalidPaymentInput, match="holds RWF, not EUR"):
                move("tradehub", "esc-c", 200, currency="EUR")
    assert s.release_escrow("tradehub", "esc-c", 200, currency="RWF").released_minor == 200


def test_a_stranger_learns_nothing_from_a_split(hub: PaymentScheme) -> None:
    s = hub
    s.create_escrow("mtn-rw", "esc-s", "bk-rw", "RWF", 12_345, "goods", 600, controller="tradehub")
    with unchanged(s), pytest.raises(NotYours) as refused:
        s.split_escrow("maybank", "esc-s", 10**9, 1)
    assert "12345" not in str(refused.value)


def test_a_decision_after_the_deadline_is_refused_and_the_deadline_acts_first(
    hub: PaymentScheme, clock: FakeClock
) -> None:
    """Past its deadline an escrow is no longer the controller's to decide, even before
    ``process_deadlines`` runs: the deadline's action is taken (and kept) and the late
    decision refused."""
    s = hub
    before = liquidity(s)
    s.create_escrow("mtn-rw", "esc-l", "bk-rw", "RWF", 30_000, "goods", 60, "refund", "tradehub")
    clock.advance(60)
    with pytest.raises(InvalidState, match="passed its deadline: what it held was refunded"):
        s.release_escrow("tradehub", "esc-l", 30_000)
    e = s.get_escrow("tradehub", "esc-l")
    assert (e.state, e.released_minor, e.refunded_minor) == (EscrowState.CLOSED, 0, 30_000)
    assert events(s, "mtn-rw", "esc-l") == [
        ("hold", 30_000, "mtn-rw"),
        ("refund", 30_000, "deadline"),
    ]
    assert moves(before, liquidity(s)) == {}
    with pytest.raises(InvalidState, match="closed"):
        s.split_escrow("tradehub", "esc-l", 1, 1)
    assert s.process_deadlines()["escrows_resolved"] == 0
    assert_ledger_ok(s)


def test_an_escrow_past_its_deadline_reads_as_the_deadline_decided_it(
    hub: PaymentScheme, clock: FakeClock
) -> None:
    """Found by a review: between an escrow's deadline and the pass, its payer and payee read
    it HELD with what it held, releasable, though the deadline had decided it: a release was
    then refused ("passed its deadline"). It reads now as the deadline decided it (as a
    transfer past its expiry reads ABORTED), without writing; a late decision is refused as
    the read says, and what the deadline then records is what was read."""
    s = hub
    s.create_escrow("mtn-rw", "esc-p", "bk-rw", "RWF", 30_000, "goods", 60, "refund", "tradehub")
    s.create_escrow("mtn-rw", "esc-q", "bk-rw", "RWF", 20_000, "goods", 60, "release", "tradehub")
    s.release_escrow("tradehub", "esc-p", 10_000)
    clock.advance(59)
    assert s.get_escrow("mtn-rw", "esc-p").state is EscrowState.HELD  # not yet
    clock.advance(1)
    with unchanged(s):  # a read writes nothing
        for who in ("mtn-rw", "bk-rw", "tradehub", SCHEME):
            e = s.get_escrow(who, "esc-p")
            assert (e.state, e.released_minor, e.refunded_minor, e.held_minor) == (
                EscrowState.CLOSED,
                10_000,
                20_000,
                0,
            )
            e = s.get_escrow(who, "esc-q")
            assert (e.state, e.released_minor, e.refunded_minor, e.held_minor) == (
                EscrowState.CLOSED,
                20_000,
                0,
                0,
            )
        read, _ = s.escrow_history("bk-rw", "esc-p")
        assert read == s.get_escrow("bk-rw", "esc-p")
    # a late decision is refused as closed by the deadline, which records what was read
    with pytest.raises(InvalidState, match="passed its deadline: what it held was refunded"):
        s.release_escrow("tradehub", "esc-p", 1_000)
    assert s.get_escrow("bk-rw", "esc-p") == read
    assert s.process_deadlines()["escrows_resolved"] == 1  # esc-q, as read
    assert s.get_escrow("bk-rw", "esc-q").released_minor == 20_000
    assert held_in_escrow(s) == 0
    assert_ledger_ok(s)


def test_an_escrow_whose_deadline_cannot_act_reads_held(
    hub: PaymentScheme, clock: FakeClock
) -> None:
    """Its deadline would release to a suspended payee: the deadline decides nothing, so the
    escrow reads HELD, its controller's to decide, as the pass and a decision treat it."""
    s = hub
    s.create_escrow("mtn-rw", "esc-z", "bk-rw", "RWF", 5_000, "goods", 60, "release", "tradehub")
    s.set_active("bk-rw", False)
    clock.advance(61)
    e = s.get_escrow("mtn-rw", "esc-z")
    assert (e.state, e.held_minor) == (EscrowState.HELD, 5_000)
    assert s.refund_escrow("tradehub", "esc-z", 5_000).state is EscrowState.CLOSED


def test_an_escrow_whose_deadline_cannot_act_stays_the_controllers_to_decide(
    hub: PaymentScheme, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Its deadline would release to a suspended payee: process_deadlines leaves it held for
    a person, and that person (the controller) can still refund it after the deadline. The
    log says which escrow and why (it was only counted)."""
    s = hub
    s.create_escrow("mtn-rw", "esc-x", "bk-rw", "RWF", 5_000, "goods", 60, "release", "tradehub")
    s.set_active("bk-rw", False)
    clock.advance(61)
    with caplog.at_level(logging.INFO, logger="entrepot.payments.services"):
        assert s.process_deadlines()["escrows_failed"] == 1
    assert "escrow esc-x: its deadline cannot act now" in caplog.text
    assert "bk-rw" in caplog.text and "suspended" in caplog.text
    e = s.refund_escrow("tradehub", "esc-x", 5_000)
    assert (e.state, e.refunded_minor) == (EscrowState.CLOSED, 5_000)
    assert_ledger_ok(s)


def test_an_escrow_whose_deadline_fails_unexpectedly_holds_back_no_other(
    hub: PaymentScheme, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One escrow's deadline failing for another reason than a refusal (the database, say)
    ended the pass: the escrows due after it waited for the next one (found by a review)."""
    s = hub
    for n in range(3):
        s.create_escrow("mtn-rw", f"esc-{n}", "bk-rw", "RWF", 1_000, "goods", 60, "refund")
    clock.advance(61)
    acts = PaymentScheme._deadline_acts

    def flaky(self: PaymentScheme, escrow_id: str) -> int:
        if escrow_id == "esc-0":
            raise RuntimeError("disk I/O error")
        return acts(self, escrow_id)

    monkeypatch.setattr(PaymentScheme, "_deadline_acts", flaky)
    done = s.process_deadlines()
    assert (done["escrows_resolved"], done["escrows_failed"]) == (2, 1)
    monkeypatch.undo()
    assert s.process_deadlines()["escrows_resolved"] == 1  # retried at the next pass
    assert all(s.get_escrow("mtn-rw", f"esc-{n}").refunded_minor == 1_000 for n in range(3))
    assert_ledger_ok(s)


def test_a_suspended_controller_decides_nothing_past_a_deadline_that_cannot_act(
    hub: PaymentScheme, clock: FakeClock
) -> None:
    """Past the deadline of an escrow whose default refunds its payer, the payer (its
    controller) suspended, the deadline cannot act; the suspended controller's release then
    went through, past the check that a controller is active (the stateful property's model,
    test_payments_stateful.py, expects this refusal too). Refused now, and nothing moves."""
    s = hub
    s.create_escrow("mtn-rw", "esc-y", "bk-rw", "RWF", 1_000, "goods", 5, "refund")
    clock.advance(6)
    s.set_active("mtn-rw", False)
    with unchanged(s):
        for decide in (
            lambda: s.release_escrow("mtn-rw", "esc-y", 400),
            lambda: s.split_escrow("mtn-rw", "esc-y", 400, 0),
        ):
            with pytest.raises(ParticipantSuspended, match="mtn-rw"):
                decide()
    s.set_active("mtn-rw", True)
    with pytest.raises(InvalidState, match="what it held was refunded"):  # the deadline acts
        s.release_escrow("mtn-rw", "esc-y", 400)
    assert s.get_escrow("mtn-rw", "esc-y").refunded_minor == 1_000
    assert_ledger_ok(s)


def test_a_late_decision_inside_another_transaction_does_not_claim_the_deadline_acted(
    hub: PaymentScheme, clock: FakeClock
) -> None:
    s = hub
    s.create_escrow("mtn-rw", "esc-j", "bk-rw", "RWF", 500, "goods", 60, "refund", "tradehub")
    clock.advance(61)
    with UnitOfWork(s.engine) as uow:
        s.ledger.store.take_write_lock(uow.connection)
        with s.joined(uow), pytest.raises(InvalidState, match="is to be refunded"):
            s.release_escrow("tradehub", "esc-j", 500)
    assert held_in_escrow(s) == 500  # nothing committed
    assert s.process_deadlines()["escrows_resolved"] == 1
    assert s.get_escrow("tradehub", "esc-j").refunded_minor == 500
