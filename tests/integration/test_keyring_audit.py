"""The key hierarchy, pseudonyms, the audit chain and the schema, on SQLite and PostgreSQL.

Runs through the ``vault`` fixture (a real SQLite file and a fresh PostgreSQL database) and looks
at what the services leave behind, through ``vault.db`` and the services' ``keyring``/``audit``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import MetaData, delete, func, inspect, select, text, update

from tests.conftest import COLLECTOR, Clock, event, make_dataset, principal
from vault.audit import AuditAction, AuditEntry, Outcome
from vault.audit.log import CHECKPOINT_KEY_REF, checkpoint_message
from vault.bootstrap import Vault, build_vault
from vault.config import Settings
from vault.crypto.envelope import RecordContext, open_record
from vault.domain.events import epoch_of
from vault.domain.principal import Role
from vault.errors import KeyUsageExceeded
from vault.storage import upgrade_to_head
from vault.storage.tables import (
    audit_checkpoints,
    audit_head,
    audit_log,
    datasets,
    metadata,
    records,
    subject_keys,
)


def dataset_id(vault: Vault, name: str = "ux") -> str:
    with vault.db.read() as conn:
        return str(conn.execute(select(datasets.c.id).where(datasets.c.name == name)).scalar_one())


def sek_rows(vault: Vault) -> list[Any]:
    with vault.db.read() as conn:
        return list(conn.execute(select(subject_keys).order_by(subject_keys.c.created_at)))


def count(vault: Vault, table: Any) -> int:
    with vault.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def ingest(vault: Vault, clock: Clock, n: int, subject: str = "emp-1", ds: str = "ux") -> None:
    result = vault.ingest.ingest(COLLECTOR, ds, [event(clock, subject) for _ in range(n)])
    assert result["accepted"] == n, result


@pytest.fixture
def limited(settings_factory: Callable[..., Settings], clock: Clock) -> Iterator[Vault]:
    """A vault whose subject-epoch keys may seal at most 3 DEKs."""
    v = build_vault(settings_factory(sek_max_wraps=3), now=clock)
    make_dataset(v)
    yield v
    v.close()


# -- subject-epoch keys ------------------------------------------------------------------------


def test_one_sek_per_dataset_subject_and_day(vault: Vault, clock: Clock) -> None:
    make_dataset(vault)
    make_dataset(vault, "other")
    ingest(vault, clock, 3)
    ingest(vault, clock, 2)
    rows = sek_rows(vault)
    assert len(rows) == 1
    (sek,) = rows
    pseudonym = vault.ingest.keyring.subject_pseudonym(dataset_id(vault), "emp-1")
    assert (sek.dataset_id, sek.subject) == (dataset_id(vault), pseudonym)
    assert sek.epoch == epoch_of(clock())
    assert sek.wraps == 5  # one per sealed record
    assert sek.kek_version == 1
    with vault.db.read() as conn:
        used = {bytes(r.sek_id) for r in conn.execute(select(records.c.sek_id))}
    assert used == {bytes(sek.id)}

    ingest(vault, clock, 1, "emp-2")  # another subject
    ingest(vault, clock, 1, "emp-1", "other")  # another dataset
    clock.advance(days=1)
    ingest(vault, clock, 2, "emp-1")  # another day
    rows = sek_rows(vault)
    assert len(rows) == 4
    assert len({(r.dataset_id, r.subject, r.epoch) for r in rows}) == 4
    assert sorted(r.wraps for r in rows) == [1, 1, 2, 5]
    assert len({bytes(r.wrapped) for r in rows}) == 4


def test_sek_usage_limit_across_batches(limited: Vault, clock: Clock) -> None:
    ingest(limited, clock, 2)
    before = count(limited, audit_log)
    with pytest.raises(KeyUsageExceeded):
        limited.ingest.ingest(COLLECTOR, "ux", [event(clock), event(clock)])
    assert count(limited, records) == 2  # nothing of the refused batch was stored
    assert [r.wraps for r in sek_rows(limited)] == [2]
    with limited.db.read() as conn:
        later = conn.execute(select(audit_log).where(audit_log.c.seq > before)).all()
    # The ingest's own "ok" entry rolled back with it.
    assert not [e for e in later if e.action == "events:ingest" and e.outcome == "ok"]
    ingest(limited, clock, 1)  # exactly up to the limit is fine
    assert [r.wraps for r in sek_rows(limited)] == [3]
    with pytest.raises(KeyUsageExceeded):
        limited.ingest.ingest(COLLECTOR, "ux", [event(clock)])
    assert count(limited, records) == 3


def test_sek_usage_limit_applies_to_a_new_key_too(limited: Vault, clock: Clock) -> None:
    # The first batch of a (subject, day) makes the key; it must not book more than the limit.
    with pytest.raises(KeyUsageExceeded):
        limited.ingest.ingest(COLLECTOR, "ux", [event(clock) for _ in range(4)])
    assert count(limited, records) == 0
    assert all(r.wraps <= 3 for r in sek_rows(limited))


def test_subject_keys_hold_only_wrapped_keys(vault: Vault, clock: Clock) -> None:
    make_dataset(vault)
    ingest(vault, clock, 2)
    (row,) = sek_rows(vault)
    keyring = vault.ingest.keyring
    with vault.db.read() as conn:
        sek = keyring.sek_for_read(conn, bytes(row.id))
        record = conn.execute(select(records)).first()
    wrapped = bytes(row.wrapped)
    assert len(sek.key) == 32
    assert wrapped != sek.key
    assert sek.key not in wrapped
    assert len(wrapped) == 1 + 32 + 12 + 32 + 16  # kekwrap: version, salt, nonce, key, tag
    assert len(wrapped) > len(sek.key)
    # And the unwrapped key really is the one the records are sealed under.
    assert record is not None
    ctx = RecordContext(
        record.dataset_id, bytes.fromhex(record.id), record.subject, record.epoch, sek.id
    )
    body = json.loads(open_record(sek.key, ctx, bytes(record.envelope)))
    assert body["data"]["text"] == "hello world"
    assert all(sek.key not in value for value in all_values(vault))


def test_pseudonyms_differ_across_datasets(vault: Vault, clock: Clock) -> None:
    make_dataset(vault)
    make_dataset(vault, "other")
    ingest(vault, clock, 1, "emp-1042")
    ingest(vault, clock, 1, "emp-1042", "other")
    with vault.db.read() as conn:
        rows = conn.execute(select(records.c.dataset_id, records.c.subject)).all()
    by_dataset = {r.dataset_id: r.subject for r in rows}
    assert len(by_dataset) == 2
    first, second = by_dataset.values()
    assert first != second
    for ds, pseudonym in by_dataset.items():
        assert pseudonym != "emp-1042"
        assert len(pseudonym) == 32
        int(pseudonym, 16)
        assert pseudonym == vault.ingest.keyring.subject_pseudonym(ds, "emp-1042")
    assert {r.subject for r in sek_rows(vault)} == {first, second}


def all_values(vault: Vault) -> Iterator[bytes]:
    """Every value of every row of every table in the database (reflected, not from tables.py)."""
    reflected = MetaData()
    with vault.db.read() as conn:
        reflected.reflect(conn)
        assert {"records", "subject_keys", "audit_log"} <= set(reflected.tables)
        for table in reflected.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    if value is None:
                        continue
                    if isinstance(value, bytes | bytearray | memoryview):
                        yield bytes(value)
                    elif isinstance(value, dict | list):
                        yield json.dumps(value, ensure_ascii=False).encode()
                    else:
                        yield str(value).encode()


def test_no_table_holds_raw_subject_or_caller_ids(vault: Vault, clock: Clock) -> None:
    subjects = ["emp-canary-7c1f9e", "subject-canary-51d0aa"]
    caller = principal("collector-canary-5d2e", Role.COLLECTOR)
    make_dataset(vault)
    for subject in subjects:
        vault.ingest.ingest(caller, "ux", [event(clock, subject), event(clock, subject)])
    auditor = principal("auditor-canary-93ab", Role.AUDITOR)
    vault.audit.checkpoint(auditor)
    assert vault.audit.verify(auditor)["ok"] is True
    values = list(all_values(vault))
    assert count(vault, records) == 4
    needles = [*subjects, "collector-canary-5d2e", "auditor-canary-93ab"]
    for needle in needles:
        for encoded in (needle.encode(), needle.upper().encode(), needle.encode("utf-16-le")):
            hits = [v[:80] for v in values if encoded in v or encoded in v.lower()]
            assert not hits, (needle, hits)


# -- audit chain -------------------------------------------------------------------------------


def append(vault: Vault, n: int) -> None:
    log = vault.ingest.audit
    with vault.db.write() as conn:
        for i in range(n):
            log.append(
                conn,
                AuditEntry(
                    actor=f"{i:032x}",
                    role="auditor",
                    action=AuditAction.AUDIT_READ,
                    outcome=Outcome.OK,
                    details={"i": i, "text": "é ünïcode"},
                ),
            )


def verify(vault: Vault, external: dict[str, Any] | None = None) -> Any:
    with vault.db.read() as conn:
        return vault.ingest.audit.verify(conn, external)


def test_appended_chain_verifies(vault: Vault) -> None:
    start = count(vault, audit_log)
    append(vault, 25)
    report = verify(vault)
    assert report.ok, report.as_dict()
    assert report.entries == start + 25
    with vault.db.read() as conn:
        head = conn.execute(select(audit_head)).one()
        rows = conn.execute(select(audit_log).order_by(audit_log.c.seq)).all()
    assert (head.seq, head.hash) == (report.entries, report.head)
    assert [r.seq for r in rows] == list(range(1, report.entries + 1))
    assert all(b.prev_hash == a.hash for a, b in pairwise(rows))


def test_edited_entry_is_found(vault: Vault) -> None:
    append(vault, 5)
    with vault.db.write() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(details='{"i":99}'))
    report = verify(vault)
    assert not report.ok
    assert report.first_broken_seq == 3


def checkpoint(vault: Vault) -> dict[str, Any]:
    with vault.db.write() as conn:
        return vault.ingest.audit.checkpoint(conn)


def test_checkpoints_are_signed_by_the_provider_key(vault: Vault) -> None:
    append(vault, 4)
    doc = checkpoint(vault)
    public = vault.provider.public_key(CHECKPOINT_KEY_REF)
    assert doc["public_key"] == public.hex()
    message = checkpoint_message(doc["seq"], doc["head"], doc["at"])
    Ed25519PublicKey.from_public_bytes(public).verify(base64.b64decode(doc["signature"]), message)
    append(vault, 3)
    checkpoint(vault)
    report = verify(vault, external=json.loads(json.dumps(doc)))  # as read back from a file
    assert report.ok, report.as_dict()
    assert report.checkpoints_verified == 3  # two stored, one external
    with vault.db.read() as conn:
        stored = conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq)).all()
    assert [s.seq for s in stored] == [doc["seq"], doc["seq"] + 3]
    assert stored[0].head_hash == doc["head"]
    assert stored[0].at == doc["at"]  # the exact signed string survives the database


def flip_signature(signature: str) -> str:
    raw = bytearray(base64.b64decode(signature))
    raw[10] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def test_altered_stored_checkpoint_signature_fails(vault: Vault) -> None:
    append(vault, 3)
    doc = checkpoint(vault)
    with vault.db.write() as conn:
        conn.execute(
            update(audit_checkpoints)
            .where(audit_checkpoints.c.seq == doc["seq"])
            .values(signature=flip_signature(doc["signature"]))
        )
    report = verify(vault)
    assert report.ok is False
    assert report.first_broken_seq == doc["seq"]
    assert "signature" in (report.problem or "")


def test_altered_external_checkpoint_fails(vault: Vault) -> None:
    append(vault, 3)
    doc = checkpoint(vault)
    assert verify(vault, doc).ok
    for forged in (
        {**doc, "signature": flip_signature(doc["signature"])},
        {**doc, "seq": doc["seq"] - 1},
        {**doc, "head": "f" * 64},
        {**doc, "signature": "not base64!"},
    ):
        assert verify(vault, forged).ok is False, forged


def test_truncation_behind_a_checkpoint_is_found(vault: Vault) -> None:
    append(vault, 6)
    doc = checkpoint(vault)
    with vault.db.write() as conn:
        # A careful attacker drops the last two entries and rewrites the head to match.
        last = conn.execute(select(audit_log).where(audit_log.c.seq == doc["seq"] - 2)).one()
        conn.execute(delete(audit_log).where(audit_log.c.seq > last.seq))
        conn.execute(update(audit_head).values(seq=last.seq, hash=last.hash))
        conn.execute(delete(audit_checkpoints))
    assert verify(vault).ok  # the database alone looks consistent
    report = verify(vault, doc)  # the checkpoint kept elsewhere does not
    assert report.ok is False
    assert "truncated" in (report.problem or "")


# -- schema and database settings --------------------------------------------------------------


#: PostgreSQL's day partitions of records (docs/partitions.md): made at run time, not declared.
PARTITION = re.compile(r"records_[0-9a-f]{32}(_[0-9]{8})?")


def _declared(name: str | None, type_: str, parent_names: Any) -> bool:
    return not (type_ == "table" and name is not None and PARTITION.fullmatch(name))


def schema_diff(vault: Vault) -> list[Any]:
    with vault.db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_name": _declared,
            },
        )
        return list(compare_metadata(context, metadata))


def schema_snapshot(vault: Vault) -> dict[str, Any]:
    with vault.db.engine.connect() as conn:
        inspector = inspect(conn)
        return {
            name: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)],
                inspector.get_pk_constraint(name),
                sorted(str(i) for i in inspector.get_indexes(name)),
                sorted(str(u) for u in inspector.get_unique_constraints(name)),
                sorted(str(f) for f in inspector.get_foreign_keys(name)),
            )
            for name in sorted(inspector.get_table_names())
        }


def test_migrations_produce_exactly_the_declared_schema(vault: Vault) -> None:
    assert schema_diff(vault) == []
    with vault.db.engine.connect() as conn:
        tables = {t for t in inspect(conn).get_table_names() if not PARTITION.fullmatch(t)}
    assert tables == set(metadata.tables) | {"alembic_version"}


def _script_head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from vault.storage.migrate import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def test_migrating_twice_is_a_no_op(vault: Vault, clock: Clock) -> None:
    make_dataset(vault)
    ingest(vault, clock, 2)
    before = schema_snapshot(vault)
    counts = {t.name: count(vault, t) for t in metadata.sorted_tables}
    head = verify(vault).head
    upgrade_to_head(vault.db)
    upgrade_to_head(vault.db)
    assert schema_snapshot(vault) == before
    assert {t.name: count(vault, t) for t in metadata.sorted_tables} == counts
    assert count(vault, audit_head) == 1
    assert verify(vault).head == head
    with vault.db.read() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    assert versions == [(_script_head(),)]
    assert schema_diff(vault) == []


def test_sqlite_pragmas_are_in_force(tmp_path: Path, clock: Clock) -> None:
    # SQLite-only settings, so this builds its own vault on a SQLite file (PostgreSQL has its
    # own tests above; nothing is skipped).
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'pragmas.sqlite3'}",
        scrypt_n=2**14,
        operator="test-operator",
    )
    v = build_vault(settings, now=clock)
    try:
        assert v.db.is_sqlite
        # Several pooled connections at once: each one gets the pragmas, not just the first.
        conns = [v.db.engine.connect() for _ in range(3)]
        try:
            for conn in conns:
                pragmas = {
                    name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                    for name in ("journal_mode", "synchronous", "foreign_keys")
                }
                assert pragmas == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1}
        finally:
            for conn in conns:
                conn.close()
    finally:
        v.close()
