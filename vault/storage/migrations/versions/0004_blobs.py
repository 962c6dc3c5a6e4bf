"""Blobs (screenshots), encrypted in segments under their own key.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vault.storage.tables import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the blobs table."""
    op.create_table(
        "blobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("dataset_id", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(32), nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("taken_at", UTCDateTime, nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("regions", sa.Integer, nullable=False),
        sa.Column("sek_id", sa.LargeBinary(16), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("stored_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_blobs"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_blobs_dataset_id_datasets"
        ),
    )
    op.create_index("ix_blobs_dataset_subject", "blobs", ["dataset_id", "subject", "taken_at"])


def downgrade() -> None:
    """Drop the blobs table."""
    op.drop_index("ix_blobs_dataset_subject", table_name="blobs")
    op.drop_table("blobs")
