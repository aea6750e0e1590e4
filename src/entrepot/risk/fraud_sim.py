"""A seeded payment simulator with fraud, in the style of the Worldline/ULB fraud-detection
handbook (customers and terminals on a 100 x 100 map, spending profiles, daily and weekly
rhythm), extended with account transfers and five fraud patterns:

- ``compromised_terminal``: every card payment at a terminal is fraud for a window of days;
- ``compromised_card``: stolen card details; a third of the card's payments are inflated and
  extra card-not-present payments appear at unusual merchant categories from a new device;
- ``account_takeover``: a new device, then quick large transfers to a new beneficiary (a mule);
- ``mule_inbound`` / ``mule_cash_out``: many small transfers from distinct payers into a mule
  account, then a fast transfer of most of it out to an external account;
- ``velocity_burst``: card testing, a burst of tiny online payments then a large one.

Labels arrive late: a payment's label is known ``label_delay_days`` after it happened. The
randomness is a ``numpy.random.Generator`` passed in, so a seed replays the same data exactly.
Amounts are integers in minor units (cents).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DAY_S = 86_400
HOUR_S = 3_600
SIM_START_S = 1_767_225_600  # 2026-01-01T00:00Z, a Thursday
PATTERNS = (
    "compromised_terminal",
    "compromised_card",
    "account_takeover",
    "mule_inbound",
    "mule_cash_out",
    "velocity_burst",
)
MCCS = ("grocery", "restaurant", "fuel", "retail", "pharmacy", "electronics", "travel", "jewelry")
MCC_P = (0.30, 0.22, 0.12, 0.16, 0.08, 0.05, 0.04, 0.03)
RISKY_MCCS = ("electronics", "jewelry", "travel", "online")
COLUMNS = (
    "payment_id",
    "at_s",
    "payer_id",
    "beneficiary_id",
    "amount_minor",
    "currency",
    "channel",
    "device_id",
    "mcc",
    "is_fraud",
    "pattern",
)


@dataclass(frozen=True, slots=True)
class SimConfig:
    n_customers: int = 2_000
    n_terminals: int = 400
    n_online_terminals: int = 40
    n_days: int = 63
    radius: float = 12.0
    mule_share: float = 0.02
    transfer_rate_per_day: float = 0.12
    terminal_compromise_per_terminal_day: float = 0.0004
    terminal_window_days: int = 14
    card_compromise_per_customer_day: float = 0.0008
    card_window_days: int = 14
    takeover_per_customer_day: float = 0.0002
    mule_campaigns_per_mule_day: float = 0.03
    burst_per_customer_day: float = 0.0002
    label_delay_days: int = 7
    currency: str = "EUR"

    def __post_init__(self) -> None:
        assert self.n_customers >= 20 and self.n_terminals >= 10, "population too small"
        assert self.n_days >= 1 and self.label_delay_days >= 0


@dataclass(frozen=True, slots=True)
class TimeSplit:
    """Row masks of a time split that respects the label delay.

    ``train``: labelled rows of the training period, after the feature burn-in and before the
    last ``delay`` days (whose labels are not yet known when the model is trained);
    ``test``: every row on or after ``train_end_day``.
    """

    train: np.ndarray
    test: np.ndarray
    train_days: tuple[int, int]
    test_days: tuple[int, int]


class _Rows:
    """Column buffers that become the transaction frame."""

    def __init__(self) -> None:
        self.cols: dict[str, list[object]] = {
            c: [] for c in COLUMNS if c not in ("payment_id", "currency")
        }

    def add(self, at_s: int, payer: str, bene: str, amount: float, channel: str, device: str,
            mcc: str, pattern: str = "") -> None:  # fmt: skip
        c = self.cols
        c["at_s"].append(int(at_s))
        c["payer_id"].append(payer)
        c["beneficiary_id"].append(bene)
        c["amount_minor"].append(max(1, int(amount)))
        c["channel"].append(channel)
        c["device_id"].append(device)
        c["mcc"].append(mcc)
        c["is_fraud"].append(bool(pattern))
        c["pattern"].append(pattern)


def simulate(config: SimConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Payments over ``config.n_days`` days, sorted by time, with ``is_fraud`` and ``pattern``."""
    cfg = config
    n_c, n_t = cfg.n_customers, cfg.n_terminals
    cust_xy = rng.uniform(0, 100, size=(n_c, 2))
    cust_mean = rng.uniform(500, 10_000, size=n_c)  # minor units
    cust_rate = rng.uniform(0.2, 4.0, size=n_c)
    cust_devices = rng.integers(1, 3, size=n_c)
    term_xy = rng.uniform(0, 100, size=(n_t, 2))
    term_mcc = rng.choice(len(MCCS), size=n_t, p=MCC_P)
    n_on = cfg.n_online_terminals
    customers = [f"C{i:06d}" for i in range(n_c)]
    terminals = [f"T{i:05d}" for i in range(n_t)] + [f"W{i:04d}" for i in range(n_on)]
    mccs = [MCCS[m] for m in term_mcc] + ["online"] * n_on
    mules = rng.choice(n_c, size=max(2, int(n_c * cfg.mule_share)), replace=False)
    near = _nearby_terminals(cust_xy, term_xy, cfg.radius)
    friends = [rng.choice(n_c, size=int(rng.integers(1, 4)), replace=False) for _ in range(n_c)]
    rows = _Rows()
    frauded_terminals = _compromise_windows(rng, n_t, cfg.terminal_compromise_per_terminal_day,
                                            cfg.terminal_window_days, cfg.n_days)  # fmt: skip
    frauded_cards = _compromise_windows(rng, n_c, cfg.card_compromise_per_customer_day,
                                        cfg.card_window_days, cfg.n_days)  # fmt: skip
    for c in range(n_c):
        _genuine_customer(rng, cfg, c, rows, customers, terminals, mccs, near[c], friends[c],
                          cust_mean[c], cust_rate[c], int(cust_devices[c]),
                          frauded_cards.get(c, []))  # fmt: skip
    _takeovers(rng, cfg, rows, customers, mules, cust_mean)
    _mule_campaigns(rng, cfg, rows, customers, mules)
    _bursts(rng, cfg, rows, customers, terminals[n_t:], cust_mean)
    frame = pd.DataFrame(rows.cols)
    frame["currency"] = cfg.currency
    _mark_terminals(frame, terminals, frauded_terminals)
    frame = frame.sort_values(["at_s", "payer_id"], kind="stable").reset_index(drop=True)
    frame.insert(0, "payment_id", [f"P{i:08d}" for i in range(len(frame))])
    return frame[list(COLUMNS)]


def _nearby_terminals(cust_xy: np.ndarray, term_xy: np.ndarray, radius: float) -> list[np.ndarray]:
    out = []
    for xy in cust_xy:
        dist = np.sqrt(((term_xy - xy) ** 2).sum(axis=1))
        idx = np.flatnonzero(dist < radius)
        out.append(idx if len(idx) >= 2 else np.argsort(dist)[:3])
    return out


def _compromise_windows(rng: np.random.Generator, n: int, rate: float, window_days: int,
                        n_days: int) -> dict[int, list[tuple[int, int]]]:  # fmt: skip
    """For each day, entities compromised from that day for ``window_days`` days."""
    out: dict[int, list[tuple[int, int]]] = {}
    for day in range(n_days):
        for e in rng.choice(n, size=int(rng.poisson(n * rate)), replace=False):
            out.setdefault(int(e), []).append((day * DAY_S, (day + window_days) * DAY_S))
    return out


def _day_times(
    rng: np.random.Generator, day: int, k: int, mean_h: float, sd_h: float
) -> np.ndarray:
    secs = np.clip(rng.normal(mean_h * HOUR_S, sd_h * HOUR_S, size=k), 0, DAY_S - 1)
    return (SIM_START_S + day * DAY_S + secs).astype(np.int64)


def _genuine_customer(rng: np.random.Generator, cfg: SimConfig, c: int, rows: _Rows,
                      customers: list[str], terminals: list[str], mccs: list[str],
                      near: np.ndarray, friends: np.ndarray, mean: float, rate: float,
                      n_devices: int, stolen: list[tuple[int, int]]) -> None:  # fmt: skip
    payer = customers[c]
    online = np.arange(cfg.n_terminals, len(terminals))
    for day in range(cfg.n_days):
        weekend = (day + 3) % 7 >= 5  # day 0 is a Thursday
        k = int(rng.poisson(rate * (1.25 if weekend else 1.0)))
        t_s = _day_times(rng, day, k, 13.0 if weekend else 12.5, 4.5)
        amounts = np.abs(rng.normal(mean, mean / 2, size=k))
        is_stolen = any(a <= day * DAY_S < b for a, b in stolen)
        for i in range(k):
            device = f"D{c}-{int(rng.integers(0, n_devices))}"
            term = int(rng.choice(near)) if rng.random() < 0.9 else int(rng.choice(online))
            pattern, amount = "", amounts[i]
            if is_stolen and rng.random() < 1 / 3:
                pattern, amount = "compromised_card", amount * 5
            rows.add(t_s[i], payer, terminals[term], amount, "card", device, mccs[term], pattern)
        if is_stolen and rng.random() < 0.5:  # card-not-present use of the stolen details
            for t in _day_times(rng, day, int(rng.integers(1, 3)), 3.0, 2.0):
                risky = [j for j, m in enumerate(mccs) if m in RISKY_MCCS]
                term = int(rng.choice(risky))
                rows.add(t, payer, terminals[term], mean * rng.uniform(2, 8), "card",
                         f"X{c}-{day}", mccs[term], "compromised_card")  # fmt: skip
        n_tr = int(rng.poisson(cfg.transfer_rate_per_day * (0.4 if weekend else 1.0)))
        for t in _day_times(rng, day, n_tr, 11.0, 3.0):
            rows.add(t, payer, customers[int(rng.choice(friends))], mean * rng.lognormal(0.8, 0.6),
                     "transfer", f"D{c}-0", "p2p")  # fmt: skip


def _takeovers(rng: np.random.Generator, cfg: SimConfig, rows: _Rows, customers: list[str],
               mules: np.ndarray, means: np.ndarray) -> None:  # fmt: skip
    n = int(rng.poisson(cfg.n_customers * cfg.takeover_per_customer_day * cfg.n_days))
    for _ in range(n):
        c = int(rng.integers(0, cfg.n_customers))
        mule = int(rng.choice(mules))
        if mule == c:
            continue
        t = SIM_START_S + int(rng.integers(0, cfg.n_days * DAY_S - 6 * HOUR_S))
        device = f"A{c}-{t}"
        total = 0
        for _k in range(int(rng.integers(2, 5))):
            t += int(rng.integers(60, 40 * 60))
            amount = int(means[c] * rng.uniform(8, 25))
            total += amount
            rows.add(t, customers[c], customers[mule], amount, "transfer", device, "p2p",
                     "account_takeover")  # fmt: skip
        _cash_out(rng, rows, customers[mule], mule, t, total)


def _cash_out(rng: np.random.Generator, rows: _Rows, mule_id: str, mule: int, t: int,
              total: int) -> None:  # fmt: skip
    t += int(rng.integers(10 * 60, 4 * HOUR_S))
    rows.add(t, mule_id, f"EXT{mule:06d}", total * rng.uniform(0.8, 0.95), "transfer",
             f"D{mule}-0", "p2p", "mule_cash_out")  # fmt: skip


def _mule_campaigns(rng: np.random.Generator, cfg: SimConfig, rows: _Rows, customers: list[str],
                    mules: np.ndarray) -> None:  # fmt: skip
    n = int(rng.poisson(len(mules) * cfg.mule_campaigns_per_mule_day * cfg.n_days))
    for _ in range(n):
        mule = int(rng.choice(mules))
        start = SIM_START_S + int(rng.integers(0, max(1, cfg.n_days - 2)) * DAY_S)
        victims = rng.choice(cfg.n_customers, size=int(rng.integers(10, 30)), replace=False)
        times = np.sort(start + rng.integers(0, 36 * HOUR_S, size=len(victims)))
        total = 0
        for v, t in zip(victims, times, strict=True):
            if int(v) == mule:
                continue
            amount = int(rng.uniform(2_000, 25_000))
            total += amount
            rows.add(int(t), customers[int(v)], customers[mule], amount, "transfer",
                     f"D{int(v)}-0", "p2p", "mule_inbound")  # fmt: skip
        _cash_out(rng, rows, customers[mule], mule, int(times[-1]), total)


def _bursts(rng: np.random.Generator, cfg: SimConfig, rows: _Rows, customers: list[str],
            online: list[str], means: np.ndarray) -> None:  # fmt: skip
    n = int(rng.poisson(cfg.n_customers * cfg.burst_per_customer_day * cfg.n_days))
    for _ in range(n):
        c = int(rng.integers(0, cfg.n_customers))
        t = SIM_START_S + int(rng.integers(0, cfg.n_days * DAY_S - 2 * HOUR_S))
        device = f"B{c}-{t}"
        for _k in range(int(rng.integers(8, 25))):
            t += int(rng.integers(5, 180))
            rows.add(t, customers[c], str(rng.choice(online)), int(rng.integers(50, 500)), "card",
                     device, "online", "velocity_burst")  # fmt: skip
        rows.add(t + 120, customers[c], str(rng.choice(online)), means[c] * rng.uniform(5, 15),
                 "card", device, "online", "velocity_burst")  # fmt: skip


def _mark_terminals(frame: pd.DataFrame, terminals: list[str],
                    windows: dict[int, list[tuple[int, int]]]) -> None:  # fmt: skip
    rel = frame["at_s"].to_numpy() - SIM_START_S
    is_card = (frame["channel"] == "card").to_numpy()
    for term, spans in windows.items():
        at_term = (frame["beneficiary_id"] == terminals[term]).to_numpy() & is_card
        for a, b in spans:
            hit = at_term & (rel >= a) & (rel < b) & ~frame["is_fraud"].to_numpy()
            frame.loc[hit, "is_fraud"] = True
            frame.loc[hit, "pattern"] = "compromised_terminal"


def sim_day(at_s: np.ndarray | pd.Series) -> np.ndarray:
    """Day index since the simulation start."""
    return (np.asarray(at_s) - SIM_START_S) // DAY_S


def time_split(frame: pd.DataFrame, *, train_end_day: int, delay_days: int,
               burn_in_days: int = 7) -> TimeSplit:  # fmt: skip
    """Train on labelled days ``[burn_in, train_end - delay)``, test on ``[train_end, end]``."""
    day = sim_day(frame["at_s"])
    last = int(day.max()) + 1 if len(day) else 0
    assert burn_in_days < train_end_day - delay_days < train_end_day < last, "bad split days"
    return TimeSplit(
        train=(day >= burn_in_days) & (day < train_end_day - delay_days),
        test=day >= train_end_day,
        train_days=(burn_in_days, train_end_day - delay_days),
        test_days=(train_end_day, last),
    )
