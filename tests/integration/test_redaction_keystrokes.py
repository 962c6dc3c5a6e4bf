"""A secret typed across two ingest batches: both sides masked, earlier records re-sealed."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import COLLECTOR, PRIVACY, READER, make_dataset
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
    first = vault.ingest.ingest(COLLECTOR, "ux", keys(clock, "export K=AKIAZ234"))
    assert first["accepted"] == 17
    assert typed(vault, since) == "export K=AKIAZ234"  # nothing to see yet
    with vault.db.read() as conn:
        before = {r.id: (bytes(r.envelope), r.sek_id) for r in conn.execute(select(records))}
        wraps = sum(r.wraps for r in conn.execute(select(subject_keys)))
    second = vault.ingest.ingest(COLLECTOR, "ux", keys(clock, "ODBCDEFGHJK7"))
    assert second["accepted"] == 12
    assert typed(vault, since) == "export K=" + "*" * 20
    with vault.db.read() as conn:
        after = {r.id: r for r in conn.execute(select(records))}
        entries = conn.execute(
            select(audit_log.c.details).where(audit_log.c.action == AuditAction.EVENTS_REMASK.value)
        ).all()
        wraps_after = sum(r.wraps for r in conn.execute(select(subject_keys)))
    resealed = [rid for rid, (env, _) in before.items() if bytes(after[rid].envelope) != env]
    assert len(resealed) == 8  # "AKIAZ234": same ids, new envelopes
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


AWS_KEY = "AKIAZ2345ABCDEFGHJK7"  # well-formed: AKIA + 16 of [A-Z2-7]


def test_a_long_pause_or_another_window_does_not_join(vault, clock) -> None:
    make_dataset(vault, "ux")
    since = clock().isoformat()
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, AWS_KEY[:10]))
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, AWS_KEY[10:], window_title="other"))
    clock.advance(seconds=400)
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, AWS_KEY[10:]))
    assert "*" not in typed(vault, since)
    assert typed(vault, (clock() - timedelta(hours=1)).isoformat()).count("AKIA") == 1
    # Positive control: the same two halves, same window, no pause: joined and masked.
    clock.advance(seconds=400)
    control = clock().isoformat()
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, AWS_KEY[:10]))
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, AWS_KEY[10:]))
    assert typed(vault, control) == "*" * 20


def test_a_secret_typed_then_erased_across_batches_is_masked(vault, clock) -> None:
    make_dataset(vault, "ux")
    since = clock().isoformat()
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, "mail alice@exam"))
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, [*"ple.com", *["Backspace"] * 22]))
    assert typed(vault, since) == "mail " + "*" * 17 + "Backspace" * 22
    with vault.db.read() as conn:
        rows = conn.execute(select(records.c.redactions)).all()
    assert sum(r.redactions.get("EMAIL", 0) for r in rows) == 1


@pytest.mark.parametrize("fate", ["destroyed", "exhausted"])
def test_remask_skips_records_whose_key_is_destroyed_or_exhausted(vault, clock, fate) -> None:
    make_dataset(vault, "ux")
    # Just before midnight, so the second batch's keys are in another day (another key).
    clock.value = clock().replace(hour=23, minute=59, second=57, microsecond=0)
    since = clock().isoformat()
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, AWS_KEY[:10]))
    with vault.db.write() as conn:
        (first_key,) = conn.execute(select(subject_keys.c.id)).all()
        if fate == "destroyed":
            conn.execute(subject_keys.delete().where(subject_keys.c.id == first_key.id))
        else:
            conn.execute(
                subject_keys.update()
                .where(subject_keys.c.id == first_key.id)
                .values(wraps=vault.settings.sek_max_wraps)
            )
    clock.value = clock().replace(second=59) + timedelta(seconds=2)
    later = clock().isoformat()
    second = vault.ingest.ingest(COLLECTOR, "ux", keys(clock, AWS_KEY[10:]))
    assert second["accepted"] == 10  # the batch is stored; the earlier records are skipped
    with vault.db.read() as conn:
        (entry,) = conn.execute(
            select(audit_log.c.details).where(audit_log.c.action == AuditAction.EVENTS_REMASK.value)
        ).all()
    assert json.loads(entry.details)["unreadable"] == 10
    assert json.loads(entry.details)["records"] == 0
    assert typed(vault, later) == "*" * 10
    if fate == "exhausted":  # readable, but could not be sealed again: left as it was
        assert typed(vault, since) == AWS_KEY[:10] + "*" * 10


def test_erasure_and_withdrawal_forget_keystroke_tails(vault, clock) -> None:
    make_dataset(vault, "ux")
    state = vault.ingest.redaction.keystrokes
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, AWS_KEY[:10]))
    assert len(state) == 1
    vault.consent.set(PRIVACY, "emp-1", {"dataset": "ux", "state": "withdrawn"})
    assert len(state) == 0
    vault.consent.set(PRIVACY, "emp-1", {"dataset": "ux", "state": "granted"})
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, AWS_KEY[:10]))
    assert len(state) == 1
    vault.lifecycle.erase(PRIVACY, "emp-1")
    assert len(state) == 0


def test_an_erased_earlier_record_is_skipped(vault, clock) -> None:
    make_dataset(vault, "ux")
    since = clock().isoformat()
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, "AKIAZ2345A"))
    with vault.db.write() as conn:
        first = conn.execute(select(records.c.id).order_by(records.c.event_time)).first()
        assert first is not None
        conn.execute(records.delete().where(records.c.id == first.id))
    vault.ingest.ingest(COLLECTOR, "ux", keys(clock, "BCDEFGHJK7"))
    assert typed(vault, since) == "*" * 19
