"""Tampering with storage directly (as someone with database access could), seen through the API.

Tests may touch storage; the product's faces may not. Records: every change to a sealed row or
to the clear-text columns bound to it must make reads fail as an integrity error, never return
another record's plaintext. Audit log: editing, deleting or reordering entries breaks the chain
where it happened; a consistent truncation is caught by a checkpoint kept outside the vault.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, delete, insert, select, update

from tests.conftest import OPERATOR, Clock
from vault.audit.chain import entry_hash
from vault.bootstrap import Vault
from vault.storage.tables import audit_checkpoints, audit_head, audit_log, datasets, records

Headers = dict[str, str]
INTEGRITY_CODES = {"integrity_error", "decryption_failed"}


@dataclass
class World:
    """Two datasets, three people, a record each (two for emp-1), every plaintext unique."""

    reader: Headers
    auditor: Headers
    ids: dict[str, str]  # label -> record id
    texts: dict[str, str]  # label -> the plaintext sealed in it
    dataset_ids: dict[str, str]
    subjects: dict[str, str] = field(default_factory=dict)  # label -> subject pseudonym


def _event(clock: Clock, subject: str, text: str, minutes: int) -> dict[str, Any]:
    return {
        "subject": subject,
        "time": (clock() - timedelta(minutes=minutes)).isoformat(),
        "kind": "key_run",
        "app": "Code",
        "data": {"text": text},
    }


@pytest.fixture
def world(client: TestClient, auth: Callable[..., Headers], vault: Vault, clock: Clock) -> World:
    admin = auth("alice-admin", "admin")
    collector = auth("col-1", "collector")
    for name in ("ux", "ux2"):
        spec = {"name": name, "retention_days": 30, "purposes": ["research"], "consent": "opt_out"}
        assert client.post("/v1/datasets", json=spec, headers=admin).status_code == 201
    layout = {
        "a1": ("ux", "emp-1"),
        "a2": ("ux", "emp-1"),
        "b1": ("ux", "emp-2"),
        "c1": ("ux2", "emp-1"),
    }
    texts = {label: f"plain-{label}-{uuid.uuid4().hex}" for label in layout}
    ids: dict[str, str] = {}
    for minutes, (label, (dataset, subject)) in enumerate(layout.items(), start=1):
        response = client.post(
            f"/v1/datasets/{dataset}/events",
            json=[_event(clock, subject, texts[label], 60 - minutes)],
            headers=collector,
        )
        assert response.status_code == 200, response.text
        ids[label] = response.json()["results"][0]["id"]
    with vault.db.engine.connect() as conn:
        dataset_ids = {r.name: r.id for r in conn.execute(select(datasets.c.name, datasets.c.id))}
        subjects = {
            label: conn.execute(select(records.c.subject).where(records.c.id == rid)).scalar_one()
            for label, rid in ids.items()
        }
    assert subjects["a1"] == subjects["a2"] != subjects["b1"]
    return World(
        reader=auth("rd-1", "reader", purpose="research"),
        auditor=auth("aud-1", "auditor"),
        ids=ids,
        texts=texts,
        dataset_ids=dataset_ids,
        subjects=subjects,
    )


def _row(conn: Connection, record_id: str) -> Any:
    return conn.execute(select(records).where(records.c.id == record_id)).one()


def _set(conn: Connection, record_id: str, **values: Any) -> None:
    result = conn.execute(update(records).where(records.c.id == record_id).values(**values))
    assert result.rowcount == 1


def _flip(data: bytes, offset: int) -> bytes:
    raw = bytearray(data)
    raw[offset] ^= 0x01
    return bytes(raw)


# Each tamper changes storage and names the record and dataset through which it is read.
Tamper = Callable[[Connection, World], tuple[str, str]]


def flip_body_byte(conn: Connection, w: World) -> tuple[str, str]:
    env = bytes(_row(conn, w.ids["a1"]).envelope)
    _set(conn, w.ids["a1"], envelope=_flip(env, len(env) - 20))
    return w.ids["a1"], "ux"


def flip_tag_byte(conn: Connection, w: World) -> tuple[str, str]:
    env = bytes(_row(conn, w.ids["a1"]).envelope)
    _set(conn, w.ids["a1"], envelope=_flip(env, len(env) - 1))
    return w.ids["a1"], "ux"


def flip_header_byte(conn: Connection, w: World) -> tuple[str, str]:
    env = bytes(_row(conn, w.ids["a1"]).envelope)
    _set(conn, w.ids["a1"], envelope=_flip(env, 8))  # inside the key id in the header
    return w.ids["a1"], "ux"


def flip_sealed_dek_byte(conn: Connection, w: World) -> tuple[str, str]:
    env = bytes(_row(conn, w.ids["a1"]).envelope)
    _set(conn, w.ids["a1"], envelope=_flip(env, 4 + 16 + 20))
    return w.ids["a1"], "ux"


def truncate_envelope(conn: Connection, w: World) -> tuple[str, str]:
    env = bytes(_row(conn, w.ids["a1"]).envelope)
    _set(conn, w.ids["a1"], envelope=env[:-1])
    return w.ids["a1"], "ux"


def swap_same_subject(conn: Connection, w: World) -> tuple[str, str]:
    # Same subject, same day: the same subject-epoch key seals both.
    one, two = _row(conn, w.ids["a1"]), _row(conn, w.ids["a2"])
    assert bytes(one.sek_id) == bytes(two.sek_id)
    _set(conn, w.ids["a1"], envelope=bytes(two.envelope))
    _set(conn, w.ids["a2"], envelope=bytes(one.envelope))
    return w.ids["a1"], "ux"


def swap_other_subject(conn: Connection, w: World) -> tuple[str, str]:
    one, two = _row(conn, w.ids["a1"]), _row(conn, w.ids["b1"])
    _set(conn, w.ids["a1"], envelope=bytes(two.envelope))
    _set(conn, w.ids["b1"], envelope=bytes(one.envelope))
    return w.ids["b1"], "ux"


def copy_envelope_and_key(conn: Connection, w: World) -> tuple[str, str]:
    other = _row(conn, w.ids["b1"])
    _set(
        conn,
        w.ids["a1"],
        envelope=bytes(other.envelope),
        sek_id=bytes(other.sek_id),
        subject=other.subject,
        epoch=other.epoch,
    )
    return w.ids["a1"], "ux"


def move_subject(conn: Connection, w: World) -> tuple[str, str]:
    _set(conn, w.ids["a1"], subject=w.subjects["b1"])
    return w.ids["a1"], "ux"


def move_dataset(conn: Connection, w: World) -> tuple[str, str]:
    _set(conn, w.ids["a1"], dataset_id=w.dataset_ids["ux2"])
    return w.ids["a1"], "ux2"


def change_kind(conn: Connection, w: World) -> tuple[str, str]:
    _set(conn, w.ids["a1"], kind="click")
    return w.ids["a1"], "ux"


def change_event_time(conn: Connection, w: World) -> tuple[str, str]:
    row = _row(conn, w.ids["a1"])
    _set(conn, w.ids["a1"], event_time=row.event_time + timedelta(seconds=1))
    return w.ids["a1"], "ux"


def change_epoch(conn: Connection, w: World) -> tuple[str, str]:
    row = _row(conn, w.ids["a1"])
    _set(conn, w.ids["a1"], epoch=row.epoch - 1)
    return w.ids["a1"], "ux"


def point_at_other_subjects_key(conn: Connection, w: World) -> tuple[str, str]:
    _set(conn, w.ids["a1"], sek_id=bytes(_row(conn, w.ids["b1"]).sek_id))
    return w.ids["a1"], "ux"


def point_at_other_datasets_key(conn: Connection, w: World) -> tuple[str, str]:
    # c1 is the same person in ux2: a key of the same subject, but another dataset.
    _set(conn, w.ids["a1"], sek_id=bytes(_row(conn, w.ids["c1"]).sek_id))
    return w.ids["a1"], "ux"


TAMPERS: list[Tamper] = [
    flip_body_byte,
    flip_tag_byte,
    flip_header_byte,
    flip_sealed_dek_byte,
    truncate_envelope,
    swap_same_subject,
    swap_other_subject,
    copy_envelope_and_key,
    move_subject,
    move_dataset,
    change_kind,
    change_event_time,
    change_epoch,
    point_at_other_subjects_key,
    point_at_other_datasets_key,
]


def _assert_integrity_failure(response: Any, w: World, what: str) -> None:
    assert response.status_code == 500, (what, response.status_code, response.text[:200])
    body = response.json()
    assert set(body) == {"error"}, (what, body)
    assert set(body["error"]) <= {"code", "message", "details"}
    assert body["error"]["code"] in INTEGRITY_CODES, (what, body)
    for text in w.texts.values():
        assert text not in response.text, (what, "leaked plaintext")
    assert "Traceback" not in response.text


def test_tampered_records_fail_as_integrity_errors(
    client: TestClient, vault: Vault, world: World
) -> None:
    w = world
    with vault.db.engine.connect() as conn:
        snapshot = {rid: _row(conn, rid)._asdict() for rid in w.ids.values()}

    texts_by_id = {w.ids[label]: text for label, text in w.texts.items()}

    def restore() -> None:
        with vault.db.engine.begin() as conn:
            for rid, values in snapshot.items():
                _set(conn, rid, **{k: v for k, v in values.items() if k != "id"})

    # Untouched, everything reads.
    listed = client.get("/v1/datasets/ux/events", headers=w.reader)
    assert listed.status_code == 200
    assert [e["data"]["text"] for e in listed.json()["events"]] == [
        w.texts["a1"],
        w.texts["a2"],
        w.texts["b1"],
    ]

    failures: list[str] = []
    for tamper in TAMPERS:
        with vault.db.engine.begin() as conn:
            target, dataset = tamper(conn, w)
        try:
            events = f"/v1/datasets/{dataset}/events"
            _assert_integrity_failure(client.get(events, headers=w.reader), w, "list")
            _assert_integrity_failure(
                client.get(f"{events}/{target}", headers=w.reader), w, "single"
            )
            for subject in ("emp-1", "emp-2"):
                response = client.get(events, params={"subject": subject}, headers=w.reader)
                if response.status_code == 200:
                    # A filtered page may miss the tampered record; what it shows is genuine.
                    for event in response.json()["events"]:
                        assert event["data"]["text"] == texts_by_id[event["id"]], "foreign text"
                else:
                    _assert_integrity_failure(response, w, f"subject={subject}")
        except AssertionError as exc:
            failures.append(f"{tamper.__name__}: {exc}")
        finally:
            restore()
        # Restored, the record reads again: the failure was the tampering, nothing else.
        again = client.get(f"/v1/datasets/ux/events/{w.ids['a1']}", headers=w.reader)
        if again.status_code != 200 or again.json()["data"]["text"] != w.texts["a1"]:
            failures.append(f"{tamper.__name__}: not readable after restore: {again.text[:120]}")
    assert not failures, "\n".join(failures)

    entries = client.get("/v1/audit", params={"limit": 1000}, headers=w.auditor).json()["entries"]
    failed = [e for e in entries if e["outcome"] == "failed"]
    assert {e["action"] for e in failed} == {"events:read", "event:read"}
    assert len(failed) >= 2 * len(TAMPERS)
    assert all(e["reason"] == "integrity check failed" for e in failed)


def test_filtered_read_does_not_hide_tampering(
    client: TestClient, vault: Vault, world: World
) -> None:
    """Editing clear-text columns to slip a record into (or out of) a filter is detected."""
    w = world
    with vault.db.engine.begin() as conn:
        _set(conn, w.ids["a1"], subject=w.subjects["b1"])
    response = client.get("/v1/datasets/ux/events", params={"subject": "emp-2"}, headers=w.reader)
    _assert_integrity_failure(response, w, "subject filter")
    with vault.db.engine.begin() as conn:
        _set(conn, w.ids["a1"], subject=w.subjects["a1"], kind="scroll")
    response = client.get("/v1/datasets/ux/events", params={"kind": "scroll"}, headers=w.reader)
    _assert_integrity_failure(response, w, "kind filter")


# -- the audit log ---------------------------------------------------------------------------------


def _verify(client: TestClient, w: World) -> dict[str, Any]:
    response = client.get("/v1/audit/verify", headers=w.auditor)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def _entry(conn: Connection, seq: int) -> dict[str, Any]:
    return dict(conn.execute(select(audit_log).where(audit_log.c.seq == seq)).mappings().one())


def _restore_entries(engine: Any, saved: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        for entry in saved:
            conn.execute(delete(audit_log).where(audit_log.c.seq == entry["seq"]))
        for entry in saved:
            conn.execute(insert(audit_log).values(**entry))


def test_edited_deleted_or_reordered_entries_break_the_chain(
    client: TestClient, vault: Vault, world: World
) -> None:
    w = world
    client.get("/v1/datasets/ux/events", headers=w.reader)
    client.get("/v1/datasets/ux/events", headers={**w.reader, "X-Purpose": "disciplinary"})
    assert _verify(client, w)["ok"] is True
    engine = vault.db.engine
    with engine.connect() as conn:
        denied = (
            conn.execute(
                select(audit_log.c.seq)
                .where(audit_log.c.outcome == "denied")
                .order_by(audit_log.c.seq)
            )
            .scalars()
            .first()
        )
    assert denied is not None
    k = 5

    def edit(column: str, value: Any, seq: int = k) -> Callable[[Connection], None]:
        def run(conn: Connection) -> None:
            conn.execute(update(audit_log).where(audit_log.c.seq == seq).values(**{column: value}))

        return run

    def remove(conn: Connection) -> None:
        conn.execute(delete(audit_log).where(audit_log.c.seq == k))

    def reorder(conn: Connection) -> None:
        conn.execute(update(audit_log).where(audit_log.c.seq == k).values(seq=-1))
        conn.execute(update(audit_log).where(audit_log.c.seq == k + 1).values(seq=k))
        conn.execute(update(audit_log).where(audit_log.c.seq == -1).values(seq=k + 1))

    def rehash(conn: Connection) -> None:
        # An attacker who knows the (public) hash formula fixes up the edited entry itself;
        # the next entry no longer links to it.
        entry = _entry(conn, k)
        entry["reason"] = "nothing to see"
        conn.execute(
            update(audit_log)
            .where(audit_log.c.seq == k)
            .values(reason=entry["reason"], hash=entry_hash(entry))
        )

    cases: list[tuple[str, Callable[[Connection], None], set[int]]] = [
        ("edit reason", edit("reason", "nothing to see"), {k}),
        ("edit details", edit("details", json.dumps({"via": "nowhere"})), {k}),
        ("edit actor", edit("actor", "0" * 64), {k}),
        ("edit time", edit("at", "2000-01-01T00:00:00.000000+00:00"), {k}),
        ("denied made ok", edit("outcome", "ok", denied), {denied}),
        ("purpose removed", edit("purpose", None, denied), {denied}),
        ("delete", remove, {k}),
        ("reorder", reorder, {k}),
        ("rehash", rehash, {k, k + 1}),
    ]
    failures = []
    for name, tamper, expected in cases:
        with engine.connect() as conn:
            saved = [_entry(conn, seq) for seq in sorted({k, k + 1, denied})]
        with engine.begin() as conn:
            tamper(conn)
        report = _verify(client, w)
        if report["ok"] is not False or report["first_broken_seq"] not in expected:
            failures.append(f"{name}: {report}")
        _restore_entries(engine, saved)
        restored = _verify(client, w)
        if restored["ok"] is not True:
            failures.append(f"{name}: still broken after restore: {restored}")
    assert not failures, "\n".join(failures)


def test_rewritten_chain_is_caught_by_a_stored_checkpoint(
    client: TestClient, vault: Vault, world: World
) -> None:
    """Rewriting every hash from an edited entry onward (and the head) keeps the chain
    consistent; the signed checkpoint is what catches it."""
    w = world
    made = client.post("/v1/audit/checkpoint", headers=w.auditor)
    assert made.status_code == 200, made.text
    signed_seq = made.json()["seq"]
    k = 3
    with vault.db.engine.begin() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                select(audit_log).where(audit_log.c.seq >= k).order_by(audit_log.c.seq)
            ).mappings()
        ]
        rows[0]["reason"] = "rewritten"
        prev = _entry(conn, k - 1)["hash"]
        for row in rows:
            row["prev_hash"] = prev
            row["hash"] = entry_hash(row)
            prev = row["hash"]
            conn.execute(update(audit_log).where(audit_log.c.seq == row["seq"]).values(**row))
        conn.execute(update(audit_head).where(audit_head.c.id == 1).values(hash=prev))
    report = _verify(client, w)
    assert report["ok"] is False
    assert report["first_broken_seq"] == signed_seq
    assert "checkpoint" in report["problem"]


def test_truncated_tail_is_caught_by_an_external_checkpoint(
    client: TestClient, vault: Vault, world: World, clock: Clock
) -> None:
    w = world
    checkpoint = vault.audit.checkpoint(OPERATOR)
    signed = checkpoint["seq"]
    assert signed >= 10
    for _ in range(3):  # more activity after the checkpoint
        client.get("/v1/datasets/ux/events", headers=w.reader)
    intact = vault.audit.verify(OPERATOR, checkpoint)
    assert intact["ok"] is True, intact
    assert intact["checkpoints_verified"] >= 2  # the stored copy and the external one

    forged = {**checkpoint, "head": "f" * 64}
    assert vault.audit.verify(OPERATOR, forged)["ok"] is False

    # Roll back behind the checkpoint, consistently: entries, head and stored checkpoints.
    keep = signed - 4
    with vault.db.engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq > keep))
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq > keep))
        last = _entry(conn, keep)
        conn.execute(
            update(audit_head).where(audit_head.c.id == 1).values(seq=keep, hash=last["hash"])
        )
    report = vault.audit.verify(OPERATOR, checkpoint)
    assert report["ok"] is False
    assert report["first_broken_seq"] == keep + 1
    assert "truncated" in report["problem"]
    # Without the external checkpoint, the shortened chain is self-consistent.
    assert _verify(client, w)["ok"] is True

    # The log regrows past the checkpoint's length: the signed head no longer matches.
    for _ in range(6):
        client.get("/v1/datasets/ux/events", headers=w.reader)
    regrown = vault.audit.verify(OPERATOR, checkpoint)
    assert regrown["ok"] is False
    assert regrown["first_broken_seq"] == signed
    assert regrown["entries"] > signed


def test_tail_deleted_without_fixing_the_head(vault: Vault, world: World) -> None:
    with vault.db.engine.connect() as conn:
        total = conn.execute(select(audit_head.c.seq)).scalar_one()
    with vault.db.engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq > total - 2))
    report = vault.audit.verify(OPERATOR)
    assert report["ok"] is False
    assert report["first_broken_seq"] == total - 1
    assert report["entries"] == total - 2
