"""Purpose-bound, streamed, audited exports with a manifest (issue "Protect datasets...").

An export is a read: it needs the reader role, a grant on the dataset and an allowed purpose.
Before the first byte leaves, an ``export:start`` entry is written with the export's id and
filters (fail closed). Records are streamed page by page (keyset pagination, flat memory);
when the stream ends, the manifest (people and record counts, a digest of the record ids) is
stored and ``export:finish`` audited, so an erasure can list the exports that held a person.

Subject ids in an export are pseudonyms derived for the purpose (stable across exports for the
same purpose, so a training set keeps its linkage) or for the one export (``linkage=export``).

Formats: NDJSON (one event a line) and Parquet (one row group per page, written as the pages are
decrypted: a Parquet file needs no seek, its footer comes last, so it streams too). The Parquet
columns are in :data:`PARQUET_COLUMNS`; nested parts (``device``, ``field``, ``data``) are JSON
text, since their shape depends on the event kind.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import insert, update

from vault.audit import AuditAction
from vault.audit.chain import canonical_json
from vault.domain.principal import Principal
from vault.errors import BadRequest
from vault.keyring import SubjectKey
from vault.services.base import ServiceBase
from vault.services.reads import FetchedPage, OpenedPage, ReadService, after
from vault.storage.tables import export_subjects, exports

__all__ = ["FORMATS", "MEDIA_TYPES", "PARQUET_COLUMNS", "ExportQuery", "ExportService"]

PAGE = 1000
_ID, _SUBJECT = itemgetter(0), itemgetter(1)  # of a page's raw rows
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
FORMATS = frozenset({"ndjson", "parquet"})
MEDIA_TYPES = {"ndjson": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}
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


@dataclass(frozen=True, slots=True)
class ExportQuery:
    """What to export, as the faces received it (validated here)."""

    since: str | None = None
    until: str | None = None
    kinds: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    linkage: str = "purpose"
    format: str = "ndjson"


@dataclass(slots=True)
class _Manifest:
    people: Counter[str] = field(default_factory=Counter)
    ids: Any = field(default_factory=hashlib.sha256)
    count: int = 0


class ExportService(ServiceBase):
    """Streams decrypted, redacted records to an allowed purpose."""

    def __init__(self, deps: Any, reads: ReadService) -> None:
        super().__init__(deps)
        self._reads = reads

    def _conditions(self, ds_id: str, query: ExportQuery) -> list[Any]:
        if query.format not in FORMATS:
            raise BadRequest(f"format must be one of {sorted(FORMATS)}")
        if query.linkage not in {"purpose", "export"}:
            raise BadRequest("linkage must be 'purpose' or 'export'")
        return list(
            self._reads.filters(
                ds_id,
                since=query.since,
                until=query.until,
                kinds=query.kinds,
                subjects=query.subjects,
            )
        )

    def start(
        self, principal: Principal, dataset: str, purpose: str | None, query: ExportQuery
    ) -> tuple[str, Iterator[bytes]]:
        """Check access, audit the start, open the first page, and return (export id, the
        export's byte chunks)."""
        action = AuditAction.EXPORT_START
        ds, purpose_ok = self.authorize_read(principal, dataset, purpose, action)
        where = self._conditions(ds.id, query)
        export_id = uuid.uuid4().hex
        filters = {
            "since": query.since,
            "until": query.until,
            "kinds": sorted(query.kinds),
            "subjects": [self.keyring.person_hash(s) for s in sorted(query.subjects)],
        }
        with self.db.write() as conn:
            conn.execute(
                insert(exports).values(
                    id=export_id,
                    dataset_id=ds.id,
                    purpose=purpose_ok,
                    requested_by=self.actor(principal),
                    linkage=query.linkage,
                    filters=canonical_json(filters),
                    started_at=self.deps.now(),
                    records=0,
                )
            )
            self.record(
                conn,
                principal,
                action,
                dataset=dataset,
                purpose=purpose_ok,
                details={
                    "export": export_id,
                    "filters": filters,
                    "linkage": query.linkage,
                    "format": query.format,
                },
            )
        salt = export_id if query.linkage == "export" else purpose_ok
        stream = self._stream(
            principal,
            ds,
            purpose=purpose_ok,
            export_id=export_id,
            where=where,
            salt=salt,
            fmt=query.format,
        )
        # The first page is opened now, before any response header leaves: a destroyed key or
        # tampering there is the caller's error status (410 / 500), not a 200 with an empty or
        # cut body; a failure on a later page ends the stream without its end (docs/export.md).
        first = next(stream, None)
        return export_id, _primed(first, stream)

    def _stream(
        self,
        principal: Principal,
        ds: Any,
        *,
        purpose: str,
        export_id: str,
        where: list[Any],
        salt: str,
        fmt: str,
    ) -> Iterator[bytes]:
        manifest = _Manifest()
        complete = False
        writer: _Writer = _ParquetWriter() if fmt == "parquet" else _NdjsonWriter()
        linked: dict[str, str] = {}  # one keyed hash per person, not per record
        try:
            for page in self._pages(ds, where):
                ids = list(map(_ID, page.rows))
                people = list(map(_SUBJECT, page.rows))
                # The digest of the ids in order: one update per page hashes the same bytes.
                manifest.ids.update("".join(ids).encode("ascii"))
                manifest.people.update(people)
                manifest.count += len(ids)
                for person in set(people).difference(linked):
                    linked[person] = self.keyring.linkage_pseudonym(salt, person)
                chunk = writer.page(page, ids, [linked[person] for person in people])
                if chunk:
                    yield chunk
            tail = writer.close()
            if tail:
                yield tail
            complete = True
        finally:
            self._finish(principal, ds, purpose, export_id, manifest=manifest, complete=complete)

    def _pages(self, ds: Any, where: list[Any]) -> Iterator[OpenedPage]:
        """Opened pages in (time, id) order (keyset pagination: flat memory), each read in a
        transaction of its own when the previous one was taken (so each checks its keys again)
        and opened after it; the last is the first that says no record follows it."""
        fetched = self._fetch(where, None, {})
        while fetched.last is not None:
            yield self._reads.open_fetched(ds, fetched)
            if not fetched.more:
                return
            fetched = self._fetch(where, fetched.last, fetched.keys)

    def _fetch(
        self, where: list[Any], last: tuple[Any, str] | None, held: Mapping[bytes, SubjectKey]
    ) -> FetchedPage:
        """The page after ``last`` (the first when None), read in a transaction of its own."""
        page_where = list(where)
        if last is not None:
            page_where.append(after(*last))
        with self.db.read() as conn:
            return self._reads.fetch_page(conn, page_where, PAGE, held)

    def _finish(
        self,
        principal: Principal,
        ds: Any,
        purpose: str,
        export_id: str,
        *,
        manifest: _Manifest,
        complete: bool,
    ) -> None:
        digest = manifest.ids.hexdigest()
        with self.db.write() as conn:
            conn.execute(
                update(exports)
                .where(exports.c.id == export_id)
                .values(
                    finished_at=self.deps.now() if complete else None,
                    records=manifest.count,
                    ids_sha256=digest,
                )
            )
            if manifest.people:
                conn.execute(
                    insert(export_subjects),
                    [
                        {"export_id": export_id, "subject": subject, "records": n}
                        for subject, n in manifest.people.items()
                    ],
                )
            self.record(
                conn,
                principal,
                AuditAction.EXPORT_FINISH,
                dataset=ds.name,
                purpose=purpose,
                reason=None if complete else "export interrupted",
                details={
                    "export": export_id,
                    "records": manifest.count,
                    "people": len(manifest.people),
                    "ids_sha256": digest,
                },
            )


def _primed(first: bytes | None, rest: Iterator[bytes]) -> Iterator[bytes]:
    """``first`` (already taken from ``rest``), then the rest."""
    if first is not None:
        yield first
        del first  # not held for the whole export (flat memory)
    yield from rest


class _Writer:
    """Turns opened pages into bytes of one export format."""

    def page(self, page: OpenedPage, ids: list[str], subjects: list[str]) -> bytes:
        """The bytes of one page (may be empty): ``ids`` and export ``subjects`` per row."""
        raise NotImplementedError

    def close(self) -> bytes:
        """The bytes that end the export."""
        return b""


class _NdjsonWriter(_Writer):
    """One event a line: ``{"id":...,"subject":...,`` then the sealed body's own JSON (compact,
    as ingest wrote it), so nothing is parsed and serialized again."""

    def page(self, page: OpenedPage, ids: list[str], subjects: list[str]) -> bytes:
        # Ids are 32 hex digits (checked as they opened their record); subjects are hex.
        return b"".join(
            [
                b'{"id":"%s","subject":"%s",%s\n' % (rid.encode(), subject.encode(), body[1:])
                for rid, subject, body in zip(ids, subjects, page.bodies, strict=True)
            ]
        )


class _Sink(io.RawIOBase):
    """A write-only, non-seekable byte sink that hands over what was written so far."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


class _ParquetWriter(_Writer):
    """One row group per page, streamed through :class:`_Sink`.

    A page whose bodies all are as ingest writes them (:data:`_STORED_BODY`) is built from the
    bodies' own text, matched once each: the string columns are their characters (unescaped
    where they hold an escape), ``device``, ``field`` and one-text ``data`` their JSON text as
    written, which is what :data:`_DUMPS` would write again. Any other page is parsed and its
    JSON columns serialized again, for the same values."""

    def __init__(self) -> None:
        import pyarrow as pa  # type: ignore[import-untyped]  # no stubs
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        self._pa = pa
        types = {
            "string": pa.string(),
            "json": pa.string(),
            "bool": pa.bool_(),
            "timestamp": pa.timestamp("ms", tz="UTC"),
        }
        self._schema = pa.schema([(name, types[kind]) for name, kind in PARQUET_COLUMNS])
        self._time = types["timestamp"]
        self._sink = _Sink()
        # Plain encoding: dictionaries cost a fifth of the writing, and over pages of 1000
        # records zstd shrinks the repeats as well (readers see the same values).
        self._writer = pq.ParquetWriter(
            self._sink, self._schema, compression="zstd", use_dictionary=False
        )

    def page(self, page: OpenedPage, ids: list[str], subjects: list[str]) -> bytes:
        columns = _stored_columns(page.bodies)
        if columns is None:
            columns = _parsed_columns(page.bodies)
        columns["id"] = ids
        columns["subject"] = subjects
        # The time is the checked index time (equal to the sealed one).
        columns["time"] = self._pa.array(page.times, self._pa.string()).cast(self._time)
        self._writer.write_table(self._pa.table(columns, schema=self._schema))
        return self._sink.drain()

    def close(self) -> bytes:
        self._writer.close()
        return self._sink.drain()


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
