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
import uuid
from collections import Counter, deque
from collections.abc import Generator, Iterator, Mapping
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
from vault.services.export_pages import (
    PARQUET_COLUMNS,
    ndjson_chunk,
    parquet_schema,
    parquet_table,
)
from vault.services.export_worker import ExportWorker, Request, WorkerPool
from vault.services.reads import FetchedPage, ReadService, after
from vault.storage.tables import export_subjects, exports

__all__ = ["FORMATS", "MEDIA_TYPES", "PARQUET_COLUMNS", "ExportQuery", "ExportService"]

PAGE = 1000
#: Pages an export keeps on their way out at once (at most this many in a worker): flat memory.
_AHEAD = 3
_ID, _SUBJECT = itemgetter(0), itemgetter(1)  # of a page's raw rows
FORMATS = frozenset({"ndjson", "parquet"})
MEDIA_TYPES = {"ndjson": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}


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

    def __init__(self, deps: Any, reads: ReadService, *, workers: int = 0) -> None:
        super().__init__(deps)
        self._reads = reads
        self._workers = WorkerPool(workers)

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
    ) -> tuple[str, Generator[bytes, None, None]]:
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
        waiting: deque[_Queued] = deque()
        worker: ExportWorker | None = None
        pages = self._fetched_pages(where)
        failure: Exception | None = None
        first = True
        try:
            while True:
                try:
                    fetched = next(pages, None)
                    if fetched is None:
                        break
                    if first and fetched.more:  # a worker for exports of 2 pages or more
                        worker = self._workers.take()
                    first = False
                    item = self._prepared(
                        ds, writer, worker, salt=salt, linked=linked, fetched=fetched
                    )
                except Exception as exc:  # noqa: BLE001 - raised below, after the pages before
                    failure = exc
                    break
                waiting.append(item)
                del item, fetched  # held by the queue alone (flat memory)
                while waiting and (
                    waiting[0].part is not None
                    or len(waiting) > _AHEAD
                    or (worker is not None and worker.answered_next())
                ):
                    yield from self._out(ds, writer, worker, waiting, manifest)
            # The pages before one that cannot be read or opened here still go out first (some
            # may still be in the worker), as they would have without a worker; then the
            # failure is raised.
            while waiting:
                yield from self._out(ds, writer, worker, waiting, manifest)
            if failure is not None:
                raise failure
            yield from _nonempty(writer.close())
            complete = True
        finally:
            pages.close()  # no page is read past here (nor while the manifest is written)
            waiting.clear()
            try:
                self._finish(
                    principal, ds, purpose, export_id, manifest=manifest, complete=complete
                )
            finally:
                if worker is not None:
                    self._workers.give_back(worker)

    def _out(
        self,
        ds: Any,
        writer: _Writer,
        worker: ExportWorker | None,
        waiting: deque[_Queued],
        manifest: _Manifest,
    ) -> Iterator[bytes]:
        """The bytes of the oldest queued page (:meth:`_written`), unless empty."""
        yield from _nonempty(self._written(ds, writer, worker, waiting.popleft(), manifest))

    def _prepared(
        self,
        ds: Any,
        writer: _Writer,
        worker: ExportWorker | None,
        *,
        salt: str,
        linked: dict[str, str],
        fetched: FetchedPage,
    ) -> _Queued:
        """A fetched page with its export pseudonyms, placed (:meth:`_place`)."""
        ids = list(map(_ID, fetched.rows))
        people = list(map(_SUBJECT, fetched.rows))
        for person in set(people).difference(linked):
            linked[person] = self.keyring.linkage_pseudonym(salt, person)
        subjects = [linked[person] for person in people]
        return self._place(ds, writer, worker, _Queued(fetched, ids, people, subjects, None))

    def _place(
        self, ds: Any, writer: _Writer, worker: ExportWorker | None, item: _Queued
    ) -> _Queued:
        """Send the page to the worker when it can take one more, else open and format it
        here. Either way the first page is opened before any response header leaves: start()
        waits for the first chunk, and a page the worker cannot open is opened here."""
        if worker is not None and worker.outstanding < _AHEAD:
            fetched = item.fetched
            rows = list(map(tuple, fetched.rows))
            request = Request(writer.format, ds.id, fetched.key_material(), rows, item.subjects)
            if worker.submit(request):
                return item
        item.part = self._local(ds, writer, item.fetched, item.ids, item.subjects)
        return item

    def _local(
        self, ds: Any, writer: _Writer, fetched: FetchedPage, ids: list[str], subjects: list[str]
    ) -> Any:
        opened = self._reads.open_fetched(ds, fetched)
        return writer.part(ids, subjects, opened.bodies, opened.times)

    def _written(
        self,
        ds: Any,
        writer: _Writer,
        worker: ExportWorker | None,
        item: _Queued,
        manifest: _Manifest,
    ) -> bytes:
        """The bytes of a queued page, its records then counted in the manifest. The part is
        the worker's when it made it, else made here (which raises the page's error, if it has
        one, as an export without a worker does)."""
        part = item.part
        if part is None and worker is not None:
            payload = worker.result()
            if payload is not None:
                try:
                    part = writer.decode(payload)
                except Exception:  # noqa: BLE001 - a worker that answers nonsense is not used
                    worker.close()
        if part is None:
            part = self._local(ds, writer, item.fetched, item.ids, item.subjects)
        chunk = writer.write(part)
        # The digest of the ids in order: one update per page hashes the same bytes.
        manifest.ids.update("".join(item.ids).encode("ascii"))
        manifest.people.update(item.people)
        manifest.count += len(item.ids)
        return chunk

    def _fetched_pages(self, where: list[Any]) -> Generator[FetchedPage]:
        """Pages in (time, id) order (keyset pagination: flat memory), each read in a
        transaction of its own (so each checks its keys again) when the stream wants it; the
        last is the first that says no record follows it."""
        fetched = self._fetch(where, None, {})
        while fetched.last is not None:
            yield fetched
            if not fetched.more:
                return
            fetched = self._fetch(where, fetched.last, fetched.keys)

    def prestart_workers(self, wait_seconds: float = 0.0) -> int:
        """Start the export workers before the first long export needs them (they are
        otherwise started by it, and help from when they are ready); how many are ready
        within ``wait_seconds``."""
        return self._workers.prestart(wait_seconds)

    def close(self) -> None:
        """End the export workers (a running export finishes without them)."""
        self._workers.close()

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


def _nonempty(chunk: bytes) -> Iterator[bytes]:
    """``chunk`` unless it is empty (a stream sends no empty chunk)."""
    if chunk:
        yield chunk


def _primed(first: bytes | None, rest: Iterator[bytes]) -> Generator[bytes, None, None]:
    """``first`` (already taken from ``rest``), then the rest."""
    if first is not None:
        yield first
        del first  # not held for the whole export (flat memory)
    yield from rest


@dataclass(slots=True)
class _Queued:
    """A page on its way out: its formatted part, or None while a worker makes it."""

    fetched: FetchedPage
    ids: list[str]
    #: Each record's subject as stored (for the manifest) and as exported.
    people: list[str]
    subjects: list[str]
    part: Any


class _Writer:
    """Turns formatted pages (parts) into bytes of one export format."""

    format = ""

    def part(
        self, ids: list[str], subjects: list[str], bodies: list[bytes], times: list[str]
    ) -> Any:
        """One page formatted (as a worker formats it): ``ids`` and export ``subjects`` per
        row, the opened ``bodies`` and their ``times``."""
        raise NotImplementedError

    def decode(self, payload: bytes) -> Any:
        """A worker's bytes of a page, as :meth:`part` makes it."""
        raise NotImplementedError

    def write(self, part: Any) -> bytes:
        """The bytes of one page (may be empty)."""
        raise NotImplementedError

    def close(self) -> bytes:
        """The bytes that end the export."""
        return b""


class _NdjsonWriter(_Writer):
    """One event a line (:func:`~vault.services.export_pages.ndjson_chunk`)."""

    format = "ndjson"

    def part(
        self, ids: list[str], subjects: list[str], bodies: list[bytes], times: list[str]
    ) -> Any:
        del times  # an NDJSON line's time is the body's own
        return ndjson_chunk(ids, subjects, bodies)

    def decode(self, payload: bytes) -> Any:
        return payload

    def write(self, part: Any) -> bytes:
        return cast("bytes", part)


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
    """One row group per page (:func:`~vault.services.export_pages.parquet_table`), streamed
    through :class:`_Sink`."""

    format = "parquet"

    def __init__(self) -> None:
        import pyarrow as pa  # type: ignore[import-untyped]  # no stubs
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        self._pa = pa
        self._sink = _Sink()
        # Plain encoding: dictionaries cost a fifth of the writing, and over pages of 1000
        # records zstd shrinks the repeats as well (readers see the same values).
        self._writer = pq.ParquetWriter(
            self._sink, parquet_schema(), compression="zstd", use_dictionary=False
        )

    def part(
        self, ids: list[str], subjects: list[str], bodies: list[bytes], times: list[str]
    ) -> Any:
        return parquet_table(ids, subjects, bodies, times)

    def decode(self, payload: bytes) -> Any:
        table = self._pa.ipc.open_stream(payload).read_all()
        if not table.schema.equals(parquet_schema()):
            raise RuntimeError("an export worker answered with another schema")
        return table

    def write(self, part: Any) -> bytes:
        self._writer.write_table(part)
        return self._sink.drain()

    def close(self) -> bytes:
        self._writer.close()
        return self._sink.drain()
