"""A secret typed across two ingest batches: both sides masked, earlier records re-sealed."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from tests.conftest import COLLECTOR, READER, make_dataset
from vault.audit import AuditAction
from vault.services.reads import EventQuery
from vault.storage.tables import audit_log, records, subject_keys


def keys(clock: Any, typed: str | list[str], **extra: Any) -> list[dict[str, Any]]:
    batch = []
    for key in typed:
        clock.advance(milliseconds=150)
        body = {
            "subject": "emp-1",
            "time": clock().isoformat(),
            "kind": "key",
            "app": "Terminal",
            "data": {"key": key},
        }
        body.update(extra)
        batch.append(body)
    return batch


def typed(vault: Any, since: str) -> str:
    page = vault.reads.list_events(READER, "ux", "research", EventQuery(since=since, limit=200))
    return "".join(
        "*" if e["data"]["key"] == "[MASKED]" else e["data"]["key"] for e in page["events"]
    )


def test_secret_typed_across_batches_is_masked_in_both(vault, clock) -> None:
    make_dataset(vault, "ux")
    since = clock().isoformat()
    first = vault.ingest.ingest(COLLECTOR, "ux", keys(clock, "export K=AKIAIOSF"))
    assert first["accepted"] == 17
    assert typed(vault, since) == "export K=AKIAIOSF"  # nothing to see yet
    with vault.db.read() as conn:
        before = {r.id: (bytes(r.envelope), r.sek_id) for r in conn.execute(select(records))}
        wraps = sum(r.wraps for r in conn.execute(select(subject_keys)))
    second = vault.ingest.ingest(COLLECTOR, "ux", keys(clock, "ODNN7EXAMPLE"))
    assert second["accepted"] == 12
    assert typed(vault, since) == "export K=" + "*" * 20
    with vault.db.read() as conn:
        after = {r.id: r for r in conn.execute(select(records))}
        entries = conn.execute(
            select(audit_log.c.details).where(audit_log.c.action == AuditAction.EVENTS_REMASK.value)
        ).all()
        wraps_after = sum(r.wraps for r in conn.execute(select(subject_keys)))
    resealed = [rid for rid, (env, _) in before.items() if bytes(after[rid].envelope) != env]
    assert len(resealed) == 8  # "AKIAIOSF": same ids, new envelopes
    assert all(after[rid].sek_id == before[rid][1] for rid in resealed)
    assert wraps_after == wraps + 12 + 8  # every new DEK booked on its subject key
    assert sum(r.redactions.get("AWS_ACCESS_KEY", 0) for r in after.values()) == 1
    (entry,) = entries
    details = json.loads(entry.details)
    assert details["records"] == 8
    assert details["redactions"] == {"AWS_ACCESS_KEY": 1}


def test_password_fields_stay_unstored_across_batches(vault, clock) -> None:
    make_dataset(vault, "ux")
    since = clock().isoformat()
    field = {"type": "text", "label": "Passcode"}
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, "hunt", field=field))
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, "er22", field=field))
    assert typed(vault, since) == "*" * 8
    with vault.db.read() as conn:
        assert not conn.execute(
            select(audit_log.c.seq).where(audit_log.c.action == AuditAction.EVENTS_REMASK.value)
        ).all()


def test_a_long_pause_or_another_window_does_not_join(vault, clock) -> None:
    make_dataset(vault, "ux")
    since = clock().isoformat()
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, "AKIAIOSFOD"))
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, "NN7EXAMPLE", window_title="other"))
    clock.advance(seconds=400)
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, "NN7EXAMPLE"))
    assert "*" not in typed(vault, since)
    assert typed(vault, (clock() - timedelta(hours=1)).isoformat()).count("AKIA") == 1


def test_an_erased_earlier_record_is_skipped(vault, clock) -> None:
    make_dataset(vault, "ux")
    since = clock().isoformat()
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, "AKIAIOSFOD"))
    with vault.db.write() as conn:
        first = conn.execute(select(records.c.id).order_by(records.c.event_time)).first()
        assert first is not None
        conn.execute(records.delete().where(records.c.id == first.id))
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, "NN7EXAMPLE"))
    assert typed(vault, since) == "*" * 19
