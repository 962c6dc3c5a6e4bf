"""Run the Alembic migrations to head; the service does this itself on start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from vault.storage.database import Database

__all__ = ["MIGRATIONS_DIR", "upgrade_to_head"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def upgrade_to_head(db: Database) -> None:
    """Bring the schema to the newest revision inside one transaction."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.write() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
