"""Keystroke streams: secrets typed key by key are found on the reassembled text (DESIGN §5).

``redact_batch`` redacts every event as :func:`redact_event` does, then reassembles the ``key``
events of a batch per focus target — (subject, app, window title, field type, field label) —
in time order, with Backspace applied and Space/Enter/Tab typed as themselves. Keys pressed with
Ctrl, Alt or Meta are shortcuts and type nothing; other named keys (arrows, Shift...) are
ignored. The detectors run on each reassembled text, and every key event of the target from the
first to the last keystroke of a match is masked (``{"key": "[MASKED]"}``), the typos and
Backspaces inside it included, so a corrected character cannot leak either. A match is counted
once, on its first event.

Limits: reassembly stays within one batch (a secret split across two batches is only caught in
pieces); cursor movement and selection edits are not modelled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from vault.domain.events import EventKind, TelemetryEvent
from vault.domain.redaction.event import RedactionOutcome, redact_event
from vault.domain.redaction.redactor import DEFAULT_RULES

__all__ = ["redact_batch"]

_TYPED = {"Space": " ", "Enter": "\n", "Return": "\n", "Tab": "\t", "Spacebar": " "}
_ERASE = frozenset({"Backspace"})
_SHORTCUT = frozenset(
    {"ctrl", "control", "alt", "option", "meta", "cmd", "command", "super", "win"}
)
_MASKED = {"key": "[MASKED]"}

Target = tuple[str, str | None, str | None, str | None, str | None]


def _target(event: TelemetryEvent) -> Target:
    field = event.field
    return (
        event.subject,
        event.app,
        event.window_title,
        field.type if field else None,
        field.label if field else None,
    )


def _reassemble(events: Sequence[TelemetryEvent], order: list[int]) -> tuple[str, list[int]]:
    chars: list[str] = []
    owners: list[int] = []  # position in ``order`` of the key that typed each character
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
            owners.append(position)
    return "".join(chars), owners


def redact_batch(events: Sequence[TelemetryEvent]) -> list[RedactionOutcome]:
    """Redact a batch: each event on its own, then keystroke streams reassembled per target."""
    outcomes = [redact_event(event) for event in events]
    targets: dict[Target, list[int]] = defaultdict(list)
    for index, event in enumerate(events):
        if event.kind is EventKind.KEY and outcomes[index].body.get("data") != _MASKED:
            targets[_target(event)].append(index)
    for order in targets.values():
        if len(order) < 2:
            continue
        order.sort(key=lambda i: (events[i].time, i))
        text, owners = _reassemble(events, order)
        for finding in DEFAULT_RULES.find(text):
            first, last = owners[finding.start], owners[finding.end - 1]
            for position in range(first, last + 1):
                outcome = outcomes[order[position]]
                outcome.body["data"] = dict(_MASKED)
            counts = outcomes[order[first]].counts
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
    return outcomes
