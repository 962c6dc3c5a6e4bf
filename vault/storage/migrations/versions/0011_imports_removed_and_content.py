"""Count, per import, the links that erasures and sweeps removed with their records; keep a
digest of a file source's whole content.

An import's verification compares the records it stored with the links it keeps (source row ->
record). Erasures and retention sweeps delete the links of what they delete, so without this
count a later run of the same import could never balance again (and its source could never be
retired). A file source is known by its name, size and first MiB (its fingerprint); its whole
content's digest tells a later run that a file changed further in (resuming or retiring it then
would resume or destroy other rows than those imported).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add imports.removed (0: links removed before it are not counted; see docs/import.md)
    and imports.content_sha256 (NULL until the next run of the import records it)."""
    with op.batch_alter_table("imports") as batch:
        batch.add_column(sa.Column("removed", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("content_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop the columns."""
    with op.batch_alter_table("imports") as batch:
        batch.drop_column("content_sha256")
        batch.drop_column("removed")
