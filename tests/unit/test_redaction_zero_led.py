"""Cheaper searches of the prefilter, each checked against the search it replaces.

* **Zero-led gates.** A gate that starts with ``\\d`` and treats every ASCII digit alike is
  searched, in a text's bytes with every digit made ``0``, as the same pattern led by a literal
  ``0`` (``re`` jumps between occurrences of a leading literal; a leading class costs a test per
  character). Its matches there must be the gate's matches in the text, at the same places.
* **Guarded trigger groups.** A plan's ``in`` triggers that share a first character are looked
  for only once one expression finds one of them; non-ASCII ones only in a non-ASCII text.
  Which rules a text announces must not change.
* **Split gates.** A gate whose top level is an alternation of literal-led branches is searched
  branch by branch (each led by its literal); it must pass exactly where the gate does.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vault.domain.redaction.engine import _TO_ZERO, RuleSet, _word_groups
from vault.domain.redaction.redactor import DEFAULT_RULES
from vault.domain.redaction.shape import AnyOf, split_alternatives, zero_led


@pytest.mark.parametrize(
    "pattern",
    [
        r"\d",
        r"\d[\d .()/-]{5,}\d",
        r"\d(?<=[A-Za-z]{2}\d)\d[ -]?[A-Za-z0-9]{4}",
        r"\d[A-Za-z]? {1,3}[^\sa-ce-km-z]",  # a negated class without digits takes them all
        r"\d(?<![\w-]\d)\w{2}",
        r"\d\b",
        r"\d.\D",
        r"\d(?:x|[0-9a-f]{2})",
    ],
)
def test_patterns_that_treat_digits_alike_get_a_zero_led_form(pattern: str) -> None:
    compiled = zero_led(pattern)
    assert compiled is not None
    assert compiled.pattern == ("0" + pattern[2:]).encode()


@pytest.mark.parametrize(
    "pattern",
    [
        r"[0-9]\d",  # not led by \d
        r"x\d",
        r"\d{6}[A-Za-z9]{2}",  # a class that takes one digit only
        r"\d[^5]",  # ... or all but one
        r"\d7",  # a literal digit
        r"\d(?!1)",  # ... even in a look-around
        r"(\d)\1",  # a back-reference
        r"\d[À-Ö]",  # not ASCII
        r"\d(",  # not a pattern at all
    ],
)
def test_patterns_that_single_out_a_digit_get_none(pattern: str) -> None:
    assert zero_led(pattern) is None


def _zeroed(text: str) -> bytes:
    return text.encode("ascii").translate(_TO_ZERO)


_GATES = sorted({rule.gate for rule in DEFAULT_RULES.rules if rule.gate and zero_led(rule.gate)})
_TEXTS = st.text(alphabet="0123456789 .-/()aAbBfFzZpPoOºx,:\n", max_size=60)


def test_the_default_rules_have_zero_led_gates() -> None:
    assert len(_GATES) >= 5


@pytest.mark.parametrize("gate", _GATES)
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_TEXTS, start=st.integers(0, 60), width=st.integers(0, 60))
@example(text="call 555 123 4567 now", start=0, width=60)
@example(text="DE89 3704 0044 0532 0130 00", start=3, width=20)
def test_a_zero_led_gate_matches_where_the_gate_does(
    gate: str, text: str, start: int, width: int
) -> None:
    ascii_text = text.replace("º", "o")  # zero-led forms serve ASCII texts only
    original = re.compile(gate, re.ASCII)
    zero = zero_led(gate)
    assert zero is not None
    end = min(len(ascii_text), start + width)
    expected = [m.span() for m in original.finditer(ascii_text, start, end)]
    assert [m.span() for m in zero.finditer(_zeroed(ascii_text), start, end)] == expected


def test_the_engine_uses_the_zero_led_form_and_finds_the_same() -> None:
    rules = DEFAULT_RULES
    text = "ship to 12 rue de la Paix, call +33 1 42 68 53 00 or 4111 1111 1111 1111 at 5pm"
    plan = rules._plan_for(text)
    assert any(zero is not None for _, _, zero, _ in plan.gates)
    assert rules.find(text) == rules.find(text, prefilter=False)


@pytest.mark.parametrize(
    ("words", "single", "groups", "foreign"),
    [
        ([("pass", 1), ("pw", 2), ("basic", 3)], ["basic"], [["pass", "pw"]], []),
        ([("a.b", 1), ("a(c", 2), ("паспорт", 3)], [], [["a.b", "a(c"]], ["паспорт"]),
        ([("x", 1), ("xy", 2)], [], [["x", "xy"]], []),
    ],
)
def test_word_groups_split_triggers_by_first_character(
    words: list[tuple[str, int]], single: list[str], groups: list[list[str]], foreign: list[str]
) -> None:
    found = _word_groups((word, frozenset({rule})) for word, rule in words)
    assert [word for word, _ in found[0]] == single
    assert [[word for word, _ in entries] for _, _, entries in found[1]] == groups
    assert [word for word, _ in found[2]] == foreign
    for guard, union, entries in found[1]:
        assert union == frozenset().union(*(ids for _, ids in entries))
        for word, _ in entries:  # each member is found by the guard, with special characters
            assert guard.search(f"zz {word} zz")
        assert guard.search("zz zz") is None


_FRESH = RuleSet(DEFAULT_RULES.rules)  # its own caches: plans built by this test's texts


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "password is ",
                "pin ",
                "pw=",
                "basic ",
                "bearer ",
                "passport ",
                "паспорт",
                "パスポート",
                "postfach ",
                "geboren ",
                "dob ",
                "born ",
                "corner of ",
                "heroku ",
                "git status",
                "kubectl get pods -n staging",
                "K",  # the Kelvin sign lower-cases to an ASCII k
                "12 ",
                "x",
                "\n",
            ]
        ),
        max_size=12,
    ).map("".join)
)
def test_guarded_words_announce_the_rules_every_word_announces(text: str) -> None:
    rules = _FRESH
    plan = rules._plan_for(text)
    lowered = text.lower()
    expected: set[int] = set()
    for word, ids in (*plan.words, *plan.foreign, *(e for _, _, g in plan.guarded for e in g)):
        if word in lowered:
            expected |= ids
    selected = set(rules.candidates(text))
    assert expected <= selected
    assert rules.find(text) == rules.find(text, prefilter=False)


@pytest.mark.parametrize(
    ("pattern", "pieces"),
    [
        (r"AKC[A-Za-z0-9]{10}|AP[0-9A-F][A-Za-z0-9]{8}|cmVm", ["AKC", "AP", "cmVm"]),
        (r"AC[a-z0-9]{32}|SK[a-z0-9]{32}", ["AC", "SK"]),
        (r"(?:AC|SK)x", None),  # the alternation is inside a group
        (r"a|\d", None),  # a branch led by a class
        (r"a[|]b|c\|d", ["a", "c"]),  # bars in a class or escaped stay inside their branch
        (r"a[]|]b|c", ["a", "c"]),
        (r"ab", None),
    ],
)
def test_literal_led_alternations_are_split(pattern: str, pieces: list[str] | None) -> None:
    compiled = split_alternatives(pattern, re.ASCII)
    if pieces is None:
        assert isinstance(compiled, re.Pattern)
        assert compiled.pattern == pattern
    else:
        assert isinstance(compiled, AnyOf)
        assert [
            p.pattern[: len(piece)] for p, piece in zip(compiled.patterns, pieces, strict=True)
        ] == pieces
        assert "|".join(p.pattern for p in compiled.patterns) == pattern


_SPLIT = sorted(
    {
        r.gate
        for r in DEFAULT_RULES.rules
        if r.gate and isinstance(split_alternatives(r.gate), AnyOf)
    }
)


@pytest.mark.parametrize("gate", _SPLIT)
@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(
            ["AC", "SK", "AKC", "AP", "cmVmdGtuOjAxOj", "a1", "Z9", "F", "ab", " ", "|"]
        ),
        max_size=30,
    ).map("".join),
    start=st.integers(0, 40),
)
def test_a_split_gate_passes_where_the_gate_does(gate: str, text: str, start: int) -> None:
    whole = re.compile(gate, re.ASCII)
    split = split_alternatives(gate, re.ASCII)
    assert (split.search(text, start) is None) == (whole.search(text, start) is None)


def test_the_default_rules_have_split_gates() -> None:
    assert len(_SPLIT) >= 2
