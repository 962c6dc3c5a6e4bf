"""Secrets typed key by key are found on the reassembled text and their keys masked."""

from __future__ import annotations

from typing import Any

from vault.domain.events import TelemetryEvent
from vault.domain.redaction import redact_batch


def keys(
    typed: list[str], *, subject: str = "e", app: str = "Terminal", **extra: Any
) -> list[TelemetryEvent]:
    events = []
    for i, key in enumerate(typed):
        body: dict[str, Any] = {
            "subject": subject,
            "time": f"2026-11-23T10:{i // 600:02d}:{i // 10 % 60:02d}.{i % 10 * 100:03d}Z",
            "kind": "key",
            "app": app,
            "data": {"key": key},
        }
        body.update(extra)
        events.append(TelemetryEvent.model_validate(body))
    return events


def shown(outcomes) -> str:
    return "".join(
        "*" if o.body["data"]["key"] == "[MASKED]" else o.body["data"]["key"] for o in outcomes
    )


def test_typed_aws_key_with_a_typo_is_masked_whole() -> None:
    typed = [*"key=AKIAZ2345ABX", "Backspace", *"CDEFGHJK7", "Enter", *"ls"]
    outcomes = redact_batch(keys(typed))
    assert shown(outcomes) == "key=" + "*" * 22 + "Enterls"
    assert sum(o.counts.get("AWS_ACCESS_KEY", 0) for o in outcomes) == 1


def test_typed_email_and_github_token() -> None:
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    typed = [*"mail bob@example.com", "Space", *token]
    outcomes = redact_batch(keys(typed))
    text = shown(outcomes)
    assert "bob" not in text
    assert "ghp_" not in text
    assert text.startswith("mail ")


def test_targets_are_not_mixed_and_shortcuts_type_nothing() -> None:
    # Half of a key in one window, half in another: no single stream holds it.
    first = keys(list("AKIAZ2345A"), app="Slack")
    second = keys(list("BCDEFGHJK7"), app="Terminal")
    outcomes = redact_batch(first + second)
    assert "*" not in shown(outcomes)
    with_shortcut = keys([*"AKIAZ2345A", "v", *"BCDEFGHJK7"])
    with_shortcut[10] = TelemetryEvent.model_validate(
        {**with_shortcut[10].model_dump(mode="json"), "data": {"key": "v", "modifiers": ["ctrl"]}}
    )
    masked = shown(redact_batch(with_shortcut))
    assert masked.count("*") == 21


def test_other_subjects_and_password_fields() -> None:
    typed = keys(list("hunter2"), field={"type": "password"})
    assert shown(redact_batch(typed)) == "*" * 7
    mixed = keys(list("AKIAZ2345A"), subject="a") + keys(list("BCDEFGHJK7"), subject="b")
    assert "*" not in shown(redact_batch(mixed))


def test_plain_typing_is_untouched() -> None:
    typed = [*"hello world", "Backspace", "D"]
    outcomes = redact_batch(keys(typed))
    assert shown(outcomes) == "hello worldBackspaceD"
    assert all(not o.counts for o in outcomes)
