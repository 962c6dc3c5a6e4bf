"""The hand-built stored form equals pydantic's JSON dump (it replaced it on the hot path)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from vault.domain.events import TelemetryEvent, format_time

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
optional_text = st.none() | st.text(max_size=20)


@st.composite
def events(draw) -> dict:
    kind = draw(st.sampled_from(["key", "key_run", "click", "focus", "custom", "scroll"]))
    data = {
        "key": {
            "key": "a",
            "modifiers": draw(st.lists(st.sampled_from(["ctrl", "alt"]), max_size=2)),
        },
        "key_run": {"text": draw(st.text(max_size=30))},
        "click": {"x": draw(st.integers(0, 99)), "y": 2.5, "button": "left"},
        "focus": {},
        "custom": draw(st.dictionaries(st.text(max_size=5), json_values, max_size=4)),
        "scroll": {"dx": 0, "dy": -3},
    }[kind]
    stamp = draw(
        st.sampled_from(
            [
                "2026-11-23T10:00:00.5+01:00",
                "2026-11-23T10:00:00Z",
                "2026-11-23T23:59:59.9999+00:00",
                "2026-11-23T00:00:00.123456789-05:30",
                "2026-11-23t10:00:00.001z",
                "1999-12-31T23:59:59.999999-00:00",
            ]
        )
    )
    body = {"subject": "s", "time": stamp, "kind": kind, "data": data}
    if draw(st.booleans()):
        body["jurisdiction"] = draw(st.sampled_from(["DE", "US"]))
    for name in ("app", "window_title", "url"):
        value = draw(optional_text)
        if value is not None:
            body[name] = value
    if draw(st.booleans()):
        body["device"] = {"owner": draw(st.sampled_from(["corporate", "personal"]))}
        if draw(st.booleans()):
            body["device"]["id"] = draw(st.text(max_size=10))
    if draw(st.booleans()):
        body["field"] = {"type": "password", "label": draw(optional_text)}
    return body


@settings(max_examples=150, deadline=None)
@given(events())
def test_stored_form_equals_the_pydantic_dump(raw: dict) -> None:
    event = TelemetryEvent.model_validate(raw)
    expected = event.model_dump(mode="json", exclude={"subject"}, exclude_none=True)
    expected["time"] = format_time(event.time)
    assert event.stored_form() == expected


def test_stored_form_is_a_fresh_copy() -> None:
    event = TelemetryEvent.model_validate(
        {"subject": "s", "time": "2026-11-23T10:00:00Z", "kind": "custom", "data": {"a": [1]}}
    )
    event.stored_form()["data"]["a"].append(2)
    assert event.data == {"a": [1]}


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(0)), timezone(timedelta(hours=5, minutes=30))]
            + [timezone(timedelta(minutes=-m)) for m in (1, 59, 600)]
            + [ZoneInfo("UTC"), ZoneInfo("Europe/Berlin")]
        ),
    )
)
def test_format_time_is_the_isoformat_definition(value: datetime) -> None:
    """The hand-written formatter equals RFC 3339 by isoformat (milliseconds, UTC, Z)."""
    expected = value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert format_time(value) == expected
