"""Retention sweeps, legal holds and the maintenance job, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import ADMIN, COLLECTOR, PRIVACY, READER, Clock, event, make_dataset
from vault.bootstrap import Vault
from vault.errors import Conflict, Forbidden, NotFound, ValidationFailed
from vault.services.reads import EventQuery


def ingest(vault: Vault, clock: Clock, subject: str, n: int) -> list[str]:
    result = vault.ingest.ingest(COLLECTOR, "ux", [event(clock, subject) for _ in range(n)])
    assert result["accepted"] == n
    return [r["id"] for r in result["results"]]


def readable(vault: Vault, subject: str) -> set[str]:
    page = vault.reads.list_events(
        READER, "ux", "agent_training", EventQuery(subject=subject, limit=1000)
    )
    return {e["id"] for e in page["events"]}


def counts(vault: Vault) -> dict[str, int]:
    with vault.db.read() as conn:
        return {
            table: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in ("records", "subject_keys")
        }


def sweep_entry(vault: Vault) -> dict[str, Any]:
    with vault.db.read() as conn:
        entries = vault.retention.audit.entries(conn, after=0, limit=10_000)
    return [e for e in entries if e["action"] == "retention:sweep"][-1]


def outcome(vault: Vault, keys: int, records: int, held: int, dropped: int) -> dict[str, Any]:
    """A sweep's report for dataset ``ux``; ``dropped`` day partitions only on PostgreSQL."""
    return {
        "dataset": "ux",
        "keys": keys,
        "records": records,
        "partitions_dropped": 0 if vault.db.is_sqlite else dropped,
        "blobs": 0,
        "held_records": held,
    }


def test_sweep_deletes_only_what_is_past_retention(vault: Vault, clock: Clock) -> None:
    make_dataset(vault, "ux", retention_days=30)
    old = ingest(vault, clock, "emp-1", 3) + ingest(vault, clock, "emp-2", 2)
    clock.advance(days=20)
    young = ingest(vault, clock, "emp-1", 2)
    assert counts(vault) == {"records": 7, "subject_keys": 3}

    clock.advance(days=15)  # the first day is now 35 days old, the second 15
    report = vault.retention.sweep(ADMIN)
    (ux,) = report["datasets"]
    assert ux == outcome(vault, keys=2, records=5, held=0, dropped=1)
    assert counts(vault) == {"records": 2, "subject_keys": 1}
    assert readable(vault, "emp-1") == set(young)
    assert readable(vault, "emp-2") == set()
    assert not set(old) & readable(vault, "emp-1")
    assert sweep_entry(vault)["outcome"] == "ok"
    inventory = vault.keys.inventory(ADMIN)["datasets"][0]
    assert inventory["shred_horizon"]["pending"] is True

    # A second sweep finds nothing more to do.
    assert vault.retention.sweep(ADMIN)["datasets"][0]["records"] == 0
    with pytest.raises(Forbidden):
        vault.retention.sweep(READER)


def test_dataset_hold_blocks_the_sweep_until_lifted(vault: Vault, clock: Clock) -> None:
    make_dataset(vault, "ux", retention_days=10)
    ingest(vault, clock, "emp-1", 4)
    hold = vault.retention.set_hold(PRIVACY, "ux", {"reason": "litigation 2026-17"})
    assert hold["subject"] is None
    with pytest.raises(Conflict):
        vault.retention.set_hold(PRIVACY, "ux", {"reason": "again"})
    clock.advance(days=11)
    blocked = vault.retention.sweep(ADMIN)["datasets"][0]
    assert blocked == outcome(vault, keys=0, records=0, held=4, dropped=0)
    entry = sweep_entry(vault)
    assert entry["outcome"] == "denied"
    assert "legal hold" in entry["reason"]
    assert counts(vault)["records"] == 4

    vault.retention.lift_hold(PRIVACY, "ux", None)
    with pytest.raises(NotFound):
        vault.retention.lift_hold(PRIVACY, "ux", None)
    assert vault.retention.sweep(ADMIN)["datasets"][0] == outcome(
        vault, keys=1, records=4, held=0, dropped=1
    )
    assert counts(vault) == {"records": 0, "subject_keys": 0}


def test_subject_hold_keeps_one_person(vault: Vault, clock: Clock) -> None:
    make_dataset(vault, "ux", retention_days=10)
    kept = ingest(vault, clock, "emp-1", 2)
    ingest(vault, clock, "emp-2", 3)
    vault.retention.set_hold(PRIVACY, "ux", {"reason": "case 9", "subject": "emp-1"})
    clock.advance(days=12)
    result = vault.retention.sweep(ADMIN)["datasets"][0]
    # The day's partition holds a held person's rows: it is kept, the others deleted one by one.
    assert result == outcome(vault, keys=1, records=3, held=2, dropped=0)
    # The held person's events are past retention but still readable: the hold is the point.
    assert readable(vault, "emp-1") == set(kept)
    assert readable(vault, "emp-2") == set()


def test_hold_needs_a_privacy_officer_and_a_reason(vault: Vault) -> None:
    make_dataset(vault, "ux")
    with pytest.raises(Forbidden):
        vault.retention.set_hold(ADMIN, "ux", {"reason": "because"})
    with pytest.raises(ValidationFailed):
        vault.retention.set_hold(PRIVACY, "ux", {"reason": ""})
    with pytest.raises(ValidationFailed):
        vault.retention.set_hold(PRIVACY, "ux", {"reason": "x" * 10, "extra": 1})
    with pytest.raises(NotFound):
        vault.retention.set_hold(PRIVACY, "nope", {"reason": "because"})


def test_maintenance_sweeps_then_rotates_when_the_horizon_comes(vault: Vault, clock: Clock) -> None:
    make_dataset(vault, "ux", retention_days=5)
    ingest(vault, clock, "emp-1", 2)
    clock.advance(days=6)
    ingest(vault, clock, "emp-2", 1)
    first = vault.maintenance.run_once()
    assert first["ran"] is True
    assert first["sweep"]["datasets"][0]["records"] == 2
    assert first["rotated"] == []  # the shred is pending, not yet due
    clock.advance(hours=25)
    second = vault.maintenance.run_once()
    assert [r["destroyed_versions"] for r in second["rotated"]] == [[1]]
    assert vault.keys.inventory(ADMIN)["datasets"][0]["shred_horizon"]["pending"] is False
    assert len(readable(vault, "emp-2")) == 1

    with vault.db.exclusive("tvault-maintenance") as mine:
        assert mine is True
        assert vault.maintenance.run_once()["ran"] is False
