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

from tests.api.test_export import URL, export_bytes, filled  # noqa: F401 - the fixture
from vault import cli
from vault.errors import DecryptionError
from vault.services import export as export_module

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
    assert export_module._DUMPS(value) == encoder.encode(value)
