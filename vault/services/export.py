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
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update

from vault.audit import AuditAction
from vault.audit.chain import canonical_json
from vault.domain.principal import Principal
from vault.errors import BadRequest
from vault.services.base import ServiceBase
from vault.services.reads import ReadService, after
from vault.storage.tables import export_subjects, exports, records

__all__ = ["FORMATS", "MEDIA_TYPES", "PARQUET_COLUMNS", "ExportQuery", "ExportService"]

PAGE = 1000
FORMATS = frozenset({"ndjson", "parquet"})
MEDIA_TYPES = {"ndjson": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}
#: The Parquet columns: (name, type); ``json`` columns hold JSON text.
_COLUMNS = (  # what decrypting needs; not the JSON redaction counts
    records.c.id,
    records.c.subject,
    records.c.epoch,
    records.c.event_time,
    records.c.kind,
    records.c.sek_id,
    records.c.envelope,
)
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
        """Check access, audit the start, and return (export id, NDJSON byte chunks)."""
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
        return export_id, self._stream(
            principal,
            ds,
            purpose=purpose_ok,
            export_id=export_id,
            where=where,
            salt=salt,
            fmt=query.format,
        )

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
            for rows, bodies in self._pages(ds, where, as_json=writer.as_json):
                subjects = []
                # The digest of the ids in order: one update per page hashes the same bytes.
                manifest.ids.update("".join([row.id for row in rows]).encode("ascii"))
                for row in rows:
                    manifest.people[row.subject] += 1
                    pseudonym = linked.get(row.subject)
                    if pseudonym is None:
                        pseudonym = self.keyring.linkage_pseudonym(salt, row.subject)
                        linked[row.subject] = pseudonym
                    subjects.append(pseudonym)
                manifest.count += len(rows)
                chunk = writer.page(rows, subjects, bodies)
                if chunk:
                    yield chunk
            tail = writer.close()
            if tail:
                yield tail
            complete = True
        finally:
            self._finish(principal, ds, purpose, export_id, manifest=manifest, complete=complete)

    def _pages(
        self, ds: Any, where: list[Any], *, as_json: bool
    ) -> Iterator[tuple[list[Any], list[Any]]]:
        """Decrypted pages in (time, id) order (keyset pagination: flat memory): the rows and
        their bodies (JSON bytes when ``as_json``, else dicts)."""
        last: tuple[Any, str] | None = None
        while True:
            page_where = list(where)
            if last is not None:
                page_where.append(after(*last))
            stmt = (
                select(*_COLUMNS)
                .where(*page_where)
                .order_by(records.c.event_time, records.c.id)
                .limit(PAGE)
            )
            with self.db.read() as conn:
                rows: list[Any] = list(conn.execute(stmt).all())
                opened: list[Any] = (
                    self._reads.open_rows_json(conn, ds, rows)
                    if as_json
                    else self._reads.open_rows(conn, ds, rows)
                )
            if not rows:
                return
            yield rows, opened
            last = (rows[-1].event_time, rows[-1].id)

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


class _Writer:
    """Turns decrypted pages into bytes of one export format."""

    as_json = False  # bodies as the sealed JSON bytes (else as dicts)

    def page(self, rows: list[Any], subjects: list[str], bodies: list[Any]) -> bytes:
        """The bytes of one page (may be empty)."""
        raise NotImplementedError

    def close(self) -> bytes:
        """The bytes that end the export."""
        return b""


class _NdjsonWriter(_Writer):
    """One event a line: ``{"id":...,"subject":...,`` then the sealed body's own JSON (compact,
    as ingest wrote it), so nothing is parsed and serialized again."""

    as_json = True

    def page(self, rows: list[Any], subjects: list[str], bodies: list[Any]) -> bytes:
        lines = [
            b'{"id":"%s","subject":"%s",%s\n' % (row.id.encode(), subject.encode(), body[1:])
            for row, subject, body in zip(rows, subjects, bodies, strict=True)
        ]
        return b"".join(lines)


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
    """One row group per page, streamed through :class:`_Sink`."""

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
        self._sink = _Sink()
        self._writer = pq.ParquetWriter(self._sink, self._schema, compression="zstd")

    def page(self, rows: list[Any], subjects: list[str], bodies: list[Any]) -> bytes:
        columns: dict[str, list[Any]] = {name: [] for name, _ in PARQUET_COLUMNS}
        dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        plain = [(name, columns[name]) for name, kind in PARQUET_COLUMNS if kind == "string"]
        nested = [(name, columns[name]) for name, kind in PARQUET_COLUMNS if kind == "json"]
        for row, subject, event in zip(rows, subjects, bodies, strict=True):
            event["id"] = row.id
            event["subject"] = subject
            for name, values in plain:
                values.append(event.get(name))
            for name, values in nested:
                value = event.get(name)
                values.append(None if value is None else dumps(value))
            columns["private_window"].append(event.get("private_window"))
            columns["time"].append(row.event_time)  # checked equal to the sealed time
        self._writer.write_table(self._pa.table(columns, schema=self._schema))
        return self._sink.drain()

    def close(self) -> bytes:
        self._writer.close()
        return self._sink.drain()
