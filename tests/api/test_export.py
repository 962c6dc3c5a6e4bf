"""Exports: purpose-bound, streamed, redacted, pseudonymized, audited with a manifest."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg
from typer.testing import CliRunner

from tests.conftest import COLLECTOR, PRIVACY, READER, event, make_dataset
from vault import cli
from vault.domain.events import format_time
from vault.errors import DecryptionError, KeyDestroyed
from vault.services import export as export_module
from vault.services.export import ExportQuery
from vault.services.export_pages import raw_time_text
from vault.services.reads import text_time
from vault.storage.tables import records

URL = "/v1/datasets/ux/export"


@pytest.fixture
def filled(vault, clock, monkeypatch):
    monkeypatch.setattr(export_module, "PAGE", 7)  # many pages from a few records
    make_dataset(vault, "ux")
    batch = [
        event(clock, f"emp-{i % 3}", data={"text": f"line {i} AKIAQ3EGRQW7PLK4ZT2M"})
        for i in range(20)
    ]
    batch.append(event(clock, "emp-1", kind="focus", data={}))
    assert vault.ingest.ingest(COLLECTOR, "ux", batch)["accepted"] == 21
    return vault


def export_bytes(vault, **query) -> bytes:
    """A whole export through the service (its failures raise from start() when they are on
    the first page, else while streaming)."""
    _, chunks = vault.exports.start(READER, "ux", "research", ExportQuery(**query))
    return b"".join(chunks)


def lines(response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines()]


def test_export_streams_every_record_redacted_and_pseudonymized(filled, client, auth) -> None:
    reader = auth("rd-1", "reader", purpose="agent_training")
    first = client.get(URL, headers=reader)
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("application/x-ndjson")
    events = lines(first)
    assert len(events) == 21
    assert len({e["id"] for e in events}) == 21
    assert "AKIAQ3EGRQW7PLK4ZT2M" not in first.text
    assert all("[AWS_ACCESS_KEY]" in e["data"]["text"] for e in events if e["kind"] == "key_run")
    assert not any(e["subject"].startswith("emp-") for e in events)
    assert len({e["subject"] for e in events}) == 3

    # Purpose linkage is stable across exports; export linkage is not; neither equals the
    # pseudonym readers see.
    again = lines(client.get(URL, headers=reader))
    assert [e["subject"] for e in again] == [e["subject"] for e in events]
    solo = lines(client.get(URL + "?linkage=export", headers=reader))
    assert {e["subject"] for e in solo}.isdisjoint({e["subject"] for e in events})
    page = client.get("/v1/datasets/ux/events?limit=50", headers=reader).json()["events"]
    assert {e["subject"] for e in page}.isdisjoint({e["subject"] for e in events})

    filtered = lines(client.get(URL + "?subject=emp-1&kind=focus", headers=reader))
    assert [e["kind"] for e in filtered] == ["focus"]


def test_export_is_purpose_bound_and_validated(filled, client, auth) -> None:
    forbidden = auth("rd-1", "reader", purpose="performance_review")
    assert client.get(URL, headers=forbidden).status_code == 403
    assert (
        client.get(URL, headers=auth("col", "collector", purpose="agent_training")).status_code
        == 403
    )
    reader = auth("rd-1", "reader", purpose="agent_training")
    assert client.get(URL + "?format=csv", headers=reader).status_code == 400
    assert client.get(URL + "?format=" + "x" * 40, headers=reader).status_code in {400, 422}
    assert client.get(URL + "?linkage=none", headers=reader).status_code == 400
    assert client.get(URL + "?since=yesterday", headers=reader).status_code == 400
    assert client.get(URL + "?kind=nope", headers=reader).status_code == 400
    assert client.get("/v1/datasets/nope/export", headers=reader).status_code == 404


@pytest.mark.parametrize(
    ("path", "query"),
    [
        (URL, "since=2026-01-01T00:00:00Z&since=2000-01-01T00:00:00Z"),
        (URL, "format=ndjson&format=parquet"),
        (URL, "linkage=export&linkage=purpose"),
        ("/v1/datasets/ux/events", "subject=emp-1&subject=emp-2"),
        ("/v1/datasets/ux/events", "kind=focus&kind=key_run"),
    ],
)
def test_a_filter_given_twice_is_refused_not_half_applied(
    filled, client, auth, path: str, query: str
) -> None:
    """A framework takes the last of a repeated scalar parameter: the caller's first filter
    would silently not apply. Refused before anything is read or audited as an export."""
    reader = auth("rd-1", "reader", purpose="agent_training")
    answer = client.get(f"{path}?{query}", headers=reader)
    assert answer.status_code == 400
    assert "more than once" in answer.json()["error"]["message"]
    with filled.db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM exports")).scalar_one() == 0
    # Repeatable filters stay repeatable.
    both = client.get(URL + "?kind=key_run&kind=focus", headers=reader)
    assert both.status_code == 200


def test_manifest_audit_and_erasure_listing(filled, client, auth) -> None:
    reader = auth("rd-1", "reader", purpose="agent_training")
    response = client.get(URL, headers=reader)
    export_id = response.headers["x-export-id"]
    with filled.db.read() as conn:
        row = conn.execute(text("SELECT records, finished_at, ids_sha256 FROM exports")).one()
        people = conn.execute(text("SELECT count(*) FROM export_subjects")).scalar_one()
        actions = [a for (a,) in conn.execute(text("SELECT action FROM audit_log"))]
    assert row.records == 21
    assert row.finished_at is not None
    assert len(row.ids_sha256) == 64
    assert people == 3
    assert actions.count("export:start") == 1
    assert actions.count("export:finish") == 1
    cert = filled.lifecycle.erase(PRIVACY, "emp-1")
    (ux,) = [d for d in cert["destroyed"] if d["dataset"] == "ux"]
    assert ux["exports"] == [export_id]


def test_cli_export_writes_a_private_file(filled, tmp_path: Path, database_url: str) -> None:
    out = tmp_path / "export.ndjson"
    env = {
        "TVAULT_HOME": str(filled.settings.home),
        "TVAULT_DATABASE_URL": database_url,
        "TVAULT_SCRYPT_N": str(2**14),
    }
    result = CliRunner().invoke(
        cli.app,
        ["export", "ux", "--purpose", "research", "--out", str(out)],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 21
    assert os.stat(out).st_mode & 0o777 == 0o600
    refused = CliRunner().invoke(
        cli.app, ["export", "ux", "--purpose", "disciplinary"], env=env, catch_exceptions=False
    )
    assert refused.exit_code == 4


def test_cli_export_to_a_path_it_cannot_write(filled, tmp_path: Path, database_url: str) -> None:
    """A directory, or a file in a folder that does not exist: exit 2 with a clear message,
    before anything is exported (no export audited as sent); a refused purpose leaves no part
    file behind; a write that fails mid-stream is audited as interrupted."""
    env = {
        "TVAULT_HOME": str(filled.settings.home),
        "TVAULT_DATABASE_URL": database_url,
        "TVAULT_SCRYPT_N": str(2**14),
    }

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli.app, ["export", "ux", *args], env=env)

    outs = tmp_path / "outs"
    (outs / "adir").mkdir(parents=True)
    for out, message in (
        (outs / "adir", "is a directory"),
        (outs / "missing" / "x.ndjson", "cannot be written"),
    ):
        result = run("--purpose", "research", "--out", str(out))
        assert result.exit_code == 2, result.output
        assert message in result.output
    refused = run("--purpose", "disciplinary", "--out", str(outs / "r.ndjson"))
    assert refused.exit_code == 4
    assert sorted(p.name for p in outs.iterdir()) == ["adir"]
    with filled.db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM exports")).scalar_one() == 0

    class Full(io.RawIOBase):
        """A file on a full disk."""

        def writable(self) -> bool:
            return True

        def write(self, _data: Any) -> int:
            raise OSError(28, "No space left on device")

    def full_file(fd: int, _mode: str) -> Full:
        os.close(fd)
        return Full()

    with patch("vault.cli.os.fdopen", full_file):
        failed = run("--purpose", "research", "--out", str(outs / "full.ndjson"))
    assert failed.exit_code != 0
    assert sorted(p.name for p in outs.iterdir()) == ["adir"]
    with filled.db.read() as conn:
        done = conn.execute(text("SELECT finished_at FROM exports")).one()
        reasons = [
            r
            for (r,) in conn.execute(
                text("SELECT reason FROM audit_log WHERE action = 'export:finish'")
            )
        ]
    assert done.finished_at is None
    assert reasons == ["export interrupted"]


def test_export_lines_are_the_listing_events(filled, client, auth) -> None:
    """The NDJSON line is built from the sealed body's bytes: the same members, values and
    order as the listing's event (which parses the body), subject aside."""
    reader = auth("rd-1", "reader", purpose="agent_training")
    exported = lines(client.get(URL, headers=reader))
    listed = client.get("/v1/datasets/ux/events?limit=50", headers=reader).json()["events"]
    assert len(exported) == len(listed) == 21
    for line, shown in zip(exported, listed, strict=True):
        assert list(line) == list(shown)
        assert {**line, "subject": None} == {**shown, "subject": None}


def test_an_edited_time_fails_the_export(filled) -> None:
    """The index time is compared as text with the sealed one, to the millisecond."""
    with filled.db.write() as conn:
        rid, when = conn.execute(select(records.c.id, records.c.event_time).limit(1)).one()
        conn.execute(
            update(records)
            .where(records.c.id == rid)
            .values(event_time=when + timedelta(milliseconds=1))
        )
    with pytest.raises(DecryptionError):
        export_bytes(filled)


def test_a_failure_on_the_first_page_is_an_error_status(filled, client, auth) -> None:
    """Opened before the first byte: no 200 with an empty body; the manifest says interrupted."""
    reader = auth("rd-1", "reader", purpose="agent_training")
    with filled.db.write() as conn:
        conn.execute(text("DELETE FROM subject_keys"))
    assert client.get(URL, headers=reader).status_code == 410
    with filled.db.read() as conn:
        row = conn.execute(text("SELECT records, finished_at FROM exports")).one()
        reasons = [
            r
            for (r,) in conn.execute(
                text("SELECT reason FROM audit_log WHERE action = 'export:finish'")
            )
        ]
    assert row.records == 0
    assert row.finished_at is None
    assert reasons == ["export interrupted"]


def test_a_key_destroyed_mid_export_stops_it(filled) -> None:
    """Each page checks its keys again (a page reuses the previous page's keys only while
    their rows exist): records whose key was shredded after the export began never leave."""
    _, chunks = filled.exports.start(READER, "ux", "research", ExportQuery())
    first = next(chunks)
    assert first.count(b"\n") == 7  # one page
    with filled.db.write() as conn:
        conn.execute(text("DELETE FROM subject_keys"))
    with pytest.raises(KeyDestroyed):
        next(chunks)
    with filled.db.read() as conn:
        row = conn.execute(text("SELECT records, finished_at FROM exports")).one()
    assert row.records == 7
    assert row.finished_at is None


@settings(max_examples=300, deadline=None)
@given(
    when=st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)
    )
)
def test_raw_times_read_as_the_column_type_reads_them(when: datetime) -> None:
    """The export's text reading of a raw event_time (SQLite's text, which PostgreSQL also
    writes for an export, or a naive datetime) is format_time of what the column type returns,
    or None (then the type is used); PostgreSQL's text is read back as the column reads it."""
    aware = when.replace(tzinfo=UTC)
    stored = (  # SQLAlchemy's SQLite DATETIME storage format
        f"{when.year:04d}-{when.month:02d}-{when.day:02d} "
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}.{when.microsecond:06d}"
    )
    for dialect, raw in ((sqlite.dialect(), stored), (psycopg.dialect(), when)):
        process = records.c.event_time.type.dialect_impl(dialect).result_processor(dialect, None)
        assert process(raw) == aware
        assert raw_time_text(raw) == format_time(aware)
    assert text_time(stored) == aware
    assert raw_time_text(stored.replace(" ", "T")) is None
    assert raw_time_text(stored[:-1] + "x") is None
    assert raw_time_text(aware) is None
