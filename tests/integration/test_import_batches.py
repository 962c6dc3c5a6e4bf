"""How an import cuts a source into batches and links them, on both backends.

Rows are validated a batch at a time (one schema call for a batch of valid rows); a batch still
ends at its ``batch``-th valid row, and rows refused by the schema, by the reader or for their
time are reported together in row order. The links (source row -> record id) go in with the
batch's records, by the driver's fastest path, and fail as SQLAlchemy inserts fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from tests.conftest import OPERATOR, Clock, make_dataset
from vault.audit import AuditAction
from vault.bootstrap import Vault
from vault.services.importer import ImportOptions, _insert_links
from vault.storage.tables import audit_log, import_records, records


@pytest.fixture
def ux(vault: Vault) -> Vault:
    make_dataset(vault, "ux")
    return vault


def batch_ranges(vault: Vault) -> list[list[int]]:
    with vault.db.read() as conn:
        details = conn.execute(
            select(audit_log.c.details)
            .where(audit_log.c.action == AuditAction.IMPORT_BATCH.value)
            .order_by(audit_log.c.seq)
        ).scalars()
        return [json.loads(d)["rows"] for d in details]


def test_rows_refused_by_schema_and_reader_are_reported_in_row_order(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    def good(i: int) -> str:
        return json.dumps({"subject": f"e{i}", "time": clock().isoformat(), "kind": "focus"})

    lines = [
        good(1),
        json.dumps({"subject": "e", "time": clock().isoformat(), "kind": "nope"}),  # 2: schema
        "{not json",  # 3: reader
        good(4),
        json.dumps({"subject": "", "time": clock().isoformat(), "kind": "focus"}),  # 5: schema
        "",  # 6: blank
        json.dumps({"subject": "e", "time": "2026-01-02 03:04", "kind": "focus"}),  # 7: naive
        good(8),  # the third valid row: the first batch ends here
        good(9),
        json.dumps({"subject": "e", "time": "soon", "kind": "focus"}),  # 10: schema
    ]
    source = tmp_path / "mixed.jsonl"
    source.write_text("\n".join(lines) + "\n", "utf-8")
    summary = ux.imports.run(OPERATOR, "ux", source, ImportOptions(batch=3))
    assert summary["invalid_rows"] == [2, 3, 5, 7, 10]
    assert summary["invalid_causes"] == {
        "kind": 1,
        "malformed": 1,
        "naive_time": 1,
        "subject": 1,
        "time": 1,
    }
    assert summary["stored"] == 4
    assert summary["rows"] == summary["rows_read"] + 1 == 10  # the blank row is read by no one
    assert batch_ranges(ux) == [[1, 8], [9, 10]]
    assert summary["verification"]["ok"] is True
    with ux.db.read() as conn:
        linked = conn.execute(
            select(import_records.c.row).join(records, records.c.id == import_records.c.record_id)
        ).scalars()
        assert sorted(linked) == [1, 4, 8, 9]


def test_a_run_of_invalid_rows_still_moves_the_position(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    bad = json.dumps({"subject": "e", "time": clock().isoformat(), "kind": "nope"})
    good = json.dumps({"subject": "e", "time": clock().isoformat(), "kind": "focus"})
    source = tmp_path / "bad.jsonl"
    source.write_text("\n".join([bad] * 9 + [good]) + "\n", "utf-8")
    summary = ux.imports.run(OPERATOR, "ux", source, ImportOptions(batch=2))
    assert batch_ranges(ux) == [[1, 8], [9, 10]]  # at most 4 x batch rows per batch
    assert summary["invalid"] == 9
    assert summary["stored"] == 1


def test_links_are_inserted_in_the_transaction_and_refused_twice(ux: Vault) -> None:
    links: list[tuple[str, int, str]] = [("i" * 32, n, f"{n:032x}") for n in range(1, 1201)]
    with ux.db.write() as conn:
        _insert_links(conn, links)
        _insert_links(conn, [])
    with ux.db.read() as conn:
        stored = conn.execute(
            select(import_records.c.import_id, import_records.c.row, import_records.c.record_id)
        ).all()
    assert sorted(tuple(row) for row in stored) == links

    def link_twice() -> None:
        with ux.db.write() as conn:
            _insert_links(conn, [("j" * 32, 1, "a" * 32)])
            _insert_links(conn, [("i" * 32, 5, "b" * 32)])  # (import, row) is already linked

    with pytest.raises(IntegrityError):
        link_twice()
    with ux.db.read() as conn:
        rows: list[Any] = conn.execute(select(import_records.c.row)).scalars().all()
    assert len(rows) == len(links)  # nothing of the failed transaction stayed


def test_verification_counts_a_linked_record_that_is_gone(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    lines = [
        json.dumps({"subject": f"e{i}", "time": clock().isoformat(), "kind": "focus"})
        for i in range(5)
    ]
    source = tmp_path / "five.jsonl"
    source.write_text("\n".join(lines) + "\n", "utf-8")
    first = ux.imports.run(OPERATOR, "ux", source, ImportOptions(batch=2))
    assert first["verification"]["ok"] is True
    assert (first["verification"]["linked"], first["verification"]["present"]) == (5, 5)
    with ux.db.write() as conn:  # a record lost behind the vault's back
        gone = conn.execute(select(import_records.c.record_id).limit(1)).scalar_one()
        conn.execute(delete(records).where(records.c.id == gone))
    again = ux.imports.run(OPERATOR, "ux", source, ImportOptions(batch=2))
    assert again["already_imported"] is True
    assert again["verification"]["ok"] is False
    assert (again["verification"]["linked"], again["verification"]["present"]) == (5, 4)
