"""Per-dataset redaction replacement mode: typed placeholders or keyed pseudonyms.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add datasets.replacement (existing datasets keep placeholders)."""
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(
            sa.Column("replacement", sa.String(16), nullable=False, server_default="placeholder")
        )


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("replacement")
