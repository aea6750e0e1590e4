"""What this process's storage counters say, for tests that a use case took no write turn."""

from __future__ import annotations

from entrepot.storage import metrics


def write_transactions() -> float:
    """SQLite write transactions this process has begun (PostgreSQL's are not counted)."""
    value = metrics.REGISTRY.get_sample_value("entrepot_db_write_transactions_total")
    return 0.0 if value is None else value
