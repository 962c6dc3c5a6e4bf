"""Rows read as their values (no dict per row) give the events the rows read as dicts give.

``FieldMapping.positional`` against ``FieldMapping.mapper`` on the same row, for any mapping;
``FileSource.values`` (CSV) and ``ParquetSource.values`` against ``rows`` of the same file;
and the shortcut of ``TimeFormat.convert`` for a time with an offset against its parse.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_import_mapping import MAPPINGS, VALUES, ordered
from vault.domain import mapping as m
from vault.domain.mapping import FieldMapping, NaiveTime, automatic_mapping
from vault.services.import_sources import FileSource, ParquetSource

COLUMNS = ["a", "b", "c", "d", "n.x", "n.y", "n"]
TEXTS = st.sampled_from(["", "1", "0", "yes", "2.5", "[1]", '{"k": 1}', "x", "1700000000"])


def outcome(apply: Any, row: Any) -> Any:
    try:
        return ordered(apply(row))
    except NaiveTime:
        return "naive"


@settings(max_examples=400, deadline=None)
@given(
    mapping=MAPPINGS,
    columns=st.lists(st.sampled_from(COLUMNS), min_size=1, unique=True),
    data=st.data(),
    text_values=st.booleans(),
)
def test_positional_mapping_gives_what_the_row_mapping_gives(
    mapping: FieldMapping, columns: list[str], data: Any, text_values: bool
) -> None:
    size = len(columns)
    values = data.draw(st.lists(TEXTS if text_values else VALUES, min_size=size, max_size=size))
    row = dict(zip(columns, values, strict=True))  # the dict the row would have been
    positional = mapping.positional(columns, text_values=text_values)
    if positional is None:
        mapped = mapping.columns()
        assert not mapped <= set(columns) or any(
            c.partition(".")[0] in columns for c in mapped if "." in c
        )
        return
    general = mapping.mapper(text_values=text_values)
    assert outcome(positional, values) == outcome(general, row)
    present = {k: v for k, v in row.items() if v is not None}  # a None value: no such key
    assert outcome(positional, values) == outcome(general, present)


def test_a_csv_identity_mapping_reads_rows_by_position() -> None:
    header = ["subject", "time", "kind", "device.id", "data.text", "data.x", "url"]
    mapping = automatic_mapping(header)
    assert mapping is not None
    positional = mapping.positional(header, text_values=True)
    assert positional is not None
    values = ["e", "2026-01-02T03:04:05Z", "key_run", "lap", "hi", "7", ""]
    expected = mapping.mapper(text_values=True)(dict(zip(header, values, strict=True)))
    assert positional(values) == expected
    assert expected["data"] == {"text": "hi", "x": 7}
    assert "url" not in expected


@pytest.mark.parametrize(
    ("columns", "mapped"),
    [
        (["s", "t"], {"subject": "s", "time": "t", "kind": "k"}),  # k is not a column
        (["s", "t", "k", "n", "n.x"], {"subject": "s", "time": "t", "kind": "n.x"}),
        (["s", "s", "k"], {"subject": "s", "kind": "k"}),  # a name twice
    ],
)
def test_no_positional_mapping_where_a_value_may_lie_elsewhere(
    columns: list[str], mapped: dict[str, str]
) -> None:
    assert FieldMapping(fields=mapped).positional(columns, text_values=True) is None


TIMES = st.text(alphabet="0123456789-:+Zz T.\t", max_size=32)


@settings(max_examples=2000, deadline=None)
@given(text=TIMES | st.sampled_from(["2026-01-02", "2026-01-02T03:04:05+01:00", " 2026-01-02Z"]))
def test_a_time_with_an_offset_is_never_a_naive_time(text: str) -> None:
    # What lets TimeFormat.convert return such a time without parsing it.
    if m._has_offset(text):
        assert m._NAIVE.fullmatch(text.strip()) is None


def test_times_with_and_without_offsets() -> None:
    assert m._has_offset("2026-01-02T03:04:05.123+00:00")
    assert m._has_offset("2026-01-02T03:04:05Z")
    assert m._has_offset("2026-01-02T03:04:05-07:30")
    assert not m._has_offset("2026-01-02")
    assert not m._has_offset("2026-01-02T03:04")
    assert not m._has_offset("")


# -- sources -------------------------------------------------------------------------------------


def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "rows.csv"
    text = (
        "\ufeffsubject,time,kind,data.text\r\n"
        "a,2026-01-02T03:04:05Z,key_run,hello\r\n"
        ",,,\r\n"  # blank
        "b,2026-01-02T03:04:06Z,key_run\r\n"  # malformed: a value short
        '"c, quoted",2026-01-02T03:04:07Z,,"multi\nline"\r\n'
        "\r\n"  # blank (no values)
        "d,,key_run,\r\n"
    )
    path.write_text(text, "utf-8", newline="")
    return path


@pytest.mark.parametrize("start", [0, 1, 3, 6, 9])
def test_csv_values_are_the_rows_values(tmp_path: Path, start: int) -> None:
    source = FileSource(csv_file(tmp_path), "csv")
    header, values = source.values(start)
    assert header == source.columns()
    as_rows = [
        (n, None if v is None else dict(zip(header, v, strict=True)), p) for n, v, p in values
    ]
    rows = list(source.rows(start, set()))
    assert as_rows == rows
    if start == 0:
        assert [p for _, _, p in rows] == [None, "blank", "malformed", None, "blank", None]


def typed_table() -> pa.Table:
    return pa.table(
        {
            "subject": ["a", "", None, "d", "e"],
            "when": [datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)] * 4 + [None],
            "naive": [datetime(2026, 1, 2, 3, 4, 5)] * 5,
            "raw": [b"ok", b"", None, b"x", b"y"],
            "kind": pa.array(["key_run", "", "x", "y", None]).dictionary_encode(),
            "score": [Decimal("1.5"), None, Decimal(2), Decimal("2.25"), Decimal(0)],
            "f": [1.5, float("nan"), None, 2.0, 0.0],
            "device": [{"id": "lap", "owner": ""}, None, {"id": None, "owner": "x"}, None, None],
        }
    )


def parquet_values_and_rows(path: Path, start: int) -> tuple[list[Any], list[Any]]:
    source = ParquetSource(path)
    try:
        wanted = set(source.columns())
        names = source.projection(wanted)
        values = list(source.values(start, names))
        rows = list(source.rows(start, wanted))
    finally:
        source.close()
    as_rows = [
        (
            n,
            None if v is None else {k: x for k, x in zip(names, v, strict=True) if x is not None},
            p,
        )
        for n, v, p in values
    ]
    rows = [(n, None if r is None else {k: x for k, x in r.items() if x is not None}, p)
            for n, r, p in rows]  # fmt: skip
    return as_rows, rows


@pytest.mark.parametrize("start", [0, 2, 4, 5])
def test_parquet_values_are_the_rows_values(tmp_path: Path, start: int) -> None:
    path = tmp_path / "typed.parquet"
    pq.write_table(typed_table(), path, row_group_size=2)
    as_rows, rows = parquet_values_and_rows(path, start)
    assert as_rows == rows
    assert len(rows) == 5 - start


def test_parquet_values_of_a_batch_with_binary_that_is_not_text(tmp_path: Path) -> None:
    table = pa.table({"subject": ["", "b", "c"], "raw": [b"ok", b"\xff\xfe", b""]})
    path = tmp_path / "binary.parquet"
    pq.write_table(table, path)
    as_rows, rows = parquet_values_and_rows(path, 0)
    assert as_rows == rows
    assert [p for _, _, p in rows] == [None, "malformed", None]


def test_parquet_values_keep_what_is_not_absent(tmp_path: Path) -> None:
    path = tmp_path / "typed.parquet"
    pq.write_table(typed_table(), path)
    source = ParquetSource(path)
    names = source.projection({"subject", "raw", "kind", "device"})
    got = [v for _, v, _ in source.values(0, names)]
    source.close()
    assert names == ["device", "kind", "raw", "subject"]
    assert got[1] == (None, None, "", None)  # an empty string is absent; empty binary is text
    assert got[0][0] == {"id": "lap", "owner": ""}  # inside a struct, it is a value
