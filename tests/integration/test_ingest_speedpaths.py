"""Ingest shortcuts, end to end: remembered JSON text of redaction counts stores what
SQLAlchemy's insert stores (SQLite, and PostgreSQL's COPY) whichever counts come first; the
audit entry's sums and the records' kinds are what the events say."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

from sqlalchemy import insert, select

from tests.conftest import COLLECTOR, make_dataset
from tests.integration.test_record_insert import _dataset, _rows, _stored_pairs
from vault.audit import AuditAction
from vault.bootstrap import Vault
from vault.storage.record_insert import insert_records
from vault.storage.tables import audit_log, records

# Equal under ==, written differently; then the same counts again (read from memory).
_COUNTS: list[Any] = [
    {"EMAIL": 1},
    {"EMAIL": True},
    {"EMAIL": 1.0},
    {"URL": 2, "EMAIL": 1},
    {"EMAIL": 1, "URL": 2},
    {"NAME": 1, 'a"\\b\té': 3},
    {"LIST": [1, 2]},
    {},
]


def test_remembered_counts_store_what_the_insert_stores(vault: Vault, clock: Any) -> None:
    when = clock()
    ds_id = _dataset(vault, when)
    rows = _rows(ds_id, 3 * len(_COUNTS), when)
    for i, row in enumerate(rows):
        row["redactions"] = dict(_COUNTS[i % len(_COUNTS)])
    with vault.db.write() as conn:
        conn.execute(insert(records), rows)  # what SQLAlchemy stores
    for _ in range(2):  # the second batch finds every text remembered
        again = [{**row, "id": uuid.uuid4().hex, "size": row["size"] + 1000} for row in rows]
        with vault.db.write() as conn:
            insert_records(conn, again)
        pairs = _stored_pairs(vault, ds_id, rows, "redactions")
        for row, (first, copy) in zip(rows, pairs, strict=True):
            assert first == copy, row
        with vault.db.write() as conn:
            conn.execute(records.delete().where(records.c.size >= 1000))


def _batch(clock: Any) -> list[dict[str, Any]]:
    base = {"subject": "emp-1", "time": clock().isoformat(), "app": "Mail"}
    email, phone = "jane.doe@example.com", "+1 415 555 2671"
    return [
        {**base, "kind": "key_run", "data": {"text": f"mail {email} or {phone}"}},
        {**base, "kind": "key_run", "data": {"text": f"{email} {email}"}},
        {**base, "kind": "clipboard", "data": {"text": "nothing here"}},
        {**base, "kind": "key", "data": {"key": "a"}},
        {**base, "kind": "click", "data": {"x": 1, "y": 2}, "window_title": f"To {email}"},
        {**base, "kind": "focus", "url": f"https://x.test/?to={email}"},
    ]


def test_audit_sums_and_stored_kinds(vault: Vault, clock: Any) -> None:
    """The audit entry sums each stored event's counts; each record keeps its event's kind."""
    make_dataset(vault, "ux")
    batch = _batch(clock)
    answer = vault.ingest.ingest(COLLECTOR, "ux", batch)
    assert answer["accepted"] == len(batch)
    summed: Counter[str] = Counter()
    for result in answer["results"]:
        summed.update(result.get("redactions", {}))
    assert summed["EMAIL"] >= 4
    with vault.db.read() as conn:
        (details,) = conn.execute(
            select(audit_log.c.details).where(audit_log.c.action == AuditAction.EVENTS_INGEST.value)
        ).scalars()
        kinds = {row.id: row.kind for row in conn.execute(select(records.c.id, records.c.kind))}
    assert json.loads(details)["redactions"] == dict(sorted(summed.items()))
    assert [kinds[r["id"]] for r in answer["results"]] == [e["kind"] for e in batch]
    assert all(type(kind) is str for kind in kinds.values())
