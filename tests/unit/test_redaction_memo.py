"""The memo of short texts in RuleSet.redact: same answers, no shared mutable state, bounded."""

from __future__ import annotations

import vault.domain.redaction.engine as engine
from vault.domain.redaction.redactor import DEFAULT_RULES, Redactor


def test_a_remembered_text_redacts_exactly_as_the_first_time() -> None:
    title = "Inbox (3) - jane.doe@example.com - Mail"
    first = DEFAULT_RULES.redact(title)
    again = DEFAULT_RULES.redact(title)
    assert first == again
    assert first[0] == "Inbox (3) - [EMAIL] - Mail"
    # The caller may change what it got: the memo keeps its own copies.
    again[1]["EMAIL"] = 99
    again[2].clear()
    assert DEFAULT_RULES.redact(title) == first
    assert Redactor().redact_text(title) == ("Inbox (3) - [EMAIL] - Mail", {"EMAIL": 1})


def test_long_texts_and_extra_findings_are_not_remembered() -> None:
    rules = engine.RuleSet(DEFAULT_RULES.rules)
    long_text = "x" * (engine._MEMO_CHARS + 1)
    rules.redact(long_text)
    extra = [engine.Finding(0, 3, "PERSON", "person-name", 0.5)]
    rules.redact("Ann wrote", extra)
    assert rules._memo == {}
    rules.redact("Ann wrote")
    assert list(rules._memo) == ["Ann wrote"]


def test_the_memo_is_bounded() -> None:
    rules = engine.RuleSet(DEFAULT_RULES.rules)
    for i in range(engine._MEMO_ENTRIES + 10):
        rules.redact(f"window {i}")
    assert 0 < len(rules._memo) <= engine._MEMO_ENTRIES


def test_the_remembered_result_of_all_passes_is_the_same_and_a_copy() -> None:
    rules = engine.RuleSet(DEFAULT_RULES.rules)
    title = "Re: jane.doe@example.com, call +44 20 7946 0958"
    first = rules.redact_passes(title, 8)
    assert list(rules._final) == [(8, title)]
    again = rules.redact_passes(title, 8)
    assert again == first == Redactor().redact_text(title)
    again[1]["EMAIL"] = 99
    assert rules.redact_passes(title, 8) == first
    long_text = "y" * (engine._MEMO_CHARS + 1)
    rules.redact_passes(long_text, 8)
    assert (8, long_text) not in rules._final
    for i in range(engine._MEMO_ENTRIES + 5):
        rules.redact_passes(f"tab {i}", 8)
    assert 0 < len(rules._final) <= engine._MEMO_ENTRIES
