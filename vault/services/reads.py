"""Purpose-bound, audited, decrypted reads of stored events, page by page.

Every read names a purpose that the dataset and the token allow and that is not forbidden;
object-level checks keep a caller inside the datasets it holds a grant on. The read's audit
entry is written before any plaintext is returned (fail closed).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Row,
    and_,
    case,
    event,
    func,
    literal,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import NullType

from vault.audit import AuditAction
from vault.crypto.envelope import RecordOpener
from vault.domain.events import EventKind, format_time, parse_time_utc
from vault.domain.principal import Principal, Role
from vault.errors import (
    BadRequest,
    DecryptionError,
    InvalidCursor,
    KeyDestroyed,
)
from vault.keyring import SubjectKey
from vault.services.base import OBJECT_ID, ServiceBase
from vault.services.export_pages import check_index_values, group_opener, open_page
from vault.storage.tables import records

__all__ = ["EventQuery", "FetchedPage", "OpenedPage", "ReadService"]

DEFAULT_PAGE = 100
MAX_SUBJECTS = 1000
#: The purpose recorded when people read their own data; it needs no grant.
SUBJECT_ACCESS = "subject_access"


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters of a listing, as the faces received them (validated here, once)."""

    subject: str | None = None
    since: str | None = None
    until: str | None = None
    kind: str | None = None
    limit: int | None = None
    cursor: str | None = None


def _time_param(name: str, raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        return parse_time_utc(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an RFC 3339 time with an offset") from exc


def after(event_time: datetime, record_id: str) -> ColumnElement[bool]:
    """Records strictly after (time, id) in the read order: the keyset page condition.

    A row-value comparison, so PostgreSQL can start an ordered scan of the (dataset, time, id)
    index there and stop at the page's limit (the equivalent ``time > t OR (time = t AND id >
    i)`` cannot bound a scan there: each page then read and sorted every row after it)."""
    return tuple_(records.c.event_time, records.c.id) > tuple_(
        literal(event_time, records.c.event_time.type), literal(record_id, records.c.id.type)
    )


def encode_cursor(event_time: datetime, record_id: str) -> str:
    """An opaque cursor after (time, id)."""
    raw = json.dumps([format_time(event_time), record_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of :func:`encode_cursor`; anything else is an InvalidCursor."""
    try:
        if len(cursor) > 200:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, rid = json.loads(raw)
        if not isinstance(rid, str) or not OBJECT_ID.fullmatch(rid):
            raise ValueError("bad id")
        return parse_time_utc(when), rid
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor("invalid cursor") from exc


def _raw_columns(time: ColumnElement[Any]) -> tuple[ColumnElement[Any], ...]:
    """The columns a page of an export is opened from, as the driver returns them (no per-row
    type processing; LargeBinary's copy is not needed either), the time as ``time``."""
    return tuple(
        type_coerce(column, NullType()).label(name)
        for name, column in (
            ("id", records.c.id),
            ("subject", records.c.subject),
            ("epoch", records.c.epoch),
            ("event_time", time),
            ("kind", records.c.kind),
            ("sek_id", records.c.sek_id),
            ("envelope", records.c.envelope),
        )
    )


#: :func:`_raw_columns` on SQLite: the time as stored, ``YYYY-MM-DD HH:MM:SS.ffffff`` text
#: (naive UTC), which :func:`~vault.services.export_pages.raw_time_text` reads.
RAW_COLUMNS = _raw_columns(records.c.event_time)
#: On PostgreSQL the server writes the time as that same text (the column is naive UTC, so no
#: time zone applies): that costs it less than the client would spend building, pickling and
#: formatting a datetime per record (docs/export.md "Speed"). The next page's keyset is parsed
#: back from the text, to the microsecond. A time before year 1 (the text drops the era) or
#: infinite, which only an edit in the database makes, is written as NULL: tampering
#: (:func:`text_time`), as the driver refused to read such a time before.
PG_TIME_TEXT = "YYYY-MM-DD HH24:MI:SS.US"
PG_RAW_COLUMNS = _raw_columns(
    case(
        (
            and_(
                records.c.event_time >= literal(datetime(1, 1, 1), DateTime()),
                func.isfinite(records.c.event_time),
            ),
            func.to_char(records.c.event_time, PG_TIME_TEXT),
        )
    )
)
_TIME_TEXT_LENGTH = len("YYYY-MM-DD HH:MM:SS.ffffff")
_BINARY_RESULTS = "tvault_binary_results"


def _binary_results(*event_args: Any) -> None:
    """``before_cursor_execute`` (conn, cursor, statement, parameters, context, executemany) on
    psycopg: results in the binary format for the statements that ask for it, so bytea
    arrives as stored, with no hex to parse (a page's fetch cost a third before). The Python
    values are the same as in the text format (str, int, bytes, datetime)."""
    cursor, context = event_args[1], event_args[4]
    if context is not None and context.execution_options.get(_BINARY_RESULTS):
        from psycopg import pq

        cursor.format = pq.Format.BINARY


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """A page of records read for an export, not opened yet: what its transaction read."""

    #: The raw rows, in :data:`RAW_COLUMNS` order (id, subject, epoch, time, kind, ...).
    rows: list[Any]
    #: The page's subject-epoch keys that exist in its snapshot (for the next page's ``held``).
    keys: dict[bytes, SubjectKey]
    #: Whether records follow this page (one more row matched than the page holds).
    more: bool
    #: The reading of a raw time as the ``event_time`` column type reads it, aware UTC: the
    #: type's own conversion on SQLite, :func:`text_time` on PostgreSQL.
    to_datetime: Callable[[Any], datetime]

    def key_material(self) -> dict[bytes, bytes]:
        """The page's keys as :func:`~vault.services.export_pages.open_page` takes them."""
        return {sek_id: sek.key for sek_id, sek in self.keys.items()}

    @property
    def last(self) -> tuple[datetime, str] | None:
        """Where the next page starts (the keyset), or None when the page is empty."""
        if not self.rows:
            return None
        return self.to_datetime(self.rows[-1][3]), self.rows[-1][0]


@dataclass(frozen=True, slots=True)
class OpenedPage:
    """A page of records opened for an export, in read order."""

    #: Each record's sealed JSON body (compact, as ingest wrote it), checked against the row.
    bodies: list[bytes]
    #: Each record's time as :func:`format_time` writes it (equal to the body's).
    times: list[str]


def text_time(raw: Any) -> datetime:
    """A time read as ``YYYY-MM-DD HH:MM:SS.ffffff`` (:data:`PG_RAW_COLUMNS`), aware UTC. Any
    other (NULL for a time before year 1 or infinite, a year past 9999) was edited in the
    database, since the vault writes none: DecryptionError, as for an index column that
    disagrees with its sealed body."""
    if type(raw) is str and len(raw) == _TIME_TEXT_LENGTH:
        try:
            return datetime.fromisoformat(raw).replace(tzinfo=UTC)
        except ValueError:
            pass
    raise DecryptionError("decryption failed")


def _time_processor(dialect: Dialect) -> Callable[[Any], datetime]:
    """The ``event_time`` column type's own conversion of a raw value (aware UTC)."""
    process = records.c.event_time.type.dialect_impl(dialect).result_processor(dialect, None)
    if process is None:  # pragma: no cover - UTCDateTime always converts
        raise TypeError("event_time has no result processor")
    return cast("Callable[[Any], datetime]", process)


class ReadService(ServiceBase):
    """Decrypted reads for allowed purposes."""

    def filters(
        self,
        dataset_id: str,
        *,
        since: str | None,
        until: str | None,
        kinds: Sequence[str] = (),
        subjects: Sequence[str] = (),
    ) -> list[ColumnElement[bool]]:
        """Validated record filters, shared by listings and exports (one set of rules)."""
        where: list[ColumnElement[bool]] = [records.c.dataset_id == dataset_id]
        start, end = _time_param("since", since), _time_param("until", until)
        if start is not None:
            where.append(records.c.event_time >= start)
        if end is not None:
            where.append(records.c.event_time < end)
        if kinds:
            if any(k not in EventKind.__members__.values() for k in kinds):
                raise BadRequest("unknown kind")
            where.append(records.c.kind.in_(kinds))
        if subjects:
            if len(subjects) > MAX_SUBJECTS or any(not 1 <= len(s) <= 256 for s in subjects):
                raise BadRequest(f"at most {MAX_SUBJECTS} subjects of 1..256 characters")
            where.append(
                records.c.subject.in_(
                    [self.keyring.subject_pseudonym(dataset_id, s) for s in subjects]
                )
            )
        return where

    def open_row(self, conn: Connection, ds: Row[Any], row: Row[Any]) -> dict[str, Any]:
        """Decrypt one record row of ``ds``; any tampering is a DecryptionError."""
        return self.open_rows(conn, ds, [row])[0]

    def open_rows(
        self, conn: Connection, ds: Row[Any], rows: Sequence[Row[Any]]
    ) -> list[dict[str, Any]]:
        """:meth:`open_row` for many rows (a page of an export), each key looked up once."""
        out = []
        for row, plain in zip(rows, self._plaintexts(conn, ds, rows), strict=True):
            body = json.loads(plain)
            check_index_values(row.kind, format_time(row.event_time), body)
            out.append({"id": row.id, "subject": row.subject, **body})
        return out

    def fetch_page(
        self,
        conn: Connection,
        where: Sequence[ColumnElement[bool]],
        limit: int,
        held: Mapping[bytes, SubjectKey] | None = None,
    ) -> FetchedPage:
        """Up to ``limit`` records matching ``where``, in (time, id) order, as raw columns (no
        per-row type processing), and their keys; one row past ``limit`` is read, not kept,
        to tell whether another page follows. All the database work of a page of an export,
        so that :meth:`open_fetched` needs no connection.

        The keys are read in one query, in this page's snapshot: those of ``held`` (the
        previous page's) whose row still exists are used again, the others unwrapped as
        :meth:`open_row` does; a key without a row (destroyed since) is left out, so that
        :meth:`open_fetched` raises KeyDestroyed at its first record."""
        postgres = conn.dialect.name == "postgresql"
        stmt = (
            select(*(PG_RAW_COLUMNS if postgres else RAW_COLUMNS))
            .where(*where)
            .order_by(records.c.event_time, records.c.id)
            .limit(limit + 1)
        )
        if postgres:
            # Keyset pages must follow the (dataset, time, id) index, stopping at the limit: on a
            # partition without statistics yet (a new day's), the planner would otherwise read
            # and sort every row after the page start, for every page. This transaction only.
            conn.exec_driver_sql("SET LOCAL enable_sort = off")
            if conn.dialect.driver == "psycopg":
                if not event.contains(conn, "before_cursor_execute", _binary_results):
                    event.listen(conn, "before_cursor_execute", _binary_results)
                stmt = stmt.execution_options(**{_BINARY_RESULTS: True})
        rows: list[Any] = list(conn.execute(stmt).all())
        more = len(rows) > limit
        del rows[limit:]
        keys = self.keyring.seks_for_read(conn, {bytes(row[5]) for row in rows}, held)
        return FetchedPage(
            rows, keys, more, text_time if postgres else _time_processor(conn.dialect)
        )

    def open_fetched(self, ds: Row[Any], page: FetchedPage) -> OpenedPage:
        """The records of ``page`` (of ``ds``) opened and checked against their index columns
        like :meth:`open_row` (the same associated data, the same opaque DecryptionError),
        with the export's costs cut: the time compared as text and the JSON body compared by
        its leading time and kind instead of parsed (every body the vault writes starts with
        them; any other is parsed and checked in full)."""
        bodies, times = open_page(ds.id, page.key_material(), page.rows, page.to_datetime)
        return OpenedPage(bodies, times)

    def _plaintexts(
        self, conn: Connection, ds: Row[Any], rows: Sequence[Row[Any]]
    ) -> Iterator[bytes]:
        keys: dict[bytes, bytes] = {}  # key material by SEK id
        openers: dict[tuple[bytes, str, int], RecordOpener] = {}
        for row in rows:
            sek_id = bytes(row.sek_id)
            group = (sek_id, row.subject, row.epoch)
            opener = openers.get(group)
            if opener is None:
                if sek_id not in keys:
                    keys[sek_id] = self.keyring.sek_for_read(conn, sek_id).key
                opener = group_opener(openers, keys, ds.id, group)
            yield opener.open(bytes.fromhex(row.id), bytes(row.envelope))

    def _decrypt_all(
        self,
        principal: Principal,
        ds: Row[Any],
        rows: list[Row[Any]],
        action: AuditAction,
        purpose: str,
    ) -> list[dict[str, Any]]:
        try:
            with self.db.read() as conn:
                return self.open_rows(conn, ds, rows)
        except (DecryptionError, KeyDestroyed) as exc:
            self.integrity_failure(principal, action, ds, purpose, exc)

    def list_events(
        self, principal: Principal, dataset: str, purpose: str | None, query: EventQuery
    ) -> dict[str, Any]:
        """One page of decrypted events, oldest first, and the cursor of the next page."""
        action = AuditAction.EVENTS_READ
        ds, purpose_ok = self.authorize_read(principal, dataset, purpose, action)
        return self._page(principal, ds, purpose_ok, query, action)

    def list_own_events(
        self, principal: Principal, dataset: str, query: EventQuery
    ) -> dict[str, Any]:
        """A person reads what the vault holds about them (purpose ``subject_access``)."""
        action = AuditAction.SUBJECT_ACCESS
        self.require(principal, action, [Role.SUBJECT], dataset=dataset)
        ds = self.visible_dataset(principal, dataset, action)
        own = EventQuery(
            principal.sub, query.since, query.until, query.kind, query.limit, query.cursor
        )
        return self._page(principal, ds, SUBJECT_ACCESS, own, action)

    def _page(
        self,
        principal: Principal,
        ds: Row[Any],
        purpose_ok: str,
        query: EventQuery,
        action: AuditAction,
    ) -> dict[str, Any]:
        dataset = ds.name
        limit = query.limit if query.limit is not None else DEFAULT_PAGE
        if not 1 <= limit <= self.deps.limits.max_page_size:
            raise BadRequest(f"limit must be 1..{self.deps.limits.max_page_size}")
        conditions = self.filters(
            ds.id,
            since=query.since,
            until=query.until,
            kinds=(query.kind,) if query.kind is not None else (),
            subjects=(query.subject,) if query.subject is not None else (),
        )
        if query.cursor is not None:
            conditions.append(after(*decode_cursor(query.cursor)))
        stmt = (
            select(records)
            .where(*conditions)
            .order_by(records.c.event_time, records.c.id)
            .limit(limit + 1)
        )
        with self.db.read() as conn:
            rows = list(conn.execute(stmt).all())
        more = len(rows) > limit
        rows = rows[:limit]
        events = self._decrypt_all(principal, ds, rows, action, purpose_ok)
        self.record_alone(
            principal,
            action,
            dataset=dataset,
            purpose=purpose_ok,
            details={
                "records": len(events),
                "filters": {
                    "subject": self.keyring.person_hash(query.subject) if query.subject else None,
                    "since": query.since,
                    "until": query.until,
                    "kind": query.kind,
                },
            },
        )
        next_cursor = encode_cursor(rows[-1].event_time, rows[-1].id) if more else None
        return {"events": events, "next_cursor": next_cursor}

    def get_event(
        self, principal: Principal, dataset: str, record_id: str, purpose: str | None
    ) -> dict[str, Any]:
        """One decrypted event; NotFound when absent or in another dataset."""
        action = AuditAction.EVENT_READ
        ds, purpose_ok = self.authorize_read(principal, dataset, purpose, action)
        row = self.one_object(
            principal, action, ds, records, object_id=record_id, purpose=purpose_ok
        )
        (event,) = self._decrypt_all(principal, ds, [row], action, purpose_ok)
        self.record_alone(
            principal,
            action,
            dataset=dataset,
            purpose=purpose_ok,
            details={"record": record_id},
        )
        return event
