"""No plaintext at rest: canaries sent in every text field never appear in the raw storage.

Every text field of the events (typed text, clipboard, window title, URL path and query, field
label, app, device id, custom data keys and values, screenshot metadata, the subject id) carries
a unique random canary. The events go through the services (as either face would), together with
the things around them that also write rows: consent, a subject-filtered read, dev-token issue,
refused and schema-invalid events, failed authentication. Then the raw bytes are scanned:

- SQLite: the database file with its -wal and -shm, while the vault is open and after it is
  closed, plus every other file the vault made (keys/ included);
- PostgreSQL: every row of every table of the vault's database, column values as raw bytes
  (``bytea`` as is) and as ``row_to_json`` text, plus keys/.

A positive control (the dataset name, which is clear-text metadata by design) proves the scan
reads where the data really is.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import text

from tests.conftest import COLLECTOR, OPERATOR, PRIVACY, READER, Clock, make_dataset
from vault.bootstrap import Vault
from vault.errors import AuthenticationError, ValidationFailed
from vault.services.reads import EventQuery


def canary() -> str:
    return f"CANARY{uuid.uuid4().hex}"


def forms(value: str) -> dict[str, bytes]:
    """The ways a string could sit in storage: UTF-8, UTF-16, hex, base64 at every alignment."""
    raw = value.encode("utf-8")
    out = {
        "utf8": raw,
        "utf16le": value.encode("utf-16-le"),
        "utf16be": value.encode("utf-16-be"),
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
    }
    for shift in range(3):
        for name, encode in (("b64", base64.b64encode), ("b64url", base64.urlsafe_b64encode)):
            encoded = encode(b"\0" * shift + raw)
            # Drop the characters that depend on the bytes before and after the value.
            start = 4 if shift else 0
            out[f"{name}{shift}"] = encoded[start:-4]
    return out


def hits(blob: bytes, values: Iterable[str]) -> list[str]:
    found = []
    for value in values:
        for form, needle in forms(value).items():
            if needle in blob:
                found.append(f"{value} as {form}")
    return found


def test_forms_find_what_they_should() -> None:
    value = canary()
    for prefix in (b"", b"x", b"xy", b"xyz"):
        payload = prefix + value.encode() + b"tail"
        assert hits(base64.b64encode(payload), [value]), prefix
        assert hits(base64.urlsafe_b64encode(payload), [value]), prefix
    assert hits(b"..." + value.encode("utf-16-le") + b"...", [value])
    assert hits(value.encode().hex().encode(), [value])
    assert not hits(b"CANARY" + uuid.uuid4().hex.encode(), [value])


def _events(clock: Clock, subject: str, c: dict[str, str]) -> list[dict[str, Any]]:
    time = (clock() - timedelta(minutes=5)).isoformat()
    common = {
        "subject": subject,
        "time": time,
        "device": {"id": c["device"], "owner": "corporate"},
        "app": c["app"],
        "window_title": c["title"],
        "url": f"https://example.com/{c['url_path']}/page?q={c['url_query']}",
        "field": {"type": "text", "label": c["label"]},
    }
    return [
        {**common, "kind": "key_run", "data": {"text": f"typed {c['key_run']} here"}},
        {**common, "kind": "clipboard", "data": {"text": c["clipboard"]}},
        {**common, "kind": "key", "data": {"key": c["key"]}},
        {**common, "kind": "focus"},
        {
            **common,
            "kind": "custom",
            "data": {
                "plain": c["custom_value"],
                c["custom_key"]: {"deep": [1, {"deeper": c["custom_nested"]}]},
            },
        },
        {
            **common,
            "kind": "screenshot",
            "data": {
                "blob_id": c["blob_id"],
                "regions": [{"x": 0, "y": 0, "w": 5, "h": 5, "reason": c["region_reason"]}],
            },
        },
    ]


def _files_under(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _postgres_rows(vault: Vault) -> bytes:
    """Every value of every row of every table, raw, plus each row as JSON text."""
    chunks: list[bytes] = []
    with vault.db.engine.connect() as conn:
        tables = (
            conn.execute(
                text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                )
            )
            .scalars()
            .all()
        )
        assert {"records", "audit_log", "subject_keys", "consents", "datasets"} <= set(tables)
        for table in tables:
            for row in conn.exec_driver_sql(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        chunks.append(bytes(value))
                    elif isinstance(value, str):
                        chunks.append(value.encode("utf-8"))
                    else:
                        chunks.append(json.dumps(value, default=str).encode("utf-8"))
            chunks.extend(
                line.encode("utf-8")
                for line in conn.exec_driver_sql(
                    f'SELECT row_to_json(t)::text FROM "{table}" AS t'
                ).scalars()
            )
    return b"\n".join(chunks)


def test_no_canary_in_raw_storage(vault: Vault, clock: Clock, tmp_path: Path) -> None:
    fields = [
        "device", "app", "title", "url_path", "url_query", "label", "key_run", "clipboard",
        "key", "custom_value", "custom_key", "custom_nested", "blob_id", "region_reason",
    ]  # fmt: skip
    c = {name: canary() for name in fields}
    subject = canary()
    other_subject = canary()
    control = f"ctl{uuid.uuid4().hex}"  # clear-text metadata by design: must be found
    make_dataset(vault, control)

    result = vault.ingest.ingest(COLLECTOR, control, _events(clock, subject, c))
    assert result["accepted"] == 6, result
    # Refused events (excluded app, private window) and a schema-invalid batch store nothing.
    refused_canaries = {name: canary() for name in ("excluded", "private", "invalid")}
    refused = vault.ingest.ingest(
        COLLECTOR,
        control,
        [
            {**_events(clock, other_subject, c)[0], "app": "1Password",
             "window_title": refused_canaries["excluded"]},
            {**_events(clock, other_subject, c)[0], "private_window": True,
             "data": {"text": refused_canaries["private"]}},
        ],
    )  # fmt: skip
    assert [r["reason"] for r in refused["results"]] == ["excluded_app", "private_window"]
    with pytest.raises(ValidationFailed):
        vault.ingest.ingest(
            COLLECTOR,
            control,
            [
                _events(clock, subject, c)[0],
                {"subject": subject, "kind": refused_canaries["invalid"]},
            ],
        )
    # Things around the events that write rows too.
    vault.consent.set(PRIVACY, subject, {"dataset": control, "state": "granted"})
    vault.auth.issue_dev_token(
        OPERATOR, sub=subject, roles=["subject"], purposes=[], datasets=[], ttl_seconds=600
    )
    forged = jwt.encode(
        {"sub": subject, "roles": ["admin"]},
        ed25519.Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": "dev"},
    )
    for header in (f"Bearer {forged}", f"Bearer {subject}"):
        with pytest.raises(AuthenticationError):
            vault.auth.authenticate(header)

    # The canaries were stored (sealed), not dropped: a purpose-bound read gives them back.
    page = vault.reads.list_events(
        READER, control, "research", EventQuery(subject=subject, limit=100)
    )
    assert len(page["events"]) == 6
    shown = json.dumps(page["events"])
    assert [name for name, value in c.items() if value not in shown] == []
    assert subject not in shown  # readers see a pseudonym
    assert (
        vault.reads.list_events(READER, control, "research", EventQuery(subject=other_subject))[
            "events"
        ]
        == []
    )

    everything = [*c.values(), *refused_canaries.values(), subject, other_subject]
    keys_dir = vault.settings.keys_dir
    assert keys_dir.is_dir()
    keys_blob = b"".join(_files_under(keys_dir).values())
    assert keys_blob, "the local keyring wrote nothing under keys/"
    assert hits(keys_blob, everything) == []

    if vault.db.is_sqlite:
        db_path = Path(str(vault.db.url.database))
        assert db_path.is_file()
        siblings = [db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")]
        open_blob = b"".join(p.read_bytes() for p in siblings if p.exists())
        assert hits(open_blob, [control]), "the scan does not see the database's contents"
        assert hits(open_blob, everything) == []
        vault.close()
        closed = _files_under(tmp_path)
        assert db_path in closed
        closed_blob = b"".join(closed.values())
        assert hits(closed_blob, [control])
        for path, blob in closed.items():
            assert hits(blob, everything) == [], path
    else:
        rows = _postgres_rows(vault)
        assert hits(rows, [control]), "the scan does not see the database's contents"
        assert hits(rows, everything) == []
        vault.close()
        assert hits(b"".join(_files_under(tmp_path).values()), everything) == []
