"""Export manifests: which people's records went into which export.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vault.storage.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add exports and export_subjects."""
    op.create_table(
        "exports",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("dataset_id", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("linkage", sa.String(16), nullable=False),
        sa.Column("filters", sa.Text, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("records", sa.Integer, nullable=False),
        sa.Column("ids_sha256", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_exports"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_exports_dataset_id_datasets"
        ),
    )
    op.create_table(
        "export_subjects",
        sa.Column("export_id", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(32), nullable=False),
        sa.Column("records", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("export_id", "subject", name="pk_export_subjects"),
    )
    op.create_index("ix_export_subjects_subject", "export_subjects", ["subject"])


def downgrade() -> None:
    """Drop what upgrade added."""
    op.drop_index("ix_export_subjects_subject", table_name="export_subjects")
    op.drop_table("export_subjects")
    op.drop_table("exports")
