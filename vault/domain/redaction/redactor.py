"""The redactor: the rule table, the optional person-name plug-in, and text redaction.

Person names have no pattern: they need a named-entity model, which this project neither ships
nor downloads. An operator who installs one wraps it in a :class:`NameDetector` and passes it
to :class:`Redactor`; its spans become ``[PERSON]``. By default there is none.

What a finding becomes is the ``replacer``'s choice (a dataset's replacement mode, see
:mod:`.replacement`): ``[TYPE]`` by default, or a keyed pseudonym ``[TYPE:hex]``. Pseudonym
tokens already in a text are kept as they are only by a redactor made with
``trust_tokens=True`` (re-redacting bodies the vault stored itself), so redaction stays
idempotent there. At ingest a token-shaped ``[KIND:hex]`` comes from a collector: it is
replaced like a finding of its kind (``[KIND]``, or a pseudonym of the whole token), so a
collector can neither forge linkage nor hide a value from the rules behind one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from vault.domain.redaction.engine import Finding, RuleSet, resolve
from vault.domain.redaction.pii_rules import PII_RULES
from vault.domain.redaction.replacement import PSEUDONYM_TOKEN, Replacer, is_placeholder
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


@dataclass(slots=True)
class _Span:
    """A placeholder in the text being redacted, and what it stands for."""

    start: int
    end: int
    kind: str
    original: str  # the replaced text (its own placeholders expanded)
    fixed: str | None = None  # a pseudonym token found in the input: kept verbatim


#: :meth:`Redactor.redact_short`'s memory: texts of at most this many characters, this many.
_CLEAN_CHARS = 64
_CLEAN_TEXTS = 4096


class Redactor:
    """Applies a rule set (and an optional name detector) to text.

    ``replacer(kind, value)`` gives what a finding becomes; ``None`` means ``[kind]``.
    ``trust_tokens``: keep pseudonym tokens found in the input (only for bodies the vault
    stored itself).
    """

    def __init__(
        self,
        rules: RuleSet = DEFAULT_RULES,
        names: NameDetector | None = None,
        replacer: Replacer | None = None,
        *,
        trust_tokens: bool = False,
    ):
        self.rules = rules
        self.names = names
        self.replacer = replacer
        self.trust_tokens = trust_tokens
        #: Short texts found clean (nothing to redact): see :meth:`redact_short`.
        self._clean: set[str] = set()

    def trusting(self) -> Redactor:
        """The same redactor, keeping pseudonym tokens already in a text (re-redaction)."""
        return Redactor(self.rules, self.names, self.replacer, trust_tokens=True)

    def keeps(self, value: str) -> bool:
        """Whether ``value`` is one placeholder this redactor leaves as it is: ``[TYPE]``, or a
        pseudonym token when tokens are trusted."""
        return is_placeholder(value) and (self.trust_tokens or ":" not in value)

    def replace(self, kind: str, value: str) -> str:
        """What ``value``, found to be of type ``kind``, is stored as."""
        return f"[{kind}]" if self.replacer is None else self.replacer(kind, value)

    def find(self, text: str) -> list[Finding]:
        """One pass of the rules and the name detector over ``text``, overlaps resolved."""
        found = self.rules.find(text)
        extra = self._extra(text)
        return resolve(found + extra) if extra else found

    def _extra(self, text: str) -> list[Finding]:
        if self.names is None:
            return []
        spans = []
        for start, end in self.names.find_names(text):
            if 0 <= start < end <= len(text):
                spans.append(Finding(start, end, "PERSON", "person-name", 0.5))
        return spans

    def redact_short(self, text: str) -> tuple[str, dict[str, int]]:
        """:meth:`redact_text` of a short identifying value (an app name, a device id), which
        repeats across events: a value found clean is remembered, so the next event with it
        costs a lookup. Only values with nothing to redact are kept (by this redactor's own
        rules), never one that held a finding; at most :data:`_CLEAN_TEXTS` of them."""
        if text in self._clean:
            return text, {}
        redacted, found = self.redact_text(text)
        if not found and redacted == text and len(text) <= _CLEAN_CHARS:
            if len(self._clean) >= _CLEAN_TEXTS:
                self._clean.clear()
            self._clean.add(text)
        return redacted, found

    def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
        """Replace every finding in ``text`` by ``[TYPE]``; return it and counts per type."""
        if len(text) > MAX_TEXT_CHARS:
            return self._redact_long(text)
        if self.replacer is not None or ("[" in text and PSEUDONYM_TOKEN.search(text)):
            return self._redact_tracked(text)
        extra = None if self.names is None else self._extra
        return self.rules.redact_passes(text, _MAX_PASSES, extra)

    def _redact_tracked(self, text: str) -> tuple[str, dict[str, int]]:
        """The passes on ``[TYPE]`` placeholders, remembering what each replaced; then each
        becomes what the replacer says. Rules never see a pseudonym's hex digits (they could
        look like a number): a trusted token is put back as it was (a pseudonymized text
        redacts to itself); an untrusted one is replaced like a finding of its kind, its
        whole text as the value (not counted: it is no detected datum)."""
        spans: list[_Span] = []
        parts: list[str] = []
        position = length = 0
        for match in PSEUDONYM_TOKEN.finditer(text):
            before = text[position : match.start()]
            placeholder = f"[{match[1]}]"
            parts += (before, placeholder)
            start = length + len(before)
            length = start + len(placeholder)
            fixed = match[0] if self.trust_tokens else None
            spans.append(_Span(start, length, match[1], match[0], fixed))
            position = match.end()
        parts.append(text[position:])
        current = "".join(parts)
        counts: dict[str, int] = {}
        for _ in range(_MAX_PASSES):
            findings = self.find(current) if current else []
            if not findings:
                break
            current, spans = _apply(current, findings, spans)
            for finding in findings:
                counts[finding.kind] = counts.get(finding.kind, 0) + 1
        if not spans:
            return current, counts
        out: list[str] = []
        position = 0
        for span in spans:
            out.append(current[position : span.start])
            out.append(span.fixed or self.replace(span.kind, span.original))
            position = span.end
        out.append(current[position:])
        return "".join(out), counts

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


def _apply(text: str, findings: list[Finding], spans: list[_Span]) -> tuple[str, list[_Span]]:
    """``text`` with ``findings`` (sorted, disjoint) replaced by ``[TYPE]``, and the spans of
    every placeholder in the result. A placeholder inside a finding is folded into it (its
    original text becomes part of the finding's); one cut by a finding is dropped (its
    remaining characters are placeholder text, not data)."""
    out: list[str] = []
    kept: list[_Span] = []
    offset = index = position = 0
    for finding in findings:
        while index < len(spans) and spans[index].end <= finding.start:
            span = spans[index]
            kept.append(_Span(span.start + offset, span.end + offset, *_rest(span)))
            index += 1
        pieces: list[str] = []
        cursor = finding.start
        while index < len(spans) and spans[index].start < finding.end:
            span = spans[index]
            if span.start >= finding.start and span.end <= finding.end:
                pieces += (text[cursor : span.start], span.original)
                cursor = span.end
            index += 1
        pieces.append(text[cursor : finding.end])
        placeholder = f"[{finding.kind}]"
        out += (text[position : finding.start], placeholder)
        start = finding.start + offset
        kept.append(_Span(start, start + len(placeholder), finding.kind, "".join(pieces)))
        offset += len(placeholder) - (finding.end - finding.start)
        position = finding.end
    out.append(text[position:])
    for span in spans[index:]:
        kept.append(_Span(span.start + offset, span.end + offset, *_rest(span)))
    return "".join(out), kept


def _rest(span: _Span) -> tuple[str, str, str | None]:
    return span.kind, span.original, span.fixed
