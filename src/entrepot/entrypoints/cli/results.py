"""Reporting ledger result codes: exit 0 for ``ok``/``exists``, 1 for anything else."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer
from rich.table import Table

from entrepot.entrypoints.cli.ledger_input import Row, chain_batches
from entrepot.entrypoints.cli.output import EXIT_FAILURE, emit_json, error_line, out
from entrepot.ledger import Account, Transfer

SUCCESS = frozenset({"ok", "exists"})

E = TypeVar("E", Account, Transfer)


def is_success(result: str) -> bool:
    return str(result) in SUCCESS


def report_one(doc: dict[str, Any], as_json: bool, what: str) -> None:
    """Print one write's result; exit 1 unless it succeeded."""
    result = str(doc["result"])
    if as_json:
        emit_json(doc)
    else:
        out().print(f"{result}: {what}")
    if not is_success(result):
        error_line(f"{what}: {result}")
        raise typer.Exit(EXIT_FAILURE)


def submit_in_batches(
    records: Sequence[E], create: Callable[[Sequence[E]], Sequence[str]]
) -> list[str]:
    results: list[str] = []
    for start, stop in chain_batches([r.flags for r in records]):
        results.extend(str(r) for r in create(records[start:stop]))
    return results


def _report_rows(
    kind: str, rows: Sequence[Row], ids: Sequence[int], results: Sequence[str], as_json: bool
) -> None:
    counts = Counter(results)
    failed = [i for i, r in enumerate(results) if not is_success(r)]
    if as_json:
        emit_json(
            {
                "results": [
                    {"row": row.number, "id": str(id_), "result": result}
                    for row, id_, result in zip(rows, ids, results, strict=True)
                ],
                "counts": dict(sorted(counts.items())),
                "ok": not failed,
            }
        )
    else:
        table = Table(title=f"{kind.capitalize()}s", title_justify="left")
        table.add_column("row", justify="right")
        table.add_column("id", no_wrap=True)
        table.add_column("result")
        for row, id_, result in zip(rows, ids, results, strict=True):
            style = "" if is_success(result) else "red"
            table.add_row(str(row.number), str(id_), result, style=style)
        out().print(table)
        out().print(", ".join(f"{n} {code}" for code, n in sorted(counts.items())))
    if failed:
        first = failed[0]
        error_line(
            f"{len(failed)} of {len(results)} {kind}s failed "
            f"(first: row {rows[first].number}, {results[first]})"
        )
        raise typer.Exit(EXIT_FAILURE)


def report_account_results(
    rows: Sequence[Row], accounts: Sequence[Account], results: Sequence[str], as_json: bool
) -> None:
    _report_rows("account", rows, [a.id for a in accounts], results, as_json)


def report_transfer_results(
    rows: Sequence[Row], transfers: Sequence[Transfer], results: Sequence[str], as_json: bool
) -> None:
    _report_rows("transfer", rows, [t.id for t in transfers], results, as_json)
