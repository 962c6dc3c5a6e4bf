"""Purpose-bound, streamed, audited exports with a manifest (issue "Protect datasets...").

An export is a read: it needs the reader role, a grant on the dataset and an allowed purpose.
Before the first byte leaves, an ``export:start`` entry is written with the export's id and
filters (fail closed). Records are streamed page by page (keyset pagination, flat memory);
when the stream ends, the manifest (people and record counts, a digest of the record ids) is
stored and ``export:finish`` audited, so an erasure can list the exports that held a person.

Subject ids in an export are pseudonyms derived for the purpose (stable across exports for the
same purpose, so a training set keeps its linkage) or for the one export (``linkage=export``).
"""

from __future__ import annotations

import hashlib
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

__all__ = ["ExportQuery", "ExportService"]

PAGE = 1000
FORMATS = frozenset({"ndjson"})


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
                details={"export": export_id, "filters": filters, "linkage": query.linkage},
            )
        salt = export_id if query.linkage == "export" else purpose_ok
        return export_id, self._stream(
            principal, ds, purpose=purpose_ok, export_id=export_id, where=where, salt=salt
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
    ) -> Iterator[bytes]:
        manifest = _Manifest()
        complete = False
        last: tuple[Any, str] | None = None
        try:
            while True:
                page_where = list(where)
                if last is not None:
                    page_where.append(after(*last))
                stmt = (
                    select(records).where(*page_where).order_by(records.c.event_time, records.c.id)
                )
                with self.db.read() as conn:
                    rows = conn.execute(stmt.limit(PAGE)).all()
                    events = [self._reads.open_row(conn, ds, row) for row in rows]
                if not rows:
                    break
                lines = []
                for row, event in zip(rows, events, strict=True):
                    manifest.people[row.subject] += 1
                    manifest.ids.update(row.id.encode("ascii"))
                    event["subject"] = self.keyring.linkage_pseudonym(salt, row.subject)
                    lines.append(json.dumps(event, separators=(",", ":"), ensure_ascii=False))
                manifest.count += len(rows)
                yield ("\n".join(lines) + "\n").encode("utf-8")
                last = (rows[-1].event_time, rows[-1].id)
            complete = True
        finally:
            self._finish(principal, ds, purpose, export_id, manifest=manifest, complete=complete)

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
