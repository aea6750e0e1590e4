"""A statement of a recent period on an account with a long history: prints one JSON object.

    .venv/bin/python bench/statement.py [--history 50000] [--recent 10] [--repeat 5]
    .venv/bin/python bench/statement.py --camt053 50000

``--camt053 N``: the memory and time of serving a camt.053 of an account with N entries in
its period (``messages.account_statement`` then ``iso20022.camt053``, as the API does): of
the first answer (the whole statement where the code serves no pages), the growth of the
resident set (lxml's tree included) and Python's traced peak, cold, and its time, warm; and
the time to serve every page one after another. Run it on an older checkout
(``PYTHONPATH=OLD/src ENTREPOT_MIGRATIONS_DIR=migrations``) for the figures before.

Builds a new SQLite ledger, posts ``--history`` transfers to one account (plain batches of
1,000, as a payroll or the scheme's settlement would) and then ``--recent`` single ones, and
times the statement's opening balance for the period of the recent ones, both ways in the
same run (the machine's noise cancels in the ratio): summing every earlier transfer (the
baseline, what ``statement()`` did) and subtracting the period's transfers from the
balance now (what it does where that side is the smaller). Each the best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import ctypes
import inspect
import json
import os
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

from entrepot.kernel.clock import SystemClock
from entrepot.ledger import Account, Ledger, Transfer
from entrepot.storage.engine import create_engine_from_url, read_connection
from entrepot.storage.migrate import upgrade

LEDGER = 978


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=50_000)
    parser.add_argument("--recent", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--camt053", type=int, default=0, metavar="ENTRIES")
    args = parser.parse_args(argv)
    if args.camt053:
        return camt053(args.camt053)
    home = Path(tempfile.mkdtemp(prefix="entrepot-statement-"))
    engine = create_engine_from_url(f"sqlite:///{home / 'ledger.db'}")
    upgrade(engine)
    ledger = Ledger(engine, SystemClock())
    ledger.define_ledger(LEDGER, "EUR")
    ledger.create_accounts([Account(1, LEDGER, 1), Account(2, LEDGER, 1)])
    next_id = 1
    for start in range(0, args.history, 1_000):
        size = min(1_000, args.history - start)
        batch = [Transfer(next_id + i, 1, 2, 5, ledger=LEDGER, code=1) for i in range(size)]
        results = ledger.create_transfers(batch)
        if set(results) != {"ok"}:
            raise RuntimeError(f"the history's batch was refused: {set(results)}")
        next_id += size
    for _ in range(args.recent):
        ledger.create_transfers([Transfer(next_id, 1, 2, 7, ledger=LEDGER, code=1)])
        next_id += 1
    since = ledger.get_account_transfers(1, reverse=True, limit=args.recent)[-1].timestamp

    def opening(from_balance: bool) -> tuple[float, tuple[int, int]]:
        with read_connection(engine) as conn:
            account = ledger.store.load_accounts(conn, [1])[0]
            posted = (account.debits_posted, account.credits_posted) if from_balance else None
            began = time.perf_counter()
            sums = ledger.store.posted_sums_before(conn, 1, since, posted)
            return time.perf_counter() - began, sums

    timings: dict[bool, list[float]] = {False: [], True: []}
    answers = set()
    for _ in range(args.repeat + 1):  # the first of each warms the caches
        for way in (False, True):
            took, sums = opening(way)
            timings[way].append(took)
            answers.add(sums)
    if len(answers) != 1:
        raise RuntimeError(f"the two ways disagree: {answers}")
    forward, back = min(timings[False][1:]), min(timings[True][1:])
    print(
        json.dumps(
            {
                "benchmark": "statement_opening_balance",
                "history_transfers": args.history,
                "period_transfers": len(ledger.statement(1, since_ns=since).lines),
                "baseline_sum_of_history_ms": round(forward * 1000, 2),
                "from_balance_ms": round(back * 1000, 2),
                "speedup": round(forward / back, 1),
            }
        )
    )
    engine.dispose()
    return 0


def _rss() -> int:
    """This process's resident set now, in bytes (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def camt053(entries: int) -> int:
    from entrepot.payments import PaymentScheme, iso20022, messages
    from entrepot.payments.services import Code

    home = Path(tempfile.mkdtemp(prefix="entrepot-camt053-"))
    engine = create_engine_from_url(f"sqlite:///{home / 'scheme.db'}")
    upgrade(engine)
    clock = SystemClock()
    ledger = Ledger(engine, clock)
    scheme = PaymentScheme(engine, ledger, clock)
    scheme.enable_currency("EUR")
    scheme.register_participant("bank-a", "Bank A", "bank", "DE", ["EUR"])
    scheme.register_participant("bank-b", "Bank B", "bank", "FR", ["EUR"])
    scheme.deposit("bank-b", "EUR", 10**12, "dep-b")
    payer = scheme.get_participant("bank-b").check_currency("EUR").settlement_account
    payee = scheme.get_participant("bank-a").check_currency("EUR").settlement_account
    book = ledger.get_account(payee).ledger
    next_id = 1 << 40
    for start in range(0, entries, 1_000):
        size = min(1_000, entries - start)
        batch = [
            Transfer(next_id + i, payer, payee, 100 + i, ledger=book, code=Code.SETTLEMENT_TRANSFER)
            for i in range(size)
        ]
        if set(ledger.create_transfers(batch)) != {"ok"}:
            raise RuntimeError("the history's batch was refused")
        next_id += size
    until = clock.now_ns() + 1_000_000_000
    paged = "page" in inspect.signature(messages.account_statement).parameters

    def serve(page: int) -> bytes:
        kw = {"page": page} if paged else {}
        st = messages.account_statement(scheme, "bank-a", "EUR", 0, until, "settlement", **kw)
        return iso20022.camt053(st)

    # Memory of the first answer, cold: the process's resident set sampled every 5 ms, its
    # growth over what it held before (freed memory given back first), lxml's tree included;
    # and what Python allocated at its peak (tracemalloc: lxml's C tree not counted).
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    baseline = _rss()
    peak_rss = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak_rss[0] = max(peak_rss[0], _rss())

    sampler = threading.Thread(target=sample)
    sampler.start()
    tracemalloc.start()
    first = serve(1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    done.set()
    sampler.join()
    peak_rss[0] = max(peak_rss[0], _rss())
    began = time.perf_counter()
    serve(1)
    took = time.perf_counter() - began
    began = time.perf_counter()
    pages, served, xml_bytes = 1, 0, 0
    while True:
        xml = serve(pages) if paged else first
        served += xml.count(b"<Ntry>")
        xml_bytes += len(xml)
        if not paged or b"<LastPgInd>true</LastPgInd>" in xml:
            break
        pages += 1
    every = time.perf_counter() - began
    print(
        json.dumps(
            {
                "benchmark": "camt053_served",
                "period_entries": entries,
                "paged": paged,
                "pages": pages,
                "entries_served": served,
                "first_answer_rss_growth_mb": round((peak_rss[0] - baseline) / 2**20, 1),
                "first_answer_python_peak_mb": round(peak / 2**20, 1),
                "first_answer_bytes": len(first),
                "first_answer_s": round(took, 3),
                "every_page_s": round(every if paged else took, 3),
                "every_page_bytes": xml_bytes,
            }
        )
    )
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
