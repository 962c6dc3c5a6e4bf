"""Redaction, first step: secrets and e-mail addresses become typed placeholders (DESIGN.md §5).

The detectors live in one table (``_RULES``). Each rule has a pattern, the placeholder type it
produces, and the literal "triggers" of which every match must contain at least one. At import
the table is compiled into a single alternation (one pass over a text finds every detector's
matches, leftmost first; at the same position the earlier rule wins) and a prefilter: a text
containing none of the triggers cannot match and is returned untouched without running the
regular expression at all. Most telemetry text (window titles, short key runs) stops there.

Every pattern runs in linear time on Python's backtracking engine. There are no nested
unbounded quantifiers (the one nested repetition, e-mail domain labels, is bounded and split by
dots). A pattern either starts with a literal prefix, and then a failed attempt only scans a run
shorter than the token's minimum length while a successful one consumes its run, or it is
anchored by a look-behind so that it starts only at the beginning of a run, never at every
position inside it.

Replacement is a typed placeholder ``[TYPE]``. Rules that capture a ``value`` group replace only
that part (``aws_secret_access_key = [AWS_SECRET_KEY]``, ``https://bob:[PASSWORD]@host``), so
the data keeps its shape. Placeholders match no rule, and the design rules above the table make
one pass final in practice; a text is still re-scanned (three passes at most) while a pass
changes something, for the rare match that only appears once its neighbour is a placeholder.

Fields typed into a password field are masked whole, whatever they contain (``PASSWORD_FIELD``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Any

from vault.domain.events import EventKind, TelemetryEvent

__all__ = [
    "PLACEHOLDER_TYPES",
    "RULES_VERSION",
    "RedactionOutcome",
    "is_password_field",
    "redact_event",
    "redact_text",
]

#: Bumped whenever a rule changes what gets redacted; stored with each event.
RULES_VERSION: str = "1"


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    pattern: str
    # Literal substrings, one of which occurs in every match (case-sensitive unless
    # ``fold_triggers``, then compared against the lower-cased text).
    triggers: tuple[str, ...]
    fold_triggers: bool = False


# Two design rules keep one pass consistent with the next (redaction is idempotent) and stop a
# match from hiding its neighbour:
# - every token ends greedily on a class that contains _WORD, so a match never stops between
#   two word characters;
# - the detectors anchored by a look-behind (needed for linear time, see the module docstring)
#   start with a word character, so a match that ends just before them ends on a non-word one.
_WORD = "A-Za-z0-9_"
_B64URL = "A-Za-z0-9_\\-"

_RULES: tuple[_Rule, ...] = (
    _Rule(
        "PRIVATE_KEY",
        # The body may not contain "-----", so it stops at the END line (or at the next
        # BEGIN/END of anything): each character is scanned by one BEGIN at most. A missing
        # END line (a truncated paste) still redacts everything up to the next marker.
        r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[^-]|-(?!----))*"
        rf"(?:-----END [A-Z0-9 ]{{0,40}}PRIVATE KEY(?: BLOCK)?-----(?![{_WORD}]))?",
        ("-----BEGIN ",),
    ),
    _Rule(
        "JWT",
        rf"(?<![{_B64URL}])eyJ[{_B64URL}]{{5,}}\.eyJ[{_B64URL}]{{5,}}\.[{_B64URL}]*",
        ("eyJ",),
    ),
    _Rule(
        "PASSWORD",
        # scheme://user:password@host, anchored on "://" (the scheme itself does not matter,
        # and a long one must not hide the password). The password runs to the *last* "@"
        # before the path, as in browsers, so "p@ss" is redacted whole. Neither part can cross
        # a "/", so a start never scans past the next "://". An already-redacted password is
        # skipped so that a second pass counts nothing.
        r"://[^\s/?#@:\[\]]*:(?!\[PASSWORD\]@)(?P<value>[^\s/?#]+)@",
        ("://",),
    ),
    _Rule(
        "GITHUB_TOKEN",
        rf"gh[pousr]_[{_WORD}]{{36,}}|github_pat_[{_WORD}]{{22,}}",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    _Rule(
        "GITLAB_TOKEN",
        # Newer GitLab tokens carry dot-separated parts; a sentence's final dot is left alone.
        rf"glpat-[{_B64URL}.]{{19,}}[{_B64URL}]",
        ("glpat-",),
    ),
    _Rule("GCP_API_KEY", rf"AIza[{_B64URL}]{{35,}}", ("AIza",)),
    _Rule(
        "SLACK_TOKEN",
        rf"xox[baprs]-[{_B64URL}]{{10,}}|xapp-[0-9]-[{_B64URL}]{{10,}}",
        ("xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-", "xapp-"),
    ),
    _Rule(
        "STRIPE_KEY",
        rf"[sr]k_(?:live|test)_[{_WORD}]{{10,}}",
        ("k_live_", "k_test_"),
    ),
    _Rule("NPM_TOKEN", rf"npm_[{_WORD}]{{36,}}", ("npm_",)),
    _Rule(
        "PYPI_TOKEN",
        # The macaroon's base64 starts with the issuing host: pypi.org or test.pypi.org.
        rf"pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[{_B64URL}]{{16,}}",
        ("pypi-Ag",),
    ),
    _Rule(
        "AWS_ACCESS_KEY",
        rf"(?<![{_WORD}])(?:AKIA|ASIA)[A-Z0-9]{{16}}[{_WORD}]*",
        ("AKIA", "ASIA"),
    ),
    _Rule(
        "AWS_SECRET_KEY",
        # Forty base64 characters are too common to redact on sight (hashes, ids): only in an
        # assignment to a secret-looking name (aws_secret_access_key=..., "SecretAccessKey":
        # "...", secret: ...). A longer value is taken whole: it is no less secret.
        r"(?i:(?:aws_?)?secret(?:_?access)?(?:_?key)?)"
        r"[\"']?[ \t]{0,8}(?:=>|:=|[:=])[ \t]{0,8}[\"']?"
        rf"(?P<value>[A-Za-z0-9/+]{{40}}[{_B64URL}/+=]*)",
        ("secret",),
        fold_triggers=True,
    ),
    _Rule(
        "EMAIL",
        # ASCII addresses only; the local part is anchored at the start of its run.
        r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9_][A-Za-z0-9._%+\-]{0,63}@"
        r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,16}"
        rf"[A-Za-z]{{2}}[{_WORD}]*",
        ("@",),
    ),
)

#: Every placeholder type ``redact_text`` and ``redact_event`` can report.
PLACEHOLDER_TYPES: frozenset[str] = frozenset({rule.kind for rule in _RULES} | {"PASSWORD_FIELD"})


def _compile(rules: tuple[_Rule, ...]) -> re.Pattern[str]:
    parts = []
    for index, rule in enumerate(rules):
        # Group names must be unique across the alternation: prefix them with the rule index.
        body = rule.pattern.replace("(?P<value>", f"(?P<r{index}_value>")
        parts.append(f"(?P<r{index}>{body})")
    return re.compile("|".join(parts), re.ASCII)


_COMBINED = _compile(_RULES)
# Rule group name -> (rule, its value group name or None when the whole match is replaced).
_RULE_BY_GROUP = {
    f"r{index}": (rule, f"r{index}_value" if "(?P<value>" in rule.pattern else None)
    for index, rule in enumerate(_RULES)
}
_TRIGGERS = tuple(t for rule in _RULES if not rule.fold_triggers for t in rule.triggers)
_FOLDED_TRIGGERS = tuple(t for rule in _RULES if rule.fold_triggers for t in rule.triggers)
# A second pass normally finds nothing (see the design rules above the table); it is a safety
# net for matches that only appear once a neighbour has become a placeholder, e.g. a URL
# password that was out of reach because it contained a token with a "/".
_MAX_PASSES = 3


def _may_match(text: str) -> bool:
    """The prefilter: ``False`` only when no rule can match ``text``."""
    if any(trigger in text for trigger in _TRIGGERS):
        return True
    if _FOLDED_TRIGGERS:
        # The folded rules match ASCII case variants only (re.ASCII), and lower() maps those
        # to the trigger exactly, so this test cannot miss a match.
        lowered = text.lower()
        return any(trigger in lowered for trigger in _FOLDED_TRIGGERS)
    return False


def _replace(counts: dict[str, int], match: re.Match[str]) -> str:
    # The rule's own group encloses its value group, so it is always the last to close.
    rule, value_group = _RULE_BY_GROUP[str(match.lastgroup)]
    counts[rule.kind] = counts.get(rule.kind, 0) + 1
    placeholder = f"[{rule.kind}]"
    if value_group is None:
        return placeholder
    whole, offset = match.group(), match.start()
    start, end = match.span(value_group)
    return whole[: start - offset] + placeholder + whole[end - offset :]


def redact_text(text: str) -> tuple[str, dict[str, int]]:
    """Replace every detected secret and e-mail address in ``text`` by ``[TYPE]``.

    Returns the redacted text and the number of replacements per placeholder type. Never
    raises on any ``str``; redacting the result again changes nothing.
    """
    counts: dict[str, int] = {}
    for _ in range(_MAX_PASSES):
        if not text or not _may_match(text):
            break
        found: dict[str, int] = {}
        redacted = _COMBINED.sub(partial(_replace, found), text)
        if not found:
            break
        _add(counts, found)
        text = redacted
    return text, counts


# Words that mark a field as a password field. Long stems are matched anywhere in a word
# ("userpassword", "passwords"); short ones only as whole words, because "pin", "pass" and
# "secret" occur inside ordinary words ("shipping", "passenger", "secretary").
_PASSWORD_STEMS = (
    "password",
    "passwd",
    "passcode",
    "passphrase",
    "passwort",
    "kennwort",
    "mot de passe",
    "contraseña",
)
_PASSWORD_WORDS = frozenset({"pass", "pin", "pwd", "pw", "secret", "senha", "otp", "cvv", "cvc"})
# Split camelCase and acronyms ("newPassword", "PINCode") into words before matching.
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")


def is_password_field(field_type: str | None, label: str | None) -> bool:
    """Whether a field with this HTML ``type`` and ``label`` is treated as a password field.

    ``type`` containing "password" (``password``, ``new-password``...) or a label naming a
    password, passcode, passphrase, PIN, secret, one-time code (OTP) or card security code
    (CVV/CVC), in English and a few other languages. Labels that merely mention a password
    ("Password hint", "Confirm password") count too: over-masking loses a little training data,
    under-masking stores a credential.
    """
    if field_type is not None and "password" in field_type.lower():
        return True
    if not label:
        return False
    lowered = _CAMEL.sub(" ", label).lower()
    if any(stem in lowered for stem in _PASSWORD_STEMS):
        return True
    return any(word in _PASSWORD_WORDS for word in _WORD_SPLIT.split(lowered))


@dataclass(frozen=True, slots=True)
class RedactionOutcome:
    """An event's stored form after redaction, and what was replaced (type -> count)."""

    body: dict[str, Any]
    counts: dict[str, int]


def _add(counts: dict[str, int], more: dict[str, int]) -> None:
    for kind, number in more.items():
        counts[kind] = counts.get(kind, 0) + number


def _redact_tree(root: dict[str, Any] | list[Any], counts: dict[str, int], mask: bool) -> None:
    """Redact every string value in nested dicts and lists, in place; keys are left alone.

    Iterative, so that depth is never limited by Python's recursion limit. With ``mask``,
    every string value is replaced by ``[PASSWORD]`` instead (custom data in a password field).
    """
    stack: list[dict[str, Any] | list[Any]] = [root]
    while stack:
        node = stack.pop()
        keys: list[Any] = list(node) if isinstance(node, dict) else list(range(len(node)))
        for key in keys:
            value = node[key]
            if isinstance(value, str):
                if mask:
                    node[key] = "[PASSWORD]"
                    counts["PASSWORD_FIELD"] = counts.get("PASSWORD_FIELD", 0) + 1
                else:
                    node[key], found = redact_text(value)
                    _add(counts, found)
            elif isinstance(value, dict | list):
                stack.append(value)


def _redact_key(mapping: dict[str, Any], key: str, counts: dict[str, int]) -> None:
    value = mapping.get(key)
    if isinstance(value, str):
        mapping[key], found = redact_text(value)
        _add(counts, found)


def redact_event(event: TelemetryEvent) -> RedactionOutcome:
    """Redact the stored form of ``event`` (``event.stored_form()``).

    Detectors run on ``window_title``, ``url``, ``field.label``, ``data.text`` (key runs,
    clipboard), screenshot regions' ``reason`` and every string value of ``custom`` data at
    any depth. In a password field (see ``is_password_field``) a ``key`` event's data becomes
    ``{"key": "[MASKED]"}`` (modifiers dropped), a ``key_run``/``clipboard`` text becomes
    ``[PASSWORD]`` and every string of ``custom`` data becomes ``[PASSWORD]``; each counts as
    one ``PASSWORD_FIELD``.
    """
    body = event.stored_form()
    counts: dict[str, int] = {}
    password_field = event.field is not None and is_password_field(
        event.field.type, event.field.label
    )
    data: dict[str, Any] = body.get("data", {})

    if password_field and event.kind is EventKind.KEY:
        body["data"] = {"key": "[MASKED]"}
        counts["PASSWORD_FIELD"] = 1
    elif password_field and event.kind in (EventKind.KEY_RUN, EventKind.CLIPBOARD):
        data["text"] = "[PASSWORD]"
        counts["PASSWORD_FIELD"] = 1
    elif event.kind in (EventKind.KEY_RUN, EventKind.CLIPBOARD):
        _redact_key(data, "text", counts)
    elif event.kind is EventKind.CUSTOM:
        _redact_tree(data, counts, mask=password_field)
    elif event.kind is EventKind.SCREENSHOT:
        for region in data.get("regions", []):
            _redact_key(region, "reason", counts)

    _redact_key(body, "window_title", counts)
    _redact_key(body, "url", counts)
    field = body.get("field")
    if isinstance(field, dict):
        _redact_key(field, "label", counts)
    return RedactionOutcome(body=body, counts=counts)
