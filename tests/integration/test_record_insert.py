"""``insert_records``: one insert on SQLite, one COPY on PostgreSQL, the same rows either way."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, StatementError

from tests.conftest import make_dataset
from vault.bootstrap import Vault
from vault.domain.events import epoch_of
from vault.storage.record_insert import insert_records
from vault.storage.tables import datasets, records

_PLUS_TWO = timezone(timedelta(hours=2))


def _dataset(vault: Vault, when: datetime) -> str:
    make_dataset(vault)
    with vault.db.read() as conn:
        ds_id: str = conn.execute(select(datasets.c.id).where(datasets.c.name == "ux")).scalar_one()
    partitions = getattr(vault.db, "partitions", None)
    if partitions is not None:
        partitions.ensure(ds_id, [epoch_of(when)])
    return ds_id


def _rows(ds_id: str, count: int, when: datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": uuid.uuid4().hex,
            "dataset_id": ds_id,
            "subject": f"{i:032x}",
            "epoch": epoch_of(when),
            # An offset other than UTC: stored as the same instant.
            "event_time": (when + timedelta(milliseconds=i)).astimezone(
                timezone(timedelta(hours=2))
            ),
            "kind": "key_run",
            "size": 10 + i,
            "redactions": {} if i % 2 else {"EMAIL": i, "PHONE": 1},
            "rules_version": "5",
            "sek_id": bytes(range(16)),
            "envelope": b"\x00\\\n\t'\"" + bytes([i % 256]) * 40,  # escapes COPY must keep
            "stored_at": when,
        }
        for i in range(count)
    ]


def test_rows_round_trip(vault: Vault, clock: Any) -> None:
    rows = _rows(_dataset(vault, clock()), 300, clock())
    with vault.db.write() as conn:
        insert_records(conn, rows)
    with vault.db.read() as conn:
        stored = {r.id: r for r in conn.execute(select(records))}
    assert len(stored) == len(rows)
    for row in rows:
        got = stored[row["id"]]
        assert got.event_time == row["event_time"].astimezone(UTC)
        assert got.event_time.tzinfo is not None
        assert got.stored_at == row["stored_at"]
        assert got.redactions == row["redactions"]
        assert bytes(got.envelope) == row["envelope"]
        assert bytes(got.sek_id) == row["sek_id"]
        assert (got.subject, got.epoch, got.kind, got.size, got.rules_version) == (
            row["subject"],
            row["epoch"],
            row["kind"],
            row["size"],
            row["rules_version"],
        )


def test_a_bad_row_writes_nothing(vault: Vault, clock: Any) -> None:
    ds_id = _dataset(vault, clock())
    rows = _rows(ds_id, 50, clock())
    rows[30] = {**rows[30], "event_time": datetime(2026, 1, 1)}  # naive: ambiguous
    # (SQLAlchemy wraps the column type's ValueError in a StatementError; COPY raises it bare.)
    with pytest.raises((ValueError, StatementError), match="naive"), vault.db.write() as conn:
        insert_records(conn, rows)
    rows = _rows(ds_id, 50, clock())
    rows[40] = dict(rows[0])  # a duplicate key (PostgreSQL's holds id, dataset and time)
    with pytest.raises(IntegrityError), vault.db.write() as conn:
        insert_records(conn, rows)
    with vault.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(records)).scalar_one() == 0


def test_no_rows_is_a_no_op(vault: Vault) -> None:
    with vault.db.write() as conn:
        insert_records(conn, [])
    with vault.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(records)).scalar_one() == 0
