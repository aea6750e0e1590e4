"""Shared fixtures. Storage-touching tests run on SQLite and, when ENTREPOT_TEST_POSTGRES_URL
is set (CI sets it), on PostgreSQL too: each test gets its own fresh schema there."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from entrepot.config import Settings, normalise_database_url
from entrepot.kernel.clock import FakeClock
from entrepot.ledger import Ledger
from entrepot.payments import FeeSchedule, PaymentScheme
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


@pytest.fixture
def scheme(engine: sa.Engine, clock: FakeClock) -> PaymentScheme:
    """Six-country scheme: a Rwandan wallet, a Malaysian bank, a Chinese bank, an FX provider."""
    return build_scheme(engine, clock)


def build_scheme(engine: sa.Engine, clock: FakeClock) -> PaymentScheme:
    ledger = Ledger(engine, clock)
    s = PaymentScheme(engine, ledger, clock, fees=FeeSchedule(bps=50))
    for cur in ("RWF", "MYR", "CNY", "EUR", "ETB", "USD"):
        s.enable_currency(cur)
    s.register_participant("mtn-rw", "MTN MoMo Rwanda", "wallet", "RW", ["RWF"])
    s.register_participant("maybank", "Maybank", "bank", "MY", ["MYR"])
    s.register_participant("icbc", "ICBC", "bank", "CN", ["CNY"])
    s.register_participant("fxco", "FX Co", "fx_provider", "SG", ["RWF", "MYR", "CNY"])
    s.deposit("mtn-rw", "RWF", 50_000_000, "dep-1")
    s.set_net_debit_cap("mtn-rw", "RWF", 10_000_000)
    s.deposit("maybank", "MYR", 1_000_000, "dep-2")
    s.set_net_debit_cap("maybank", "MYR", 500_000)
    s.deposit("fxco", "MYR", 5_000_000, "dep-3")
    s.set_net_debit_cap("fxco", "MYR", 2_000_000)
    s.deposit("fxco", "RWF", 5_000_000, "dep-4")
    s.set_net_debit_cap("fxco", "RWF", 1_000_000)
    s.post_fx_rate("fxco", "RWF", "MYR", Decimal("0.0032"), 100, 3600)
    s.register_alias("maybank", "MERCHANT", "KL-TILL-42", "Kedai Kopi KL", "MYR")
    s.register_alias("mtn-rw", "MSISDN", "+250788123456", "Aline Uwase", "RWF")
    return s
