"""Storage: engines from URLs, the unit of work, migrations and dialect helpers.

Knows no context. SQLite (embedded, default) and PostgreSQL (production) share one code path
through SQLAlchemy 2 Core; what differs between them lives here.
"""

from entrepot.storage.engine import create_engine_from_settings, is_postgres, is_sqlite
from entrepot.storage.migrate import current_revision, head_revision, upgrade
from entrepot.storage.uow import UnitOfWork

__all__ = [
    "UnitOfWork",
    "create_engine_from_settings",
    "current_revision",
    "head_revision",
    "is_postgres",
    "is_sqlite",
    "upgrade",
]
