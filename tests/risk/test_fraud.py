"""Fraud screening: simulator, causal features, rules, model vs rules, decisions, review queue."""

from __future__ import annotations

import errno
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from entrepot.kernel.clock import FakeClock
from entrepot.risk.decisions import MemorySink
from entrepot.risk.fraud import (
    FEATURES,
    REASONS_MAX,
    FeatureState,
    FraudModel,
    FraudScreener,
    InvalidPayment,
    InvalidReview,
    Payment,
    ReviewAlreadyResolved,
    UnknownReviewItem,
    load_fraud_model,
    make_payment,
    payments_from_frame,
    precision_top_k_per_day,
    replay_features,
    rule_hits,
    train_fraud_model,
)
from entrepot.risk.fraud import RULES as FRAUD_RULES
from entrepot.risk.fraud_sim import PATTERNS, SIM_START_S, SimConfig, sim_day, simulate, time_split

SMALL = SimConfig(
    n_customers=400, n_terminals=80, n_online_terminals=10, n_days=42,
    terminal_compromise_per_terminal_day=0.002, takeover_per_customer_day=0.001,
    burst_per_customer_day=0.0006, mule_campaigns_per_mule_day=0.05,
)  # fmt: skip
TRAIN_END_DAY = 28
DELAY_DAYS = 7
SEED = 11
T0 = SIM_START_S + 9 * 3600


@dataclass
class World:
    frame: pd.DataFrame
    payments: list[Payment]
    features: pd.DataFrame
    model: FraudModel
    train: np.ndarray
    test: np.ndarray


@pytest.fixture(scope="module")
def world() -> World:
    frame = simulate(SMALL, np.random.default_rng(SEED))
    payments = payments_from_frame(frame)
    labels = frame["is_fraud"].to_numpy()
    features, _ = replay_features(payments, labels.tolist(), label_delay_days=DELAY_DAYS)
    split = time_split(frame, train_end_day=TRAIN_END_DAY, delay_days=DELAY_DAYS)
    days = sim_day(frame["at_s"])
    model = train_fraud_model(features[split.train], labels[split.train], days[split.train],
                              seed=42)  # fmt: skip
    return World(frame, payments, features, model, split.train, split.test)


def pay(i: int, at_s: int, payer: str, bene: str, amount: int, *, channel: str = "card",
        device: str = "d1", mcc: str = "grocery") -> Payment:  # fmt: skip
    return Payment(f"p{i}", at_s, payer, bene, amount, "EUR", channel, device, mcc)


def feats(state: FeatureState, p: Payment) -> dict[str, float]:
    return dict(zip(FEATURES, state.observe(p), strict=True))


def fired(row: dict[str, float]) -> dict[str, str]:
    values = [row[name] for name in FEATURES]
    return {FRAUD_RULES[j].name: FRAUD_RULES[j].reason(values) for j in rule_hits(values)}


# --- simulator ------------------------------------------------------------------------------


def test_simulator_is_deterministic_for_a_seed_and_has_every_pattern(world: World) -> None:
    again = simulate(SMALL, np.random.default_rng(SEED))
    pd.testing.assert_frame_equal(world.frame, again)
    other = simulate(SMALL, np.random.default_rng(SEED + 1))
    assert not other["amount_minor"].equals(world.frame["amount_minor"])
    counts = world.frame["pattern"].value_counts()
    for pattern in PATTERNS:
        assert counts.get(pattern, 0) >= 5, pattern
    assert set(world.frame.loc[world.frame["pattern"] != "", "is_fraud"]) == {True}
    assert world.frame["at_s"].is_monotonic_increasing
    assert world.frame["amount_minor"].min() >= 1


def test_time_split_keeps_the_label_delay_out_of_training(world: World) -> None:
    days = sim_day(world.frame["at_s"])
    assert days[world.train].max() == TRAIN_END_DAY - DELAY_DAYS - 1
    assert days[world.train].min() == 7
    assert days[world.test].min() == TRAIN_END_DAY
    assert not (world.train & world.test).any()


# --- features -------------------------------------------------------------------------------


def test_features_are_causal_a_future_change_leaves_earlier_rows_alone(world: World) -> None:
    payments = world.payments[:4000]
    labels = world.frame["is_fraud"].tolist()[:4000]
    before, _ = replay_features(payments, labels, label_delay_days=DELAY_DAYS)
    j = 3000
    changed = list(payments)
    p = changed[j]
    changed[j] = Payment(
        p.payment_id,
        p.at_s,
        p.payer_id,
        p.beneficiary_id,
        p.amount_minor * 1000,
        p.currency,
        p.channel,
        "new-device",
        "jewelry",
    )
    changed_labels = list(labels)
    changed_labels[j] = not labels[j]  # its label changes too
    after, _ = replay_features(changed, changed_labels, label_delay_days=DELAY_DAYS)
    pd.testing.assert_frame_equal(before.iloc[:j], after.iloc[:j])
    assert not before.iloc[j:].equals(after.iloc[j:])  # it and later rows do see it


def test_terminal_risk_counts_labels_only_after_the_delay() -> None:
    state = FeatureState(label_delay_days=DELAY_DAYS)
    day0 = [pay(i, T0 + i * 60, f"c{i}", "T1", 1_000) for i in range(20)]
    for p in day0:
        state.observe(p)
    for p in day0[:5]:
        state.add_label(p, True)  # delivered early on purpose
    early = feats(state, pay(100, T0 + 3 * 86_400, "c1", "T1", 1_000))
    assert early["terminal_risk_28d"] == 0.0
    late = feats(state, pay(101, T0 + 8 * 86_400, "c2", "T1", 1_000))
    assert late["terminal_risk_28d"] == pytest.approx(5 / 20)  # day 3 is inside the delay
    assert late["terminal_labelled_n_28d"] == 20
    assert fired(late)["risky_terminal"] == (
        "25% of labelled payments at this beneficiary in recent weeks were fraud"
    )


def test_a_party_idle_past_every_window_is_forgotten_and_pays_as_a_new_one(world: World) -> None:
    """The feature state kept every party it ever saw for the life of the process: an API
    worker's memory grew with every new payer and payee. A party idle past the longest window
    a feature reads (the beneficiary's fraud rate: 28 days, after the label delay), and a year
    (what has no window is kept for a payer paying once a quarter), is dropped; its next
    payment is scored exactly as a party never seen."""
    state = FeatureState(label_delay_days=DELAY_DAYS)
    assert state.idle_s == 366 * 86_400 > (DELAY_DAYS + 28 + 1) * 86_400
    history = [pay(i, T0 + i * 60, "c1", f"T{i % 3}", 1_000 + i) for i in range(20)]
    for p in history:
        state.observe(p)
    for p in history[:5]:
        state.add_label(p, True)
    last = history[-1].at_s
    # a second before the horizon it is all still there
    kept = dict(zip(FEATURES, state.features(pay(90, last + state.idle_s - 1, "c1", "T0", 900)),
                    strict=True))  # fmt: skip
    assert kept["payer_history_n"] == 20 and kept["new_beneficiary"] == 0
    state.observe(pay(91, last + state.idle_s, "c2", "X", 1_000))  # anyone's payment evicts
    assert set(state.entities) == {"c2", "X"}
    again = pay(92, last + state.idle_s + 60, "c1", "T0", 50_000, device="d9", mcc="travel")
    fresh = FeatureState(label_delay_days=DELAY_DAYS)
    assert state.features(again) == fresh.features(again)
    seen = FraudScreener(world.model, clock=FakeClock(), state=state).screen(again)
    never = FraudScreener(world.model, clock=FakeClock(), state=fresh).screen(again)
    assert (seen.score, seen.outcome, seen.reasons) == (never.score, never.outcome, never.reasons)


def test_the_feature_state_stays_bounded_over_many_parties() -> None:
    """Ten thousand payers, each paying once to a payee of its own, a payment every 1/500th of
    the idle horizon: the state holds the parties of the last 500 payments, not 20,000."""
    state = FeatureState()
    step = state.idle_s // 500
    most = 0
    for i in range(10_000):
        state.observe(pay(i, T0 + i * step, f"c{i}", f"T{i}", 1_000))
        most = max(most, len(state.entities))
    assert most <= 2 * 501


def _snapshot(state: FeatureState) -> dict:
    def window(w) -> tuple:  # type: ignore[no-untyped-def]
        return list(w.items), w.amount, dict(w.distinct or {})

    return {
        key: (list(e.amounts), list(e.payees.items()), list(e.devices.items()),
              list(e.mccs.items()), e.last_s, e.seen_s, dict(e.fraud_days),
              [window(w) for w in (*e.outbound, *e.inbound)])
        for key, e in state.entities.items()
    }  # fmt: skip


def test_a_payment_taken_back_leaves_the_state_as_it_was() -> None:
    """A screened payment that is not made after all (the scheme's transaction did not
    commit) is taken out of the state again: its velocity, amount, new payee, device and
    category go, and the oldest amount and device it pushed out come back."""
    state = FeatureState()
    for i in range(60):  # a full amount history (50) and device list (32)
        state.observe(pay(i, T0 + i * 60, "c1", f"T{i % 40}", 1_000 + i, device=f"d{i % 40}"))
    probe = pay(99, T0 + 3_700, "c1", "T-new", 5_000, device="d-new", mcc="travel")
    before, snapshot = state.features(probe), _snapshot(state)
    learned = state.learn(pay(98, T0 + 3_650, "c1", "T-new", 777, device="d-new", mcc="travel"))
    assert state.features(probe) != before and "T-new" in state.entities
    state.unlearn(learned)
    assert _snapshot(state) == snapshot
    assert state.features(probe) == before


# --- rules ----------------------------------------------------------------------------------


def test_velocity_and_amount_rules_fire_with_their_reason() -> None:
    state = FeatureState()
    for i in range(7):
        state.observe(pay(i, T0 + i * 120, "c1", f"T{i}", 1_000))
    row = feats(state, pay(7, T0 + 900, "c1", "T9", 10_000))
    assert fired(row) == {
        "velocity_burst": "7 earlier payments by this payer in the last hour",
        "amount_spike": "amount is 10x this payer's median payment",
    }
    calm = feats(state, pay(8, T0 + 3 * 86_400, "c1", "T1", 1_100))
    assert fired(calm) == {}


def test_takeover_rule_fires_on_a_large_transfer_from_a_new_device() -> None:
    state = FeatureState()
    for i in range(6):
        state.observe(pay(i, T0 + i * 86_400, "c1", "T1", 2_000))
    row = feats(state, pay(9, T0 + 7 * 86_400, "c1", "acct-x", 30_000, channel="transfer",
                           device="stolen", mcc="p2p"))  # fmt: skip
    hits = fired(row)
    assert hits["new_device_large_transfer"] == (
        "transfer of 15x the usual amount from a device first seen 0 h ago"
    )
    assert row["new_beneficiary"] == 1.0 and row["new_device"] == 1.0


def test_mule_rules_fire_on_fan_in_and_fast_cash_out() -> None:
    state = FeatureState()
    for i in range(9):
        state.observe(pay(i, T0 + i * 600, f"victim{i}", "mule", 5_000, channel="transfer",
                          mcc="p2p"))  # fmt: skip
    inbound = feats(state, pay(20, T0 + 6_000, "victim9", "mule", 5_000, channel="transfer",
                               mcc="p2p"))  # fmt: skip
    assert fired(inbound)["mule_fan_in"] == (
        "beneficiary received transfers from 9 distinct payers in 24 h"
    )
    out = feats(state, pay(21, T0 + 9_000, "mule", "EXT1", 45_000, channel="transfer",
                           device="dm", mcc="p2p"))  # fmt: skip
    assert fired(out)["fast_cash_out"] == "sends on 90% of what 10 payers sent in within 24 h"


def test_new_device_new_category_rule() -> None:
    state = FeatureState()
    for i in range(5):
        state.observe(pay(i, T0 + i * 86_400, "c1", "T1", 2_000))
    row = feats(state, pay(9, T0 + 6 * 86_400, "c1", "W1", 2_500, device="x", mcc="jewelry"))
    reason = "card used from a new device at a merchant category it never used"
    assert fired(row) == {"new_device_new_category": reason}


# --- model vs rules -------------------------------------------------------------------------


def test_model_and_combined_beat_rules_only_on_the_later_window(world: World) -> None:
    y = world.frame["is_fraud"].to_numpy()[world.test]
    days = sim_day(world.frame["at_s"])[world.test]
    scores = world.model.score_frame(world.features[world.test])
    ap = {name: average_precision_score(y, scores[name]) for name in ("rules", "model", "combined")}
    k = world.model.thresholds.reviews_per_day
    p_at_k = {name: precision_top_k_per_day(scores[name], y, days, k) for name in ap}
    assert y.sum() >= 200
    assert ap["combined"] >= ap["rules"] + 0.15, ap
    assert ap["model"] >= ap["rules"] + 0.15, ap
    assert p_at_k["combined"] >= p_at_k["rules"], p_at_k
    assert 0 < world.model.thresholds.review <= world.model.thresholds.block <= 1.0 + 1e-9


def test_model_round_trips_through_a_file(world: World, tmp_path: Path) -> None:
    path = world.model.save(tmp_path / "fraud.json")
    loaded = load_fraud_model(path)
    rows = world.features[world.test].iloc[:500]
    np.testing.assert_allclose(loaded.score_frame(rows)["combined"],
                               world.model.score_frame(rows)["combined"], rtol=1e-12)  # fmt: skip
    assert loaded.thresholds == world.model.thresholds
    assert loaded.version == world.model.version


def test_a_model_saved_over_another_is_never_half_written(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`entrepot risk train-fraud --out` wrote the file in place: a server starting while it
    was written read half a model, and a write that failed (a full disk) left neither. Now
    the new model is written beside the old, made durable, then renamed over it."""
    path = world.model.save(tmp_path / "fraud.json")
    before = path.read_bytes()

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        world.model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before  # the old model, whole
    assert [p.name for p in tmp_path.iterdir()] == ["fraud.json"]  # and nothing left beside
    assert load_fraud_model(world.model.save(path)).version == world.model.version


# --- decisions and the review queue ---------------------------------------------------------


def screen_test_window(world: World, n: int) -> tuple[FraudScreener, MemorySink, FakeClock, list]:
    sink, clock = MemorySink(), FakeClock()
    first_test = int(np.flatnonzero(world.test)[0])
    _, state = replay_features(world.payments[:first_test],
                               world.frame["is_fraud"].tolist()[:first_test])  # fmt: skip
    screener = FraudScreener(world.model, sink=sink, clock=clock, state=state)
    decisions = screener.screen_many(world.payments[first_test : first_test + n])
    return screener, sink, clock, decisions


def test_decisions_carry_at_most_four_reasons_and_are_logged(world: World) -> None:
    screener, sink, _, decisions = screen_test_window(world, 3_000)
    assert len(sink.decisions) == len(decisions) == 3_000
    outcomes = {d.outcome for d in decisions}
    assert {"approve", "review"} <= outcomes
    for d, logged in zip(decisions, sink.decisions, strict=True):
        assert len(d.reasons) <= REASONS_MAX
        assert logged.kind == "fraud" and logged.model_version == world.model.version
        assert logged.decision_id == d.decision_id and logged.outcome == d.outcome
        assert logged.reasons == d.reasons and logged.score == round(d.score, 6)
        assert logged.inputs["payment_id"] == d.payment_id
        assert len(logged.inputs["payer_digest"]) == 16
        if d.outcome != "approve":
            assert 1 <= len(d.reasons) <= REASONS_MAX
        else:
            assert d.reasons == ()
    assert not any("C0" in str(v) for dec in sink.decisions for v in dec.inputs.values())
    assert len(screener.queue) == sum(d.outcome == "review" for d in decisions)


def test_screener_features_match_the_replay(world: World) -> None:
    _, _, _, decisions = screen_test_window(world, 200)
    first_test = int(np.flatnonzero(world.test)[0])
    replayed = world.model.score_frame(world.features.iloc[first_test : first_test + 200])
    np.testing.assert_allclose([d.score for d in decisions], replayed["combined"], rtol=1e-9)


def test_review_queue_resolution_records_who_and_when(world: World) -> None:
    screener, sink, clock, _ = screen_test_window(world, 3_000)
    queue = screener.queue
    items = queue.list_open()
    assert items and [i.score for i in queue.list_open(by_score=True)] == sorted(
        (i.score for i in items), reverse=True)  # fmt: skip
    clock.set_ns((SIM_START_S + 40 * 86_400) * 1_000_000_000)
    n_before = len(sink.decisions)
    done = queue.resolve(items[0].decision_id, "fraud", "alice")
    assert done.status == "fraud" and done.resolved_by == "alice"
    assert done.resolved_at == "2026-02-10T00:00:00Z"
    record = sink.decisions[-1]
    assert len(sink.decisions) == n_before + 1
    assert record.decision_id == done.resolution_id
    assert record.outcome == "confirmed_fraud" and record.at == "2026-02-10T00:00:00Z"
    assert record.inputs == {"review_of": items[0].decision_id, "payment_id": items[0].payment_id,
                             "reviewer": "alice", "verdict": "fraud"}  # fmt: skip
    assert len(queue) == len(items) - 1
    with pytest.raises(ReviewAlreadyResolved):
        queue.resolve(items[0].decision_id, "legitimate", "bob")
    with pytest.raises(UnknownReviewItem):
        queue.resolve("nope", "legitimate", "bob")
    with pytest.raises(InvalidReview) as exc:
        queue.resolve(items[1].decision_id, "maybe", "bob")
    assert exc.value.field == "verdict"
    with pytest.raises(InvalidReview):
        queue.resolve(items[1].decision_id, "legitimate", " ")
    assert len(sink.decisions) == n_before + 1


# --- bad input ------------------------------------------------------------------------------

GOOD = {"payment_id": "p1", "at_s": T0, "payer_id": "c1", "beneficiary_id": "T1",
        "amount_minor": 1_000, "currency": "EUR", "channel": "card"}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"amount_minor": -5}, "amount_minor", "must be positive"),
        ({"amount_minor": 0}, "amount_minor", "must be positive"),
        ({"amount_minor": math.nan}, "amount_minor", "not a number"),
        ({"at_s": math.nan}, "at_s", "not a number"),
        ({"amount_minor": 10.5}, "amount_minor", "whole number"),
        ({"amount_minor": "10"}, "amount_minor", "must be an integer"),
        ({"colour": "red"}, "colour", "unknown payment field"),
        ({"channel": "cash"}, "channel", "channel must be one of"),
        ({"payer_id": ""}, "payer_id", "non-empty string"),
        ({"amount_minor": 10**400}, "amount_minor", "must be at most"),
        ({"amount_minor": 10**18 + 1}, "amount_minor", "must be at most"),
        ({"at_s": 10**400}, "at_s", "must be at most"),
        ({"amount_minor": -(10**5000)}, "amount_minor", "must be positive, got a number of"),
    ],
)
def test_bad_payment_input_is_rejected_with_the_field(change: dict, field: str,
                                                      words: str) -> None:  # fmt: skip
    with pytest.raises(InvalidPayment) as exc:
        make_payment({**GOOD, **change})
    assert exc.value.field == field and words in exc.value.detail
    assert exc.value.code == "risk_invalid_payment"


def test_missing_field_and_a_bad_batch_change_nothing(world: World) -> None:
    raw = dict(GOOD)
    del raw["currency"]
    with pytest.raises(InvalidPayment, match="missing payment field"):
        make_payment(raw)
    sink = MemorySink()
    screener = FraudScreener(world.model, sink=sink, clock=FakeClock())
    with pytest.raises(InvalidPayment):
        screener.screen_many([GOOD, {**GOOD, "payment_id": "p2", "amount_minor": -1}])
    assert sink.decisions == [] and screener.state.entities == {} and len(screener.queue) == 0
    decision = screener.screen(GOOD)
    assert decision.payment_id == "p1" and len(sink.decisions) == 1


def test_an_absurd_amount_is_refused_by_the_screener_and_changes_nothing(world: World) -> None:
    """An amount past what a float holds made scoring raise OverflowError (``log1p`` of the
    amount, the payer's amount statistics): not InvalidPayment, so a caller's 500, and the
    payments of the batch before it had been counted without a decision."""
    sink = MemorySink()
    screener = FraudScreener(world.model, sink=sink, clock=FakeClock())
    for huge in ({"amount_minor": 10**400}, {"at_s": 10**400}):
        with pytest.raises(InvalidPayment, match="must be at most"):
            screener.screen_many([GOOD, {**GOOD, "payment_id": "p2", **huge}])
    assert sink.decisions == [] and screener.state.entities == {} and len(screener.queue) == 0
    # the largest amount accepted gets a score, and the payer's next payments too
    top = screener.screen({**GOOD, "amount_minor": 10**18})
    after = screener.screen({**GOOD, "payment_id": "p3", "at_s": T0 + 60})
    assert 0.0 <= top.score <= 1.0 and 0.0 <= after.score <= 1.0 and len(sink.decisions) == 2


def test_a_payment_stamped_before_the_payers_last_one_is_screened() -> None:
    """The scheme stamps a transfer with the wall clock, which an NTP step can set back: a
    payer's next payment then came a second or more "before" its last one, and its features
    failed (``log1p`` of a negative gap: a math domain error), so every prepare of that payer
    was a 500 until the clock caught up. Out of order, the gap is no gap."""
    state = FeatureState()
    state.observe(pay(0, T0 + 100, "c1", "T1", 1_000, device="d1"))
    for back in (1, 60):
        row = feats(state, pay(back, T0 + 100 - back, "c1", "T2", 1_000, device="d1"))
        assert row["since_last_payment_log_s"] == 0.0
        assert row["device_age_h"] == 0.0
