"""Mapping a source's columns or fields to the telemetry event schema (pure; issue 5, item 1).

A mapping says, for each event field (a *target*: ``subject``, ``time``, ``data.text``...), which
source column or field holds it; ``values`` translates source values of a target (``{"kind":
{"typing": "key_run"}}``) and ``defaults`` gives targets a constant when the source has none.
Applying a mapping builds the dict the event schema then validates; it never validates itself.

When a source already follows the schema (its columns include ``subject``, ``time`` and ``kind``),
:func:`automatic_mapping` maps every schema field to the column of the same name.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALIASES",
    "REQUIRED",
    "TARGETS",
    "FieldMapping",
    "MappingError",
    "automatic_mapping",
    "parse_mapping",
]


class MappingError(ValueError):
    """A mapping that cannot be used; the message says what to change."""


#: Event fields a source column can fill, by the kind of value each takes.
TARGETS: dict[str, str] = {
    "subject": "str",
    "time": "str",
    "kind": "str",
    "app": "str",
    "window_title": "str",
    "url": "str",
    "jurisdiction": "str",
    "private_window": "bool",
    "device": "object",
    "device.id": "str",
    "device.owner": "str",
    "field": "object",
    "field.type": "str",
    "field.label": "str",
    "data": "object",
    "data.text": "str",
    "data.key": "str",
    "data.modifiers": "list",
    "data.button": "str",
    "data.x": "number",
    "data.y": "number",
    "data.dx": "number",
    "data.dy": "number",
    "data.blob_id": "str",
    "data.regions": "list",
}
#: Short names accepted in ``--map`` for common targets.
ALIASES: dict[str, str] = {"text": "data.text", "key": "data.key", "window": "window_title"}
REQUIRED = ("subject", "time", "kind")
#: Top-level schema fields: a source with these names needs no mapping.
_SCHEMA_FIELDS = tuple(t for t in TARGETS if "." not in t)
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


def _target(name: str) -> str:
    target = ALIASES.get(name, name)
    if target not in TARGETS and not (target.startswith("data.") and target[5:].isidentifier()):
        allowed = ", ".join(sorted([*TARGETS, *ALIASES]))
        raise MappingError(f"unknown event field {name!r}; map one of: {allowed}, data.<name>")
    return target


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """Which source column fills which event field (see the module docstring)."""

    fields: dict[str, str]
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    automatic: bool = False

    def digest(self) -> str:
        """A stable digest of what the mapping does (an import resumes only with the same)."""
        doc = {"fields": self.fields, "values": self.values, "defaults": self.defaults}
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def columns(self) -> set[str]:
        """The source columns the mapping reads."""
        return set(self.fields.values())

    def missing_columns(self, available: Iterable[str]) -> list[str]:
        """Mapped columns a source with ``available`` columns does not have."""
        have = set(available)
        return sorted(c for c in self.columns() if c not in have and c.split(".")[0] not in have)

    def apply(self, row: Mapping[str, Any], *, text_values: bool) -> dict[str, Any]:
        """The event dict of one source row (``text_values``: CSV, every value a string)."""
        out: dict[str, Any] = {}
        for target, column in self.fields.items():
            value = _lookup(row, column)
            if value is None or (text_values and value == ""):
                continue
            table = self.values.get(target)
            if table is not None and isinstance(value, str | int | float | bool):
                value = table.get(str(value), value)
            _put(out, target, _coerce(TARGETS.get(target, "any"), value) if text_values else value)
        for target, value in self.defaults.items():
            if _get(out, target) is None:
                _put(out, target, value)
        return out


def _lookup(row: Mapping[str, Any], column: str) -> Any:
    if column in row:
        return row[column]
    value: Any = row
    for part in column.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _get(out: dict[str, Any], target: str) -> Any:
    value: Any = out
    for part in target.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _put(out: dict[str, Any], target: str, value: Any) -> None:
    head, _, rest = target.partition(".")
    if not rest:
        out[head] = value
        return
    inner = out.get(head)
    if not isinstance(inner, dict):
        inner = {}
        out[head] = inner
    inner[rest] = value


def _coerce(kind: str, value: Any) -> Any:
    """A CSV string as the type its target takes; left as is when it does not convert (the
    schema then reports the row invalid)."""
    if not isinstance(value, str):
        return value
    convert = _CONVERTERS.get(kind)
    return value if convert is None else convert(value)


def _to_bool(value: str) -> Any:
    low = value.strip().lower()
    return True if low in _TRUE else False if low in _FALSE else value


def _to_number(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    if not math.isfinite(number):
        return value
    return int(number) if number.is_integer() and "." not in value else number


def _to_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "bool": _to_bool,
    "number": _to_number,
    "object": _to_json,
    "list": _to_json,
}


def parse_mapping(
    pairs: Iterable[str] = (), document: Mapping[str, Any] | None = None
) -> FieldMapping | None:
    """A mapping from ``field=column`` pairs and/or a mapping document; None if neither.

    The document is ``{"fields": {field: column}, "values": {field: {source: value}},
    "defaults": {field: value}}``; pairs override its fields.
    """
    fields: dict[str, str] = {}
    values: dict[str, dict[str, Any]] = {}
    defaults: dict[str, Any] = {}
    if document is not None:
        unknown = set(document) - {"fields", "values", "defaults"}
        if unknown:
            raise MappingError(f"unknown mapping file keys: {sorted(unknown)}")
        for key, kind in (("fields", str), ("values", dict), ("defaults", object)):
            part = document.get(key, {})
            if not isinstance(part, dict) or not all(isinstance(v, kind) for v in part.values()):
                raise MappingError(f"mapping file {key!r} must be an object of {kind.__name__}")
        fields.update({_target(k): v for k, v in document.get("fields", {}).items()})
        values.update({_target(k): dict(v) for k, v in document.get("values", {}).items()})
        defaults.update({_target(k): v for k, v in document.get("defaults", {}).items()})
    for pair in pairs:
        name, sep, column = pair.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise MappingError(f"--map takes field=column, not {pair!r}")
        fields[_target(name.strip())] = column.strip()
    if not fields and not defaults and not values:
        return None
    missing = [t for t in REQUIRED if t not in fields and t not in defaults]
    if missing:
        raise MappingError(f"the mapping gives no column for {', '.join(missing)}")
    return FieldMapping(fields=fields, values=values, defaults=defaults)


def automatic_mapping(columns: Iterable[str]) -> FieldMapping | None:
    """The identity mapping when ``columns`` already follow the event schema, else None."""
    have = set(columns)
    if not all(name in have for name in REQUIRED):
        return None
    fields = {name: name for name in _SCHEMA_FIELDS if name in have}
    # Flattened nested fields (CSV headers like ``data.text``) map to themselves too.
    fields.update({name: name for name in sorted(have) if "." in name and name in TARGETS})
    return FieldMapping(fields=fields, automatic=True)
