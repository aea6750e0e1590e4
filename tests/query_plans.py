"""What SQLite's query planner makes of the statements a test ran: for tests that a path
reads only the rows it needs, not a table that grows with the platform's history."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from entrepot.storage.driver import Fast


def full_scans(engine: sa.Engine, statements: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    """(statement, plan step) for each step of SQLite's plans of ``statements`` that reads a
    whole table, or a whole index that is not partial (the ones named ``*_open*``,
    ``*_accepted``, ``*_held_*``, ``*_unpaid``)."""
    partial = ("_open", "_accepted", "_held_", "_unpaid")
    out = []
    with engine.connect() as conn:
        for statement, params in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
                continue
            for *_, step in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params):
                if step.startswith("SCAN ") and not any(p in step for p in partial):
                    out.append((statement, step))
    return out


@contextmanager
def recorded(engine: sa.Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements run on ``engine`` meanwhile, with their parameters: SQLAlchemy's and
    those run on the driver's cursor (``storage.driver.Fast``, the payment path's)."""
    statements: list[tuple[str, Any]] = []

    def seen(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        statements.append((statement, params[0] if many else params))

    fast_run = Fast._run

    def run(self: Fast, conn: sa.Connection, params: Any) -> Any:
        if conn.engine is engine:
            statements.append((self.sql[conn.dialect.name], tuple(params)))
        return fast_run(self, conn, params)

    sa.event.listen(engine, "before_cursor_execute", seen)
    Fast._run = run  # type: ignore[method-assign]
    try:
        yield statements
    finally:
        Fast._run = fast_run  # type: ignore[method-assign]
        sa.event.remove(engine, "before_cursor_execute", seen)
