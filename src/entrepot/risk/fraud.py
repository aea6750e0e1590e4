"""Real-time fraud screening of payments: causal features, named rules, a gradient-boosting
model, and decisions (approve / review / block) with at most four reasons.

Owns: the per-entity feature state (bounded rolling windows kept in memory, so one decision
is a handful of dictionary look-ups; a party idle past the longest window is dropped), the
rules, the fraud model with its thresholds, and the review queue.

Invariants:
- Features of a payment come only from payments screened before it and from labels already
  delivered; a terminal's (or account's) fraud rate counts only days older than the label delay.
- Every decision is appended to the decision log (kind ``fraud``) with the model version,
  score and reasons; payer and beneficiary ids are kept only as truncated SHA-256 digests.
- A decision carries at most four reasons: the strongest rule hits first, then the largest
  positive per-feature contributions of the model (LightGBM ``pred_contrib``).
- ``block`` needs strong combined evidence: a combined score above the block threshold, a
  model probability of at least ``BLOCK_MODEL_MIN`` and at least one rule hit. Thresholds are
  chosen on the training period (review: a review capacity share of payments; block: a
  precision target) and stored with the model.
- Bad input (a negative, non-integer or absurd amount (above ``AMOUNT_MINOR_MAX``), NaN,
  unknown or missing fields) raises InvalidPayment naming the field; nothing is recorded and
  no state changes.
- Training is seeded: the same data and seed give the same model and metrics.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from entrepot.kernel.clock import Clock, SystemClock, iso_utc
from entrepot.kernel.errors import ConfigurationError, Conflict, InvalidInput, NotFound
from entrepot.risk import decisions as decision_log
from entrepot.risk.decisions import Decision, DecisionSink, Pseudonyms, make_decision
from entrepot.risk.errors import TooLittleData

FRAUD_KIND = "fraud"
OUTCOMES = ("approve", "review", "block")
VERDICTS = ("fraud", "legitimate")
CHANNELS = ("card", "transfer")
REASONS_MAX = 4
RULE_REASONS_MAX = 2
BLOCK_MODEL_MIN = 0.8
BLOCK_PRECISION_MIN = 0.95
BLOCK_SHARE_OF_REVIEWS = 0.25  # automatic blocks take at most this share of the alerts
BLOCK_SUPPORT_MIN = 10
DAY_S = 86_400
HOUR_S = 3_600
WINDOWS_S = (HOUR_S, DAY_S, 7 * DAY_S)
WINDOW_ITEMS_MAX = 20_000
AMOUNT_HISTORY_MAX = 50
KNOWN_COUNTERPARTIES_MAX = 256
KNOWN_DEVICES_MAX = 32
RISK_WINDOWS_DAYS = (7, 28)
DEVICE_AGE_CAP_H = 720.0
ID_DIGEST_CHARS = 16
#: The largest amount screened (10 quadrillion units): its features, and the payer's amount
#: statistics after it, stay finite floats (an amount past what a float holds raised
#: OverflowError from ``log1p``). The scheme's transfers are at most 10**15 minor units.
AMOUNT_MINOR_MAX = 10**18
AT_S_MAX = 253_402_300_799  # 9999-12-31T23:59:59Z
#: The digests of a screener that logs nothing (its decisions are only returned).
_UNLOGGED = Pseudonyms.fresh()

FEATURES = (
    "amount_log",
    "amount_z",
    "amount_ratio_median",
    "payer_history_n",
    "payer_n_1h",
    "payer_n_24h",
    "payer_n_7d",
    "payer_amount_1h",
    "payer_amount_24h",
    "payer_amount_7d",
    "bene_n_1h",
    "bene_n_24h",
    "bene_n_7d",
    "bene_fanin_24h",
    "bene_fanin_7d",
    "new_beneficiary",
    "new_device",
    "device_age_h",
    "new_mcc",
    "hour_of_day",
    "is_weekend",
    "is_transfer",
    "terminal_risk_7d",
    "terminal_risk_28d",
    "terminal_labelled_n_28d",
    "payer_inbound_n_24h",
    "payer_inbound_fanin_24h",
    "outbound_to_inbound_24h",
    "since_last_payment_log_s",
)
_FEATURE_INDEX = {name: i for i, name in enumerate(FEATURES)}


class InvalidPayment(InvalidInput):
    """A payment to screen with a missing, unknown or malformed field."""

    code = "risk_invalid_payment"


class InvalidReview(InvalidInput):
    code = "risk_invalid_review"


class UnknownReviewItem(NotFound):
    code = "risk_unknown_review_item"


class ReviewAlreadyResolved(Conflict):
    code = "risk_review_already_resolved"


# --- payments -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Payment:
    """One payment to screen. ``at_s``: seconds since the Unix epoch, UTC."""

    payment_id: str
    at_s: int
    payer_id: str
    beneficiary_id: str
    amount_minor: int
    currency: str
    channel: str
    device_id: str = ""
    mcc: str = ""

    def __post_init__(self) -> None:
        for name in ("payment_id", "payer_id", "beneficiary_id", "currency"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise InvalidPayment(f"{name} must be a non-empty string, got {value!r}",
                                     field=name)  # fmt: skip
        for name in ("device_id", "mcc"):
            if not isinstance(getattr(self, name), str):
                raise InvalidPayment(f"{name} must be a string", field=name)
        for name in ("at_s", "amount_minor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise InvalidPayment(
                    f"{name} must be an integer, got {value!r}"
                    + (" (amounts are integers in minor units)" if name == "amount_minor" else ""),
                    field=name,
                )
        if self.amount_minor <= 0:
            raise InvalidPayment(f"amount_minor must be positive, got {_shown(self.amount_minor)}",
                                 field="amount_minor")  # fmt: skip
        if self.amount_minor > AMOUNT_MINOR_MAX:
            raise InvalidPayment(f"amount_minor must be at most {AMOUNT_MINOR_MAX:,}, got "
                                 f"{_shown(self.amount_minor)}", field="amount_minor")  # fmt: skip
        if self.at_s < 0:
            raise InvalidPayment(f"at_s must be a Unix time in seconds, got {_shown(self.at_s)}",
                                 field="at_s")  # fmt: skip
        if self.at_s > AT_S_MAX:
            raise InvalidPayment(f"at_s must be at most {AT_S_MAX} (the end of year 9999), "
                                 f"got {_shown(self.at_s)}", field="at_s")  # fmt: skip
        if self.channel not in CHANNELS:
            raise InvalidPayment(f"channel must be one of {CHANNELS}, got {self.channel!r}",
                                 field="channel")  # fmt: skip


def _shown(value: int) -> str:
    """An integer for an error message: a huge one by its size (printing an int of over 4,300
    digits raises ValueError)."""
    if abs(value) < 10**30:
        return str(value)
    return f"a number of about {abs(value).bit_length() * math.log10(2):.0f} digits"


PAYMENT_FIELDS = tuple(f.name for f in fields(Payment))
_REQUIRED_FIELDS = PAYMENT_FIELDS[:7]


def make_payment(raw: Mapping[str, Any]) -> Payment:
    """A Payment from a mapping (an API body, a CSV row); every problem raises InvalidPayment."""
    if not isinstance(raw, Mapping):
        raise InvalidPayment(f"a payment must be a mapping of fields, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(PAYMENT_FIELDS))
    if unknown:
        raise InvalidPayment(
            f"unknown payment field(s): {', '.join(map(str, unknown))}; "
            f"known: {', '.join(PAYMENT_FIELDS)}",
            field=str(unknown[0]),
        )
    missing = [name for name in _REQUIRED_FIELDS if name not in raw]
    if missing:
        raise InvalidPayment(f"missing payment field(s): {', '.join(missing)}", field=missing[0])
    values = dict(raw)
    for name in ("at_s", "amount_minor"):
        value = values[name]
        if isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidPayment(f"{name} is {value}, not a number", field=name)
            if value != int(value):
                raise InvalidPayment(f"{name} must be a whole number, got {value}", field=name)
            values[name] = int(value)
    return Payment(**values)


def payments_from_frame(frame: pd.DataFrame) -> list[Payment]:
    """Payments from a simulator frame (extra label columns are ignored)."""
    cols = [frame[name].tolist() for name in PAYMENT_FIELDS]
    return [Payment(*row) for row in zip(*cols, strict=True)]


# --- causal feature state -------------------------------------------------------------------


class _Window:
    """Count and amount over the last ``span_s`` seconds, optionally distinct counterparties."""

    __slots__ = ("amount", "distinct", "items", "span_s")

    def __init__(self, span_s: int, distinct: bool) -> None:
        self.span_s = span_s
        self.items: deque[tuple[int, int, str]] = deque()
        self.amount = 0
        self.distinct: dict[str, int] | None = {} if distinct else None

    def evict(self, now_s: int) -> None:
        items, cut = self.items, now_s - self.span_s
        while items and (items[0][0] <= cut or len(items) > WINDOW_ITEMS_MAX):
            self._drop(items.popleft())

    def _drop(self, item: tuple[int, int, str]) -> None:
        self.amount -= item[1]
        if self.distinct is not None:
            left = self.distinct[item[2]] - 1
            if left:
                self.distinct[item[2]] = left
            else:
                del self.distinct[item[2]]

    def add(self, at_s: int, amount: int, other: str) -> None:
        self.items.append((at_s, amount, other))
        self.amount += amount
        if self.distinct is not None:
            self.distinct[other] = self.distinct.get(other, 0) + 1

    def discard(self, at_s: int, amount: int, other: str) -> None:
        """Take an added item out again (the last one, unless others came since), if it is
        still in the window."""
        item, items = (at_s, amount, other), self.items
        if items and items[-1] == item:
            items.pop()
        else:
            try:
                items.remove(item)
            except ValueError:
                return  # out of the window already
        self._drop(item)


class _Entity:
    """What is remembered of one payer, card, terminal or account; every part is bounded."""

    __slots__ = ("amounts", "devices", "fraud_days", "inbound", "last_s", "mccs", "outbound",
                 "payees", "seen_s")  # fmt: skip

    def __init__(self, seen_s: int) -> None:
        self.outbound = [_Window(span, False) for span in WINDOWS_S]
        self.inbound = [_Window(span, span >= DAY_S) for span in WINDOWS_S]
        self.amounts: deque[int] = deque(maxlen=AMOUNT_HISTORY_MAX)
        self.payees: OrderedDict[str, int] = OrderedDict()
        self.devices: OrderedDict[str, int] = OrderedDict()
        self.mccs: OrderedDict[str, int] = OrderedDict()
        self.fraud_days: dict[int, list[int]] = {}  # day -> [payments seen, frauds labelled]
        self.last_s: int | None = None
        self.seen_s = seen_s  # its latest payment, as payer or beneficiary


#: What ``_remember`` did: whether it added the key, and the (key, first seen) it pushed out.
_Remembered = tuple[bool, tuple[str, int] | None]
_KNOWN: _Remembered = (False, None)
_ADDED: _Remembered = (True, None)


def _remember(known: OrderedDict[str, int], key: str, at_s: int, cap: int) -> _Remembered:
    if key not in known:
        known[key] = at_s
        if len(known) > cap:
            return True, known.popitem(last=False)
        return _ADDED
    known.move_to_end(key)
    return _KNOWN


def _unremember(known: OrderedDict[str, int], key: str, done: _Remembered) -> None:
    """Undo ``_remember`` (a key it only moved to the end stays there)."""
    added, pushed_out = done
    if not added or known.pop(key, None) is None or pushed_out is None:
        return
    if pushed_out[0] not in known:
        known[pushed_out[0]] = pushed_out[1]
        known.move_to_end(pushed_out[0], last=False)


@dataclass(slots=True)
class Learned:
    """What ``FeatureState.learn`` changed that taking the payment out again cannot work out
    from the payment alone (``FeatureState.unlearn``)."""

    payment: Payment
    payer: _Entity
    bene: _Entity
    new: tuple[bool, bool]  # whether learning it made the payer's, the beneficiary's state
    seen_s: tuple[int, int]  # their latest activity before it
    last_s: int | None  # the payer's last payment before it
    pushed_out: int | None  # the payer's oldest amount it pushed out of the history
    payee: _Remembered
    device: _Remembered
    mcc: _Remembered
    new_day: bool  # whether it opened the beneficiary's day bucket


#: A party idle this long is forgotten (``FeatureState``): a year and a day, so that what has
#: no window (a payer's known payees, devices, usual amounts) is kept for one paying once a
#: quarter or a year, and the state holds the parties active in the last year, not every one
#: ever seen. At the longest window alone (36 days), a monthly payer a few days late paid as a
#: stranger to its own payees.
FORGET_AFTER_DAYS = 366


class FeatureState:
    """Per-entity rolling state; ``observe`` returns a payment's features, then learns it.

    A party idle for ``idle_s`` (``FORGET_AFTER_DAYS``, past the longest window a feature
    reads: the beneficiary's fraud rate, ``RISK_WINDOWS_DAYS`` after the label delay) is a new
    party: every window of it is empty by then, and what has no window (its history of
    amounts, payees, devices and categories, the time since its last payment) is forgotten
    with it. Such parties are
    dropped as later payments come (the least recently active first): the state holds the
    parties active within ``idle_s``, where it held every party ever seen."""

    def __init__(self, label_delay_days: int = 7) -> None:
        if label_delay_days < 0:
            raise InvalidInput("label_delay_days must be >= 0", field="label_delay_days")
        self.label_delay_days = label_delay_days
        self.idle_s = max(WINDOWS_S[-1], (label_delay_days + max(RISK_WINDOWS_DAYS) + 1) * DAY_S,
                          FORGET_AFTER_DAYS * DAY_S)  # fmt: skip
        #: least recently active first
        self.entities: OrderedDict[str, _Entity] = OrderedDict()

    def _entity(self, key: str, now_s: int = 0) -> _Entity:
        """The party's state at ``now_s`` to learn into: a new one (the most recently active)
        if it had none or was idle for ``idle_s``."""
        ent = self.entities.get(key)
        if ent is None or ent.seen_s <= now_s - self.idle_s:
            self.entities.pop(key, None)
            ent = self.entities[key] = _Entity(now_s)
        return ent

    def _read(self, key: str, now_s: int) -> _Entity:
        """The party's state at ``now_s`` to read: an empty one, not kept, if it has none."""
        ent = self.entities.get(key)
        if ent is None or ent.seen_s <= now_s - self.idle_s:
            return _Entity(now_s)
        return ent

    def _evict(self, now_s: int) -> None:
        """Drop the parties idle for ``idle_s`` at the front (each once: amortised O(1))."""
        entities, cut = self.entities, now_s - self.idle_s
        while entities:
            key = next(iter(entities))
            if entities[key].seen_s > cut:
                break
            del entities[key]

    def features(self, p: Payment) -> list[float]:
        """The payment's features from the state as it is now; changes nothing visible."""
        now = p.at_s
        payer, bene = self._read(p.payer_id, now), self._read(p.beneficiary_id, now)
        for win in (*payer.outbound, *payer.inbound, *bene.inbound):
            win.evict(now)
        amounts = payer.amounts
        hist_n = len(amounts)
        if hist_n >= 3:
            mean = sum(amounts) / hist_n
            std = math.sqrt(sum((a - mean) ** 2 for a in amounts) / hist_n) or 1.0
            amount_z = (p.amount_minor - mean) / std
            ratio = p.amount_minor / max(sorted(amounts)[hist_n // 2], 1)
        else:
            amount_z, ratio = 0.0, 1.0
        if p.device_id:
            first_seen = payer.devices.get(p.device_id)
            new_device = float(first_seen is None)
            # (clamped at 0, as the gap below: a wall clock set back stamps a payment
            # before the payer's last one)
            device_age_h = 0.0 if first_seen is None else min(max(now - first_seen, 0) / HOUR_S,
                                                              DEVICE_AGE_CAP_H)  # fmt: skip
        else:  # no device reported (a scheme transfer): no device evidence either way
            new_device, device_age_h = 0.0, DEVICE_AGE_CAP_H
        out, inb, b_in = payer.outbound, payer.inbound, bene.inbound
        assert inb[1].distinct is not None and b_in[1].distinct is not None
        assert b_in[2].distinct is not None
        day, hour = divmod(now, DAY_S)
        risk7, _ = self._risk(bene, day, RISK_WINDOWS_DAYS[0])
        risk28, known28 = self._risk(bene, day, RISK_WINDOWS_DAYS[1])
        inbound_amount = inb[1].amount
        return [
            math.log1p(p.amount_minor / 100),
            amount_z,
            ratio,
            float(hist_n),
            float(len(out[0].items)),
            float(len(out[1].items)),
            float(len(out[2].items)),
            math.log1p(out[0].amount / 100),
            math.log1p(out[1].amount / 100),
            math.log1p(out[2].amount / 100),
            float(len(b_in[0].items)),
            float(len(b_in[1].items)),
            float(len(b_in[2].items)),
            float(len(b_in[1].distinct)),
            float(len(b_in[2].distinct)),
            float(p.beneficiary_id not in payer.payees),
            new_device,
            device_age_h,
            float(bool(p.mcc) and p.mcc not in payer.mccs),
            hour / HOUR_S,
            float((day + 4) % 7 >= 5),  # 1970-01-01 was a Thursday
            float(p.channel == "transfer"),
            risk7,
            risk28,
            float(known28),
            float(len(inb[1].items)),
            float(len(inb[1].distinct)),
            p.amount_minor / inbound_amount if inbound_amount else 0.0,
            math.log1p(max(now - payer.last_s, 0)) if payer.last_s is not None else 20.0,
        ]

    def _risk(self, ent: _Entity, day: int, window_days: int) -> tuple[float, int]:
        """Fraud rate over days ``[day - delay - window, day - delay)``: labels known by now."""
        end = day - self.label_delay_days
        seen = frauds = 0
        for d, (n, f) in ent.fraud_days.items():
            if end - window_days <= d < end:
                seen += n
                frauds += f
        return (frauds / seen if seen else 0.0), seen

    def learn(self, p: Payment) -> Learned:
        """Add a screened payment to the state of its payer and beneficiary; what it changed,
        for ``unlearn``."""
        now, amount = p.at_s, p.amount_minor
        had_payer, had_bene = self.entities.get(p.payer_id), self.entities.get(p.beneficiary_id)
        payer, bene = self._entity(p.payer_id, now), self._entity(p.beneficiary_id, now)
        for win in payer.outbound:
            win.add(now, amount, p.beneficiary_id)
        for win in bene.inbound:
            win.add(now, amount, p.payer_id)
        amounts = payer.amounts
        pushed_out = amounts[0] if len(amounts) == amounts.maxlen else None
        amounts.append(amount)
        payee = _remember(payer.payees, p.beneficiary_id, now, KNOWN_COUNTERPARTIES_MAX)
        device = _remember(payer.devices, p.device_id, now, KNOWN_DEVICES_MAX) if p.device_id \
            else _KNOWN  # fmt: skip
        mcc = _remember(payer.mccs, p.mcc, now, KNOWN_COUNTERPARTIES_MAX) if p.mcc else _KNOWN
        learned = Learned(p, payer, bene, (payer is not had_payer, bene is not had_bene),
                          (payer.seen_s, bene.seen_s), payer.last_s, pushed_out, payee, device,
                          mcc, False)  # fmt: skip
        payer.last_s = now
        day = now // DAY_S
        bucket = bene.fraud_days.get(day)
        if bucket is None:
            learned.new_day = True
            bucket = bene.fraud_days[day] = [0, 0]
            horizon = day - self.label_delay_days - max(RISK_WINDOWS_DAYS) - 1
            for old in [d for d in bene.fraud_days if d < horizon]:
                del bene.fraud_days[old]
        bucket[0] += 1
        for key, ent in ((p.payer_id, payer), (p.beneficiary_id, bene)):
            ent.seen_s = max(ent.seen_s, now)
            self.entities.move_to_end(key)
        self._evict(now)
        return learned

    def unlearn(self, learned: Learned) -> None:
        """Take a learned payment out again (it was not made after all). Exact when nothing
        was learned since for its payer and beneficiary; otherwise its window items, amount,
        counts and new payee, device and category still go, but an old amount or payee it
        pushed out may not come back as it was. A party it made is dropped again."""
        p, payer, bene = learned.payment, learned.payer, learned.bene
        now, amount = p.at_s, p.amount_minor
        if self.entities.get(p.payer_id) is payer:
            for win in payer.outbound:
                win.discard(now, amount, p.beneficiary_id)
            amounts = payer.amounts
            if amounts and amounts[-1] == amount:
                amounts.pop()
            elif amount in amounts:
                at = len(amounts) - 1 - list(reversed(amounts)).index(amount)
                del amounts[at]
            if learned.pushed_out is not None and len(amounts) < AMOUNT_HISTORY_MAX:
                amounts.appendleft(learned.pushed_out)
            _unremember(payer.payees, p.beneficiary_id, learned.payee)
            _unremember(payer.devices, p.device_id, learned.device)
            _unremember(payer.mccs, p.mcc, learned.mcc)
            if payer.last_s == now:
                payer.last_s = learned.last_s
        if self.entities.get(p.beneficiary_id) is bene:
            for win in bene.inbound:
                win.discard(now, amount, p.payer_id)
            day = now // DAY_S
            bucket = bene.fraud_days.get(day)
            if bucket is not None and bucket[0] > 0:
                bucket[0] -= 1
                if learned.new_day and bucket == [0, 0]:
                    del bene.fraud_days[day]
        for key, ent, new, seen_s in ((p.payer_id, payer, learned.new[0], learned.seen_s[0]),
                                      (p.beneficiary_id, bene, learned.new[1],
                                       learned.seen_s[1])):  # fmt: skip
            if self.entities.get(key) is not ent:
                continue  # dropped, or made anew, since
            if new and ent.last_s is None and not ent.fraud_days:
                del self.entities[key]  # (no payment of it stands: its windows are empty)
            elif ent.seen_s == now:
                ent.seen_s = seen_s

    def observe(self, p: Payment) -> list[float]:
        row = self.features(p)
        self.learn(p)
        return row

    def add_label(self, p: Payment, is_fraud: bool) -> None:
        """A label that arrived: counts toward the beneficiary's fraud rate once it is old enough
        (``_risk`` reads only days older than the delay, however early a label is delivered)."""
        if not is_fraud:
            return
        bene = self.entities.get(p.beneficiary_id)  # (dropped: that day counts no more)
        bucket = None if bene is None else bene.fraud_days.get(p.at_s // DAY_S)
        if bucket is not None:
            bucket[1] += 1


def replay_features(
    payments: Sequence[Payment],
    labels: Sequence[bool] | None = None,
    *,
    label_delay_days: int = 7,
    state: FeatureState | None = None,
) -> tuple[pd.DataFrame, FeatureState]:
    """Features of every payment in time order, each from the past only; a label is delivered
    ``label_delay_days`` after its payment. Returns the feature frame and the final state."""
    state = state or FeatureState(label_delay_days)
    rows: list[list[float]] = []
    delay_s = label_delay_days * DAY_S
    pending = 0
    for p in payments:
        if labels is not None:
            while pending < len(rows) and payments[pending].at_s + delay_s <= p.at_s:
                state.add_label(payments[pending], bool(labels[pending]))
                pending += 1
        rows.append(state.observe(p))
    frame = pd.DataFrame(np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES)),
                         columns=list(FEATURES))  # fmt: skip
    return frame, state


# --- rules ----------------------------------------------------------------------------------


def _f(row: Sequence[float], name: str) -> float:
    return row[_FEATURE_INDEX[name]]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    feature: str  # the feature the rule is mostly about, to avoid repeating it in the reasons
    fires: Callable[[Sequence[float]], bool]
    reason: Callable[[Sequence[float]], str]


RULES: tuple[Rule, ...] = (
    Rule("velocity_burst", "payer_n_1h",
         lambda r: _f(r, "payer_n_1h") >= 6,
         lambda r: f"{_f(r, 'payer_n_1h'):.0f} earlier payments by this payer in the last hour"),
    Rule("amount_spike", "amount_ratio_median",
         lambda r: _f(r, "payer_history_n") >= 5 and _f(r, "amount_ratio_median") >= 5,
         lambda r: f"amount is {_f(r, 'amount_ratio_median'):.0f}x this payer's median payment"),
    Rule("new_device_large_transfer", "device_age_h",
         lambda r: _f(r, "is_transfer") == 1 and _f(r, "device_age_h") < 24
         and _f(r, "amount_ratio_median") >= 3,
         lambda r: f"transfer of {_f(r, 'amount_ratio_median'):.0f}x the usual amount from a "
                   f"device first seen {_f(r, 'device_age_h'):.0f} h ago"),
    Rule("mule_fan_in", "bene_fanin_24h",
         lambda r: _f(r, "is_transfer") == 1 and _f(r, "bene_fanin_24h") >= 8,
         lambda r: f"beneficiary received transfers from {_f(r, 'bene_fanin_24h'):.0f} "
                   "distinct payers in 24 h"),
    Rule("fast_cash_out", "outbound_to_inbound_24h",
         lambda r: _f(r, "is_transfer") == 1 and _f(r, "payer_inbound_fanin_24h") >= 5
         and _f(r, "outbound_to_inbound_24h") >= 0.5,
         lambda r: f"sends on {100 * _f(r, 'outbound_to_inbound_24h'):.0f}% of what "
                   f"{_f(r, 'payer_inbound_fanin_24h'):.0f} payers sent in within 24 h"),
    Rule("risky_terminal", "terminal_risk_28d",
         lambda r: _f(r, "terminal_risk_28d") >= 0.1 and _f(r, "terminal_labelled_n_28d") >= 10,
         lambda r: f"{100 * _f(r, 'terminal_risk_28d'):.0f}% of labelled payments at this "
                   "beneficiary in recent weeks were fraud"),
    Rule("new_device_new_category", "new_mcc",
         lambda r: _f(r, "is_transfer") == 0 and _f(r, "new_device") == 1
         and _f(r, "new_mcc") == 1 and _f(r, "payer_history_n") >= 5,
         lambda r: "card used from a new device at a merchant category it never used"),
)  # fmt: skip
RULE_NAMES = tuple(rule.name for rule in RULES)

_DESCRIBE: dict[str, Callable[[float], str]] = {
    "amount_log": lambda v: f"amount of {math.expm1(v):,.2f}",
    "amount_z": lambda v: f"amount {v:.1f} standard deviations from the payer's usual",
    "amount_ratio_median": lambda v: f"amount {v:.1f}x the payer's median",
    "payer_history_n": lambda v: f"payer has only {v:.0f} earlier payments on record",
    "payer_n_1h": lambda v: f"{v:.0f} payments by the payer in the last hour",
    "payer_n_24h": lambda v: f"{v:.0f} payments by the payer in the last 24 h",
    "payer_n_7d": lambda v: f"{v:.0f} payments by the payer in the last 7 days",
    "payer_amount_1h": lambda v: f"payer spent {math.expm1(v):,.0f} in the last hour",
    "payer_amount_24h": lambda v: f"payer spent {math.expm1(v):,.0f} in the last 24 h",
    "payer_amount_7d": lambda v: f"payer spent {math.expm1(v):,.0f} in the last 7 days",
    "bene_n_1h": lambda v: f"beneficiary received {v:.0f} payments in the last hour",
    "bene_n_24h": lambda v: f"beneficiary received {v:.0f} payments in the last 24 h",
    "bene_n_7d": lambda v: f"beneficiary received {v:.0f} payments in the last 7 days",
    "bene_fanin_24h": lambda v: f"beneficiary paid by {v:.0f} distinct payers in 24 h",
    "bene_fanin_7d": lambda v: f"beneficiary paid by {v:.0f} distinct payers in 7 days",
    "new_beneficiary": lambda v: "first payment to this beneficiary" if v else "known beneficiary",
    "new_device": lambda v: "first payment from this device" if v else "known device",
    "device_age_h": lambda v: f"device first seen {v:.0f} h ago",
    "new_mcc": lambda v: "merchant category new for this payer" if v else "usual category",
    "hour_of_day": lambda v: f"paid at {int(v):02d}:{int(v % 1 * 60):02d} UTC",
    "is_weekend": lambda v: "weekend payment" if v else "weekday payment",
    "is_transfer": lambda v: "account transfer" if v else "card payment",
    "terminal_risk_7d": lambda v: f"{100 * v:.0f}% fraud at this beneficiary a week before",
    "terminal_risk_28d": lambda v: f"{100 * v:.0f}% fraud at this beneficiary in recent weeks",
    "terminal_labelled_n_28d": lambda v: f"{v:.0f} labelled payments at this beneficiary",
    "payer_inbound_n_24h": lambda v: f"payer received {v:.0f} transfers in the last 24 h",
    "payer_inbound_fanin_24h": lambda v: f"payer received from {v:.0f} distinct payers in 24 h",
    "outbound_to_inbound_24h": lambda v: f"sends {100 * v:.0f}% of its last-24 h inflow",
    "since_last_payment_log_s": lambda v: f"{math.expm1(v):,.0f} s since the payer's last payment",
}
assert set(_DESCRIBE) == set(FEATURES)


def rule_hits(row: Sequence[float]) -> list[int]:
    return [i for i, rule in enumerate(RULES) if rule.fires(row)]


def rule_hit_matrix(features: pd.DataFrame) -> np.ndarray:
    """Boolean matrix (payments x RULES)."""
    rows = features.to_numpy(dtype=np.float64)
    out = np.zeros((len(rows), len(RULES)), dtype=bool)
    for i, row in enumerate(rows):
        for j in rule_hits(row):
            out[i, j] = True
    return out


def noisy_or(probabilities: np.ndarray) -> np.ndarray:
    """Row-wise ``1 - prod(1 - p)``."""
    return np.asarray(1.0 - np.prod(1.0 - probabilities, axis=1), dtype=np.float64)


# --- the model ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Thresholds:
    review: float
    block: float
    review_share: float
    reviews_per_day: int


@dataclass(slots=True)
class FraudModel:
    """A trained booster with its rule precisions and decision thresholds."""

    version: str
    booster: lgb.Booster
    pos_weight: float
    rule_precision: dict[str, float]
    thresholds: Thresholds
    stack: tuple[float, ...] = ()  # intercept, weight of logit(model p), one weight per rule
    trained_on: dict[str, Any] = field(default_factory=dict)

    def model_probability(self, rows: np.ndarray) -> np.ndarray:
        """Fraud probability, undoing the class weighting (odds divided by ``pos_weight``)."""
        p = np.asarray(self.booster.predict(rows, num_threads=1), dtype=np.float64)
        return p / (p + (1.0 - p) * self.pos_weight)

    def rule_scores(self, hits: np.ndarray) -> np.ndarray:
        prec = np.array([self.rule_precision[name] for name in RULE_NAMES])
        return noisy_or(np.where(hits, prec, 0.0))

    def combined(self, model_p: np.ndarray, hits: np.ndarray) -> np.ndarray:
        """Stacked score: a logistic regression on the model's logit and the rule hits, fitted
        on the held-out calibration days."""
        w = np.asarray(self.stack, dtype=np.float64)
        z = w[0] + w[1] * _logit(model_p) + hits.astype(np.float64) @ w[2:]
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    def score_frame(self, features: pd.DataFrame) -> dict[str, np.ndarray]:
        """Rules-only, model and combined scores of a feature frame."""
        hits = rule_hit_matrix(features)
        model_p = self.model_probability(features[list(FEATURES)].to_numpy(dtype=np.float64))
        rule_p = self.rule_scores(hits)
        return {"rules": rule_p, "model": model_p, "combined": self.combined(model_p, hits),
                "hits": hits}  # fmt: skip

    def save(self, path: Path | str) -> Path:
        out = Path(path)
        blob = {
            "version": self.version,
            "pos_weight": self.pos_weight,
            "rule_precision": self.rule_precision,
            "stack": list(self.stack),
            "thresholds": {f.name: getattr(self.thresholds, f.name) for f in fields(Thresholds)},
            "trained_on": self.trained_on,
            "features": list(FEATURES),
            "booster": self.booster.model_to_string(),
        }
        # Written beside it, made durable, then renamed over it: a server starting (or a
        # screening reloading) while the model is saved reads the old model or the new one,
        # never half of one, and a save that fails leaves the old one as it was.
        tmp = out.with_name(f".{out.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(json.dumps(blob))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        with suppress(OSError):  # the rename durable too, where the system lets a folder sync
            decision_log.sync_directory(out.parent)
        return out


def load_fraud_model(path: Path | str) -> FraudModel:
    try:
        blob = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read a fraud model from {path}: {exc}", field="path") from exc
    if blob.get("features") != list(FEATURES):
        raise InvalidInput(f"the fraud model at {path} was trained on other features",
                           field="path")  # fmt: skip
    return FraudModel(
        version=str(blob["version"]),
        booster=lgb.Booster(model_str=blob["booster"]),
        pos_weight=float(blob["pos_weight"]),
        rule_precision={str(k): float(v) for k, v in blob["rule_precision"].items()},
        thresholds=Thresholds(**blob["thresholds"]),
        stack=tuple(float(v) for v in blob["stack"]),
        trained_on=dict(blob.get("trained_on", {})),
    )


def rule_precision(hits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Each rule's fraud rate among its hits, shrunk toward 0.1 when it fired rarely."""
    y = labels.astype(bool)
    out = {}
    for j, name in enumerate(RULE_NAMES):
        fired = hits[:, j]
        out[name] = float((y[fired].sum() + 0.1) / (fired.sum() + 1.0))
    return out


def train_fraud_model(features: pd.DataFrame, labels: Sequence[bool] | np.ndarray,
                      days: Sequence[int] | np.ndarray, *, seed: int = 42,
                      review_share: float = 0.01, calibration_share: float = 0.25,
                      rounds: int = 200) -> FraudModel:  # fmt: skip
    """Fit on the earlier labelled days, choose thresholds on the later ones.

    ``days``: each row's day index; the last ``calibration_share`` of the distinct days are held
    out to pick the review threshold (the top ``review_share`` of payments) and the block
    threshold (lowest combined score with precision >= BLOCK_PRECISION_MIN over at least
    BLOCK_SUPPORT_MIN payments that also meet the other block conditions)."""
    y = np.asarray(labels, dtype=bool)
    day = np.asarray(days)
    if len(y) != len(features) or len(day) != len(features):
        raise InvalidInput("features, labels and days differ in length", field="labels")
    if not 0 < review_share < 0.5:
        raise InvalidInput("review_share must be in (0, 0.5)", field="review_share")
    distinct = np.unique(day)
    if len(distinct) < 4 or y.sum() < 20:
        raise TooLittleData(f"need at least 4 days and 20 frauds to train, got {len(distinct)} "
                            f"days and {int(y.sum())} frauds", field="labels")  # fmt: skip
    cut = distinct[int(len(distinct) * (1 - calibration_share))]
    fit, cal = day < cut, day >= cut
    X = features[list(FEATURES)].to_numpy(dtype=np.float64)
    hits = rule_hit_matrix(features)
    pos_weight = float(min(max((~y[fit]).sum() / max(y[fit].sum(), 1), 1.0), 100.0))
    params = {
        "objective": "binary", "learning_rate": 0.05, "num_leaves": 15,
        "min_child_samples": 40, "feature_fraction": 0.9, "bagging_fraction": 0.8,
        "bagging_freq": 1, "lambda_l2": 1.0, "scale_pos_weight": pos_weight, "seed": seed,
        "deterministic": True, "force_col_wise": True, "num_threads": 2, "verbose": -1,
    }  # fmt: skip
    booster = lgb.train(params, lgb.Dataset(X[fit], y[fit].astype(int)), num_boost_round=rounds)
    model = FraudModel(
        version=f"fraud-lgbm-s{seed}-d{int(distinct[0])}-{int(distinct[-1])}",
        booster=booster,
        pos_weight=pos_weight,
        rule_precision=rule_precision(hits[fit], y[fit]),
        thresholds=Thresholds(review=1.0, block=1.0, review_share=review_share, reviews_per_day=0),
        trained_on={
            "rows": int(fit.sum()),
            "frauds": int(y[fit].sum()),
            "days": [int(distinct[0]), int(cut) - 1],
            "calibration_days": [int(cut), int(distinct[-1])],
            "seed": seed,
        },
    )
    model.stack = _fit_stack(model.model_probability(X[cal]), hits[cal], y[cal], seed)
    model.thresholds = _choose_thresholds(model, X[cal], hits[cal], y[cal], day[cal], review_share)
    return model


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-9, 1 - 1e-9)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


def _fit_stack(model_p: np.ndarray, hits: np.ndarray, y: np.ndarray,
               seed: int) -> tuple[float, ...]:  # fmt: skip
    if y.sum() < 5 or y.all():
        return (0.0, 1.0, *([0.0] * len(RULES)))  # too few held-out frauds: the model alone
    Z = np.column_stack([_logit(model_p), hits.astype(np.float64)])
    lr = LogisticRegression(C=1.0, max_iter=1000, random_state=seed).fit(Z, y.astype(int))
    return (float(lr.intercept_[0]), *(float(c) for c in lr.coef_[0]))


def _choose_thresholds(model: FraudModel, X: np.ndarray, hits: np.ndarray, y: np.ndarray,
                       day: np.ndarray, review_share: float) -> Thresholds:  # fmt: skip
    model_p = model.model_probability(X)
    score = model.combined(model_p, hits)
    review = float(np.quantile(score, 1.0 - review_share))
    eligible = (model_p >= BLOCK_MODEL_MIN) & hits.any(axis=1)
    order = np.argsort(-score[eligible], kind="stable")
    s, lab = score[eligible][order], y[eligible][order]
    block = 1.0 + 1e-9  # never, unless the data shows a safe level
    if len(s):
        precision = np.cumsum(lab) / np.arange(1, len(lab) + 1)
        ok = np.flatnonzero((precision >= BLOCK_PRECISION_MIN)
                            & (np.arange(1, len(lab) + 1) >= BLOCK_SUPPORT_MIN))  # fmt: skip
        if len(ok):
            cap = float(np.quantile(score, 1.0 - review_share * BLOCK_SHARE_OF_REVIEWS))
            block = max(float(s[ok[-1]]), review, cap)
    per_day = len(score) / max(len(np.unique(day)), 1)
    return Thresholds(review=review, block=block, review_share=review_share,
                      reviews_per_day=max(1, round(per_day * review_share)))  # fmt: skip


# --- metrics --------------------------------------------------------------------------------


def precision_top_k_per_day(scores: np.ndarray, labels: np.ndarray, days: np.ndarray,
                            k: int) -> float:  # fmt: skip
    """Mean over days of the fraud share among that day's ``k`` highest scores."""
    out = []
    for d in np.unique(days):
        mask = days == d
        top = np.argsort(-scores[mask], kind="stable")[:k]
        out.append(float(labels[mask][top].sum()) / k)
    return float(np.mean(out)) if out else 0.0


# --- screening ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FraudDecision:
    decision_id: str
    payment_id: str
    outcome: str
    score: float
    model_score: float
    rule_score: float
    rules: tuple[str, ...]
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class ReviewItem:
    decision_id: str
    payment_id: str
    score: float
    reasons: tuple[str, ...]
    queued_at: str
    status: str = "open"  # open | fraud | legitimate
    resolved_by: str | None = None
    resolved_at: str | None = None
    resolution_id: str | None = None


def check_fraud_kind(sink: DecisionSink | None) -> None:
    if sink is not None and FRAUD_KIND not in decision_log.DECISION_KINDS:
        raise ConfigurationError(
            f"the decision log does not accept kind {FRAUD_KIND!r}; add it to "
            "entrepot.risk.decisions.DECISION_KINDS", field="sink")  # fmt: skip


def review_decision(
    review_of: str,
    payment_id: str,
    verdict: str,
    reviewer: str,
    score: float | None,
    clock: Clock | None,
    by: Mapping[str, str] | None = None,
) -> Decision:
    """A person's verdict (``fraud`` or ``legitimate``) on the payment a fraud decision held,
    as the decision log records it, linked to that decision; ``by``: who at ``reviewer``
    decided, where the review names them (``reviewer_id``, ``credential``)."""
    named = (by or {}).get("reviewer_id")
    return make_decision(
        FRAUD_KIND, model_version=f"review:{reviewer}",
        outcome="confirmed_fraud" if verdict == "fraud" else "legitimate", score=score,
        reasons=(f"resolved as {verdict} by {reviewer}" + (f" ({named})" if named else ""),),
        inputs={"review_of": review_of, "payment_id": payment_id, "reviewer": reviewer,
                "verdict": verdict, **(by or {})},
        clock=clock,
    )  # fmt: skip


class ReviewQueue:
    """Payments a person must look at, oldest first; resolving one is logged with who and when."""

    def __init__(self, sink: DecisionSink | None = None, clock: Clock | None = None,
                 history_max: int = 10_000) -> None:  # fmt: skip
        check_fraud_kind(sink)
        self.sink = sink
        self.clock = clock or SystemClock()
        self._open: OrderedDict[str, ReviewItem] = OrderedDict()
        self.resolved: deque[ReviewItem] = deque(maxlen=history_max)

    def __len__(self) -> int:
        return len(self._open)

    def add(self, decision: FraudDecision) -> ReviewItem:
        at = iso_utc(self.clock.now_ns())
        item = ReviewItem(decision.decision_id, decision.payment_id, decision.score,
                          decision.reasons, at)  # fmt: skip
        self._open[decision.decision_id] = item
        return item

    def discard(self, decision_id: str) -> None:
        """Drop an open item no one can decide any more (what it held has expired)."""
        self._open.pop(decision_id, None)

    def list_open(self, *, by_score: bool = False, limit: int | None = None) -> list[ReviewItem]:
        items = list(self._open.values())
        if by_score:
            items.sort(key=lambda it: -it.score)
        return items[:limit] if limit is not None else items

    def open_item(self, decision_id: str) -> ReviewItem | None:
        """The open review of that decision, if this queue holds one."""
        return self._open.get(decision_id)

    def was_resolved(self, decision_id: str) -> bool:
        """Whether this queue resolved that decision's review (within its history)."""
        return any(done.decision_id == decision_id for done in self.resolved)

    def resolve(
        self, decision_id: str, verdict: str, reviewer: str, *, logged: Decision | None = None
    ) -> ReviewItem:
        """Resolve the open review of ``decision_id`` with a person's verdict, logged. With
        ``logged``, the verdict as the caller logs it (the payment scheme appends it once
        the review's transaction has committed): recorded as the resolution, not appended."""
        if verdict not in VERDICTS:
            raise InvalidReview(f"verdict must be one of {VERDICTS}, got {verdict!r}",
                                field="verdict")  # fmt: skip
        if not isinstance(reviewer, str) or not reviewer.strip():
            raise InvalidReview("reviewer must name the person who decided", field="reviewer")
        item = self._open.get(decision_id)
        if item is None:
            if self.was_resolved(decision_id):
                raise ReviewAlreadyResolved(f"review {decision_id} is already resolved",
                                            field="decision_id")  # fmt: skip
            raise UnknownReviewItem(f"no open review for decision {decision_id!r}",
                                    field="decision_id")  # fmt: skip
        if logged is None:
            logged = review_decision(
                decision_id, item.payment_id, verdict, reviewer.strip(), item.score, self.clock
            )
            if self.sink is not None:
                self.sink.append([logged])
        done = replace(item, status=verdict, resolved_by=reviewer.strip(), resolved_at=logged.at,
                       resolution_id=logged.decision_id)  # fmt: skip
        del self._open[decision_id]
        self.resolved.append(done)
        return done


class FraudScreener:
    """Screens payments one batch at a time (one payment is a batch of one)."""

    def __init__(self, model: FraudModel, *, sink: DecisionSink | None = None,
                 clock: Clock | None = None, state: FeatureState | None = None,
                 queue: ReviewQueue | None = None,
                 label_delay_days: int = 7) -> None:  # fmt: skip
        check_fraud_kind(sink)
        self.model = model
        self.sink = sink
        self.clock = clock or SystemClock()
        self.state = state or FeatureState(label_delay_days)
        self.queue = queue if queue is not None else ReviewQueue(sink, self.clock)
        self._rule_prec = np.array([model.rule_precision[name] for name in RULE_NAMES])
        self._stack = np.asarray(model.stack, dtype=np.float64)

    def screen(self, payment: Payment | Mapping[str, Any]) -> FraudDecision:
        return self.screen_many([payment])[0]

    def screen_many(self, payments: Iterable[Payment | Mapping[str, Any]]) -> list[FraudDecision]:
        return self._screen_many(payments)[0]

    def screen_revocably(
        self, payment: Payment | Mapping[str, Any]
    ) -> tuple[FraudDecision, Callable[[], None]]:
        """:meth:`screen`, and how to take back what the payment taught the feature state
        and its review item, should it not be made after all (a transfer whose transaction
        did not commit). Its decision stays logged."""
        (decision,), (learned,) = self._screen_many([payment])

        def take_back() -> None:
            self.state.unlearn(learned)
            self.queue.discard(decision.decision_id)

        return decision, take_back

    def _screen_many(
        self, payments: Iterable[Payment | Mapping[str, Any]]
    ) -> tuple[list[FraudDecision], list[Learned]]:
        batch = [p if isinstance(p, Payment) else make_payment(p) for p in payments]
        rows: list[list[float]] = []
        learned: list[Learned] = []
        for p in batch:  # (``observe``, keeping what each learned)
            rows.append(self.state.features(p))
            learned.append(self.state.learn(p))
        if not rows:
            return [], []
        try:
            return self._decide(batch, rows), learned
        except BaseException:  # (the log refused them, say): screened, not learned
            for one in reversed(learned):
                self.state.unlearn(one)
            raise

    def _decide(self, batch: list[Payment], rows: list[list[float]]) -> list[FraudDecision]:
        X = np.asarray(rows, dtype=np.float64)
        model_p = self.model.model_probability(X)
        hits = [rule_hits(row) for row in rows]
        out: list[FraudDecision] = []
        logged: list[Decision] = []
        th = self.model.thresholds
        pseudonyms = _UNLOGGED if self.sink is None else self.sink.pseudonyms
        for i, p in enumerate(batch):
            rule_p = 1.0 - float(np.prod(1.0 - self._rule_prec[hits[i]])) if hits[i] else 0.0
            q = min(max(float(model_p[i]), 1e-9), 1 - 1e-9)
            z = self._stack[0] + self._stack[1] * math.log(q / (1 - q))
            for j in hits[i]:
                z += self._stack[2 + j]
            score = 1.0 / (1.0 + math.exp(-z))
            if score >= th.block and model_p[i] >= BLOCK_MODEL_MIN and hits[i]:
                outcome = "block"
            elif score >= th.review:
                outcome = "review"
            else:
                outcome = "approve"
            reasons = () if outcome == "approve" else self._reasons(X[i], rows[i], hits[i])
            decision = make_decision(
                FRAUD_KIND, model_version=self.model.version, outcome=outcome,
                score=round(score, 6), reasons=reasons, inputs=_minimised(p, hits[i], pseudonyms),
                clock=self.clock,
            )  # fmt: skip
            logged.append(decision)
            result = FraudDecision(decision.decision_id, p.payment_id, outcome, score,
                                   float(model_p[i]), rule_p,
                                   tuple(RULES[j].name for j in hits[i]), reasons)  # fmt: skip
            if outcome == "review":
                self.queue.add(result)
            out.append(result)
        if self.sink is not None:
            self.sink.append(logged)
        return out

    def _reasons(self, x: np.ndarray, row: Sequence[float], hits: list[int]) -> tuple[str, ...]:
        by_strength = sorted(hits, key=lambda j: -self._rule_prec[j])[:RULE_REASONS_MAX]
        reasons = [RULES[j].reason(row) for j in by_strength]
        covered = {RULES[j].feature for j in by_strength}
        contrib = self.model.booster.predict(x.reshape(1, -1), pred_contrib=True, num_threads=1)
        values = np.asarray(contrib, dtype=np.float64)[0, : len(FEATURES)]
        for j in np.argsort(-values, kind="stable"):
            if len(reasons) >= REASONS_MAX or values[j] <= 0:
                break
            name = FEATURES[j]
            if name not in covered:
                reasons.append(_DESCRIBE[name](row[j]))
                covered.add(name)
        return tuple(reasons)

    def add_label(self, payment: Payment, is_fraud: bool) -> None:
        self.state.add_label(payment, is_fraud)


def _minimised(p: Payment, hits: list[int], pseudonyms: Pseudonyms) -> dict[str, Any]:
    return {
        "payment_id": p.payment_id,
        "payer_digest": pseudonyms.digest(p.payer_id)[:ID_DIGEST_CHARS],
        "beneficiary_digest": pseudonyms.digest(p.beneficiary_id)[:ID_DIGEST_CHARS],
        "amount_minor": p.amount_minor,
        "currency": p.currency,
        "channel": p.channel,
        "rules": [RULES[j].name for j in hits],
    }
