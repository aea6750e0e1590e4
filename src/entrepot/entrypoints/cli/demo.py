"""``entrepot demo``: runs :mod:`entrepot.sim.ledger_demo` on its own database file and shows
the balances, the result codes and the invariant checks; then the payments demo and, on the
same database and clock, the trade demo (:mod:`entrepot.sim.trade_demo`)."""

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from entrepot.config import Settings, load_settings
from entrepot.entrypoints.cli.demo_trade import print_trade
from entrepot.entrypoints.cli.output import EXIT_FAILURE, emit_json, err, guard, open_app, out
from entrepot.kernel.clock import FakeClock
from entrepot.kernel.limits import BATCH_EVENTS_MAX
from entrepot.kernel.money import format_amount, get_currency
from entrepot.sim.ledger_demo import (
    BATCH_SIZE_DEFAULT,
    CURRENCIES,
    SEED_DEFAULT,
    TRANSFERS_DEFAULT,
    DemoReport,
    ProgressCallback,
    run_ledger_demo,
)
from entrepot.sim.payments_demo import PAYMENTS_DEFAULT, PaymentsDemoReport, run_payments_demo
from entrepot.sim.trade_demo import DAYS_DEFAULT as TRADE_DAYS_DEFAULT
from entrepot.sim.trade_demo import ORDERS_PER_DAY_DEFAULT, run_trade_demo
from entrepot.sim.trade_report import TradeDemoReport

DEMO_DATABASE = "demo.db"


def _fresh(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextmanager
def _progress(enabled: bool, label: str = "transfers") -> Iterator[ProgressCallback | None]:
    if not enabled:
        yield None
        return
    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err(), transient=True) as progress:
        task = progress.add_task("transfers", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


@guard
def demo(
    transfers: Annotated[
        int, typer.Option("--transfers", min=0, help="Transfers in the stream.")
    ] = TRANSFERS_DEFAULT,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same run.")] = SEED_DEFAULT,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", min=2, max=BATCH_EVENTS_MAX, help="Transfers per request."),
    ] = BATCH_SIZE_DEFAULT,
    keep: Annotated[
        bool, typer.Option("--keep", help="Reuse $ENTREPOT_HOME/demo.db instead of a fresh one.")
    ] = False,
    payments: Annotated[
        int, typer.Option("--payments", min=0, help="Cross-border pay-by-QR payments.")
    ] = PAYMENTS_DEFAULT,
    trade_days: Annotated[
        int, typer.Option("--trade-days", min=0, help="Simulated days of trade (0: skip).")
    ] = TRADE_DAYS_DEFAULT,
    trade_orders: Annotated[
        int, typer.Option("--trade-orders-per-day", min=1, help="Orders per simulated day.")
    ] = ORDERS_PER_DAY_DEFAULT,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """A small cross-border network (CNY, MYR, EUR, RWF, ETB, USD) and a seeded stream of
    transfers through the ledger, then balances and invariant checks. Uses its own database,
    $ENTREPOT_HOME/demo.db, fresh each run unless --keep. Then pay-by-QR payments and, on the
    same database ($ENTREPOT_HOME/payments-demo.db), days of trade through the six hubs."""
    settings = load_settings()
    path = (settings.home / DEMO_DATABASE).resolve()
    if not keep:
        _fresh(path)
    demo_settings = dataclasses.replace(settings, database_url=f"sqlite:///{path}")
    clock = FakeClock()
    started = time.perf_counter()
    with (
        open_app(demo_settings, clock=clock, migrate=True) as entrepot,
        _progress(not as_json) as on_progress,
    ):
        report = run_ledger_demo(
            entrepot.ledger,
            clock,
            transfers=transfers,
            seed=seed,
            batch_size=batch_size,
            on_progress=on_progress,
        )
    elapsed_s = time.perf_counter() - started
    pay_path = (settings.home / "payments-demo.db").resolve()
    _fresh(pay_path)
    pay_settings = dataclasses.replace(settings, database_url=f"sqlite:///{pay_path}")
    pay_clock = FakeClock()
    with (
        open_app(pay_settings, clock=pay_clock, migrate=True) as entrepot,
        _progress(not as_json) as on_progress,
    ):
        pay = run_payments_demo(
            entrepot.payments, pay_clock, payments=payments, seed=seed, on_progress=on_progress
        )
    trade, trade_s = None, 0.0
    if trade_days:
        started = time.perf_counter()
        trade = _run_trade(pay_settings, pay_clock, trade_days, trade_orders, seed, as_json)
        trade_s = time.perf_counter() - started
    if as_json:
        emit_json(
            {
                **report_json(report, path, elapsed_s),
                "payments": payments_json(pay),
                "trade": None if trade is None else trade.to_json(),  # replays exactly
            }
        )
    else:
        _print_report(report, path, elapsed_s)
        _print_payments(pay)
        if trade is not None:
            print_trade(trade, trade_s)
    if not report.ok or not pay.invariants_ok or (trade is not None and not trade.ok):
        raise typer.Exit(EXIT_FAILURE)


def _run_trade(
    settings: Settings, clock: FakeClock, days: int, orders_per_day: int, seed: int, quiet: bool
) -> TradeDemoReport:
    """The trade demo on the payments demo's database and clock: it reuses the payment
    members and settles the next window."""
    with (
        open_app(settings, clock=clock) as entrepot,
        _progress(not quiet, "trade: simulated hours") as on_progress,
    ):
        return run_trade_demo(
            entrepot.payments,
            entrepot.trade,
            clock,
            days=days,
            orders_per_day=orders_per_day,
            seed=seed,
            progress=on_progress,
        )


def payments_json(pay: PaymentsDemoReport) -> dict[str, Any]:
    window = pay.window
    return {
        "payments": pay.payments,
        "committed": pay.committed,
        "rejected": pay.rejected,
        "corridors": pay.corridors,
        "sample_qr": pay.sample_qr,
        "settlement_window": window.id if window else None,
        "settlement_report": window.report() if window else {},
        "net_positions": [
            {
                "participant": p.participant_id,
                "currency": p.currency,
                "sent": p.sent_minor,
                "received": p.received_minor,
                "net": p.net_minor,
            }
            for p in (window.positions if window else ())
        ],
        "invariants_ok": pay.invariants_ok,
    }


def _print_payments(pay: PaymentsDemoReport) -> None:
    console = out()
    console.print(
        "Pay-by-QR between members at the seed's six eWTP hubs (CN x2, MY, BE, RW, ET): "
        f"{pay.committed} of {pay.payments} committed; "
        f"rejected: {_counts_text(pay.rejected, none='none')}"
    )
    window = pay.window
    if window is None:
        return
    table = Table(
        title=f"Settlement window {window.id} ({window.state.value})", title_justify="left"
    )
    for column in ("currency", "gross", "net", "liquidity saved", "gross/net"):
        table.add_column(column, justify="right" if column != "currency" else "left")
    for cur, figures in window.report().items():
        table.add_row(
            cur,
            format_amount(int(figures["gross_minor"]), cur),
            format_amount(int(figures["net_minor"]), cur),
            format_amount(int(figures["liquidity_saved_minor"]), cur),
            "-" if figures["gross_to_net"] is None else f"{figures['gross_to_net']}",
        )
    console.print(table)
    console.print("payments invariants OK" if pay.invariants_ok else "payments invariants VIOLATED")


def _balance_rows(report: DemoReport, currency: str) -> list[dict[str, Any]]:
    cur = get_currency(currency)
    rows = []
    for d, a in report.accounts:
        if d.currency != currency:
            continue
        rows.append(
            {
                "id": str(a.id),
                "name": d.name,
                "kind": d.kind,
                "debits_posted": format_amount(a.debits_posted, cur),
                "credits_posted": format_amount(a.credits_posted, cur),
                "debits_pending": format_amount(a.debits_pending, cur),
                "credits_pending": format_amount(a.credits_pending, cur),
                "balance": format_amount(a.credits_posted - a.debits_posted, cur),
            }
        )
    return rows


def report_json(report: DemoReport, path: Path, elapsed_s: float) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "seed": report.seed,
        "database": str(path),
        "transfers": report.transfers,
        "batches": report.batches,
        "elapsed_s": round(elapsed_s, 3),
        "transfers_per_s": round(report.transfers / elapsed_s) if elapsed_s > 0 else None,
        "simulated_s": (report.finished_ns - report.started_ns) / 1e9,
        "setup_results": report.setup_results,
        "result_counts": report.result_counts,
        "expired": report.expired,
        "end_of_day_results": report.end_of_day_results,
        "currencies": {
            code: {
                "ledger": int(get_currency(code).numeric),
                "accounts": _balance_rows(report, code),
            }
            for code in CURRENCIES
        },
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks],
    }


def _print_report(report: DemoReport, path: Path, elapsed_s: float) -> None:
    console = out()
    for code in CURRENCIES:
        table = Table(title=f"{code} (ledger {get_currency(code).numeric})", title_justify="left")
        table.add_column("account")
        table.add_column("id", no_wrap=True)
        for column in ("debits posted", "credits posted", "pending", "balance"):
            table.add_column(column, justify="right", no_wrap=True)
        for row in _balance_rows(report, code):
            pending = f"{row['debits_pending']} / {row['credits_pending']}"
            table.add_row(
                row["name"],
                row["id"],
                row["debits_posted"],
                row["credits_posted"],
                pending,
                row["balance"],
            )
        console.print(table)
    counts = Table(title="Result codes of the stream", title_justify="left")
    counts.add_column("result")
    counts.add_column("count", justify="right")
    for result, n in report.result_counts.items():
        counts.add_row(result, f"{n:,}", style="" if result in ("ok", "exists") else "yellow")
    console.print(counts)
    console.print(
        f"{report.transfers:,} transfers in {report.batches} batches, {elapsed_s:.2f} s "
        f"({report.transfers / max(elapsed_s, 1e-9):,.0f}/s); {report.expired} expired, "
        f"end of day: {_counts_text(report.end_of_day_results)}; database {path}"
    )
    checks = Table(title="Invariants", title_justify="left")
    checks.add_column("check")
    checks.add_column("", justify="center")
    checks.add_column("detail")
    for c in report.checks:
        checks.add_row(c.name, "OK" if c.ok else "FAILED", c.detail, style="" if c.ok else "red")
    console.print(checks)
    console.print("invariants OK" if report.ok else "invariants VIOLATED")


def _counts_text(counts: dict[str, int], none: str = "nothing open") -> str:
    """Counts by code, or ``none`` when there are none (end of day: nothing left open)."""
    return ", ".join(f"{n} {code}" for code, n in counts.items()) or none
