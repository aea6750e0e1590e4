"""Printing trade documents: the API's JSON bodies as they are (``--json``), or Rich tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from rich.table import Table

from entrepot.entrypoints.cli.output import emit_json, out

MONEY_KEYS = frozenset({"amount", "currency", "minor"})


def doc(model: BaseModel) -> dict[str, Any]:
    """A response body as JSON-ready data (the same document the HTTP API sends)."""
    return model.model_dump(mode="json")


def fmt(value: Any) -> str:
    """One cell: money as ``450.00 RWF``, lists one item a line, nested objects as k=v."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        if set(value) == MONEY_KEYS:
            return f"{value['amount']} {value['currency']}"
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "\n".join(fmt(v) for v in value) or "-"
    return str(value)


def _is_rows(value: Any) -> bool:
    """A list of objects (not of amounts) gets a table of its own."""
    return (
        isinstance(value, list)
        and bool(value)
        and isinstance(value[0], Mapping)
        and set(value[0]) != MONEY_KEYS
    )


def record_table(title: str, document: Mapping[str, Any]) -> Table:
    table = Table("field", "value", title=title, title_justify="left", show_header=False)
    for key, value in document.items():
        if not _is_rows(value):
            table.add_row(key, fmt(value))
    return table


def rows_table(title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Table:
    table = Table(*columns, title=title, title_justify="left")
    for row in rows:
        table.add_row(*(fmt(row.get(c)) for c in columns))
    return table


def show_record(document: dict[str, Any], as_json: bool, title: str) -> None:
    """One object: a field/value table, then a table for each list of objects in it."""
    if as_json:
        emit_json(document)
        return
    console = out()
    console.print(record_table(title, document))
    for key, value in document.items():
        if _is_rows(value):
            console.print(rows_table(f"{title}: {key}", value, list(value[0])))


def show_rows(
    document: dict[str, Any], key: str, as_json: bool, title: str, columns: Sequence[str]
) -> None:
    """A list under ``key``: one row per object with the named columns."""
    if as_json:
        emit_json(document)
        return
    rows = document[key]
    if not rows:
        out().print(f"{title}: none")
        return
    out().print(rows_table(title, rows, columns))
