"""The trade benchmark, on SQLite with ``synchronous=FULL`` (the default engine).

1. Orders per second through the full service path: a landed-cost quote (buyer, items,
   merchant, hubs, stock, FX, tariffs) and checkout into escrow (stock reserved, goods and
   taxes escrows held through the payment scheme, one commit) for the six-hub network's
   buyers and merchants, three in four across a border.
2. Two baselines on the same database, in the same run, interleaved with the orders in
   rounds so that a noisy machine slows all three alike: the bare ``scheme.create_escrow``
   (one escrow, no trade work) and a pay-by-alias payment (quote + prepare + commit), one per
   order. The ratios are the figures to compare across machines.
3. The trade demo's speed: simulated days per minute of wall time.

Returns one JSON-able dict; ``entrepot bench trade`` and ``bench/trade.py`` print it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from entrepot.kernel.clock import FakeClock
from entrepot.ledger import Ledger
from entrepot.payments import PaymentScheme
from entrepot.sim.trade_catalogue import BUYERS, MERCHANTS, BuyerSpec, MerchantSpec
from entrepot.sim.trade_demo import (
    COUNTRY,
    CROSS_BORDER_SHARE,
    DAYS_DEFAULT,
    HUB_CURRENCY,
    ORDERS_PER_DAY_DEFAULT,
    populate_network,
    run_trade_demo,
)
from entrepot.sim.trade_network import hub_participant
from entrepot.storage import upgrade
from entrepot.storage.engine import create_engine_from_url
from entrepot.trade import TradeNetwork

Progress = Callable[[str, int, int], None]
ORDERS_DEFAULT = 1000
ROUNDS_DEFAULT = 5
DEMO_DAYS_DEFAULT = DAYS_DEFAULT  # the demo's own default: the speed `entrepot demo` runs at
SEED = 2026
STOCK_BENCH = 10**7
ESCROW_DEADLINE_S = 30 * 86_400


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def _services(url: str) -> tuple[PaymentScheme, TradeNetwork, FakeClock]:
    engine = create_engine_from_url(url)  # SQLite: WAL, synchronous=FULL
    upgrade(engine)
    clock = FakeClock()
    scheme = PaymentScheme(engine, Ledger(engine, clock), clock)
    return scheme, TradeNetwork(engine, scheme, clock), clock


def _workload(n: int) -> list[tuple[BuyerSpec, MerchantSpec, str]]:
    """Seeded (buyer, merchant, sku) triples, three in four across a border."""
    rnd = random.Random(SEED)
    out = []
    for _ in range(n):
        buyer = rnd.choice(BUYERS)
        abroad = rnd.random() < CROSS_BORDER_SHARE
        merchant = rnd.choice(
            [m for m in MERCHANTS if (COUNTRY[m.hub] != COUNTRY[buyer.hub]) == abroad]
        )
        out.append((buyer, merchant, rnd.choice(merchant.items).sku))
    return out


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class _Paths:
    """The three paths timed per order, each over its own slice of the workload."""

    def __init__(self, scheme: PaymentScheme, trade: TradeNetwork) -> None:
        self.scheme = scheme
        self.trade = trade
        self.seconds = {"order": 0.0, "escrow": 0.0, "payment": 0.0}
        self.order_latencies: list[float] = []

    def order(self, n: int, buyer: BuyerSpec, merchant: MerchantSpec, sku: str) -> None:
        t0 = time.perf_counter()
        self.trade.quote(f"buyer:{buyer.id}", f"bq{n}", [(sku, 1)])
        self.trade.checkout(f"buyer:{buyer.id}", f"bo{n}", f"bq{n}")
        took = time.perf_counter() - t0
        self.seconds["order"] += took
        self.order_latencies.append(took)

    def escrow(self, n: int, buyer: BuyerSpec, merchant: MerchantSpec, sku: str) -> None:
        amount = 10 ** (2 if HUB_CURRENCY[buyer.hub] != "RWF" else 4)
        t0 = time.perf_counter()
        self.scheme.create_escrow(
            buyer.partner,
            f"be{n}",
            hub_participant(merchant.hub),
            HUB_CURRENCY[buyer.hub],
            amount,
            "benchmark escrow",
            ESCROW_DEADLINE_S,
        )
        self.seconds["escrow"] += time.perf_counter() - t0

    def payment(self, n: int, buyer: BuyerSpec, merchant: MerchantSpec, sku: str) -> None:
        if merchant.partner == buyer.partner:  # on-us: booked by the bank, not the scheme
            merchant = next(m for m in MERCHANTS if m.partner != buyer.partner)
        amount = 10 ** (2 if HUB_CURRENCY[merchant.hub] != "RWF" else 4)
        t0 = time.perf_counter()
        self.scheme.create_quote(
            buyer.partner,
            f"bp{n}",
            "BUSINESS",
            merchant.registration,
            amount,
            "RECEIVE",
            HUB_CURRENCY[buyer.hub],
        )
        self.scheme.prepare_transfer(buyer.partner, f"bt{n}", f"bp{n}")
        self.scheme.commit_transfer(merchant.partner, f"bt{n}")
        self.seconds["payment"] += time.perf_counter() - t0


def _orders_part(url: str, orders: int, rounds: int, report: Progress) -> dict[str, Any]:
    scheme, trade, _clock = _services(url)
    populate_network(scheme, trade)
    for m in MERCHANTS:
        for it in m.items:
            trade.set_stock(f"merchant:{m.id}", it.sku, f"{m.hub}-fc1", STOCK_BENCH)
    paths = _Paths(scheme, trade)
    work = _workload(orders)
    per_round = -(-orders // rounds)
    done = 0
    for r in range(rounds):
        chunk = list(enumerate(work))[r * per_round : (r + 1) * per_round]
        for step in (paths.order, paths.escrow, paths.payment):
            for n, (buyer, merchant, sku) in chunk:
                step(n, buyer, merchant, sku)
        done += len(chunk)
        report("orders, escrows, payments", done, orders)
    trade.engine.dispose()
    rate = {k: orders / v for k, v in paths.seconds.items()}
    return {
        "orders_per_s": round(rate["order"], 1),
        "order_p50_ms": round(_percentile(paths.order_latencies, 0.5) * 1000, 2),
        "order_p99_ms": round(_percentile(paths.order_latencies, 0.99) * 1000, 2),
        "baseline_escrows_per_s": round(rate["escrow"], 1),
        "baseline_payments_per_s": round(rate["payment"], 1),
        "orders_vs_escrow": round(rate["order"] / rate["escrow"], 3),
        "orders_vs_payment": round(rate["order"] / rate["payment"], 3),
    }


def _demo_part(url: str, days: int, report: Progress) -> dict[str, Any]:
    scheme, trade, clock = _services(url)
    t0 = time.perf_counter()
    result = run_trade_demo(
        scheme, trade, clock, days=days, progress=lambda h, n: report("demo hours", h, n)
    )
    elapsed = time.perf_counter() - t0
    trade.engine.dispose()
    return {
        "days": days,
        "orders_per_day": ORDERS_PER_DAY_DEFAULT,
        "orders": result.orders,
        "elapsed_s": round(elapsed, 2),
        "simulated_days_per_min": round(days / elapsed * 60, 1),
        "invariants_ok": result.ok,
    }


def run_trade_bench(
    *,
    orders: int = ORDERS_DEFAULT,
    rounds: int = ROUNDS_DEFAULT,
    demo_days: int = DEMO_DAYS_DEFAULT,
    progress: Progress | None = None,
) -> dict[str, Any]:
    if orders < 1 or not 1 <= rounds <= orders or demo_days < 1:
        raise ValueError("need orders >= rounds >= 1 and demo_days >= 1")
    report = progress or (lambda *_: None)
    with tempfile.TemporaryDirectory(prefix="entrepot-tradebench-") as tmp:
        home = Path(tmp)
        paths = _orders_part(f"sqlite:///{home / 'orders.db'}", orders, rounds, report)
        demo = _demo_part(f"sqlite:///{home / 'demo.db'}", demo_days, report)
    return {
        "benchmark": "trade",
        "workload": {
            "orders": orders,
            "rounds": rounds,
            "lines_per_order": 1,
            "cross_border_share": CROSS_BORDER_SHARE,
            "database": "sqlite (WAL, synchronous=FULL)",
        },
        **paths,
        "demo": demo,
        "machine": machine_info(),
    }


__all__ = ["run_trade_bench"]
