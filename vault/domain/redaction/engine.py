"""The rule engine: rules as data, compiled once, prefiltered, validated, applied (DESIGN.md §5).

A :class:`Rule` is a value: a pattern, the placeholder type it produces, the literal *triggers*
(lower-case) of which the text must contain one for the rule to be tried, an optional *gate*
(a small regular expression the text must contain, for rules that no literal announces, such
as numbers), an optional validator run on each candidate, optional context words that must
occur near a candidate, and a confidence used to settle overlaps.

:class:`RuleSet` compiles a table of rules once:

1. **Prefilter.** All triggers are folded into one trie-shaped regular expression that is run
   once over the lower-cased text; each distinct gate is searched at most once. A text that
   contains no trigger and passes no gate is returned untouched; otherwise only the rules it
   announces are run. Most telemetry (window titles, short key runs) stops here.
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["Finding", "Rule", "RuleSet", "Validator", "has_context"]

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

    def __post_init__(self) -> None:
        if not self.triggers and self.gate is None:
            raise ValueError(f"rule {self.name} has neither triggers nor a gate")
        if any(t != t.lower() or not t for t in self.triggers):
            raise ValueError(f"rule {self.name}: triggers are non-empty and lower-case")


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


def _trie_regex(words: Iterable[str]) -> str:
    """One regular expression matching any of ``words``, shaped as a trie (longest first).

    Python's ``re`` tries alternatives one by one; factoring common prefixes keeps the work at
    each position proportional to the longest trigger, not to the number of triggers.
    """
    trie: dict[str, dict] = {}  # type: ignore[type-arg]
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict) -> str:  # type: ignore[type-arg]
        end = "" in node
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if end:
            body = f"(?:{body})?"
        return body

    return build(trie)


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
        self._value_group = [
            "value" if "(?P<value>" in rule.pattern else None for rule in self.rules
        ]
        triggers = sorted({t for rule in self.rules for t in rule.triggers})
        # A trigger hidden inside a longer one (findall does not overlap) still announces its
        # rules: each trigger maps to the rules of every trigger it contains.
        by_trigger: dict[str, set[int]] = {t: set() for t in triggers}
        for index, rule in enumerate(self.rules):
            for t in rule.triggers:
                for longer in triggers:
                    if t in longer:
                        by_trigger[longer].add(index)
        self._by_trigger = {t: frozenset(ids) for t, ids in by_trigger.items()}
        self._triggers = re.compile(_trie_regex(triggers)) if triggers else None
        gates: dict[str, set[int]] = {}
        for index, rule in enumerate(self.rules):
            if rule.gate is not None:
                gates.setdefault(rule.gate, set()).add(index)
        self._gates = [(re.compile(g, re.ASCII), frozenset(ids)) for g, ids in gates.items()]

    def candidates(self, text: str) -> list[int]:
        """Indexes of the rules the prefilter lets through for ``text`` (in table order)."""
        selected: set[int] = set()
        if self._triggers is not None:
            for hit in self._triggers.findall(text.lower()):
                selected |= self._by_trigger.get(hit, frozenset())
        for gate, ids in self._gates:
            if not ids <= selected and gate.search(text):
                selected |= ids
        return sorted(selected)

    def find(self, text: str, *, prefilter: bool = True) -> list[Finding]:
        """Every validated finding in ``text``, overlaps resolved, in text order.

        ``prefilter=False`` runs every rule (tests compare both ways).
        """
        found: list[Finding] = []
        indexes = self.candidates(text) if prefilter else range(len(self.rules))
        for index in indexes:
            rule, group = self.rules[index], self._value_group[index]
            for match in self._compiled[index].finditer(text):
                start, end = match.span(group) if group else (-1, -1)
                if start < 0:
                    start, end = match.span()
                if start == end:
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
        return resolve(found)

    def redact(
        self, text: str, extra: Iterable[Finding] = ()
    ) -> tuple[str, dict[str, int], list[Finding]]:
        """``text`` with every finding (and ``extra`` ones) replaced by ``[TYPE]``."""
        findings = self.find(text)
        extra = list(extra)
        if extra:
            findings = resolve(findings + extra)
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


def resolve(findings: list[Finding]) -> list[Finding]:
    """Keep the most confident, then longest, of overlapping findings; return in text order."""
    if len(findings) < 2:
        return findings
    ranked = sorted(findings, key=lambda f: (-f.confidence, f.start - f.end, f.start))
    kept: list[Finding] = []
    for finding in ranked:
        if all(finding.end <= k.start or finding.start >= k.end for k in kept):
            kept.append(finding)
    kept.sort()
    return kept
