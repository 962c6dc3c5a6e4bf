"""The importer's redaction helper process: what it answers is what ``redact_body`` gives in
this process, for either replacement mode; it fails soft (None, then unused) and ends cleanly.
The keystroke stream redaction takes per-event outcomes made ahead as its own."""

from __future__ import annotations

import copy
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vault.domain.events import TelemetryEvent
from vault.domain.redaction import (
    Redactor,
    pseudonym_replacer,
    redact_body,
    redact_event,
    redact_stream,
)
from vault.services import redaction_helper
from vault.services.body_json import encode_text
from vault.services.cpus import cpus
from vault.services.ingest import ahead_of
from vault.services.redaction_helper import RedactionHelper

#: The tests that need a helper process (the import's other tests run without one).
NEEDS_HELPER = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods() or cpus() < 2,
    reason="needs fork (POSIX) and two CPUs",
)
pytestmark = NEEDS_HELPER


def before_each_redaction(
    monkeypatch: pytest.MonkeyPatch, before: Callable[[dict[str, Any]], None]
) -> None:
    """Make helpers started from now on call ``before(body)`` ahead of redacting each body
    (patched in this process before the fork: the helper inherits it)."""
    real = redaction_helper.redact_body

    def patched(body: dict[str, Any], redactor: Redactor | None = None) -> Any:
        before(body)
        return real(body, redactor)

    monkeypatch.setattr(redaction_helper, "redact_body", patched)


START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
AWS = "AKIAZ2345ABCDEFGHJK7"


def events() -> list[TelemetryEvent]:
    """Events of every kind that carries text, secrets and personal data among them."""
    raw: list[dict[str, Any]] = []
    for i in range(60):
        when = (START + timedelta(seconds=i)).isoformat()
        base = {"subject": f"emp-{i % 4}", "time": when, "app": "Code"}
        match i % 6:
            case 0:
                raw.append(
                    {**base, "kind": "key_run", "data": {"text": f"mail bob{i}@corp.example"}}
                )
            case 1:
                raw.append({**base, "kind": "clipboard", "data": {"text": f"key {AWS} n{i}"}})
            case 2:
                url = f"https://u:pw{i}secret@host.example/reset/{'aB3x' * 8}?token=t{i}"
                raw.append(
                    {**base, "kind": "focus", "url": url, "window_title": f"Inbox - a{i}@b.co"}
                )
            case 3:
                data = {"card": 4111111111111111, "nested": [{"password": f"hunter{i}"}, "ok"]}
                raw.append({**base, "kind": "custom", "data": data})
            case 4:
                field = {"type": "password", "label": "Password"}
                raw.append({**base, "kind": "key_run", "field": field, "data": {"text": "s3cret"}})
            case _:
                raw.append({**base, "kind": "key", "data": {"key": "a"}})
    return [TelemetryEvent.model_validate(r) for r in raw]


@pytest.mark.parametrize("mode", ["placeholder", "pseudonym"])
def test_the_helper_answers_what_redact_body_gives_here(mode: str) -> None:
    redactor = (
        Redactor() if mode == "placeholder" else Redactor(replacer=pseudonym_replacer(b"k" * 32))
    )
    batch = events()
    bodies = [e.stored_form() for e in batch]
    expected = [redact_body(copy.deepcopy(b), redactor) for b in bodies]
    helper = RedactionHelper.start(redactor)
    assert helper is not None
    with helper:
        for _ in range(3):  # one batch at a time, many batches
            assert helper.submit(bodies)
            assert not helper.submit(bodies)  # (one in flight)
            answer = helper.result()
            assert answer is not None
            assert answer.counts == [o.counts for o in expected]
            assert expected == [redact_event(e, redactor) for e in batch]
            # The sealed form of each, but for key events, whose bodies come instead (they may
            # still be masked): no other body is carried.
            assert answer.plaintexts == [
                None if o.body["kind"] == "key" else encode_text(o.body).encode("utf-8")
                for o in expected
            ]
            assert answer.bodies == [o.body if o.body["kind"] == "key" else None for o in expected]
            assert answer.plaintexts.count(None) == 10
            assert answer.kinds == [e.kind for e in batch]
            assert (answer.first_time, answer.last_time) == (
                bodies[0]["time"],
                bodies[-1]["time"],
            )
            assert answer == ahead_of(expected)
        assert helper.result() is None  # nothing submitted
    assert sum(o.counts.get("AWS_ACCESS_KEY", 0) for o in expected) == 10
    assert bodies == [e.stored_form() for e in batch]  # what was sent is not changed here


def test_a_helper_killed_at_work_answers_none_and_is_not_used_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def stuck(body: dict[str, Any]) -> None:
        if body.get("app") == "Stuck":
            time.sleep(3600)  # (the helper is killed meanwhile)

    before_each_redaction(monkeypatch, stuck)
    helper = RedactionHelper.start(Redactor())
    assert helper is not None
    bodies = [e.stored_form() for e in events()]
    assert helper.submit([*bodies, {**bodies[0], "app": "Stuck"}])
    pid = helper._process.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert helper.result() is None
    assert helper.usable is False
    assert not helper.submit(bodies)
    assert helper.result() is None
    helper.close()  # (idempotent)
    assert not helper._process.is_alive()


def test_a_dead_helper_takes_no_batch() -> None:
    helper = RedactionHelper.start(Redactor())
    assert helper is not None
    pid = helper._process.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    helper._process.join()
    assert not helper.submit([e.stored_form() for e in events()])
    assert helper.usable is False
    assert helper.result() is None


def test_a_batch_the_helper_cannot_redact_is_answered_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fussy(body: dict[str, Any]) -> None:
        if body.get("app") == "Boom":
            raise RuntimeError("cannot")

    before_each_redaction(monkeypatch, fussy)
    helper = RedactionHelper.start(Redactor())
    assert helper is not None
    with helper:
        good = [e.stored_form() for e in events()[:6]]
        assert helper.submit([*good, {**good[0], "app": "Boom"}])
        assert helper.result() is None
        assert helper.usable  # only that batch: the next one is answered
        assert helper.submit(good)
        answer = helper.result()
        assert answer is not None
        assert len(answer.counts) == len(answer.plaintexts) == len(answer.kinds) == 6


def test_closing_ends_the_process_and_a_closed_helper_takes_nothing() -> None:
    helper = RedactionHelper.start(Redactor())
    assert helper is not None
    assert helper._process in multiprocessing.active_children()
    helper.close()
    assert not helper._process.is_alive()
    assert helper._process not in multiprocessing.active_children()
    assert not helper.submit([{"kind": "focus"}])


def test_outcomes_made_ahead_are_the_stream_redactions_own() -> None:
    typed = [
        TelemetryEvent.model_validate(
            {
                "subject": "emp-1",
                "time": (START + timedelta(seconds=70 + i)).isoformat(),
                "kind": "key",
                "app": "Terminal",
                "data": {"key": key},
            }
        )
        for i, key in enumerate(f"export K={AWS}")
    ]
    batch = events() + typed
    redactor = Redactor()
    refs = [f"{i:032x}" for i in range(len(batch))]
    plain = redact_stream(batch, redactor=redactor, scope="ds", refs=refs)
    ahead = redact_stream(
        batch,
        redactor=redactor,
        scope="ds",
        refs=refs,
        ahead=[redact_event(e, redactor) for e in batch],
    )
    assert ahead.outcomes == plain.outcomes
    assert ahead.tails == plain.tails
    assert ahead.remask == plain.remask
    masked = [o for o in plain.outcomes[-len(typed) :] if o.body["data"] == {"key": "[MASKED]"}]
    assert len(masked) == len(AWS)  # the typed key is masked key by key, ahead or not
    with pytest.raises(ValueError, match="one outcome"):
        redact_stream(batch, redactor=redactor, ahead=[redact_event(batch[0], redactor)])


def test_no_helper_on_one_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert RedactionHelper.start(Redactor()) is None
    assert multiprocessing.active_children() == []


def test_ready_says_whether_the_answer_is_there() -> None:
    helper = RedactionHelper.start(Redactor())
    assert helper is not None
    with helper:
        assert not helper.ready()  # nothing submitted
        assert helper.submit([e.stored_form() for e in events()])
        deadline = time.monotonic() + 30
        while not helper.ready():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert helper.result() is not None
        assert not helper.ready()
        assert helper.submit([e.stored_form() for e in events()])
        pid = helper._process.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        helper._process.join()
        assert helper.ready()  # (ended: the answer is None, at once)


@NEEDS_HELPER
def test_sigterm_ends_the_helper_even_where_its_parent_handles_it() -> None:
    """tvault turns SIGTERM into an interrupt (vault/cli.py); the forked helper must not inherit
    that: a SIGTERM sent to the process group (timeout, systemd) ends it at once."""

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        helper = RedactionHelper.start(Redactor())
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert helper is not None
    time.sleep(0.3)  # (the helper has set its signals up: it waits for a batch)
    pid = helper._process.pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    helper._process.join(10)
    assert helper._process.exitcode == -signal.SIGTERM
    helper.close()
