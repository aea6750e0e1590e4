"""The ``entrepot`` command: ``db``, ``ledger``, ``payments``, ``serve``, ``demo``, ``bench``."""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, TaskID

from entrepot import __version__
from entrepot.config import load_settings
from entrepot.entrypoints.cli import city, db, ledger, lending, payments, risk, trade
from entrepot.entrypoints.cli.demo import demo
from entrepot.entrypoints.cli.output import CliError, emit_json, err, guard, out

app = typer.Typer(
    name="entrepot",
    help="Entrepot: an open platform for cross-border digital trade.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
bench_app = typer.Typer(help="Benchmarks; they print JSON with --json.", no_args_is_help=True)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"entrepot {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Settings come from ENTREPOT_* variables: ENTREPOT_HOME (default ./var) holds the
    embedded SQLite database; ENTREPOT_DATABASE_URL picks another (postgresql://...)."""


app.add_typer(db.app, name="db")
app.add_typer(ledger.app, name="ledger")
app.add_typer(payments.app, name="payments")
risk.app.add_typer(lending.app, name="lending")
app.add_typer(risk.app, name="risk")
app.add_typer(city.app, name="city")
app.add_typer(trade.app, name="trade")
app.add_typer(bench_app, name="bench")
app.command("serve")(payments.serve)
app.command("demo")(demo)


@bench_app.command("ledger")
@guard
def bench_ledger(
    accounts: Annotated[int, typer.Option("--accounts", min=2)] = 10_000,
    transfers: Annotated[int, typer.Option("--transfers", min=1)] = 1_000_000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=8_190)] = 8_190,
    postgres_url: Annotated[
        str | None,
        typer.Option(
            "--postgres-url", help="Benchmark PostgreSQL too (default: ENTREPOT_DATABASE_URL's)."
        ),
    ] = None,
    clients: Annotated[int, typer.Option("--clients", min=1, help="Concurrent clients.")] = 64,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Throughput of create_transfers against a naive baseline (see docs/benchmarks.md)."""
    try:
        from entrepot.ledger.bench import run_ledger_bench  # heavy and optional: load on use
    except ModuleNotFoundError as exc:
        if exc.name != "entrepot.ledger.bench":
            raise
        raise CliError(
            "the ledger benchmark (entrepot.ledger.bench) is not in this build"
        ) from None
    if postgres_url is None:
        configured = load_settings().database_url
        postgres_url = configured if configured.startswith("postgresql") else None
    with _bench_progress(enabled=not as_json) as progress:
        result: dict[str, Any] = run_ledger_bench(
            accounts=accounts,
            transfers=transfers,
            batch_size=batch_size,
            postgres_url=postgres_url,
            concurrency=clients,
            progress=progress or False,
        )
    if as_json:
        emit_json(result)
        return
    out().print_json(data=result)


@bench_app.command("payments")
@guard
def bench_payments(
    payments: Annotated[int, typer.Option("--payments", min=10)] = 2_000,
    clients: Annotated[int, typer.Option("--clients", min=1)] = 32,
    workers: Annotated[int, typer.Option("--workers", min=1)] = 2,
    bulk_batches: Annotated[int, typer.Option("--bulk-batches", min=1)] = 5,
    bulk_size: Annotated[int, typer.Option("--bulk-size", min=1, max=8_000)] = 8_000,
    postgres_url: Annotated[
        str | None,
        typer.Option("--postgres-url", help="Run on a new schema of this PostgreSQL database."),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Also draw the payments' latencies and rate over time to this PNG.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Pay-by-QR flows from concurrent clients against a loopback API server, and bulk
    transfers (see docs/benchmarks.md). SQLite by default."""
    from entrepot.sim.payments_bench import run_payments_bench

    with _bench_progress(enabled=not as_json) as progress:
        result = run_payments_bench(
            payments=payments,
            clients=clients,
            workers=workers,
            bulk_batches=bulk_batches,
            bulk_size=bulk_size,
            progress=progress,
            postgres_url=postgres_url,
            plot=plot,
        )
    if as_json:
        emit_json(result)
        return
    out().print_json(data=result)


@bench_app.command("trade")
@guard
def bench_trade(
    orders: Annotated[int, typer.Option("--orders", min=1)] = 1000,
    rounds: Annotated[int, typer.Option("--rounds", min=1)] = 5,
    demo_days: Annotated[int, typer.Option("--demo-days", min=1)] = 21,
    save: Annotated[
        Path | None, typer.Option("--save", help="Also write the JSON result to this file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Orders per second through quote + checkout into escrow, against a bare escrow and a
    payment in the same run, and the trade demo's simulated days per minute (see
    docs/benchmarks.md)."""
    from entrepot.sim.trade_bench import run_trade_bench

    with _bench_progress(enabled=not as_json) as progress:
        result = run_trade_bench(
            orders=orders, rounds=rounds, demo_days=demo_days, progress=progress
        )
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(json.dumps(result, indent=2) + "\n")
    if as_json:
        emit_json(result)
        return
    out().print_json(data=result)


@bench_app.command("risk")
@guard
def bench_risk(
    listed: Annotated[int, typer.Option("--listed", min=10)] = 1000,
    unlisted: Annotated[int, typer.Option("--unlisted", min=10)] = 1000,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    skip_credit: Annotated[bool, typer.Option("--skip-credit")] = False,
    skip_fraud: Annotated[bool, typer.Option("--skip-fraud")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Credit CV metrics, sanctions recall / false positives / screenings per second, fraud
    PR-AUC (see docs/benchmarks.md)."""
    from entrepot.risk.bench import run_risk_bench

    result = run_risk_bench(
        listed=listed, unlisted=unlisted, seed=seed, skip_credit=skip_credit, skip_fraud=skip_fraud
    )
    if as_json:
        emit_json(result)
        return
    out().print_json(data=result)


@contextmanager
def _bench_progress(*, enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A Rich progress bar per phase; the benchmark reports ``(label, done, total)``."""
    if not enabled:
        yield None
        return
    with Progress(*Progress.get_default_columns(), console=err(), transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def report(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        yield report
