"""Statements on the DB-API cursor under a SQLAlchemy connection's transaction (``Fast``):
for paths where SQLAlchemy's per-statement execution costs more than the query."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from entrepot.storage.engine import driver_connection


class Fast:
    """A statement run on the driver's cursor, under the connection's SQLAlchemy transaction
    (begun if it is not, so it never runs beside it). SQLAlchemy's execution costs about
    50 µs a statement, the driver's 2-3 µs: the payment path's statements, the ledger's meta
    read and group commit's savepoints run here, most of them under the write lock. Written
    once with ``?`` placeholders; PostgreSQL gets ``%s``. Rows come back as named tuples with
    the columns' names, as SQLAlchemy's rows read (plain tuples without ``columns``)."""

    def __init__(self, sql: str, columns: Sequence[str] = ()) -> None:
        self.sql = {"sqlite": sql, "postgresql": sql.replace("?", "%s")}
        self.row: Any = namedtuple("Row", columns) if columns else None

    def _run(self, conn: Connection, params: Sequence[Any]) -> Any:
        if not conn.in_transaction():
            conn.begin()
        cursor = driver_connection(conn).cursor()
        cursor.execute(self.sql[conn.dialect.name], params)
        return cursor

    def execute(self, conn: Connection, params: Sequence[Any] = ()) -> int:
        cursor = self._run(conn, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def first(self, conn: Connection, params: Sequence[Any] = ()) -> Any:
        cursor = self._run(conn, params)
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        if row is None or self.row is None:
            return row
        return self.row._make(row)

    def all(self, conn: Connection, params: Sequence[Any] = ()) -> list[Any]:
        cursor = self._run(conn, params)
        try:
            rows = cursor.fetchall()
        finally:
            cursor.close()
        return rows if self.row is None else [self.row._make(r) for r in rows]


def select_all(table: sa.Table, where: str) -> Fast:
    """``SELECT`` of every column of ``table``, rows named as its columns."""
    columns = list(table.c.keys())
    return Fast(f"SELECT {', '.join(columns)} FROM {table.name} WHERE {where}", columns)


class FastInsert(Fast):
    """``INSERT`` of every column, from a dict of their values."""

    def __init__(self, table: sa.Table) -> None:
        self.columns = tuple(table.c.keys())
        marks = ", ".join("?" for _ in self.columns)
        super().__init__(f"INSERT INTO {table.name} ({', '.join(self.columns)}) VALUES ({marks})")

    def insert(self, conn: Connection, values: dict[str, Any]) -> None:
        self.execute(conn, tuple(values[c] for c in self.columns))
