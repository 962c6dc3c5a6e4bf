"""The importer's JSONL fast path (each line validated from its bytes) against the general way
(decode, map, validate): the same valid rows with equal events, the same invalid rows with the
same causes, in row order; and JSONL lines read undecoded give the rows the row reader gives."""

from __future__ import annotations

import json
import zoneinfo
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from vault.domain.events import TelemetryEvent
from vault.domain.mapping import (
    FieldMapping,
    NaiveTime,
    TimeFormat,
    automatic_mapping,
    parse_mapping,
)
from vault.services import import_sources
from vault.services.import_sources import FileSource, decode_line
from vault.services.importer import _Chunk, _JsonLines, _MappedRows

WHEN = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=123000)
TIME = WHEN.isoformat()
NAIVE = WHEN.replace(tzinfo=None).isoformat()
FULL = {
    "subject": "emp-1@example.com",
    "time": TIME,
    "kind": "key_run",
    "app": "Code",
    "window_title": "main.py",
    "device": {"id": "laptop-1", "owner": "corporate"},
    "data": {"text": "hello world"},
}


def line(**fields: Any) -> bytes:
    """A JSONL line: FULL with ``fields`` changed (a value of ... leaves the field out)."""
    row = {**FULL, **fields}
    return json.dumps({k: v for k, v in row.items() if v is not ...}).encode() + b"\n"


def raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass") + b"\n"


BASE = f'"subject":"s","time":"{TIME}","kind":"custom"'
#: Lines the two ways must agree on: valid, refused by the schema, malformed, and rows the
#: mapping changes (nulls, fields it does not name, naive times).
LINES: list[bytes] = [
    line(),
    line(app=None, window_title=None, device=None),  # nulls: the fields' defaults
    line(url="https://example.com/a"),  # a field the mapping does not name
    line(private_window=True, jurisdiction="DE", field={"type": "email"}),
    line(extra="not a schema field"),  # dropped by the mapping, refused by the schema
    line(time=NAIVE),  # naive: refused, or read in the timezone
    line(time=NAIVE.replace("T", " ")),
    line(time=WHEN.strftime("%Y-%m-%d %H:%M:%SZ")),
    line(time=1_700_000_000),
    line(time=None),
    line(subject=None),
    line(subject=""),
    line(kind="nope"),
    line(kind="focus", data=None),
    line(data=None),  # key_run without data
    line(kind="key", data={"key": "a", "modifiers": ["shift"]}),
    line(kind="click", data={"x": 1, "y": 2.5}),
    line(kind="mouse_move", data={"path": [{"x": 1, "y": 2}]}),
    line(private_window=None),
    line(data={"text": "x", "other": 1}),
    raw("{not json"),
    raw("[1, 2]"),
    raw('"text"'),
    raw(f'{{{BASE},"data":{{"a":NaN}}}}'),
    raw(f'{{{BASE},"data":{{"a":1e400}}}}'),
    raw(f'{{{BASE},"data":{{"n":123456789012345678901234567890,"f":0.1,"g":5e-324}}}}'),
    raw(f'{{{BASE},"app":"a","app":"b","data":{{"x":1,"x":2}}}}'),  # duplicate keys
    raw(f'{{{BASE},"app":"\\ud800"}}'),  # a lone surrogate
    raw(f'{{{BASE},"app":"\\ud83d\\ude00 \\u0000 \\/"}}'),
    raw(f'{{{BASE},"app":"a\tb"}}'),  # a control character in a string
    raw(f"{{{BASE}}}\x0c"),
    raw(f'{{{BASE}}} {{"a":1}}'),
    raw(f'{{{BASE}}},{{"a":1}}'),
    raw(f"  {{{BASE}}}"),
    raw(f"\ufeff{{{BASE}}}"),
    raw(f'{{{BASE},"data":{{"d":{"[" * 300}1{"]" * 300}}}}}'),  # deeper than the fast parser
    f'{{{BASE},"app":"'.encode() + b'\xff"}\n',  # not UTF-8
    f'{{{BASE},"app":"'.encode() + b'\xed\xa0\x80"}\n',  # an encoded surrogate
]


def general(mapping: FieldMapping, lines: list[bytes]) -> _Chunk:
    """The general way, as the importer reads a JSONL file as rows and maps them."""
    chunk = _Chunk()
    apply = mapping.mapper(text_values=False)
    for number, text in enumerate(lines, start=1):
        row, problem = decode_line(text)
        if row is None:
            chunk.invalid.append((number, problem or ""))
            continue
        try:
            chunk.pending.append((number, apply(row)))
        except NaiveTime:
            chunk.invalid.append((number, "naive_time"))
    chunk.validate(_MappedRows(apply))
    return chunk


def fast(mapping: FieldMapping, lines: list[bytes]) -> _Chunk:
    """The importer's way with JSONL lines: straight from the bytes where the mapping allows."""
    chunk = _Chunk(pending=list(enumerate(lines, start=1)))
    events = _JsonLines(mapping.copied_fields(), _MappedRows(mapping.mapper(text_values=False)))
    chunk.validate(events)
    return chunk


def assert_same(mapping: FieldMapping, lines: list[bytes]) -> _Chunk:
    want, got = general(mapping, lines), fast(mapping, lines)
    assert got.invalid == want.invalid
    assert [n for n, _ in got.valid] == [n for n, _ in want.valid]
    for (_, a), (_, b) in zip(got.valid, want.valid, strict=True):
        assert a == b
        assert a.__dict__ == b.__dict__
    assert not got.pending
    return got


MAPPINGS = {
    "automatic": automatic_mapping(FULL),
    "fewer-fields": automatic_mapping(["subject", "time", "kind", "data"]),
    "no-data": automatic_mapping(["subject", "time", "kind", "app"]),
    "every-field": automatic_mapping(TelemetryEvent.model_fields),
    "given": parse_mapping(["subject=subject", "time=time", "kind=kind", "data=data"]),
}
#: No fast path: every line goes the general way, decoded when its chunk is validated.
RENAMED = parse_mapping(
    ["subject=subject", "time=time", "kind=kind", "app=window_title", "text=data.text"]
)


@pytest.mark.parametrize("name", [*MAPPINGS, "renamed"])
@pytest.mark.parametrize("zone", [None, "Europe/Berlin"])
def test_fast_path_gives_what_the_general_way_gives(name: str, zone: str | None) -> None:
    mapping = RENAMED if name == "renamed" else MAPPINGS[name]
    assert mapping is not None
    assert (mapping.copied_fields() is None) == (name == "renamed")
    if zone is not None:
        mapping = mapping.with_time(TimeFormat("rfc3339", zone, zoneinfo.ZoneInfo(zone)))
    chunk = assert_same(mapping, LINES)
    assert chunk.valid  # both kinds are exercised
    assert chunk.invalid


def test_fast_path_keeps_row_order_when_rows_go_the_general_way() -> None:
    mapping = MAPPINGS["automatic"]
    assert mapping is not None
    lines = [line(subject=f"s{i}", time=NAIVE if i % 3 else TIME) for i in range(12)]
    tz = mapping.with_time(TimeFormat("rfc3339", "UTC", zoneinfo.ZoneInfo("UTC")))
    chunk = assert_same(tz, lines)
    assert [n for n, _ in chunk.valid] == list(range(1, 13))
    assert [e.subject for _, e in chunk.valid] == [f"s{i}" for i in range(12)]


def test_fields_the_mapping_does_not_name_are_left_out() -> None:
    mapping = MAPPINGS["fewer-fields"]
    assert mapping is not None
    chunk = assert_same(mapping, [line(url="https://example.com", private_window=True)])
    (_, event), = chunk.valid  # fmt: skip
    assert (event.url, event.private_window, event.app) == (None, False, None)
    assert event.model_fields_set == {"subject", "time", "kind", "data"}


def test_only_a_mapping_that_copies_fields_has_a_fast_path() -> None:
    assert MAPPINGS["automatic"] is not None
    assert MAPPINGS["automatic"].copied_fields() == frozenset(FULL)
    tz = TimeFormat("rfc3339", "UTC", zoneinfo.ZoneInfo("UTC"))
    assert MAPPINGS["automatic"].with_time(tz).copied_fields() == frozenset(FULL)
    others = [
        parse_mapping(["subject=user", "time=time", "kind=kind"]),
        parse_mapping(["subject=subject", "time=time", "kind=kind", "text=text"]),
        parse_mapping(["subject=subject", "time=time"], {"defaults": {"kind": "focus"}}),
        parse_mapping(
            ["subject=subject", "time=time", "kind=kind"],
            {"values": {"kind": {"typing": "key_run"}}},
        ),
        automatic_mapping(["subject", "time", "kind", "data.text"]),
    ]
    for other in others:
        assert other is not None
        assert other.copied_fields() is None
    epoch = TimeFormat("epoch_ms")
    assert MAPPINGS["automatic"].with_time(epoch).copied_fields() is None


def test_dropped_fields_come_from_the_schema_defaults() -> None:
    defaults = {
        name: info.default
        for name, info in TelemetryEvent.model_fields.items()
        if not info.is_required() and info.default_factory is None and name != "data"
    }
    mapping = MAPPINGS["no-data"]
    assert mapping is not None
    assert_same(mapping, [line(kind="focus", data={}, **dict.fromkeys(defaults, ...))])
    assert all(value is None or value is False for value in defaults.values())


def test_jsonl_lines_decode_to_the_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(import_sources, "MAX_LINE", 200)
    path = tmp_path / "rows.jsonl"
    body = b"".join(LINES[:4]) + b"\n  \n" + b'{"a": "' + b"x" * 500 + b'"}\n' + b"".join(LINES[4:])
    path.write_bytes(body + b'{"last": 1}')  # no newline at the end
    source = FileSource(path, "jsonl")
    for start in (0, 3, 6, len(LINES)):
        rows = list(source.rows(start, set()))
        lines = [
            (n, None, problem) if text is None else (n, *decode_line(text))
            for n, text, problem in source.lines(start)
        ]
        assert lines == rows
        assert rows[0][0] == start + 1
    assert ("too_large" in {p for _, _, p in source.rows(0, set())}) is True
    with pytest.raises(ValueError, match="JSONL"):
        next(FileSource(path, "csv").lines(0))
