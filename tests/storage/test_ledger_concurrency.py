"""Several OS processes write to one database at once: no lost update, no limit exceeded."""

from __future__ import annotations

import multiprocessing

import pytest
import sqlalchemy as sa

from entrepot.ledger import Account, AccountFlags, Ledger, Transfer
from tests.storage.ledger_workers import ACCOUNTS, FUNDING_ACCOUNT, LEDGER, concurrent_writer

pytestmark = pytest.mark.slow

WORKERS = 3
BATCHES = 12
SIZE = 200


def _setup(ledger: Ledger) -> None:
    limited = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    accounts = [
        Account(i, LEDGER, 1, flags=limited if i <= ACCOUNTS // 2 else 0)
        for i in range(1, ACCOUNTS + 1)
    ]
    assert ledger.create_accounts(accounts) == ["ok"] * ACCOUNTS
    funding = [
        Transfer(900 + i, FUNDING_ACCOUNT, i, 2_000, ledger=LEDGER, code=1)
        for i in range(1, ACCOUNTS // 2 + 1)
    ]
    assert ledger.create_transfers(funding) == ["ok"] * len(funding)


def test_concurrent_processes_lose_nothing(
    ledger: Ledger, database_url: str, engine: sa.Engine
) -> None:
    _setup(ledger)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(WORKERS) as pool:
        outcomes = pool.starmap(
            concurrent_writer, [(database_url, w, BATCHES, SIZE) for w in range(WORKERS)]
        )
    ok_ids = {tid for out in outcomes for tid, r in out if r == "ok"}
    failed = {r for out in outcomes for _, r in out if r != "ok"}
    assert len(ok_ids) > WORKERS * BATCHES * SIZE // 4  # contested, but mostly succeeding
    assert "exceeds_credits" in failed  # the limits were really contested

    stored = ledger.lookup_transfers(sorted(ok_ids))
    assert {t.id for t in stored} == ok_ids  # every acknowledged transfer is there...
    with engine.connect() as conn:
        total = ledger.store.counts(conn)[1]  # rows and segments (ADR 0003)
        segments = conn.exec_driver_sql(
            "SELECT COUNT(*) FROM ledger_transfer_segments"
        ).scalar_one()
    assert segments > 0  # plain batches took the fast path
    assert total == len(ok_ids) + ACCOUNTS // 2  # ...and nothing else (plus the funding)

    report = ledger.check_invariants()
    assert report.ok, report.violations
    # Every account's balance is exactly the sum of its transfers: no lost update.
    all_transfers = stored + ledger.lookup_transfers([900 + i for i in range(1, 7)])
    for account in ledger.lookup_accounts(list(range(1, ACCOUNTS + 1))):
        debits = sum(t.amount for t in all_transfers if t.debit_account_id == account.id)
        credits = sum(t.amount for t in all_transfers if t.credit_account_id == account.id)
        assert (account.debits_posted, account.credits_posted) == (debits, credits)
        if account.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS:
            assert account.debits_posted <= account.credits_posted
