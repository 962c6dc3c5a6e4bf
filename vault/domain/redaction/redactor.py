"""The redactor: the rule table, the optional person-name plug-in, and text redaction.

Person names have no pattern: they need a named-entity model, which this project neither ships
nor downloads. An operator who installs one wraps it in a :class:`NameDetector` and passes it
to :class:`Redactor`; its spans become ``[PERSON]``. By default there is none.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from vault.domain.redaction.engine import Finding, RuleSet
from vault.domain.redaction.pii_rules import PII_RULES
from vault.domain.redaction.secret_rules import SECRET_RULES

__all__ = ["DEFAULT_RULES", "MAX_TEXT_CHARS", "NameDetector", "Redactor"]

#: Longest text redacted as one piece; longer texts are cut at whitespace into pieces. Events are
#: bounded far below this (``events.MAX_TEXT``); the bound keeps the engine's cost linear.
MAX_TEXT_CHARS = 256 * 1024
_CUT_MARGIN = 4096

DEFAULT_RULES = RuleSet(SECRET_RULES + PII_RULES)

# Rescans while a pass changes something: a match that only appears once its glued neighbour
# is a placeholder (each pass keeps the most confident of overlapping findings). Ordinary
# text needs one pass; the bound only matters for crafted runs of glued tokens.
_MAX_PASSES = 8


@runtime_checkable
class NameDetector(Protocol):
    """A person-name finder the operator plugs in (an NER model installed locally)."""

    def find_names(self, text: str) -> Iterable[tuple[int, int]]:
        """Character spans ``(start, end)`` of person names in ``text``."""
        ...


class Redactor:
    """Applies a rule set (and an optional name detector) to text."""

    def __init__(self, rules: RuleSet = DEFAULT_RULES, names: NameDetector | None = None):
        self.rules = rules
        self.names = names

    def _extra(self, text: str) -> list[Finding]:
        if self.names is None:
            return []
        spans = []
        for start, end in self.names.find_names(text):
            if 0 <= start < end <= len(text):
                spans.append(Finding(start, end, "PERSON", "person-name", 0.5))
        return spans

    def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
        """Replace every finding in ``text`` by ``[TYPE]``; return it and counts per type."""
        if len(text) > MAX_TEXT_CHARS:
            return self._redact_long(text)
        counts: dict[str, int] = {}
        for _ in range(_MAX_PASSES):
            if not text:
                break
            text, found, _ = self.rules.redact(text, self._extra(text))
            if not found:
                break
            for kind, number in found.items():
                counts[kind] = counts.get(kind, 0) + number
        return text, counts

    def _redact_long(self, text: str) -> tuple[str, dict[str, int]]:
        # Cut at whitespace near each boundary, so that a token is not split between two
        # pieces unless a single run of non-space is longer than the overlap margin.
        out: list[str] = []
        counts: dict[str, int] = {}
        position = 0
        while position < len(text):
            cut = min(len(text), position + MAX_TEXT_CHARS)
            if cut < len(text):
                space = max(
                    text.rfind(" ", cut - _CUT_MARGIN, cut),
                    text.rfind("\n", cut - _CUT_MARGIN, cut),
                )
                if space > position:
                    cut = space
            redacted, found = self.redact_text(text[position:cut])
            out.append(redacted)
            for kind, number in found.items():
                counts[kind] = counts.get(kind, 0) + number
            position = cut
        return "".join(out), counts
