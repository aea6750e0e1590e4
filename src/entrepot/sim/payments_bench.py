"""The payments benchmark: a loopback API server (``entrepot serve``, several workers) and N
concurrent clients each running the full pay-by-QR flow (lookup + quote + prepare + commit,
four calls), then the same payments through the API's pay-by-QR call (``/v1/qr/pay`` +
commit, two calls), then bulk transfers through /v1/transfers/bulk. The four-call flow is also
timed in-process (service calls, no HTTP) in the same run, so the ratio shows what HTTP costs
on this machine.

Returns one JSON-able dict; ``entrepot bench payments`` and ``bench/payments.py`` print it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa
import uvloop

from entrepot.config import load_settings, normalise_database_url
from entrepot.kernel.clock import SystemClock
from entrepot.ledger import Ledger
from entrepot.payments import PaymentScheme, TransferState, qr
from entrepot.payments.bulk import BulkItem, bulk_transfers
from entrepot.payments.credentials import issue_credential
from entrepot.sim.http_load import LoadClient
from entrepot.storage import upgrade
from entrepot.storage.engine import create_engine_from_url

Progress = Callable[[str, int, int], None]
T = TypeVar("T")
PAYERS = 8
MERCHANTS = 8


def _payee_msisdn(n: int) -> str:
    """The bulk's n-th payee (one of PAYERS customers of bank-rw)."""
    return f"+25078800{n % PAYERS:04d}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup_scheme(url: str) -> tuple[PaymentScheme, dict[str, str]]:
    """Wallets in Rwanda pay merchants at a Malaysian bank (RWF -> MYR through an FX provider)
    and at a Rwandan bank (same currency). Caps are large enough for the whole run."""
    engine = create_engine_from_url(url)
    upgrade(engine)
    scheme = PaymentScheme(engine, Ledger(engine, SystemClock()), SystemClock())
    for cur in ("RWF", "MYR"):
        scheme.enable_currency(cur)
    big = 10**12
    for pid, kind, country, curs in (
        ("wallet-rw", "wallet", "RW", ["RWF"]),
        ("bank-rw", "bank", "RW", ["RWF"]),
        ("bank-my", "bank", "MY", ["MYR"]),
        ("fx", "fx_provider", "SG", ["RWF", "MYR"]),
    ):
        scheme.register_participant(pid, pid, kind, country, curs)
        for cur in curs:
            scheme.deposit(pid, cur, big, f"dep-{pid}-{cur}")
            scheme.set_net_debit_cap(pid, cur, big)
    from decimal import Decimal

    scheme.post_fx_rate("fx", "RWF", "MYR", Decimal("0.0032"), 50, 86_400)
    for m in range(MERCHANTS):
        bank, cur = ("bank-my", "MYR") if m % 2 == 0 else ("bank-rw", "RWF")
        scheme.register_alias(bank, "MERCHANT", f"till-{m}", f"Merchant {m}", cur)
    for k in range(PAYERS):
        scheme.register_alias("bank-rw", "MSISDN", _payee_msisdn(k), f"Payee {k}", "RWF")
    tokens = {p: issue_credential(engine, p).token for p in ("wallet-rw", "bank-rw", "bank-my")}
    engine.dispose()
    return scheme, tokens


def add_bulk_payer(scheme: PaymentScheme) -> None:
    """bank-my pays RWF payees in the bulk runs: it joins RWF with a cap."""
    scheme.add_currency("bank-my", "RWF")
    scheme.deposit("bank-my", "RWF", 10**12, "dep-bulk")
    scheme.set_net_debit_cap("bank-my", "RWF", 10**12)


def bulk_body(batch: int, size: int) -> bytes:
    """The JSON body of the ``batch``-th bulk of ``size`` transfers that bank-my sends to
    ``/v1/transfers/bulk``: 1,000 RWF to each of the PAYERS payees in turn."""
    items = [
        {
            "transferId": f"bk{batch}-{i}",
            "payee": {"partyIdType": "MSISDN", "partyIdentifier": _payee_msisdn(i)},
            "amount": {"amount": "1000", "currency": "RWF"},
        }
        for i in range(size)
    ]
    return json.dumps({"bulkId": f"bulk-{batch}", "transfers": items}).encode()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def _pay(client: LoadClient, tokens: dict[str, str], n: int, tag: str) -> float:
    till = f"till-{n % MERCHANTS}"
    payee = "bank-my" if n % MERCHANTS % 2 == 0 else "bank-rw"
    payer = {"Authorization": f"Bearer {tokens['wallet-rw']}"}
    t0 = time.perf_counter()
    r = await client.get(f"/v1/parties/MERCHANT/{till}", headers=payer)
    currency = r.json()["currency"]
    amount = "12.50" if currency == "MYR" else "1000"
    await client.post(
        "/v1/quotes",
        headers=payer,
        json_body={
            "quoteId": f"q{tag}{n}",
            "payee": {"partyIdType": "MERCHANT", "partyIdentifier": till},
            "amountType": "RECEIVE",
            "amount": {"amount": amount, "currency": currency},
            "sourceCurrency": "RWF",
        },
    )
    await client.post(
        "/v1/transfers",
        headers=payer,
        json_body={"transferId": f"t{tag}{n}", "quoteId": f"q{tag}{n}"},
    )
    await _commit(client, tokens[payee], f"t{tag}{n}")
    return time.perf_counter() - t0


async def _commit(client: LoadClient, payee_token: str, transfer_id: str) -> None:
    """The payee's participant accepts the transfer."""
    r = await client.post(
        f"/v1/transfers/{transfer_id}/commit", headers={"Authorization": f"Bearer {payee_token}"}
    )
    assert r.json()["state"] == "COMMITTED", r.content


async def _merchant_qrs(client: LoadClient, tokens: dict[str, str]) -> list[str]:
    """Each merchant's dynamic QR (with the amount), encoded by its bank through the API."""
    payloads = []
    for m in range(MERCHANTS):
        bank, currency, amount = (
            ("bank-my", "MYR", "12.50") if m % 2 == 0 else ("bank-rw", "RWF", "1000")
        )
        r = await client.post(
            "/v1/qr/encode",
            headers={"Authorization": f"Bearer {tokens[bank]}"},
            json_body={
                "tillId": f"till-{m}",
                "merchantName": f"Merchant {m}",
                "city": "Kigali",
                "country": "MY" if bank == "bank-my" else "RW",
                "currency": currency,
                "amount": amount,
            },
        )
        payloads.append(str(r.json()["payload"]))
    return payloads


def _for_sale(payload: str, reference: str) -> str:
    """The merchant's dynamic QR for one sale: its QR with the sale's reference label (tag 62,
    05). A dynamic QR is paid once (``qr_already_paid``): a merchant shows one a sale."""
    decoded = qr.decode(payload)
    sale = qr.DataObject("62", (qr.DataObject("05", reference),))
    objects = sorted((*(o for o in decoded.objects if o.tag != "62"), sale), key=lambda o: o.tag)
    return qr.encode(qr.QrPayload(tuple(objects)))


async def _pay_qr(
    client: LoadClient, tokens: dict[str, str], payloads: list[str], n: int, tag: str
) -> float:
    """The wallet scans the merchant's QR and pays in one call (decode, lookup, quote and
    prepare, the last two in one transaction); the merchant's bank commits."""
    payee = "bank-my" if n % MERCHANTS % 2 == 0 else "bank-rw"
    sale = _for_sale(payloads[n % MERCHANTS], f"sale-{tag}{n}")  # shown before the scan
    t0 = time.perf_counter()
    r = await client.post(
        "/v1/qr/pay",
        headers={"Authorization": f"Bearer {tokens['wallet-rw']}"},
        json_body={
            "payload": sale,
            "transferId": f"t{tag}{n}",
            "quoteId": f"q{tag}{n}",
            "sourceCurrency": "RWF",
        },
    )
    assert r.status == 201, r.content
    await _commit(client, tokens[payee], f"t{tag}{n}")
    return time.perf_counter() - t0


@dataclass
class Phase:
    """One phase of concurrent payments: its wall time, each payment's latency and when
    (seconds after the phase began) it completed, in completion order."""

    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)


async def _run_clients(
    base: str,
    tokens: dict[str, str],
    clients: int,
    payments: int,
    progress: Progress,
    *,
    one_call: bool = False,
) -> Phase:
    """``clients`` concurrent clients make ``payments`` payments: lookup, quote, prepare and
    commit as four calls, or (``one_call``) ``/v1/qr/pay`` and commit."""
    phase = Phase()
    latencies, done_at = phase.latencies, phase.done_at
    queue = iter(range(payments))
    async with LoadClient(base, clients) as client:
        payloads = await _merchant_qrs(client, tokens) if one_call else []
        label = "pay-by-QR, /qr/pay + commit" if one_call else "pay-by-QR flows"

        async def worker() -> None:
            for n in queue:
                if one_call:
                    latencies.append(await _pay_qr(client, tokens, payloads, n, "c"))
                else:
                    latencies.append(await _pay(client, tokens, n, "p"))
                done_at.append(time.perf_counter() - t0)
                if len(latencies) % 50 == 0:
                    progress(label, len(latencies), payments)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        phase.elapsed = time.perf_counter() - t0
        return phase


async def _run_bulk(
    base: str, tokens: dict[str, str], batches: int, size: int, progress: Progress
) -> tuple[float, int]:
    headers = {"Authorization": f"Bearer {tokens['bank-my']}", "Content-Type": "application/json"}
    committed = 0
    elapsed = 0.0
    async with LoadClient(base, 1) as client:
        for b in range(batches):
            # Encoded before the clock starts: a payer's system sends a file it has built, and
            # the client's JSON encoder is not the scheme's work.
            body = bulk_body(b, size)
            t0 = time.perf_counter()
            r = await client.post("/v1/transfers/bulk", headers=headers, content=body)
            elapsed += time.perf_counter() - t0
            committed += int(r.json()["committed"])
            progress("bulk transfers", (b + 1) * size, batches * size)
    return elapsed, committed


def _in_process(scheme_url: str, payments: int) -> float:
    engine = create_engine_from_url(scheme_url)
    scheme = PaymentScheme(engine, Ledger(engine, SystemClock()), SystemClock())
    t0 = time.perf_counter()
    for n in range(payments):
        till = f"till-{n % MERCHANTS}"
        payee = "bank-my" if n % MERCHANTS % 2 == 0 else "bank-rw"
        party = scheme.lookup_party("MERCHANT", till)
        amount = 1250 if party.currency == "MYR" else 1000
        scheme.create_quote("wallet-rw", f"qi{n}", "MERCHANT", till, amount, "RECEIVE", "RWF")
        scheme.prepare_transfer("wallet-rw", f"ti{n}", f"qi{n}")
        scheme.commit_transfer(payee, f"ti{n}")
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return payments / elapsed


@contextlib.contextmanager
def _fresh_postgres_schema(url: str) -> Iterator[str]:
    """A URL whose connections use a new, empty schema of ``url``'s database; dropped after."""
    base = normalise_database_url(url)
    schema = f"bench_pay_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        sep = "&" if "?" in base else "?"
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


def _bulk_items(batch: int, size: int) -> list[BulkItem]:
    return [BulkItem(f"bi{batch}-{i}", "MSISDN", _payee_msisdn(i), 1000) for i in range(size)]


def _in_process_bulk(scheme_url: str, batches: int, size: int) -> float:
    """The same bulks through the service call, no HTTP: transfers per second."""
    engine = create_engine_from_url(scheme_url)
    scheme = PaymentScheme(engine, Ledger(engine, SystemClock()), SystemClock())
    elapsed = 0.0
    for b in range(batches):
        items = _bulk_items(b, size)
        t0 = time.perf_counter()
        results = bulk_transfers(scheme, "bank-my", f"bulk-in-process-{b}", "RWF", items)
        elapsed += time.perf_counter() - t0
        assert all(r.state is TransferState.COMMITTED for r in results)
    engine.dispose()
    return batches * size / elapsed


def run_payments_bench(
    *,
    payments: int = 2_000,
    clients: int = 32,
    workers: int = 2,
    bulk_batches: int = 5,
    bulk_size: int = 8_000,
    progress: Progress | None = None,
    database_url: str | None = None,
    postgres_url: str | None = None,
    plot: Path | None = None,
) -> dict[str, Any]:
    """On a new SQLite file (default), an empty ``database_url``, or a new schema of the
    PostgreSQL database at ``postgres_url`` (dropped afterwards). With ``plot``, also a PNG
    there (:func:`plot_payments`); its path is the result's ``plot``."""
    if plot is not None:  # refused now, not after minutes of benchmark
        if plot.suffix.lower() != ".png":
            raise ValueError(f"the plot is a PNG: name it *.png, not {plot.name!r}")
        try:
            plot.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(
                f"the plot cannot be written in {plot.parent}: {exc.strerror}"
            ) from exc
        if not os.access(plot.parent, os.W_OK):
            raise ValueError(f"the plot cannot be written in {plot.parent}: not writable")
    args = (payments, clients, workers, bulk_batches, bulk_size, progress)
    if postgres_url:
        with _fresh_postgres_schema(postgres_url) as url:
            return _run(*args, url, plot)
    return _run(*args, database_url, plot)


def _run(
    payments: int,
    clients: int,
    workers: int,
    bulk_batches: int,
    bulk_size: int,
    progress: Progress | None,
    database_url: str | None,
    plot: Path | None,
) -> dict[str, Any]:
    report = progress or (lambda *_: None)
    home = Path(tempfile.mkdtemp(prefix="entrepot-paybench-"))
    url = database_url or f"sqlite:///{home / 'bench.db'}"
    setup_scheme(url)
    engine = create_engine_from_url(url)
    add_bulk_payer(PaymentScheme(engine, Ledger(engine, SystemClock()), SystemClock()))
    engine.dispose()
    tokens = _tokens(url)
    port = _free_port()
    env = {**os.environ, "ENTREPOT_DATABASE_URL": url, "ENTREPOT_HOME": str(home)}
    server = subprocess.Popen(
        # what an operator runs: ``entrepot serve``
        [
            sys.executable,
            "-m",
            "entrepot",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server)
        writer_before = writer_counters(base, tokens["scheme"])
        cpu_before = (tree_cpu_seconds(server.pid), time.process_time())
        four_call = _run_async(_run_clients(base, tokens, clients, payments, report))
        elapsed, latencies = four_call.elapsed, four_call.latencies
        cpu_after = (tree_cpu_seconds(server.pid), time.process_time())
        cpu = _cpu_use(cpu_before, cpu_after, elapsed, payments)
        writer = _writer_shares(writer_before, writer_counters(base, tokens["scheme"]), elapsed)
        one_call = _run_async(_run_clients(base, tokens, clients, payments, report, one_call=True))
        qr_elapsed, qr_latencies = one_call.elapsed, one_call.latencies
        bulk_elapsed, committed = _run_async(
            _run_bulk(base, tokens, bulk_batches, bulk_size, report)
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    in_process = _in_process(url, max(200, payments // 5))
    in_process_bulk = _in_process_bulk(url, bulk_batches, bulk_size)
    result: dict[str, Any] = {
        "benchmark": "payments",
        "workload": {
            "payments": payments,
            "clients": clients,
            "server_workers": workers,
            "bulk_batches": bulk_batches,
            "bulk_size": bulk_size,
            "database": "postgresql"
            if url.startswith("postgres")
            else f"sqlite ({load_settings(env).sqlite_synchronous})",
        },
        "payments_per_s": round(payments / elapsed, 1),
        "p50_ms": round(_percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
        "over_1s_share": round(sum(1 for x in latencies if x > 1) / len(latencies), 4),
        **writer,
        **cpu,
        "qr_pay_payments_per_s": round(payments / qr_elapsed, 1),
        "qr_pay_p50_ms": round(_percentile(qr_latencies, 0.5) * 1000, 1),
        "qr_pay_p99_ms": round(_percentile(qr_latencies, 0.99) * 1000, 1),
        "qr_pay_over_1s_share": round(sum(1 for x in qr_latencies if x > 1) / payments, 4),
        "bulk_transfers_per_s": round(committed / bulk_elapsed, 1),
        "bulk_committed": committed,
        "in_process_payments_per_s": round(in_process, 1),
        "http_vs_in_process": round(payments / elapsed / in_process, 2),
        "in_process_bulk_transfers_per_s": round(in_process_bulk, 1),
        "bulk_http_vs_in_process": round(committed / bulk_elapsed / in_process_bulk, 2),
    }
    if plot is not None:
        result["plot"] = str(plot_payments(four_call, one_call, result, plot))
    return result


#: the issue's targets, drawn on the plot
TARGET_PAYMENTS_PER_S = 1_000
TARGET_P99_MS = 250


def _rate(done_at: list[float], elapsed: float, bins: int = 60) -> tuple[list[float], list[float]]:
    """Payments completed per second through a phase, in up to ``bins`` equal bins of at
    least 0.1 s (a last, partial bin left out): the bins' edges and each bin's rate."""
    width = max(0.1, elapsed / bins)
    count = max(1, int(elapsed / width))
    done = [0] * count
    for t in done_at:
        k = int(t / width)
        if k < count:
            done[k] += 1
    return [k * width for k in range(count + 1)], [n / width for n in done]


def plot_payments(four_call: Phase, one_call: Phase, result: dict[str, Any], path: Path) -> Path:
    """One PNG, two panels: each payment's latency as a distribution (share of payments done
    within x ms, log scale; the p99 target marked) and payments completed per second through
    each phase (the target rate marked; a dip is a stall, the fall at the end the last
    clients finishing), for the four-call flow and for ``/v1/qr/pay`` + commit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (cdf, rate) = plt.subplots(1, 2, figsize=(11, 4.2))
    phases = (
        ("four calls (lookup, quote, prepare, commit)", four_call, "p99_ms"),
        ("/v1/qr/pay + commit", one_call, "qr_pay_p99_ms"),
    )
    for label, phase, p99 in phases:
        ms = sorted(x * 1000 for x in phase.latencies)
        shares = [(k + 1) / len(ms) for k in range(len(ms))]
        cdf.step(ms, shares, where="post", label=f"{label}: p99 {result[p99]:.0f} ms")
        edges, rates = _rate(phase.done_at, phase.elapsed)
        rate.stairs(rates, edges, baseline=None, label=f"{label}: {len(ms) / phase.elapsed:.0f}/s")
    cdf.axvline(TARGET_P99_MS, color="grey", linestyle="--", label=f"target p99 {TARGET_P99_MS} ms")
    cdf.axhline(0.99, color="grey", linestyle=":", linewidth=0.8)
    cdf.set_xscale("log")
    cdf.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    cdf.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    cdf.xaxis.set_minor_formatter(ticker.NullFormatter())
    cdf.set_xlabel("latency of a whole payment (ms, log scale)")
    cdf.set_ylabel("share of payments done within it")
    cdf.set_ylim(0, 1.01)
    cdf.legend(fontsize=7, loc="lower right")
    rate.axhline(TARGET_PAYMENTS_PER_S, color="grey", linestyle="--", label="target 1,000/s")
    rate.set_xlabel("seconds into the phase")
    rate.set_ylabel("payments completed per second")
    rate.set_ylim(bottom=0)
    rate.legend(fontsize=7, loc="best")
    workload = result["workload"]
    fig.suptitle(
        f"Pay-by-QR through the API: {workload['payments']} payments a phase, "
        f"{workload['clients']} clients, {workload['server_workers']} workers, "
        f"{workload['database']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """The clients' event loop is uvloop's, as the server's is: less of the two cores goes to
    the clients."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _tokens(url: str) -> dict[str, str]:
    engine = create_engine_from_url(url)
    tokens = {
        p: issue_credential(engine, p).token
        for p in ("wallet-rw", "bank-rw", "bank-my", "scheme")  # scheme: the metrics' scrape
    }
    engine.dispose()
    return tokens


#: the write counters a scrape of ``/v1/metrics`` reports (storage/metrics.py)
WRITER_COUNTERS = (
    "entrepot_db_write_held_seconds_total",
    "entrepot_group_commit_held_seconds_total",
    "entrepot_group_commit_batches_total",
    "entrepot_group_commit_members_total",
)


def writer_counters(base: str, operator_token: str) -> dict[str, float]:
    """The server's write counters, summed over its workers, as the operator scrapes them."""
    from prometheus_client.parser import text_string_to_metric_families

    answer = httpx.get(
        f"{base}/v1/metrics", headers={"Authorization": f"Bearer {operator_token}"}, timeout=60
    )
    answer.raise_for_status()
    found = dict.fromkeys(WRITER_COUNTERS, 0.0)
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name in found:
                found[sample.name] += sample.value
    return found


def _writer_shares(
    before: dict[str, float], after: dict[str, float], elapsed: float
) -> dict[str, float | None]:
    """How busy the one writer was while the four-call payments ran: the share of the time
    SQLite's write lock was held (None on PostgreSQL), the share the scheme's shared
    transactions held it (either database), and the writes each shared COMMIT carried."""
    delta = {name: after[name] - before[name] for name in WRITER_COUNTERS}
    batches = delta["entrepot_group_commit_batches_total"]
    held = delta["entrepot_db_write_held_seconds_total"]
    return {
        "write_lock_held_share": round(held / elapsed, 3) if held else None,
        "group_commit_held_share": round(
            delta["entrepot_group_commit_held_seconds_total"] / elapsed, 3
        ),
        "group_commit_members_per_batch": (
            round(delta["entrepot_group_commit_members_total"] / batches, 1) if batches else None
        ),
    }


def tree_cpu_seconds(root: int) -> float | None:
    """CPU seconds (user and system) used so far by process ``root`` and every live process
    below it (the server and its workers), from ``/proc``; None where there is none."""
    proc = Path("/proc")
    if not (proc / str(root) / "stat").exists():
        return None
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # after the command's ")" (which may hold spaces): state, ppid, ..., utime, stime
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, below = 0.0, {root}
    for pid in used:  # a process is below ``root`` if its ancestry reaches it
        node, seen = pid, 0
        while node in parent and node not in below and seen < 64:
            node, seen = parent[node], seen + 1
        if node in below:
            below.add(pid)
            total += used[pid]
    return total


def _cpu_use(
    before: tuple[float | None, float],
    after: tuple[float | None, float],
    elapsed: float,
    payments: int,
) -> dict[str, float | None]:
    """Cores the server (all its workers) and this process's clients kept busy while the
    four-call payments ran, of ``machine_cores``, and the server's CPU a payment: near the
    machine's cores, the CPU, not the writer, is the limit."""
    server = None if before[0] is None or after[0] is None else after[0] - before[0]
    return {
        "server_cpu_cores": None if server is None else round(server / elapsed, 2),
        "client_cpu_cores": round((after[1] - before[1]) / elapsed, 2),
        "machine_cores": os.cpu_count(),
        "server_cpu_ms_per_payment": None if server is None else round(server / payments * 1000, 2),
    }


def wait_ready(base: str, server: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Wait until the API server started as ``server`` answers ``/health`` at ``base``;
    ``RuntimeError`` (with its stderr's tail) if it exits or does not answer in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            err = server.stderr.read().decode() if server.stderr else ""
            raise RuntimeError(f"the API server exited: {err[-2000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"the API server did not start within {timeout_s:g} s")


__all__ = ["run_payments_bench", "setup_scheme", "wait_ready"]
