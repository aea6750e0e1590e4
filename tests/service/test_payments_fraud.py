"""Fraud screening in the scheme: every transfer whose quote names its payer is scored by the
real fraud model (trained on the seeded simulator); review puts it on HOLD, block refuses it
and reserves nothing; the reviewer's verdict becomes the label; no payer, no score."""

from __future__ import annotations

from decimal import Decimal

import pytest

from entrepot.kernel.clock import NS_PER_S, FakeClock
from entrepot.payments import SCHEME, PaymentScheme, TransferState
from entrepot.payments.errors import InvalidPaymentInput, TransferBlocked
from entrepot.payments.screening import FraudScreening, to_currency_minor
from entrepot.risk.decisions import MemorySink
from entrepot.risk.fraud import FEATURES, FraudModel, FraudScreener
from entrepot.risk.fraud_bench import train_from_simulator
from tests.service.test_payments import join_bk

MULE = ("MSISDN", "+250722999999")  # bk-rw's customer who collects for a fraud ring
SHOPS = [("MERCHANT", f"SHOP-{n}") for n in range(3)]
PAYERS = [f"+2507880000{n:02d}" for n in range(10)]


@pytest.fixture(scope="module")
def model() -> FraudModel:
    trained, _ = train_from_simulator(customers=500, terminals=100, days=28)
    return trained


def fraud_scheme(scheme: PaymentScheme, clock: FakeClock, model: FraudModel) -> FraudScreening:
    join_bk(scheme)
    for kind, alias in [*SHOPS, MULE]:
        scheme.register_alias("bk-rw", kind, alias, f"{alias} at BK", "RWF")
    # built from a factory, as the application does: the model loads on the first transfer
    fraud = FraudScreening(lambda: FraudScreener(model, sink=MemorySink(), clock=clock))
    scheme.screening = fraud
    return fraud


def send(scheme: PaymentScheme, tid: str, payer: str, payee: tuple[str, str], amount: int):  # type: ignore[no-untyped-def]
    scheme.create_quote(
        "mtn-rw", f"q-{tid}", payee[0], payee[1], amount, "SEND", "RWF",
        payer_alias_type="MSISDN", payer_alias=payer,
    )  # fmt: skip
    return scheme.prepare_transfer("mtn-rw", tid, f"q-{tid}", ttl_s=86_400)


def mule_ring(scheme: PaymentScheme, clock: FakeClock) -> list[str]:
    """Twenty days of ordinary shopping by each payer, then one night every payer sends 900.00
    to one account: the state of each of those transfers (BLOCKED where refused)."""
    clock.set_ns((1_767_225_600 + 12 * 3_600) * NS_PER_S)  # noon, day 0
    for day in range(20):  # each payer's ordinary shopping
        for n, payer in enumerate(PAYERS):
            t = send(scheme, f"d{day}-{n}", payer, SHOPS[n % 3], 3_000 + 10 * day + n)
            assert t.state is TransferState.RESERVED and t.payer_alias == f"MSISDN:{payer}"
            scheme.commit_transfer("bk-rw", t.id)
            clock.advance(600)
        clock.advance(86_400 - 6_000)
    clock.advance(15 * 3_600)  # 03:00 the next night: every payer sends 900.00 to one account
    states = []
    for n, payer in enumerate(PAYERS):
        try:
            states.append(send(scheme, f"mule-{n}", payer, MULE, 90_000).state.value)
        except TransferBlocked as exc:
            assert "fraud block" in exc.detail and "distinct payers" in exc.detail
            states.append("BLOCKED")
        clock.advance(120)
    return states


def test_a_mule_ring_is_held_then_blocked_and_reviews_teach_the_model(
    scheme: PaymentScheme, clock: FakeClock, model: FraudModel
) -> None:
    fraud = fraud_scheme(scheme, clock, model)
    states = mule_ring(scheme, clock)
    assert states[:2] == ["RESERVED", "RESERVED"]
    assert "HOLD" in states and states[-1] == "BLOCKED"
    held = [f"mule-{n}" for n, s in enumerate(states) if s == "HOLD"]
    t = scheme.get_transfer("mtn-rw", held[0])
    assert t.reason is not None and t.reason.startswith("fraud review: score")
    blocked = [f"mule-{n}" for n, s in enumerate(states) if s == "BLOCKED"]
    with pytest.raises(Exception, match="does not exist"):
        scheme.get_transfer("mtn-rw", blocked[0])  # nothing was reserved or recorded
    mule = fraud.screener.state._entity(f"bk-rw/MSISDN:{MULE[1]}")
    frauds_before = sum(b[1] for b in mule.fraud_days.values())
    scheme.review_hold(SCHEME, held[0], approve=False, reason="confirmed mule ring")
    assert scheme.get_transfer("mtn-rw", held[0]).state is TransferState.ABORTED
    # the verdict reached the model's feature state as a fraud label on the beneficiary
    assert sum(b[1] for b in mule.fraud_days.values()) == frauds_before + 1
    sink = fraud.screener.sink
    assert isinstance(sink, MemorySink)
    # every scoring decision is logged, and the reviewer's verdict on the held one, linked to
    # it (it was not: the hold's outcome, a person's decision, was nowhere in the log, and
    # its review item stayed open in the screener's queue for ever)
    assert len(sink.decisions) == len(PAYERS) * 21 + 1
    verdict = sink.decisions[-1]
    held_id = t.reason.split("decision ")[1].split(")")[0]
    assert (verdict.kind, verdict.outcome, verdict.model_version) == (
        "fraud",
        "confirmed_fraud",
        "review:scheme",
    )
    assert (verdict.inputs["review_of"], verdict.inputs["payment_id"]) == (held_id, held[0])
    assert held_id not in {item.decision_id for item in fraud.screener.queue.list_open()}


def test_a_verdict_given_in_another_worker_than_the_hold_is_logged_too(
    scheme: PaymentScheme, clock: FakeClock, model: FraudModel
) -> None:
    """An API server runs several workers, each with its own screener in memory, and a
    restart empties them: the review may reach one that never saw the hold. The verdict is
    logged all the same, linked through the hold's reason."""
    fraud_scheme(scheme, clock, model)
    states = mule_ring(scheme, clock)
    held = next(f"mule-{n}" for n, s in enumerate(states) if s == "HOLD")
    held_id = scheme.get_transfer(SCHEME, held).reason.split("decision ")[1].split(")")[0]  # type: ignore[union-attr]
    other = FraudScreening(lambda: FraudScreener(model, sink=MemorySink(), clock=clock))
    scheme.screening = other  # the worker the review reaches
    scheme.review_hold(
        SCHEME, held, approve=True, reason="the customer confirmed it", reviewer_id="ops-li"
    )
    (verdict,) = other.screener.sink  # type: ignore[misc]
    assert (verdict.kind, verdict.outcome, verdict.model_version) == (
        "fraud",
        "legitimate",
        "review:scheme",
    )
    assert (verdict.inputs["review_of"], verdict.inputs["payment_id"]) == (held_id, held)
    # who decided, as the review named them (a sanctions verdict names them the same way)
    assert verdict.inputs["reviewer_id"] == "ops-li" and "(ops-li)" in verdict.reasons[0]


def test_a_transfer_without_a_payer_party_is_not_scored(
    scheme: PaymentScheme, clock: FakeClock, model: FraudModel
) -> None:
    fraud = fraud_scheme(scheme, clock, model)
    scheme.create_quote("mtn-rw", "q-1", *MULE, 90_000, "SEND", "RWF")
    t = scheme.prepare_transfer("mtn-rw", "t-1", "q-1")
    assert t.state is TransferState.RESERVED and t.payer_alias is None
    assert fraud.unscored == 1
    with pytest.raises(InvalidPaymentInput, match="payer alias needs both"):
        scheme.create_quote("mtn-rw", "q-2", *MULE, 1_000, "SEND", "RWF", payer_alias="+2507")


def test_amounts_are_converted_to_the_model_currency_at_the_scheme_rate(
    scheme: PaymentScheme,
) -> None:
    scheme.register_participant("fx-eu", "FX EU", "fx_provider", "BE", ["RWF", "EUR"])
    scheme.post_fx_rate("fx-eu", "RWF", "EUR", Decimal("0.000667"), 40, 3_600)
    to_eur = to_currency_minor(scheme, "EUR")
    assert to_eur(1_000_000, "RWF") == 66_700  # RWF 1m at the mid rate = EUR 667.00
    assert to_eur(1_234, "EUR") == 1_234
    assert to_eur(1_000, "MYR") is None  # nobody quotes MYR -> EUR: not scored


def test_holds_past_their_expiry_are_forgotten_by_the_screening(
    scheme: PaymentScheme, clock: FakeClock, model: FraudModel
) -> None:
    """A held transfer no one reviewed expires; its review item and payment were kept for
    the life of the server, one per hold. Past the expiry no verdict can come: the next
    screening forgets them."""
    fraud = fraud_scheme(scheme, clock, model)
    states = mule_ring(scheme, clock)
    held = [f"mule-{n}" for n, s in enumerate(states) if s == "HOLD"]
    assert held and len(fraud.screener.queue) == len(held)
    clock.advance(86_400)  # past every hold's expiry (ttl 86,400 s)
    send(scheme, "later", PAYERS[0], SHOPS[0], 3_000)
    assert len(fraud.screener.queue) == 0
    assert not fraud._held


def test_a_prepare_stamped_before_the_payers_last_one_is_screened(
    scheme: PaymentScheme, clock: FakeClock, model: FraudModel
) -> None:
    """The scheme's clock is the wall clock, which an NTP step can set back: the payer's next
    transfer then came "before" its last one, and scoring it failed with a math domain error
    (a 500 for every prepare of that payer until the clock caught up)."""
    fraud_scheme(scheme, clock, model)
    assert send(scheme, "t-1", PAYERS[0], SHOPS[0], 3_000).state is TransferState.RESERVED
    clock.advance(-2)
    assert send(scheme, "t-2", PAYERS[0], SHOPS[1], 3_000).state is TransferState.RESERVED


def test_a_blocked_prepare_retried_is_blocked_again_and_not_scored_twice(
    scheme: PaymentScheme, clock: FakeClock, model: FraudModel
) -> None:
    """A block refuses the prepare and keeps nothing, so a client that lost the answer (or
    retries a refusal with its Idempotency-Key) prepares the same transfer again: it was
    scored again, a second decision logged for the one payment and the attempt counted twice
    in the payer's and the beneficiary's history."""
    fraud = fraud_scheme(scheme, clock, model)
    assert mule_ring(scheme, clock)[-1] == "BLOCKED"
    with pytest.raises(TransferBlocked):  # the ring's last payer once more
        send(scheme, "again", PAYERS[-1], MULE, 90_000)
    sink = fraud.screener.sink
    assert isinstance(sink, MemorySink)
    logged = [d for d in sink.decisions if d.inputs.get("payment_id") == "again"]
    assert [d.outcome for d in logged] == ["block"]
    payer = fraud.screener.state._entity(f"mtn-rw/MSISDN:{PAYERS[-1]}")
    seen = len(payer.amounts)
    clock.advance(5)
    with pytest.raises(TransferBlocked) as retried:
        scheme.prepare_transfer("mtn-rw", "again", "q-again", ttl_s=86_400)
    assert logged[0].decision_id in retried.value.detail
    assert [d for d in sink.decisions if d.inputs.get("payment_id") == "again"] == logged
    assert len(payer.amounts) == seen


def test_a_converted_amount_is_logged_in_the_currency_it_was_scored_in(
    scheme: PaymentScheme, clock: FakeClock, model: FraudModel
) -> None:
    """The model scores EUR: a transfer's amount is converted before scoring, and the
    decision log recorded the converted amount under the transfer's own currency (1,000,000
    RWF logged as ``amount_minor`` 66,700 ``RWF``, its reasons' amounts in EUR)."""
    fraud = fraud_scheme(scheme, clock, model)
    scheme.register_participant("fx-eu", "FX EU", "fx_provider", "BE", ["RWF", "EUR"])
    scheme.post_fx_rate("fx-eu", "RWF", "EUR", Decimal("0.000667"), 40, 86_400)
    fraud.to_model_minor = to_currency_minor(scheme, "EUR")
    t = send(scheme, "t-1", PAYERS[0], SHOPS[0], 1_000_000)
    (logged,) = fraud.screener.sink  # type: ignore[misc]
    eur = to_currency_minor(scheme, "EUR")(t.source_amount_minor, "RWF")
    assert (logged.inputs["amount_minor"], logged.inputs["currency"]) == (eur, "EUR")


def test_a_converted_amount_past_what_the_model_takes_is_scored_at_the_largest(
    scheme: PaymentScheme, clock: FakeClock, model: FraudModel
) -> None:
    """A rate can make a transfer's amount in the model's currency larger than any the model
    scores: it raised OverflowError inside the prepare (a 500). It is scored as the largest."""
    fraud_scheme(scheme, clock, model)
    scheme.screening = fraud = FraudScreening(
        FraudScreener(model, sink=MemorySink(), clock=clock),
        to_model_minor=lambda amount, _currency: amount * 10**400,
    )
    t = send(scheme, "t-1", PAYERS[0], SHOPS[0], 3_000)
    assert t.state in (TransferState.RESERVED, TransferState.HOLD)
    (logged,) = fraud.screener.sink  # type: ignore[misc]
    assert logged.inputs["amount_minor"] == 10**18  # fraud.AMOUNT_MINOR_MAX


@pytest.mark.parametrize("how", ["prepare", "quote_and_prepare"])
def test_a_prepare_that_does_not_commit_is_not_counted_in_the_payers_history(
    scheme: PaymentScheme,
    clock: FakeClock,
    model: FraudModel,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    """Fraud screening learns each transfer it scores (the payer's velocity and amounts, the
    payee's fan-in) inside the prepare's transaction: a prepare that failed after it (its
    COMMIT, a write after the screening) stayed counted, a transfer that never was, and each
    retry counted again, so the payer's next payments looked like a burst. Pay-by-QR prepares
    inside its own unit of work, whose COMMIT comes after the prepare's end."""
    from contextlib import contextmanager

    from entrepot.risk.fraud import Payment

    fraud = fraud_scheme(scheme, clock, model)
    clock.set_ns((1_767_225_600 + 12 * 3_600) * NS_PER_S)
    for n in range(3):
        send(scheme, f"t-{n}", PAYERS[0], SHOPS[0], 3_000 + n)
        clock.advance(600)
    payer, shop = f"mtn-rw/MSISDN:{PAYERS[0]}", f"bk-rw/MERCHANT:{SHOPS[1][1]}"
    probe = Payment("probe", clock.now_ns() // NS_PER_S + 300, payer, shop, 4_000, "EUR",
                    "transfer")  # fmt: skip
    state = fraud.screener.state
    before, entities, queued = state.features(probe), set(state.entities), len(fraud.screener.queue)
    real = scheme._uow

    @contextmanager
    def commit_fails():  # type: ignore[no-untyped-def]
        outermost = scheme._joined_uow() is None
        with real() as uow:
            yield uow
            if outermost:  # at the COMMIT: the transaction rolls back
                raise OSError(5, "Input/output error")

    for attempt in range(3):  # failed, and retried
        if how == "prepare":
            scheme.create_quote(
                "mtn-rw", f"q-x{attempt}", *SHOPS[1], 9_000, "SEND", "RWF",
                payer_alias_type="MSISDN", payer_alias=PAYERS[0],
            )  # fmt: skip
        monkeypatch.setattr(scheme, "_uow", commit_fails)
        with pytest.raises(OSError):
            if how == "prepare":
                scheme.prepare_transfer("mtn-rw", "t-x", f"q-x{attempt}", ttl_s=86_400)
            else:
                scheme.quote_and_prepare(
                    "mtn-rw", f"q-x{attempt}", "t-x", *SHOPS[1], 9_000, "SEND", "RWF",
                    payer_alias_type="MSISDN", payer_alias=PAYERS[0],
                )  # fmt: skip
        monkeypatch.undo()
        clock.advance(20)
    with pytest.raises(Exception, match="does not exist"):
        scheme.get_transfer("mtn-rw", "t-x")
    assert state.features(probe) == before
    assert set(state.entities) == entities and len(fraud.screener.queue) == queued
    # a prepare that commits is counted as before
    send(scheme, "t-y", PAYERS[0], SHOPS[1], 9_000)
    after = dict(zip(FEATURES, state.features(probe), strict=True))
    assert after["payer_n_1h"] == dict(zip(FEATURES, before, strict=True))["payer_n_1h"] + 1
    assert after["new_beneficiary"] == 0.0


def test_a_bulk_is_not_fraud_scored_and_leaves_the_feature_state_as_it_was(
    scheme: PaymentScheme, clock: FakeClock, model: FraudModel
) -> None:
    """A bulk item names no payer party (there is no quote): fraud screening does not score it
    (``unscored``, one a payee party screened), and neither the feature state nor the review
    queue holds anything of the bulk, committed or not."""
    from entrepot.payments.bulk import BulkItem, bulk_transfers

    fraud = fraud_scheme(scheme, clock, model)
    clock.set_ns((1_767_225_600 + 12 * 3_600) * NS_PER_S)
    items = [BulkItem(f"b-{n}", *SHOPS[n % 3], 1_000 + n) for n in range(5)]
    results = bulk_transfers(scheme, "mtn-rw", "payroll", "RWF", items)
    assert [r.state for r in results] == [TransferState.COMMITTED] * 5
    assert fraud.unscored == 3
    assert not fraud.screener.state.entities and len(fraud.screener.queue) == 0
    assert list(fraud.screener.sink) == []  # type: ignore[call-overload]


def test_a_transfer_not_scored_looks_up_no_rate(scheme: PaymentScheme) -> None:
    """Found by a review: the amount was converted to the model's currency (a rate read from
    the database, about half a millisecond) before it was known that the transfer names no
    payer and is not scored: every prepare without a payer party, under the write lock, and
    every payee of a bulk, for nothing."""
    from entrepot.payments.bulk import BulkItem, bulk_transfers

    join_bk(scheme)
    scheme.register_alias("bk-rw", *SHOPS[0], "shop at BK", "RWF")
    converted: list[tuple[int, str]] = []

    def to_model_minor(amount: int, currency: str) -> int:
        converted.append((amount, currency))
        return amount

    def no_model() -> FraudScreener:
        raise AssertionError("nothing here is scored: the model is not loaded")

    fraud = FraudScreening(no_model, to_model_minor)
    scheme.screening = fraud
    scheme.create_quote("mtn-rw", "q-np", *SHOPS[0], 3_000, "SEND", "RWF")  # no payer party
    assert scheme.prepare_transfer("mtn-rw", "t-np", "q-np").state is TransferState.RESERVED
    bulk_transfers(scheme, "mtn-rw", "np", "RWF", [BulkItem("b-np", *SHOPS[0], 1_000)])
    assert fraud.unscored == 2 and converted == []
