"""The prefilter's fast paths give exactly what running every rule gives.

The engine looks for triggers holding a digit or a symbol with one expression per anchor
character, run only when the text holds that character, and leaves out a literal gate whose
characters a text lacks. Every rule whose trigger is in the text (or whose gate matches) must
still be a candidate: checked here on a small rule table built for the purpose (independent of
the production rules) and on the default rules.
"""

from __future__ import annotations

import re
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vault.domain.redaction.engine import Finding, Rule, RuleSet, resolve
from vault.domain.redaction.redactor import DEFAULT_RULES, Redactor


def _rule(name: str, *triggers: str, gate: str | None = None, needs: str | None = None) -> Rule:
    # The pattern is the trigger itself (any case), so a rule finds something exactly when
    # one of its triggers (or its gate) is in the text.
    words = list(triggers) or [gate or ""]
    pattern = "|".join(re.escape(w) if triggers else w for w in words)
    return Rule(
        name,
        name.upper().replace("-", "_"),
        f"(?:{pattern})",
        triggers=triggers,
        gate=gate,
        needs=needs,
        ignore_case=bool(triggers),
    )


# Letter-only triggers, prefixes of one another ("pass", "passport"), contained in one another
# ("reisepass"), one letter long; symbol triggers sharing an anchor, fitting at one anchor
# ("sk-", "sk-ant-", "-us", "tk-us-"), a tab; literal and other gates; a non-ASCII trigger.
_RULES = [
    _rule("pw-said", "pass", "pw", "pin "),
    _rule("passport", "passport", "reisepass", "passeport"),
    _rule("basic", "basic"),
    _rule("bearer", "bearer", "b"),
    _rule("openai", "sk-", needs="-"),
    _rule("anthropic", "sk-ant-", needs="-"),
    _rule("mailchimp", "-us", needs="-"),
    _rule("scalingo", "tk-us-", needs="-"),
    _rule("pin-tab", "pin\t", "pin:"),
    _rule("email", "@", needs="@"),
    _rule("square", gate="EAAA", needs="-E"),
    _rule("aws", gate="A(?:KIA|SIA)", needs="A"),
    _rule("digits", gate=r"\d\.\d", needs="0123456789"),
    _rule("eszett", "straße"),
]
_TABLE = RuleSet(_RULES)
_PIECES = sorted({t for r in _RULES for t in r.triggers} | {"EAAA", "AKIA", "1.2", "STRASSE"})


def _announced(rules: RuleSet, text: str) -> set[int]:
    """Rules whose trigger is in the lower-cased text or whose gate matches, ``needs`` met."""
    lowered = text.lower()
    out = set()
    for index, rule in enumerate(rules.rules):
        if rule.needs is not None and not any(c in text for c in rule.needs):
            continue
        if any(t in lowered for t in rule.triggers) or (
            rule.gate is not None and re.search(rule.gate, text, re.ASCII)
        ):
            out.add(index)
    return out


_TEXTS = st.lists(
    st.one_of(
        st.sampled_from(_PIECES),
        st.sampled_from(_PIECES).map(str.upper),
        st.text(alphabet="abpsukt-_.@ \tEA1:ßİ", max_size=6),
    ),
    max_size=8,
).map("".join)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(_TEXTS)
def test_every_announced_rule_is_a_candidate(text: str) -> None:
    assert _announced(_TABLE, text) <= set(_TABLE.candidates(text))
    assert _TABLE.find(text) == _TABLE.find(text, prefilter=False)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_TEXTS)
def test_default_rules_candidates_cover_every_announced_rule(text: str) -> None:
    assert _announced(DEFAULT_RULES, text) <= set(DEFAULT_RULES.candidates(text))


def test_prefixes_and_shared_anchors_are_all_reported() -> None:
    names = {rule.name: index for index, rule in enumerate(_TABLE.rules)}
    # "passport" and "pass" start at one position; "sk-ant-" and "sk-" share an anchor.
    found = {_TABLE.rules[i].name for i in _TABLE.candidates("my passport, sk-ant-x")}
    assert {"pw-said", "passport", "openai", "anthropic"} <= found
    found = {_TABLE.rules[i].name for i in _TABLE.candidates("tk-us-1 and b")}
    assert {"scalingo", "mailchimp", "bearer"} <= found
    assert _TABLE.candidates("nothing here") == []
    assert names["basic"] in _TABLE.candidates("BASIC auth")


def test_a_literal_gate_is_left_out_when_a_character_is_missing() -> None:
    square = next(i for i, r in enumerate(_TABLE.rules) if r.name == "square")
    assert square not in _TABLE.candidates("x-EAA-AAA")  # "-" and "E", but no "EAAA"
    assert square not in _TABLE.candidates("lower-case eaaa")  # no "E": the gate is not run
    assert square in _TABLE.candidates("token-EAAAbc")
    plan = _TABLE._plan_for("lower-case eaaa")
    assert all(gate.pattern != "EAAA" for gate, _ in plan.gates)
    assert all(literal != "EAAA" for literal, _ in plan.literal_gates)
    assert [literal for literal, _ in _TABLE._plan_for("token-EAAAbc").literal_gates] == ["EAAA"]


def test_lower_case_maps_no_character_to_an_ascii_symbol_or_digit() -> None:
    """The plan reads a text's ASCII anchors before lower-casing: only letters may change."""
    changed = []
    for code in range(128, sys.maxunicode + 1):
        char = chr(code)
        lowered = char.lower()
        if lowered != char and any(c.isascii() and not c.isalpha() for c in lowered):
            changed.append(char)
    assert changed == []


def test_counts_add_up_over_passes() -> None:
    # A URL password hiding behind a token is only seen on the second pass.
    redactor = Redactor()
    text = "https://user:ghp_" + "a" * 36 + "@host and ghp_" + "b" * 36
    redacted, counts = redactor.redact_text(text)
    assert sum(counts.values()) == redacted.count("[")
    again = redactor.redact_text(text)
    assert again == (redacted, counts)
    assert again[1] is not counts


class _FalsyNames:
    """A name detector that is falsy (it defines ``__len__``): still asked for names."""

    def __len__(self) -> int:
        return 0

    def find_names(self, text: str) -> list[tuple[int, int]]:
        start = text.find("Ann Lee")
        return [] if start < 0 else [(start, start + 7)]


def test_a_plugged_name_detector_is_asked_whatever_its_truth_value() -> None:
    redactor = Redactor(names=_FalsyNames())
    assert redactor.redact_text("hi Ann Lee, bob@example.com") == (
        "hi [PERSON], [EMAIL]",
        {"PERSON": 1, "EMAIL": 1},
    )


def _resolve_by_definition(findings: list[Finding]) -> list[Finding]:
    """The quadratic definition resolve() must equal (empty spans dropped)."""
    ranked = sorted(
        (f for f in findings if f.end > f.start),
        key=lambda f: (-f.confidence, f.start - f.end, f.start),
    )
    kept: list[Finding] = []
    for finding in ranked:
        if all(finding.end <= k.start or finding.start >= k.end for k in kept):
            kept.append(finding)
    return sorted(kept)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 60), st.integers(0, 12), st.sampled_from([0.5, 0.7, 0.9, 0.95])),
        max_size=40,
    )
)
def test_resolve_equals_its_definition(spans: list[tuple[int, int, float]]) -> None:
    findings = [Finding(a, a + w, "T", f"r{i}", c) for i, (a, w, c) in enumerate(spans)]
    assert resolve(findings) == _resolve_by_definition(findings)
    assert [f.rule for f in resolve(findings)] == [f.rule for f in _resolve_by_definition(findings)]


def test_resolve_handles_thousands_of_findings() -> None:
    # A 64 KiB text can hold this many. The odd ones are longer and overlap both neighbours:
    # they win, and of the even ones only the first (overlapping nothing kept) remains.
    findings = [Finding(i * 3, i * 3 + 2 + i % 2 * 2, "T", "r", 0.9) for i in range(20_000)]
    assert resolve(findings) == [findings[0], *findings[1::2]]
