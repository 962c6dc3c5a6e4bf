"""The ingest shortcuts give exactly what the general path gives: the body encoder, the
remembered app rule, the plain-time shortcut and the remembered JSON text of counts."""

from __future__ import annotations

import json
import math
import string
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine

import vault.domain.collection as collection
import vault.storage.record_insert as record_insert
from vault.domain.collection import CollectionPolicy, decide_collection
from vault.domain.events import _PLAIN_RFC3339, _RFC3339, TelemetryEvent, parse_time
from vault.services.body_json import JSON as _JSON
from vault.services.body_json import encode_text as _encode_body
from vault.storage.database import _json_dumps
from vault.storage.tables import records

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def _event(**extra: Any) -> TelemetryEvent:
    raw = {"subject": "s", "time": "2026-03-04T11:00:00.123+00:00", "kind": "key_run"}
    raw["data"] = {"text": "hello"}
    return TelemetryEvent.model_validate({**raw, **extra})


BODIES: list[Any] = [
    _event().stored_form(),
    _event(
        app="Notes é", window_title="a\u2028b\x00\"'\\", url="https://x.test/?q=ü"
    ).stored_form(),
    _event(device={"id": "d", "owner": "corporate"}, field={"type": "password"}).stored_form(),
    _event(
        kind="custom", data={"n": [1, -0.0, 2.5, 1e300, 10**30, None, True, {}, []]}
    ).stored_form(),
    _event(kind="click", data={"x": 1.5, "y": -2}).stored_form(),
    {},
    {"a": {"b": {"c": ["\ud83d\ude00", "\U0001f600", "\x7f"]}}},
]


@pytest.mark.parametrize("body", BODIES)
def test_body_encoder_matches_the_json_encoder(body: Any) -> None:
    assert _encode_body(body) == _JSON.encode(body)


def test_body_encoder_is_the_shortcut_here() -> None:
    # On CPython the shortcut is taken (otherwise the tests above compare _JSON with itself).
    assert _encode_body != _JSON.encode  # (a bound method: equal, never identical)


@pytest.mark.parametrize("bad", [math.nan, math.inf, object()])
def test_body_encoder_refuses_what_the_json_encoder_refuses(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)) as general:
        _JSON.encode({"data": {"x": bad}})
    with pytest.raises(general.type):
        _encode_body({"data": {"x": bad}})


def _policy(apps: frozenset[str] = frozenset({"My App", "Other"})) -> CollectionPolicy:
    return CollectionPolicy(
        consent_mode="opt_out",
        retention_days=30,
        jurisdictions=None,
        excluded_apps=apps,
        excluded_domains=frozenset(),
        excluded_categories=frozenset(),
        clock_skew_seconds=60,
    )


APPS = ["My App", "my  app", " MY APP ", "Other", "Othe", "1Password", "1password 8", "Paper", ""]


def test_remembered_app_rule_matches_the_matcher() -> None:
    policy = _policy()
    for _ in range(3):  # first lookups fill the memory, later ones read it
        for app in APPS:
            assert policy.app_source(app) == policy.matcher.app_source(app), app
            event = _event(app=app)
            assert decide_collection(event, policy, None, NOW) == decide_collection(
                event, _policy(), None, NOW
            ), app


def test_remembered_app_rule_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collection, "_MAX_APPS_REMEMBERED", 4)
    policy = _policy()
    names = [*APPS, *(f"app {i}" for i in range(20))]
    for _ in range(2):
        for app in names:
            assert policy.app_source(app) == policy.matcher.app_source(app), app
            assert len(policy._app_sources) <= 4


def test_plain_times_are_rfc3339_times() -> None:
    # The shortcut reads the plain form before the strict check: it must accept nothing more.
    fractions = ["", ".", ".1", ".123", ".123456", ".1234567", ".123456789", ".1234567890"]
    zones = ["", "Z", "z", "+00:00", "-05:30", "+0000", "+00", "+00:00:00", "+00:00\n", " "]
    accepted = 0
    for sep in "Tt x":
        for fraction in fractions:
            for zone in zones:
                value = f"2026-01-02{sep}03:04:05{fraction}{zone}"
                if _PLAIN_RFC3339.fullmatch(value):
                    accepted += 1
                    assert _RFC3339.fullmatch(value), value
                    assert parse_time(value) == datetime.fromisoformat(value)
                elif not _RFC3339.fullmatch(value):
                    with pytest.raises(ValueError):
                        parse_time(value)
                else:
                    assert parse_time(value).utcoffset() is not None
    assert accepted == 8  # "T", 4 fractions (none, or 1 to 6 digits), 2 numeric offsets


def _counts_converters() -> tuple[Any, Any]:
    """The fast converter of ``records.redactions`` on SQLite and the type's own processor."""
    engine = create_engine("sqlite://", json_serializer=_json_dumps)
    dialect = engine.dialect
    column = records.c.redactions
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return record_insert._converter(column, dialect), process


COUNTS: list[Any] = [
    {},
    {"EMAIL": 1},
    {"EMAIL": True},
    {"EMAIL": 1.0},
    {"EMAIL": 1},
    {"EMAIL": 1, "URL": 2},
    {"URL": 2, "EMAIL": 1},
    Counter({"URL": 3}),
    {"é": 1, "NAME": 2},
    {"A": [1, 2]},
    {1: 1},
    {True: 1},
    {"A": 10**20},
    None,
]


def test_remembered_counts_text_matches_the_json_type() -> None:
    convert, process = _counts_converters()
    assert isinstance(convert, record_insert._RememberedCounts)  # the shortcut is in use
    for _ in range(2):  # the second round reads what the first remembered
        for counts in COUNTS:
            assert convert(counts) == process(counts), counts


def test_remembered_counts_text_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_insert, "_MAX_COUNTS_REMEMBERED", 3)
    convert, process = _counts_converters()
    names = string.ascii_uppercase
    for _ in range(2):
        for i in range(20):
            counts = {names[i]: i, "X": 1}
            assert convert(counts) == process(counts) == json.dumps(counts, separators=(",", ":"))
            assert len(convert.texts) <= 3


def test_copy_writes_counts_as_their_text() -> None:
    # PostgreSQL COPY: the text psycopg would write for SQLAlchemy's Json wrapper, as a string.
    engine = create_engine("postgresql+psycopg://u@localhost/db", json_serializer=_json_dumps)
    dialect = engine.dialect
    column = records.c.redactions
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    convert = record_insert._converter(column, dialect)
    assert isinstance(convert, record_insert._RememberedCounts)
    for _ in range(2):
        for counts in COUNTS:
            if counts is None:
                continue
            got = convert(counts)  # other than a plain dict: SQLAlchemy's own wrapper
            text = got if isinstance(got, str) else _json_dumps(got.obj)
            assert text == _json_dumps(process(counts).obj), counts


def test_copy_without_a_serializer_keeps_the_wrapper() -> None:
    engine = create_engine("postgresql+psycopg://u@localhost/db")
    dialect = engine.dialect
    convert = record_insert._converter(records.c.redactions, dialect)
    assert not isinstance(convert, record_insert._RememberedCounts)
