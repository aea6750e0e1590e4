"""The trade demo on a temporary SQLite database: its report agrees with itself and with what
the payment scheme holds, its invariants hold, and the same seed gives the same report."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrepot.kernel.clock import FakeClock
from entrepot.ledger import Ledger
from entrepot.payments import PaymentScheme
from entrepot.sim.trade_demo import run_trade_demo
from entrepot.sim.trade_network import HUBS, hub_participant
from entrepot.sim.trade_report import TradeDemoReport, usd_cents
from entrepot.storage import upgrade
from entrepot.storage.engine import create_engine_from_url
from entrepot.trade import Order, TradeNetwork
from tests.e2e.test_cli import Cli

SEED = 20261129
#: Long enough for cross-border parcels to clear import customs (about 2-6 days), so duties
#: are paid; short enough to run in a few seconds.
DAYS = 5
ORDERS_PER_DAY = 16


def _run(path: Path, days: int) -> tuple[TradeDemoReport, TradeNetwork]:
    engine = create_engine_from_url(f"sqlite:///{path}")
    upgrade(engine)
    clock = FakeClock()
    scheme = PaymentScheme(engine, Ledger(engine, clock), clock)
    trade = TradeNetwork(engine, scheme, clock)
    report = run_trade_demo(
        scheme, trade, clock, days=days, orders_per_day=ORDERS_PER_DAY, seed=SEED
    )
    return report, trade


def _all_orders(trade: TradeNetwork) -> list[Order]:
    """Every order, read through the hub operators (each order passes through two hubs)."""
    seen: dict[str, Order] = {}
    for hub in HUBS:
        for order in trade.list_orders(hub_participant(hub.id), limit=1000):
            seen[order.id] = order
    return list(seen.values())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TradeDemoReport, TradeNetwork]]:
    report, trade = _run(tmp_path_factory.mktemp("trade-demo") / "demo.db", DAYS)
    yield report, trade
    trade.engine.dispose()


def test_invariants_hold(run: tuple[TradeDemoReport, TradeNetwork]) -> None:
    report, _ = run
    assert [c.name for c in report.checks if not c.ok] == []
    assert report.refused_steps == {}
    assert report.settlement["state"] == "SETTLED"


def test_corridors_add_up_to_the_orders_stored(run: tuple[TradeDemoReport, TradeNetwork]) -> None:
    report, trade = run
    orders = _all_orders(trade)
    assert report.orders == len(orders) > 0
    assert sum(c["orders"] for c in report.corridors.values()) == report.orders
    assert sum(c["value_usd_cents"] for c in report.corridors.values()) == report.value_usd_cents
    assert report.value_usd_cents == sum(usd_cents(o.total_minor, o.currency) for o in orders)
    assert sum(report.orders_by_state.values()) == report.orders
    assert report.orders_by_state == dict(Counter(o.state.value for o in orders))
    assert len(report.corridors) > 5  # cross-border and domestic between several countries


def test_duties_are_the_tax_escrows_released_to_customs(
    run: tuple[TradeDemoReport, TradeNetwork],
) -> None:
    report, trade = run
    released: Counter[str] = Counter()
    hubs = {h.id: h for h in trade.list_hubs()}
    for order in _all_orders(trade):
        if order.tax_escrow_id is None:
            continue
        customs = hubs[order.destination_hub_id].customs_authority
        escrow = trade.scheme.get_escrow(customs, order.tax_escrow_id)
        assert escrow.payee_participant == customs
        released[order.destination] += escrow.released_minor
    expected = {country: n for country, n in released.items() if n}
    assert expected, "no parcel cleared import customs: the run is too short to test duties"
    assert {c: d["collected_minor"] for c, d in report.duties.items()} == expected
    parcels = sum(int(d["parcels"]) for d in report.duties.values())
    assert parcels == sum(int(lane["parcels"]) for lane in report.clearance.values())


def test_disputes_are_counted_once(run: tuple[TradeDemoReport, TradeNetwork]) -> None:
    report, _ = run
    by_reason = sum(report.disputes["by_reason"].values())
    assert sum(report.disputes["by_stage"].values()) == by_reason
    resolved = sum(n for s, n in report.disputes["by_stage"].items() if not s.startswith("open"))
    assert sum(report.disputes["by_outcome"].values()) == resolved


def test_the_same_seed_gives_the_same_report(
    run: tuple[TradeDemoReport, TradeNetwork], tmp_path: Path
) -> None:
    report, _ = run
    again, trade = _run(tmp_path / "again.db", DAYS)
    trade.engine.dispose()
    assert again.to_json() == report.to_json()


def test_a_two_day_run_replays_exactly(tmp_path: Path) -> None:
    first, t1 = _run(tmp_path / "a.db", 2)
    second, t2 = _run(tmp_path / "b.db", 2)
    t1.engine.dispose()
    t2.engine.dispose()
    assert first.ok
    assert first.to_json() == second.to_json()


def test_bench_trade_from_the_cli(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    save = tmp_path / "results" / "trade.json"
    doc = cli.json("bench trade --orders 12 --rounds 2 --demo-days 1", "--save", str(save))
    assert doc["benchmark"] == "trade" and doc["workload"]["orders"] == 12
    assert doc["orders_per_s"] > 0 and doc["baseline_escrows_per_s"] > 0
    assert doc["demo"]["days"] == 1 and doc["demo"]["invariants_ok"] is True
    assert json.loads(save.read_text()) == doc
    assert "rounds" in cli.error("bench trade --orders 2 --rounds 3", code=2)
