"""SQLAlchemy tables. Rows only: no key material in the clear, no decryption here.

Plaintext columns are the minimum DESIGN.md §7 allows: dataset, subject *pseudonym*, epoch and
event time, event kind, sizes and redaction counts. Everything else is inside ``envelope``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = [
    "audit_checkpoints",
    "audit_head",
    "audit_log",
    "blobs",
    "consents",
    "dataset_keks",
    "datasets",
    "erasures",
    "export_subjects",
    "exports",
    "import_records",
    "imports",
    "legal_holds",
    "metadata",
    "record_tombstones",
    "records",
    "subject_keys",
    "vault_meta",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as naive UTC and returned aware, the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        """Normalize to naive UTC; naive input is refused (it would be ambiguous)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        """Attach UTC to what the database returns."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


ID = String(32)  # uuid hex
PSEUDONYM = String(32)

datasets = Table(
    "datasets",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("retention_days", Integer, nullable=False),
    Column("consent_mode", String(8), nullable=False),
    Column("purposes", JSON, nullable=False),
    Column("jurisdictions", JSON, nullable=True),
    Column("exclusions", JSON, nullable=False),
    Column("kek_version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # Set by an erasure or sweep, cleared by the KEK rotation that makes it reach backups.
    Column("shred_pending_since", UTCDateTime, nullable=True),
    Column("erase_on_withdrawal", Boolean, nullable=False, server_default=false()),
    # What redaction replaces a finding by: "placeholder" ([EMAIL]) or "pseudonym" ([EMAIL:hex]);
    # fixed at creation (docs/redaction.md "Replacement modes").
    Column("replacement", String(16), nullable=False, server_default="placeholder"),
)

dataset_keks = Table(
    "dataset_keks",
    metadata,
    Column("dataset_id", ID, ForeignKey("datasets.id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("destroyed_at", UTCDateTime, nullable=True),
)

consents = Table(
    "consents",
    metadata,
    Column("dataset_id", ID, ForeignKey("datasets.id"), primary_key=True),
    Column("subject", PSEUDONYM, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

subject_keys = Table(
    "subject_keys",
    metadata,
    Column("id", LargeBinary(16), primary_key=True),
    Column("dataset_id", ID, ForeignKey("datasets.id"), nullable=False),
    Column("subject", PSEUDONYM, nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("kek_version", Integer, nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("wraps", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("dataset_id", "subject", "epoch"),
)

# On PostgreSQL, migration 0009 makes this table partitioned: by LIST (dataset_id), then each
# dataset by RANGE (event_time), one table per UTC day, primary key (id, dataset_id, event_time)
# (storage/partitions.py, docs/partitions.md). Columns and indexes are the same on both backends.
records = Table(
    "records",
    metadata,
    Column("id", ID, primary_key=True),
    Column("dataset_id", ID, ForeignKey("datasets.id"), nullable=False),
    Column("subject", PSEUDONYM, nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("event_time", UTCDateTime, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("size", Integer, nullable=False),
    Column("redactions", JSON, nullable=False),
    Column("rules_version", String(16), nullable=False),
    Column("sek_id", LargeBinary(16), nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("stored_at", UTCDateTime, nullable=False),
    Index("ix_records_dataset_time", "dataset_id", "event_time", "id"),
    Index("ix_records_dataset_subject_time", "dataset_id", "subject", "event_time"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", String(40), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("role", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("dataset", String(64), nullable=True),
    Column("purpose", String(64), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("reason", String(256), nullable=True),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("head_hash", String(64), nullable=False),
    Column("at", String(40), nullable=False),
    Column("key_ref", String(128), nullable=False),
    Column("public_key", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
)

vault_meta = Table(
    "vault_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

record_tombstones = Table(
    "record_tombstones",
    metadata,
    Column("id", ID, primary_key=True),
    Column("dataset_id", ID, nullable=False),
    Column("erased_at", UTCDateTime, nullable=False),
    Column("erasure_id", ID, nullable=True),
)

erasures = Table(
    "erasures",
    metadata,
    Column("id", ID, primary_key=True),
    Column("subject_hash", String(64), nullable=False),
    Column("requested_by", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("certificate", Text, nullable=False),
)

legal_holds = Table(
    "legal_holds",
    metadata,
    Column("id", ID, primary_key=True),
    Column("dataset_id", ID, ForeignKey("datasets.id"), nullable=False),
    # NULL: the whole dataset is held; else the pseudonym of the one subject held.
    Column("subject", PSEUDONYM, nullable=True),
    Column("reason", String(256), nullable=False),
    Column("set_by", String(64), nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
    UniqueConstraint("dataset_id", "subject"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("dataset_id", ID, ForeignKey("datasets.id"), nullable=False),
    Column("subject", PSEUDONYM, nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("taken_at", UTCDateTime, nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("regions", Integer, nullable=False),  # how many regions were blacked out
    Column("sek_id", LargeBinary(16), nullable=False),
    Column("sealed_key", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("stored_at", UTCDateTime, nullable=False),
    Index("ix_blobs_dataset_subject", "dataset_id", "subject", "taken_at"),
)

exports = Table(
    "exports",
    metadata,
    Column("id", ID, primary_key=True),
    Column("dataset_id", ID, ForeignKey("datasets.id"), nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("requested_by", String(64), nullable=False),
    Column("linkage", String(16), nullable=False),
    Column("filters", Text, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),  # NULL: interrupted
    Column("records", Integer, nullable=False),
    Column("ids_sha256", String(64), nullable=True),
)

export_subjects = Table(
    "export_subjects",
    metadata,
    Column("export_id", ID, primary_key=True),
    Column("subject", PSEUDONYM, primary_key=True),
    Column("records", Integer, nullable=False),
    Index("ix_export_subjects_subject", "subject"),
)

# Imports (issue "Protect datasets..."): progress and counts only, never source content. The
# fingerprint is a digest (the source's name is not kept: it may name a person).
imports = Table(
    "imports",
    metadata,
    Column("id", ID, primary_key=True),
    Column("dataset_id", ID, ForeignKey("datasets.id"), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    # A file source's whole content (sha256): a later run refuses a file changed further in.
    Column("content_sha256", String(64), nullable=True),
    Column("format", String(16), nullable=False),
    Column("mapping_sha256", String(64), nullable=False),
    Column("requested_by", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # running, done
    Column("position", BigInteger, nullable=False),  # source rows fully handled
    Column("rows_read", BigInteger, nullable=False),
    Column("stored", BigInteger, nullable=False),
    # Links of stored records that erasures and sweeps removed with them (import_links).
    Column("removed", BigInteger, nullable=False, server_default="0"),
    Column("invalid", BigInteger, nullable=False),
    Column("refused", JSON, nullable=False),  # reason -> count
    Column("redactions", JSON, nullable=False),  # placeholder type -> count
    # {"rows": the first invalid row numbers, "causes": cause -> count}; never row content.
    Column("invalid_detail", JSON, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    UniqueConstraint("dataset_id", "fingerprint"),
)

import_records = Table(
    "import_records",
    metadata,
    Column("import_id", ID, primary_key=True),
    Column("row", BigInteger, primary_key=True),
    Column("record_id", ID, nullable=False),
    # Erasure and sweeps remove the links of the records they delete (by record id).
    Index("ix_import_records_record_id", "record_id"),
)
