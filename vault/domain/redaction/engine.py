"""The rule engine: rules as data, compiled once, prefiltered, validated, applied (DESIGN.md §5).

A :class:`Rule` is a value: a pattern, the placeholder type it produces, the literal *triggers*
(lower-case) of which the text must contain one for the rule to be tried, an optional *gate*
(a small regular expression the text must contain, for rules that no literal announces, such
as numbers), an optional validator run on each candidate, optional context words that must
occur near a candidate, and a confidence used to settle overlaps.

:class:`RuleSet` compiles a table of rules once:

1. **Prefilter.** A text's ASCII characters other than letters and blanks (one encode, one
   translate, one set) say which rules can match (``needs``), which anchored expressions are
   worth running and which literal gates can match. Triggers holding a digit or a symbol are
   found by one expression per anchor character (starting with that literal, so ``re`` jumps
   between its occurrences), run over the lower-cased text only when the text holds the anchor;
   letter-only triggers, and the triggers of anchors with one or two, are looked for with
   ``in``; each distinct gate is searched at most once. A text that contains no trigger and
   passes no gate is returned untouched; otherwise only the rules it announces are run. Most
   telemetry (window titles, short key runs) stops here.
2. **Candidates.** Each announced rule's pattern is run over the text; each match is checked
   by the rule's context words and validator (Luhn, mod-97, checksums, entropy...). Only
   candidates pay for validation.
3. **Overlaps.** Findings are accepted by confidence, then length, then position; a finding
   that overlaps an accepted one is dropped, so a token inside a URL password is counted once.
4. **Replacement.** Each accepted finding is replaced by ``[TYPE]``. A rule whose pattern has a
   ``value`` group replaces only that group (``password=[PASSWORD]``), keeping the shape.

Everything here is pure: no I/O, no settings, no clock. Patterns must run in linear time on
Python's backtracking engine (every repetition is bounded or followed by a class it cannot
overlap); ``tests/unit/test_redaction_safety.py`` runs each rule against long crafted strings.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from vault.domain.redaction.shape import UNBOUNDED as _UNBOUNDED
from vault.domain.redaction.shape import AnyOf, literal_starts, split_alternatives, zero_led
from vault.domain.redaction.shape import digit_window as _digit_window

__all__ = ["Finding", "Rule", "RuleSet", "Validator", "has_context"]

K = TypeVar("K")
V = TypeVar("V")

#: A candidate check: the whole text and the span of the candidate value -> keep it? A check
#: may also return an ``int``: keep the candidate, ending there (a pattern took too much).
Validator = Callable[[str, int, int], bool | int]


@dataclass(frozen=True, slots=True)
class Rule:
    """One detector, as data."""

    name: str
    kind: str
    pattern: str
    triggers: tuple[str, ...] = ()
    gate: str | None = None
    validate: Validator | None = None
    context: tuple[str, ...] = ()
    window: int = 40
    confidence: float = 0.9
    ignore_case: bool = False
    #: ASCII characters (case-sensitive) of which every *validated* finding's match contains at
    #: least one; ``None`` when the rule can match letters and spaces alone. Texts holding none
    #: of them skip the rule before any trigger or gate is searched.
    needs: str | None = None
    #: Lower-case literals one of which every match of ``pattern`` begins with (compared with
    #: the lower-cased text), for patterns that a class of common letters would otherwise try
    #: at every letter ("[acpkst]..."): the engine finds where one begins and tries the pattern
    #: there only. ``tests/unit/test_redaction_starts.py`` checks each rule that has them.
    starts: tuple[str, ...] = ()
    #: (anchor, run): for a pattern every match of which contains ``anchor`` and begins where
    #: the run of ``run`` characters (a regex class body, "A-Za-z0-9._%+\\-") that ends just
    #: before that anchor begins (an e-mail address: its local part, then "@"). Such a pattern
    #: starts with a look-behind, which ``re`` tries at every character; the engine finds each
    #: anchor, steps back over the run and tries the pattern there only.
    #: ``tests/unit/test_redaction_starts.py`` checks each rule that has one.
    run_before: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if not self.triggers and self.gate is None:
            raise ValueError(f"rule {self.name} has neither triggers nor a gate")
        if any(t != t.lower() or not t for t in self.triggers):
            raise ValueError(f"rule {self.name}: triggers are non-empty and lower-case")
        if self.needs is not None and (not self.needs or not self.needs.isascii()):
            raise ValueError(f"rule {self.name}: needs is a non-empty ASCII string")
        if any(t != t.lower() or not t for t in self.starts):
            raise ValueError(f"rule {self.name}: starts are non-empty and lower-case")
        if self.run_before is not None and not self.run_before[0]:
            raise ValueError(f"rule {self.name}: run_before needs an anchor")


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """A validated span of ``text`` to replace by ``[kind]``."""

    start: int
    end: int
    kind: str = field(compare=False)
    rule: str = field(compare=False)
    confidence: float = field(compare=False, default=0.9)


def has_context(text: str, start: int, end: int, words: Iterable[str], window: int) -> bool:
    """Whether one of ``words`` (lower-case) occurs within ``window`` characters of the span."""
    around = text[max(0, start - window) : start].lower() + " " + text[end : end + window].lower()
    return any(word in around for word in words)


#: Bound on the cached prefilter plans (one per combination of character groups present);
#: when it is reached the cache starts again empty (a plan costs tens of microseconds to build).
_MAX_PLANS = 1024
#: Bound on the cache from a text's character set to its plan (emptied when reached).
_MAX_CHAR_SETS = 8192
#: Anchors of at most this many triggers are looked for with ``in``, not by an expression.
_MAX_ANCHOR_WORDS = 2
#: Short texts recur in telemetry (window titles, app names, hosts, a field's few keys): the
#: redaction of a text of at most ``_MEMO_CHARS`` characters is remembered, up to
#: ``_MEMO_ENTRIES`` texts per rule set (then forgotten all at once). Memory only, per process.
_MEMO_CHARS = 160
_MEMO_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the prefilter looks for once the character classes of a text are known."""

    possible: frozenset[int]
    #: Triggers looked for with ``in`` (letter-only ones, those of small anchors): (trigger,
    #: its possible rules). ASCII ones whose first character no other trigger shares.
    words: tuple[tuple[str, frozenset[int]], ...]
    #: ASCII triggers sharing a first character ``c``, looked for with ``in`` only when one
    #: expression ``c(?=rest|rest…)`` finds one of them: (that expression, all their rules,
    #: (trigger, its rules)...). ``in`` costs about 1 ns a character whatever the trigger;
    #: the expression jumps from one ``c`` to the next, so it answers for all of them at once.
    guarded: tuple[
        tuple[re.Pattern[str], frozenset[int], tuple[tuple[str, frozenset[int]], ...]], ...
    ]
    #: Non-ASCII triggers ("паспорт"): only a text that is not ASCII once lower-cased holds one.
    foreign: tuple[tuple[str, frozenset[int]], ...]
    #: The anchored expressions worth running: (expression, capture group number -> rules).
    anchors: tuple[tuple[re.Pattern[str], tuple[frozenset[int], ...]], ...]
    #: (gate, its window: see ``_digit_window``, the gate for the text with its digits made
    #: ``0`` if it has one: see ``zero_led``, its rules).
    gates: tuple[
        tuple[
            re.Pattern[str] | AnyOf,
            tuple[int, int] | None,
            re.Pattern[bytes] | None,
            frozenset[int],
        ],
        ...,
    ]
    #: Gates that are plain literals, looked for with ``in`` (case-sensitive).
    literal_gates: tuple[tuple[str, frozenset[int]], ...]


def _is_plain(char: str) -> bool:
    return char == " " or "a" <= char <= "z"


def _anchor_split(trigger: str) -> tuple[str, str, str]:
    """(before, anchor, after): the anchor is the first non-letter after a letter, else the
    first non-letter."""
    at = next(i for i, c in enumerate(trigger) if not _is_plain(c))
    if at == 0:
        at = next(
            (
                i
                for i, c in enumerate(trigger)
                if i and not _is_plain(c) and _is_plain(trigger[i - 1])
            ),
            0,
        )
    return trigger[:at], trigger[at], trigger[at + 1 :]


def _compatible(one: str, other: str) -> bool:
    """Whether two anchored triggers can both fit at the same anchor of some text.

    Only one alternative is reported per anchor, so such triggers announce each other's rules.
    """
    b1, a1, f1 = _anchor_split(one)
    b2, a2, f2 = _anchor_split(other)
    return (
        a1 == a2
        and (b1.endswith(b2) or b2.endswith(b1))
        and (f1.startswith(f2) or f2.startswith(f1))
    )


def _anchored_regex(triggers: Sequence[str]) -> str:
    """One expression finding the ``triggers`` (each holding a character other than
    ``a-z``/space).

    Each trigger is found from that character (its *anchor*, the first one after a letter, or
    its first character): the expression starts with the anchor (the class of anchors when
    triggers of several anchors are given), so ``re`` skips to anchors at C speed and only tries
    the alternatives there. Trigger ``i`` sets capture group ``t{i + 1}`` (read back through
    ``lastindex``). ``RuleSet`` builds one expression per anchor: with a single literal first,
    ``re`` jumps between its occurrences several times faster than it tests a class.
    """
    # anchor -> (alternatives without look-behind, {char before the anchor: alternatives})
    by_anchor: dict[str, tuple[list[str], dict[str, list[str]]]] = {}
    nexts: dict[str, set[str]] = {}
    # Longest first: at one anchor the first alternative that fits wins, and a longer trigger
    # announces the rules of the shorter ones it contains (see RuleSet).
    order = sorted(range(len(triggers)), key=lambda i: (-len(triggers[i]), triggers[i]))
    for number, trigger in ((i + 1, triggers[i]) for i in order):
        before, anchor, after = _anchor_split(trigger)
        ahead, behind = by_anchor.setdefault(anchor, ([], {}))
        # The rest of the trigger is only looked at, not consumed: every anchor is tried.
        tail = (f"(?={re.escape(after)})" if after else "") + f"(?P<t{number}>)"
        if before:
            look = f"(?<={re.escape(before + anchor)})" if len(before) > 1 else ""
            behind.setdefault(before[-1], []).append(look + tail)
        else:
            ahead.append(tail)
            nexts.setdefault(anchor, set()).add(after[:1])
    branches = []
    for anchor, (ahead, behind) in sorted(by_anchor.items()):
        # Cheap guards first: the next character (alternatives without look-behind) or the
        # previous one (the others) must fit before any alternative is tried.
        options = []
        if ahead:
            chars = nexts[anchor]
            guard = "" if "" in chars else f"(?=[{''.join(re.escape(c) for c in sorted(chars))}])"
            options.append(guard + "(?:" + "|".join(ahead) + ")")
        if behind:
            chars_before = "".join(re.escape(c) for c in sorted(behind))
            nested = "|".join(
                f"(?<={re.escape(c + anchor)})(?:" + "|".join(alts) + ")"
                for c, alts in sorted(behind.items())
            )
            options.append(f"(?<=[{chars_before}]{re.escape(anchor)})(?:{nested})")
        branches.append(re.escape(anchor) + "(?:" + "|".join(options) + ")")
    return "(?:" + "|".join(branches) + ")"


_DIGITS = "0123456789"
_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
#: "Not computed yet" for a text's digit span.
_UNKNOWN = (-1, -1)
#: "Not computed yet" for :func:`_digits`.
_NOT_YET: tuple[tuple[int, int] | None, bytes | None] = (_UNKNOWN, None)


def _word_groups(
    found_by_in: Iterable[tuple[str, frozenset[int]]],
) -> tuple[
    tuple[tuple[str, frozenset[int]], ...],
    tuple[tuple[re.Pattern[str], frozenset[int], tuple[tuple[str, frozenset[int]], ...]], ...],
    tuple[tuple[str, frozenset[int]], ...],
]:
    """A plan's ``in`` triggers as (single ASCII ones, guarded groups, non-ASCII ones): see
    :class:`_Plan`. A group's expression matches exactly when one of its triggers occurs."""
    by_first: dict[str, list[tuple[str, frozenset[int]]]] = {}
    foreign: list[tuple[str, frozenset[int]]] = []
    for word, ids in found_by_in:
        if word.isascii():
            by_first.setdefault(word[0], []).append((word, ids))
        else:
            foreign.append((word, ids))
    single: list[tuple[str, frozenset[int]]] = []
    guarded = []
    for first, entries in sorted(by_first.items()):
        if len(entries) == 1:
            single += entries
            continue
        rests = sorted({re.escape(word[1:]) for word, _ in entries}, key=lambda r: (-len(r), r))
        guard = re.compile(f"{re.escape(first)}(?={'|'.join(rests)})")
        guarded.append((guard, frozenset().union(*(ids for _, ids in entries)), tuple(entries)))
    return tuple(single), tuple(guarded), tuple(foreign)


def _add_words(
    words: Iterable[tuple[str, frozenset[int]]], lowered: str, selected: set[int]
) -> None:
    """Add to ``selected`` the rules of each of ``words`` that ``lowered`` contains."""
    for word, ids in words:
        if not ids <= selected and word in lowered:
            selected |= ids


def _digit_span(text: str) -> tuple[int, int] | None:
    """(first, last) index of an ASCII digit in ``text``, or None: a few C-speed finds."""
    return _digits(text)[0]


def _digits(text: str) -> tuple[tuple[int, int] | None, bytes | None]:
    """:func:`_digit_span` of ``text`` and, for an ASCII text, its bytes with every digit made
    ``0`` (where patterns of :func:`zero_led` are searched), else None."""
    if text.isascii():
        zeroed = text.encode("ascii").translate(_TO_ZERO)
        first = zeroed.find(b"0")
        return (None if first < 0 else (first, zeroed.rfind(b"0"))), zeroed
    first, last = len(text), -1
    for digit in _DIGITS:
        at = text.find(digit)
        if at >= 0:
            first = min(first, at)
            last = max(last, text.rfind(digit))
    return (None if last < 0 else (first, last)), None


def _window(text: str, span: tuple[int, int], window: tuple[int, int]) -> tuple[int, int]:
    """Where to search ``text`` (its digits in ``span``) for a pattern of ``_digit_window``
    ``window``: from ``lead`` before the first digit to ``reach`` after the last one."""
    lead, reach = window
    end = len(text) if reach == _UNBOUNDED else min(len(text), span[1] + reach + 2)
    return max(0, span[0] - lead), end


def _remember(cache: dict[K, V], key: K, value: V, limit: int) -> None:
    """Keep ``value`` under ``key``; a cache holding ``limit`` entries starts again empty
    (atomic under concurrent callers, unlike evicting one entry; it follows today's texts)."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value


def _group_names(compiled: re.Pattern[str]) -> list[str]:
    """The names of the capture groups of ``compiled`` (all named), by group number."""
    names = {number: name for name, number in compiled.groupindex.items()}
    return [names[number] for number in range(1, compiled.groups + 1)]


class RuleSet:
    """A compiled table of rules; :meth:`find` and :meth:`redact` are pure and thread-safe."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        names = [rule.name for rule in rules]
        if len(set(names)) != len(names):
            raise ValueError("rule names must be unique")
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._compiled = [
            re.compile(rule.pattern, re.ASCII | (re.IGNORECASE if rule.ignore_case else 0))
            for rule in self.rules
        ]
        # ``needs`` as sets: a match holds one of them when the sets are not disjoint (in C).
        self._needs = [None if r.needs is None else frozenset(r.needs) for r in self.rules]
        self._value_group = [
            "value" if "(?P<value>" in rule.pattern else None for rule in self.rules
        ]
        # Level 1: character classes. Rules are grouped by their ``needs`` set; a text's
        # residue (its ASCII bytes minus letters and blanks nobody needs) says which groups
        # can match, in C: one encode, one translate, one set.
        needed = {c for rule in self.rules if rule.needs for c in rule.needs}
        groups: dict[frozenset[int], set[int]] = {}
        free: set[int] = set()
        for index, rule in enumerate(self.rules):
            if rule.needs is None:
                free.add(index)
            else:
                groups.setdefault(frozenset(rule.needs.encode()), set()).add(index)
        self._groups = [(chars, frozenset(ids)) for chars, ids in groups.items()]
        self._free = frozenset(free)
        # Level 2: triggers. Those holding a digit or a symbol are found by anchored
        # expressions (one per anchor character); letter-only ones (few per text after level 1)
        # by ``in`` on the lower-cased text, shortest per rule first.
        special: dict[str, set[int]] = {}
        plain: dict[int, tuple[str, ...]] = {}
        for index, rule in enumerate(self.rules):
            kept = [t for t in rule.triggers if not any(o != t and o in t for o in rule.triggers)]
            plain[index] = tuple(t for t in kept if all(_is_plain(c) for c in t))
            for t in kept:
                if not all(_is_plain(c) for c in t):
                    special.setdefault(t, set()).add(index)
        self._special_words = sorted(special)
        self._special_ids = [
            frozenset(
                i
                for other in self._special_words
                if other in t or _compatible(t, other)
                for i in special[other]
            )
            for t in self._special_words
        ]
        # One expression per anchor character, each starting with that literal: ``re`` then
        # jumps from one occurrence of it to the next at memchr speed (an expression starting
        # with a class of anchors tests every character, several times slower), and only the
        # expressions of anchors the text holds are run (level 1 knows them for ASCII ones).
        by_anchor: dict[str, list[int]] = {}
        for number, word in enumerate(self._special_words):
            by_anchor.setdefault(_anchor_split(word)[1], []).append(number)
        # (anchor, expression, capture group number -> the rules of its trigger, all of them)
        self._anchors: list[
            tuple[str, re.Pattern[str], tuple[frozenset[int], ...], frozenset[int]]
        ] = []
        # An anchor of one or two triggers ("@", "-p'", "c/"): plain ``in`` is cheaper than an
        # expression; (anchor, ((trigger, the rules it announces), ...)).
        self._anchor_words: list[tuple[str, tuple[tuple[str, frozenset[int]], ...]]] = []
        for anchor, numbers in sorted(by_anchor.items()):
            if len(numbers) <= _MAX_ANCHOR_WORDS:
                entries = tuple((self._special_words[n], self._special_ids[n]) for n in numbers)
                self._anchor_words.append((anchor, entries))
                continue
            compiled = re.compile(_anchored_regex([self._special_words[n] for n in numbers]))
            table = (
                frozenset(),
                *(self._special_ids[numbers[int(n[1:]) - 1]] for n in _group_names(compiled)),
            )
            self._anchors.append((anchor, compiled, table, frozenset().union(*table)))
        # Level 1 keeps the ASCII anchors in a text's residue (a tab is one), so a plan knows
        # which anchored expressions can find anything.
        self._delete = bytes(
            b
            for b in range(128)
            if (chr(b).isalpha() or chr(b).isspace())
            and chr(b) not in needed
            and chr(b) not in by_anchor
        )
        kept_chars = {chr(b) for b in range(128) if b not in self._delete}
        # A gate that is a plain literal ("EAAA", "AIza") cannot match a text that lacks one of
        # its characters level 1 keeps: such a gate is left out of the plan.
        self._literal_gates = sorted(
            {
                (rule.gate, frozenset(ord(c) for c in rule.gate if c in kept_chars))
                for rule in self.rules
                if rule.gate is not None and re.escape(rule.gate) == rule.gate
            }
        )
        self._plain = plain
        # Digit-led patterns are searched between a text's first and last digit only.
        self._windows = [_digit_window(rule.pattern) for rule in self.rules]
        # Where each rule is tried: its own ``starts``; for a rule that would otherwise be
        # tried at every character (no window, no run), the words every match of its pattern
        # begins with, read back from the parse (``(?<![A-Za-z0-9])sk_…`` at each "sk_").
        self.starts: list[tuple[str, ...]] = [
            rule.starts
            or (
                (literal_starts(rule.pattern) or ())
                if window is None and rule.run_before is None
                else ()
            )
            for rule, window in zip(self.rules, self._windows, strict=True)
        ]
        # Rules found back from an anchor: (anchor, the run's class, matched from the anchor on
        # the reversed text).
        self._runs = [
            None
            if rule.run_before is None
            else (rule.run_before[0], re.compile(f"[{rule.run_before[1]}]*"))
            for rule in self.rules
        ]
        # Each expression gate, compiled (one pattern per literal-led branch), its reach and its
        # zero-led form (digit-led gates).
        self._gates = {
            rule.gate: (
                split_alternatives(rule.gate, re.ASCII),
                _digit_window(rule.gate),
                zero_led(rule.gate),
            )
            for rule in self.rules
            if rule.gate is not None
        }
        self._plans: dict[int, _Plan] = {}
        self._by_chars: dict[frozenset[int], _Plan] = {}
        self._memo: dict[str, tuple[str, dict[str, int], list[Finding]]] = {}
        self._final: dict[tuple[int, str], tuple[str, dict[str, int]]] = {}

    def _plan(
        self, possible: frozenset[int], anchors_on: Sequence[bool], gates_off: Iterable[str]
    ) -> _Plan:
        """Level 2 for the rules ``possible`` after level 1: their triggers and gates (but the
        literal ones in ``gates_off``), and the anchored expressions whose anchor the text
        holds (``anchors_on``)."""
        words: dict[str, set[int]] = {}
        for index in possible:
            for t in self._plain[index]:
                words.setdefault(t, set()).add(index)
        gates: dict[str, set[int]] = {}
        for index in possible:
            gate = self.rules[index].gate
            if gate is not None:
                gates.setdefault(gate, set()).add(index)
        for gate in gates_off:
            gates.pop(gate, None)
        literal = {gate for gate, _ in self._literal_gates}
        compiled_gates = tuple(
            (*self._gates[g], frozenset(ids)) for g, ids in gates.items() if g not in literal
        )
        literal_gates = tuple((g, frozenset(ids)) for g, ids in gates.items() if g in literal)
        expressions = len(self._anchors)
        anchors = tuple(
            (compiled, table)
            for (_, compiled, table, ids), on in zip(
                self._anchors, anchors_on[:expressions], strict=True
            )
            if on and not ids.isdisjoint(possible)
        )
        found_by_in = [(t, frozenset(ids)) for t, ids in sorted(words.items())]
        for (_, entries), on in zip(self._anchor_words, anchors_on[expressions:], strict=True):
            if on:
                found_by_in += ((t, ids & possible) for t, ids in entries if ids & possible)
        single, guarded, foreign = _word_groups(found_by_in)
        return _Plan(possible, single, guarded, foreign, anchors, compiled_gates, literal_gates)

    def _plan_for(self, text: str) -> _Plan:
        """Level 1: the plan for the character groups and anchors ``text`` holds.

        Plans are cached by the set of ASCII characters left once letters and blanks are
        deleted (one encode, one translate, one frozenset in C): typical texts hit the cache.
        """
        # ``needs`` are ASCII characters, so the non-ASCII ones ("—", "é", emoji) can be
        # dropped: window titles such as "Inbox — Mozilla Firefox" keep their narrow plan.
        # An ASCII anchor is in the lower-cased text exactly when it is in the text: lower()
        # maps letters to letters only (tests/unit/test_redaction_speedpaths.py checks it).
        present = frozenset(text.encode("ascii", "ignore").translate(None, self._delete))
        plan = self._by_chars.get(present)
        if plan is not None:
            return plan
        # One bit per character group, anchor and literal gate: the plan's cache key.
        anchors_on = [not a.isascii() or ord(a) in present for a, _, _, _ in self._anchors]
        anchors_on += [not a.isascii() or ord(a) in present for a, _ in self._anchor_words]
        gates_off = [gate for gate, chars in self._literal_gates if not chars <= present]
        bits = [not chars.isdisjoint(present) for chars, _ in self._groups] + anchors_on
        bits += [chars <= present for _, chars in self._literal_gates]
        mask = sum(1 << position for position, on in enumerate(bits) if on)
        plan = self._plans.get(mask)
        if plan is None:
            possible = set(self._free)
            for position, (_, ids) in enumerate(self._groups):
                if mask >> position & 1:
                    possible |= ids
            plan = self._plan(frozenset(possible), anchors_on, gates_off)
            _remember(self._plans, mask, plan, _MAX_PLANS)
        _remember(self._by_chars, present, plan, _MAX_CHAR_SETS)
        return plan

    def candidates(self, text: str) -> list[int]:
        """Indexes of the rules the prefilter lets through for ``text`` (in table order)."""
        return self._select(text)[0]

    def _select(
        self, text: str
    ) -> tuple[list[int], tuple[tuple[int, int] | None, bytes | None], str]:
        """:meth:`candidates`, :func:`_digits` of ``text`` if it was needed (``_NOT_YET`` if
        not), and the lower-cased text if it was needed (else "")."""
        plan = self._plan_for(text)
        selected: set[int] = set()
        lowered = ""
        if plan.anchors or plan.words or plan.guarded or plan.foreign:
            lowered = text.lower()
            for pattern, table in plan.anchors:
                for match in pattern.finditer(lowered):
                    selected |= table[match.lastindex or 0]
            if selected:
                selected &= plan.possible
            _add_words(plan.words, lowered, selected)
            for guard, union, entries in plan.guarded:
                if not union <= selected and guard.search(lowered):
                    _add_words(entries, lowered, selected)
            if plan.foreign and not lowered.isascii():
                _add_words(plan.foreign, lowered, selected)
        for literal, ids in plan.literal_gates:
            if not ids <= selected and literal in text:
                selected |= ids
        digits = self._gated(plan, text, selected) if plan.gates else _NOT_YET
        return sorted(selected), digits, lowered

    @staticmethod
    def _gated(
        plan: _Plan, text: str, selected: set[int]
    ) -> tuple[tuple[int, int] | None, bytes | None]:
        """Add to ``selected`` the rules of the plan's expression gates that ``text`` passes;
        return :func:`_digits` of ``text`` if a gate needed it (else ``_NOT_YET``)."""
        digits = _NOT_YET
        for gate, window, zero, ids in plan.gates:
            if ids <= selected:
                continue
            if window is None:
                if gate.search(text):
                    selected |= ids
                continue
            if digits is _NOT_YET:
                digits = _digits(text)
            span, zeroed = digits
            if span is None:
                continue  # no digit: a gate that needs one cannot match
            start, end = _window(text, span, window)
            if zero is not None and zeroed is not None:
                if zero.search(zeroed, start, end):
                    selected |= ids
            elif gate.search(text, start, end):
                selected |= ids
        return digits

    def find(self, text: str, *, prefilter: bool = True) -> list[Finding]:
        """Every validated finding in ``text``, overlaps resolved, in text order.

        ``prefilter=False`` runs every rule over the whole text (tests compare both ways).
        """
        if not prefilter:
            return resolve(
                [
                    finding
                    for index, compiled in enumerate(self._compiled)
                    for finding in self._check(index, text, compiled.finditer(text))
                ]
            )
        indexes, (span, _), lowered = self._select(text)
        # ``starts`` are found in the lower-cased text: only where its positions are the text's.
        aligned = bool(lowered) and len(lowered) == len(text)
        found: list[Finding] = []
        matches: Iterable[re.Match[str]]
        backwards = ""  # the text reversed, made once if a rule with ``run_before`` needs it
        for index in indexes:
            starts, window = self.starts[index], self._windows[index]
            run = self._runs[index]
            if starts and aligned:
                matches = _started(self._compiled[index], text, lowered, starts)
            elif run is not None:
                backwards = backwards or text[::-1]
                matches = _match_at(self._compiled[index], text, _run_starts(text, backwards, *run))
            elif window is None:
                matches = self._compiled[index].finditer(text)
            else:
                if span is _UNKNOWN:
                    span = _digit_span(text)
                if span is None:
                    continue  # no digit: a pattern that needs one cannot match
                matches = self._compiled[index].finditer(text, *_window(text, span, window))
            found += self._check(index, text, matches)
        return resolve(found)

    def _check(self, index: int, text: str, matches: Iterable[re.Match[str]]) -> list[Finding]:
        """The findings among ``matches`` of rule ``index`` that its checks keep."""
        rule, group, needs = self.rules[index], self._value_group[index], self._needs[index]
        found = []
        for match in matches:
            start, end = match.span(group) if group else (-1, -1)
            if start < 0:
                start, end = match.span()
            if start == end:
                continue
            if needs is not None and needs.isdisjoint(match.group()):
                continue
            if rule.context and not has_context(
                text, match.start(), match.end(), rule.context, rule.window
            ):
                continue
            if rule.validate is not None:
                verdict = rule.validate(text, start, end)
                if verdict is False:
                    continue
                if verdict is not True and start < verdict < end:
                    end = verdict
            found.append(Finding(start, end, rule.kind, rule.name, rule.confidence))
        return found

    def redact(
        self, text: str, extra: Iterable[Finding] = ()
    ) -> tuple[str, dict[str, int], list[Finding]]:
        """``text`` with every finding (and ``extra`` ones) replaced by ``[TYPE]``."""
        extra = list(extra)
        memo = self._memo if not extra and len(text) <= _MEMO_CHARS else None
        if memo is not None:
            known = memo.get(text)
            if known is not None:
                return known[0], dict(known[1]), list(known[2])
        findings = self.find(text)
        if extra:
            findings = resolve(findings + extra)
        result = self._replace(text, findings)
        if memo is not None:
            _remember(memo, text, (result[0], dict(result[1]), list(result[2])), _MEMO_ENTRIES)
        return result

    def redact_passes(
        self, text: str, passes: int, extra: Callable[[str], list[Finding]] | None = None
    ) -> tuple[str, dict[str, int]]:
        """``text`` redacted by up to ``passes`` passes of :meth:`redact`, until one finds
        nothing (a match may only appear once its glued neighbour is a placeholder), and the
        counts per type of all passes. ``extra(text)`` adds findings to each pass (a name
        detector). Without it, short texts' answers are remembered like one pass's."""
        memo = self._final if extra is None and len(text) <= _MEMO_CHARS else None
        key = (passes, text)
        if memo is not None:
            known = memo.get(key)
            if known is not None:
                return known[0], dict(known[1]) if known[1] else {}
        counts: dict[str, int] = {}
        for _ in range(passes):
            if not text:
                break
            findings = self.find(text)
            more = extra(text) if extra is not None else None
            if more:
                findings = resolve(findings + more)
            if not findings:
                break
            text, found, _ = self._replace(text, findings)
            for kind, number in found.items():
                counts[kind] = counts.get(kind, 0) + number
        if memo is not None:
            _remember(memo, key, (text, dict(counts)), _MEMO_ENTRIES)
        return text, counts

    @staticmethod
    def _replace(text: str, findings: list[Finding]) -> tuple[str, dict[str, int], list[Finding]]:
        if not findings:
            return text, {}, []
        counts: dict[str, int] = {}
        parts: list[str] = []
        position = 0
        for finding in findings:
            parts.append(text[position : finding.start])
            parts.append(f"[{finding.kind}]")
            position = finding.end
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        parts.append(text[position:])
        return "".join(parts), counts, findings


def _started(
    compiled: re.Pattern[str], text: str, lowered: str, starts: tuple[str, ...]
) -> list[re.Match[str]]:
    """What ``compiled.finditer(text)`` gives, for a pattern every match of which begins where
    one of ``starts`` begins in ``lowered`` (``text`` lower-cased, of the same length): the
    pattern is tried at those places only, left to right, each match resuming the search
    after its end as ``finditer`` does (patterns with ``starts`` never match empty)."""
    places: set[int] = set()
    for start in starts:
        at = lowered.find(start)
        while at >= 0:
            places.add(at)
            at = lowered.find(start, at + 1)
    return _match_at(compiled, text, places)


def _run_starts(text: str, backwards: str, anchor: str, run: re.Pattern[str]) -> set[int]:
    """Where the run of ``run`` characters that ends just before each ``anchor`` in ``text``
    begins (``backwards`` is ``text`` reversed: the run is read back from the anchor)."""
    places: set[int] = set()
    size = len(text)
    at = text.find(anchor)
    while at >= 0:
        back = run.match(backwards, size - at)
        places.add(at - (back.end() - back.start()) if back is not None else at)
        at = text.find(anchor, at + 1)
    return places


def _match_at(compiled: re.Pattern[str], text: str, places: Iterable[int]) -> list[re.Match[str]]:
    """What ``compiled.finditer(text)`` gives when no match can begin elsewhere than at one of
    ``places``: tried there left to right, each match resuming after its end as ``finditer``
    does (such patterns never match empty)."""
    found = []
    resume = 0
    for place in sorted(places):
        if place >= resume:
            match = compiled.match(text, place)
            if match is not None and match.end() > place:
                found.append(match)
                resume = match.end()
    return found


def resolve(findings: list[Finding]) -> list[Finding]:
    """Keep the most confident, then longest, of overlapping findings; return in text order.

    The kept findings never overlap (and none is empty), so in start order each candidate need
    only be compared with its two neighbours there: O(n log n) (a 64 KiB text can hold
    thousands of findings).
    """
    if len(findings) < 2:
        return [f for f in findings if f.end > f.start]
    ranked = sorted(
        (f for f in findings if f.end > f.start),  # an empty span redacts nothing
        key=lambda f: (-f.confidence, f.start - f.end, f.start),
    )
    starts: list[int] = []  # of the kept findings, ascending
    kept: list[Finding] = []  # in the same order
    for finding in ranked:
        at = bisect_right(starts, finding.start)
        if at and kept[at - 1].end > finding.start:
            continue  # overlaps the kept finding that starts at or before it
        if at < len(kept) and kept[at].start < finding.end:
            continue  # overlaps the kept finding that starts after it
        starts.insert(at, finding.start)
        kept.insert(at, finding)
    return kept
