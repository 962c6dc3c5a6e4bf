"""Initial schema: datasets, keys, consent, records, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vault.storage.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(32)


def upgrade() -> None:
    """Create every table of schema version 1."""
    op.create_table(
        "datasets",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("retention_days", sa.Integer, nullable=False),
        sa.Column("consent_mode", sa.String(8), nullable=False),
        sa.Column("purposes", sa.JSON, nullable=False),
        sa.Column("jurisdictions", sa.JSON, nullable=True),
        sa.Column("exclusions", sa.JSON, nullable=False),
        sa.Column("kek_version", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.UniqueConstraint("name", name="uq_datasets_name"),
    )
    op.create_table(
        "dataset_keks",
        sa.Column("dataset_id", ID, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("destroyed_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("dataset_id", "version", name="pk_dataset_keks"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_dataset_keks_dataset_id_datasets"
        ),
    )
    op.create_table(
        "consents",
        sa.Column("dataset_id", ID, nullable=False),
        sa.Column("subject", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("dataset_id", "subject", name="pk_consents"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_consents_dataset_id_datasets"
        ),
    )
    op.create_table(
        "subject_keys",
        sa.Column("id", sa.LargeBinary(16), nullable=False),
        sa.Column("dataset_id", ID, nullable=False),
        sa.Column("subject", sa.String(32), nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("kek_version", sa.Integer, nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("wraps", sa.BigInteger, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subject_keys"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_subject_keys_dataset_id_datasets"
        ),
        sa.UniqueConstraint(
            "dataset_id", "subject", "epoch", name="uq_subject_keys_dataset_id_subject_epoch"
        ),
    )
    op.create_table(
        "records",
        sa.Column("id", ID, nullable=False),
        sa.Column("dataset_id", ID, nullable=False),
        sa.Column("subject", sa.String(32), nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("event_time", UTCDateTime, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("redactions", sa.JSON, nullable=False),
        sa.Column("rules_version", sa.String(16), nullable=False),
        sa.Column("sek_id", sa.LargeBinary(16), nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
        sa.Column("stored_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_records"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_records_dataset_id_datasets"
        ),
    )
    op.create_index("ix_records_dataset_time", "records", ["dataset_id", "event_time", "id"])
    op.create_index(
        "ix_records_dataset_subject_time", "records", ["dataset_id", "subject", "event_time"]
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("role", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=True),
        sa.Column("purpose", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(256), nullable=True),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    op.bulk_insert(
        sa.table("audit_head", sa.column("id"), sa.column("seq"), sa.column("hash")),
        [{"id": 1, "seq": 0, "hash": "0" * 64}],
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("key_ref", sa.String(128), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_checkpoints"),
    )
    op.create_table(
        "vault_meta",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_vault_meta"),
    )


def downgrade() -> None:
    """Schema version 1 is the first; there is nothing to go back to."""
    raise NotImplementedError("the initial schema cannot be downgraded")
