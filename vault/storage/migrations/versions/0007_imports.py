"""Imports: resumable, exactly-once progress of `tvault import`, and which records each stored.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vault.storage.tables import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add imports and import_records."""
    op.create_table(
        "imports",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("dataset_id", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("mapping_sha256", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("rows_read", sa.BigInteger, nullable=False),
        sa.Column("stored", sa.BigInteger, nullable=False),
        sa.Column("invalid", sa.BigInteger, nullable=False),
        sa.Column("refused", sa.JSON, nullable=False),
        sa.Column("redactions", sa.JSON, nullable=False),
        sa.Column("invalid_detail", sa.JSON, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_imports"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_imports_dataset_id_datasets"
        ),
        sa.UniqueConstraint("dataset_id", "fingerprint", name="uq_imports_dataset_id_fingerprint"),
    )
    op.create_table(
        "import_records",
        sa.Column("import_id", sa.String(32), nullable=False),
        sa.Column("row", sa.BigInteger, nullable=False),
        sa.Column("record_id", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("import_id", "row", name="pk_import_records"),
    )


def downgrade() -> None:
    """Drop what upgrade added."""
    op.drop_table("import_records")
    op.drop_table("imports")
