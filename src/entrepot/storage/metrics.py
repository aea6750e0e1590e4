"""How busy the database's one writer is, for the operator's monitoring.

Writes to one database are serialised: SQLite has a single writer, and the scheme's writes on
PostgreSQL queue on the ledger's meta row lock. Concurrent writers share that turn (group
commit, ``group.py``), but when the turn is taken nearly all the time, more workers, cores or
clients add latency, not payments: the writer is the limit. These counters say how near it
is: ``rate(entrepot_db_write_held_seconds_total[1m])`` summed over a server's workers is the
share of each second the write lock was held (1.0: saturated); the wait counter says what
writers paid to queue for it; the commit counter, what the durable COMMITs (their fsync)
took of the held time; members per batch, how much group commit shares.

Counted in this process (a worker of ``entrepot serve`` writes them to the server's
multiprocess directory, so a scrape sums every worker's, as for the request counts in
``entrypoints/api/request_metrics.py``; the deadline pass that a server of several workers
runs in its main process, and other tools writing the file, are not counted). A few clock
reads and counter increments per write transaction and per batch, none per statement;
a failed increment never fails the write."""

from __future__ import annotations

from prometheus_client.metrics import Counter
from prometheus_client.registry import CollectorRegistry

#: the counters below, for a scrape in a single process (``/v1/metrics`` adds it)
REGISTRY = CollectorRegistry(auto_describe=False)

WRITE_TRANSACTIONS = Counter(
    "entrepot_db_write_transactions",
    "SQLite write transactions begun (BEGIN IMMEDIATE) by this process",
    registry=REGISTRY,
)
WRITE_WAIT = Counter(
    "entrepot_db_write_wait_seconds",
    "Time SQLite writers spent queueing for the write lock (this process's writers, then "
    "the other processes'), summed over writers",
    registry=REGISTRY,
)
WRITE_HELD = Counter(
    "entrepot_db_write_held_seconds",
    "Time this process held the SQLite write lock (from its first writer's BEGIN IMMEDIATE "
    "to its last writer's COMMIT or ROLLBACK)",
    registry=REGISTRY,
)
COMMIT_SECONDS = Counter(
    "entrepot_db_commit_seconds",
    "Time SQLite COMMITs of write transactions took, their fsync included",
    registry=REGISTRY,
)
GROUP_BATCHES = Counter(
    "entrepot_group_commit_batches",
    "Shared transactions of the scheme's writes committed (one COMMIT each)",
    registry=REGISTRY,
)
GROUP_MEMBERS = Counter(
    "entrepot_group_commit_members",
    "Writes (use cases and small writes sent with them) committed in those transactions",
    registry=REGISTRY,
)
GROUP_HELD = Counter(
    "entrepot_group_commit_held_seconds",
    "Time the scheme's shared transactions held the write lock (SQLite's, or the ledger's "
    "meta row lock on PostgreSQL), from their BEGIN to the end of their COMMIT or ROLLBACK",
    registry=REGISTRY,
)

__all__ = [
    "COMMIT_SECONDS",
    "GROUP_BATCHES",
    "GROUP_HELD",
    "GROUP_MEMBERS",
    "REGISTRY",
    "WRITE_HELD",
    "WRITE_TRANSACTIONS",
    "WRITE_WAIT",
]
