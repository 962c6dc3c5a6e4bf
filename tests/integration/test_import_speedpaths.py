"""A JSONL import through the fast path (lines validated from their bytes) against the same
import the general way (rows decoded, mapped, validated): the same summary, the same records
read back, the same audit entries per batch, and the same resume after an interruption. Both
backends."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.conftest import OPERATOR, Clock, make_dataset
from tests.integration.test_import import EMAIL, Killed, count_records, kill_after, read_back
from vault.audit import AuditAction
from vault.bootstrap import Vault
from vault.domain.mapping import FieldMapping
from vault.errors import Conflict
from vault.services.importer import ImportOptions
from vault.storage.tables import audit_log, datasets, import_records, imports, records


def source_lines(clock: Clock, n: int) -> list[str]:
    """Schema-shaped rows as a collector's export holds them, with what the mapping changes
    (fields the first row lacks, nulls, fields that are no schema field) and invalid lines."""
    lines = []
    for i in range(n):
        when = (clock() - timedelta(minutes=n - i)).isoformat()
        row: dict[str, Any] = {
            "subject": f"emp{i % 3}@corp.example",
            "time": when,
            "kind": "key_run",
            "app": "Code" if i % 4 else None,
            "data": {"text": f"note {i} for {EMAIL}" if i % 5 == 1 else f"note {i}"},
        }
        if i % 6 == 2:
            row["url"] = "https://example.com/page?token=x"  # not in the first row: kept
        if i % 7 == 3:
            row["extra"] = i  # no schema field: dropped
        if i % 9 == 4:
            row["kind"] = "click"  # no x, y: invalid
        if i % 11 == 5:
            row["time"] = when[:19]  # naive: invalid without --timezone
        lines.append(json.dumps(row))
    lines[7] = "{not json"
    lines[12] = ""
    when = json.dumps(clock().isoformat())
    lines[15] = f'{{"subject": "a", "subject": "b", "time": {when}, "kind": "focus"}}'
    return lines


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def general_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports from now on take the general way."""
    monkeypatch.setattr(FieldMapping, "copied_fields", lambda self: None)


def comparable(summary: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in summary.items() if k not in {"import", "dataset", "this_run"}}
    out["this_run"] = summary["this_run"]["rows"]
    return out


def batches(vault: Vault, dataset: str) -> list[dict[str, Any]]:
    """The details of the dataset's import:batch entries, less the import id."""
    with vault.db.read() as conn:
        found = conn.execute(
            select(audit_log.c.details)
            .where(
                audit_log.c.action == AuditAction.IMPORT_BATCH.value,
                audit_log.c.dataset == dataset,
            )
            .order_by(audit_log.c.seq)
        ).scalars()
        return [{k: v for k, v in json.loads(d).items() if k != "import"} for d in found]


def bodies(vault: Vault, dataset: str) -> dict[int, dict[str, Any]]:
    """Each source row's record as read back, without what differs between datasets (ids,
    pseudonyms)."""
    events = {e["id"]: e for e in read_back(vault, dataset)}
    with vault.db.read() as conn:
        links = conn.execute(
            select(import_records.c.row, import_records.c.record_id)
            .join(imports, imports.c.id == import_records.c.import_id)
            .where(imports.c.dataset_id == dataset_id(vault, dataset))
        ).all()
    assert len(links) == len(events)
    return {
        row: {k: v for k, v in events[record].items() if k not in {"id", "subject"}}
        for row, record in links
    }


def dataset_id(vault: Vault, name: str) -> str:
    with vault.db.read() as conn:
        return str(conn.execute(select(datasets.c.id).where(datasets.c.name == name)).scalar_one())


def assert_imports_agree(two: Vault, fast: dict[str, Any], slow: dict[str, Any]) -> None:
    """The same source imported into "fast" and "slow" (``fast`` and ``slow`` their summaries)
    gave the same summary, audit entries per batch and records per source row, redacted and
    verified."""
    assert comparable(fast) == comparable(slow)
    assert fast["redactions"]
    assert fast["verification"]["ok"] is True
    assert batches(two, "fast") == batches(two, "slow")
    assert bodies(two, "fast") == bodies(two, "slow")
    assert count_records(two) == 2 * fast["stored"]


def same_import(summary: dict[str, Any]) -> dict[str, Any]:
    """An import's summary but what differs between two imports of the same rows (ids, this
    run's figures, where it resumed, how large its verification sample was)."""
    left_out = {"import", "dataset", "this_run", "resumed_at_row"}
    out = {k: v for k, v in summary.items() if k not in left_out}
    sampled = {"decrypted", "matched_source"}
    out["verification"] = {k: v for k, v in summary["verification"].items() if k not in sampled}
    return out


def assert_resume_is_whole(
    two: Vault,
    monkeypatch: pytest.MonkeyPatch,
    source: Path,
    *,
    inside: bool,
    general: Callable[[pytest.MonkeyPatch], None],
) -> None:
    """Import ``source`` into "fast", killed in its third batch (``inside`` its transaction or
    after it) and run again; then whole into "slow" the ``general`` way: the same summary and
    the same records per source row."""
    options = ImportOptions(batch=5)
    kill_after(two, monkeypatch, 3, inside=inside)
    with pytest.raises(Killed):
        two.imports.run(OPERATOR, "fast", source, options)
    monkeypatch.undo()
    resumed = two.imports.run(OPERATOR, "fast", source, options)
    assert resumed["resumed_at_row"] > 0
    general(monkeypatch)
    whole = two.imports.run(OPERATOR, "slow", source, options)
    assert same_import(resumed) == same_import(whole)
    # (A resumed import also verifies a sample of its earlier runs' rows: a larger sample.)
    verified = resumed["verification"]
    assert verified["matched_source"] == verified["decrypted"] > whole["verification"]["decrypted"]
    assert bodies(two, "fast") == bodies(two, "slow")


@pytest.fixture
def two(vault: Vault) -> Vault:
    make_dataset(vault, "fast")
    make_dataset(vault, "slow")
    return vault


def test_fast_and_general_imports_agree(
    two: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write(tmp_path / "events.jsonl", source_lines(clock, 40))
    fast = two.imports.run(OPERATOR, "fast", source, ImportOptions(batch=6))
    general_way(monkeypatch)
    slow = two.imports.run(OPERATOR, "slow", source, ImportOptions(batch=6))
    assert_imports_agree(two, fast, slow)
    assert fast["invalid"] > 0
    assert fast["stored"] > 20


@pytest.mark.parametrize("inside", [True, False], ids=["in-transaction", "between-batches"])
def test_fast_path_resumes_exactly_once(
    two: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inside: bool
) -> None:
    source = write(tmp_path / "events.jsonl", source_lines(clock, 50))
    assert_resume_is_whole(two, monkeypatch, source, inside=inside, general=general_way)
    with two.db.read() as conn:
        for row in conn.execute(select(imports.c.id, imports.c.stored)):
            links = conn.execute(
                select(import_records.c.row).where(import_records.c.import_id == row.id)
            ).scalars()
            assert len(set(links)) == row.stored


def test_imports_row_holds_the_summary_counts(two: Vault, clock: Clock, tmp_path: Path) -> None:
    source = write(tmp_path / "events.jsonl", source_lines(clock, 30))
    summary = two.imports.run(OPERATOR, "fast", source, ImportOptions(batch=4))
    with two.db.read() as conn:
        row = conn.execute(select(imports)).one()
    assert row.state == "done"
    assert (row.position, row.rows_read, row.stored, row.invalid) == (
        summary["rows"],
        summary["rows_read"],
        summary["stored"],
        summary["invalid"],
    )
    assert row.refused == summary["refused"]
    assert row.redactions == summary["redactions"]
    with two.db.read() as conn:
        per_record = conn.execute(select(records.c.redactions)).scalars().all()
    total: Counter[str] = Counter()
    for counts in per_record:
        total.update(counts or {})
    assert summary["redactions"] == dict(total)
    assert total["EMAIL"] > 0
    assert row.invalid_detail == {
        "rows": summary["invalid_rows"],
        "causes": summary["invalid_causes"],
    }


def test_a_position_moved_by_another_run_stops_the_batch(
    two: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write(tmp_path / "events.jsonl", source_lines(clock, 30))
    real = two.ingest.ingest
    calls = {"n": 0}

    def ingest(principal: Any, dataset: str, items: list[Any], **kw: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 2:  # another process moved the import on meanwhile
            with two.db.write() as conn:
                conn.execute(update(imports).values(position=imports.c.position + 1))
        return real(principal, dataset, items, **kw)

    monkeypatch.setattr(two.ingest, "ingest", ingest)
    with pytest.raises(Conflict, match="moved on"):
        two.imports.run(OPERATOR, "fast", source, ImportOptions(batch=5))
    with two.db.read() as conn:
        row = conn.execute(select(imports)).one()
        links = conn.execute(select(import_records.c.row)).scalars().all()
    assert row.state == "running"
    assert row.stored == len(links) == count_records(two) == 5
