"""The candidate validators' fast forms answer exactly what their plain forms answer.

``value_ok`` tries the stand-in forms that scan a value only when the value holds one of their
words; ``entropy`` and ``looks_random`` map C functions over the value. Each is compared with
the plain expression it replaces, on crafted values and on random ones.
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from vault.domain.redaction import checks
from vault.domain.redaction.checks import entropy, looks_random, value_ok

#: Characters that exercise every stand-in form: the words' letters in both cases, a letter
#: that case-folds to one of them (KELVIN SIGN), the forms' punctuation, a newline.
_ALPHABET = "xXeEaAmMpPlLfFkKdDuUyY*$%{}<[#._-() \n\u212a0a1" + "sSoOnNtTrRiIcChHgG"


def _plain_entropy(value: str) -> float:
    size = len(value)
    return -sum(n / size * math.log2(n / size) for n in Counter(value).values())


def _plain_looks_random(value: str) -> bool:
    size = len(value)
    if size < 8:
        return False
    classes = (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
    )
    if classes < 2:
        return False
    bits = _plain_entropy(value)
    if all(c in "0123456789abcdefABCDEF" for c in value):
        return bits >= min(3.0, math.log2(size) * 0.75)
    return bits >= min(3.5, math.log2(size) * 0.8)


#: Every stand-in form in one expression, as value_ok tried them before its split.
_PLACEHOLDER = re.compile(
    f"^(?:{checks._STAND_IN_AT_START}|{checks._STAND_IN_WITHIN})", checks._STAND_IN_FLAGS
)


def _plain_value_ok(value: str) -> bool:
    value = value.strip("'\"` ")
    if not value or _PLACEHOLDER.match(value):
        return False
    return len(set(value)) > 1


CRAFTED = [
    "${DB_PASSWORD}",
    "$TOKEN",
    "%s",
    "%(pw)s",
    "%PASSWORD%",
    "<your token>",
    "{{ secret }}",
    "#{token}",
    "...",
    "os.environ['X']",
    "process.env.TOKEN",
    "None",
    "changeit",
    "xxxxxxxx",
    "XxXxXxXx",
    "******",
    "abc******",
    "abc******\n",
    "abc******\nx",
    "abcxxxxxx",
    "abcXXXXXX",
    "abcxxXXxx",
    "AKIAIOSFODNN7EXAMPLE",
    "my-fake-token-123",
    "dUmMy_value",
    "fa\u212ae-value",  # KELVIN SIGN: case-insensitively a "k"
    "a" * 300 + "fake",
    "a" * 600 + "fake",
    "a" * 250 + "xxxxxx",
    "line\nfake",
    "sk_live_kspMJMiFpS1u7eozKJNz7fEW",
    "Tr0ub4dor&3",
    "aaaaaaaa",
    "'\"`",
    "",
]


def test_value_ok_matches_the_single_expression_on_crafted_values() -> None:
    for value in CRAFTED:
        assert value_ok(value) == _plain_value_ok(value), value


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=40))
def test_value_ok_matches_the_single_expression_on_random_values(value: str) -> None:
    assert value_ok(value) == _plain_value_ok(value)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=30))
def test_value_ok_matches_on_any_unicode(value: str) -> None:
    assert value_ok(value) == _plain_value_ok(value)


def test_the_scanning_forms_need_their_words() -> None:
    """What makes the shortcut sound: under IGNORECASE a letter of the words matches only
    characters whose lower case is that letter (checked over every code point)."""
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    for letter in sorted(set("".join(checks._STAND_IN_WORDS)) - {"*"}):
        for char in re.findall(re.escape(letter), every, re.IGNORECASE):
            assert char.lower() == letter, (letter, hex(ord(char)))
    assert re.findall(r"\*", every, re.IGNORECASE) == ["*"]


@settings(max_examples=2000, deadline=None)
@given(st.text(min_size=1, max_size=80))
def test_entropy_is_bit_for_bit_the_plain_sum(value: str) -> None:
    assert entropy(value) == _plain_entropy(value)


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="0123456789abcdefABCDEF", max_size=64),
        st.text(alphabet="abcXYZ019+/=_-", max_size=64),
        st.text(max_size=40),
    )
)
def test_looks_random_answers_as_the_plain_form(value: str) -> None:
    assert looks_random(value) == _plain_looks_random(value)


def test_entropy_of_nothing_is_zero() -> None:
    assert entropy("") == 0.0
