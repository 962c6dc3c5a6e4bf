"""``FieldMapping.mapper``: the per-source function gives what mapping field by field gives.

The reference below is the mapping's definition, one field at a time in the mapping's order
(the form ``apply`` had before it was compiled once per source); the compiled function must
give an equal event dict, with nested objects' keys in the same order, for any row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.domain import mapping as m
from vault.domain.mapping import (
    FieldMapping,
    MappingError,
    NaiveTime,
    TimeFormat,
    automatic_mapping,
    parse_mapping,
)


def _reference_bool(text: str) -> Any:
    """Written apart from the code under test: what a typed column's text means as a boolean."""
    word = text.strip().lower()
    if word in {"true", "1", "yes", "y", "t"}:
        return True
    if word in {"false", "0", "no", "n", "f"}:
        return False
    return text


def _reference_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def reference(mapping: FieldMapping, row: Mapping[str, Any], *, text_values: bool) -> Any:
    """The mapping of one row, field by field in the mapping's order."""
    out: dict[str, Any] = {}
    for target, column in mapping.fields.items():
        value = m._lookup(row, column)
        if value is None or (text_values and value == ""):
            continue
        table = mapping.values.get(target)
        if table is not None and isinstance(value, str | int | float | bool):
            value = table.get(str(value), value)
        kind = m.TARGETS.get(target, "any")
        if target == "time":
            value = mapping.time.convert(value)
        elif text_values:
            convert = m._CONVERTERS.get(kind)
            if convert is not None and isinstance(value, str):
                value = convert(value)
        elif kind == "bool" and type(value) is int and value in {0, 1}:
            value = bool(value)
        elif kind == "bool" and isinstance(value, str):
            value = _reference_bool(value)  # (0/1 or true/false text in a typed column)
        elif kind in ("object", "list") and isinstance(value, str):
            value = _reference_json(value)  # (JSON text in a typed column)
        m._put(out, target, value)
    for target, value in mapping.defaults.items():
        if m._get(out, target) is None:
            m._put(out, target, value)
    return out


def ordered(event: dict[str, Any]) -> dict[str, Any]:
    """An event dict with the key order of the objects in it made visible (dict equality
    ignores it; that of the event's own keys does not matter to the schema)."""

    def visible(value: Any, seen: frozenset[int]) -> Any:
        if id(value) in seen:  # a source object mapped into itself (both forms do it alike)
            return "<cycle>"
        if isinstance(value, dict):
            inner = seen | {id(value)}
            return [(k, visible(v, inner)) for k, v in value.items()]
        if isinstance(value, list):
            return [visible(v, seen | {id(value)}) for v in value]
        return value

    return {key: visible(value, frozenset({id(event)})) for key, value in event.items()}


TARGETS = ["subject", "time", "kind", "app", "url", "private_window", "device", "device.id",
           "data", "data.text", "data.x", "data.modifiers", "field.type"]  # fmt: skip
COLUMNS = ["a", "b", "c", "d", "n.x", "n.y", "n"]
SCALARS = st.one_of(
    st.none(),
    st.sampled_from(["", "1", "0", "yes", "t", "2.5", "7", "[1]", '{"k": 1}', "x", "nan"]),
    st.integers(-2, 2),
    st.booleans(),
    st.sampled_from(["2026-01-02T03:04:05Z", "2026-01-02 03:04:05", "1700000000"]),
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.dictionaries(st.sampled_from(["x", "y", "z"]), inner, max_size=3)
)
ROWS = st.dictionaries(st.sampled_from(COLUMNS), VALUES, max_size=len(COLUMNS))
MAPPINGS = st.builds(
    lambda fields, values, defaults, unit: FieldMapping(
        fields=fields,
        values={t: v for t, v in values.items() if t in fields},
        defaults=defaults,
        time=TimeFormat(unit, "UTC", ZoneInfo("UTC")),
    ),
    st.dictionaries(st.sampled_from(TARGETS), st.sampled_from(COLUMNS), min_size=1),
    st.dictionaries(
        st.sampled_from(TARGETS),
        st.dictionaries(st.sampled_from(["1", "x", "yes", "True"]), SCALARS, max_size=2),
        max_size=2,
    ),
    st.dictionaries(st.sampled_from(TARGETS), SCALARS.filter(lambda v: v is not None), max_size=2),
    st.sampled_from(["rfc3339", "epoch_s", "epoch_ms"]),
)


@settings(max_examples=400, deadline=None)
@given(mapping=MAPPINGS, row=ROWS, text_values=st.booleans())
def test_mapper_gives_what_field_by_field_mapping_gives(
    mapping: FieldMapping, row: dict[str, Any], text_values: bool
) -> None:
    expected = reference(mapping, row, text_values=text_values)
    got = mapping.mapper(text_values=text_values)(row)
    assert ordered(got) == ordered(expected)
    assert ordered(mapping.apply(row, text_values=text_values)) == ordered(expected)


def test_a_whole_object_and_a_field_of_it_keep_the_mapping_order() -> None:
    # data.text mapped before data: the whole object replaces what data.text put there.
    first = FieldMapping(fields={"data.text": "t", "data": "d", "subject": "s"})
    row = {"t": "typed", "d": {"x": 1}, "s": "emp"}
    assert first.apply(row, text_values=False) == {"data": {"x": 1}, "subject": "emp"}
    # data mapped first: data.text is added into it.
    second = FieldMapping(fields={"data": "d", "data.text": "t"})
    assert second.apply(row, text_values=False) == {"data": {"x": 1, "text": "typed"}}


def test_csv_values_are_converted_and_translated() -> None:
    mapping = FieldMapping(
        fields={"kind": "k", "private_window": "p", "data.x": "x", "data.text": "t", "url": "u"},
        values={"kind": {"typing": "key_run"}, "private_window": {"on": True}},
    )
    row = {"k": "typing", "p": "on", "x": "7", "t": "", "u": ""}
    expected = {"kind": "key_run", "private_window": True, "data": {"x": 7}}
    assert mapping.apply(row, text_values=True) == expected
    assert mapping.apply({"k": "typing", "p": "no", "x": "7.5"}, text_values=True) == {
        "kind": "key_run",
        "private_window": False,
        "data": {"x": 7.5},
    }


def test_mapping_never_writes_into_the_source_row_or_its_defaults() -> None:
    """(Found by the property test above with a fixed seed.) An object copied from the row as
    it is, then given a field by another column or a default, is a copy: the row, and an object
    default, stay as they were for the next steps and the next rows."""
    mapping = FieldMapping(
        fields={"kind": "n.x", "data": "n", "data.x": "n.y"},
        defaults={"device": {"owner": "corporate"}, "device.id": "pc-9", "data.text": "t"},
    )
    row = {"n": {"x": None, "y": 3}}
    for text_values in (False, True):
        out = mapping.mapper(text_values=text_values)(row)
        assert out == {
            "data": {"x": 3, "y": 3, "text": "t"},
            "device": {"owner": "corporate", "id": "pc-9"},
        }
        assert row == {"n": {"x": None, "y": 3}}
        assert mapping.defaults["device"] == {"owner": "corporate"}


def test_typed_sources_read_a_boolean_from_0_1_and_true_false_text() -> None:
    """An SQL text column holding "0"/"1" (SQLite has no boolean type) or "true"/"false"."""
    mapping = FieldMapping(fields={"private_window": "p"})
    for value, expected in (
        ("1", True),
        ("0", False),
        ("true", True),
        ("False", False),
        (1, True),
        (0, False),
        (True, True),
        ("maybe", "maybe"),
        (2, 2),
    ):
        assert mapping.apply({"p": value}, text_values=False) == {"private_window": expected}


def test_typed_sources_read_json_text_only_for_object_and_list_fields() -> None:
    """A Parquet or SQL string given for ``device``/``data``/a list is the JSON it holds; a
    string for a text field stays text, even if it looks like JSON; what does not parse stays
    as it was (the schema then refuses the row)."""
    mapping = FieldMapping(
        fields={"device": "d", "data": "j", "window_title": "w", "data.modifiers": "m"}
    )
    row = {"d": '{"id":"pc-1"}', "j": '{"text":"hi"}', "w": '{"a":1}', "m": '["ctrl"]'}
    expected = {
        "device": {"id": "pc-1"},
        "data": {"text": "hi", "modifiers": ["ctrl"]},
        "window_title": '{"a":1}',
    }
    for text_values in (False, True):
        assert mapping.apply(row, text_values=text_values) == expected
    assert mapping.apply({"d": "not json"}, text_values=False) == {"device": "not json"}
    deep = "[" * 100_000  # (review: the parser's RecursionError was a traceback)
    assert mapping.apply({"d": deep}, text_values=False) == {"device": deep}
    assert mapping.apply({"d": {"id": "pc-2"}}, text_values=False) == {"device": {"id": "pc-2"}}
    positional = mapping.positional(["d", "j", "w", "m"], text_values=False)
    assert positional is not None
    assert positional(['{"id":"pc-1"}', '{"text":"hi"}', '{"a":1}', '["ctrl"]']) == expected


def test_naive_time_raises_from_the_compiled_mapper() -> None:
    mapping = automatic_mapping(["subject", "time", "kind"])
    assert mapping is not None
    with pytest.raises(NaiveTime):
        mapping.mapper(text_values=True)({"subject": "s", "time": "2026-01-02 03:04", "kind": "k"})


def test_mapper_is_made_once_and_not_shared_with_another_time_format() -> None:
    mapping = FieldMapping(fields={"subject": "s", "time": "t", "kind": "k"})
    assert mapping.mapper(text_values=False) is mapping.mapper(text_values=False)
    in_berlin = mapping.with_time(TimeFormat("rfc3339", "Europe/Berlin", ZoneInfo("Europe/Berlin")))
    row = {"s": "e", "t": "2026-01-02T03:04:05", "k": "focus"}
    assert in_berlin.apply(row, text_values=False)["time"] == "2026-01-02T03:04:05+01:00"
    with pytest.raises(NaiveTime):
        mapping.apply(row, text_values=False)
    assert in_berlin == in_berlin.with_time(in_berlin.time)  # the cache is no part of equality


@pytest.mark.parametrize(
    ("target", "value", "expected"),
    [
        ("jurisdiction", 5, "must be text"),
        ("private_window", "yes", "must be true or false"),
        ("data.x", True, "must be a finite number"),
        ("data.y", float("nan"), "must be a finite number"),
        ("device", "laptop", "must be an object"),
        ("data.modifiers", "shift", "must be a list"),
    ],
)
def test_a_default_of_the_wrong_kind_is_a_mapping_error(
    target: str, value: object, expected: str
) -> None:
    """Checked before anything is read: such a default made every row invalid for its field
    (and used up the source's fingerprint on an import of nothing)."""
    document: dict[str, dict[str, Any]] = {
        "fields": {"subject": "who", "time": "at"},
        "defaults": {"kind": "custom"},
    }
    document["defaults"][target] = value
    with pytest.raises(MappingError, match=expected):
        parse_mapping((), document)


def test_defaults_of_the_right_kind_are_taken() -> None:
    mapping = parse_mapping(
        (),
        {
            "fields": {"subject": "who", "time": "at"},
            "defaults": {
                "kind": "custom",
                "private_window": False,
                "device": {"owner": "corporate"},
                "data.x": 1.5,
                "data.modifiers": ["shift"],
                "url": None,  # (a null default is no default, as before)
            },
        },
    )
    assert mapping is not None
    assert mapping.defaults["data.x"] == 1.5
