"""Redaction: secrets and personal data become typed placeholders before encryption (DESIGN §5).

The public surface. The rule engine is :mod:`.engine`, the rules :mod:`.secret_rules` and
:mod:`.pii_rules`, their validators :mod:`.checks`, events :mod:`.event`; docs/redaction.md
documents every rule.
"""

from __future__ import annotations

from vault.domain.redaction.engine import Finding, Rule, RuleSet
from vault.domain.redaction.event import (
    MASKED_KEY,
    RedactionOutcome,
    redact_body,
    redact_event,
    redact_url,
)
from vault.domain.redaction.fields import credential_kind, is_password_field
from vault.domain.redaction.keystroke_state import KeystrokeState
from vault.domain.redaction.keystrokes import KeyTail, StreamResult, redact_batch, redact_stream
from vault.domain.redaction.redactor import DEFAULT_RULES, MAX_TEXT_CHARS, NameDetector, Redactor
from vault.domain.redaction.replacement import (
    PSEUDONYM_HEX,
    Replacer,
    is_placeholder,
    pseudonym_replacer,
)

__all__ = [
    "DEFAULT_RULES",
    "MASKED_KEY",
    "MAX_TEXT_CHARS",
    "PLACEHOLDER_TYPES",
    "PSEUDONYM_HEX",
    "RULES_VERSION",
    "Finding",
    "KeyTail",
    "KeystrokeState",
    "NameDetector",
    "RedactionOutcome",
    "Redactor",
    "Replacer",
    "Rule",
    "RuleSet",
    "StreamResult",
    "credential_kind",
    "is_password_field",
    "is_placeholder",
    "pseudonym_replacer",
    "redact_batch",
    "redact_body",
    "redact_event",
    "redact_stream",
    "redact_text",
    "redact_url",
]

#: Bumped whenever a rule changes what gets redacted; stored with each event.
RULES_VERSION: str = "6"

#: Every placeholder type ``redact_text`` and ``redact_event`` can report by default
#: (``PERSON`` too when a name detector is plugged in).
PLACEHOLDER_TYPES: frozenset[str] = frozenset(
    {rule.kind for rule in DEFAULT_RULES.rules} | {"PASSWORD_FIELD", "SECRET", "PASSWORD"}
)

_DEFAULT = Redactor()


def redact_text(text: str) -> tuple[str, dict[str, int]]:
    """Replace every detected secret and personal datum in ``text`` by ``[TYPE]``.

    Returns the redacted text and the number of replacements per placeholder type. Never
    raises on any ``str``; redacting the result again changes nothing.
    """
    return _DEFAULT.redact_text(text)
