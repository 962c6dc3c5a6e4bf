"""Count, per import, the links that erasures and sweeps removed with their records.

An import's verification compares the records it stored with the links it keeps (source row ->
record). Erasures and retention sweeps delete the links of what they delete, so without this
count a later run of the same import could never balance again (and its source could never be
retired).

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
    """Add imports.removed (0: links removed before it are not counted; see docs/import.md)."""
    with op.batch_alter_table("imports") as batch:
        batch.add_column(sa.Column("removed", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("imports") as batch:
        batch.drop_column("removed")
