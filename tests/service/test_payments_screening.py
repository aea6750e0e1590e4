"""Sanctions screening plugged into the scheme: a payee that matches the list is held for a
person's review, never blocked on a name alone; a clear payee is reserved as usual."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from entrepot.config import shared_data_dir
from entrepot.kernel.clock import FakeClock
from entrepot.kernel.errors import DomainError
from entrepot.payments import SCHEME, PaymentScheme, TransferState
from entrepot.payments import store as st
from entrepot.payments.errors import (
    FxLiquidityExhausted,
    InvalidPaymentInput,
    NetDebitCapExceeded,
    TransferBlocked,
)
from entrepot.payments.model import Party, PaymentTransfer
from entrepot.payments.screening import SanctionsScreening
from entrepot.payments.services import VERDICT_GRACE_S, ScreeningDecision
from tests.counters import write_transactions

LISTS = shared_data_dir() / "sanctions"


@pytest.fixture(scope="module")
def screener():  # type: ignore[no-untyped-def]
    if not (LISTS / "ofac_sdn.csv").is_file():
        pytest.skip(f"the OFAC snapshot is not at {LISTS}")
    from entrepot.risk.sanctions import Screener

    return Screener.from_directory(LISTS)


def test_a_listed_payee_is_held_for_review_and_a_clear_one_is_not(
    scheme: PaymentScheme, screener: object
) -> None:
    scheme.screening = SanctionsScreening(screener)  # type: ignore[arg-type]
    scheme.register_participant("cimb", "CIMB", "bank", "MY", ["MYR"])
    scheme.register_alias("cimb", "MERCHANT", "KL-77", "BANCO NACIONAL DE CUBA", "MYR")
    held_quote = scheme.create_quote("mtn-rw", "q-h", "MERCHANT", "KL-77", 500, "RECEIVE", "RWF")
    held = scheme.prepare_transfer("mtn-rw", "t-h", held_quote.id)
    assert held.state is TransferState.HOLD
    assert held.reason is not None and "BANCO NACIONAL DE CUBA" in held.reason
    clear_quote = scheme.create_quote(
        "mtn-rw", "q-c", "MERCHANT", "KL-TILL-42", 500, "RECEIVE", "RWF"
    )
    clear = scheme.prepare_transfer("mtn-rw", "t-c", clear_quote.id)
    assert clear.state is TransferState.RESERVED
    # The payee cannot take a held transfer; a reviewer decides.
    with pytest.raises(Exception, match="on hold"):
        scheme.commit_transfer("cimb", "t-h")
    rejected = scheme.review_hold(SCHEME, "t-h", False, "confirmed match")
    assert rejected.state is TransferState.ABORTED
    assert scheme.liquidity("mtn-rw", "RWF")["position_reserved_minor"] == (
        clear.source_amount_minor
    )


def test_the_payees_bank_country_is_not_taken_for_the_payees_nationality(
    scheme: PaymentScheme, screener: object
) -> None:
    """A payee's alias carries its participant's country: where the bank is, not the payee's
    nationality. Screened as if it were, a listed Iranian's name at a bank in Iran read
    "nationality Iran matches" and was a ``match``, a name at a bank abroad "nationality
    differs". The payee is screened by its name alone: a close name is held for a person as
    a ``review``, whatever the bank's country."""
    scheme.screening = SanctionsScreening(screener)  # type: ignore[arg-type]
    reasons = []
    for n, (bank, country, msisdn) in enumerate(
        (("bank-ir", "IR", "+989121234567"), ("bank-de", "DE", "+4915112345678"))
    ):
        scheme.register_participant(bank, f"Bank {country}", "bank", country, ["MYR"])
        scheme.register_alias(bank, "MSISDN", msisdn, "Ali Akbar AHMADIAN", "MYR")
        quote = scheme.create_quote("mtn-rw", f"q{n}", "MSISDN", msisdn, 500, "RECEIVE", "RWF")
        held = scheme.prepare_transfer("mtn-rw", f"t{n}", quote.id)
        assert held.state is TransferState.HOLD
        assert held.reason is not None
        reasons.append(held.reason)
    for reason in reasons:
        assert reason.startswith("sanctions review:"), reason
        assert "nationality" not in reason.replace("no DOB or nationality", ""), reason


def test_load_builds_the_screeners_once_ahead_of_the_first_transfer(
    scheme: PaymentScheme, screener: object
) -> None:
    from entrepot.payments.screening import CombinedScreening, FraudScreening

    built: list[str] = []

    def sanctions() -> object:
        built.append("sanctions")
        return screener

    def fraud() -> object:
        built.append("fraud")
        return object()

    combined = CombinedScreening([SanctionsScreening(sanctions), FraudScreening(fraud)])  # type: ignore[arg-type]
    assert built == []  # nothing is built until asked
    combined.load()
    assert built == ["sanctions", "fraud"]
    combined.load()
    scheme.screening = combined.screenings[0]
    q = scheme.create_quote("mtn-rw", "q-l", "MERCHANT", "KL-TILL-42", 500, "RECEIVE", "RWF")
    assert scheme.prepare_transfer("mtn-rw", "t-l", q.id).state is TransferState.RESERVED
    assert built == ["sanctions", "fraud"]  # loaded once, used as loaded


def test_an_api_worker_loads_the_lists_before_its_first_request(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, screener: object
) -> None:
    import gc

    from entrepot.entrypoints.api.app import create_app_from_env
    from entrepot.risk.sanctions import Screener

    loads: list[object] = []

    def from_directory(*args: object, **kwargs: object) -> object:
        loads.append(args)
        return screener

    monkeypatch.setattr(Screener, "from_directory", from_directory)
    monkeypatch.setenv("ENTREPOT_DATABASE_URL", f"sqlite:///{tmp_path}/api.db")
    monkeypatch.setenv("ENTREPOT_HOME", str(tmp_path))
    monkeypatch.setenv("ENTREPOT_SCREENING", "sanctions")
    try:
        app = create_app_from_env()
    finally:
        gc.unfreeze()
    assert len(loads) == 1
    app.state.scheme.engine.dispose()


class Recording:
    """Holds payees whose display name contains HOLD; records every screening. Keeps no state
    of what it screens, so a prepare may screen it before the write lock."""

    screens_ahead = True

    def __init__(self, on_first: Callable[[], None] | None = None) -> None:
        self.seen: list[tuple[str, str]] = []
        self.on_first = on_first

    def screen(self, transfer: PaymentTransfer, payee: Party | None) -> ScreeningDecision:
        name = payee.display_name if payee else ""
        self.seen.append((transfer.id, name))
        if self.on_first is not None:
            hook, self.on_first = self.on_first, None
            hook()
        return ScreeningDecision(hold="HOLD" in name, reasons=(f"screened {name}",))


def test_a_prepare_is_screened_once_before_the_write_lock(scheme: PaymentScheme) -> None:
    wrote: list[bool] = []

    def another_writer() -> None:  # would wait for the lock if screening held it
        def write() -> None:
            scheme.register_participant("late", "Late", "wallet", "RW", ["RWF"])

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(10)
        wrote.append(not writer.is_alive())

    recording = Recording(on_first=another_writer)
    scheme.screening = recording
    q = scheme.create_quote("mtn-rw", "q-1", "MERCHANT", "KL-TILL-42", 500, "RECEIVE", "RWF")
    t = scheme.prepare_transfer("mtn-rw", "t-1", q.id)
    assert t.state is TransferState.RESERVED
    assert recording.seen == [("t-1", "Kedai Kopi KL")]
    assert wrote == [True]


def test_a_payee_renamed_after_screening_is_screened_again_inside(scheme: PaymentScheme) -> None:
    """The party changes between the snapshot's screening and the transaction: the decision
    made on the old name is not used; the transaction screens the party it reads."""

    def rename() -> None:
        with scheme.engine.begin() as conn:
            conn.execute(
                sa.update(st.aliases)
                .where(st.aliases.c.alias == "KL-TILL-42")
                .values(display_name="HOLD ME")
            )

    recording = Recording(on_first=rename)
    scheme.screening = recording
    q = scheme.create_quote("mtn-rw", "q-2", "MERCHANT", "KL-TILL-42", 500, "RECEIVE", "RWF")
    t = scheme.prepare_transfer("mtn-rw", "t-2", q.id)
    assert recording.seen == [("t-2", "Kedai Kopi KL"), ("t-2", "HOLD ME")]
    assert t.state is TransferState.HOLD and t.reason == "screened HOLD ME"


class Learning(Recording):
    """A screening that keeps what it sees (as fraud screening keeps each payer's history)."""

    screens_ahead = False


def test_a_screening_that_keeps_state_is_screened_only_inside(scheme: PaymentScheme) -> None:
    held: list[bool] = []
    done = threading.Event()

    def write() -> None:
        scheme.register_participant("late2", "Late", "wallet", "RW", ["RWF"])
        done.set()

    writer = threading.Thread(target=write, daemon=True)

    def lock_is_held() -> None:  # another thread cannot write while the prepare holds it
        writer.start()
        held.append(not done.wait(0.5))

    learning = Learning(on_first=lock_is_held)
    scheme.screening = learning
    q = scheme.create_quote("mtn-rw", "q-5", "MERCHANT", "KL-TILL-42", 500, "RECEIVE", "RWF")
    assert scheme.prepare_transfer("mtn-rw", "t-5", q.id).state is TransferState.RESERVED
    writer.join(30)  # it writes once the prepare has committed
    assert learning.seen == [("t-5", "Kedai Kopi KL")]
    assert held == [True] and done.is_set()


@pytest.mark.parametrize(
    "case",
    [
        "not_yours", "no_quote", "transfer_exists", "used", "payer_suspended",
        # found by a review: each was screened ahead and a decision logged for a transfer
        # that never was (the alias's new holder, a stranger to the payment, screened)
        "ended_by_a_suspension", "provider_suspended", "alias_moved",
        # and (a later review) one registered again since the quote, for a new customer
        "alias_registered_again",
    ],
)  # fmt: skip
def test_a_prepare_that_will_fail_is_not_screened_ahead(
    scheme: PaymentScheme, clock: FakeClock, case: str
) -> None:
    scheme.register_participant("mtn-2", "MTN 2", "wallet", "RW", ["RWF"])
    q = scheme.create_quote("mtn-rw", "q-3", "MERCHANT", "KL-TILL-42", 500, "RECEIVE", "RWF")
    if case in ("transfer_exists", "used"):
        scheme.prepare_transfer("mtn-rw", "t-3", q.id)
    if case == "payer_suspended":
        scheme.set_active("mtn-rw", False)
    if case == "ended_by_a_suspension":  # accepted, the payee suspended and resumed
        scheme.accept_quote("mtn-rw", q.id)
        scheme.set_active("maybank", False)
        scheme.set_active("maybank", True)
    if case == "provider_suspended":
        scheme.set_active("fxco", False)
    if case == "alias_moved":
        scheme.register_participant("cimb", "CIMB", "bank", "MY", ["MYR"])
        scheme.remove_alias("maybank", "MERCHANT", "KL-TILL-42")
        scheme.register_alias("cimb", "MERCHANT", "KL-TILL-42", "Someone Else", "MYR")
    if case == "alias_registered_again":
        clock.advance(1)
        scheme.remove_alias("maybank", "MERCHANT", "KL-TILL-42")
        scheme.register_alias("maybank", "MERCHANT", "KL-TILL-42", "A New Shop", "MYR")
    recording = Recording()
    scheme.screening = recording
    caller, tid, qid = {
        "not_yours": ("mtn-2", "t-4", "q-3"),
        "no_quote": ("mtn-rw", "t-4", "q-none"),
        "transfer_exists": ("mtn-rw", "t-3", "q-none"),  # another request with its id
        "used": ("mtn-rw", "t-4", "q-3"),
        "payer_suspended": ("mtn-rw", "t-4", "q-3"),
        "ended_by_a_suspension": ("mtn-rw", "t-4", "q-3"),
        "provider_suspended": ("mtn-rw", "t-4", "q-3"),
        "alias_moved": ("mtn-rw", "t-4", "q-3"),
        "alias_registered_again": ("mtn-rw", "t-4", "q-3"),
    }[case]
    with pytest.raises(DomainError):
        scheme.prepare_transfer(caller, tid, qid)
    assert recording.seen == []


def test_a_resent_prepare_is_answered_and_not_screened_again(scheme: PaymentScheme) -> None:
    recording = Recording()
    scheme.screening = recording
    scheme.create_quote("mtn-rw", "q-7", "MERCHANT", "KL-TILL-42", 500, "RECEIVE", "RWF")
    first = scheme.prepare_transfer("mtn-rw", "t-7", "q-7")
    assert scheme.prepare_transfer("mtn-rw", "t-7", "q-7") == first
    assert recording.seen == [("t-7", "Kedai Kopi KL")]


def test_a_prepare_inside_a_callers_unit_of_work_is_screened_once(
    scheme: PaymentScheme,
) -> None:
    recording = Recording()
    scheme.screening = recording
    _, t = scheme.quote_and_prepare(
        "mtn-rw", "q-6", "t-6", "MERCHANT", "KL-TILL-42", 500, "RECEIVE", "RWF"
    )
    assert t.state is TransferState.RESERVED
    assert recording.seen == [("t-6", "Kedai Kopi KL")]


class Blocking(Learning):
    """Blocks every transfer; keeps what it sees."""

    def screen(self, transfer: PaymentTransfer, payee: Party | None) -> ScreeningDecision:
        super().screen(transfer, payee)
        return ScreeningDecision(hold=False, block=True, reasons=("blocked",))


@pytest.mark.parametrize("pay_by_qr", [False, True])
def test_a_prepare_the_fx_provider_cannot_fund_is_refused_before_screening(
    scheme: PaymentScheme, pay_by_qr: bool
) -> None:
    """A prepare that accepts its quote posts the FX reservation with the legs in one ledger
    batch; the FX provider's refusal still comes first: the client is told the FX provider
    lacks liquidity (not that screening blocked it), and a screening that learns from what it
    screens never sees the refused transfer, retried or not."""
    blocking = Blocking()
    scheme.screening = blocking
    # 7,000,000 RWF -> about 22,065 MYR: more than fxco's 20,000.00 MYR.
    big = ("MERCHANT", "KL-TILL-42", 7_000_000, "SEND", "RWF")
    for attempt in range(2):
        with pytest.raises(FxLiquidityExhausted):
            if pay_by_qr:
                scheme.quote_and_prepare("mtn-rw", f"q-{attempt}", "t-1", *big)
            else:
                scheme.create_quote("mtn-rw", f"q-{attempt}", *big)
                scheme.prepare_transfer("mtn-rw", "t-1", f"q-{attempt}")
    assert blocking.seen == []
    # Within the FX provider's means, the same screening blocks.
    with pytest.raises(TransferBlocked):
        scheme.quote_and_prepare(
            "mtn-rw", "q-ok", "t-1", "MERCHANT", "KL-TILL-42", 500, "RECEIVE", "RWF"
        )
    assert blocking.seen == [("t-1", "Kedai Kopi KL")]


@pytest.mark.parametrize("approve", [True, False])
def test_the_reviewers_verdict_on_a_sanctions_hold_is_logged_linked_to_the_hold(
    scheme: PaymentScheme, approve: bool
) -> None:
    """A person's release or rejection of a payment screening held is a decision about the
    payee as much as the hold was: it is logged, naming the decision that held it."""
    if not (LISTS / "ofac_sdn.csv").is_file():
        pytest.skip(f"the OFAC snapshot is not at {LISTS}")
    from entrepot.risk.decisions import MemorySink
    from entrepot.risk.sanctions import Screener

    sink = MemorySink()
    scheme.screening = SanctionsScreening(Screener.from_directory(LISTS, sink=sink))
    scheme.register_participant("cimb", "CIMB", "bank", "MY", ["MYR"])
    scheme.register_alias("cimb", "MERCHANT", "KL-77", "BANCO NACIONAL DE CUBA", "MYR")
    quote = scheme.create_quote("mtn-rw", "q-h", "MERCHANT", "KL-77", 500, "RECEIVE", "RWF")
    held = scheme.prepare_transfer("mtn-rw", "t-h", quote.id)
    (hold,) = list(sink)
    assert held.reason is not None and f"sanctions decision {hold.decision_id}" in held.reason
    scheme.review_hold(SCHEME, "t-h", approve, "the payee's registry extract differs")
    first, verdict = list(sink)
    assert first == hold
    assert verdict.kind == "sanctions" and verdict.model_version == "review:scheme"
    assert verdict.outcome == ("released" if approve else "rejected")
    assert verdict.inputs["review_of"] == hold.decision_id
    assert verdict.inputs["transfer_id"] == "t-h"
    assert "the payee's registry extract differs" in verdict.reasons[0]
    assert "reviewer_id" not in verdict.inputs  # no one named: none invented


def test_the_verdict_names_the_person_who_decided_and_their_credential(
    scheme: PaymentScheme,
) -> None:
    """A verdict contested later (a payee whose payment was rejected, an auditor) must lead to
    whoever made it: every reviewer acted as ``scheme``, and the log could not tell one member
    of the operator's staff from another. The review names its reviewer and the credential
    it came with; the logged verdict keeps both. A malformed reviewer id changes nothing."""
    if not (LISTS / "ofac_sdn.csv").is_file():
        pytest.skip(f"the OFAC snapshot is not at {LISTS}")
    from entrepot.risk.decisions import MemorySink

    sink = MemorySink()
    _held_by_sanctions(scheme, sink)
    for bad in ("", "a b", "x" * 65, "alice\n"):
        with pytest.raises(InvalidPaymentInput) as refused:
            scheme.review_hold(SCHEME, "t-h", True, "cleared", reviewer_id=bad)
        assert refused.value.field == "reviewer_id"
    assert scheme.get_transfer(SCHEME, "t-h").state is TransferState.HOLD
    assert len(list(sink)) == 1  # the hold only
    scheme.review_hold(
        SCHEME, "t-h", False, "registry extract differs", reviewer_id="ops-amina", credential="k9"
    )
    _, verdict = list(sink)
    assert verdict.inputs["reviewer"] == "scheme"
    assert (verdict.inputs["reviewer_id"], verdict.inputs["credential"]) == ("ops-amina", "k9")
    assert "reviewer ops-amina (credential k9): registry extract differs" in verdict.reasons[0]


def _held_by_sanctions(scheme: PaymentScheme, sink: object) -> None:
    from entrepot.risk.sanctions import Screener

    scheme.screening = SanctionsScreening(Screener.from_directory(LISTS, sink=sink))  # type: ignore[arg-type]
    scheme.register_participant("cimb", "CIMB", "bank", "MY", ["MYR"])
    scheme.register_alias("cimb", "MERCHANT", "KL-77", "BANCO NACIONAL DE CUBA", "MYR")
    quote = scheme.create_quote("mtn-rw", "q-h", "MERCHANT", "KL-77", 500, "RECEIVE", "RWF")
    assert scheme.prepare_transfer("mtn-rw", "t-h", quote.id).state is TransferState.HOLD


def _outbox(scheme: PaymentScheme) -> list[str]:
    with scheme.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.select(st.decision_outbox.c.decision_id))]


def test_a_verdict_the_log_cannot_take_now_takes_effect_and_is_logged_later(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """The verdict was logged before its transaction committed, and one the log refused
    changed nothing; but then a commit that failed (or a crash) after the append left a
    logged verdict that never took effect. The verdict is now written in the review's
    transaction (the decision outbox) and appended after it commits: one the log refuses
    then stands, waits in the outbox, and the deadline pass appends it once the log takes
    it, once."""
    if not (LISTS / "ofac_sdn.csv").is_file():
        pytest.skip(f"the OFAC snapshot is not at {LISTS}")
    from entrepot.risk.decisions import MemorySink

    class Full(MemorySink):
        refuse = False

        def append(self, decisions):  # type: ignore[no-untyped-def]
            if self.refuse:
                raise OSError(28, "No space left on device")
            super().append(decisions)

    sink = Full()
    _held_by_sanctions(scheme, sink)
    sink.refuse = True
    released = scheme.review_hold(SCHEME, "t-h", True, "cleared")
    assert released.state is TransferState.RESERVED
    assert scheme.get_transfer(SCHEME, "t-h").state is TransferState.RESERVED
    assert [d.outcome for d in sink] == ["review"]  # the hold only, so far
    (waiting,) = _outbox(scheme)
    sink.refuse = False
    # a young verdict is its own worker's to append: the pass leaves it for a while, and
    # takes no write turn to find that out
    writes = write_transactions()
    assert scheme.log_pending_verdicts() == {"verdicts_logged": 0, "verdicts_waiting": 1}
    assert write_transactions() == writes
    clock.advance(VERDICT_GRACE_S)
    assert scheme.log_pending_verdicts() == {"verdicts_logged": 1, "verdicts_waiting": 0}
    hold, verdict = list(sink)
    assert (verdict.decision_id, verdict.outcome) == (waiting, "released")
    assert verdict.inputs["review_of"] == hold.decision_id
    assert _outbox(scheme) == []
    writes = write_transactions()
    assert scheme.log_pending_verdicts() == {"verdicts_logged": 0, "verdicts_waiting": 0}
    assert write_transactions() == writes
    assert len(list(sink)) == 2


@pytest.mark.parametrize("approve", [True, False])
def test_a_verdict_whose_review_does_not_commit_is_not_logged(
    scheme: PaymentScheme, approve: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a review: a verdict was logged inside the review's transaction, so a commit
    that failed (or a process killed before it) left "released" in the log for a transfer
    that stayed on hold, and the next verdict ("rejected") was logged too."""
    if not (LISTS / "ofac_sdn.csv").is_file():
        pytest.skip(f"the OFAC snapshot is not at {LISTS}")
    from contextlib import contextmanager

    from entrepot.risk.decisions import MemorySink

    sink = MemorySink()
    _held_by_sanctions(scheme, sink)
    real = scheme._uow

    @contextmanager
    def commit_fails():  # type: ignore[no-untyped-def]
        with real() as uow:
            yield uow
            raise OSError(5, "Input/output error")  # at the COMMIT: the transaction rolls back

    monkeypatch.setattr(scheme, "_uow", commit_fails)
    with pytest.raises(OSError):
        scheme.review_hold(SCHEME, "t-h", approve, "first look")
    monkeypatch.undo()
    assert scheme.get_transfer(SCHEME, "t-h").state is TransferState.HOLD
    assert [d.outcome for d in sink] == ["review"]  # the hold; no verdict that did not happen
    assert _outbox(scheme) == []
    done = scheme.review_hold(SCHEME, "t-h", not approve, "second look")
    assert [d.outcome for d in sink] == ["review", "rejected" if approve else "released"]
    assert sink.decisions[-1].inputs["transfer_id"] == "t-h" and done.id == "t-h"
    assert _outbox(scheme) == []


class _Verdicts:
    """A screening that holds every transfer and logs one verdict of ``kind`` to ``sink``."""

    def __init__(self, kind: str, sink: object) -> None:
        self.kind, self.sink = kind, sink

    def screen(self, transfer: PaymentTransfer, payee: Party | None) -> ScreeningDecision:
        return ScreeningDecision(hold=True, reasons=(f"{self.kind} review",))

    def verdicts(
        self, transfer: PaymentTransfer, rejected: bool, reason: str = "", by: object = None
    ) -> list:  # type: ignore[type-arg]
        from entrepot.risk.decisions import make_decision

        return [
            make_decision(self.kind, model_version="review:scheme", outcome="released",
                          score=None, reasons=(reason,), inputs={"transfer_id": transfer.id})
        ]  # fmt: skip

    def log_verdicts(self, records):  # type: ignore[no-untyped-def]
        from entrepot.risk.decisions import Decision

        mine = [Decision.from_dict(r) for r in records if r["kind"] == self.kind]
        if mine:
            self.sink.append(mine)  # type: ignore[attr-defined]
        return {d.decision_id for d in mine}


def _refusing_sink() -> object:
    from entrepot.risk.decisions import MemorySink

    class Full(MemorySink):
        refuse = True

        def append(self, decisions):  # type: ignore[no-untyped-def]
            if self.refuse:
                raise OSError(28, "No space left on device")
            super().append(decisions)

    return Full()


def test_a_verdict_one_log_took_is_not_appended_again_while_another_refuses(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """Found by a review: with two screenings, one whose log refused made the combined
    append fail whole; the verdict the other's log had taken stayed in the outbox and was
    appended again at every pass, without limit, until the refusing log recovered."""
    from entrepot.payments.screening import CombinedScreening
    from entrepot.risk.decisions import MemorySink

    sanctions, fraud = MemorySink(), _refusing_sink()
    scheme.screening = CombinedScreening(
        [_Verdicts("sanctions", sanctions), _Verdicts("fraud", fraud)]
    )
    q = scheme.create_quote("mtn-rw", "q-1", "MERCHANT", "KL-TILL-42", 500, "RECEIVE", "RWF")
    assert scheme.prepare_transfer("mtn-rw", "t-1", q.id).state is TransferState.HOLD
    assert scheme.review_hold(SCHEME, "t-1", True, "ok").state is TransferState.RESERVED
    assert len(list(sanctions)) == 1 and len(_outbox(scheme)) == 1  # fraud's waits
    for _ in range(3):
        clock.advance(VERDICT_GRACE_S)
        assert scheme.log_pending_verdicts() == {"verdicts_logged": 0, "verdicts_waiting": 1}
    assert len(list(sanctions)) == 1
    fraud.refuse = False  # type: ignore[attr-defined]
    clock.advance(VERDICT_GRACE_S)
    assert scheme.log_pending_verdicts() == {"verdicts_logged": 1, "verdicts_waiting": 0}
    assert [d.kind for d in fraud] == ["fraud"]  # type: ignore[attr-defined]
    assert len(list(sanctions)) == 1 and _outbox(scheme) == []


def test_two_passes_at_once_append_a_waiting_verdict_once(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """Found by a review: two deadline passes (two hosts, or an operator's beside the
    server's) read the outbox, each appended what it found, then deleted it: the verdict
    was logged twice. A pass now claims what it appends, in a write; the other skips it."""
    from entrepot.risk.decisions import MemorySink

    class Slow(MemorySink):
        def append(self, decisions):  # type: ignore[no-untyped-def]
            time.sleep(0.3)  # an fsync that takes its time
            super().append(decisions)

    refusing, slow = _refusing_sink(), Slow()
    scheme.screening = _Verdicts("sanctions", refusing)  # type: ignore[assignment]
    q = scheme.create_quote("mtn-rw", "q-1", "MERCHANT", "KL-TILL-42", 500, "RECEIVE", "RWF")
    scheme.prepare_transfer("mtn-rw", "t-1", q.id)
    scheme.review_hold(SCHEME, "t-1", True, "ok")
    scheme.screening = _Verdicts("sanctions", slow)  # type: ignore[assignment]
    clock.advance(VERDICT_GRACE_S)
    done: list[dict[str, int]] = []
    passes = [
        threading.Thread(target=lambda: done.append(scheme.log_pending_verdicts()))
        for _ in range(2)
    ]
    for t in passes:
        t.start()
    for t in passes:
        t.join()
    assert sorted(d["verdicts_logged"] for d in done) == [0, 1]
    assert len(list(slow)) == 1 and _outbox(scheme) == []


def test_a_held_transfers_reason_names_its_decisions_however_long_the_reasons(
    scheme: PaymentScheme,
) -> None:
    """The reason column holds 200 characters; the decisions a reviewer's verdict links to
    are kept whole at its end, the reasons cut before them."""
    marks = ("sanctions decision " + "a" * 32, "fraud decision " + "b" * 32)

    class Long:
        def screen(self, transfer: PaymentTransfer, payee: Party | None) -> ScreeningDecision:
            return ScreeningDecision(hold=True, reasons=("x" * 150, "y" * 150), logged=marks)

    scheme.screening = Long()
    q = scheme.create_quote("mtn-rw", "q-1", "MERCHANT", "KL-TILL-42", 500, "RECEIVE", "RWF")
    t = scheme.prepare_transfer("mtn-rw", "t-1", q.id)
    assert t.state is TransferState.HOLD and t.reason is not None
    assert len(t.reason) == 200
    assert t.reason.startswith("x" * 50) and t.reason.endswith(f"… [{marks[0]}; {marks[1]}]")
    assert scheme.get_transfer(SCHEME, "t-1").reason == t.reason


@pytest.mark.parametrize("name", ["...", "-", "\N{GRINNING FACE}", "\N{BLACK STAR} \N{BLACK STAR}"])
def test_a_payee_whose_name_holds_nothing_to_screen_is_held_not_refused(
    scheme: PaymentScheme, name: str
) -> None:
    """Found by a review: make_party refused the name (422 risk_empty_name, a field the request
    does not have), so with screening on the payee could never be paid: a name alone blocked
    it. It is held for a person, the hold logged, the verdict linked to it."""
    if not (LISTS / "ofac_sdn.csv").is_file():
        pytest.skip(f"the OFAC snapshot is not at {LISTS}")
    from entrepot.risk.decisions import MemorySink
    from entrepot.risk.sanctions import Screener

    sink = MemorySink()
    scheme.screening = SanctionsScreening(Screener.from_directory(LISTS, sink=sink))
    scheme.register_participant("cimb", "CIMB", "bank", "MY", ["MYR"])
    scheme.register_alias("cimb", "MERCHANT", "KL-77", name, "MYR")
    quote = scheme.create_quote("mtn-rw", "q-e", "MERCHANT", "KL-77", 500, "RECEIVE", "RWF")
    held = scheme.prepare_transfer("mtn-rw", "t-e", quote.id)
    assert held.state is TransferState.HOLD
    (hold,) = list(sink)
    assert hold.outcome == "review" and hold.inputs["unreadable_name"] is True
    assert name not in hold.inputs.values()  # no personal identifier in the clear (ADR 0013)
    assert held.reason is not None and "no letter or digit" in held.reason
    assert f"sanctions decision {hold.decision_id}" in held.reason
    released = scheme.review_hold(SCHEME, "t-e", True, "the merchant's registration checked")
    assert released.state is TransferState.RESERVED
    assert list(sink)[1].inputs["review_of"] == hold.decision_id


@pytest.mark.parametrize("who", ["maybank", "mtn-rw", "fxco"])
def test_a_hold_is_not_released_while_a_party_to_it_is_suspended(
    scheme: PaymentScheme, who: str
) -> None:
    """Found by a review: approved with the payee suspended, the transfer was RESERVED for a
    payee that could accept nothing, and the payer's and the FX provider's funds stayed
    reserved until the expiry. Refused, it stays on hold for the reviewer to reject."""
    from entrepot.payments.errors import ParticipantSuspended

    scheme.screening = Recording()
    scheme.register_alias("maybank", "MERCHANT", "KL-HOLD", "HOLD Kedai", "MYR")
    q = scheme.create_quote("mtn-rw", "q-s", "MERCHANT", "KL-HOLD", 500, "RECEIVE", "RWF")
    held = scheme.prepare_transfer("mtn-rw", "t-s", q.id)
    assert held.state is TransferState.HOLD
    scheme.set_active(who, False)
    with pytest.raises(ParticipantSuspended):
        scheme.review_hold(SCHEME, "t-s", True, "looks fine")
    assert scheme.get_transfer(SCHEME, "t-s").state is TransferState.HOLD
    before = scheme.liquidity("mtn-rw", "RWF")["position_reserved_minor"]
    rejected = scheme.review_hold(SCHEME, "t-s", False, "party suspended")
    assert rejected.state is TransferState.ABORTED
    assert scheme.liquidity("mtn-rw", "RWF")["position_reserved_minor"] < before


def test_a_payee_named_in_arabic_script_is_screened_by_its_letters(
    scheme: PaymentScheme, screener: object
) -> None:
    """A listed person's name registered in Arabic script was transliterated to its
    consonants and paid unheld; it is held for review, the reason naming the listing."""
    scheme.screening = SanctionsScreening(screener)  # type: ignore[arg-type]
    scheme.register_participant("bank-eg", "Bank EG", "bank", "EG", ["MYR"])
    scheme.register_alias("bank-eg", "MSISDN", "+201001234567", "أيمن الظواهري", "MYR")
    quote = scheme.create_quote("mtn-rw", "q-ar", "MSISDN", "+201001234567", 500, "RECEIVE", "RWF")
    held = scheme.prepare_transfer("mtn-rw", "t-ar", quote.id)
    assert held.state is TransferState.HOLD
    assert held.reason is not None and "AL-ZAWAHIRI, Ayman" in held.reason


def test_migration_0027_makes_the_verdicts_waiting_before_it_claimable(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """Verdicts written before claims existed wait with no claim: claimable at once."""
    from entrepot.risk.decisions import MemorySink
    from entrepot.storage.migrate import downgrade, upgrade

    refusing, sink = _refusing_sink(), MemorySink()
    scheme.screening = _Verdicts("sanctions", refusing)  # type: ignore[assignment]
    q = scheme.create_quote("mtn-rw", "q-1", "MERCHANT", "KL-TILL-42", 500, "RECEIVE", "RWF")
    scheme.prepare_transfer("mtn-rw", "t-1", q.id)
    scheme.review_hold(SCHEME, "t-1", True, "ok")
    (waiting,) = _outbox(scheme)
    downgrade(scheme.engine, "0026_escrow_managed_by")
    upgrade(scheme.engine)
    assert _outbox(scheme) == [waiting]
    scheme.screening = _Verdicts("sanctions", sink)  # type: ignore[assignment]
    assert scheme.log_pending_verdicts() == {"verdicts_logged": 1, "verdicts_waiting": 0}
    assert [d.decision_id for d in sink] == [waiting]


def test_a_prepare_over_the_payers_cap_is_not_seen_by_a_screening_that_keeps_state(
    scheme: PaymentScheme,
) -> None:
    """A screening that learns from what it screens (fraud: each payer's velocity, each
    beneficiary's fan-in) must not see a prepare the payer's cap refuses: it screened it,
    and every retry again, so a bank at its cap made its customers' next payments look like a
    burst (and logged a decision for each transfer that never was)."""
    scheme.set_net_debit_cap("mtn-rw", "RWF", 1_000_000)
    scheme.register_participant("bk-rw", "Bank of Kigali", "bank", "RW", ["RWF"])
    scheme.register_alias("bk-rw", "MSISDN", "+250722000111", "Jean Mugabo", "RWF")
    learning = Learning()
    scheme.screening = learning
    scheme.create_quote("mtn-rw", "q-1", "MSISDN", "+250722000111", 900_000, "SEND", "RWF")
    assert scheme.prepare_transfer("mtn-rw", "t-1", "q-1").state is TransferState.RESERVED
    scheme.create_quote("mtn-rw", "q-2", "MSISDN", "+250722000111", 200_000, "SEND", "RWF")
    for _ in range(2):  # refused, and retried
        with pytest.raises(NetDebitCapExceeded):
            scheme.prepare_transfer("mtn-rw", "t-2", "q-2")
    assert learning.seen == [("t-1", "Jean Mugabo")]
