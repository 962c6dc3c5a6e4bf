"""Restore that keeps erasures: records from the backup, keys from the live vault.

On a real SQLite file and on PostgreSQL (the backup there is ``CREATE DATABASE ... TEMPLATE``).
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import bindparam, text

from tests.conftest import (
    ADMIN,
    AUDITOR,
    COLLECTOR,
    PRIVACY,
    READER,
    Clock,
    make_dataset,
    pg_database,
)
from tests.integration.test_lifecycle import backup_of, ingest, read_subject
from vault.bootstrap import Vault, build_vault
from vault.config import Settings
from vault.errors import BadRequest, Forbidden, Gone
from vault.services.restore import RestoreService


def restore(vault: Vault, backup_url: str, who: Any = ADMIN) -> dict[str, Any]:
    # The service as bootstrap wires it (``vault.restore``), built from the same dependencies.
    return RestoreService(vault.lifecycle.deps).restore(who, backup_url)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def lose(vault: Vault, table: str, ids: list[str]) -> None:
    """Data loss: rows gone from the live database without any erasure."""
    with vault.db.write() as conn:
        stmt = text(f"DELETE FROM {table} WHERE id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        )
        assert conn.execute(stmt, {"ids": ids}).rowcount == len(ids)


def restore_actions(vault: Vault) -> list[dict[str, Any]]:
    entries = vault.audit.entries(AUDITOR, limit=1000)["entries"]
    return [e for e in entries if e["action"] == "vault:restore"]


@contextmanager
def empty_database(vault: Vault, tmp_path: Path, name: str) -> Iterator[str]:
    """The URL of another, empty database on the same backend."""
    if vault.db.is_sqlite:
        yield f"sqlite:///{tmp_path / f'{name}.sqlite3'}"
        return
    with pg_database() as url:
        yield url


def test_restore_brings_back_lost_data_and_keeps_erasures(
    vault: Vault, clock: Clock, database_url: str, tmp_path: Path
) -> None:
    make_dataset(vault, "ux")
    erased_ids = ingest(vault, clock, "emp-1", 3)
    kept_ids = ingest(vault, clock, "emp-2", 2)
    lost_ids = ingest(vault, clock, "emp-3", 4)
    image = png()
    blob = vault.blobs.upload(
        COLLECTOR, "ux", {"subject": "emp-3", "time": clock().isoformat()}, image
    )["id"]
    with backup_of(vault, database_url, tmp_path) as backup_url:
        clock.advance(minutes=5)
        vault.lifecycle.erase(PRIVACY, "emp-1")
        lose(vault, "records", lost_ids)
        lose(vault, "blobs", [blob])
        assert read_subject(vault, "emp-3") == []

        report = restore(vault, backup_url)
        assert report["restored"] == {"records": 4, "blobs": 1}
        assert report["refused"] == {"erased": 3}
        assert report["datasets"] == [
            {
                "dataset": "ux",
                "records": 4,
                "blobs": 1,
                "already_present": 2,
                "refused": {"erased": 3},
            }
        ]
        assert report["skipped_datasets"] == []
        assert report["same_vault"] is True

        # The lost person reads back in full; the erased one stays erased; the other untouched.
        back = read_subject(vault, "emp-3")
        assert sorted(e["id"] for e in back) == sorted(lost_ids)
        assert {e["data"]["text"] for e in back} == {f"emp-3 typed line {i}" for i in range(4)}
        assert vault.blobs.download(READER, "ux", blob, "agent_training")[0] == "image/png"
        assert read_subject(vault, "emp-1") == []
        with pytest.raises(Gone):
            vault.reads.get_event(READER, "ux", erased_ids[0], "agent_training")
        assert sorted(e["id"] for e in read_subject(vault, "emp-2")) == sorted(kept_ids)

        # Idempotent: nothing more comes back; the erased person is refused again.
        again = restore(vault, backup_url)
        assert again["restored"] == {"records": 0, "blobs": 0}
        assert again["refused"] == {"erased": 3}
        assert again["datasets"][0]["already_present"] == 7

    # Audited: one entry per batch that did something and one summary per run; no path, no
    # personal data.
    entries = restore_actions(vault)
    steps = [e["details"]["step"] for e in entries]
    assert steps == ["records", "blobs", "done", "records", "done"]
    assert all(e["outcome"] == "ok" for e in entries)
    assert entries[0]["dataset"] == "ux"
    assert entries[0]["details"]["restored"] == 4
    assert str(tmp_path) not in repr(entries)
    assert "emp-" not in repr(entries)
    assert vault.audit.verify(AUDITOR)["ok"] is True


def test_erasures_of_rows_lost_before_them_still_win(
    vault: Vault, clock: Clock, database_url: str, tmp_path: Path
) -> None:
    make_dataset(vault, "ux")
    withdrawn_ids = ingest(vault, clock, "emp-4", 2)
    reconsented_ids = ingest(vault, clock, "emp-5", 3)
    with backup_of(vault, database_url, tmp_path) as backup_url:
        # Rows lost first, erasure after: no tombstones name them, yet they stay erased.
        lose(vault, "records", withdrawn_ids + reconsented_ids)
        clock.advance(minutes=1)
        vault.lifecycle.erase(PRIVACY, "emp-4")
        vault.lifecycle.erase(PRIVACY, "emp-5")
        # emp-5 consents again: new keys are new keys, the shredded one never comes back.
        vault.consent.set(PRIVACY, "emp-5", {"dataset": "ux", "state": "granted"})
        fresh = ingest(vault, clock, "emp-5", 1)
        report = restore(vault, backup_url)
    assert report["restored"]["records"] == 0
    assert report["refused"] == {"consent_withdrawn": 2, "key_destroyed": 3}
    assert read_subject(vault, "emp-4") == []
    assert [e["id"] for e in read_subject(vault, "emp-5")] == fresh


def test_restore_respects_retention_unless_held(
    vault: Vault, clock: Clock, database_url: str, tmp_path: Path
) -> None:
    make_dataset(vault, "ux", retention_days=30)
    lost_ids = ingest(vault, clock, "emp-3", 2)
    with backup_of(vault, database_url, tmp_path) as backup_url:
        lose(vault, "records", lost_ids)
        clock.advance(days=31)
        report = restore(vault, backup_url)
        assert report["restored"]["records"] == 0
        assert report["refused"] == {"expired": 2}
        # A legal hold keeps data past retention; a restore brings held data back too.
        vault.retention.set_hold(PRIVACY, "ux", {"reason": "litigation", "subject": "emp-3"})
        held = restore(vault, backup_url)
    assert held["restored"]["records"] == 2
    assert sorted(e["id"] for e in read_subject(vault, "emp-3")) == sorted(lost_ids)


def test_restore_after_kek_rotation_with_old_versions_destroyed(
    vault: Vault, clock: Clock, database_url: str, tmp_path: Path
) -> None:
    make_dataset(vault, "ux")
    erased_ids = ingest(vault, clock, "emp-1", 2)
    ingest(vault, clock, "emp-2", 2)
    lost_ids = ingest(vault, clock, "emp-3", 3)
    with backup_of(vault, database_url, tmp_path) as backup_url:
        vault.lifecycle.erase(PRIVACY, "emp-1")
        lose(vault, "records", lost_ids)
        rotated = vault.lifecycle.rotate(ADMIN, "ux", destroy_old=True)
        assert rotated["destroyed_versions"] == [1]
        report = restore(vault, backup_url)
    # The records' envelopes are unchanged; their SEKs live on, rewrapped under version 2.
    assert report["restored"]["records"] == 3
    assert report["refused"] == {"erased": 2}
    assert sorted(e["id"] for e in read_subject(vault, "emp-3")) == sorted(lost_ids)
    with pytest.raises(Gone):
        vault.reads.get_event(READER, "ux", erased_ids[0], "agent_training")


def test_a_backup_of_another_vault_restores_nothing(
    vault: Vault,
    clock: Clock,
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
) -> None:
    make_dataset(vault, "ux")
    ingest(vault, clock, "emp-1", 1)
    with empty_database(vault, tmp_path, "other") as other_url:
        other = build_vault(
            settings_factory(database_url=other_url, home=tmp_path / "other-home"), now=clock
        )
        try:
            make_dataset(other, "ux")  # same name, another dataset id
            make_dataset(other, "gone")
            ingest(other, clock, "emp-9", 2)
        finally:
            other.close()
        report = restore(vault, other_url)
    assert report["same_vault"] is False
    assert report["restored"] == {"records": 0, "blobs": 0}
    assert report["datasets"] == []
    assert report["skipped_datasets"] == [
        {"dataset": "gone", "reason": "not in the live vault"},
        {"dataset": "ux", "reason": "not in the live vault"},
    ]
    assert read_subject(vault, "emp-9") == []


def test_what_is_not_a_vault_backup_is_refused_clearly(
    vault: Vault, clock: Clock, tmp_path: Path
) -> None:
    make_dataset(vault, "ux")
    missing = tmp_path / "no-such-backup.sqlite3"
    with pytest.raises(BadRequest, match="no backup database file"):
        restore(vault, f"sqlite:///{missing}")
    assert not missing.exists()
    with pytest.raises(BadRequest, match="cannot be used"):
        restore(vault, "nosuchdriver://host/db")
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"not a database at all\n" * 100)
    with pytest.raises(BadRequest, match="cannot be read"):
        restore(vault, str(notes))  # a bare path is taken for a SQLite file
    assert notes.read_bytes() == b"not a database at all\n" * 100
    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    with pytest.raises(BadRequest, match="not a telemetry-vault database"):
        restore(vault, f"sqlite:///{foreign}")
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('9999_future')")
    with pytest.raises(BadRequest, match="unknown schema revision"):
        restore(vault, f"sqlite:///{foreign}")
    with empty_database(vault, tmp_path, "empty") as empty_url:
        if not vault.db.is_sqlite:
            with pytest.raises(BadRequest, match="not a telemetry-vault database"):
                restore(vault, empty_url)
    with pytest.raises(Forbidden):
        restore(vault, f"sqlite:///{foreign}", who=READER)
    refusals = [e for e in restore_actions(vault) if e["outcome"] != "ok"]
    assert [e["outcome"] for e in refusals][:5] == ["failed"] * 5
    assert refusals[-1]["outcome"] == "denied"
    assert str(tmp_path) not in repr(refusals)
