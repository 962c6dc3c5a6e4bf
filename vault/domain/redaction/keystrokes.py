"""Keystroke streams: secrets typed key by key are found on the reassembled text (DESIGN §5).

``redact_stream`` redacts every event as :func:`redact_event` does, then reassembles the ``key``
events per focus target — (subject, app, window title, field type, field label) — in time
order, with Backspace applied and Space/Enter/Tab typed as themselves. Keys pressed with Ctrl,
Alt or Meta are shortcuts and type nothing; other named keys (arrows, Shift...) are ignored. The
detectors run on each reassembled text, and every key event of the target from the first to the
last keystroke of a match is masked (``{"key": "[MASKED]"}``), the typos and Backspaces inside
it included, so a corrected character cannot leak either. A match is counted once, on its first
key event still unmasked (in an earlier batch's record when the match began there).

Across batches, each target carries a :class:`KeyTail`: the last :data:`TAIL_CHARS` reassembled
characters (characters already masked are replaced by a NUL, so no detected secret stays in
memory) and the stored record id of every key event behind them. When a match reaches into the
tail, the earlier key events of the match are returned in ``StreamResult.remask`` (record id ->
counts to add), for the caller to re-seal. Tails live in memory only
(:class:`~vault.domain.redaction.keystroke_state.KeystrokeState`).

Limits: cursor movement and selection edits are not modelled; a gap of more than
``idle_seconds`` between two keys of a target starts a new stream.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from vault.domain.events import EventKind, TelemetryEvent
from vault.domain.redaction.event import RedactionOutcome, redact_event
from vault.domain.redaction.redactor import Redactor

__all__ = [
    "IDLE_SECONDS",
    "MAX_TAIL_KEYS",
    "TAIL_CHARS",
    "KeyTail",
    "StreamResult",
    "redact_batch",
    "redact_stream",
    "target_key",
]

#: Reassembled characters a target keeps between batches.
TAIL_CHARS = 256
#: Key events a tail may refer to (typing and erasing for long keeps the tail this small).
MAX_TAIL_KEYS = 1024
#: A longer pause between two keys of a target ends its stream.
IDLE_SECONDS = 300.0

_TYPED = {"Space": " ", "Enter": "\n", "Return": "\n", "Tab": "\t", "Spacebar": " "}
_ERASE = frozenset({"Backspace"})
_SHORTCUT = frozenset(
    {"ctrl", "control", "alt", "option", "meta", "cmd", "command", "super", "win"}
)
_MASKED = {"key": "[MASKED]"}
_GONE = "\x00"  # a masked character kept in a tail: matches no rule's token characters


@dataclass(slots=True)
class KeyTail:
    """What one focus target keeps between batches: memory only, never written anywhere."""

    text: list[str]  # the last reassembled characters; masked ones are _GONE
    owners: list[int]  # for each character, the index in ``refs`` of the key that typed it
    refs: list[str | None]  # record ids of the key events, oldest first; None once masked
    last_time: datetime


@dataclass(frozen=True, slots=True)
class StreamResult:
    """A redacted batch: outcomes per event, earlier records to re-mask, the new tails."""

    outcomes: list[RedactionOutcome]
    remask: dict[str, dict[str, int]] = field(default_factory=dict)
    tails: dict[bytes, KeyTail] = field(default_factory=dict)


def target_key(scope: str, event: TelemetryEvent) -> bytes:
    """The key of an event's focus target within ``scope`` (a dataset): a digest, so the
    state holds no identities or window titles."""
    field_ = event.field
    parts = (
        scope,
        event.subject,
        event.app,
        event.window_title,
        field_.type if field_ else None,
        field_.label if field_ else None,
    )
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        raw = b"\xff" if part is None else part.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(4, "big") + raw)
    return digest.digest()


def _type(
    events: Sequence[TelemetryEvent],
    order: list[int],
    chars: list[str],
    owners: list[int],
    base: int,
) -> None:
    """Apply the keys of ``order`` to ``chars``; owners are ``base`` + position in order."""
    for position, index in enumerate(order):
        data = events[index].data
        key = str(data.get("key", ""))
        modifiers = {str(m).lower() for m in data.get("modifiers", [])}
        if modifiers & _SHORTCUT:
            continue
        if key in _ERASE:
            if chars:
                chars.pop()
                owners.pop()
            continue
        typed = _TYPED.get(key, key if len(key) == 1 else None)
        if typed is not None:
            chars.append(typed)
            owners.append(base + position)


def redact_batch(
    events: Sequence[TelemetryEvent], redactor: Redactor | None = None
) -> list[RedactionOutcome]:
    """Redact a batch on its own (no earlier tails): each event, then keystroke streams."""
    return redact_stream(events, redactor=redactor).outcomes


def redact_stream(
    events: Sequence[TelemetryEvent],
    *,
    redactor: Redactor | None = None,
    scope: str = "",
    refs: Sequence[str] | None = None,
    tails: Mapping[bytes, KeyTail] | None = None,
    idle_seconds: float = IDLE_SECONDS,
) -> StreamResult:
    """Redact a batch, continuing each target's stream from its tail in ``tails``.

    ``refs`` are the record ids the events will be stored under (same order); without them no
    tail is made. ``tails`` is keyed by :func:`target_key` with ``scope``.
    """
    redactor = redactor or Redactor()
    outcomes = [redact_event(event, redactor) for event in events]
    targets: dict[bytes, list[int]] = defaultdict(list)
    for index, event in enumerate(events):
        if event.kind is EventKind.KEY and outcomes[index].body.get("data") != _MASKED:
            targets[target_key(scope, event)].append(index)
    result = StreamResult(outcomes)
    for key, order in targets.items():
        order.sort(key=lambda i: (events[i].time, i))
        tail = (tails or {}).get(key)
        if tail is not None:
            gap = (events[order[0]].time - tail.last_time).total_seconds()
            if gap > idle_seconds:
                tail = None
        if tail is None and (len(order) < 2 and refs is None):
            continue
        new_tail = _redact_target(events, order, tail, refs=refs, redactor=redactor, result=result)
        if refs is not None and new_tail is not None:
            result.tails[key] = new_tail
    return result


def _redact_target(
    events: Sequence[TelemetryEvent],
    order: list[int],
    tail: KeyTail | None,
    *,
    refs: Sequence[str] | None,
    redactor: Redactor,
    result: StreamResult,
) -> KeyTail | None:
    chars = list(tail.text) if tail else []
    owners = list(tail.owners) if tail else []
    earlier: list[str | None] = list(tail.refs) if tail else []
    base = len(earlier)
    _type(events, order, chars, owners, base)
    masked = [False] * len(order)
    text = "".join(chars)
    for finding in redactor.find(text) if text else ():
        if all(c == _GONE for c in text[finding.start : finding.end]):
            continue
        first, last = owners[finding.start], owners[finding.end - 1]
        counted = False
        for position in range(first, min(last + 1, base)):
            ref = earlier[position]
            if ref is None:
                continue
            extra = result.remask.setdefault(ref, {})
            if not counted:
                extra[finding.kind] = extra.get(finding.kind, 0) + 1
                counted = True
            earlier[position] = None
        for position in range(max(first, base), last + 1):
            outcome = result.outcomes[order[position - base]]
            outcome.body["data"] = dict(_MASKED)
            masked[position - base] = True
            if not counted:
                outcome.counts[finding.kind] = outcome.counts.get(finding.kind, 0) + 1
                counted = True
        chars[finding.start : finding.end] = _GONE * (finding.end - finding.start)
    if refs is None or not chars:
        return None
    all_refs = earlier + [None if masked[p] else refs[i] for p, i in enumerate(order)]
    return _trim(chars, owners, all_refs, events[order[-1]].time)


def _trim(
    chars: list[str], owners: list[int], refs: list[str | None], last_time: datetime
) -> KeyTail:
    """Keep the last TAIL_CHARS characters and at most MAX_TAIL_KEYS keys behind them."""
    chars, owners = chars[-TAIL_CHARS:], owners[-TAIL_CHARS:]
    start = max(owners[0], len(refs) - MAX_TAIL_KEYS)
    keep = next((i for i, owner in enumerate(owners) if owner >= start), len(owners))
    chars, owners = chars[keep:], [owner - start for owner in owners[keep:]]
    return KeyTail(chars, owners, refs[start:], last_time)
