"""``insert_records``: one insert on SQLite, one COPY on PostgreSQL, the same rows either way."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from tests.conftest import make_dataset
from vault.bootstrap import Vault
from vault.domain.events import epoch_of
from vault.storage import record_insert
from vault.storage.record_insert import insert_record_parts, insert_records
from vault.storage.tables import datasets, import_records, records

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


@pytest.mark.parametrize("count", [1, 7, 8, 300])  # small batches: a plain insert on PostgreSQL
def test_rows_round_trip(vault: Vault, clock: Any, count: int) -> None:
    rows = _rows(_dataset(vault, clock()), count, clock())
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


@pytest.mark.parametrize("count", [3, 50])
def test_a_bad_row_writes_nothing(vault: Vault, clock: Any, count: int) -> None:
    ds_id = _dataset(vault, clock())
    rows = _rows(ds_id, count, clock())
    rows[count - 1] = {**rows[count - 1], "event_time": datetime(2026, 1, 1)}  # naive
    # The column type's ValueError, wrapped as SQLAlchemy's own insert wraps it.
    with pytest.raises(StatementError, match="naive"), vault.db.write() as conn:
        insert_records(conn, rows)
    rows = _rows(ds_id, count, clock())
    rows[count - 1] = dict(rows[0])  # a duplicate key (PostgreSQL's: id, dataset and time)
    with pytest.raises(IntegrityError), vault.db.write() as conn:
        insert_records(conn, rows)
    with vault.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(records)).scalar_one() == 0


def test_no_rows_is_a_no_op(vault: Vault) -> None:
    with vault.db.write() as conn:
        insert_records(conn, [])
    with vault.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(records)).scalar_one() == 0


def _raw(vault: Vault, ds_id: str) -> dict[int, tuple[Any, ...]]:
    """Every stored column but the id, as the database holds it (SQLite: storage class and
    literal; PostgreSQL: the text form), by ``size`` (unique per row here)."""
    names = [c.name for c in records.columns if c.name != "id"]
    if vault.db.is_sqlite:
        cols = ", ".join(f"typeof({n}), quote({n})" for n in names)
    else:
        cols = ", ".join(f"pg_typeof({n})::text, {n}::text" for n in names)
    sql = f"SELECT size, {cols} FROM records WHERE dataset_id = :ds"
    with vault.db.read() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.execute(text(sql), {"ds": ds_id})}


def _stored_pairs(
    vault: Vault, ds_id: str, rows: list[dict[str, Any]], column: str
) -> list[tuple[Any, Any]]:
    """For each of ``rows`` (stored by SQLAlchemy's insert) and its copy (stored by
    ``insert_records`` with ``size`` + 1000): ``column`` as the database holds each."""
    stored = _raw(vault, ds_id)
    names = [c.name for c in records.columns if c.name != "id"]
    at = 2 * names.index(column) + 1
    return [(stored[row["size"]][at], stored[row["size"] + 1000][at]) for row in rows]


def test_same_stored_bytes_as_the_sqlalchemy_insert(vault: Vault, clock: Any) -> None:
    """The fast path stores exactly what SQLAlchemy's insert stores, value for value."""
    when = clock().replace(microsecond=123456)
    ds_id = _dataset(vault, when)
    rows = _rows(ds_id, 40, when)
    for i, row in enumerate(rows):  # the value shapes the fast path treats, and others
        if i % 4 == 1:
            row["event_time"] = row["event_time"].astimezone(UTC)  # UTC itself
        elif i % 4 == 2:
            row["event_time"] = row["event_time"].astimezone(ZoneInfo("America/New_York"))
        elif i % 4 == 3:
            row["event_time"] = row["event_time"].replace(microsecond=0)
        if i % 5 == 0:
            row["redactions"] = Counter({"URL": 3})  # a dict subclass
        elif i % 5 == 1:
            row["redactions"] = {"é": 1, "NAME": 2}
    with vault.db.write() as conn:
        conn.execute(insert(records), rows)  # what SQLAlchemy stores
    again = [{**row, "id": uuid.uuid4().hex, "size": row["size"] + 1000} for row in rows]
    with vault.db.write() as conn:
        insert_records(conn, again)
    stored = _raw(vault, ds_id)
    assert len(stored) == 2 * len(rows)
    names = [c.name for c in records.columns if c.name != "id"]
    size_literal = 2 * names.index("size") + 1  # differs on purpose (it keys the rows)
    for row in rows:
        old, new = stored[row["size"]], stored[row["size"] + 1000]
        assert old[size_literal] != new[size_literal]
        assert [v for k, v in enumerate(old) if k != size_literal] == [
            v for k, v in enumerate(new) if k != size_literal
        ]


def test_rows_in_a_savepoint_roll_back_with_it(vault: Vault, clock: Any) -> None:
    """Written through the driver, rows still belong to the SQLAlchemy transaction: a
    savepoint that fails (as one batch of a group commit) takes its rows with it, and the
    rest commits."""
    ds_id = _dataset(vault, clock())
    kept = _rows(ds_id, 5, clock())
    dropped = [*_rows(ds_id, 7, clock()), kept[0]]  # the last one is a duplicate
    with vault.db.write() as conn:
        insert_records(conn, kept)
        with pytest.raises(IntegrityError), conn.begin_nested():
            insert_records(conn, dropped)
    with vault.db.read() as conn:
        ids = set(conn.execute(select(records.c.id)).scalars())
    assert ids == {row["id"] for row in kept}


def test_equal_values_keep_their_own_bytes(vault: Vault, clock: Any) -> None:
    """A column whose values are all equal is still stored value by value: equal counts in
    another key order, or one instant at two offsets, keep what each would store."""
    when = clock()
    ds_id = _dataset(vault, when)
    rows = _rows(ds_id, 6, when)
    counts, reordered, shifted = (
        {"EMAIL": 1, "URL": 2},
        {"URL": 2, "EMAIL": 1},
        when.astimezone(_PLUS_TWO),
    )
    for i, row in enumerate(rows):  # the first and the last share their objects
        middle = 0 < i < len(rows) - 1
        row["redactions"] = reordered if middle and i % 2 else counts
        row["stored_at"] = shifted if middle and i % 2 else when
    with vault.db.write() as conn:
        conn.execute(insert(records), rows)
    again = [{**row, "id": uuid.uuid4().hex, "size": row["size"] + 1000} for row in rows]
    with vault.db.write() as conn:
        insert_records(conn, again)
    pairs = _stored_pairs(vault, ds_id, rows, "redactions")
    assert len({copy for _, copy in pairs}) == 2
    for first, copy in pairs:
        assert first == copy


def _parts(rows: list[dict[str, Any]], size: int, made: list[int]) -> Any:
    """``rows`` in parts of ``size``, counting in ``made`` the parts handed out."""
    for start in range(0, len(rows), size):
        made.append(start)
        yield rows[start : start + size]


@pytest.mark.parametrize("count", [3, 250])  # a plain insert and a COPY on PostgreSQL
def test_rows_made_part_by_part_are_the_same_rows(vault: Vault, clock: Any, count: int) -> None:
    rows = _rows(_dataset(vault, clock()), count, clock())
    made: list[int] = []
    with vault.db.write() as conn:
        insert_record_parts(conn, _parts(rows, 100, made), count)
    assert len(made) == -(-count // 100)  # every part consumed
    with vault.db.read() as conn:
        stored = {
            r.id: (r.event_time, bytes(r.envelope), r.redactions)
            for r in conn.execute(select(records))
        }
    assert stored == {
        r["id"]: (r["event_time"].astimezone(UTC), r["envelope"], r["redactions"]) for r in rows
    }


def test_a_part_that_fails_leaves_nothing(vault: Vault, clock: Any) -> None:
    rows = _rows(_dataset(vault, clock()), 300, clock())

    def parts() -> Any:
        yield rows[:100]
        yield rows[100:200]
        raise RuntimeError("sealing failed")

    with pytest.raises(RuntimeError, match="sealing failed"), vault.db.write() as conn:
        insert_record_parts(conn, parts(), len(rows))
    with vault.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(records)).scalar_one() == 0
    with vault.db.write() as conn:  # (the connection is usable again)
        insert_records(conn, rows[:10])
    with vault.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(records)).scalar_one() == 10


PG_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@PG_ONLY
@pytest.mark.parametrize(
    ("column", "value"),
    [("size", 2**31), ("epoch", -(2**31) - 1), ("size", True), ("size", "12")],
    ids=["past-int4", "below-int4", "bool", "text"],
)
def test_an_integer_out_of_its_column_is_refused(
    vault: Vault, clock: Any, column: str, value: Any
) -> None:
    """A binary COPY would wrap 2**31 to -2**31 and write True as 1: such a value is refused
    before anything is sent, and nothing of the batch is written."""
    ds_id = _dataset(vault, clock())
    rows = _rows(ds_id, 50, clock())
    rows[20] = {**rows[20], column: value}
    with pytest.raises(StatementError, match="int4"), vault.db.write() as conn:
        insert_records(conn, rows)
    with vault.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(records)).scalar_one() == 0


@PG_ONLY
def test_postgres_copies_in_the_binary_format(vault: Vault, clock: Any) -> None:
    """The envelope goes as its bytes, times as integers: every column of ``records`` has a
    wire type, and the rows stored are the rows given."""
    dialect = vault.db.engine.dialect
    plan = record_insert._plan_of(dialect)
    assert plan.statement.endswith("(FORMAT BINARY)")
    assert plan.types == record_insert.binary_types(records, dialect)
    assert plan.types is not None
    assert len(plan.types) == len(records.columns)
    rows = _rows(_dataset(vault, clock()), 40, clock())
    with vault.db.write() as conn:
        insert_records(conn, rows)
    with vault.db.read() as conn:
        stored = {
            r.id: (r.event_time, bytes(r.envelope), r.redactions, r.size, r.sek_id)
            for r in conn.execute(select(records))
        }
    assert stored == {
        r["id"]: (
            r["event_time"].astimezone(UTC),
            r["envelope"],
            r["redactions"],
            r["size"],
            r["sek_id"],
        )
        for r in rows
    }


@PG_ONLY
def test_import_links_copy_checks_their_integers(vault: Vault) -> None:
    """``copy_table`` (the import's links) refuses a row number outside its BIGINT column
    before sending anything, on the binary COPY."""
    with pytest.raises(ValueError, match="range"), vault.db.write() as conn:
        record_insert.copy_table(conn, import_records, [("a" * 32, 2**63, "b" * 32)])
    with pytest.raises(ValueError, match="range"), vault.db.write() as conn:
        record_insert.copy_table(conn, import_records, [("a" * 32, "7", "b" * 32)])
