"""The ledger benchmark (TigerBeetle's shape): 10,000 accounts, 1,000,000 transfers in batches
of 8,190, on SQLite (synchronous=FULL) and on PostgreSQL when a URL is given; the same work
through a naive baseline in the same run (one INSERT and two balance UPDATEs per transfer, row
at a time, one transaction per batch, on the same tables) so that the ratio holds on any
machine; and single-transfer calls from many concurrent clients through group commit.

Prints nothing itself: returns one JSON-able dict. ``entrepot bench ledger`` and
``bench/ledger.py`` print it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from entrepot.config import normalise_database_url
from entrepot.ledger.group_commit import GroupCommitter
from entrepot.ledger.model import Account, Transfer
from entrepot.ledger.services import Ledger
from entrepot.storage.engine import create_engine_from_url, driver_connection
from entrepot.storage.migrate import upgrade

LEDGER = 978
ID_BASE = 1 << 100  # time-ordered-looking ids, as TigerBeetle recommends
Progress = Callable[[str, int, int], None]


def _no_progress(_label: str, _done: int, _total: int) -> None:
    return None


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def make_batches(
    accounts: int, transfers: int, batch_size: int, seed: int = 42
) -> Iterator[list[Transfer]]:
    rnd = random.Random(seed)
    made = 0
    while made < transfers:
        size = min(batch_size, transfers - made)
        batch = []
        for k in range(size):
            dr = rnd.randrange(1, accounts + 1)
            cr = rnd.randrange(1, accounts)
            if cr >= dr:
                cr += 1
            batch.append(
                Transfer(
                    ID_BASE + made + k, dr, cr, rnd.randrange(1, 100_000), ledger=LEDGER, code=1
                )
            )
        made += size
        yield batch


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _fresh_ledger(engine: Engine, accounts: int, batch_size: int) -> Ledger:
    upgrade(engine)
    ledger = Ledger(engine)
    ledger.define_ledger(LEDGER, "EUR")
    for start in range(1, accounts + 1, batch_size):
        stop = min(accounts + 1, start + batch_size)
        results = ledger.create_accounts([Account(i, LEDGER, 1) for i in range(start, stop)])
        assert all(r == "ok" for r in results), "account creation failed"
    return ledger


def bench_batches(
    ledger: Ledger, accounts: int, transfers: int, batch_size: int, progress: Progress
) -> dict[str, Any]:
    latencies: list[float] = []
    done = failed = 0
    for batch in make_batches(accounts, transfers, batch_size):
        t0 = time.perf_counter()
        results = ledger.create_transfers(batch)
        latencies.append(time.perf_counter() - t0)
        failed += sum(1 for r in results if r != "ok")
        done += len(batch)
        progress("ledger", done, transfers)
    total = sum(latencies)
    return {
        "transfers": done,
        "failed": failed,
        "seconds": round(total, 3),
        "transfers_per_s": round(done / total),
        "batch_p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "batch_p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
    }


def bench_naive(
    engine: Engine, accounts: int, transfers: int, batch_size: int, progress: Progress
) -> dict[str, Any]:
    """Row at a time on the same tables: INSERT, UPDATE debit, UPDATE credit; commit per batch."""
    _fresh_ledger(engine, accounts, batch_size)
    pg = engine.dialect.name == "postgresql"
    ph = "%s" if pg else "?"
    insert = (
        "INSERT INTO ledger_transfers (timestamp, id, debit_account_id, credit_account_id, "
        "amount, user_data_64, user_data_32, timeout, ledger, code, flags) "
        f"VALUES ({', '.join([ph] * 11)})"
    )
    debit = f"UPDATE ledger_accounts SET debits_posted = debits_posted + {ph} WHERE id = {ph}"
    credit = f"UPDATE ledger_accounts SET credits_posted = credits_posted + {ph} WHERE id = {ph}"
    ts = time.time_ns()
    done = 0
    elapsed = 0.0
    with engine.connect() as conn:
        for batch in make_batches(accounts, transfers, batch_size):
            t0 = time.perf_counter()
            conn.exec_driver_sql("SELECT 1")  # begins the transaction (BEGIN IMMEDIATE on SQLite)
            cur = driver_connection(conn).cursor()
            for t in batch:
                ts += 1
                dr = t.debit_account_id.to_bytes(16, "big")
                cr = t.credit_account_id.to_bytes(16, "big")
                cur.execute(
                    insert,
                    (ts, t.id.to_bytes(16, "big"), dr, cr, t.amount, 0, 0, 0, LEDGER, 1, 0),
                )
                cur.execute(debit, (t.amount, dr))
                cur.execute(credit, (t.amount, cr))
            conn.commit()
            elapsed += time.perf_counter() - t0
            done += len(batch)
            progress("naive baseline", done, transfers)
    return {
        "transfers": done,
        "seconds": round(elapsed, 3),
        "transfers_per_s": round(done / elapsed),
    }


def bench_single(
    ledger: Ledger, accounts: int, clients: int, per_client: int, progress: Progress
) -> dict[str, Any]:
    """``clients`` threads, each sending one transfer per call, through group commit."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    total = clients * per_client
    counter = [0]
    lock = threading.Lock()
    base = ID_BASE + (1 << 90)

    def client(k: int, committer: GroupCommitter) -> None:
        rnd = random.Random(k)
        for j in range(per_client):
            dr = rnd.randrange(1, accounts + 1)
            cr = dr % accounts + 1
            t = Transfer(base + k * per_client + j, dr, cr, 1, ledger=LEDGER, code=1)
            t0 = time.perf_counter()
            result = committer.create_transfers([t])
            latencies[k].append(time.perf_counter() - t0)
            assert result == ["ok"], result
            with lock:
                counter[0] += 1
                if counter[0] % 500 == 0:
                    progress("single-transfer clients", counter[0], total)

    with GroupCommitter(ledger) as committer:
        threads = [threading.Thread(target=client, args=(k, committer)) for k in range(clients)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - t0
        commits = committer.commits
    flat = [x for xs in latencies for x in xs]
    return {
        "single_clients": clients,
        "single_transfers": total,
        "single_transfers_per_s": round(total / elapsed),
        "single_p50_ms": round(_percentile(flat, 0.50) * 1000, 2),
        "single_p99_ms": round(_percentile(flat, 0.99) * 1000, 2),
        "single_commits": commits,
    }


@contextlib.contextmanager
def _sqlite_engines(workdir: Path) -> Iterator[Callable[[str], Engine]]:
    made: list[Engine] = []

    def make(name: str) -> Engine:
        engine = create_engine_from_url(f"sqlite:///{workdir / name}.db", sqlite_synchronous="FULL")
        made.append(engine)
        return engine

    try:
        yield make
    finally:
        for engine in made:
            engine.dispose()


@contextlib.contextmanager
def _postgres_engines(url: str) -> Iterator[Callable[[str], Engine]]:
    admin = sa.create_engine(normalise_database_url(url))
    schemas: list[str] = []
    made: list[Engine] = []

    def make(name: str) -> Engine:
        schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        schemas.append(schema)
        base = normalise_database_url(url)
        sep = "&" if "?" in base else "?"
        engine = create_engine_from_url(f"{base}{sep}options=-csearch_path%3D{schema}")
        made.append(engine)
        return engine

    try:
        yield make
    finally:
        for engine in made:
            engine.dispose()
        with admin.begin() as conn:
            for schema in schemas:
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


def bench_backend(
    make_engine: Callable[[str], Engine],
    accounts: int,
    transfers: int,
    batch_size: int,
    baseline_transfers: int,
    clients: int,
    per_client: int,
    progress: Progress,
) -> dict[str, Any]:
    engine = make_engine("ledger")
    ledger = _fresh_ledger(engine, accounts, batch_size)
    out = bench_batches(ledger, accounts, transfers, batch_size, progress)
    out.update(bench_single(ledger, accounts, clients, per_client, progress))
    report = ledger.check_invariants()
    out["invariants_ok"] = report.ok
    naive = bench_naive(make_engine("naive"), accounts, baseline_transfers, batch_size, progress)
    out["baseline_transfers"] = naive["transfers"]
    out["baseline_transfers_per_s"] = naive["transfers_per_s"]
    out["ratio_vs_baseline"] = round(out["transfers_per_s"] / naive["transfers_per_s"], 2)
    return out


def run_ledger_bench(
    accounts: int = 10_000,
    transfers: int = 1_000_000,
    batch_size: int = 8_190,
    postgres_url: str | None = None,
    concurrency: int = 64,
    progress: bool | Progress = False,
    *,
    baseline_transfers: int | None = None,
    single_per_client: int = 200,
    workdir: Path | None = None,
) -> dict[str, Any]:
    report = progress if callable(progress) else _no_progress
    baseline = baseline_transfers or min(transfers, 200_000)
    result: dict[str, Any] = {
        "benchmark": "ledger",
        "machine": machine_info(),
        "workload": {
            "accounts": accounts,
            "transfers": transfers,
            "batch_size": batch_size,
            "baseline_transfers": baseline,
            "single_clients": concurrency,
            "single_transfers_per_client": single_per_client,
        },
    }
    with contextlib.ExitStack() as stack:
        root = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        make = stack.enter_context(_sqlite_engines(root))
        result["sqlite"] = {
            "synchronous": "FULL",
            **bench_backend(
                make,
                accounts,
                transfers,
                batch_size,
                baseline,
                concurrency,
                single_per_client,
                report,
            ),
        }
    if postgres_url:
        with _postgres_engines(postgres_url) as make:
            result["postgres"] = bench_backend(
                make,
                accounts,
                transfers,
                batch_size,
                baseline,
                concurrency,
                single_per_client,
                report,
            )
    return result
