"""Tables, engines and migrations (SQLAlchemy 2, Alembic)."""

from vault.storage.database import Database
from vault.storage.migrate import upgrade_to_head

__all__ = ["Database", "upgrade_to_head"]
