"""The trade part of ``entrepot demo`` in Rich tables: volume per corridor, duties and taxes
per country, clearance times by lane, disputes, orders by state, settlement netting and the
invariant checks of :mod:`entrepot.sim.trade_demo`."""

from __future__ import annotations

from decimal import Decimal

from rich.console import Console
from rich.table import Table

from entrepot.entrypoints.cli.output import out
from entrepot.kernel.clock import ns_to_datetime
from entrepot.kernel.money import format_amount
from entrepot.sim.trade_report import TradeDemoReport


def usd(cents: int) -> str:
    return f"${Decimal(cents).scaleb(-2):,.2f}"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for n, column in enumerate(columns):
        table.add_column(column, justify="left" if n == 0 else "right")
    return table


def _corridors(console: Console, report: TradeDemoReport) -> None:
    table = _table("Trade volume per corridor (merchant -> buyer)", "corridor", "orders", "value")
    for corridor, figures in report.corridors.items():
        table.add_row(corridor, f"{figures['orders']:,}", usd(figures["value_usd_cents"]))
    table.add_row("total", f"{report.orders:,}", usd(report.value_usd_cents), style="bold")
    console.print(table)


def _duties(console: Console, report: TradeDemoReport) -> None:
    table = _table("Duties and taxes paid to customs", "country", "parcels", "collected", "USD")
    for country, d in report.duties.items():
        table.add_row(
            country,
            f"{d['parcels']:,}",
            format_amount(int(d["collected_minor"]), str(d["currency"])),
            usd(int(d["usd_cents"])),
        )
    console.print(table)


def _clearance(console: Console, report: TradeDemoReport) -> None:
    table = _table(
        "Import clearance (presented -> released), hours",
        "lane",
        "parcels",
        "estimate",
        "median",
        "p90",
    )
    for lane, c in report.clearance.items():
        table.add_row(
            lane,
            f"{c['parcels']:,}",
            ", ".join(str(h) for h in c["estimated_hours"]),
            f"{c['median_hours']:.1f}",
            f"{c['p90_hours']:.1f}",
        )
    console.print(table)


def _counts(console: Console, title: str, groups: dict[str, dict[str, int]]) -> None:
    table = _table(title, "", "count")
    for group, counts in groups.items():
        for name, n in counts.items():
            table.add_row(f"{group}: {name}", f"{n:,}")
    console.print(table)


def _settlement(console: Console, report: TradeDemoReport) -> None:
    s = report.settlement
    table = _table(
        f"Settlement window {s['window']} ({s['state']}, {s['positions']} positions)",
        "currency",
        "gross",
        "net",
        "liquidity saved",
        "gross/net",
    )
    for cur, f in s["currencies"].items():
        ratio = f["gross_to_net"]
        table.add_row(
            cur,
            format_amount(int(f["gross_minor"]), cur),
            format_amount(int(f["net_minor"]), cur),
            format_amount(int(f["liquidity_saved_minor"]), cur),
            "-" if ratio is None else f"{ratio}",
        )
    table.add_row(
        "USD equiv.",
        usd(s["gross_usd_cents"]),
        usd(s["net_usd_cents"]),
        usd(s["liquidity_saved_usd_cents"]),
        "",
        style="bold",
    )
    console.print(table)


def print_trade(report: TradeDemoReport, elapsed_s: float) -> None:
    console = out()
    net = report.network
    start = ns_to_datetime(report.started_ns).strftime("%Y-%m-%d %H:%M")
    console.print(
        f"Trade across six hubs: {net['merchants']} merchants ({net['items']} items), "
        f"{net['buyers']} buyers; {report.days} days from {start} UTC, seed {report.seed}: "
        f"{report.orders:,} orders worth {usd(report.value_usd_cents)} "
        f"({elapsed_s:.1f} s, {report.days / max(elapsed_s, 1e-9) * 60:,.0f} simulated days/min)"
    )
    _corridors(console, report)
    _duties(console, report)
    _clearance(console, report)
    _counts(
        console,
        "Orders and disputes",
        {
            "activity": report.activity,
            "orders": report.orders_by_state,
            "refused at quote/checkout": report.rejected,
            "deadlines acted": report.deadlines,
            "disputes by reason": report.disputes["by_reason"],
            "disputes ended": report.disputes["by_stage"],
            "dispute outcome": report.disputes["by_outcome"],
            "payouts": report.payouts,
        },
    )
    _settlement(console, report)
    checks = Table(title="Trade invariants", title_justify="left")
    checks.add_column("check")
    checks.add_column("", justify="center")
    checks.add_column("detail")
    for c in report.checks:
        checks.add_row(c.name, "OK" if c.ok else "FAILED", c.detail, style="" if c.ok else "red")
    console.print(checks)
    console.print("trade invariants OK" if report.ok else "trade invariants VIOLATED")
