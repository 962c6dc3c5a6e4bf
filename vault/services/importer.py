"""Import existing telemetry files into a dataset (issue "Protect datasets...", items 1-5).

Every row goes through :meth:`IngestService.ingest`, the one ingest path: the same collection
rules, redaction, encryption and audit as HTTP ingest. The importer only reads the source (one
row at a time: constant memory), maps rows to the event schema, keeps schema-invalid rows out of
the batches (counted by row number, never by content) and records its progress.

Exactly once: an ``imports`` row per (dataset, source fingerprint) holds the position (source
rows fully handled) and the counts. Each batch's position update, its ``import_records`` links
and an ``import:batch`` audit entry are written by the ingest ``after_store`` hook, inside the
transaction that stores the batch's records, so a batch is either wholly stored and counted or
not at all. Run again after any interruption, the import skips the rows already handled. Rows
are never staged in the database: plaintext exists only in this process, then sealed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jiter
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Connection, Row, bindparam, case, false, func, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError as DbIntegrityError

from vault.audit import AuditAction, Outcome
from vault.domain.events import EventKind, TelemetryEvent
from vault.domain.mapping import (
    TIME_UNITS,
    FieldMapping,
    MappingError,
    NaiveTime,
    TimeFormat,
    automatic_mapping,
    parse_mapping,
)
from vault.domain.principal import Principal, Role
from vault.domain.redaction import RULES_VERSION, Redactor, redact_event
from vault.errors import BadRequest, Conflict, PayloadTooLarge
from vault.services.base import Deps, ServiceBase
from vault.services.import_remains import RetirementStopped, finish_stopped_retirement
from vault.services.import_sources import (
    FileSource,
    ParquetSource,
    Source,
    SqlSource,
    check_retirable_file,
    checked_file,
    content_sha256,
    decode_line,
    is_sql_url,
    query_not_retirable,
    retiring_name,
    shred_file,
    source_fingerprint,
)
from vault.services.ingest import Ahead, IngestService, Redacted
from vault.services.reads import ReadService
from vault.services.redaction_helper import RedactionHelper
from vault.services.redaction_modes import redactor_for
from vault.storage.record_insert import copy_table
from vault.storage.tables import import_records, imports, metadata, records

__all__ = [
    "FORMATS",
    "RETIRE_MODES",
    "ImportOptions",
    "ImportService",
    "Progress",
    "source_fingerprint",
]

FORMATS = ("jsonl", "csv", "parquet", "sql")
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
#: ``--retire-source`` modes: ``overwrite`` for files, ``replace`` or ``drop`` for SQL tables.
RETIRE_MODES = ("overwrite", "replace", "drop")
SAMPLE = 16  # records decrypted and compared with their source row by the verification
KEEP_INVALID_ROWS = 1000  # row numbers of invalid rows kept in the imports row
_EVENT = TypeAdapter(TelemetryEvent)
_EVENTS = TypeAdapter(list[TelemetryEvent])
_NO_COUNTS: dict[str, int] = {}
#: The columns of ``import_records``, in the order of the tuples :func:`_insert_links` takes.
_LINK_COLUMNS = tuple(column.name for column in import_records.columns)  # (import, row, record)
_INSERT_LINK = insert(import_records)
#: An import's new position and counts, set only from the position expected (built once: it
#: runs with every batch; the columns set are the parameters named after them).
_ADVANCE = update(imports).where(
    imports.c.id == bindparam("run_import"),
    imports.c.position == bindparam("run_expected"),
    imports.c.state == "running",
)

#: Called after each batch with (done, total, rows handled so far); done and total are bytes of
#: a file, or rows of a Parquet file or SQL source.
Progress = Callable[[int, int, int], None]


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What the faces received (validated here)."""

    format: str | None = None
    map: tuple[str, ...] = ()
    mapping: dict[str, Any] | None = None  # a parsed mapping file
    batch: int | None = None
    table: str | None = None  # SQL: a table ([schema.]name) ...
    query: str | None = None  # ... or a query
    key: tuple[str, ...] = ()  # SQL: the columns that order the rows (default: primary key)
    time_unit: str = "rfc3339"  # or epoch_s / epoch_ms
    timezone: str | None = None  # the IANA zone of naive times
    retire: str | None = None  # one of RETIRE_MODES
    id_column: str | None = None  # SQL replace: the column that receives the record id


@dataclass(slots=True)
class _Totals:
    position: int = 0
    rows_read: int = 0
    stored: int = 0
    invalid: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    redactions: Counter[str] = field(default_factory=Counter)
    invalid_rows: list[int] = field(default_factory=list)
    invalid_causes: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, row: Row[Any]) -> _Totals:
        detail = row.invalid_detail or {}
        return cls(
            position=row.position,
            rows_read=row.rows_read,
            stored=row.stored,
            invalid=row.invalid,
            refused=Counter(row.refused or {}),
            redactions=Counter(row.redactions or {}),
            invalid_rows=list(detail.get("rows", [])),
            invalid_causes=Counter(detail.get("causes", {})),
        )

    def copy(self) -> _Totals:
        return _Totals(
            self.position,
            self.rows_read,
            self.stored,
            self.invalid,
            Counter(self.refused),
            Counter(self.redactions),
            list(self.invalid_rows),
            Counter(self.invalid_causes),
        )

    def columns(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "rows_read": self.rows_read,
            "stored": self.stored,
            "invalid": self.invalid,
            "refused": dict(sorted(self.refused.items())),
            "redactions": dict(sorted(self.redactions.items())),
            "invalid_detail": {
                "rows": self.invalid_rows,
                "causes": dict(sorted(self.invalid_causes.items())),
            },
        }


@dataclass(slots=True)
class _Chunk:
    """Source rows read since the last batch: valid events and invalid row numbers (in row
    order), and rows read but not validated yet (``pending``: mapped rows, or a JSONL file's
    lines; :meth:`validate` does them all at once)."""

    end: int = 0  # the last source row number in the chunk (blank rows included)
    valid: list[tuple[int, TelemetryEvent]] = field(default_factory=list)
    invalid: list[tuple[int, str]] = field(default_factory=list)
    pending: list[tuple[int, Any]] = field(default_factory=list)

    def validate(self, events: _Events) -> None:
        """Make the pending rows valid events or invalid row numbers."""
        if not self.pending:
            return
        events.validate(self.pending, self)
        self.pending.clear()


class _Events(Protocol):
    """How rows become events (:class:`_MappedRows`, :class:`_JsonLines`): ``apply`` maps a
    row as it is read (None: it is pending as read), ``validate`` does a chunk's pending."""

    @property
    def apply(self) -> Callable[[Any], dict[str, Any]] | None: ...

    def validate(self, pending: list[tuple[int, Any]], chunk: _Chunk) -> None: ...


@dataclass(frozen=True, slots=True)
class _MappedRows:
    """The general way: each row mapped as it is read (:meth:`FieldMapping.mapper`; only the
    mapped dict is kept), then the mapped rows validated in one call for all (the usual case,
    every row valid), row by row only when one is invalid (to tell which, and why)."""

    apply: Callable[[Any], dict[str, Any]]  # a row (or its values: FieldMapping.positional)

    def validate(self, pending: list[tuple[int, Any]], chunk: _Chunk) -> None:
        try:
            events = _EVENTS.validate_python([item for _, item in pending])
        except ValidationError:
            for number, item in pending:
                try:
                    chunk.valid.append((number, _EVENT.validate_python(item)))
                except ValidationError as exc:
                    chunk.invalid.append((number, _cause(exc)))
            chunk.invalid.sort()  # rows refused while reading may follow these
        else:
            chunk.valid.extend(zip([number for number, _ in pending], events, strict=True))


#: Event fields a JSONL line may hold that its mapping drops: their defaults (see _JsonLines).
#: Not ``data``, which the event's own validator reads with ``kind``; none made by a factory.
_DROPPABLE = {
    name: info.default
    for name, info in TelemetryEvent.model_fields.items()
    if not info.is_required() and info.default_factory is None and name != "data"
}


@dataclass(frozen=True, slots=True)
class _JsonLines:
    """A JSONL file's lines, kept as bytes until their chunk is validated. With a mapping that
    copies each field it names from the field of the same name (``fields``, from
    :meth:`FieldMapping.copied_fields`, as for the automatic mapping), each line is parsed by a
    strict parser in Rust and validated as it is (no mapping); otherwise each goes the general
    way (decoded, then :class:`_MappedRows`).

    Straight from the parser, the event is the general way's: the parser refuses what the row
    decoder refuses (NaN, a key named twice, which the general way then refuses as
    ``duplicate_key``), and the row is validated as the general way validates; a top-level
    null is the field's default (the general way drops it); a field the mapping does not name
    is set back to its default (the general way drops it) unless it is ``data``. A line this
    cannot take as it is (refused, a naive time, a ``data`` the mapping drops) goes the general
    way, which decides it."""

    fields: frozenset[str] | None
    general: _MappedRows
    apply: None = None  # lines are pending as they are read

    def validate(self, pending: list[tuple[int, Any]], chunk: _Chunk) -> None:
        valid, fields = chunk.valid, self.fields
        if fields is None:
            self._general(pending, chunk)
            return
        misses: list[tuple[int, bytes]] = []
        parse, validate = jiter.from_json, _EVENT.validate_python
        for number, line in pending:
            try:
                # Parsed strictly (a key twice or NaN is an error: the line goes the general
                # way, which refuses it), keys only cached (no value of the data stays in the
                # parser's cache), then validated as the general way validates a row.
                event = validate(
                    parse(line, allow_inf_nan=False, cache_mode="keys", catch_duplicate_keys=True)
                )
            except ValueError:
                misses.append((number, line))
                continue
            named = event.model_fields_set
            if named <= fields or _drop_fields(event, named - fields):
                valid.append((number, event))
            else:
                misses.append((number, line))
        if misses:
            self._general(misses, chunk)

    def _general(self, lines: list[tuple[int, Any]], chunk: _Chunk) -> None:
        mapped: list[tuple[int, dict[str, Any]]] = []
        for number, line in lines:
            row, problem = decode_line(line)
            if row is None:
                chunk.invalid.append((number, problem or "malformed"))
                continue
            try:
                mapped.append((number, self.general.apply(row)))
            except NaiveTime:
                chunk.invalid.append((number, "naive_time"))
        if mapped:
            self.general.validate(mapped, chunk)
        chunk.valid.sort(key=itemgetter(0))
        chunk.invalid.sort()


def _drop_fields(event: TelemetryEvent, names: set[str]) -> bool:
    """Set ``names`` of a freshly validated event back to their defaults, as if its row had
    not held them; False (nothing changed) if one of them cannot be (see _DROPPABLE)."""
    if not names <= _DROPPABLE.keys():
        return False
    for name in names:
        object.__setattr__(event, name, _DROPPABLE[name])  # (frozen model, fresh instance)
    event.model_fields_set.difference_update(names)
    return True


@dataclass(slots=True)
class _Run:
    """One run of an import: its id, the committed totals and the verification sample."""

    import_id: str
    ds: Row[Any]
    totals: _Totals
    resumed_at: int
    content: str | None = None  # a file source's whole-content digest, as this run read it
    sample: list[tuple[int, TelemetryEvent]] = field(default_factory=list)
    seen: int = 0
    rng: random.Random = field(default_factory=random.Random)
    #: Rows stored by earlier runs, sampled for verification, that the source no longer
    #: gives as a valid event (:meth:`ImportService._sample_earlier`): each fails it.
    unreadable: int = 0


def _check_source_options(options: ImportOptions, *, sql: bool) -> None:
    """Options that only fit the other kind of source are refused before anything is read."""
    if not sql and (options.table or options.query or options.key):
        raise BadRequest("--table, --query and --key are for SQL sources (a SQLAlchemy URL)")
    if options.retire is not None:
        if options.retire not in RETIRE_MODES:
            raise BadRequest(f"--retire-source must be one of {list(RETIRE_MODES)}")
        if sql and options.query is not None:
            raise query_not_retirable()
        if sql and options.retire == "overwrite":
            raise BadRequest("a SQL source is retired with --retire-source=replace or =drop")
        if not sql and options.retire != "overwrite":
            raise BadRequest(f"--retire-source={options.retire} is for SQL tables")
    if options.id_column is not None and options.retire != "replace":
        raise BadRequest("--id-column goes with --retire-source=replace")


def _cause(exc: ValidationError) -> str:
    """The schema field an invalid row failed on (a field name, never a value)."""
    errors = exc.errors(include_input=False, include_url=False)
    loc = errors[0]["loc"] if errors else ()
    if not loc:
        return "schema"
    # The kind's data model is checked after the event's own fields: its errors name a field
    # of ``data`` (``x``), which the cause names as the event field it is (``data.x``).
    head = str(loc[0])
    return head if head in TelemetryEvent.model_fields else f"data.{head}"


class ImportService(ServiceBase):
    """Streams a source file into a dataset through the one ingest path."""

    def __init__(
        self, deps: Deps, ingest: IngestService, reads: ReadService, *, helper: bool = True
    ) -> None:
        super().__init__(deps)
        self._ingest = ingest
        self._reads = reads
        #: Redact each next batch in a helper process (vault/services/redaction_helper.py).
        self._helper = helper

    # -- set-up ---------------------------------------------------------------------------

    def _source(self, source: Path | str, options: ImportOptions) -> Source:
        fmt = options.format
        if fmt == "ndjson":
            fmt = "jsonl"
        if fmt is not None and fmt not in FORMATS:
            raise BadRequest(f"format must be one of {list(FORMATS)}")
        sql = fmt == "sql" or (fmt is None and is_sql_url(source))
        _check_source_options(options, sql=sql)
        if sql:
            return SqlSource(str(source), table=options.table, query=options.query, key=options.key)
        path = Path(source)
        if fmt is None:
            fmt = _SUFFIXES.get(path.suffix.lower())
            if fmt is None:
                raise BadRequest(f"cannot tell the format of {path.name}; pass --format")
        if not path.is_file():
            if retiring_name(path).is_file():
                raise RetirementStopped(path)
            raise BadRequest(f"no such file: {path}")
        if options.retire is not None:
            check_retirable_file(path)
        if fmt == "parquet":
            return ParquetSource(path)
        return FileSource(path, fmt)

    def _mapping(self, source: Source, options: ImportOptions) -> FieldMapping:
        try:
            mapping = parse_mapping(options.map, options.mapping)
        except MappingError as exc:
            raise BadRequest(f"bad mapping: {exc}") from exc
        columns = source.columns()
        missing: list[str] = []
        if mapping is None:
            mapping = automatic_mapping(columns, rows_vary=source.format == "jsonl")
            if mapping is None:
                raise BadRequest(
                    "the source does not follow the event schema (no subject, time and kind "
                    "columns): map them, e.g. --map subject=user_email --map time=ts "
                    "--map kind=event_type"
                )
        elif source.format != "jsonl":
            missing = mapping.missing_columns(columns)
            if isinstance(source, ParquetSource):
                missing += source.missing_paths(mapping.columns())
        else:  # JSON rows vary: only the required fields must be in the first row
            needed = [mapping.fields[t] for t in ("subject", "time", "kind") if t in mapping.fields]
            missing = sorted(
                c for c in needed if c not in columns and c.split(".")[0] not in columns
            )
        if missing:
            raise BadRequest(f"bad mapping: the source has no column {', '.join(missing)}")
        mapping = mapping.with_time(self._time_format(options))
        first = source.first_row()
        if first is not None:
            try:
                mapping.apply(first, text_values=source.text_values)
            except NaiveTime as exc:
                raise BadRequest(f"bad times: {exc}") from exc
        return mapping

    @staticmethod
    def _time_format(options: ImportOptions) -> TimeFormat:
        if options.time_unit not in TIME_UNITS:
            raise BadRequest(f"--time-unit must be one of {list(TIME_UNITS)}")
        if options.timezone is None:
            return TimeFormat(options.time_unit)
        try:
            zone = ZoneInfo(options.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise BadRequest(
                f"unknown --timezone {options.timezone!r}: give an IANA name such as UTC or "
                "Europe/Berlin"
            ) from exc
        return TimeFormat(options.time_unit, options.timezone, zone)

    def _batch_size(self, batch: int | None) -> int:
        most = self.deps.limits.max_batch_events
        if batch is None:
            return most
        if not 1 <= batch <= most:
            raise BadRequest(f"--batch must be between 1 and {most}")
        return batch

    def _begin(
        self,
        principal: Principal,
        ds: Row[Any],
        *,
        fingerprint: str,
        content: str | None,
        fmt: str,
        mapping: FieldMapping,
    ) -> tuple[_Run, bool]:
        """Find or create the imports row; returns the run and whether it is already done.
        ``content``: a file source's whole-content digest (None for SQL sources)."""
        digest = mapping.digest()
        now = self.deps.now()
        changed = None
        finished = False
        with self.db.write() as conn:
            row = conn.execute(
                select(imports).where(
                    imports.c.dataset_id == ds.id, imports.c.fingerprint == fingerprint
                )
            ).one_or_none()
            if row is not None and None not in (content, row.content_sha256):
                changed = row.id if row.content_sha256 != content else None
            if changed is not None:
                conflict = None
            elif row is not None and (row.format != fmt or row.mapping_sha256 != digest):
                conflict = row.id  # (unfinished, or done: either way not with this mapping)
                finished = row.state == "done"
            else:
                conflict = None
                if row is None:
                    import_id = uuid.uuid4().hex
                    conn.execute(
                        insert(imports).values(
                            id=import_id,
                            dataset_id=ds.id,
                            fingerprint=fingerprint,
                            content_sha256=content,
                            format=fmt,
                            mapping_sha256=digest,
                            requested_by=self.actor(principal),
                            state="running",
                            started_at=now,
                            updated_at=now,
                            **_Totals().columns(),
                        )
                    )
                    totals = _Totals()
                else:
                    import_id, totals = row.id, _Totals.of(row)
                    if row.content_sha256 is None and content is not None:
                        # (an import begun before the digest was kept: this run records it)
                        conn.execute(
                            update(imports)
                            .where(imports.c.id == import_id)
                            .values(content_sha256=content)
                        )
                done = row is not None and row.state == "done"
                self.record(
                    conn,
                    principal,
                    AuditAction.IMPORT_START,
                    dataset=ds.name,
                    reason="already imported" if done else None,
                    details={
                        "import": import_id,
                        "format": fmt,
                        "fingerprint": fingerprint,
                        "mapping_sha256": digest,
                        "automatic_mapping": mapping.automatic,
                        "resumed_at_row": totals.position,
                    },
                )
        if changed is not None:
            self.record_alone(
                principal,
                AuditAction.IMPORT_START,
                Outcome.DENIED,
                dataset=ds.name,
                reason="the source changed beyond its fingerprint",
                details={"import": changed},
            )
            raise Conflict(
                f"this file has the name, size and first MiB of import {changed} but other "
                "content further in: it is not the file that was imported, and resuming or "
                "retiring it would act on other rows. Import it under another name (a new "
                "import)"
            )
        if conflict is not None:
            state = "done" if finished else "unfinished"
            self.record_alone(
                principal,
                AuditAction.IMPORT_START,
                Outcome.DENIED,
                dataset=ds.name,
                reason=f"{state} import with another format or mapping",
                details={"import": conflict},
            )
            if finished:
                raise Conflict(
                    f"import {conflict} of this source was done with another format or "
                    "mapping: nothing is imported again (a run with the mapping it was imported "
                    "with reports it, and retires it on request). To import it with this "
                    "mapping, make it a new source: another file name, or for SQL another "
                    "table, query or key"
                )
            raise Conflict(
                f"import {conflict} of this source is unfinished with another format or "
                "mapping; run it again with the same ones"
            )
        run = _Run(import_id, ds, totals, resumed_at=totals.position, content=content)
        run.rng = random.Random(import_id)  # noqa: S311 - picks a verification sample only
        return run, done

    # -- the run --------------------------------------------------------------------------

    def run(
        self,
        principal: Principal,
        dataset: str,
        source: Path | str,
        options: ImportOptions,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Import ``source`` (a file, or a SQLAlchemy URL with a table or query) into
        ``dataset``, resuming an interrupted import, and retire it on request; the summary."""
        action = AuditAction.IMPORT_START
        self.require(principal, action, [Role.ADMIN], dataset=dataset)
        ds = self.visible_dataset(principal, dataset, action)
        batch = self._batch_size(options.batch)
        try:
            opened = self._source(source, options)
        except RetirementStopped as stopped:
            if options.retire != "overwrite":
                raise
            return finish_stopped_retirement(self, principal, ds, stopped.path)
        try:
            if isinstance(opened, SqlSource) and opened.is_vault_table(set(metadata.tables), ds.id):
                raise BadRequest(
                    f"the SQL source table {opened.table_name!r} is one of the vault's own "
                    "(this is the vault's database, or a copy of it): it is not imported, nor "
                    "retired"
                )
            mapping = self._mapping(opened, options)
            if isinstance(opened, SqlSource) and options.retire is not None:
                opened.check_retire(options.retire, mapping.columns(), options.id_column)
            return self._run(
                principal,
                ds,
                opened,
                mapping,
                options=options,
                batch=batch,
                progress=progress,
            )
        finally:
            opened.close()

    def _run(
        self,
        principal: Principal,
        ds: Row[Any],
        source: Source,
        mapping: FieldMapping,
        *,
        options: ImportOptions,
        batch: int,
        progress: Progress | None,
    ) -> dict[str, Any]:
        fingerprint = source.fingerprint
        with self.db.exclusive(f"import:{ds.id}:{fingerprint}") as mine:
            if not mine:
                raise Conflict("this source is being imported into this dataset right now")
            try:
                run, done = self._begin(
                    principal,
                    ds,
                    fingerprint=fingerprint,
                    content=_content(source),
                    fmt=source.format,
                    mapping=mapping,
                )
            except DbIntegrityError as exc:  # a concurrent first start on another machine
                raise Conflict("this source is being imported into this dataset") from exc
            started = time.perf_counter()
            handled = 0
            if not done:
                try:
                    handled = self._stream(
                        principal, run, source, mapping, batch=batch, progress=progress
                    )
                except BadRequest as exc:  # the source cannot be read on: say what is stored
                    self._interrupted(principal, run)
                    raise BadRequest(_stopped_by_source(exc.message, run)) from exc
                except BaseException:
                    self._interrupted(principal, run)
                    raise
            elapsed = time.perf_counter() - started
            self._sample_earlier(run, source, mapping)
            verification = self._verify(run)
            if not done:
                self._finish(principal, run, verification)
            summary = self._summary(
                run,
                mapping,
                done=done,
                handled=handled,
                elapsed=elapsed,
                verification=verification,
            )
            summary["source"] = {"format": source.format, "fingerprint": fingerprint}
            if options.retire is not None:
                summary["retired"] = self._retire(
                    principal, run, source, mapping, options=options, summary=summary
                )
        return summary

    def _stream(
        self,
        principal: Principal,
        run: _Run,
        source: Source,
        mapping: FieldMapping,
        *,
        batch: int,
        progress: Progress | None,
    ) -> int:
        """Read, map, validate and store every row after the position; rows handled.

        A batch ends where its ``batch``-th valid row is, or 4 x ``batch`` rows after its
        start (so that a run of invalid rows still moves the position on); rows are mapped as
        they are read (a JSONL file's lines when validated) and validated a batch at a time
        (:meth:`_Chunk.validate`)."""
        events, rows = _reader(source, mapping, run.totals.position)
        apply = events.apply
        chunk = _Chunk()
        pending, invalid = chunk.pending, chunk.invalid  # (looked up once, not per row)
        last = run.totals.position + batch * 4  # the row at which the chunk ends anyway
        handled = 0
        with _Pipeline(self, principal, run) as pipeline:
            for number, row, problem in rows:
                handled += 1
                chunk.end = number
                if problem is not None:
                    if problem != "blank":
                        invalid.append((number, problem))
                elif apply is None:
                    pending.append((number, row))
                else:
                    try:
                        pending.append((number, apply(row)))
                    except NaiveTime:
                        invalid.append((number, "naive_time"))
                if len(pending) + len(chunk.valid) < batch and number < last:
                    continue  # (the batch cannot be full yet: no need to validate)
                chunk.validate(events)
                if len(chunk.valid) >= batch or number >= last:
                    pipeline.put(chunk)
                    last = chunk.end + batch * 4
                    chunk = _Chunk()
                    pending, invalid = chunk.pending, chunk.invalid
                    if progress is not None:
                        progress(*source.progress(), run.totals.position)
            if chunk.end:
                chunk.validate(events)
                pipeline.put(chunk, last=True)
            pipeline.flush()
        if progress is not None:
            _, total = source.progress()
            progress(total, total, run.totals.position)
        return handled

    def start_helper(self, run: _Run) -> RedactionHelper | None:
        """A helper process redacting with this import's redactor (None: redact here)."""
        names = self._ingest.redaction.names
        if not self._helper or names is not None:  # (a name model may not survive a fork)
            return None
        return RedactionHelper.start(redactor_for(self.keyring, run.ds, names))

    def _store(
        self,
        principal: Principal,
        run: _Run,
        chunk: _Chunk,
        ahead: Ahead | None = None,
    ) -> None:
        """Store one chunk (``ahead``: its valid events' redaction, made by the helper); an
        event over the record size limit is retried row by row."""
        try:
            self._store_part(principal, run, chunk, ahead)
        except PayloadTooLarge:
            for part in _rows_apart(chunk):
                try:
                    self._store_part(principal, run, part)
                except PayloadTooLarge:
                    number = part.valid[0][0]
                    part.valid = []
                    part.invalid.append((number, "too_large"))
                    part.invalid.sort()
                    self._store_part(principal, run, part)

    def _store_part(
        self,
        principal: Principal,
        run: _Run,
        chunk: _Chunk,
        ahead: Ahead | None = None,
    ) -> None:
        expected = run.totals.position
        new = run.totals.copy()
        new.position = chunk.end
        new.rows_read += len(chunk.valid) + len(chunk.invalid)  # blank rows are in neither
        new.invalid += len(chunk.invalid)
        for number, cause in chunk.invalid:
            new.invalid_causes[cause] += 1
            if len(new.invalid_rows) < KEEP_INVALID_ROWS:
                new.invalid_rows.append(number)
        stored: list[tuple[int, TelemetryEvent]] = []

        def after_store(conn: Connection, results: list[dict[str, Any]]) -> None:
            links = []
            import_id, valid, redactions = run.import_id, chunk.valid, new.redactions
            for result in results:
                if result["status"] == "stored":
                    item = valid[int(result["index"])]
                    links.append((import_id, item[0], result["id"]))
                    stored.append(item)
                    for name, count in (result.get("redactions") or _NO_COUNTS).items():
                        redactions[name] += count
                else:
                    new.refused[str(result["reason"])] += 1
            new.stored += len(links)
            self._commit_progress(conn, principal, run, expected, new)
            _insert_links(conn, links)

        if chunk.valid:
            redacted = None
            if ahead is not None:
                redacted = Redacted(run.ds.id, run.ds.replacement, ahead)
            self._ingest.ingest(
                principal,
                run.ds.name,
                [e for _, e in chunk.valid],
                after_store=after_store,
                redacted=redacted,
            )
        else:
            with self.db.write() as conn:
                self._commit_progress(conn, principal, run, expected, new)
        run.totals = new
        for item in stored:  # reservoir sample of this run's stored rows, for verification
            run.seen += 1
            if len(run.sample) < SAMPLE:
                run.sample.append(item)
            else:
                slot = run.rng.randrange(run.seen)
                if slot < SAMPLE:
                    run.sample[slot] = item

    def _commit_progress(
        self, conn: Connection, principal: Principal, run: _Run, expected: int, new: _Totals
    ) -> None:
        """Move the position from ``expected`` (only from it: two runs never both advance)."""
        moved = conn.execute(
            _ADVANCE,
            {
                "run_import": run.import_id,
                "run_expected": expected,
                "updated_at": self.deps.now(),
                **new.columns(),
            },
        ).rowcount
        if moved != 1:
            raise Conflict("the import moved on in another process; run it again")
        self.record(
            conn,
            principal,
            AuditAction.IMPORT_BATCH,
            dataset=run.ds.name,
            details={
                "import": run.import_id,
                "rows": [expected + 1, new.position],
                "stored": new.stored - run.totals.stored,
                "invalid": new.invalid - run.totals.invalid,
            },
        )

    def _interrupted(self, principal: Principal, run: _Run) -> None:
        """Best effort: an interrupted run says so in the audit log (never masks the error)."""
        with contextlib.suppress(Exception):  # the original error is what matters
            self.record_alone(
                principal,
                AuditAction.IMPORT_FINISH,
                Outcome.FAILED,
                dataset=run.ds.name,
                reason="import interrupted; run it again to continue",
                details={"import": run.import_id, "position": run.totals.position},
            )

    def _finish(self, principal: Principal, run: _Run, verification: dict[str, Any]) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(imports)
                .where(imports.c.id == run.import_id)
                .values(state="done", finished_at=self.deps.now(), updated_at=self.deps.now())
            )
            totals = run.totals
            self.record(
                conn,
                principal,
                AuditAction.IMPORT_FINISH,
                Outcome.OK if verification["ok"] else Outcome.FAILED,
                dataset=run.ds.name,
                reason=None if verification["ok"] else "verification failed",
                details={
                    "import": run.import_id,
                    "rows": totals.position,
                    "stored": totals.stored,
                    "refused": dict(sorted(totals.refused.items())),
                    "invalid": totals.invalid,
                    "redactions": dict(sorted(totals.redactions.items())),
                    "verification": verification,
                },
            )

    # -- retiring the source ---------------------------------------------------------------

    def _retire(
        self,
        principal: Principal,
        run: _Run,
        source: Source,
        mapping: FieldMapping,
        *,
        options: ImportOptions,
        summary: dict[str, Any],
    ) -> dict[str, Any]:
        """Retire the source after a verified import (refused otherwise, and audited)."""
        mode = options.retire
        assert mode is not None
        totals = run.totals
        reason = _retire_refusal(run, summary["verification"])
        details: dict[str, Any] = {
            "import": run.import_id,
            "format": source.format,
            "fingerprint": source.fingerprint,
            "mode": mode,
        }
        if reason is None and isinstance(source, FileSource | ParquetSource):
            # The file checked is the file recorded, and the one a stopped retirement is
            # finished on (import_remains): read through one descriptor.
            identity = _unchanged(source, run)
            if identity is None:
                reason = "the file changed since it was read"
            else:
                details["file"] = identity
        if reason is not None:
            self._retire_refused(principal, run, details, reason)
            raise Conflict(f"the source is not retired: {reason}", details={"summary": summary})
        # Committed before the source is touched: the source is another system (a file, a
        # database) that no vault transaction spans, so a retirement the process does not
        # live to record still shows in the log as begun, and never as done.
        self.record_alone(
            principal,
            AuditAction.IMPORT_RETIRE_BEGIN,
            Outcome.OK,
            dataset=run.ds.name,
            details=details,
        )
        try:
            with self.db.write() as conn:
                # The entry commits only if the retirement succeeded (fail closed: a retirement
                # whose entry cannot be written raises after the fact, and says so).
                if isinstance(source, SqlSource):
                    if mode == "drop":
                        result = source.drop(totals.position)
                    else:
                        result = source.replace(
                            totals.position,
                            mapping.columns(),
                            options.id_column,
                            lambda lo, hi: self._record_ids(run.import_id, lo, hi),
                        )
                else:
                    assert isinstance(source, FileSource | ParquetSource)
                    source.close()
                    try:
                        result = shred_file(source.path, details["file"])
                    except OSError as exc:
                        raise BadRequest(
                            f"the source file could not be overwritten ({exc.strerror}); it may "
                            "be partly overwritten: check it and remove it by hand"
                        ) from exc
                self.record(
                    conn,
                    principal,
                    AuditAction.IMPORT_RETIRE,
                    dataset=run.ds.name,
                    details={**details, "result": result},
                )
        except BadRequest as exc:
            self._retire_refused(principal, run, details, exc.message, Outcome.FAILED)
            raise
        return {"mode": mode, **result}

    def _retire_refused(
        self,
        principal: Principal,
        run: _Run,
        details: dict[str, Any],
        reason: str,
        outcome: Outcome = Outcome.DENIED,
    ) -> None:
        self.record_alone(
            principal,
            AuditAction.IMPORT_RETIRE,
            outcome,
            dataset=run.ds.name,
            reason=reason[:200],
            details=details,
        )

    def _record_ids(self, import_id: str, first: int, last: int) -> dict[int, str]:
        """Source row number -> vault record id, for rows ``first..last`` of an import."""
        with self.db.read() as conn:
            found = conn.execute(
                select(import_records.c.row, import_records.c.record_id).where(
                    import_records.c.import_id == import_id,
                    import_records.c.row.between(first, last),
                )
            ).all()
        return {int(row): str(record) for row, record in found}

    # -- verification ---------------------------------------------------------------------

    def _sample_earlier(self, run: _Run, source: Source, mapping: FieldMapping) -> None:
        """Add to the verification sample up to :data:`SAMPLE` rows that earlier runs of the
        import stored (a resumed import, or one run again once done), read again from the
        source: so that what is verified, and then retired, is the whole import, not only
        what this run stored (nothing at all, on a run after the last batch). A sampled row
        the source no longer gives as a valid event counts against the verification."""
        if run.resumed_at == 0:
            return
        # Row numbers drawn at random (the import's own generator), looked up by the links'
        # primary key: those linked (stored, not erased since) are the sample.
        picks = run.rng.sample(range(1, run.resumed_at + 1), min(SAMPLE, run.resumed_at))
        with self.db.read() as conn:
            wanted = set(
                conn.execute(
                    select(import_records.c.row).where(
                        import_records.c.import_id == run.import_id,
                        import_records.c.row.in_(picks),
                    )
                ).scalars()
            )
        if not wanted:
            return
        chunk = _Chunk()
        if isinstance(source, SqlSource):  # each row by its position (OFFSET, on the server)
            for number in sorted(wanted):
                events, rows = _reader(source, mapping, number - 1)
                try:
                    item = next(iter(rows), None)
                finally:
                    _close(rows)
                if item is not None and item[0] == number:
                    _take(events, chunk, *item)
        else:  # a file: read on to the last one (only the wanted rows are mapped)
            last = max(wanted)
            events, rows = _reader(source, mapping, 0)
            try:
                for number, row, problem in rows:
                    if number > last:
                        break
                    if number in wanted:
                        _take(events, chunk, number, row, problem)
            finally:
                _close(rows)
        chunk.validate(events)
        run.sample.extend(chunk.valid)
        run.unreadable = len(wanted) - len(chunk.valid)

    def _verify(self, run: _Run) -> dict[str, Any]:
        """Counts match; a sample decrypts and matches its redacted source row."""
        base = import_records.c.import_id == run.import_id
        joined = import_records.join(records, records.c.id == import_records.c.record_id)
        with self.db.read() as conn:
            sample_rows = [number for number, _ in run.sample]
            # In one statement (one snapshot on PostgreSQL too, so an erasure committing
            # meanwhile cannot unbalance them): links, links whose record is there, links an
            # erasure or a sweep removed with their records, and the sampled rows still linked.
            removed = (
                select(imports.c.removed).where(imports.c.id == run.import_id).scalar_subquery()
            )
            in_sample = import_records.c.row.in_(sample_rows) if sample_rows else false()
            linked, present, removed_count, still_linked = conn.execute(
                select(
                    func.count(),
                    func.count(records.c.id),
                    removed,
                    func.count(case((in_sample, 1))),
                )
                .select_from(
                    import_records.outerjoin(records, records.c.id == import_records.c.record_id)
                )
                .where(base)
            ).one()
            stmt = select(records, import_records.c.row).select_from(joined).where(base)
            if sample_rows:
                stmt = stmt.where(import_records.c.row.in_(sample_rows))
            else:  # nothing stored in this run: decrypt a few earlier records
                stmt = stmt.order_by(import_records.c.record_id).limit(SAMPLE)
            rows = conn.execute(stmt).all()
            opened = dict(
                zip(
                    [row.row for row in rows],
                    self._reads.open_rows(conn, run.ds, rows),
                    strict=True,
                )
            )
        sources = dict(run.sample)
        # Records redacted by older rules (an earlier run's, before `tvault redact` redid them)
        # are not what today's rules make of their source row: they open, but are not compared.
        stale = {row.row for row in rows if row.rules_version != RULES_VERSION}
        # The dataset's own redactor (its replacement mode, the name model), as ingest's.
        redactor = redactor_for(self.keyring, run.ds, self._ingest.redaction.names)
        matched = sum(
            1
            for number, body in opened.items()
            if number in sources
            and number not in stale
            and self._matches(run, redactor, sources[number], body)
        )
        # A sampled row whose record an erasure removed during the run is left out; every
        # other sampled row must open and match its source row.
        ok = (
            linked + removed_count == run.totals.stored
            and present == linked
            and len(opened) == (still_linked if sample_rows else len(opened))
            and matched == (len(opened) - len(stale) if sample_rows else 0)
            and run.unreadable == 0
        )
        return {
            "ok": ok,
            "stored": run.totals.stored,
            "linked": linked,
            "removed": removed_count,
            "present": present,
            "decrypted": len(opened),
            "matched_source": matched,
            "unreadable_in_source": run.unreadable,
            "older_rules": len(stale),
        }

    def _matches(
        self, run: _Run, redactor: Redactor, event: TelemetryEvent, body: dict[str, Any]
    ) -> bool:
        stored = {k: v for k, v in body.items() if k not in {"id", "subject"}}
        if body["subject"] != self.keyring.subject_pseudonym(run.ds.id, event.subject):
            return False
        expected = json.loads(json.dumps(redact_event(event, redactor).body))
        if event.kind is EventKind.KEY:  # keystrokes may be masked across the batch
            return bool(stored["time"] == expected["time"] and stored["kind"] == "key")
        return bool(stored == expected)

    # -- summary --------------------------------------------------------------------------

    @staticmethod
    def _summary(
        run: _Run,
        mapping: FieldMapping,
        *,
        done: bool,
        handled: int,
        elapsed: float,
        verification: dict[str, Any],
    ) -> dict[str, Any]:
        totals = run.totals
        return {
            "import": run.import_id,
            "dataset": run.ds.name,
            "state": "done",
            "already_imported": done,
            "resumed_at_row": run.resumed_at,
            "mapping": "automatic" if mapping.automatic else "given",
            "rows": totals.position,
            "rows_read": totals.rows_read,
            "stored": totals.stored,
            "refused": dict(sorted(totals.refused.items())),
            "invalid": totals.invalid,
            "invalid_rows": totals.invalid_rows[:100],
            "invalid_causes": dict(sorted(totals.invalid_causes.items())),
            "redactions": dict(sorted(totals.redactions.items())),
            "this_run": {
                "rows": handled,
                "elapsed_seconds": round(elapsed, 3),
                "rows_per_second": round(handled / elapsed, 1) if elapsed > 0 else None,
            },
            "verification": verification,
        }


def _retire_refusal(run: _Run, verification: dict[str, Any]) -> str | None:
    """Why the source of ``run`` may not be retired, or None: only after a verified import
    with every row read accounted for and none invalid (and a file must be unchanged since it
    was read: :func:`_unchanged`, checked by the caller, which records the file's identity)."""
    totals = run.totals
    accounted = totals.stored + sum(totals.refused.values()) + totals.invalid
    if not verification["ok"]:
        return "the import's verification failed"
    if verification["present"] and not verification["matched_source"]:
        reason = "no stored record could be compared with its source row"
        if verification["older_rules"]:
            reason += " (those sampled were redacted by older rules: run `tvault redact` first)"
        return reason
    if totals.invalid:
        return (
            f"{totals.invalid} rows are invalid and stored nowhere, so this source cannot be "
            "retired: import those rows alone, fixed, from a new file (the others are "
            "stored; a fixed copy of this file would be a new import and store them again), "
            "then remove this source yourself"
        )
    if accounted != totals.rows_read:
        return "the import's counts do not add up"
    return None


def _take(events: _Events, chunk: _Chunk, number: int, row: Any, problem: str | None) -> None:
    """One source row into ``chunk``'s pending rows, mapped as :meth:`_stream` maps it (a row
    the source gives with a problem, or whose time is naive, is left out)."""
    if problem is not None:
        return
    if events.apply is None:
        chunk.pending.append((number, row))
        return
    try:
        chunk.pending.append((number, events.apply(row)))
    except NaiveTime:
        return


def _close(rows: Any) -> None:
    close = getattr(rows, "close", None)
    if close is not None:
        close()


def _stopped_by_source(message: str, run: _Run) -> str:
    """What to do about a source that stopped an import part-way (a row that cannot be parsed
    or read): a fixed copy of a file is a new import (its fingerprint changes), which would
    store the rows already stored a second time."""
    totals = run.totals
    handled = totals.position
    if handled == 0:
        return f"{message}: nothing was stored; fix the source and run the import again"
    invalid = (
        f"; {totals.invalid} of them are invalid and stored nowhere (their row numbers are in "
        "the import's summary): fix those too"
        if totals.invalid
        else ""
    )
    return (
        f"{message}: the import stopped after row {handled} (import {run.import_id}): rows 1 "
        f"to {handled} are handled, stored or refused with a reason{invalid}. A fixed copy of "
        "a file is a new import and would store those rows again (one with the same name, "
        "size and first MiB is refused): put only the rows to import, fixed, in a new file (a "
        "CSV with its header), or fix the SQL source's rows and run this command again"
    )


def _insert_links(conn: Connection, links: list[tuple[str, int, str]]) -> None:
    """Insert a batch's ``import_records`` rows (import id, source row, record id) in the
    connection's transaction, as cheaply as the driver allows (``copy_table`` on psycopg).

    The values are plain text and integers, which no column type converts, so SQLAlchemy's
    per-row work for its ``insert`` (dicts to parameters, type processing) is skipped: SQLite
    gets its compiled statement through ``exec_driver_sql`` (one ``executemany``), psycopg a
    ``COPY`` (no per-row round trip; see vault/storage/record_insert.py for why). Driver errors
    are raised as SQLAlchemy raises them.
    """
    if not links:
        return
    dialect = conn.dialect
    if dialect.name == "sqlite":
        conn.exec_driver_sql(_link_statement(dialect), links)
        return
    if dialect.name != "postgresql" or dialect.driver != "psycopg" or not conn.in_transaction():
        conn.execute(_INSERT_LINK, [dict(zip(_LINK_COLUMNS, link, strict=True)) for link in links])
        return
    copy_table(conn, import_records, links)


@functools.lru_cache(maxsize=4)
def _link_statement(dialect: Dialect) -> str:
    """SQLAlchemy's own ``INSERT`` of a link for ``dialect``, its parameters in column order."""
    compiled = _INSERT_LINK.compile(dialect=dialect)
    if tuple(compiled.positiontup or ()) != _LINK_COLUMNS:
        raise AssertionError(f"unexpected parameters {compiled.positiontup}")
    return str(compiled)


def _reader(
    source: Source, mapping: FieldMapping, start: int
) -> tuple[_Events, Iterator[tuple[int, Any, str | None]]]:
    """How the rows after ``start`` are read and made events: a JSONL file as lines
    (:class:`_JsonLines`), a CSV or Parquet file as its rows' values
    (:meth:`FieldMapping.positional`, when the mapping reads whole columns of the file), any
    other source as rows mapped as they are read."""
    general = _MappedRows(mapping.mapper(text_values=source.text_values))
    if isinstance(source, FileSource) and source.format == "jsonl":
        return _JsonLines(mapping.copied_fields(), general), source.lines(start)
    if isinstance(source, FileSource) and source.format == "csv":
        header, values = source.values(start)
        positional = mapping.positional(header, text_values=True)
        if positional is not None:
            return _MappedRows(positional), values
        values.close()
    if isinstance(source, ParquetSource) and source.distinct_names:
        names = source.projection(mapping.columns())
        positional = mapping.positional(names, text_values=False)
        if positional is not None:
            return _MappedRows(positional), source.values(start, names)
    return general, source.rows(start, mapping.columns())


#: Chunks that wait for the helper, besides the one it is redacting, once a put returns (the
#: importer waits for the helper when a third is read): a few batches of memory whatever the
#: source's size, enough that the importer reads on instead of waiting while the helper
#: redacts the first batch or falls behind for a moment.
_READ_AHEAD = 2


class _Pipeline:
    """Stores an import's chunks in order, each chunk's redaction done by a helper process
    (:class:`RedactionHelper`) while the chunk before it is stored and the next ones read.

    Chunks go to the helper one at a time, in the order they were read; a chunk whose
    redaction came back is stored (after the next one went to the helper) as soon as the
    importer is done reading a chunk, and waited for only once more than :data:`_READ_AHEAD`
    chunks wait behind it, or at :meth:`flush`. A lone last chunk, and every chunk when there
    is no helper (none wanted, no ``fork`` here, or it failed), is redacted where it is
    stored, as ingest does. Nothing is stored out of order or twice: the position moves from
    chunk to chunk, as without a helper. An error stops the import: the chunks read but not
    stored yet are read again when it is run again."""

    def __init__(self, importer: ImportService, principal: Principal, run: _Run) -> None:
        self._importer = importer
        self._principal = principal
        self._run = run
        self._queue: deque[_Chunk] = deque()  # read, not sent to the helper yet
        self._sent: _Chunk | None = None  # with the helper
        self._helper: RedactionHelper | None = None
        self._tried = False

    def put(self, chunk: _Chunk, *, last: bool = False) -> None:
        """Hand a chunk on (``last``: no more follow)."""
        if last and self._sent is None and not self._queue:
            self._importer._store(self._principal, self._run, chunk)
            return
        if not self._tried:
            self._tried = True
            self._helper = self._importer.start_helper(self._run)
        self._queue.append(chunk)
        self._advance(final=False)

    def flush(self) -> None:
        """Store every chunk still waiting (for its redaction, or for the helper)."""
        self._advance(final=True)

    def _advance(self, *, final: bool) -> None:
        while True:
            helper = self._helper
            if self._sent is not None:
                assert helper is not None
                if final or len(self._queue) > _READ_AHEAD or helper.ready():
                    self._take(helper)
                    continue
                return
            self._send()
            if self._sent is not None:
                continue
            if not self._queue:
                return
            # No helper to take it: redacted where it is stored.
            self._importer._store(self._principal, self._run, self._queue.popleft())

    def _send(self) -> None:
        """Give the helper the next chunk read, if there is a usable helper."""
        helper = self._helper
        if not self._queue or helper is None or not helper.usable:
            return
        chunk = self._queue[0]
        if helper.submit([event.stored_form() for _, event in chunk.valid]):
            self._sent = self._queue.popleft()

    def _take(self, helper: RedactionHelper) -> None:
        """Store the chunk with the helper, with its redaction (None if the helper failed),
        once the next one has gone to the helper."""
        chunk, self._sent = self._sent, None
        assert chunk is not None
        answer = helper.result()  # (one outcome per valid event, or None)
        self._send()
        self._importer._store(self._principal, self._run, chunk, answer)

    def __enter__(self) -> _Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._helper is not None:
            self._helper.close(at_once=exc[0] is not None)  # (a failing import: no waiting)


def _unchanged(source: FileSource | ParquetSource, run: _Run) -> dict[str, int] | None:
    """The file's identity (device, inode, size) if it is still the one this run read (name,
    size, first MiB, content), else None."""
    try:
        fingerprint, content, identity = checked_file(source.path)
    except OSError:  # gone, replaced, or no longer readable
        return None
    return identity if (fingerprint, content) == (source.fingerprint, run.content) else None


def _content(source: Source) -> str | None:
    """A file source's whole-content digest (read now, before any row); None for SQL."""
    if isinstance(source, FileSource | ParquetSource):
        try:
            return content_sha256(source.path)
        except OSError as exc:
            raise BadRequest(f"the source file cannot be read ({exc.strerror})") from exc
    return None


def _rows_apart(chunk: _Chunk) -> Iterator[_Chunk]:
    """A chunk as parts of one valid row each (invalid rows go with the next valid one)."""
    invalid = iter(chunk.invalid)
    pending = next(invalid, None)
    for number, event in chunk.valid:
        part = _Chunk(end=number, valid=[(number, event)])
        while pending is not None and pending[0] < number:
            part.invalid.append(pending)
            pending = next(invalid, None)
        yield part
    rest = _Chunk(end=chunk.end)
    while pending is not None:
        rest.invalid.append(pending)
        pending = next(invalid, None)
    if rest.invalid or rest.end > (chunk.valid[-1][0] if chunk.valid else 0):
        yield rest
