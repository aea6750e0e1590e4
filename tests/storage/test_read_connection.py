"""``read_connection``: a snapshot that cannot write (on SQLite and PostgreSQL alike), and on
PostgreSQL does not throw away the connection's prepared statements when it ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from entrepot.storage.engine import (
    WriteInRead,
    create_engine_from_url,
    driver_connection,
    read_connection,
)
from tests.conftest import (
    POSTGRES_URL,
    create_postgres_schema,
    drop_postgres_schema,
    postgres_schema_url,
)


def test_a_read_sees_one_snapshot_and_leaves_nothing_open(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO probe VALUES (1)")
    with read_connection(engine) as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM probe").scalar() == 1
        with engine.begin() as other:  # a writer is not blocked by the reader
            other.exec_driver_sql("INSERT INTO probe VALUES (2)")
        assert conn.exec_driver_sql("SELECT count(*) FROM probe").scalar() == 1  # snapshot
    assert not conn.in_transaction()
    with read_connection(engine) as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM probe").scalar() == 2


def test_a_write_through_a_read_on_sqlite_is_undone_and_reported(tmp_path: Path) -> None:
    """SQLite has no read-only transaction: a write through a read ran outside the writers'
    queue and was rolled back, unreported, when the read ended. It is still rolled back,
    and now reported, through SQLAlchemy and the raw driver cursor alike."""
    engine = create_engine_from_url(f"sqlite:///{tmp_path / 'r.db'}", pool_size=1, max_overflow=0)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
    with pytest.raises(WriteInRead, match="rolled back"), read_connection(engine) as conn:
        conn.exec_driver_sql("INSERT INTO probe VALUES (1)")
    with pytest.raises(WriteInRead), read_connection(engine) as conn:
        driver_connection(conn).execute("UPDATE probe SET x = 2")  # no row: not a change
        driver_connection(conn).execute("INSERT INTO probe VALUES (2)")
    with read_connection(engine) as conn:  # reads as before
        assert conn.exec_driver_sql("SELECT count(*) FROM probe").scalar() == 0
    with engine.begin() as conn:  # the one pooled connection writes as before
        conn.exec_driver_sql("INSERT INTO probe VALUES (3)")
    with read_connection(engine) as conn:
        assert conn.exec_driver_sql("SELECT x FROM probe").scalars().all() == [3]
    engine.dispose()


# PostgreSQL only (SQLite has neither read-only transactions nor psycopg's statement cache):
# defined only when a server is configured, as the other PostgreSQL variants are.
if POSTGRES_URL:

    @pytest.fixture
    def pg_url() -> Iterator[str]:
        schema = create_postgres_schema()
        try:
            yield postgres_schema_url(schema)
        finally:
            drop_postgres_schema(schema)

    def test_a_read_on_postgres_cannot_write(pg_url: str) -> None:
        engine = create_engine_from_url(pg_url)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
        with pytest.raises(sa.exc.DBAPIError, match="read-only"), read_connection(engine) as conn:
            conn.exec_driver_sql("INSERT INTO probe VALUES (1)")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM probe").scalar() == 0
        engine.dispose()

    def test_reads_on_postgres_keep_the_connections_prepared_statements(pg_url: str) -> None:
        """psycopg prepares a statement run often enough, and deallocates all of a connection's
        on a ROLLBACK: reads end with a COMMIT, so the next read and write find them."""
        engine = create_engine_from_url(pg_url, pool_size=1, max_overflow=0)
        query = "SELECT count(*) FROM pg_class WHERE relname = %(name)s"
        for _ in range(8):  # past psycopg's prepare threshold (5)
            with read_connection(engine) as conn:
                conn.exec_driver_sql(query, {"name": "probe"}).scalar()
        with engine.connect() as conn:  # the same pooled connection
            prepared = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_prepared_statements "
                "WHERE strpos(statement, 'pg_class') > 0"
            ).scalar()
        assert prepared == 1
        engine.dispose()

    def test_writes_on_postgres_run_read_committed_whatever_the_servers_default(
        pg_url: str,
    ) -> None:
        """Writers queue on the ledger's meta row lock, which holds only under READ
        COMMITTED (ADR 0002): a server defaulting to SERIALIZABLE failed every writer that
        waited, "could not serialize access" (found by a review). Writes run READ COMMITTED
        whatever the server's default; reads keep their REPEATABLE READ snapshot, and a
        connection back from a read writes READ COMMITTED again."""
        url = pg_url + "%20-cdefault_transaction_isolation%3Dserializable"
        engine = create_engine_from_url(url, pool_size=1, max_overflow=0)
        level = "SELECT current_setting('transaction_isolation')"
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW default_transaction_isolation").scalar() == (
                "serializable"
            )
        with engine.begin() as conn:
            assert conn.exec_driver_sql(level).scalar() == "read committed"
        with read_connection(engine) as conn:
            assert conn.exec_driver_sql(level).scalar() == "repeatable read"
        with engine.begin() as conn:  # the same pooled connection, after the read
            assert conn.exec_driver_sql(level).scalar() == "read committed"
        engine.dispose()
