"""The Parquet writer's columns taken from the bodies' text equal those of parsing them.

A page whose bodies are all as ingest writes them is built from their text, one match each;
any other page is parsed and its JSON parts serialized again (what every page went through
before). These tests hold the first to the second: the same values, JSON text included, for
every body the vault writes, and for any other body the parse path's values or its error.
"""

from __future__ import annotations

import io
import json
from typing import Any
from unittest import mock

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.domain.events import TelemetryEvent
from vault.services import export as export_module
from vault.services import export_pages
from vault.services.body_json import JSON as SEALED_JSON  # the encoder bodies are sealed with

TIME = "2026-11-24T10:00:00.123Z"
# Any code point but surrogates: quotes, backslashes, control characters, non-ASCII, U+2028.
_TEXT = st.text(max_size=12)
_NUMBER = st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | _NUMBER | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=12,
)
_DATA = {
    "key_run": st.fixed_dictionaries({"text": _TEXT}),
    "clipboard": st.fixed_dictionaries({"text": _TEXT}),
    "key": st.fixed_dictionaries(
        {"key": st.text(min_size=1, max_size=3)},
        optional={"modifiers": st.lists(st.sampled_from(["ctrl", "alt", "é\n"]), max_size=2)},
    ),
    "click": st.fixed_dictionaries({"x": _NUMBER, "y": _NUMBER}),
    "scroll": st.fixed_dictionaries({"dx": st.integers(-5, 5), "dy": st.floats(-1e20, 1e20)}),
    "mouse_move": st.fixed_dictionaries({"x": _NUMBER, "y": _NUMBER}),
    "focus": st.just({}),
    "custom": st.dictionaries(_TEXT, _JSON_VALUES, max_size=4),
}


@st.composite
def sealed_bodies(draw: st.DrawFn) -> bytes:
    """A body as ingest seals it: a validated event's stored form, compactly encoded."""
    kind = draw(st.sampled_from(sorted(_DATA)))
    raw: dict[str, Any] = {"subject": "s", "time": TIME, "kind": kind, "data": draw(_DATA[kind])}
    optional: dict[str, Any] = {
        "device": st.fixed_dictionaries(
            {"owner": st.sampled_from(["corporate", "personal"])}, optional={"id": _TEXT}
        ),
        "jurisdiction": st.sampled_from(["DE", "US"]),
        "app": _TEXT,
        "window_title": _TEXT,
        "url": _TEXT,
        "private_window": st.booleans(),
        "field": st.fixed_dictionaries({}, optional={"type": _TEXT, "label": _TEXT | st.none()}),
    }
    for name, values in optional.items():
        if draw(st.booleans()):
            raw[name] = draw(values)
    body = TelemetryEvent.model_validate(raw).stored_form()
    return SEALED_JSON.encode(body).encode("utf-8")


def _columns(found: dict[str, Any] | None) -> dict[str, list[Any]] | None:
    return None if found is None else {name: list(values) for name, values in found.items()}


def _parsed(bodies: list[bytes]) -> dict[str, list[Any]] | None:
    return _columns(export_pages._parsed_columns(bodies))


def _from_text(bodies: list[bytes]) -> dict[str, list[Any]] | None:
    return _columns(export_pages._stored_columns(bodies))


@settings(max_examples=400, deadline=None)
@given(bodies=st.lists(sealed_bodies(), min_size=1, max_size=4))
def test_sealed_bodies_are_taken_from_their_text_with_the_parsed_values(
    bodies: list[bytes],
) -> None:
    from_text = _from_text(bodies)
    assert from_text is not None  # every body the vault writes takes the text path
    assert from_text == _parsed(bodies)


def _relaid(body: bytes, layout: str) -> bytes:
    """The same JSON value as ``body`` in another layout than the vault's."""
    value = json.loads(body)
    if layout == "ascii":
        return json.dumps(value, separators=(",", ":")).encode()
    if layout == "spaced":
        return json.dumps(value, ensure_ascii=False).encode()
    if layout == "sorted":
        return SEALED_JSON.encode(dict(sorted(value.items()))).encode()
    if layout == "slash":
        return body.replace(b"/", b"\\/")
    if layout == "extra":  # a member after data
        return body[:-1] + b',"extra":{"text":"x"}}'
    if layout == "twice":  # data twice: the last one counts
        return body[:-1] + b',"data":{"text":"again"}}'
    if layout == "nulls":
        return SEALED_JSON.encode({**value, "app": None, "data": None}).encode()
    raise AssertionError(layout)


@settings(max_examples=300, deadline=None)
@given(
    bodies=st.lists(sealed_bodies(), min_size=1, max_size=3),
    layout=st.sampled_from(["ascii", "spaced", "sorted", "slash", "extra", "twice", "nulls"]),
    which=st.integers(0, 2),
)
def test_other_layouts_give_the_parsed_values(bodies: list[bytes], layout: str, which: int) -> None:
    """A body the vault did not write as it writes them is read for the parsed values: the
    text path gives them or leaves the page to the parse path."""
    bodies[which % len(bodies)] = _relaid(bodies[which % len(bodies)], layout)
    from_text = _from_text(bodies)
    assert from_text is None or from_text == _parsed(bodies)


_PLAIN = b'{"time":"T","kind":"key_run","app":"A","data":{"text":"plain"}}'
#: Bodies in the vault's layout, edge cases of it: they take the text path.
_WRITTEN = [
    # escapes of every kind the encoder writes, in strings and in the JSON columns
    '{"time":"T","kind":"key_run","device":{"id":"a\\"b\\\\c\\u0001","owner":"personal"},'
    '"app":"tab\\there","window_title":"C:\\\\Users\\\\x \\"q\\"","url":"é\\n",'
    '"private_window":true,"field":{"type":"password","label":"\\u001f"},'
    '"data":{"text":"line\\nnext\\r\\b\\f\\u0000 \u2028 ☃ \U0001f600"}}',
    # nested custom data holding "data" keys, numbers, floats, lists
    '{"time":"T","kind":"custom","private_window":false,'
    '"data":{"a":{"data":[1,2.5,-0.0,1e+16,null,true]},"data":{"x":"y"},"":""}}',
    # optional members absent, empty strings present
    '{"time":"T","kind":"focus","app":"","window_title":"","url":"","data":{}}',
    '{"time":"T","kind":"key_run","data":{"text":""}}',
    # data that is not an object, or null
    '{"time":"T","kind":"custom","data":[1,{"a":"b"}]}',
    '{"time":"T","kind":"custom","data":null}',
    # the common kinds' data, and the same shapes holding what only parsing gives back
    '{"time":"T","kind":"key","data":{"key":"\\"","modifiers":[]}}',
    '{"time":"T","kind":"key","data":{"key":"a","modifiers":["ctrl","é\\n"]}}',
    '{"time":"T","kind":"click","data":{"x":0,"y":-12,"button":"left"}}',
    '{"time":"T","kind":"click","data":{"x":1.5,"y":123456789012345678901234,"button":"x"}}',
    '{"time":"T","kind":"mouse_move","data":{"x":-1,"y":2}}',
    '{"time":"T","kind":"scroll","data":{"dx":0,"dy":-3}}',
    '{"time":"T","kind":"scroll","data":{"dx":1e-07,"dy":-0.0}}',
]
#: Layouts the vault does not write: either path, the parsed values.
_OTHER = [
    '{"time":"T","kind":"key_run","data":{"text":"\\u00e9\\/"}}',
    '{"time":"T","kind":"key_run","data":{"text":"\\u000A"}}',
    '{"time":"T","kind":"key_run", "data":{"text":"a"}}',
    '{"kind":"key_run","time":"T","data":{"text":"a"}}',
    '{"time":"T","kind":"key_run","app":null,"data":{"text":"a"}}',
    '{"time":"T","kind":"key_run","data":{"text":"a","text":"b"}}',
    '{"time":"T","kind":"key_run","private_window":1,"data":{"text":"a"}}',
    '{"time":"T","kind":"click","data":{"x":1E5,"y":1.50}}',
    '{"time":"T","kind":"click","data":{"x":-0,"y":1,"button":"left"}}',
    '{"time":"T","kind":"scroll","data":{"dx":1,"dx":2,"dy":3}}',
    '{"time":"T","kind":"key","data":{"key":"a","modifiers":["\\u00e9"]}}',
    '{"time":"T","kind":"key_run","data":{"text":"a"}} ',
]


@pytest.mark.parametrize("body", _WRITTEN + _OTHER)
def test_edge_bodies_give_the_parsed_values(body: str) -> None:
    if body in _WRITTEN:
        assert SEALED_JSON.encode(json.loads(body)) == body
    for bodies in ([body.encode()], [_PLAIN, body.encode(), _PLAIN]):
        from_text = _from_text(bodies)
        assert from_text == _parsed(bodies) or (from_text is None and body in _OTHER)


@pytest.mark.parametrize(
    "body",
    [
        b'{"time":"T","kind":"key_run","app":"raw\x01control","data":{"text":"a"}}',
        b'{"time":"T","kind":"key_run","data":{"text":"raw\ttab"}}',
        b'{"time":"T","kind":"key_run","data":{"text":"bad \\x escape"}}',
        b'{"time":"T","kind":"key_run","data":{"text":"a"}',
        b'{"time":"T","kind":"key_run","data":{"text":"a"}}}',
        b'{"time":"T","kind":"key_run","data":{"text":"a"} {}}',
        b'{"time":"T","kind":"custom","data":{"x":NaN,]}}',
    ],
)
def test_bodies_that_are_not_json_fail_the_page(body: bytes) -> None:
    with pytest.raises(ValueError):
        _write([_PLAIN, body])


def _write(bodies: list[bytes]) -> bytes:
    writer = export_module._ParquetWriter()
    ids = [f"{i:032x}" for i in range(len(bodies))]
    part = writer.part(ids, ["subject"] * len(bodies), bodies, [TIME] * len(bodies))
    return writer.write(part) + writer.close()


@settings(max_examples=40, deadline=None)
@given(bodies=st.lists(sealed_bodies(), min_size=1, max_size=6))
def test_the_file_is_the_parse_path_file(bodies: list[bytes]) -> None:
    """Byte for byte: the same values, types, encodings and settings."""
    from_text = _write(bodies)
    with mock.patch.object(export_pages, "_stored_columns", return_value=None):
        parsed = _write(bodies)
    assert from_text == parsed
    rows = pq.read_table(io.BytesIO(from_text)).to_pylist()
    for row, body in zip(rows, bodies, strict=True):
        event = json.loads(body)
        for name, kind in export_module.PARQUET_COLUMNS:
            if kind == "json":
                text = row[name]
                assert (None if text is None else json.loads(text)) == event.get(name)
            elif name not in {"id", "subject", "time"}:
                assert row[name] == event.get(name)


def test_keys_that_collide_once_written_keep_the_parsed_text() -> None:
    """Custom data given by a Python caller may hold keys that JSON writes alike (1 and "1"):
    the sealed text then holds a key twice, and the export keeps what parsing gives."""
    raw = {"subject": "s", "time": TIME, "kind": "custom", "data": {"a": {1: "x", "1": "y"}}}
    body = SEALED_JSON.encode(TelemetryEvent.model_validate(raw).stored_form()).encode()
    assert b'{"1":"x","1":"y"}' in body
    from_text = _from_text([body])
    assert from_text == _parsed([body])
    assert from_text is not None
    assert from_text["data"] == ['{"a":{"1":"y"}}']
