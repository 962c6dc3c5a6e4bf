"""The hot-path shortcuts of event validation give exactly what the slow path gives."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest
from pydantic import ValidationError

from vault.domain.collection import ACCEPTED, CollectionPolicy, decide_collection
from vault.domain.events import (
    MAX_TEXT,
    EventKind,
    KeyData,
    TelemetryEvent,
    TextData,
    _fast_key,
    _fast_text,
    parse_time,
)

_MODEL_OF = {_fast_text: TextData, _fast_key: KeyData}


def _slow(model: Any, data: Any) -> Any:
    try:
        return model.model_validate(data).model_dump(exclude_none=True)
    except ValidationError:
        return "invalid"


DATA_CASES: list[Any] = [
    {"text": ""},
    {"text": "hello"},
    {"text": "é" * MAX_TEXT},
    {"text": "x" * (MAX_TEXT + 1)},
    {"text": 5},
    {"text": None},
    {"text": "a", "extra": 1},
    {},
    {"key": "a"},
    {"key": ""},
    {"key": "k" * 64},
    {"key": "k" * 65},
    {"key": "a", "modifiers": []},
    {"key": "a", "modifiers": ["Shift", "Control"]},
    {"key": "a", "modifiers": ["x" * 16]},
    {"key": "a", "modifiers": ["x" * 17]},
    {"key": "a", "modifiers": ["m"] * 8},
    {"key": "a", "modifiers": ["m"] * 9},
    {"key": "a", "modifiers": [1]},
    {"key": "a", "modifiers": "Shift"},
    {"key": "a", "modifiers": None},
    {"key": "a", "other": []},
    {"key": 7},
]


@pytest.mark.parametrize("fast", [_fast_text, _fast_key])
@pytest.mark.parametrize("data", DATA_CASES)
def test_fast_data_is_the_model_or_defers(fast: Any, data: Any) -> None:
    got = fast(data)
    if got is not None:  # a shortcut taken must be exactly the model's output
        assert got == _slow(_MODEL_OF[fast], data)
        assert type(got) is dict


@pytest.mark.parametrize("data", DATA_CASES)
@pytest.mark.parametrize("kind", ["key", "key_run", "clipboard"])
def test_events_validate_the_same_with_and_without_shortcut(kind: str, data: Any) -> None:
    raw = {"subject": "s", "time": "2026-01-02T03:04:05Z", "kind": kind, "data": data}
    try:
        event: Any = TelemetryEvent.model_validate(raw)
    except ValidationError:
        event = "invalid"
    model = KeyData if kind == "key" else TextData
    expected = _slow(model, data)
    assert (event if event == "invalid" else event.data) == expected


def test_shortcut_result_is_a_copy() -> None:
    modifiers = ["Shift"]
    event = TelemetryEvent.model_validate(
        {"subject": "s", "time": "2026-01-02T03:04:05Z", "kind": "key",
         "data": {"key": "a", "modifiers": modifiers}}
    )  # fmt: skip
    modifiers.append("Alt")
    assert event.data == {"key": "a", "modifiers": ["Shift"]}


def _slow_parse(value: str) -> Any:
    text = value.upper().replace(" ", "T").replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        frac, offset = rest[:-6], rest[-6:]
        text = f"{head}.{frac[:6]}{offset}"
    from datetime import datetime

    return datetime.fromisoformat(text)


def test_parse_time_shortcut_matches_normalization() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        frac = "".join(rng.choices(string.digits, k=rng.randint(0, 9)))
        sep = rng.choice("Tt ")
        zone = rng.choice(["Z", "z", "+00:00", "-05:30", "+14:00", "-00:00"])
        value = (
            f"{rng.randint(1, 9999):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            f"{sep}{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
            f"{'.' + frac if frac else ''}{zone}"
        )
        got = parse_time(value)
        want = _slow_parse(value)
        assert got == want, value
        assert got.utcoffset() == want.utcoffset(), value


@pytest.mark.parametrize(
    "value", ["2026-01-02T03:04:05", "2026-01-02T03:04:05.+00:00", "2026-1-02T03:04:05Z", 5]
)
def test_parse_time_still_refuses(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_time(value)


def test_time_window_bounds_are_inclusive() -> None:
    from datetime import UTC, datetime, timedelta

    policy = CollectionPolicy(
        consent_mode="opt_out",
        retention_days=2,
        jurisdictions=None,
        excluded_apps=frozenset(),
        excluded_domains=frozenset(),
        excluded_categories=frozenset(),
        clock_skew_seconds=10,
    )
    now = datetime(2026, 5, 5, tzinfo=UTC)

    def at(moment: datetime) -> Any:
        event = TelemetryEvent.model_validate(
            {"subject": "s", "time": moment.isoformat(), "kind": EventKind.FOCUS.value}
        )
        decision = decide_collection(event, policy, None, now)
        return decision if decision is ACCEPTED else decision.reason  # type: ignore[union-attr]

    assert at(now - timedelta(days=2)) is ACCEPTED
    assert at(now - timedelta(days=2, microseconds=1)) == "too_old"
    assert at(now + timedelta(seconds=10)) is ACCEPTED
    assert at(now + timedelta(seconds=10, microseconds=1)) == "in_future"
