"""What the rule engine reads back from a pattern's parse (``re._parser``), to search less.

* :func:`digit_window`: for a pattern every match of which consumes an ASCII digit near its
  start, how far before the text's first digit it can begin and how far it can look: such a
  pattern is searched between a text's first and last digit only.
* :func:`split_alternatives`: a pattern whose top level is an alternation of branches that
  each start with a literal (``AKC…|AP…|cmVm…``), as one pattern per branch: ``re`` tests every
  character against the class of the branches' first characters, but jumps between the
  occurrences of one leading literal.
* :func:`literal_starts`: the words (lower-cased) one of which every match of a pattern
  begins with, read through leading look-arounds, groups, alternations and optional parts
  (``(?<![A-Za-z0-9])(?:sk|rk)_…`` -> ``sk_``, ``rk_``): such a pattern is tried only where
  one of them begins, instead of at every character.
* :func:`zero_led`: for a pattern that starts with ``\\d`` and treats every ASCII digit alike,
  the same pattern starting with a literal ``0``, for the text with every digit turned into
  ``0``. ``re`` jumps between occurrences of a leading literal several times faster than it
  tests each character against a leading class, and the matches are the same (same places:
  the two texts line up character for character).

Every function here answers "cannot tell" (None, or the whole text) for a shape it does not
know, so a pattern it cannot read is only searched the slow way, never skipped.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterable
from typing import cast

__all__ = [
    "UNBOUNDED",
    "AnyOf",
    "digit_window",
    "literal_starts",
    "split_alternatives",
    "zero_led",
]

#: The reach of a pattern whose matches have no bound on their length.
UNBOUNDED = -1
#: Offsets and reaches beyond this are treated as unbounded (a window would save nothing).
_MAX_REACH = 4096

_Items = list[tuple[object, object]]


def _parsed(pattern: str) -> _Items | None:
    """``pattern`` as compiled by ``re`` (ASCII mode), or None when it cannot be read back."""
    parser = importlib.import_module("re._parser")
    try:
        tree = parser.parse(pattern, re.ASCII)
    except Exception:  # noqa: BLE001 - any failure only means "search the whole text"
        return None
    if not tree.state.flags & re.ASCII or _scoped_unicode(list(tree)):
        return None  # an inline flag turned Unicode digits on: ``\d`` is no longer [0-9]
    return list(tree)


def _scoped_unicode(items: _Items) -> bool:
    """Whether a group anywhere in ``items`` turns Unicode matching on (``(?u:...)``)."""
    stack: list[object] = list(items)
    while stack:
        node = stack.pop()
        if isinstance(node, tuple) and len(node) == 2:
            op, av = node
            if str(op) == "SUBPATTERN" and isinstance(av, tuple) and av[1] & re.UNICODE:
                return True
            stack.append(av)
        elif isinstance(node, list | tuple):
            stack.extend(node)
        elif hasattr(node, "data"):  # a nested parsed pattern
            stack.extend(node.data)
    return False


def _is_digit_set(items: object) -> bool:
    """Whether an ``IN`` item list matches ASCII digits only."""
    if not isinstance(items, list) or not items:
        return False
    for op, av in items:
        name = str(op)
        if name == "CATEGORY" and str(av) == "CATEGORY_DIGIT":
            continue
        if name == "LITERAL" and isinstance(av, int) and 48 <= av <= 57:
            continue
        if name == "RANGE" and isinstance(av, tuple) and 48 <= av[0] <= av[1] <= 57:
            continue
        return False
    return True


def _reach(items: _Items) -> int:
    """How many characters from its start a match attempt of ``items`` can look at: what it
    consumes, what its look-aheads and word boundaries peek at (look-behinds look back);
    ``UNBOUNDED`` when there is no bound."""
    consumed = extent = 0
    for op, av in items:
        step, peek = _element_reach(str(op), av)
        if UNBOUNDED in (step, peek):
            return UNBOUNDED
        extent = max(extent, consumed + peek)
        consumed += step
        if consumed > _MAX_REACH:
            return UNBOUNDED
    return max(consumed, extent)


def _group_items(name: str, av: object) -> _Items | None:
    """The items inside a group (``(...)``, ``(?:...)``, ``(?>...)``), or None."""
    if name == "SUBPATTERN" and isinstance(av, tuple):
        return list(av[-1])
    if name == "ATOMIC_GROUP":
        return list(cast("Iterable[tuple[object, object]]", av))  # a parsed sub-pattern
    return None


def _element_reach(name: str, av: object) -> tuple[int, int]:
    """(how many characters one element of a parsed pattern consumes at most, how many it
    looks at from where it starts); ``UNBOUNDED`` for no bound."""
    if name in ("LITERAL", "NOT_LITERAL", "ANY", "IN"):
        return 1, 1
    if name == "AT":
        return 0, 1  # \b and \B peek at the next character
    if name in ("ASSERT", "ASSERT_NOT") and isinstance(av, tuple):
        # Neither consumes. A look-ahead peeks as far as its content reaches; a look-behind
        # starts before this point, so what it peeks at (a look-ahead nested in it) lies
        # within its content's reach from here too.
        return 0, _reach(list(av[1]))
    group = _group_items(name, av)
    if group is not None:
        width = _reach(group)
    elif name == "BRANCH" and isinstance(av, tuple):
        widths = [_reach(list(branch)) for branch in av[1]]
        width = UNBOUNDED if UNBOUNDED in widths else max(widths)
    elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") and isinstance(av, tuple):
        inner = _reach(list(av[2]))
        bounded = inner != UNBOUNDED and int(av[1]) <= _MAX_REACH
        width = int(av[1]) * inner if bounded else UNBOUNDED
    else:
        width = UNBOUNDED  # back-references, conditionals: no bound claimed
    return width, width


def _digit_lead(items: _Items) -> int | None:
    """If every match of ``items`` consumes an ASCII digit: the largest offset from the match's
    start that digit can have (0: every match starts with one); else None."""
    offset = 0
    for op, av in items:
        name = str(op)
        if name in ("ASSERT", "ASSERT_NOT", "AT"):
            continue  # consumes nothing
        inner: int | None = None
        group = _group_items(name, av)
        if group is not None:
            inner = _digit_lead(group)
        elif name == "IN":
            inner = 0 if _is_digit_set(av) else None
        elif name == "LITERAL":
            inner = 0 if isinstance(av, int) and 48 <= av <= 57 else None
        elif name == "BRANCH" and isinstance(av, tuple):
            leads = [_digit_lead(list(branch)) for branch in av[1]]
            inner = None if None in leads else max(lead for lead in leads if lead is not None)
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") and isinstance(av, tuple):
            inner = _digit_lead(list(av[2])) if av[0] else None  # its first round must run
        if inner is not None:
            return offset + inner
        width = _element_reach(name, av)[0]
        if width == UNBOUNDED or offset + width > _MAX_REACH:
            return None
        offset += width
    return None


def digit_window(pattern: str) -> tuple[int, int] | None:
    """(lead, reach) for a pattern every match of which consumes an ASCII digit at most
    ``lead`` characters after its start and looks at most ``reach`` characters from its start
    (``UNBOUNDED``: no bound); None for any other pattern.

    Such a pattern cannot match more than ``lead`` characters before a text's first digit, nor
    start after its last one, nor look further than ``reach`` past that: it is searched in that
    window only (``RuleSet.find``), for the same matches without scanning the rest of a long
    text character by character.
    """
    items = _parsed(pattern)
    lead = None if items is None else _digit_lead(items)
    if items is None or lead is None:
        return None
    return lead, _reach(items)


#: The categories of an ``IN`` class (ASCII mode) that hold every ASCII digit; the others
#: (``\\D``, ``\\s``, ``\\W``...) hold none.
_DIGIT_CATEGORIES = frozenset({"CATEGORY_DIGIT", "CATEGORY_WORD", "CATEGORY_NOT_SPACE"})
_NO_DIGIT_CATEGORIES = frozenset(
    {"CATEGORY_NOT_DIGIT", "CATEGORY_SPACE", "CATEGORY_NOT_WORD", "CATEGORY_LINEBREAK"}
)


def _digits_taken(items: object) -> int | None:
    """How many of the ten ASCII digits an ``IN`` item list accepts (None: unknown item)."""
    if not isinstance(items, list):
        return None
    negate, singles, ranges, every = False, set(), [], False
    for op, av in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL" and isinstance(av, int):
            singles.add(av)
        elif name == "RANGE" and isinstance(av, tuple):
            ranges.append(av)
        elif name == "CATEGORY" and str(av) in _DIGIT_CATEGORIES:
            every = True
        elif not (name == "CATEGORY" and str(av) in _NO_DIGIT_CATEGORIES):
            return None
    taken = 0
    for code in range(48, 58):
        inside = every or code in singles or any(lo <= code <= hi for lo, hi in ranges)
        taken += inside != negate
    return taken


def _nested(name: str, av: object) -> list[_Items] | None:
    """The item lists inside a look-around, group, alternation or repetition; else None."""
    if name in ("ASSERT", "ASSERT_NOT") and isinstance(av, tuple):
        return [list(av[1])]
    group = _group_items(name, av)
    if group is not None:
        return [group]
    if name == "BRANCH" and isinstance(av, tuple):
        return [list(branch) for branch in av[1]]
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") and isinstance(av, tuple):
        return [list(av[2])]
    return None


def _digit_uniform(items: _Items) -> bool:
    """Whether ``items`` treat every ASCII digit alike: no digit literal, every class takes all
    ten digits or none, no back-reference or conditional. Such a pattern matches a text exactly
    where it matches the same text with every digit made ``0``, look-arounds included."""
    for op, av in items:
        name = str(op)
        if name in ("LITERAL", "NOT_LITERAL"):
            uniform = isinstance(av, int) and not 48 <= av <= 57
        elif name == "IN":
            uniform = _digits_taken(av) in (0, 10)
        elif name in ("ANY", "AT"):
            uniform = True  # "." takes every digit; a word boundary sees any digit as "0"
        else:
            nested = _nested(name, av)  # None: back-references, conditionals (no claim)
            uniform = nested is not None and all(_digit_uniform(inner) for inner in nested)
        if not uniform:
            return False
    return True


def zero_led(pattern: str, flags: int = 0) -> re.Pattern[bytes] | None:
    """For an ASCII ``pattern`` that starts with ``\\d`` and treats every ASCII digit alike, the
    pattern with that ``\\d`` made a literal ``0``, compiled for bytes: its matches in a text's
    ASCII bytes with every digit made ``0`` (``_TO_ZERO`` in the engine) are the pattern's
    matches in the text, at the same places. None for any other pattern.

    ``flags`` are the pattern's own (``re.IGNORECASE``); bytes patterns are ASCII-only.
    """
    if not pattern.startswith("\\d") or not pattern.isascii():
        return None
    items = _parsed(pattern)
    if items is None or not _digit_uniform(items):
        return None
    return re.compile(("0" + pattern[2:]).encode("ascii"), flags & re.IGNORECASE)


class AnyOf:
    """Patterns searched one after the other: ``search`` finds what the alternation of their
    sources finds (some match or None; not necessarily the leftmost)."""

    __slots__ = ("patterns",)

    def __init__(self, patterns: tuple[re.Pattern[str], ...]) -> None:
        self.patterns = patterns

    def search(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        for pattern in self.patterns:
            found = pattern.search(text, pos, endpos)
            if found is not None:
                return found
        return None


def _top_level_pieces(pattern: str) -> list[str]:
    """``pattern`` cut at each ``|`` outside groups and classes (escapes skipped)."""
    pieces: list[str] = []
    depth, start, index, in_class = 0, 0, 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            index += 1 + pattern.startswith("^", index + 1)  # "[^" opens one too
            if pattern.startswith("]", index):  # a "]" first in a class is a literal
                index += 1
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            pieces.append(pattern[start:index])
            start = index + 1
        index += 1
    pieces.append(pattern[start:])
    return pieces


def split_alternatives(pattern: str, flags: int = 0) -> re.Pattern[str] | AnyOf:
    """``pattern`` compiled, or, when its top level is an alternation whose every branch starts
    with a letter or digit (a literal), its branches compiled one by one (:class:`AnyOf`)."""
    compiled = re.compile(pattern, flags)
    items = _parsed(pattern)
    pieces = _top_level_pieces(pattern)
    if (
        items is None
        or len(pieces) < 2
        or len(items) != 1
        or str(items[0][0]) != "BRANCH"
        or not all(piece[:1].isalnum() for piece in pieces)
    ):
        return compiled
    branches = cast("tuple[object, list[object]]", items[0][1])[1]
    if len(branches) != len(pieces):
        return compiled  # (the parser merged or split branches: no claim)
    return AnyOf(tuple(re.compile(piece, flags) for piece in pieces))


#: More start words than this save nothing over a scan (each is looked for on its own).
_MAX_STARTS = 16
_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")


def _start_words(items: _Items) -> set[str] | None:
    """Words, lower-cased, one of which every match of ``items`` begins with; None when that
    cannot be told (a class or any other non-literal first, a possibly empty match)."""
    index = 0
    while index < len(items) and str(items[index][0]) in ("ASSERT", "ASSERT_NOT", "AT"):
        index += 1  # consumes nothing: the match begins where what follows does
    if index == len(items):
        return None
    op, av = items[index]
    name, rest = str(op), items[index + 1 :]
    group = _group_items(name, av)
    if name == "LITERAL":
        return _literal_words(items[index:])
    if group is not None:
        return _start_words(group + rest)
    if name == "BRANCH" and isinstance(av, tuple):
        return _branch_words([list(branch) for branch in av[1]], rest)
    if name in _REPEATS and isinstance(av, tuple):
        return _repeat_words(int(av[0]), list(av[2]), rest)
    return None


def _literal_words(items: _Items) -> set[str] | None:
    """For ``items`` that start with a literal: the run of literals, lower-cased, and when it
    is short, each word of what follows appended (``A(?:KIA|SIA|…)``: the parser takes a
    common first letter out of an alternation)."""
    word = ""
    for op, av in items:
        char = chr(av).lower() if str(op) == "LITERAL" and isinstance(av, int) else ""
        if len(char) != 1:
            break  # the word ends at the first non-literal (or a multi-character lower)
        word += char
    if not word:
        return None
    after = _start_words(items[len(word) :]) if len(word) < 3 else None
    return {word + more for more in after} if after else {word}


def _branch_words(branches: list[_Items], rest: _Items) -> set[str] | None:
    """The words of an alternation, each branch followed by what follows it."""
    words: set[str] = set()
    for branch in branches:
        found = _start_words(branch + rest)
        if found is None or len(words | found) > _MAX_STARTS:
            return None
        words |= found
    return words


def _repeat_words(least: int, body: _Items, rest: _Items) -> set[str] | None:
    """A match begins with a first round of the body (the body alone: a second round, not
    ``rest``, may follow it), or, when the body may run no round, with ``rest``."""
    first = _start_words(body)
    if first is None or least:
        return first
    after = _start_words(rest)
    return None if after is None else first | after


def literal_starts(pattern: str) -> tuple[str, ...] | None:
    """The words, lower-cased and at least two characters long, one of which every match of
    ``pattern`` begins with (in the text lower-cased, at the same place when lower-casing
    keeps the text's length); words another one begins are dropped (the places of the shorter
    hold theirs). None when there are none, too many, or one is a single character."""
    items = _parsed(pattern)
    words = None if items is None else _start_words(items)
    if not words or len(words) > _MAX_STARTS or min(map(len, words)) < 2:
        return None
    kept = {w for w in words if not any(o != w and w.startswith(o) for o in words)}
    return tuple(sorted(kept))
