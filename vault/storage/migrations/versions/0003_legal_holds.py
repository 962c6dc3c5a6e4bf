"""Legal holds on a dataset or one subject of it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vault.storage.tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the legal_holds table."""
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("dataset_id", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(32), nullable=True),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("set_by", sa.String(64), nullable=False),
        sa.Column("set_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_legal_holds"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_legal_holds_dataset_id_datasets"
        ),
        sa.UniqueConstraint("dataset_id", "subject", name="uq_legal_holds_dataset_id_subject"),
    )


def downgrade() -> None:
    """Drop the legal_holds table."""
    op.drop_table("legal_holds")
