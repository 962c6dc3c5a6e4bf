"""Keystroke streams: secrets typed key by key are found on the reassembled text (DESIGN §5).

``redact_stream`` redacts every event as :func:`redact_event` does, then reassembles the ``key``
events per focus target — (subject, app, window title, field type, field label) — in time
order, with Backspace applied and Space/Enter/Tab typed as themselves. Keys pressed with Ctrl,
Alt or Meta are shortcuts and type nothing; other named keys (arrows, Shift...) are ignored. The
detectors run on each reassembled text, and every key event of the target from the first to the
last keystroke of a match is masked (``{"key": "[MASKED]"}``), the typos and Backspaces inside
it included, so a corrected character cannot leak either. A match is counted once, on its first
key event still unmasked (in an earlier batch's record when the match began there).

The detectors also run on the raw typed sequence (every character typed, in order, erased or
not): a secret typed and then erased with Backspace was still sent key by key, and its keys
are masked the same way.

Across batches, each target carries a :class:`KeyTail`: the last :data:`TAIL_CHARS` reassembled
and raw characters (characters already masked are replaced by a NUL, so no detected secret
stays in memory) and the stored record id of every key event behind them. When a match
reaches into the tail, the earlier key events of the match are returned in
``StreamResult.remask`` (record id -> counts to add), for the caller to re-seal. Tails live in
memory only
(:class:`~vault.domain.redaction.keystroke_state.KeystrokeState`).

Limits: cursor movement and selection edits are not modelled; a gap of more than
``idle_seconds`` between two keys of a target starts a new stream.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from vault.domain.events import EventKind, TelemetryEvent
from vault.domain.redaction.event import MASKED_KEY, RedactionOutcome, redact_event
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

#: Reassembled characters a target keeps between batches (and as many raw typed characters).
TAIL_CHARS = 256
#: Key events a tail may refer to; also never more than the characters it keeps (both texts).
MAX_TAIL_KEYS = 2 * TAIL_CHARS
#: A longer pause between two keys of a target ends its stream.
IDLE_SECONDS = 300.0

_TYPED = {"Space": " ", "Enter": "\n", "Return": "\n", "Tab": "\t", "Spacebar": " "}
_ERASE = frozenset({"Backspace"})
_SHORTCUT = frozenset(
    {"ctrl", "control", "alt", "option", "meta", "cmd", "command", "super", "win"}
)
_GONE = "\x00"  # a masked character kept in a tail: matches no rule's token characters


def _owners(values: Iterable[int] = ()) -> array[int]:
    return array("I", values)


@dataclass(slots=True)
class KeyTail:
    """What one focus target keeps between batches: memory only, never written anywhere.

    ``text`` is the reassembled text (Backspace applied), ``raw`` every character typed in
    order, erased or not; characters of masked keys are NUL in both. ``owners[i]`` /
    ``raw_owners[i]`` is the index in ``refs`` of the key that typed that character.
    """

    text: str
    owners: array[int]
    refs: list[str | None]  # record ids of the key events, oldest first; None once masked
    last_time: datetime
    raw: str = ""
    raw_owners: array[int] = field(default_factory=_owners)

    def cost(self) -> int:
        """Approximate bytes held (for the store's budget)."""
        chars = len(self.text) + len(self.raw)
        return (
            256
            + 4 * chars
            + 4 * (len(self.owners) + len(self.raw_owners))
            + sum(8 if ref is None else 57 + len(ref) for ref in self.refs)
        )


@dataclass(frozen=True, slots=True)
class StreamResult:
    """A redacted batch: outcomes per event, earlier records to re-mask, the new tails."""

    outcomes: list[RedactionOutcome]
    remask: dict[str, dict[str, int]] = field(default_factory=dict)
    tails: dict[bytes, KeyTail] = field(default_factory=dict)


def _target_parts(event: TelemetryEvent) -> tuple[str | None, ...]:
    """What names an event's focus target (within a scope)."""
    field_ = event.field
    return (
        event.subject,
        event.app,
        event.window_title,
        field_.type if field_ else None,
        field_.label if field_ else None,
    )


def target_key(scope: str, event: TelemetryEvent) -> bytes:
    """The key of an event's focus target within ``scope`` (a dataset): a digest, so the
    state holds no identities or window titles."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (scope, *_target_parts(event)):
        raw = b"\xff" if part is None else part.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(4, "big") + raw)
    return digest.digest()


@dataclass(slots=True)
class _Typing:
    """A target's texts while a batch is applied to it."""

    chars: list[str]
    owners: list[int]
    raw: list[str]
    raw_owners: list[int]


def _type(events: Sequence[TelemetryEvent], order: list[int], typing: _Typing, base: int) -> None:
    """Apply the keys of ``order``; owners are ``base`` + position in order."""
    chars, owners = typing.chars, typing.owners
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
            typing.raw.append(typed)
            typing.raw_owners.append(base + position)


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
    ahead: Sequence[RedactionOutcome] | None = None,
) -> StreamResult:
    """Redact a batch, continuing each target's stream from its tail in ``tails``.

    ``refs`` are the record ids the events will be stored under (same order); without them no
    tail is made. ``tails`` is keyed by :func:`target_key` with ``scope``. ``ahead``: each
    event's :func:`redact_event` with ``redactor``, made beforehand (by the importer's helper
    process); fresh outcomes, which the keystroke masking below may change.
    """
    redactor = redactor or Redactor()
    if ahead is None:
        outcomes = [redact_event(event, redactor) for event in events]
    elif len(ahead) == len(events):
        outcomes = list(ahead)
    else:
        raise ValueError("one outcome made ahead per event")
    targets: dict[bytes, list[int]] = defaultdict(list)
    # The keys of a batch mostly share a few targets: one digest per target, not per key.
    digests: dict[tuple[str | None, ...], bytes] = {}
    for index, event in enumerate(events):
        if event.kind is EventKind.KEY and outcomes[index].body.get("data") != MASKED_KEY:
            parts = _target_parts(event)
            digest = digests.get(parts)
            if digest is None:
                digest = digests[parts] = target_key(scope, event)
            targets[digest].append(index)
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
    """Mask the keys behind every match in the reassembled text, then in the raw typed
    sequence (a secret typed and erased again was still typed key by key)."""
    typing = _Typing(
        list(tail.text) if tail else [],
        list(tail.owners) if tail else [],
        list(tail.raw) if tail else [],
        list(tail.raw_owners) if tail else [],
    )
    earlier: list[str | None] = list(tail.refs) if tail else []
    base = len(earlier)
    _type(events, order, typing, base)
    # masked[p]: key p (an index into earlier + order) is masked already.
    masked = [ref is None for ref in earlier] + [False] * len(order)
    for chars, owners in ((typing.chars, typing.owners), (typing.raw, typing.raw_owners)):
        text = "".join(chars)
        for finding in redactor.find(text) if text.strip(_GONE) else ():
            if all(c == _GONE for c in text[finding.start : finding.end]):
                continue
            first, last = owners[finding.start], owners[finding.end - 1]
            fresh = [p for p in range(first, last + 1) if not masked[p]]
            for number, position in enumerate(fresh):
                masked[position] = True
                # Counted once, on the first key of the match still unmasked.
                counts = _mask(position, base, earlier, order, result)
                if number == 0:
                    counts[finding.kind] = counts.get(finding.kind, 0) + 1
    for chars, owners in ((typing.chars, typing.owners), (typing.raw, typing.raw_owners)):
        for i, owner in enumerate(owners):
            if masked[owner]:
                chars[i] = _GONE
    if refs is None or not (typing.chars or typing.raw):
        return None
    all_refs = [None if masked[p] else ref for p, ref in enumerate(earlier)]
    all_refs += [None if masked[base + p] else refs[i] for p, i in enumerate(order)]
    return _trim(typing, all_refs, events[order[-1]].time)


def _mask(
    position: int,
    base: int,
    earlier: list[str | None],
    order: list[int],
    result: StreamResult,
) -> dict[str, int]:
    """Mask key ``position``; the counts its record carries (to add to)."""
    if position < base:
        # Keys masked already (ref None) are never masked again: masked[] says so.
        return result.remask.setdefault(earlier[position] or "", {})
    outcome = result.outcomes[order[position - base]]
    outcome.body["data"] = dict(MASKED_KEY)
    return outcome.counts


def _trim(typing: _Typing, refs: list[str | None], last_time: datetime) -> KeyTail:
    """Keep the last TAIL_CHARS characters of both texts, and only the keys from the oldest
    key behind them on: at most MAX_TAIL_KEYS, and never more than the characters kept."""
    chars, owners = typing.chars[-TAIL_CHARS:], typing.owners[-TAIL_CHARS:]
    raw, raw_owners = typing.raw[-TAIL_CHARS:], typing.raw_owners[-TAIL_CHARS:]
    start = 0
    while True:  # each round only drops: at most a few
        firsts = [o[0] for o in (owners, raw_owners) if o]
        limit = max(1, min(MAX_TAIL_KEYS, len(chars) + len(raw)))
        start = max(min(firsts) if firsts else len(refs), len(refs) - limit)
        keep = next((i for i, owner in enumerate(owners) if owner >= start), len(owners))
        raw_keep = next((i for i, o in enumerate(raw_owners) if o >= start), len(raw_owners))
        if not keep and not raw_keep:
            break
        chars, owners = chars[keep:], owners[keep:]
        raw, raw_owners = raw[raw_keep:], raw_owners[raw_keep:]
    return KeyTail(
        "".join(chars),
        _owners(owner - start for owner in owners),
        refs[start:],
        last_time,
        "".join(raw),
        _owners(owner - start for owner in raw_owners),
    )
