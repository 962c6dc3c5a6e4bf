"""Parquet exports: streamed row groups, read back with pyarrow, same manifest and audit."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from typer.testing import CliRunner

from bench import fill
from tests.api.test_export import URL, export_bytes, filled  # noqa: F401 - the fixture
from tests.conftest import COLLECTOR, event, make_dataset
from vault import cli
from vault.domain.events import TelemetryEvent, format_time
from vault.errors import DecryptionError
from vault.services import export as export_module
from vault.services import export_pages

SECRET = "AKIAQ3EGRQW7PLK4ZT2M"


def test_parquet_export_round_trip(filled, client, auth) -> None:  # noqa: F811
    reader = auth("rd-1", "reader", purpose="agent_training")
    response = client.get(URL + "?format=parquet", headers=reader)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.apache.parquet")
    assert SECRET.encode() not in response.content
    parquet = pq.ParquetFile(io.BytesIO(response.content))
    assert parquet.metadata.num_row_groups == 3  # pages of 7: one row group per page
    table = parquet.read()
    assert table.num_rows == 21
    assert table.schema.field("time").type.tz == "UTC"
    rows = table.to_pylist()
    assert len({r["id"] for r in rows}) == 21
    assert not any(r["subject"].startswith("emp-") for r in rows)
    assert len({r["subject"] for r in rows}) == 3
    texts = [json.loads(r["data"]).get("text", "") for r in rows if r["kind"] == "key_run"]
    assert len(texts) == 20
    assert all("[AWS_ACCESS_KEY]" in t and SECRET not in t for t in texts)

    # The same records, subjects and order as the NDJSON export of the same purpose.
    ndjson = [json.loads(line) for line in client.get(URL, headers=reader).text.splitlines()]
    assert [e["id"] for e in ndjson] == [r["id"] for r in rows]
    assert [e["subject"] for e in ndjson] == [r["subject"] for r in rows]

    with filled.db.read() as conn:
        done = conn.execute(
            text("SELECT records, finished_at FROM exports WHERE id = :i"),
            {"i": response.headers["x-export-id"]},
        ).one()
        formats = [
            json.loads(d)["format"]
            for (d,) in conn.execute(
                text("SELECT details FROM audit_log WHERE action = 'export:start'")
            )
        ]
    assert done.records == 21
    assert done.finished_at is not None
    assert sorted(formats) == ["ndjson", "parquet"]


def test_empty_parquet_export_is_a_valid_file(filled, client, auth) -> None:  # noqa: F811
    reader = auth("rd-1", "reader", purpose="agent_training")
    response = client.get(URL + "?format=parquet&kind=scroll", headers=reader)
    assert response.status_code == 200
    assert pq.read_table(io.BytesIO(response.content)).num_rows == 0


def test_cli_parquet_export(filled, tmp_path: Path, database_url: str) -> None:  # noqa: F811
    out = tmp_path / "export.parquet"
    env = {
        "TVAULT_HOME": str(filled.settings.home),
        "TVAULT_DATABASE_URL": database_url,
        "TVAULT_SCRYPT_N": str(2**14),
    }
    result = CliRunner().invoke(
        cli.app,
        ["export", "ux", "--purpose", "research", "--format", "parquet", "--out", str(out)],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.num_rows == 21
    assert SECRET.encode() not in out.read_bytes()
    assert not (tmp_path / "export.parquet.part").exists()
    bad = CliRunner().invoke(
        cli.app,
        ["export", "ux", "--purpose", "research", "--format", "xml", "--out", str(out)],
        env=env,
        catch_exceptions=False,
    )
    assert bad.exit_code == 2


@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE records SET kind = 'focus' WHERE kind = 'key_run'",
        "UPDATE records SET subject = (SELECT min(subject) FROM records) "
        "WHERE subject <> (SELECT min(subject) FROM records)",
    ],
    ids=["kind", "subject"],
)
def test_edited_index_columns_fail_the_export(filled, fmt: str, edit: str) -> None:  # noqa: F811
    with filled.db.write() as conn:
        assert conn.execute(text(edit)).rowcount > 0
    with pytest.raises(DecryptionError):
        export_bytes(filled, format=fmt)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=_JSON_VALUES)
def test_nested_json_text_is_the_encoders(value) -> None:
    """The Parquet JSON columns' prebuilt encoder writes what json.JSONEncoder.encode writes."""
    value = json.loads(json.dumps(value))  # a parsed body's value
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    assert export_pages._DUMPS(value) == encoder.encode(value)


_VARIED = [
    {
        "kind": "key_run",
        "app": "Code — Editor",
        "window_title": 'C:\\Users\\me\\"notes".txt',
        "url": 'https://example.org/ä?q="x"&r=1',
        "jurisdiction": "DE",
        "device": {"id": 'laptop-é "1"', "owner": "corporate"},
        "field": {"type": "password", "label": "Pass\x01word\\"},
        "data": {"text": 'naïve café ☃ 😀 \u2028 line\nnext\t"quoted" back\\slash \x00\x1f'},
    },
    {
        "kind": "custom",
        "app": None,
        "window_title": None,
        "private_window": False,
        "device": {"owner": "corporate"},
        "data": {
            "a": {"b": [1, 2.5, -0.0, 1e16, None, True, 'x"y']},
            "ü": {"data": {"text": "z"}},
            "": "",
        },
    },
    {"kind": "focus", "app": "", "window_title": "", "field": {"type": "text"}, "data": {}},
    {"kind": "click", "url": "", "data": {"x": 3, "y": 2.5}},
    {"kind": "key", "data": {"key": "a", "modifiers": ["ctrl"]}},
    {"kind": "scroll", "data": {"dx": 0, "dy": -3}},
    {"kind": "mouse_move", "data": {"path": [{"x": 1, "y": 2}]}},
    {"kind": "clipboard", "app": None, "data": {"text": "\x00ab\\"}},
    {"kind": "key_run", "app": "Plain", "data": {"text": "plain text"}},
]


def test_parquet_values_are_the_ndjson_values(vault, clock, monkeypatch) -> None:
    """Every column of every row, against the NDJSON export of the same records: unicode and
    escapes, nested custom data, absent and empty optional members, both private_window
    values; JSON columns hold the compact JSON text of the value (ensure_ascii off)."""
    monkeypatch.setattr(export_module, "PAGE", 4)  # pages mixing plain and escaped bodies
    make_dataset(vault, "ux")
    batch = []
    for fields in _VARIED:
        batch.append(event(clock, "emp-1", **fields))
        clock.advance(seconds=1)
    assert vault.ingest.ingest(COLLECTOR, "ux", batch)["accepted"] == len(_VARIED)
    # Collection refuses private windows and personal devices; a record written as ingest
    # writes it holds them.
    private = event(clock, "emp-2", private_window=True, window_title="Private \\ tab")
    private["device"] = {"owner": "personal"}
    stored = TelemetryEvent.model_validate(private).stored_form()
    assert fill.fill(vault, "ux", [("emp-2", clock())], bodies=[stored]) == 1
    records = [json.loads(line) for line in export_bytes(vault).splitlines()]
    table = pq.read_table(io.BytesIO(export_bytes(vault, format="parquet")))
    rows = table.to_pylist()
    assert len(rows) == len(records) == len(_VARIED) + 1
    compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    for row, record in zip(rows, records, strict=True):
        for name, kind in export_module.PARQUET_COLUMNS:
            expected = record.get(name)
            if name == "time":
                assert format_time(row[name]) == expected
            elif kind == "json":
                assert row[name] == (None if expected is None else compact(expected))
                assert row[name] is None or json.loads(row[name]) == expected
            else:
                assert row[name] == expected, name
    assert {r["private_window"] for r in rows} == {True, False}
