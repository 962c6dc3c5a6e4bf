"""An export's pages made into bytes or Arrow tables, from what a page's transaction read:
the records opened and checked, then formatted (issue "Protect datasets...").

Everything here is pure (no database, no service): it runs in the exporting process and in an
export worker (:mod:`vault.services.export_worker`), which imports only this module, so the two
make the same output from the same page.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from vault.crypto.envelope import RecordOpener
from vault.domain.events import EventKind, format_time
from vault.errors import DecryptionError, KeyDestroyed

__all__ = [
    "PARQUET_COLUMNS",
    "NeedsConversion",
    "check_index_values",
    "group_opener",
    "ndjson_chunk",
    "open_page",
    "parquet_schema",
    "parquet_table",
    "raw_time_text",
]

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _json_text_encoder() -> Any:
    """``_ENCODER.encode`` for the JSON values of a parsed body. JSONEncoder.encode builds the
    C encoder again on every call (most of its cost on small values); this builds it once, with
    the arguments JSONEncoder.iterencode gives it (no circular check: parsed JSON has no
    cycles), so the text is the same. Falls back to ``_ENCODER.encode`` without the C module."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython has it
        return _ENCODER.encode
    iterencode = make(
        None,
        _ENCODER.default,
        json.encoder.encode_basestring,
        None,
        _ENCODER.key_separator,
        _ENCODER.item_separator,
        False,
        False,
        True,
    )
    join = "".join

    def encode(value: Any) -> str:
        return join(iterencode(value, 0))

    return encode


_DUMPS = _json_text_encoder()
_LOADS = json.JSONDecoder().decode
#: json.loads' scanner: the JSON value at an index of a text, and where it ends.
_SCAN_VALUE: Callable[[str, int], tuple[Any, int]]
_SCAN_VALUE = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # no stubs
#: json's string scanner: the string whose characters start at an index, and where it ends.
_SCAN_STRING: Callable[[str, int], tuple[str, int]]
_SCAN_STRING = json.decoder.scanstring  # type: ignore[attr-defined]  # no stubs
#: The Parquet columns: (name, type); ``json`` columns hold JSON text.
PARQUET_COLUMNS = (
    ("id", "string"),
    ("subject", "string"),
    ("time", "timestamp"),
    ("kind", "string"),
    ("app", "string"),
    ("window_title", "string"),
    ("url", "string"),
    ("jurisdiction", "string"),
    ("private_window", "bool"),
    ("device", "json"),
    ("field", "json"),
    ("data", "json"),
)


def _parse_body(body: bytes) -> Any:
    """json.loads of a sealed body, by its scanner alone when the body is one JSON value and
    nothing else (every body the vault writes is compact): no encoding detection (the vault
    writes UTF-8) and no whitespace to skip. Any other is handed to json.loads (the same
    value, or the same error)."""
    text = body.decode("utf-8", "surrogatepass")
    try:
        value, end = _SCAN_VALUE(text, 0)
    except StopIteration:
        return _LOADS(text)
    return value if end == len(text) else _LOADS(text)


#: A JSON string's characters as the vault's encoder writes them (ensure_ascii off): any but the
#: quote, the backslash and control characters as themselves, those as the one escape it writes
#: for each: \" \\ \b \f \n \r \t, and \u00xx (lower-case hex) for the other controls. (A class
#: of ranges and possessive loops run fastest in re; only a quote can follow, so the loops never
#: need to give back what they took.)
_CHAR = r"[ !#-\[\]-\U0010ffff]"
_CHARS = rf'{_CHAR}*+(?:\\(?:["\\bfnrt]|u00(?:0[0-7bef]|1[0-9a-f])){_CHAR}*+)*+'
#: The same in a text without backslashes and control characters (re's fastest loop).
_PLAIN_CHARS = '[^"]*'
_CONTROLS = bytes(range(0x20))
#: An int as Python writes it (not ``-0``; digits bounded well below int()'s limit).
_INT = "(?:0|-?[1-9][0-9]{0,17})"


def _stored_body(chars: str) -> re.Pattern[str]:
    """A sealed body as ingest writes it (``TelemetryEvent.stored_form`` through the compact
    encoder), its strings' characters matched by ``chars``: the members in stored_form's order,
    ``data`` last. A body that matches is valid JSON whose strings, ``device``, ``field`` and
    common ``data`` (one text, a key, a click or a move, a scroll, nothing) are written as
    :data:`_DUMPS` writes them again (fixed keys, no duplicates, ints only), so that text is
    the export's. Groups: kind, device, jurisdiction, app, window_title, url, private_window,
    field, then common ``data`` as written or any other as the text between ``"data":`` and the
    body's end."""
    string = f'"{chars}"'
    data = "|".join(
        [
            rf'\{{"text":{string}\}}',
            rf'\{{"key":{string},"modifiers":\[(?:{string}(?:,{string})*)?\]\}}',
            rf'\{{"x":{_INT},"y":{_INT}(?:,"button":{string})?\}}',
            rf'\{{"dx":{_INT},"dy":{_INT}\}}',
            r"\{\}",
        ]
    )
    return re.compile(
        rf'\{{"time":{string},"kind":"({chars})"'
        rf'(?:,"device":(\{{(?:"id":{string},)?"owner":{string}\}}))?'
        rf'(?:,"jurisdiction":"({chars})")?'
        rf'(?:,"app":"({chars})")?'
        rf'(?:,"window_title":"({chars})")?'
        rf'(?:,"url":"({chars})")?'
        r'(?:,"private_window":(true|false))?'
        rf'(?:,"field":(\{{"type":{string}(?:,"label":{string})?\}}))?'
        rf',"data":(?:({data})|(.+))\}}',
        re.DOTALL,
    )


_STORED_BODY = _stored_body(_CHARS)
_PLAIN_BODY = _stored_body(_PLAIN_CHARS)
#: The groups of a stored body that are string columns (kind, jurisdiction, app, title, url).
_STRING_GROUPS = (0, 2, 3, 4, 5)
_BOOLS = {"true": True, "false": False}
_GROUPS = re.Match.groups


# -- opening -------------------------------------------------------------------------------------

_KINDS = frozenset(kind.value for kind in EventKind)
_SUBMILLI = frozenset(f"{n:03d}" for n in range(1000))
_ID_HEX = 32


class NeedsConversion(Exception):
    """A record's raw time is in neither of the drivers' usual forms, or its body does not start
    as the vault writes bodies: it needs the column type's conversion and a full parse, which
    only the exporting process (with its database dialect) can do."""


def raw_time_text(raw: object) -> str | None:
    """:func:`format_time` of a raw ``event_time`` without building an aware datetime, for the
    two forms a page's time may take; None for anything else (the caller then converts it as
    the column type does). SQLite holds ``YYYY-MM-DD HH:MM:SS.ffffff`` (SQLAlchemy's storage
    format: the text is the instant, milliseconds truncated as format_time does), and
    PostgreSQL writes the same text for an export's page (``reads.PG_RAW_COLUMNS``); the column
    read as such is a naive datetime that the column type would mark as UTC."""
    if type(raw) is str:
        if len(raw) == 26 and raw[10] == " " and raw[23:] in _SUBMILLI:
            return raw[:10] + "T" + raw[11:23] + "Z"
        return None
    if type(raw) is datetime and raw.tzinfo is None:
        return raw.isoformat(timespec="milliseconds") + "Z"
    return None


def check_index_values(kind: Any, time: str, body: dict[str, Any]) -> None:
    """The clear-text index columns must agree with the sealed body, so editing them in the
    database (to slip a record past a filter) is detected like any other tampering."""
    if body.get("kind") != kind or body.get("time") != time:
        raise DecryptionError("decryption failed")


def group_opener(
    openers: dict[tuple[bytes, str, int], RecordOpener],
    keys: Mapping[bytes, bytes],
    dataset_id: str,
    group: tuple[bytes, str, int],
) -> RecordOpener:
    """The opener of one (SEK id, subject, epoch) of a page, made once into ``openers``
    (callers look there first). One per group: a row whose subject or epoch was edited gets its
    own, whose context then fails as open_record's would. A SEK id not in ``keys`` (the key
    material read in the page's snapshot) was destroyed: KeyDestroyed."""
    sek_id, subject, epoch = group
    key = keys.get(bytes(sek_id))
    if key is None:
        raise KeyDestroyed("subject-epoch key destroyed")
    opener = openers[group] = RecordOpener(key, dataset_id, subject, epoch, bytes(sek_id))
    return opener


def open_page(
    dataset_id: str,
    keys: Mapping[bytes, bytes],
    rows: Sequence[Sequence[Any]],
    to_datetime: Callable[[Any], datetime] | None,
) -> tuple[list[bytes], list[str]]:
    """The sealed bodies of a page's raw rows (id, subject, epoch, time, kind, SEK id,
    envelope) and their times as :func:`format_time` writes them, each record opened and
    checked against its index columns like a single read (the same associated data, the same
    opaque DecryptionError), with an export's costs cut: the time compared as text and the JSON
    body compared by its leading time and kind instead of parsed (every body the vault writes
    starts with them; any other is parsed and checked in full, its time converted by
    ``to_datetime``: without one, :class:`NeedsConversion` is raised).

    ``keys`` maps the page's SEK ids to their key material; a SEK id not there was destroyed
    (KeyDestroyed at its first record). One opener per (SEK, subject, epoch): a row whose
    subject or epoch was edited gets its own, whose context then fails."""
    openers: dict[tuple[bytes, str, int], RecordOpener] = {}
    bodies: list[bytes] = []
    times: list[str] = []
    kinds, time_text, fromhex = _KINDS, raw_time_text, bytes.fromhex
    for rid, subject, epoch, raw_time, kind, sek_id, envelope in rows:
        group = (sek_id, subject, epoch)
        opener = openers.get(group)
        if opener is None:
            opener = group_opener(openers, keys, dataset_id, group)
        if len(rid) != _ID_HEX:  # fromhex skips whitespace: the id must be the hex alone
            raise DecryptionError("decryption failed")
        plain = opener.open(fromhex(rid), envelope)
        time = time_text(raw_time)
        # Known kinds and these times hold no quote or backslash, so the prefix is exactly the
        # body's first two members (a body the vault wrote has no duplicate keys).
        if (
            time is None
            or kind not in kinds
            or not plain.startswith(f'{{"time":"{time}","kind":"{kind}",'.encode())
        ):
            if to_datetime is None:
                raise NeedsConversion
            time = format_time(to_datetime(raw_time))
            check_index_values(kind, time, json.loads(plain))
        bodies.append(plain)
        times.append(time)
    return bodies, times


# -- formats -------------------------------------------------------------------------------------


def ndjson_chunk(ids: list[str], subjects: list[str], bodies: list[bytes]) -> bytes:
    """One event a line: ``{"id":...,"subject":...,`` then the sealed body's own JSON (compact,
    as ingest wrote it), so nothing is parsed and serialized again."""
    # Ids are 32 hex digits (checked as they opened their record); subjects are hex.
    return b"".join(
        [
            b'{"id":"%s","subject":"%s",%s\n' % (rid.encode(), subject.encode(), body[1:])
            for rid, subject, body in zip(ids, subjects, bodies, strict=True)
        ]
    )


@functools.cache
def parquet_schema() -> Any:
    """The Arrow schema of :data:`PARQUET_COLUMNS` (``json`` columns are strings of JSON), made
    on first use (pyarrow loads only for Parquet)."""
    import pyarrow as pa  # type: ignore[import-untyped]  # no stubs

    types = {
        "string": pa.string(),
        "json": pa.string(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("ms", tz="UTC"),
    }
    return pa.schema([(name, types[kind]) for name, kind in PARQUET_COLUMNS])


def parquet_table(
    ids: list[str], subjects: list[str], bodies: list[bytes], times: list[str]
) -> Any:
    """One page as an Arrow table of :func:`parquet_schema`.

    A page whose bodies all are as ingest writes them (:data:`_STORED_BODY`) is built from the
    bodies' own text, matched once each: the string columns are their characters (unescaped
    where they hold an escape), ``device``, ``field`` and one-text ``data`` their JSON text as
    written, which is what :data:`_DUMPS` would write again. Any other page is parsed and its
    JSON columns serialized again, for the same values."""
    import pyarrow as pa

    schema = parquet_schema()
    columns = _stored_columns(bodies)
    if columns is None:
        columns = _parsed_columns(bodies)
    columns["id"] = ids
    columns["subject"] = subjects
    # The time is the checked index time (equal to the sealed one).
    columns["time"] = pa.array(times, pa.string()).cast(schema.field("time").type)
    return pa.table(columns, schema=schema)


def _stored_columns(bodies: list[bytes]) -> dict[str, Any] | None:
    """The body columns of a page whose bodies all match :data:`_STORED_BODY`, else None.

    A body without backslashes is matched by :data:`_PLAIN_BODY` when the page holds no
    control character (JSON text has none outside escapes: the plain pattern would take them
    as characters of a string), in two thirds of the time."""
    joined = b"".join(bodies)
    strict = _STORED_BODY.fullmatch
    clean = len(joined.translate(None, _CONTROLS)) == len(joined)
    plain = _PLAIN_BODY.fullmatch if clean else strict
    escaped = [i for i, body in enumerate(bodies) if b"\\" in body] if b"\\" in joined else []
    if escaped:
        found = [
            (strict if b"\\" in body else plain)(body.decode("utf-8", "surrogatepass"))
            for body in bodies
        ]
    else:
        found = [plain(body.decode("utf-8", "surrogatepass")) for body in bodies]
    if not found or not all(found):
        return None
    matches = cast("list[re.Match[str]]", found)
    groups: list[Any] = list(zip(*map(_GROUPS, matches), strict=True))
    if escaped:
        for index in _STRING_GROUPS:
            groups[index] = _unescaped(groups[index], escaped)
    try:
        data = [
            text if text is not None else _written_again(other)
            for text, other in zip(groups[8], groups[9], strict=True)
        ]
    except ValueError:  # not one JSON value between "data": and the body's end
        return None
    kind, device, jurisdiction, app, window_title, url, private_window, field = groups[:8]
    return {
        "kind": kind,
        "app": app,
        "window_title": window_title,
        "url": url,
        "jurisdiction": jurisdiction,
        "private_window": list(map(_BOOLS.get, private_window)),
        "device": device,
        "field": field,
        "data": data,
    }


def _unescaped(column: tuple[str | None, ...], rows: list[int]) -> Sequence[str | None]:
    """A string column's values from their characters as written, of which only those in
    ``rows`` may hold an escape."""
    if "\\" not in "".join(filter(None, column)):
        return column
    values = list(column)
    for row in rows:
        chars = values[row]
        if chars is not None and "\\" in chars:
            values[row] = _SCAN_STRING(chars + '"', 0)[0]
    return values


def _written_again(text: str) -> str | None:
    """The JSON column text of the value that ``text`` is (ValueError if not one value)."""
    value = _LOADS(text)
    return None if value is None else _DUMPS(value)


def _parsed_columns(bodies: list[bytes]) -> dict[str, Any]:
    """The body columns of any page: each body parsed, its JSON parts serialized again."""
    events = [_parse_body(body) for body in bodies]
    columns: dict[str, Any] = {}
    for name, kind in PARQUET_COLUMNS:
        if kind == "string" and name not in {"id", "subject"}:
            columns[name] = [event.get(name) for event in events]
        elif kind == "json":
            values = [event.get(name) for event in events]
            columns[name] = [None if value is None else _DUMPS(value) for value in values]
    columns["private_window"] = [event.get("private_window") for event in events]
    return columns
