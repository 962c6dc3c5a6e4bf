"""Keystrokes across batches: bounded tails, re-masking of earlier records, the state store."""

from __future__ import annotations

import threading
from array import array
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
    first = keys(list("export K=AKIAZ2345A"))
    one = redact_stream(first, scope="ds", refs=ids("a", len(first)))
    assert "*" not in shown(one.outcomes)
    assert not one.remask
    second = keys([*"BCDEFGHJK7", "Enter"], start=len(first))
    two = redact_stream(second, scope="ds", refs=ids("b", len(second)), tails=one.tails)
    assert shown(two.outcomes) == "*" * 10 + "Enter"
    # The ten earlier keys of the match ("AKIAZ2345A") are to be re-masked, counted once.
    assert sorted(two.remask) == ids("a", len(first))[9:]
    counts = [c for c in two.remask.values() if c] + [o.counts for o in two.outcomes if o.counts]
    assert counts == [{"AWS_ACCESS_KEY": 1}]
    # The tail keeps no character of the detected key.
    (tail,) = two.tails.values()
    assert "AKIA" not in "".join(tail.text)
    assert "GHJK7" not in "".join(tail.text)
    assert "".join(tail.text).startswith("export K=")


def test_backspace_reaches_into_the_previous_batch() -> None:
    first = keys(list("AKIAZ2345AX"))
    one = redact_stream(first, scope="ds", refs=ids("a", len(first)))
    second = keys(["Backspace", *"BCDEFGHJK7"], start=len(first))
    two = redact_stream(second, scope="ds", refs=ids("b", len(second)), tails=one.tails)
    assert shown(two.outcomes) == "*" * 11  # the Backspace inside the match too
    assert sorted(two.remask) == ids("a", len(first))  # the erased "X" included


AWS_KEY = "AKIAZ2345ABCDEFGHJK7"  # well-formed: AKIA + 16 of [A-Z2-7]


def test_no_tail_without_refs_and_a_pause_starts_a_new_stream() -> None:
    first = keys(list(AWS_KEY[:10]))
    assert not redact_stream(first, scope="ds").tails
    one = redact_stream(first, scope="ds", refs=ids("a", 10))
    # Positive control: the same second half without the pause joins and is masked.
    soon = keys(list(AWS_KEY[10:]), start=10)
    joined = redact_stream(soon, scope="ds", refs=ids("b", 10), tails=one.tails, idle_seconds=300)
    assert sorted(joined.remask) == ids("a", 10)
    assert shown(joined.outcomes) == "*" * 10
    late = keys(list(AWS_KEY[10:]), start=10 + 3100)  # 310 s later
    two = redact_stream(late, scope="ds", refs=ids("b", 10), tails=one.tails, idle_seconds=300)
    assert not two.remask
    assert "*" not in shown(two.outcomes)


def test_a_secret_typed_then_erased_is_masked() -> None:
    typed = [*"mail alice@example.com", *["Backspace"] * 22, "Space", *"ok"]
    result = redact_stream(keys(typed), scope="ds", refs=ids("a", len(typed)))
    assert shown(result.outcomes) == "mail " + "*" * 17 + "Backspace" * 22 + "Spaceok"
    assert sum(o.counts.get("EMAIL", 0) for o in result.outcomes) == 1
    (tail,) = result.tails.values()
    assert "alice" not in tail.raw
    assert tail.text == " ok"


def test_a_secret_typed_then_erased_across_batches_is_masked() -> None:
    first = keys(list("mail alice@exam"))
    one = redact_stream(first, scope="ds", refs=ids("a", len(first)))
    assert "*" not in shown(one.outcomes)
    second = keys([*"ple.com", *["Backspace"] * 22], start=len(first))
    two = redact_stream(second, scope="ds", refs=ids("b", len(second)), tails=one.tails)
    assert shown(two.outcomes) == "*" * 7 + "Backspace" * 22
    assert sorted(two.remask) == ids("a", len(first))[5:]  # "alice@exam"
    counts = [c for c in two.remask.values() if c] + [o.counts for o in two.outcomes if o.counts]
    assert counts == [{"EMAIL": 1}]
    # Each half alone is nothing: without the tail, the second batch masks nothing.
    alone = redact_stream(second, scope="ds", refs=ids("b", len(second)))
    assert "*" not in shown(alone.outcomes)


def test_tails_are_per_target_and_scope() -> None:
    first = keys(list("AKIAZ2345A"))
    one = redact_stream(first, scope="ds", refs=ids("a", 10))
    other_app = keys(list("BCDEFGHJK7"), start=10, app="Slack")
    assert not redact_stream(other_app, scope="ds", refs=ids("b", 10), tails=one.tails).remask
    other_scope = keys(list("BCDEFGHJK7"), start=10)
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
    assert len(tail.raw) == TAIL_CHARS
    assert len(tail.refs) <= min(MAX_TAIL_KEYS, len(tail.text) + len(tail.raw))
    assert all(0 <= owner < len(tail.refs) for owner in [*tail.owners, *tail.raw_owners])
    assert tail.refs[tail.owners[-1]] == ids("a", len(events))[-1]
    assert tail.cost() < 40_000


def test_tail_keys_are_capped_by_its_characters() -> None:
    # Many keys that type nothing (arrows) keep no more ids than the characters kept.
    typed = ["a", *["ArrowLeft"] * 2000, "b"]
    result = redact_stream(keys(typed), scope="ds", refs=ids("a", len(typed)))
    (tail,) = result.tails.values()
    assert len(tail.refs) <= len(tail.text) + len(tail.raw) == 2


def tail(text: str = "abc") -> KeyTail:
    return KeyTail(text, array("I", range(len(text))), ["r"] * len(text), START)


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


def test_state_is_bounded_in_bytes_and_per_subject() -> None:
    one = tail("x" * 200).cost()
    state = KeystrokeState(clock=Ticker(), max_bytes=3 * one, max_per_subject=2)
    state.put({bytes([i]): tail("x" * 200) for i in range(5)}, subjects={})
    assert len(state) == 3  # the two least recently used went
    assert state.bytes_held <= 3 * one
    assert set(state.take([bytes([i]) for i in range(5)])) == {b"\x02", b"\x03", b"\x04"}
    state.put(
        {b"a": tail(), b"b": tail(), b"c": tail()}, subjects=dict.fromkeys([b"a", b"b", b"c"], "s1")
    )
    state.put({b"d": tail()}, subjects={b"d": "s2"})
    assert set(state.take([b"a", b"b", b"c", b"d"])) == {b"b", b"c", b"d"}
    assert state.bytes_held == 0


def test_forget_drops_a_subjects_tails_and_those_in_flight() -> None:
    state = KeystrokeState(clock=Ticker())
    state.put(
        {b"a": tail(), b"b": tail(), b"c": tail()}, subjects={b"a": "s1", b"b": "s1", b"c": "s2"}
    )
    assert state.forget("s1") == 2
    assert len(state) == 1
    # A batch in flight took s2's tail; s2 is forgotten before it puts it back.
    lease = state.lease()
    taken = state.take([b"c"])
    assert state.forget("s2") == 0
    state.put(taken, subjects={b"c": "s2"}, lease=lease)
    state.release(lease)
    assert len(state) == 0
    # Another subject's tail, put with a lease, is kept.
    lease = state.lease()
    state.put({b"e": tail()}, subjects={b"e": "s3"}, lease=lease)
    assert len(state) == 1


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
