"""Mapping a source's columns or fields to the telemetry event schema (pure; issue 5, item 1).

A mapping says, for each event field (a *target*: ``subject``, ``time``, ``data.text``...), which
source column or field holds it; ``values`` translates source values of a target (``{"kind":
{"typing": "key_run"}}``) and ``defaults`` gives targets a constant when the source has none.
Applying a mapping builds the dict the event schema then validates; it never validates itself.

When a source already follows the schema (its columns include ``subject``, ``time`` and ``kind``),
:func:`automatic_mapping` maps every schema field to the column of the same name.

The mapped ``time`` is converted by a :class:`TimeFormat`: RFC 3339 text as is, epoch seconds or
milliseconds (``unit``), and naive times (text without an offset, or a datetime without a time
zone, as Parquet and SQL sources give) read in the named ``timezone``. A naive time with no
timezone given raises :class:`NaiveTime`: guessing UTC would shift every event silently.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from vault.domain.json_keys import no_duplicate_keys

__all__ = [
    "ALIASES",
    "REQUIRED",
    "TARGETS",
    "TIME_UNITS",
    "FieldMapping",
    "MappingError",
    "NaiveTime",
    "TimeFormat",
    "automatic_mapping",
    "parse_mapping",
]


class MappingError(ValueError):
    """A mapping that cannot be used; the message says what to change."""


class NaiveTime(MappingError):
    """A time without a UTC offset, and no timezone to read it in."""


#: How a mapped time column is written: RFC 3339 text, or a number of epoch (milli)seconds.
TIME_UNITS = ("rfc3339", "epoch_s", "epoch_ms")
_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.(\d{1,9}))?)?)?$")


@dataclass(frozen=True, slots=True)
class TimeFormat:
    """How the mapped ``time`` column is read (see the module docstring)."""

    unit: str = "rfc3339"
    zone: str | None = None  # the IANA name, kept for the digest and messages
    tz: tzinfo | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.unit not in TIME_UNITS:
            raise MappingError(f"time unit must be one of {', '.join(TIME_UNITS)}")
        if (self.zone is None) != (self.tz is None):
            raise MappingError("a timezone needs both its name and its tzinfo")

    @property
    def default(self) -> bool:
        """True when nothing is converted (the digest then stays what it always was)."""
        return self.unit == "rfc3339" and self.zone is None

    def convert(self, value: Any) -> Any:
        """The RFC 3339 text of ``value``; left as is when it is no time (the schema refuses
        it); :class:`NaiveTime` when it has no offset and there is no timezone."""
        if isinstance(value, datetime):
            return self._aware(value).isoformat()
        if self.unit != "rfc3339":
            return self._epoch(value)
        if isinstance(value, str):
            if _has_offset(value):  # (the usual case: no need to parse it)
                return value
            text = value.strip()
            match = _NAIVE.fullmatch(text)
            if match is not None:
                if match[1] is not None and len(match[1]) > 6:  # Python parses microseconds
                    text = text[: match.start(1) + 6]
                try:
                    parsed = datetime.fromisoformat(text.replace("t", "T").replace(" ", "T"))
                except ValueError:
                    return value
                return self._aware(parsed).isoformat()
        return value

    def _aware(self, value: datetime) -> datetime:
        if value.tzinfo is not None:
            return value
        if self.tz is None:
            raise NaiveTime(
                "the time column holds times without a UTC offset; say which time zone they "
                "are in with --timezone (e.g. --timezone UTC or --timezone Europe/Berlin)"
            )
        return value.replace(tzinfo=self.tz)

    def _epoch(self, value: Any) -> Any:
        number: Any = value
        if isinstance(value, str):
            number = _to_number(value.strip())
        if isinstance(number, bool) or not isinstance(number, int | float):
            return value
        seconds = number / 1000 if self.unit == "epoch_ms" else number
        try:
            return datetime.fromtimestamp(seconds, UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            return value


def _has_offset(text: str) -> bool:
    """True when ``text`` ends in ``Z`` or a ``+hh:mm``/``-hh:mm`` offset: then it is never a
    naive time (no such text matches ``_NAIVE``, stripped or not), and is left as it is."""
    return text[-1:] in ("Z", "z") or (text[-3:-2] == ":" and text[-6:-5] in ("+", "-"))


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
    time: TimeFormat = field(default_factory=TimeFormat)
    #: :meth:`mapper`'s functions, by ``text_values`` (made on first use).
    _mappers: dict[bool, Callable[[Mapping[str, Any]], dict[str, Any]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def with_time(self, time: TimeFormat) -> FieldMapping:
        """The same mapping reading times as ``time`` says."""
        return dataclasses.replace(self, time=time)

    def digest(self) -> str:
        """A stable digest of what the mapping does (an import resumes only with the same)."""
        doc: dict[str, Any] = {
            "fields": self.fields,
            "values": self.values,
            "defaults": self.defaults,
        }
        if not self.time.default:
            doc["time"] = {"unit": self.time.unit, "zone": self.time.zone}
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def columns(self) -> set[str]:
        """The source columns the mapping reads."""
        return set(self.fields.values())

    def copied_fields(self) -> frozenset[str] | None:
        """The event fields, when the mapping fills each top-level field it names from the
        source field of the same name and changes nothing (no ``values``, no ``defaults``,
        times read as RFC 3339 text, which is left as it is unless it has no offset); None
        otherwise. A JSON row is then its own event once the top-level fields not named here,
        and null values, are left out (what :meth:`apply` does), so the importer can validate
        a JSONL line as it is."""
        if self.values or self.defaults or self.time.unit != "rfc3339":
            return None
        if any(target != column or "." in target for target, column in self.fields.items()):
            return None
        return frozenset(self.fields)

    def missing_columns(self, available: Iterable[str]) -> list[str]:
        """Mapped columns a source with ``available`` columns does not have."""
        have = set(available)
        return sorted(c for c in self.columns() if c not in have and c.split(".")[0] not in have)

    def apply(self, row: Mapping[str, Any], *, text_values: bool) -> dict[str, Any]:
        """The event dict of one source row (``text_values``: CSV, every value a string).

        Raises :class:`NaiveTime` for a time without an offset when no timezone was given.
        """
        return self.mapper(text_values=text_values)(row)

    def mapper(self, *, text_values: bool) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
        """:meth:`apply` as a function of the row, for a whole source: what each field needs
        (its lookup, translation, conversion and place in the event) is worked out once, not
        per row."""
        cached = self._mappers.get(text_values)
        if cached is not None:
            return cached
        plain, objects, others = self._plan(text_values)
        defaults = self.defaults

        def apply(row: Mapping[str, Any]) -> dict[str, Any]:
            if text_values:
                out = {h: v for c, h in plain if (v := row.get(c)) is not None and v != ""}
            else:
                out = {h: v for c, h in plain if (v := row.get(c)) is not None}
            for head, pairs in objects:
                inner = {
                    r: v
                    for c, r in pairs
                    if (v := row[c] if c in row else _lookup(row, c)) is not None
                    and not (text_values and v == "")
                }
                if inner:
                    out[head] = inner
            for column, dotted, put in others:
                value = _lookup(row, column) if dotted else row.get(column)
                if value is not None and not (text_values and value == ""):
                    _fill(out, value, put)
            if defaults:
                _fill_defaults(out, defaults)
            return out

        self._mappers[text_values] = apply
        return apply

    def positional(
        self, columns: Sequence[str], *, text_values: bool
    ) -> Callable[[Sequence[Any]], dict[str, Any]] | None:
        """:meth:`mapper` for rows given as their values in the order of ``columns`` (a CSV
        header, distinct names): no dict is made per row. A None value is absent, as a column
        missing from a row is (and, with ``text_values``, an empty string). None when a
        mapped column is not one of ``columns``, or names a field of one (``a.b`` beside
        ``a``: its value may lie inside another's)."""
        where = {name: index for index, name in enumerate(columns)}
        mapped = self.columns()
        if len(where) != len(columns) or not mapped <= where.keys():
            return None
        if any(c.partition(".")[0] in where for c in mapped if "." in c):
            return None
        plain, objects, others = self._plan(text_values)
        at = [(where[c], h) for c, h in plain]
        inside = [(head, [(where[c], r) for c, r in pairs]) for head, pairs in objects]
        rest_at = [(where[column], put) for column, _, put in others]
        defaults = self.defaults

        def apply(values: Sequence[Any]) -> dict[str, Any]:
            if text_values:
                out = {h: v for i, h in at if (v := values[i]) is not None and v != ""}
            else:
                out = {h: v for i, h in at if (v := values[i]) is not None}
            for head, pairs in inside:
                inner = {
                    r: v
                    for i, r in pairs
                    if (v := values[i]) is not None and not (text_values and v == "")
                }
                if inner:
                    out[head] = inner
            for index, put in rest_at:
                value = values[index]
                if value is not None and not (text_values and value == ""):
                    _fill(out, value, put)
            if defaults:
                _fill_defaults(out, defaults)
            return out

        return apply

    def _plan(
        self, text_values: bool
    ) -> tuple[
        list[tuple[str, str]], list[tuple[str, list[tuple[str, str]]]], list[tuple[str, bool, _Put]]
    ]:
        """How a row is mapped, worked out once per source: fields copied as they are (a
        plain column to a top-level field no other field writes into: (column, field)),
        objects whose fields are all copied as they are (:func:`_copied_objects`), and the
        other steps (column, whether its name has a dot, how its value is put), in the
        mapping's order. The first two are filled first, each in one comprehension: the
        order of top-level keys does not matter to the schema, and no other field's value
        depends on them."""
        steps = [self._step(target, column, text_values) for target, column in self.fields.items()]
        nested = {head for _, _, _, _, head, rest in steps if rest}
        copied = _copied_objects(steps)
        plain: list[tuple[str, str]] = []
        others: list[tuple[str, bool, _Put]] = []
        for column, dotted, table, convert, head, rest in steps:
            if head in copied:
                continue
            if dotted or table or convert or rest or head in nested:
                others.append((column, dotted, (table, convert, head, rest)))
            else:
                plain.append((column, head))
        return plain, list(copied.items()), others

    def _step(self, target: str, column: str, text_values: bool) -> _Step:
        """How one field is filled: (column, whether its name has a dot, value table,
        converter, and the target split at its first dot)."""
        kind = TARGETS.get(target, "any")
        convert: Callable[[Any], Any] | None
        if target == "time":
            convert = self.time.convert
        elif text_values:
            convert = _text_converter(kind)
        elif kind == "bool":
            convert = _int_bool  # 0/1 as a number or text, true/false as text
        elif kind in ("object", "list"):
            # A Parquet string column or an SQL text column may hold JSON (the vault's own
            # Parquet export writes device, field and data so); a string is never valid there.
            convert = _text_converter(kind)
        else:
            convert = None
        head, _, rest = target.partition(".")
        return column, "." in column, self.values.get(target), convert, head, rest


#: See :meth:`FieldMapping._step`.
_Step = tuple[str, bool, dict[str, Any] | None, Callable[[Any], Any] | None, str, str]
#: How a value is put into the event: (value table, converter, target split at its first dot).
_Put = tuple[dict[str, Any] | None, Callable[[Any], Any] | None, str, str]


def _copied_objects(steps: list[_Step]) -> dict[str, list[tuple[str, str]]]:
    """Top-level fields filled only by copying columns into their fields as they are (no
    translation, no conversion, no step filling the whole object): field -> (column, inner
    field) in the mapping's order. Such an object is built in one comprehension, equal to what
    the steps one by one build (it is made by the first value that is there, and no other step
    touches it)."""
    objects: dict[str, list[tuple[str, str]]] = {}
    other: set[str] = set()
    for column, _, table, convert, head, rest in steps:
        if rest and table is None and convert is None:
            objects.setdefault(head, []).append((column, rest))
        else:
            other.add(head)
    return {head: pairs for head, pairs in objects.items() if head not in other}


def _fill(out: dict[str, Any], value: Any, put: _Put) -> None:
    """Put a source value (not absent) into the event dict: translated, converted, then set
    at its field (into the object at ``head`` when ``rest`` is set, made if need be)."""
    table, convert, head, rest = put
    if table is not None and isinstance(value, str | int | float | bool):
        value = table.get(str(value), value)
    if convert is not None:
        value = convert(value)
    if rest:
        inner = out.get(head)
        if not isinstance(inner, dict):
            inner = out[head] = {}
        inner[rest] = value
    else:
        # A copy of an object: a later field put into it must not write into the source's row.
        out[head] = dict(value) if type(value) is dict else value


def _fill_defaults(out: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Give each field with a default and no value its default."""
    for target, value in defaults.items():
        if _get(out, target) is None:
            _put(out, target, value)


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
    """Set a default: into copies, so that neither the source's row (an object copied from it
    as it is) nor the mapping's defaults (an object default) are ever written into."""
    head, _, rest = target.partition(".")
    if not rest:
        out[head] = dict(value) if type(value) is dict else value
        return
    inner = out.get(head)
    out[head] = inner = dict(inner) if isinstance(inner, dict) else {}
    inner[rest] = value


def _text_converter(kind: str) -> Callable[[Any], Any] | None:
    """How a CSV string becomes the type a target of ``kind`` takes (None: it stays a string);
    left as is when it does not convert (the schema then reports the row invalid), and so is a
    value that is no string (a ``values`` translation may give one)."""
    convert = _CONVERTERS.get(kind)
    if convert is None:
        return None

    def coerce(value: Any) -> Any:
        return convert(value) if isinstance(value, str) else value

    return coerce


def _int_bool(value: Any) -> Any:
    # SQL databases without a boolean type store 0/1, as a number or as text.
    if type(value) is int and value in {0, 1}:
        return bool(value)
    return _to_bool(value) if type(value) is str else value


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


#: JSON held as text: an object naming a key twice is no JSON value here (HTTP ingest refuses
#: it), so the text stays text and the row is refused for that field.
_JSON_TEXT = json.JSONDecoder(object_pairs_hook=no_duplicate_keys)


def _to_json(value: str) -> Any:
    try:
        return _JSON_TEXT.decode(value)
    except (ValueError, RecursionError):  # (nesting deeper than the parser goes: not JSON here)
        return value


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "bool": _to_bool,
    "number": _to_number,
    "object": _to_json,
    "list": _to_json,
}


#: Whether a mapping file's default suits its target's kind of value (TARGETS).
_DEFAULT_FITS: dict[str, Callable[[Any], bool]] = {
    "str": lambda value: isinstance(value, str),
    "bool": lambda value: isinstance(value, bool),
    "object": lambda value: isinstance(value, dict),
    "list": lambda value: isinstance(value, list),
    "number": lambda value: (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ),
}
_KIND_NAMES = {
    "str": "text",
    "bool": "true or false",
    "object": "an object",
    "list": "a list",
    "number": "a finite number",
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
        for target, value in defaults.items():  # (else every row would be invalid for it)
            expected = TARGETS[target]
            if value is not None and not _DEFAULT_FITS[expected](value):  # (null: no default)
                raise MappingError(
                    f"mapping file default for {target!r} must be {_KIND_NAMES[expected]}, "
                    f"not {json.dumps(value)[:40]}"
                )
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


def automatic_mapping(columns: Iterable[str], *, rows_vary: bool = False) -> FieldMapping | None:
    """The identity mapping when ``columns`` already follow the event schema, else None.

    ``rows_vary`` (JSON lines: ``columns`` are the first row's fields): every field of the
    schema maps to itself, so that a field a later row holds and the first did not (a ``url``)
    is not dropped."""
    have = set(columns)
    if not all(name in have for name in REQUIRED):
        return None
    fields = {name: name for name in _SCHEMA_FIELDS if rows_vary or name in have}
    # Flattened nested fields (CSV headers like ``data.text``) map to themselves too.
    fields.update({name: name for name in sorted(have) if "." in name and name in TARGETS})
    return FieldMapping(fields=fields, automatic=True)
