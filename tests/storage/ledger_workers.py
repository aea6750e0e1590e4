"""Writer processes for the concurrency and crash tests (importable by spawned children)."""

from __future__ import annotations

import json
import random
import sys

from entrepot.kernel.clock import SystemClock
from entrepot.ledger import Ledger, Transfer, TransferFlags
from entrepot.storage.engine import create_engine_from_url

LEDGER = 978
ACCOUNTS = 12  # 1..6 limited (debits_must_not_exceed_credits), 7..12 free
FUNDING_ACCOUNT = 12


def random_batch(
    rnd: random.Random, id_base: int, size: int, plain: bool = False
) -> list[Transfer]:
    """Contested transfers with linked chains and balancing debits; or, if ``plain``, plain
    transfers from the free accounts, a batch the ledger's fast path takes (ADR 0003)."""
    if plain:
        return [
            Transfer(
                id_base + k,
                rnd.randrange(7, ACCOUNTS + 1),
                rnd.randrange(1, 7),
                rnd.randrange(1, 500),
                ledger=LEDGER,
                code=1,
            )
            for k in range(size)
        ]
    batch = []
    for k in range(size):
        dr = rnd.randrange(1, ACCOUNTS + 1)
        cr = rnd.randrange(1, ACCOUNTS)
        if cr >= dr:
            cr += 1
        flags = 0
        roll = rnd.random()
        if roll < 0.1:
            flags = TransferFlags.LINKED if k < size - 1 else 0
        elif roll < 0.2:
            flags = TransferFlags.BALANCING_DEBIT
        batch.append(
            Transfer(id_base + k, dr, cr, rnd.randrange(1, 500), ledger=LEDGER, code=1, flags=flags)
        )
    return batch


def concurrent_writer(url: str, worker: int, batches: int, size: int) -> list[tuple[int, str]]:
    """Write ``batches`` random batches; return (transfer id, result) for every event."""
    engine = create_engine_from_url(url)
    ledger = Ledger(engine, SystemClock())
    rnd = random.Random(worker)
    out: list[tuple[int, str]] = []
    for b in range(batches):
        batch = random_batch(rnd, (worker + 1) * 10**9 + b * size, size, plain=b % 3 == 2)
        results = ledger.create_transfers(batch)
        out.extend((t.id, str(r)) for t, r in zip(batch, results, strict=True))
    engine.dispose()
    return out


def crash_writer(url: str, ack_path: str, size: int) -> None:
    """Write batches forever; after each commit, log the acknowledged batch as one JSON line."""
    engine = create_engine_from_url(url)
    ledger = Ledger(engine, SystemClock())
    rnd = random.Random(7)
    with open(ack_path, "a", encoding="utf-8") as ack:
        b = 0
        while True:
            batch = random_batch(rnd, 5 * 10**9 + b * size, size, plain=b % 2 == 1)
            results = ledger.create_transfers(batch)
            ok = [
                [t.id, t.debit_account_id, t.credit_account_id, t.amount, t.flags]
                for t, r in zip(batch, results, strict=True)
                if r == "ok"
            ]
            ack.write(json.dumps({"batch": b, "first_id": batch[0].id, "size": size, "ok": ok}))
            ack.write("\n")
            ack.flush()
            b += 1


if __name__ == "__main__":
    crash_writer(sys.argv[1], sys.argv[2], int(sys.argv[3]))
