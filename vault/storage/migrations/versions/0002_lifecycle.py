"""Lifecycle: erasure records, record tombstones, shred-pending time per dataset.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vault.storage.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the lifecycle tables and the shred-pending column."""
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("shred_pending_since", UTCDateTime, nullable=True))
    op.create_table(
        "record_tombstones",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("dataset_id", sa.String(32), nullable=False),
        sa.Column("erased_at", UTCDateTime, nullable=False),
        sa.Column("erasure_id", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_record_tombstones"),
    )
    op.create_table(
        "erasures",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("subject_hash", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("certificate", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_erasures"),
    )


def downgrade() -> None:
    """Drop what upgrade added."""
    op.drop_table("erasures")
    op.drop_table("record_tombstones")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("shred_pending_since")
