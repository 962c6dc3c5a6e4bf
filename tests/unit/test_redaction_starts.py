"""Rules with ``starts`` are tried only where one of their literals begins: same matches.

Each such rule's pattern is run both ways on texts made of its own words (every run of letters
in its source, in several cases), its ``starts``, assignment and quote characters and random
values, and on the labelled dev file's texts: the places tried must cover every match.

Rules with ``run_before`` (the e-mail rule) are tried only where the run of their class that
ends before each anchor begins: checked the same way on texts of the run's characters, others
and anchors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vault.domain.redaction.engine import Rule, RuleSet, _match_at, _run_starts, _started
from vault.domain.redaction.redactor import DEFAULT_RULES
from vault.domain.redaction.shape import literal_starts

# Each rule tried at its starts: declared (``Rule.starts``) or read back from its pattern.
_WITH_STARTS = [
    (rule, DEFAULT_RULES._compiled[index], DEFAULT_RULES.starts[index])
    for index, rule in enumerate(DEFAULT_RULES.rules)
    if DEFAULT_RULES.starts[index]
]
_WITH_RUNS = [
    (rule, DEFAULT_RULES._compiled[index])
    for index, rule in enumerate(DEFAULT_RULES.rules)
    if rule.run_before
]
_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "redaction-dev.jsonl"


def _pieces(rule: Rule, starts: tuple[str, ...]) -> list[str]:
    words = set(re.findall(r"[a-zA-Z0-9_.-]{2,}", rule.pattern)) | set(starts)
    words = {w.lower() for w in words}
    words |= {w[0] + w for w in words}  # the letter a look-behind dispatch consumed twice
    return sorted(words | {w.upper() for w in words} | {w.title() for w in words})


def _spans(matches: object) -> list[tuple[int, int]]:
    return [m.span() for m in matches]  # type: ignore[attr-defined]


def test_some_rules_have_starts() -> None:
    named = {r.name for r, _, _ in _WITH_STARTS}
    assert {"credential-assignment", "credential-prose"} <= named
    # Read back from the pattern: look-behind-led token rules, an optional prefix.
    assert {"stripe-key", "aws-secret-access-key", "aws-access-key-id", "jwt"} <= named
    starts = dict(zip([r.name for r in DEFAULT_RULES.rules], DEFAULT_RULES.starts, strict=True))
    assert starts["stripe-key"] == ("rk_", "sk_", "whsec_")
    assert starts["aws-secret-access-key"] == ("access", "aws", "secret")
    assert starts["email"] == ()  # found back from its anchor instead


@pytest.mark.parametrize(
    ("rule", "compiled", "starts"), _WITH_STARTS, ids=lambda x: getattr(x, "name", "")
)
def test_starts_cover_every_match(
    rule: Rule, compiled: re.Pattern[str], starts: tuple[str, ...]
) -> None:
    separators = ["=", ":", " = ", ": ", '"', "'", "_", "-", ".", " ", "\n", "=>", '",  ']
    values = ["wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLE", "Zm9vYmFyYmF6cXV4", "a1B2c3D4e5F6g7H8"]
    values += ["0123456789abcdef" * 5, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" * 3, "x"]
    texts = st.lists(
        st.sampled_from(_pieces(rule, starts))
        | st.sampled_from(separators)
        | st.sampled_from(values),
        max_size=12,
    ).map("".join)

    # Declared starts are the riskier (written by hand): more examples for them.
    examples = 600 if rule.starts else 150

    @settings(max_examples=examples, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(texts)
    def check(text: str) -> None:
        lowered = text.lower()
        if len(lowered) != len(text):
            return
        assert _spans(_started(compiled, text, lowered, starts)) == _spans(compiled.finditer(text))

    check()


@pytest.mark.skipif(not _DEV.exists(), reason="the shared dev file is beside the checkout")
def test_starts_on_the_dev_file() -> None:
    texts = [json.loads(line)["text"] for line in _DEV.read_text(encoding="utf-8").splitlines()]
    for rule, compiled, starts in _WITH_STARTS:
        for text in texts:
            lowered = text.lower()
            if len(lowered) == len(text):
                assert _spans(_started(compiled, text, lowered, starts)) == _spans(
                    compiled.finditer(text)
                ), (rule.name, text)


def test_lower_case_that_changes_length_falls_back_to_the_whole_text() -> None:
    text = "İ token: q8Zt3VbN1xLw5RkP9mYc2HdJ7sGf"  # "İ" lowers to two characters
    assert len(text.lower()) != len(text)
    found = DEFAULT_RULES.find(text)
    assert found == DEFAULT_RULES.find(text, prefilter=False)
    assert found


def _run_matches(rule: Rule, compiled: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    assert rule.run_before is not None
    anchor, run = rule.run_before
    places = _run_starts(text, text[::-1], anchor, re.compile(f"[{run}]*"))
    return _spans(_match_at(compiled, text, places))


def test_the_email_rule_is_found_back_from_its_anchor() -> None:
    assert {"email", "discord-bot-token"} <= {r.name for r, _ in _WITH_RUNS}


@pytest.mark.parametrize(("rule", "compiled"), _WITH_RUNS, ids=lambda x: getattr(x, "name", ""))
def test_runs_before_the_anchor_cover_every_match(rule: Rule, compiled: re.Pattern[str]) -> None:
    assert rule.run_before is not None
    anchor = rule.run_before[0]
    pieces = ["a", "Z", "0", "_", ".", "%", "+", "-", "io", "co", "example", "first.last"]
    pieces += [anchor, anchor * 2, f"jo.ann+ops{anchor}mail.example.org"]
    pieces += [" ", "\n", ",", ":", "/", "<", "é", "x" * 70, "[EMAIL]"]
    # Discord tokens (a run before each "."): their three parts, glued or apart.
    pieces += ["MTk4NjIyNDgzNDcxOTI1MjQ4", "MTk4_jIyNDgz-DcxOTI1MjQ4", "Cl2FMQ", "N", "ab"]
    pieces += ["ZnCjm1XVW7vRze4b7Cq4se7kKWs", "Zn_jm1XVW7vRze4b7Cq4se7k-Ws", "x.Cl2FMQ."]
    texts = st.lists(st.sampled_from(pieces), max_size=16).map("".join)

    @settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(texts)
    def check(text: str) -> None:
        assert _run_matches(rule, compiled, text) == _spans(compiled.finditer(text))

    check()


def test_a_discord_token_with_inner_symbols_is_found_from_its_dots() -> None:
    rule, compiled = next((r, c) for r, c in _WITH_RUNS if r.name == "discord-bot-token")
    for token in ("MTk4_jIyNDgz-DcxOTI1MjQ4.Cl2FMQ.Zn_jm1XVW7vRze4b7Cq4se7k-Ws",):
        text = f"bot token {token} and x{token}"
        assert _run_matches(rule, compiled, text) == _spans(compiled.finditer(text))
        assert _spans(compiled.finditer(text))


@pytest.mark.skipif(not _DEV.exists(), reason="the shared dev file is beside the checkout")
def test_runs_before_the_anchor_on_the_dev_file() -> None:
    texts = [json.loads(line)["text"] for line in _DEV.read_text(encoding="utf-8").splitlines()]
    for rule, compiled in _WITH_RUNS:
        for text in texts:
            assert _run_matches(rule, compiled, text) == _spans(compiled.finditer(text)), text


def test_a_wrong_run_is_caught() -> None:
    # A run that leaves out a local-part character ("+"): an address with one is missed, which
    # the property above would report for a rule declared that way.
    rule = next(r for r, _ in _WITH_RUNS if r.name == "email")
    wrong = Rule(**{**{f: getattr(rule, f) for f in rule.__slots__}, "run_before": ("@", "a-z.")})
    text = "write to jo+ops@example.com today"
    assert RuleSet([rule]).find(text)
    assert not RuleSet([wrong]).find(text)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"(?<![A-Za-z0-9])(?:(?:sk|rk)_(?:live|test)_x|whsec_y)", ("rk_", "sk_", "whsec_y")),
        (r"(?:aws_?)?(?:secret|access)=", ("access=", "aws", "secret=")),
        # A first round of the body, not the body and what follows it: "abab…" begins "ab".
        (r"(?:ab){1,3}c", ("ab",)),
        (r"(?:ab)*cd", ("ab", "cd")),  # no round: the match begins with what follows
        (r"\bkey-[a-f0-9]{32}", ("key-",)),
        (r"(?=\d)key", ("key",)),
        (r"[A-Z]key", None),  # a class first: tried everywhere
        (r"x", None),  # one character: no gain
        (r"(?:abc)?", None),  # may match empty
        (r"(?:abc|[0-9]z)", None),  # one branch unknown: all unknown
        (r"A(?:KIA|SIA)", ("akia", "asia")),  # the parser's factored first letter
        (r"KEY|keyboard", ("key",)),  # a word another begins adds no place
    ],
)
def test_literal_starts_reads_patterns(pattern: str, expected: tuple[str, ...] | None) -> None:
    assert literal_starts(pattern) == expected


_SHAPES = [
    r"(?<![A-Za-z0-9])(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{2,}|whsec_[a-z]{2,})",
    r"(?:aws_?)?(?:secret|access)(?:_?key)?[=:](?P<value>[A-Za-z0-9]{4})",
    r"(?:ab){1,3}c",
    r"(?:ab)*?cd",
    r"(?i:xy)(?:z|zz)+q",
    r"A(?:KIA|SIA)[A-Z0-9]{4}(?![A-Z0-9])",
]


@pytest.mark.parametrize("pattern", _SHAPES)
def test_literal_starts_cover_every_match_of_crafted_shapes(pattern: str) -> None:
    starts = literal_starts(pattern)
    assert starts is not None
    flags = re.ASCII | re.IGNORECASE
    compiled = re.compile(pattern, flags)
    pieces = ["ab", "c", "cd", "sk", "rk", "_", "live", "test", "whsec", "aws", "secret"]
    pieces += ["access", "key", "=", "Xy", "z", "q", "AKIA", "ASIA", "A", "K", "0", "Z9", " "]
    texts = st.lists(st.sampled_from(pieces), max_size=14).map("".join)

    @settings(max_examples=600, deadline=None)
    @given(texts)
    def check(text: str) -> None:
        assert _spans(_started(compiled, text, text.lower(), starts)) == _spans(
            compiled.finditer(text)
        )

    check()
