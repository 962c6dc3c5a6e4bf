"""Keystrokes across batches: bounded tails, re-masking of earlier records, the state store."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vault.domain.events import TelemetryEvent
from vault.domain.redaction import KeystrokeState, KeyTail, redact_stream
from vault.domain.redaction.keystrokes import MAX_TAIL_KEYS, TAIL_CHARS, target_key

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def keys(typed: list[str], *, start: int = 0, **extra: Any) -> list[TelemetryEvent]:
    events = []
    for i, key in enumerate(typed):
        body: dict[str, Any] = {
            "subject": "e",
            "time": (START + timedelta(milliseconds=100 * (start + i))).isoformat(),
            "kind": "key",
            "app": "Terminal",
            "data": {"key": key},
        }
        body.update(extra)
        events.append(TelemetryEvent.model_validate(body))
    return events


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


def shown(outcomes: list[Any]) -> str:
    return "".join(
        "*" if o.body["data"]["key"] == "[MASKED]" else o.body["data"]["key"] for o in outcomes
    )


def test_a_key_split_across_batches_masks_both_sides() -> None:
    first = keys(list("export K=AKIAIOSFOD"))
    one = redact_stream(first, scope="ds", refs=ids("a", len(first)))
    assert "*" not in shown(one.outcomes)
    assert not one.remask
    second = keys([*"NN7EXAMPLE", "Enter"], start=len(first))
    two = redact_stream(second, scope="ds", refs=ids("b", len(second)), tails=one.tails)
    assert shown(two.outcomes) == "*" * 10 + "Enter"
    # The ten earlier keys of the match ("AKIAIOSFOD") are to be re-masked, counted once.
    assert sorted(two.remask) == ids("a", len(first))[9:]
    counts = [c for c in two.remask.values() if c] + [o.counts for o in two.outcomes if o.counts]
    assert counts == [{"AWS_ACCESS_KEY": 1}]
    # The tail keeps no character of the detected key.
    (tail,) = two.tails.values()
    assert "AKIA" not in "".join(tail.text)
    assert "EXAMPLE" not in "".join(tail.text)
    assert "".join(tail.text).startswith("export K=")


def test_backspace_reaches_into_the_previous_batch() -> None:
    first = keys(list("AKIAIOSFODX"))
    one = redact_stream(first, scope="ds", refs=ids("a", len(first)))
    second = keys(["Backspace", *"NN7EXAMPLE"], start=len(first))
    two = redact_stream(second, scope="ds", refs=ids("b", len(second)), tails=one.tails)
    assert shown(two.outcomes) == "*" * 11  # the Backspace inside the match too
    assert sorted(two.remask) == ids("a", len(first))  # the erased "X" included


def test_no_tail_without_refs_and_a_pause_starts_a_new_stream() -> None:
    first = keys(list("AKIAIOSFOD"))
    assert not redact_stream(first, scope="ds").tails
    one = redact_stream(first, scope="ds", refs=ids("a", 10))
    late = keys(list("NN7EXAMPLE"), start=10 + 3100)  # 310 s later
    two = redact_stream(late, scope="ds", refs=ids("b", 10), tails=one.tails, idle_seconds=300)
    assert not two.remask
    assert "*" not in shown(two.outcomes)


def test_tails_are_per_target_and_scope() -> None:
    first = keys(list("AKIAIOSFOD"))
    one = redact_stream(first, scope="ds", refs=ids("a", 10))
    other_app = keys(list("NN7EXAMPLE"), start=10, app="Slack")
    assert not redact_stream(other_app, scope="ds", refs=ids("b", 10), tails=one.tails).remask
    other_scope = keys(list("NN7EXAMPLE"), start=10)
    assert not redact_stream(other_scope, scope="ds2", refs=ids("b", 10), tails=one.tails).remask
    assert target_key("ds", first[0]) != target_key("ds2", first[0])


def test_password_field_keys_never_enter_a_tail() -> None:
    field = {"type": "text", "label": "PIN code"}
    first = keys(list("1234"), field=field)
    one = redact_stream(first, scope="ds", refs=ids("a", 4))
    assert shown(one.outcomes) == "****"
    assert not one.tails
    second = keys(list("5678"), start=4, field=field)
    two = redact_stream(second, scope="ds", refs=ids("b", 4), tails=one.tails)
    assert shown(two.outcomes) == "****"
    assert not two.tails


def test_a_context_word_typed_later_reaches_back() -> None:
    # "078-05-1123" alone is a valid SSN shape with separators; bare digits need the word.
    first = keys(list("078051123 "))
    one = redact_stream(first, scope="ds", refs=ids("a", 10))
    assert "*" not in shown(one.outcomes)
    second = keys(list("is my ssn"), start=10)
    two = redact_stream(second, scope="ds", refs=ids("b", 9), tails=one.tails)
    assert sorted(two.remask) == ids("a", 10)[:9]
    assert sum(c.get("US_SSN", 0) for c in two.remask.values()) == 1
    assert "*" not in shown(two.outcomes)


def test_tails_are_bounded() -> None:
    typed = ["a", "Backspace"] * 1500 + list("x" * 600)
    events = keys(typed)
    result = redact_stream(events, scope="ds", refs=ids("a", len(events)))
    (tail,) = result.tails.values()
    assert len(tail.text) == TAIL_CHARS
    assert len(tail.owners) == TAIL_CHARS
    assert len(tail.refs) <= MAX_TAIL_KEYS
    assert all(0 <= owner < len(tail.refs) for owner in tail.owners)
    assert tail.refs[tail.owners[-1]] == ids("a", len(events))[-1]


def tail(text: str = "abc") -> KeyTail:
    return KeyTail(list(text), list(range(len(text))), ["r"] * len(text), START)


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_state_take_put_expiry_and_lru() -> None:
    clock = Ticker()
    state = KeystrokeState(clock=clock, max_targets=2, idle_seconds=10)
    state.put({b"a": tail(), b"b": tail()})
    assert state.take([b"a"]) == {b"a": tail()}
    assert state.take([b"a"]) == {}  # taken: a concurrent batch does not share it
    state.put({b"a": tail(), b"c": tail()})  # b is the least recently put: dropped
    assert len(state) == 2
    assert not state.take([b"b"])
    clock.now = 11
    assert state.take([b"a", b"c"]) == {}
    state.put({b"e": tail("")})  # an empty tail is not kept
    assert len(state) == 0
    with pytest.raises(ValueError, match="max_targets"):
        KeystrokeState(clock=clock, max_targets=0)


def test_state_is_thread_safe() -> None:
    state = KeystrokeState(clock=Ticker(), max_targets=50)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(2000):
                key = bytes([(n * 7 + i) % 80])
                taken = state.take([key])
                state.put({key: taken.get(key, tail())})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(state) <= 50
