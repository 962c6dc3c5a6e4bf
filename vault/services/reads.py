"""Purpose-bound, audited, decrypted reads of stored events, page by page.

Every read names a purpose that the dataset and the token allow and that is not forbidden;
object-level checks keep a caller inside the datasets it holds a grant on. The read's audit
entry is written before any plaintext is returned (fail closed).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, and_, or_, select

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
from vault.storage.tables import records

__all__ = ["EventQuery", "ReadService"]

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
    """Records strictly after (time, id) in the read order: the keyset page condition."""
    return or_(
        records.c.event_time > event_time,
        and_(records.c.event_time == event_time, records.c.id > record_id),
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


def _check_index(row: Row[Any], time: str, body: dict[str, Any]) -> None:
    """The clear-text index columns must agree with the sealed body, so editing them in the
    database (to slip a record past a filter) is detected like any other tampering."""
    if body.get("kind") != row.kind or body.get("time") != time:
        raise DecryptionError("decryption failed")


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
            _check_index(row, format_time(row.event_time), body)
            out.append({"id": row.id, "subject": row.subject, **body})
        return out

    def open_rows_json(
        self, conn: Connection, ds: Row[Any], rows: Sequence[Row[Any]]
    ) -> list[bytes]:
        """The sealed JSON bodies (compact, as ingest wrote them) of many rows, checked against
        their index columns like :meth:`open_row`, without parsing them when the body starts
        with its time and kind (as every body the vault writes does)."""
        out = []
        for row, plain in zip(rows, self._plaintexts(conn, ds, rows), strict=True):
            time = format_time(row.event_time)
            if not plain.startswith(f'{{"time":"{time}","kind":"{row.kind}",'.encode()):
                _check_index(row, time, json.loads(plain))
            out.append(plain)
        return out

    def _plaintexts(
        self, conn: Connection, ds: Row[Any], rows: Sequence[Row[Any]]
    ) -> Iterator[bytes]:
        keys: dict[bytes, SubjectKey] = {}
        # One opener per (key, subject, epoch): a row whose subject or epoch was edited gets
        # its own, whose context then fails as open_record's would.
        openers: dict[tuple[bytes, str, int], RecordOpener] = {}
        for row in rows:
            group = (bytes(row.sek_id), row.subject, row.epoch)
            opener = openers.get(group)
            if opener is None:
                sek = self._page_key(conn, keys, row)
                opener = RecordOpener(sek.key, ds.id, row.subject, row.epoch, sek.id)
                openers[group] = opener
            yield opener.open(bytes.fromhex(row.id), bytes(row.envelope))

    def _page_key(
        self, conn: Connection, keys: dict[bytes, SubjectKey], row: Row[Any]
    ) -> SubjectKey:
        sek_id = bytes(row.sek_id)
        sek = keys.get(sek_id)
        if sek is None:
            sek = keys[sek_id] = self.keyring.sek_for_read(conn, sek_id)
        return sek

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
