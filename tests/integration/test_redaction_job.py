"""`tvault redact`: stored records redacted by older rules are redacted again, resumably."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.conftest import ADMIN, COLLECTOR, PRIVACY, READER, event, make_dataset, principal
from vault.audit import AuditAction
from vault.domain.principal import Role
from vault.domain.redaction import RULES_VERSION
from vault.errors import BadRequest, Conflict, Forbidden, NotFound
from vault.services.reads import EventQuery
from vault.services.resealing import lock_record, open_body, reseal
from vault.storage.tables import audit_log, datasets, records, subject_keys

OLD = "2"


def plant(vault: Any, clock: Any, name: str, texts: list[str]) -> None:
    """Records as older rules would have left them: these texts sealed as they are."""
    batch = []
    for _ in texts:
        clock.advance(seconds=1)
        batch.append(event(clock, data={"text": "placeholder"}))
    vault.ingest.ingest(COLLECTOR, name, batch)
    ds = vault.datasets.get(ADMIN, name)
    with vault.db.write() as conn:
        dataset_id = conn.execute(
            select(records.c.dataset_id).where(records.c.rules_version == RULES_VERSION)
        ).first()
        assert dataset_id is not None
        assert ds
        rows = conn.execute(
            select(records.c.id)
            .where(records.c.rules_version == RULES_VERSION)
            .order_by(records.c.event_time)
        ).all()
        for (rid,), text in zip(rows[-len(texts) :], texts, strict=True):
            row = lock_record(conn, dataset_id.dataset_id, rid)
            assert row is not None
            body = open_body(vault.ingest.keyring, conn, row.dataset_id, row)
            body["data"]["text"] = text
            sek = vault.ingest.keyring.sek_for_reseal(conn, bytes(row.sek_id), uses=1)
            reseal(conn, sek, row, body, redactions={}, rules_version=OLD)


def texts_of(vault: Any, name: str) -> list[str]:
    page = vault.reads.list_events(READER, name, "research", EventQuery(limit=100))
    return [e["data"]["text"] for e in page["events"]]


TEXTS = [f"ticket {i}: mail user{i}@example.com" if i % 2 else f"note {i}" for i in range(7)]


def test_job_redacts_old_records_and_resumes_after_interruption(vault, clock) -> None:
    make_dataset(vault, "ux")
    plant(vault, clock, "ux", TEXTS)
    assert any("@example.com" in t for t in texts_of(vault, "ux"))

    class Stop(Exception):
        pass

    def stop_after_first(summary: dict[str, Any]) -> None:
        raise Stop(summary)

    with pytest.raises(Stop):
        vault.redaction.run(ADMIN, "ux", batch_size=3, progress=stop_after_first)
    with vault.db.read() as conn:
        versions = [r.rules_version for r in conn.execute(select(records.c.rules_version))]
    assert versions.count(RULES_VERSION) == 3
    assert versions.count(OLD) == 4

    summary = vault.redaction.run(ADMIN, "ux", batch_size=3)
    assert summary["examined"] == 4
    assert summary["batches"] == 2
    assert summary["changed"] == 2
    assert summary["redactions"] == {"EMAIL": 2}

    stored = texts_of(vault, "ux")
    assert not any("@example.com" in t for t in stored)
    assert sorted(stored) == sorted(
        t.replace(f"user{i}@example.com", "[EMAIL]") for i, t in enumerate(TEXTS)
    )
    with vault.db.read() as conn:
        rows = conn.execute(select(records)).all()
        actions = [
            (r.action, json.loads(r.details))
            for r in conn.execute(
                select(audit_log.c.action, audit_log.c.details)
                .where(audit_log.c.action.like("redaction:%"))
                .order_by(audit_log.c.seq)
            )
        ]
    assert {r.rules_version for r in rows} == {RULES_VERSION}
    assert sum(r.redactions.get("EMAIL", 0) for r in rows) == 3
    assert [a for a, _ in actions] == [
        AuditAction.REDACT_START,
        AuditAction.REDACT_BATCH,  # the interrupted run's committed batch
        AuditAction.REDACT_FINISH,  # ... and its failure
        AuditAction.REDACT_START,
        AuditAction.REDACT_BATCH,
        AuditAction.REDACT_BATCH,
        AuditAction.REDACT_FINISH,
    ]
    assert actions[2][1]["error"] == "Stop"
    assert actions[2][1]["changed"] == 1
    assert actions[-1][1]["changed"] == 2
    assert actions[-1][1]["remaining"] == 0
    assert actions[-1][1]["complete"] is True
    with vault.db.read() as conn:
        outcomes = [
            r.outcome
            for r in conn.execute(
                select(audit_log.c.outcome)
                .where(audit_log.c.action == AuditAction.REDACT_FINISH.value)
                .order_by(audit_log.c.seq)
            )
        ]
    assert outcomes == ["failed", "ok"]
    # Nothing left: a third run examines nothing.
    assert vault.redaction.run(ADMIN, "ux")["examined"] == 0


def test_job_uses_the_dataset_pseudonyms(vault, clock) -> None:
    make_dataset(vault, "ps", redaction={"replacement": "pseudonym"})
    vault.ingest.ingest(COLLECTOR, "ps", [event(clock, data={"text": "to a@example.com"})])
    plant(vault, clock, "ps", ["again A@example.com"])
    assert vault.redaction.run(ADMIN, "ps")["changed"] == 1
    first, second = texts_of(vault, "ps")
    assert first.removeprefix("to ") == second.removeprefix("again ")
    assert first.startswith("to [EMAIL:")


def test_unreadable_records_are_counted_and_left(vault, clock) -> None:
    make_dataset(vault, "ux")
    plant(vault, clock, "ux", ["mail a@example.com", "mail b@example.com"])
    with vault.db.write() as conn:
        victim = conn.execute(select(records.c.id).limit(1)).scalar_one()
        conn.execute(
            update(records).where(records.c.id == victim).values(envelope=b"TV" + b"\x00" * 200)
        )
    summary = vault.redaction.run(ADMIN, "ux")
    assert summary["unreadable"] == 1
    assert summary["changed"] == 1


def test_job_is_admin_only_and_checks_input(vault) -> None:
    make_dataset(vault, "ux")
    with pytest.raises(Forbidden):
        vault.redaction.run(READER, "ux")
    with pytest.raises(NotFound):
        vault.redaction.run(ADMIN, "nope")
    with pytest.raises(NotFound):
        vault.redaction.run(principal("a2", Role.ADMIN, datasets=frozenset({"other"})), "ux")
    for bad in (0, -1, 10**6, True):
        with pytest.raises(BadRequest):
            vault.redaction.run(ADMIN, "ux", batch_size=bad)


def test_job_runs_beside_ingest(vault, clock) -> None:
    make_dataset(vault, "ux")
    plant(vault, clock, "ux", [f"mail u{i}@example.com" for i in range(30)])
    errors: list[BaseException] = []

    def ingest_more() -> None:
        try:
            for i in range(10):
                vault.ingest.ingest(
                    COLLECTOR, "ux", [event(clock, data={"text": f"x{i} v{i}@example.org"})]
                )
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=ingest_more)
    worker.start()
    summary = vault.redaction.run(ADMIN, "ux", batch_size=4)
    worker.join()
    assert not errors
    assert summary["changed"] == 30
    page = vault.reads.list_events(READER, "ux", "research", EventQuery(limit=100))
    assert len(page["events"]) == 40
    assert not any("example" in e["data"]["text"] for e in page["events"])
    with vault.db.read() as conn:
        assert {r.rules_version for r in conn.execute(select(records))} == {RULES_VERSION}


def dataset_id(vault: Any, name: str) -> str:
    with vault.db.read() as conn:
        return str(conn.execute(select(datasets.c.id).where(datasets.c.name == name)).scalar_one())


def test_one_run_per_dataset_at_a_time(vault, clock) -> None:
    make_dataset(vault, "ux")
    plant(vault, clock, "ux", ["mail a@example.com"])
    with vault.db.exclusive(f"redact:{dataset_id(vault, 'ux')}") as held:
        assert held
        with pytest.raises(Conflict):
            vault.redaction.run(ADMIN, "ux")
    assert vault.redaction.run(ADMIN, "ux")["changed"] == 1


def test_integrity_failures_are_audited_and_nothing_poisons_a_batch(vault, clock) -> None:
    make_dataset(vault, "ux")
    plant(vault, clock, "ux", ["mail a@example.com", "mail b@example.com", "mail c@example.com"])
    with vault.db.write() as conn:
        first, second, _ = conn.execute(select(records).order_by(records.c.event_time)).all()
        conn.execute(
            update(records).where(records.c.id == first.id).values(envelope=b"TV" + b"\0" * 200)
        )
        conn.execute(
            update(subject_keys)
            .where(subject_keys.c.id == second.sek_id)
            .values(wraps=vault.settings.sek_max_wraps)
        )
    summary = vault.redaction.run(ADMIN, "ux", batch_size=10)
    # The exhausted key is every planted record's: none can be sealed again, none is lost.
    assert summary["unreadable"] == 1
    assert summary["skipped"] == 2
    assert summary["remaining"] == 3
    assert summary["complete"] is False
    with vault.db.read() as conn:
        failed = conn.execute(
            select(audit_log.c.reason, audit_log.c.details).where(
                audit_log.c.action == AuditAction.REDACT_BATCH.value,
                audit_log.c.outcome == "failed",
            )
        ).all()
    assert [(r.reason, json.loads(r.details)) for r in failed] == [
        ("integrity check failed", {"object": first.id})
    ]
    # A second run examines them again, and stops: no progress is possible.
    assert vault.redaction.run(ADMIN, "ux")["remaining"] == 3


PG_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@PG_ONLY
def test_rows_another_writer_holds_are_reported_remaining(vault, clock) -> None:
    make_dataset(vault, "ux")
    plant(vault, clock, "ux", [f"mail u{i}@example.com" for i in range(4)])
    with vault.db.read() as conn:
        victim = conn.execute(select(records.c.id).order_by(records.c.event_time)).first()
    assert victim is not None
    with vault.db.engine.connect() as other, other.begin():
        other.execute(select(records.c.id).where(records.c.id == victim.id).with_for_update())
        summary = vault.redaction.run(ADMIN, "ux", batch_size=2)
        assert summary["changed"] == 3
        assert summary["remaining"] == 1
        assert summary["complete"] is False
    summary = vault.redaction.run(ADMIN, "ux")
    assert summary["changed"] == 1
    assert summary["remaining"] == 0
    assert summary["complete"] is True


@PG_ONLY
def test_job_beside_erasure_does_not_deadlock(vault, clock) -> None:
    make_dataset(vault, "ux")
    batch = []
    for i in range(60):
        clock.advance(milliseconds=10)
        batch.append(event(clock, subject=f"emp-{i % 2}", data={"text": "placeholder"}))
    vault.ingest.ingest(COLLECTOR, "ux", batch)
    with vault.db.write() as conn:
        conn.execute(update(records).values(rules_version=OLD))
    errors: list[BaseException] = []
    started = threading.Event()

    def job() -> None:
        try:
            vault.redaction.run(
                ADMIN, "ux", batch_size=1, progress=lambda _: started.set() or time.sleep(0.01)
            )
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=job)
    worker.start()
    assert started.wait(30)
    certificate = vault.lifecycle.erase(PRIVACY, "emp-0")
    worker.join(60)
    assert not worker.is_alive()
    assert not errors
    assert certificate["destroyed"][0]["records"] >= 1
    with vault.db.read() as conn:
        left = conn.execute(select(records.c.rules_version)).all()
    assert len(left) == 30  # emp-1's records only
    summary = vault.redaction.run(ADMIN, "ux")
    assert summary["remaining"] == 0
    with vault.db.read() as conn:
        assert {r.rules_version for r in conn.execute(select(records))} == {RULES_VERSION}
