"""Alembic environment: always run by the vault itself on a connection it hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from vault.storage.tables import metadata

connection = context.config.attributes["connection"]
if connection.dialect.name == "postgresql":
    # Several replicas may start at once: only one migrates, the others wait, then see head.
    connection.execute(text("SELECT pg_advisory_xact_lock(7427013)"))
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
context.run_migrations()
