"""Sealing a stored record again after its body changed (re-masking, re-redaction).

A record keeps its id, dataset, subject, epoch and subject-epoch key; its body is sealed under
a fresh DEK (the envelope's rules, docs/envelope.md), and the wraps of the SEK are booked like
any other. Rows are addressed by (dataset, id, event time): correct whether ``records`` is one
table or partitioned by dataset and day.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, select, update

from vault.crypto.envelope import MAX_PLAINTEXT, RecordContext, open_record, seal_record
from vault.domain.events import format_time
from vault.errors import DecryptionError, KeyDestroyed, KeyUsageExceeded, PayloadTooLarge
from vault.keyring import Keyring, SubjectKey
from vault.services.body_json import encode_text
from vault.storage.tables import records

__all__ = ["book_keys", "encode_body", "lock_record", "open_body", "reseal"]


def encode_body(body: dict[str, Any]) -> bytes:
    """The sealed form of a body (the encoding ingest uses)."""
    plaintext = encode_text(body).encode("utf-8")
    if len(plaintext) > MAX_PLAINTEXT:
        raise PayloadTooLarge("record over the size limit")
    return plaintext


def lock_record(conn: Connection, dataset_id: str, record_id: str) -> Row[Any] | None:
    """The record row, locked for update until the transaction ends (None: gone)."""
    return conn.execute(
        select(records)
        .where(records.c.dataset_id == dataset_id, records.c.id == record_id)
        .with_for_update()
    ).one_or_none()


def book_keys(
    keyring: Keyring, conn: Connection, uses: Mapping[bytes, int]
) -> dict[bytes, SubjectKey]:
    """Lock and book the subject keys of records about to be sealed again, in key-id order
    (two writers never wait on each other in a cycle). A key shredded or at its usage limit is
    left out: its records are skipped by the caller, not the whole transaction."""
    keys: dict[bytes, SubjectKey] = {}
    for sek_id, count in sorted(uses.items()):
        try:
            keys[sek_id] = keyring.sek_for_reseal(conn, sek_id, uses=count)
        except (KeyDestroyed, KeyUsageExceeded):
            continue
    return keys


def open_body(keyring: Keyring, conn: Connection, dataset_id: str, row: Row[Any]) -> dict[str, Any]:
    """Decrypt a record row's body; its clear index columns must agree with it (as reads
    check). Raises DecryptionError or KeyDestroyed."""
    sek = keyring.sek_for_read(conn, bytes(row.sek_id))
    ctx = RecordContext(dataset_id, bytes.fromhex(row.id), row.subject, row.epoch, sek.id)
    body = json.loads(open_record(sek.key, ctx, bytes(row.envelope)))
    if (
        not isinstance(body, dict)
        or body.get("kind") != row.kind
        or body.get("time") != format_time(row.event_time)
    ):
        raise DecryptionError("decryption failed")
    return body


def reseal(
    conn: Connection,
    sek: SubjectKey,
    row: Row[Any],
    body: dict[str, Any],
    *,
    redactions: dict[str, int],
    rules_version: str | None = None,
) -> None:
    """Seal ``body`` again under a fresh DEK and ``sek`` (the row's own, its wrap booked by
    the caller) and update the row in place."""
    if bytes(row.sek_id) != sek.id:
        raise ValueError("a record is resealed under its own subject-epoch key")
    plaintext = encode_body(body)
    ctx = RecordContext(sek.dataset_id, bytes.fromhex(row.id), row.subject, row.epoch, sek.id)
    values: dict[str, Any] = {
        "envelope": seal_record(sek.key, ctx, plaintext),
        "size": len(plaintext),
        "redactions": dict(sorted(redactions.items())),
    }
    if rules_version is not None:
        values["rules_version"] = rules_version
    conn.execute(
        update(records)
        .where(
            records.c.dataset_id == sek.dataset_id,
            records.c.id == row.id,
            records.c.event_time == row.event_time,
        )
        .values(**values)
    )
