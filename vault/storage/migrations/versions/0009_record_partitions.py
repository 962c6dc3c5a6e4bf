"""PostgreSQL: partition records by dataset, then by UTC day (docs/partitions.md).

Nothing changes on SQLite. On PostgreSQL the plain table is renamed, a partitioned ``records``
takes its place, a partition is made for every dataset and every day that has rows, the rows
are moved, and the old table is dropped — all inside the migration's one transaction.

The primary key becomes ``(id, dataset_id, event_time)``: PostgreSQL requires the partition
keys in it. Record ids stay unique because the vault makes them (random 128-bit).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vault.storage.partitions import Partition, dataset_ddl, day_ddl

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_OLD = "records_unpartitioned"


def _rename_old() -> None:
    op.execute(f"ALTER TABLE records RENAME TO {_OLD}")
    op.execute(f"ALTER TABLE {_OLD} RENAME CONSTRAINT pk_records TO pk_{_OLD}")
    op.execute(f"ALTER TABLE {_OLD} RENAME CONSTRAINT fk_records_dataset_id_datasets TO fk_{_OLD}")
    op.execute(f"ALTER INDEX ix_records_dataset_time RENAME TO ix_{_OLD}_time")
    op.execute(f"ALTER INDEX ix_records_dataset_subject_time RENAME TO ix_{_OLD}_subject")


def upgrade() -> None:
    """Replace records by its partitioned form (PostgreSQL only)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _rename_old()
    op.execute(
        f"CREATE TABLE records (LIKE {_OLD} INCLUDING DEFAULTS) PARTITION BY LIST (dataset_id)"
    )
    op.execute(
        "ALTER TABLE records ADD CONSTRAINT pk_records PRIMARY KEY (id, dataset_id, event_time)"
    )
    op.execute(
        "ALTER TABLE records ADD CONSTRAINT fk_records_dataset_id_datasets"
        " FOREIGN KEY (dataset_id) REFERENCES datasets (id)"
    )
    # The same indexes as the plain table (and as declared in tables.py), made on every part.
    op.execute("CREATE INDEX ix_records_dataset_time ON records (dataset_id, event_time, id)")
    op.execute(
        "CREATE INDEX ix_records_dataset_subject_time ON records (dataset_id, subject, event_time)"
    )
    for dataset_id in bind.execute(sa.text("SELECT id FROM datasets ORDER BY id")).scalars():
        for statement in dataset_ddl(dataset_id):
            op.execute(statement)
    old = sa.table(_OLD, sa.column("dataset_id"), sa.column("event_time"))
    day = sa.cast(old.c.event_time, sa.Date) - sa.cast(sa.literal("1970-01-01"), sa.Date)
    days = bind.execute(
        sa.select(old.c.dataset_id, day).distinct().order_by(old.c.dataset_id, day)
    ).all()
    for dataset_id, day in days:
        for statement in day_ddl(Partition(dataset_id, int(day))):
            op.execute(statement)
    op.execute(f"INSERT INTO records SELECT * FROM {_OLD}")  # noqa: S608 (fixed table name)
    op.execute(f"DROP TABLE {_OLD}")


def downgrade() -> None:
    """Back to one plain table (PostgreSQL only)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(f"CREATE TABLE {_OLD} (LIKE records INCLUDING DEFAULTS)")
    op.execute(f"INSERT INTO {_OLD} SELECT * FROM records")  # noqa: S608 (fixed table name)
    op.execute("DROP TABLE records CASCADE")
    op.execute(f"ALTER TABLE {_OLD} RENAME TO records")
    op.execute("ALTER TABLE records ADD CONSTRAINT pk_records PRIMARY KEY (id)")
    op.execute(
        "ALTER TABLE records ADD CONSTRAINT fk_records_dataset_id_datasets"
        " FOREIGN KEY (dataset_id) REFERENCES datasets (id)"
    )
    op.execute("CREATE INDEX ix_records_dataset_time ON records (dataset_id, event_time, id)")
    op.execute(
        "CREATE INDEX ix_records_dataset_subject_time ON records (dataset_id, subject, event_time)"
    )
