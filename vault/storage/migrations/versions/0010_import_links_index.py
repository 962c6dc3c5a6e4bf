"""Index import links by record id: erasures and sweeps delete the links of what they delete.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ix_import_records_record_id."""
    op.create_index("ix_import_records_record_id", "import_records", ["record_id"])


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_import_records_record_id", table_name="import_records")
