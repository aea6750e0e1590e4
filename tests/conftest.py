"""Shared fixtures. Storage-touching tests run on SQLite and, when ENTREPOT_TEST_POSTGRES_URL
is set (CI sets it), on PostgreSQL too: each test gets its own fresh schema there."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from entrepot.config import Settings, normalise_database_url
from entrepot.kernel.clock import FakeClock
from entrepot.ledger import Ledger
from entrepot.storage import upgrade
from entrepot.storage.engine import create_engine_from_url

POSTGRES_URL = os.environ.get("ENTREPOT_TEST_POSTGRES_URL", "").strip()
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]


def postgres_schema_url(schema: str) -> str:
    """A URL whose connections use ``schema`` as their search path."""
    url = normalise_database_url(POSTGRES_URL)
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def create_postgres_schema() -> str:
    schema = "t_" + uuid.uuid4().hex[:16]
    admin = sa.create_engine(normalise_database_url(POSTGRES_URL))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    admin.dispose()
    return schema


def drop_postgres_schema(schema: str) -> None:
    admin = sa.create_engine(normalise_database_url(POSTGRES_URL))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'entrepot.db'}"
        return
    schema = create_postgres_schema()
    try:
        yield postgres_schema_url(schema)
    finally:
        drop_postgres_schema(schema)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, database_url=database_url)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    eng = create_engine_from_url(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(engine: sa.Engine, clock: FakeClock) -> Ledger:
    ledger = Ledger(engine, clock)
    for number, currency in ((978, "EUR"), (840, "USD"), (156, "CNY"), (646, "RWF")):
        ledger.define_ledger(number, currency)
    return ledger
