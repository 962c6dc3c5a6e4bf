"""Redacting an event: every text-bearing field, URLs by their parts, custom data by key."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

from vault.domain.events import EventKind, TelemetryEvent
from vault.domain.redaction.fields import credential_kind, is_password_field
from vault.domain.redaction.redactor import Redactor

__all__ = [
    "MASKED_KEY",
    "RedactionOutcome",
    "looks_like_token",
    "redact_body",
    "redact_event",
    "redact_url",
]


@dataclass(frozen=True, slots=True)
class RedactionOutcome:
    """An event's stored form after redaction, and what was replaced (type -> count)."""

    body: dict[str, Any]
    counts: dict[str, int]


def _add(counts: dict[str, int], more: dict[str, int]) -> None:
    for kind, number in more.items():
        counts[kind] = counts.get(kind, 0) + number


# Session-id parameters whose names ``credential_kind`` does not know (servlet containers, PHP).
_SESSION_NAMES = ("sessionid", "sessid", "session_id", "sess_id")


def _param_kind(name: str) -> str | None:
    """The credential type of a query, fragment or matrix parameter ``name`` (or None)."""
    kind = credential_kind(name)
    if kind is None and name.lower().endswith(_SESSION_NAMES):
        return "SECRET"
    return kind


def _redact_params(
    part: str, redactor: Redactor, counts: dict[str, int], separator: str = "&"
) -> str:
    """``a=1&token=x`` -> ``a=1&token=[SECRET]``; other values are redacted as text."""
    out = []
    for pair in part.split(separator):
        name, eq, value = pair.partition("=")
        if not eq:
            redacted, found = redactor.redact_text(pair)
            _add(counts, found)
            out.append(redacted)
            continue
        kind = _param_kind(unquote_plus(name))
        decoded = unquote_plus(value)
        redacted, found = redactor.redact_text(decoded)
        if kind is not None and value and not found and not redactor.keeps(decoded):
            counts[kind] = counts.get(kind, 0) + 1
            replaced = quote(redactor.replace(kind, decoded), safe=_URL_SAFE)
            out.append(f"{name}={replaced}")
            continue
        if found or redacted != decoded:
            _add(counts, found)
            value = quote(redacted, safe=_URL_SAFE)
        out.append(f"{name}={value}")
    return separator.join(out)


_URL_SAFE = "[]@:/,;+!$'()*"
_SEGMENT_SAFE = "[]@:,+!$'()*=&"
# A path segment that looks like a capability (reset link, share link, session in the path):
# long, one run of URL-safe token characters, high entropy, and upper case, lower case and digits.
_TOKEN_SEGMENT = re.compile(r"[A-Za-z0-9_-]{24,}")
_HEX_SEGMENT = re.compile(r"[0-9a-fA-F]{32,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
#: Bits per character a token segment must reach. 24 random base64url characters: 4.3 on
#: average, below 3.8 about once in 300; lower-case words and slugs: about 3.5 or less.
TOKEN_ENTROPY = 3.8
# Beyond the hex digits: a hex id behind a word prefix ("CANARY3f9a...") is no base64 token.
_NOT_HEX_LOWER = re.compile(r"[g-z]")
_NOT_HEX_UPPER = re.compile(r"[G-Z]")
# A long hex segment is a secret only after one of these (commit ids, digests stay).
_CAPABILITY_WORDS = frozenset(
    {
        "reset", "password", "token", "tokens", "invite", "invitation", "confirm", "verify",
        "verification", "activate", "activation", "magic", "login", "auth", "share", "shared",
        "unsubscribe", "key", "keys", "secret", "session", "signin", "sign-in", "download",
    }
)  # fmt: skip


def _entropy(text: str) -> float:
    """Shannon entropy of ``text`` in bits per character."""
    size = len(text)
    return -sum(n / size * math.log2(n / size) for n in Counter(text).values())


def looks_like_token(segment: str, previous: str = "") -> bool:
    """Whether a (decoded) path segment is a capability token rather than a name or an id.

    Random tokens of 24+ characters of ``[A-Za-z0-9_-]`` with digits and upper- and
    lower-case letters (some outside A-F/a-f), at most one ``-``/``_`` per 10 characters, and
    entropy >= :data:`TOKEN_ENTROPY`; or 32+ hex digits right after a word such as ``reset``,
    ``invite``, ``verify``, ``share`` or ``token``. UUIDs (the usual resource ids), other hex
    ids and slugs (``getting-started-with-python-3``) are kept; long CamelCase names with
    digits may not be.
    """
    if len(segment) < 24 or _UUID.fullmatch(segment):
        return False
    if _HEX_SEGMENT.fullmatch(segment):
        return previous.lower() in _CAPABILITY_WORDS
    return (
        _TOKEN_SEGMENT.fullmatch(segment) is not None
        # Slugs are words between separators; a random token has one in ~32 characters.
        and segment.count("-") + segment.count("_") <= len(segment) // 10
        and _NOT_HEX_LOWER.search(segment) is not None
        and _NOT_HEX_UPPER.search(segment) is not None
        and any(c.isdigit() for c in segment)
        and _entropy(segment) >= TOKEN_ENTROPY
    )


def _redact_path(path: str, redactor: Redactor, counts: dict[str, int]) -> str:
    """Each segment percent-decoded and redacted (stored re-encoded when something was found),
    ``;name=value`` matrix parameters like query parameters, capability tokens ``[SECRET]``."""
    out: list[str] = []
    previous = ""
    for segment in path.split("/"):
        name, semicolon, params = segment.partition(";")
        decoded = unquote(name)
        if decoded != name or "%" in name:
            redacted, found = redactor.redact_text(decoded)
            if found or redacted != decoded:
                _add(counts, found)
                name = quote(redacted, safe=_SEGMENT_SAFE)
                decoded = redacted
        if looks_like_token(decoded, previous):
            name = redactor.replace("SECRET", decoded)
            counts["SECRET"] = counts.get("SECRET", 0) + 1
        if semicolon:
            params = _redact_params(params, redactor, counts, separator=";")
        out.append(name + semicolon + params)
        previous = decoded
    return "/".join(out)


def redact_url(url: str, redactor: Redactor, counts: dict[str, int]) -> str:
    """Redact a URL keeping its shape: userinfo, path, query values and fragment.

    ``https://u:pw@h/p?token=abc&q=a@b.co#access_token=x`` ->
    ``https://u:[PASSWORD]@h/p?token=[SECRET]&q=[EMAIL]#access_token=[SECRET]``. The part
    before ``?`` is first redacted as text (webhook URLs span segments), then its path segment
    by segment (:func:`_redact_path`).
    """
    head, hash_sign, fragment = url.partition("#")
    base, question, query = head.partition("?")
    base, found = redactor.redact_text(base)
    _add(counts, found)
    scheme, sep, rest = base.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        if slash:
            base = scheme + sep + authority + slash + _redact_path(path, redactor, counts)
    else:
        base = _redact_path(base, redactor, counts)
    if question:
        query = _redact_params(query, redactor, counts)
    if hash_sign:
        if "=" in fragment:
            fragment = _redact_params(fragment, redactor, counts)
        else:
            fragment, found = redactor.redact_text(fragment)
            _add(counts, found)
    return base + question + query + hash_sign + fragment


def _scalar_text(value: Any) -> str | None:
    """The text the detectors see for a scalar of custom data (None: nothing to scan)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e19 else repr(value)
    return None


def _redact_scalar(
    key: Any, text: str, redactor: Redactor, counts: dict[str, int]
) -> tuple[str, bool]:
    """Redact one scalar's text; a value with digits and nothing found alone is tried again
    after its key (``{"ssn": 536221234}``: the key is the context word)."""
    redacted, found = redactor.redact_text(text)
    if not found and isinstance(key, str) and key and any(c.isdigit() for c in text):
        prefix = f"{key}: "
        joined, more = redactor.redact_text(prefix + text)
        if more and joined.startswith(prefix):
            redacted, found = joined[len(prefix) :], more
    _add(counts, found)
    return redacted, bool(found) or redacted != text


def _redact_keys(node: dict[str, Any], redactor: Redactor, counts: dict[str, int]) -> None:
    """Redact the keys of one mapping in place, keeping its order. A redacted key that equals
    another key gets the first free ``#2``, ``#3``... suffix, in the mapping's order."""
    renamed: dict[str, str] = {}
    for key in node:
        if isinstance(key, str) and key:
            redacted, found = redactor.redact_text(key)
            if found or redacted != key:
                _add(counts, found)
                renamed[key] = redacted
    if not renamed:
        return
    items = list(node.items())
    used = {key for key, _ in items if key not in renamed}
    node.clear()
    for key, value in items:
        new = renamed.get(key, key)
        if key in renamed:
            base, number = new, 2
            while new in used:
                new = f"{base}#{number}"
                number += 1
            used.add(new)
        node[new] = value


# Placeholders in a key name a type, not a credential field: ``[AWS_ACCESS_KEY]`` as a key
# (a redacted ``AKIA...`` key) must not make its value a "key" on the next redaction.
_PLACEHOLDER_IN = re.compile(r"\[[A-Z][A-Z0-9_]{0,63}(?::[0-9a-f]{16})?\]")


def _key_kind(key: str) -> str | None:
    return credential_kind(_PLACEHOLDER_IN.sub(" ", key) if "[" in key else key)


def _redact_tree(
    root: dict[str, Any] | list[Any], redactor: Redactor, counts: dict[str, int], mask: bool
) -> None:
    """Redact every key and scalar in nested dicts and lists, in place.

    Keys are redacted as text (``{"alice@example.com": 1}`` -> ``{"[EMAIL]": 1}``). A value
    whose key names a credential (``{"password": "hunter2"}``, ``{"apiKey": ...}``) is replaced
    whole, whatever it is. Numbers go through the detectors as their decimal text and become
    the redacted string when something is found (``{"card": 4111111111111111}`` ->
    ``"[CREDIT_CARD]"``). Iterative, so depth is never limited by Python's recursion limit.
    With ``mask`` (custom data in a password field), every scalar but ``null`` becomes
    ``[PASSWORD]``.
    """
    stack: list[dict[str, Any] | list[Any]] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            # Credential names are judged on the keys as sent, before they are redacted.
            originals: list[Any] = list(node)
            kinds = {k: _key_kind(k) for k in originals if isinstance(k, str)}
            _redact_keys(node, redactor, counts)
            keys: list[Any] = list(node)
        else:
            keys = originals = list(range(len(node)))
            kinds = {}
        for key, original in zip(keys, originals, strict=True):
            value = node[key]
            if isinstance(value, dict | list):
                stack.append(value)
                continue
            if value is None:
                continue
            if mask:
                if value != "[PASSWORD]":
                    node[key] = "[PASSWORD]"
                    counts["PASSWORD_FIELD"] = counts.get("PASSWORD_FIELD", 0) + 1
                continue
            text = _scalar_text(value)
            if text is None:
                continue
            kind = kinds.get(original)
            if kind is not None and text:
                if isinstance(value, str) and redactor.keeps(value):
                    continue
                node[key] = redactor.replace(kind, text)
                counts[kind] = counts.get(kind, 0) + 1
                continue
            redacted, changed = _redact_scalar(original, text, redactor, counts)
            if changed:
                node[key] = redacted


def _redact_key(
    mapping: dict[str, Any],
    key: str,
    redactor: Redactor,
    counts: dict[str, int],
    *,
    short: bool = False,
) -> None:
    """Redact ``mapping[key]`` when it is text; ``short``: a short identifying value that
    repeats across events (Redactor.redact_short)."""
    value = mapping.get(key)
    if isinstance(value, str):
        redact = redactor.redact_short if short else redactor.redact_text
        mapping[key], found = redact(value)
        if found:
            _add(counts, found)


_DEFAULT = Redactor()
#: What a masked ``key`` event's data becomes (password fields, keystrokes of a match).
MASKED_KEY = {"key": "[MASKED]"}
_TEXT_KINDS = (EventKind.KEY_RUN, EventKind.CLIPBOARD)


def redact_event(event: TelemetryEvent, redactor: Redactor | None = None) -> RedactionOutcome:
    """Redact the stored form of ``event`` (``event.stored_form()``); see :func:`redact_body`."""
    return redact_body(event.stored_form(), redactor)


def redact_body(body: dict[str, Any], redactor: Redactor | None = None) -> RedactionOutcome:
    """Redact an event's stored form (a fresh dict: changed in place and returned).

    The same function serves ingest and the re-redaction of stored records, so a stored body
    redacted again under the same rules is unchanged (placeholders and pseudonyms match no rule).

    Detectors run on ``window_title``, ``app``, ``device.id``, ``url`` (by parts, see
    :func:`redact_url`), ``field.label``, ``field.type``, ``data.text`` (key runs, clipboard),
    screenshot regions' ``reason`` and ``blob_id``, and every value of ``custom`` data at any
    depth. In a password field (see
    ``is_password_field``) a ``key`` event's data becomes ``{"key": "[MASKED]"}`` (modifiers
    dropped), a ``key_run``/``clipboard`` text becomes ``[PASSWORD]`` and every string of
    ``custom`` data becomes ``[PASSWORD]``; each counts as one ``PASSWORD_FIELD``.
    """
    redactor = redactor or _DEFAULT
    counts: dict[str, int] = {}
    kind = body.get("kind")
    field = body.get("field")
    password_field = isinstance(field, dict) and is_password_field(
        str(field.get("type", "text")), field.get("label")
    )
    data: dict[str, Any] = body.get("data", {})

    if password_field and kind == EventKind.KEY:
        if data != MASKED_KEY:
            body["data"] = dict(MASKED_KEY)
            counts["PASSWORD_FIELD"] = 1
    elif password_field and kind in _TEXT_KINDS:
        if data.get("text") != "[PASSWORD]":
            data["text"] = "[PASSWORD]"
            counts["PASSWORD_FIELD"] = 1
    elif kind in _TEXT_KINDS:
        _redact_key(data, "text", redactor, counts)
    elif kind == EventKind.CUSTOM:
        _redact_tree(data, redactor, counts, mask=password_field)
    elif kind == EventKind.SCREENSHOT:
        for region in data.get("regions", []):
            _redact_key(region, "reason", redactor, counts)
        _redact_key(data, "blob_id", redactor, counts)

    _redact_key(body, "window_title", redactor, counts)
    # Short identifying fields are text too (since rules v6): an app named after its account
    # ("Mail - jane@corp.example"), a device named after its owner, an odd field type.
    _redact_key(body, "app", redactor, counts, short=True)
    device = body.get("device")
    if isinstance(device, dict):
        _redact_key(device, "id", redactor, counts, short=True)
    url = body.get("url")
    if isinstance(url, str):
        body["url"] = redact_url(url, redactor, counts)
    if isinstance(field, dict):
        _redact_key(field, "label", redactor, counts)
        _redact_key(field, "type", redactor, counts, short=True)
    return RedactionOutcome(body=body, counts=counts)
