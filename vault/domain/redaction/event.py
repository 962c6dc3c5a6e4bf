"""Redacting an event: every text-bearing field, URLs by their parts, custom data by key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_plus

from vault.domain.events import EventKind, TelemetryEvent
from vault.domain.redaction.fields import credential_kind, is_password_field
from vault.domain.redaction.redactor import Redactor
from vault.domain.redaction.replacement import is_placeholder

__all__ = ["RedactionOutcome", "redact_body", "redact_event", "redact_url"]


@dataclass(frozen=True, slots=True)
class RedactionOutcome:
    """An event's stored form after redaction, and what was replaced (type -> count)."""

    body: dict[str, Any]
    counts: dict[str, int]


def _add(counts: dict[str, int], more: dict[str, int]) -> None:
    for kind, number in more.items():
        counts[kind] = counts.get(kind, 0) + number


def _redact_params(part: str, redactor: Redactor, counts: dict[str, int]) -> str:
    """``a=1&token=x`` -> ``a=1&token=[SECRET]``; other values are redacted as text."""
    out = []
    for pair in part.split("&"):
        name, eq, value = pair.partition("=")
        if not eq:
            redacted, found = redactor.redact_text(pair)
            _add(counts, found)
            out.append(redacted)
            continue
        kind = credential_kind(unquote_plus(name))
        decoded = unquote_plus(value)
        redacted, found = redactor.redact_text(decoded)
        if kind is not None and value and not found and not is_placeholder(decoded):
            counts[kind] = counts.get(kind, 0) + 1
            replaced = quote(redactor.replace(kind, decoded), safe="[]@:/,;+!$'()*")
            out.append(f"{name}={replaced}")
            continue
        if found:
            _add(counts, found)
            value = quote(redacted, safe="[]@:/,;+!$'()*")
        out.append(f"{name}={value}")
    return "&".join(out)


def redact_url(url: str, redactor: Redactor, counts: dict[str, int]) -> str:
    """Redact a URL keeping its shape: userinfo, path, query values and fragment.

    ``https://u:pw@h/p?token=abc&q=a@b.co#access_token=x`` ->
    ``https://u:[PASSWORD]@h/p?token=[SECRET]&q=[EMAIL]#access_token=[SECRET]``.
    """
    head, hash_sign, fragment = url.partition("#")
    base, question, query = head.partition("?")
    base, found = redactor.redact_text(base)
    _add(counts, found)
    if question:
        query = _redact_params(query, redactor, counts)
    if hash_sign:
        if "=" in fragment:
            fragment = _redact_params(fragment, redactor, counts)
        else:
            fragment, found = redactor.redact_text(fragment)
            _add(counts, found)
    return base + question + query + hash_sign + fragment


def _redact_tree(
    root: dict[str, Any] | list[Any], redactor: Redactor, counts: dict[str, int], mask: bool
) -> None:
    """Redact every string value in nested dicts and lists, in place; keys are left alone.

    A value whose key names a credential (``{"password": "hunter2"}``, ``{"apiKey": ...}``)
    is replaced whole, whatever it looks like. Iterative, so depth is never limited by
    Python's recursion limit. With ``mask`` (custom data in a password field), every string
    value becomes ``[PASSWORD]``.
    """
    stack: list[dict[str, Any] | list[Any]] = [root]
    while stack:
        node = stack.pop()
        keys: list[Any] = list(node) if isinstance(node, dict) else list(range(len(node)))
        for key in keys:
            value = node[key]
            if isinstance(value, dict | list):
                stack.append(value)
                continue
            if isinstance(value, bool) or value is None:
                continue
            kind = credential_kind(key) if isinstance(key, str) else None
            if mask and isinstance(value, str):
                if value != "[PASSWORD]":
                    node[key] = "[PASSWORD]"
                    counts["PASSWORD_FIELD"] = counts.get("PASSWORD_FIELD", 0) + 1
            elif kind is not None and (not isinstance(value, str) or value):
                if isinstance(value, str) and is_placeholder(value):
                    continue
                node[key] = redactor.replace(kind, value if isinstance(value, str) else str(value))
                counts[kind] = counts.get(kind, 0) + 1
            elif isinstance(value, str):
                node[key], found = redactor.redact_text(value)
                _add(counts, found)


def _redact_key(
    mapping: dict[str, Any], key: str, redactor: Redactor, counts: dict[str, int]
) -> None:
    value = mapping.get(key)
    if isinstance(value, str):
        mapping[key], found = redactor.redact_text(value)
        _add(counts, found)


_DEFAULT = Redactor()
_MASKED_KEY = {"key": "[MASKED]"}
_TEXT_KINDS = (EventKind.KEY_RUN, EventKind.CLIPBOARD)


def redact_event(event: TelemetryEvent, redactor: Redactor | None = None) -> RedactionOutcome:
    """Redact the stored form of ``event`` (``event.stored_form()``); see :func:`redact_body`."""
    return redact_body(event.stored_form(), redactor)


def redact_body(body: dict[str, Any], redactor: Redactor | None = None) -> RedactionOutcome:
    """Redact an event's stored form (a fresh dict: changed in place and returned).

    The same function serves ingest and the re-redaction of stored records, so a stored body
    redacted again under the same rules is unchanged (placeholders and pseudonyms match no rule).

    Detectors run on ``window_title``, ``url`` (by parts, see :func:`redact_url`),
    ``field.label``, ``data.text`` (key runs, clipboard), screenshot regions' ``reason`` and
    every value of ``custom`` data at any depth. In a password field (see
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
        if data != _MASKED_KEY:
            body["data"] = dict(_MASKED_KEY)
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

    _redact_key(body, "window_title", redactor, counts)
    url = body.get("url")
    if isinstance(url, str):
        body["url"] = redact_url(url, redactor, counts)
    if isinstance(field, dict):
        _redact_key(field, "label", redactor, counts)
    return RedactionOutcome(body=body, counts=counts)
