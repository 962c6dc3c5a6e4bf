"""Per-dataset setting: erase what is stored when a person withdraws consent.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add datasets.erase_on_withdrawal (default false)."""
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(
            sa.Column("erase_on_withdrawal", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("erase_on_withdrawal")
