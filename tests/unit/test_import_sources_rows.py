"""Import sources read column by column (Parquet) or with one decoder (JSONL) give exactly the
rows the row-by-row forms give: the same values, the same absent empty strings, the same
problems."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vault.services.import_sources import FileSource, ParquetSource, _json_row


def parquet_rows(path: Path, start: int = 0) -> list[tuple[int, Any, Any]]:
    source = ParquetSource(path)
    try:
        return list(source.rows(start, set(source.columns())))
    finally:
        source.close()


def row_by_row(table: pa.Table, start: int = 0) -> list[tuple[int, Any, Any]]:
    """The reference: pyarrow's rows one at a time through ``_json_row``."""
    return [
        (number, *_json_row(raw))
        for number, raw in enumerate(table.to_pylist(), start=1)
        if number > start
    ]


def test_typed_parquet_columns_give_the_row_by_row_values(tmp_path: Path) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    table = pa.table(
        {
            "subject": ["a", "", None, "d", "e"],
            "kind": pa.array(["focus", "", "click", "focus", ""]).dictionary_encode(),
            "n": pa.array([1, None, 3, 4, 5], pa.int64()),
            "flag": [True, False, None, True, False],
            "score": [1.5, float("nan"), None, float("inf"), 2.0],
            "time": pa.array([when, None, when, when, when], pa.timestamp("ms", tz="UTC")),
            "amount": pa.array([Decimal("1.50"), None, Decimal(2), Decimal(3), Decimal(4)]),
            "data": [{"text": "x", "x": None}, None, {"text": "", "x": 2}, {}, None],
            "tags": [["a"], [], None, ["b", ""], ["c"]],
            "raw": [b"ok", b"", None, b"fine", b"x"],
            "nothing": pa.array([None] * 5, pa.null()),
        }
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path, row_group_size=2)
    rows = parquet_rows(path)
    assert rows == row_by_row(table)
    second = rows[1][1]
    assert second is not None
    assert "subject" not in second  # empty strings are absent values
    assert "kind" not in second
    assert second["raw"] == ""  # (binary: not an empty string before it is decoded)
    assert second["n"] is None
    assert second["score"] is None
    assert parquet_rows(path, start=3) == row_by_row(table, start=3)


def test_a_parquet_batch_with_binary_that_is_not_text_is_read_row_by_row(
    tmp_path: Path,
) -> None:
    table = pa.table({"subject": ["a", "b", "c"], "raw": [b"ok", b"\xff\xfe", b"x"]})
    path = tmp_path / "binary.parquet"
    pq.write_table(table, path)
    rows = parquet_rows(path)
    assert rows == row_by_row(table)
    assert [problem for _, _, problem in rows] == [None, "malformed", None]


def test_jsonl_rows_are_what_json_loads_gives(tmp_path: Path) -> None:
    lines = [
        b'{"subject": "a", "n": 1.5, "nested": {"x": [1, 2]}}\n',
        b"\xef\xbb\xbf" + b'{"subject": "bom"}\n',  # json.loads reads a UTF-8 BOM on bytes
        b'{"a": NaN}\n',
        b'{"a": Infinity}\n',
        b"[1, 2]\n",
        b"   \n",
        b'{"s": "\\ud800"}\n',  # a lone surrogate escape, as json.loads takes it
        b'{"s": "caf\xc3\xa9"}\n',
        b'{"s": "\xff"}\n',  # not UTF-8
        '{"s": "wide"}\n'.encode("utf-16-le"),
        b'{"last": true}',  # no newline at the end
    ]
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"".join(lines))
    source = FileSource(path, "jsonl")
    got = list(source.rows(0, set()))

    def expected(number: int, line: bytes) -> tuple[int, Any, Any]:
        if not line.strip():
            return number, None, "blank"
        try:
            value = json.loads(line, parse_constant=_raise)
        except (ValueError, RecursionError):
            return number, None, "malformed"
        return (number, value, None) if isinstance(value, dict) else (number, None, "malformed")

    reference = [expected(n, line) for n, line in enumerate(path.read_bytes().splitlines(True), 1)]
    assert got == reference
    assert got[1] == (2, {"subject": "bom"}, None)
    assert [problem for _, _, problem in got[2:6]] == [
        "malformed",
        "malformed",
        "malformed",
        "blank",
    ]
    assert list(source.rows(7, set())) == reference[7:]


def _raise(name: str) -> Any:
    raise ValueError(name)
