"""Erasure, rotation and the shred horizon, on a real SQLite file and on PostgreSQL."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.conftest import (
    ADMIN,
    COLLECTOR,
    OPERATOR,
    PRIVACY,
    READER,
    Clock,
    event,
    make_dataset,
    pg_database,
    principal,
)
from vault.audit.chain import canonical_json
from vault.bootstrap import Vault, build_vault
from vault.config import Settings
from vault.domain.principal import Role
from vault.errors import Forbidden, Gone, KeyDestroyed
from vault.services.importer import ImportOptions
from vault.services.reads import EventQuery


def ingest(vault: Vault, clock: Clock, subject: str, n: int, dataset: str = "ux") -> list[str]:
    batch = [event(clock, subject, data={"text": f"{subject} typed line {i}"}) for i in range(n)]
    result = vault.ingest.ingest(COLLECTOR, dataset, batch)
    assert result["accepted"] == n
    return [r["id"] for r in result["results"]]


def read_subject(vault: Vault, subject: str, dataset: str = "ux") -> list[dict[str, Any]]:
    page = vault.reads.list_events(
        READER, dataset, "agent_training", EventQuery(subject=subject, limit=1000)
    )
    return list(page["events"])


def test_erasure_shreds_one_person_and_keeps_the_others(vault: Vault, clock: Clock) -> None:
    make_dataset(vault, "ux")
    make_dataset(vault, "other")
    gone_ids = ingest(vault, clock, "emp-1", 3)
    ingest(vault, clock, "emp-1", 2, dataset="other")
    kept_ids = ingest(vault, clock, "emp-2", 2)

    cert = vault.lifecycle.erase(PRIVACY, "emp-1")
    by_dataset = {d["dataset"]: d for d in cert["destroyed"]}
    assert by_dataset["ux"] == {
        "dataset": "ux",
        "keys": 1,
        "records": 3,
        "exports": [],
        "unfinished_exports": [],
    }
    assert by_dataset["other"]["records"] == 2
    assert "emp-1" not in json.dumps(cert)

    # The certificate verifies with the provider's key, over its canonical body.
    body = {k: v for k, v in cert.items() if k not in {"public_key", "signature"}}
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(cert["public_key"])).verify(
        base64.b64decode(cert["signature"]), canonical_json(body).encode("ascii")
    )
    assert vault.lifecycle.certificate(PRIVACY, cert["erasure"]) == cert

    assert read_subject(vault, "emp-1") == []
    with pytest.raises(Gone):
        vault.reads.get_event(READER, "ux", gone_ids[0], "agent_training")
    assert sorted(e["id"] for e in read_subject(vault, "emp-2")) == sorted(kept_ids)

    # Ingest refuses the erased person until consent is given again.
    refused = vault.ingest.ingest(COLLECTOR, "ux", [event(clock, "emp-1")])
    assert refused["results"][0]["reason"] == "consent_withdrawn"
    vault.consent.set(PRIVACY, "emp-1", {"dataset": "ux", "state": "granted"})
    assert vault.ingest.ingest(COLLECTOR, "ux", [event(clock, "emp-1")])["accepted"] == 1

    inventory = {d["dataset"]: d for d in vault.keys.inventory(ADMIN)["datasets"]}
    assert inventory["ux"]["shred_horizon"]["pending"] is True
    assert inventory["ux"]["shred_horizon"]["seconds_left"] == 24 * 3600


def test_who_may_erase(vault: Vault, clock: Clock) -> None:
    make_dataset(vault, "ux")
    ingest(vault, clock, "emp-1", 1)
    for caller in (READER, ADMIN, principal("emp-2", Role.SUBJECT)):
        with pytest.raises(Forbidden):
            vault.lifecycle.erase(caller, "emp-1")
    assert len(read_subject(vault, "emp-1")) == 1
    cert = vault.lifecycle.erase(principal("emp-1", Role.SUBJECT), "emp-1")
    assert cert["requested_via"] == "http"
    assert read_subject(vault, "emp-1") == []
    with pytest.raises(Forbidden):
        vault.lifecycle.certificate(principal("emp-2", Role.SUBJECT), cert["erasure"])
    assert vault.lifecycle.certificate(principal("emp-1", Role.SUBJECT), cert["erasure"])


def test_rotation_rewraps_keys_not_records(vault: Vault, clock: Clock) -> None:
    make_dataset(vault, "ux")
    for n in range(5):
        ingest(vault, clock, f"emp-{n}", 3)
    with vault.db.read() as conn:
        before = dict(conn.execute(text("SELECT id, envelope FROM records")).all())
        wrapped_before = dict(conn.execute(text("SELECT id, wrapped FROM subject_keys")).all())
    result = vault.lifecycle.rotate(ADMIN, "ux", destroy_old=True)
    assert result == {
        "dataset": "ux",
        "kek_version": 2,
        "rewrapped_keys": 5,
        "destroyed_versions": [1],
    }
    with vault.db.read() as conn:
        after = dict(conn.execute(text("SELECT id, envelope FROM records")).all())
        wrapped_after = dict(conn.execute(text("SELECT id, wrapped FROM subject_keys")).all())
        versions = conn.execute(text("SELECT DISTINCT kek_version FROM subject_keys")).all()
    assert {k: bytes(v) for k, v in after.items()} == {k: bytes(v) for k, v in before.items()}
    assert all(bytes(wrapped_after[k]) != bytes(wrapped_before[k]) for k in wrapped_before)
    assert versions == [(2,)]
    assert all(len(read_subject(vault, f"emp-{n}")) == 3 for n in range(5))
    states = vault.keys.inventory(ADMIN)["datasets"][0]["kek_versions"]
    assert [(v["version"], v["state"]) for v in states] == [(1, "destroyed"), (2, "active")]
    with pytest.raises(Forbidden):
        vault.lifecycle.rotate(READER, "ux", destroy_old=True)


@contextmanager
def backup_of(vault: Vault, database_url: str, tmp_path: Path) -> Iterator[str]:
    """A copy of the live database, as a backup job would take it."""
    if vault.db.is_sqlite:
        target = tmp_path / "backup.sqlite3"
        src = sqlite3.connect(make_url(database_url).database or "")
        dst = sqlite3.connect(target)
        src.backup(dst)
        src.close()
        dst.close()
        yield f"sqlite:///{target}"
        return
    vault.db.dispose()
    with pg_database(make_url(database_url).database) as url:
        yield url


def test_erasure_reaches_a_backup_once_the_old_kek_is_destroyed(
    vault: Vault,
    clock: Clock,
    database_url: str,
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
) -> None:
    make_dataset(vault, "ux")
    ingest(vault, clock, "emp-1", 3)
    ingest(vault, clock, "emp-2", 2)
    with backup_of(vault, database_url, tmp_path) as backup_url:
        vault.lifecycle.erase(PRIVACY, "emp-1")
        restored = build_vault(settings_factory(database_url=backup_url), now=clock)
        try:
            # Before rotation, the backup still holds a usable copy of the shredded key.
            assert len(read_subject(restored, "emp-1")) == 3
            restored.db.dispose()
            vault.lifecycle.rotate(OPERATOR, "ux", destroy_old=True)
            stale = build_vault(settings_factory(database_url=backup_url), now=clock)
            try:
                with pytest.raises(KeyDestroyed):
                    read_subject(stale, "emp-1")
            finally:
                stale.close()
        finally:
            restored.close()
    assert read_subject(vault, "emp-1") == []
    assert len(read_subject(vault, "emp-2")) == 2
    inventory = vault.keys.inventory(ADMIN)["datasets"][0]
    assert inventory["shred_horizon"]["pending"] is False


def test_rotation_under_concurrent_ingest_loses_nothing(vault: Vault, clock: Clock) -> None:
    make_dataset(vault, "ux")
    for n in range(20):
        ingest(vault, clock, f"seed-{n}", 1)
    stored: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        n = 0
        try:
            while not stop.is_set() and n < 200:
                stored.extend(ingest(vault, clock, f"live-{n % 7}", 3))
                n += 1
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(3):
            vault.lifecycle.rotate(ADMIN, "ux", destroy_old=True)
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not errors
    assert stored
    readable = {e["id"] for n in range(7) for e in read_subject(vault, f"live-{n}")}
    assert set(stored) <= readable
    with vault.db.read() as conn:
        versions = {
            v for (v,) in conn.execute(text("SELECT DISTINCT kek_version FROM subject_keys"))
        }
    assert versions == {4}


def test_withdrawal_erases_where_the_dataset_says_so(vault: Vault, clock: Clock) -> None:
    make_dataset(vault, "ux", erase_on_withdrawal=True)
    make_dataset(vault, "other")
    ingest(vault, clock, "emp-1", 2)
    ingest(vault, clock, "emp-1", 2, dataset="other")
    result = vault.consent.set(PRIVACY, "emp-1", {"dataset": "ux", "state": "withdrawn"})
    assert [d["dataset"] for d in result["erasure"]["destroyed"]] == ["ux"]
    assert read_subject(vault, "emp-1") == []
    kept = vault.consent.set(PRIVACY, "emp-1", {"dataset": "other", "state": "withdrawn"})
    assert "erasure" not in kept
    assert len(read_subject(vault, "emp-1", dataset="other")) == 2
    assert vault.datasets.get(ADMIN, "ux")["erase_on_withdrawal"] is True


def import_links(vault: Vault) -> set[str]:
    with vault.db.read() as conn:
        return set(conn.execute(text("SELECT record_id FROM import_records")).scalars())


def test_erasure_and_sweep_remove_the_import_links_of_what_they_delete(
    vault: Vault, clock: Clock, tmp_path: Path
) -> None:
    """Which source row became which record links a person's rows: it goes with the records."""
    make_dataset(vault, "ux", retention_days=10)
    source = tmp_path / "export.jsonl"
    rows = [event(clock, f"emp-{i % 2}", data={"text": f"line {i}"}) for i in range(6)]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    summary = vault.imports.run(OPERATOR, "ux", source, ImportOptions())
    assert summary["stored"] == 6
    links = import_links(vault)
    assert len(links) == 6
    kept = {e["id"] for e in read_subject(vault, "emp-1")}
    vault.lifecycle.erase(PRIVACY, "emp-0")
    assert import_links(vault) == kept  # emp-0's three links are gone with the records
    assert removed_links(vault) == 3  # and counted, so the import still verifies:
    again = vault.imports.run(OPERATOR, "ux", source, ImportOptions(retire="overwrite"))
    assert again["already_imported"] is True
    assert again["verification"]["ok"] is True
    assert (again["verification"]["linked"], again["verification"]["removed"]) == (3, 3)
    assert again["retired"]["mode"] == "overwrite"  # (found by an exploratory test: refused)
    assert not source.exists()
    clock.advance(days=12)
    assert vault.retention.sweep(ADMIN)["datasets"][0]["records"] == 3
    assert import_links(vault) == set()
    assert removed_links(vault) == 6


def removed_links(vault: Vault) -> int:
    with vault.db.read() as conn:
        return int(conn.execute(text("SELECT removed FROM imports")).scalar_one())
