"""Retention by event time, and the legal holds that stop it (DESIGN.md §3, §7).

A sweep destroys the subject-epoch keys of wholly expired days first (crypto-shred), then
deletes expired rows. A legal hold on a dataset, or on one subject of it, keeps its data past
retention; setting, lifting and every sweep the hold blocks are audited.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Connection, Row, and_, delete, func, insert, not_, select, update
from sqlalchemy.exc import OperationalError

from vault.audit import AuditAction, Outcome
from vault.domain.events import epoch_of
from vault.domain.principal import Principal, Role
from vault.errors import Conflict, NotFound, ValidationFailed
from vault.services.base import ServiceBase
from vault.services.validation import pydantic_details
from vault.storage.import_links import remove_import_links
from vault.storage.tables import (
    blobs,
    datasets,
    imports,
    legal_holds,
    records,
    subject_keys,
)

__all__ = ["HoldSpec", "RetentionService"]

_DELETE_BATCH = 5000
_log = logging.getLogger(__name__)


class HoldSpec(BaseModel):
    """Body of a legal hold: the whole dataset, or one subject of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str | None = Field(default=None, min_length=1, max_length=256)
    reason: str = Field(min_length=3, max_length=256)


class RetentionService(ServiceBase):
    """Sweeps and legal holds."""

    # -- legal holds ----------------------------------------------------------------------------

    def _hold_where(self, ds: Row[Any], subject: str | None) -> Any:
        pseudonym = self.keyring.subject_pseudonym(ds.id, subject) if subject else None
        column = legal_holds.c.subject
        same = column.is_(None) if pseudonym is None else column == pseudonym
        return and_(legal_holds.c.dataset_id == ds.id, same), pseudonym

    def set_hold(self, principal: Principal, dataset: str, raw: Any) -> dict[str, Any]:
        """Place a legal hold (privacy officer)."""
        action = AuditAction.HOLD_SET
        self.require(principal, action, [Role.PRIVACY_OFFICER], dataset=dataset)
        ds = self.visible_dataset(principal, dataset, action)
        try:
            spec = HoldSpec.model_validate(raw)
        except ValidationError as exc:
            raise ValidationFailed("invalid legal hold", details=pydantic_details(exc)) from exc
        where, pseudonym = self._hold_where(ds, spec.subject)
        with self.db.write() as conn:
            if conn.execute(select(legal_holds.c.id).where(where)).first() is not None:
                raise Conflict("that hold is already in place")
            hold_id = uuid.uuid4().hex
            conn.execute(
                insert(legal_holds).values(
                    id=hold_id,
                    dataset_id=ds.id,
                    subject=pseudonym,
                    reason=spec.reason,
                    set_by=self.actor(principal),
                    set_at=self.deps.now(),
                )
            )
            self.record(
                conn,
                principal,
                action,
                dataset=dataset,
                reason=spec.reason,
                details=self._scope(spec.subject),
            )
        return {"id": hold_id, "dataset": dataset, "subject": pseudonym, "reason": spec.reason}

    def lift_hold(self, principal: Principal, dataset: str, subject: str | None) -> dict[str, Any]:
        """Lift a legal hold (privacy officer)."""
        action = AuditAction.HOLD_LIFT
        self.require(principal, action, [Role.PRIVACY_OFFICER], dataset=dataset)
        ds = self.visible_dataset(principal, dataset, action)
        where, _ = self._hold_where(ds, subject)
        with self.db.write() as conn:
            if conn.execute(delete(legal_holds).where(where)).rowcount == 0:
                raise NotFound("no such hold")
            self.record(conn, principal, action, dataset=dataset, details=self._scope(subject))
        return {"dataset": dataset, "lifted": True}

    def _scope(self, subject: str | None) -> dict[str, Any]:
        return (
            {"scope": "subject", "subject": self.keyring.person_hash(subject)}
            if subject
            else {"scope": "dataset"}
        )

    # -- sweep ----------------------------------------------------------------------------------

    def sweep(self, principal: Principal) -> dict[str, Any]:
        """Delete everything past retention in every dataset the caller may see, except held data.

        Fail closed: each transaction that destroys keys or rows carries its own audit entry.
        """
        action = AuditAction.RETENTION_SWEEP
        self.require(principal, action, [Role.ADMIN])
        now = self.deps.now()
        with self.db.read() as conn:
            rows = conn.execute(select(datasets).order_by(datasets.c.name)).all()
        report = [
            self._sweep_one(principal, ds, now) for ds in rows if principal.may_see_dataset(ds.name)
        ]
        return {"at": now.isoformat(), "datasets": report}

    def _sweep_one(self, principal: Principal, ds: Row[Any], now: datetime) -> dict[str, Any]:
        action = AuditAction.RETENTION_SWEEP
        cutoff = now - timedelta(days=ds.retention_days)
        expired_day = epoch_of(cutoff)  # keys of days before this one hold only expired events
        with self.db.write() as conn:
            held = {
                r.subject
                for r in conn.execute(
                    select(legal_holds.c.subject).where(legal_holds.c.dataset_id == ds.id)
                )
            }
            whole = None in held
            subjects = {s for s in held if s is not None}
            blocked = self._count_expired(conn, ds.id, cutoff, None if whole else subjects)
            if whole:
                result = {
                    "dataset": ds.name,
                    "keys": 0,
                    "records": 0,
                    "partitions_dropped": 0,
                    "blobs": 0,
                    "held_records": blocked,
                }
                if blocked:
                    self.record(
                        conn,
                        principal,
                        action,
                        Outcome.DENIED,
                        dataset=ds.name,
                        reason="legal hold on the dataset blocks the sweep",
                        details=result,
                    )
                return result
            keys = self._delete_keys(conn, ds.id, expired_day, subjects)
            blob_where: list[Any] = [blobs.c.dataset_id == ds.id, blobs.c.taken_at < cutoff]
            if subjects:
                blob_where.append(not_(blobs.c.subject.in_(subjects)))
            deleted = conn.execute(delete(blobs).where(*blob_where)).rowcount
            if keys or deleted or blocked:
                conn.execute(
                    update(datasets)
                    .where(datasets.c.id == ds.id, datasets.c.shred_pending_since.is_(None))
                    .values(shred_pending_since=now)
                )
                self.record(
                    conn,
                    principal,
                    action,
                    dataset=ds.name,
                    reason="legal hold kept some records" if blocked else None,
                    details={
                        "step": "keys",
                        "keys": keys,
                        "blobs": deleted,
                        "held_records": blocked,
                    },
                )
        self.keyring.forget_cached()
        imported = self._has_imports(ds.id)
        dropped, dropped_parts = self._drop_partitions(principal, ds, cutoff, subjects, imported)
        removed = dropped
        while True:
            with self.db.write() as conn:
                ids = [
                    r.id
                    for r in conn.execute(
                        select(records.c.id)
                        .where(*self._expired(ds.id, cutoff, subjects))
                        .limit(_DELETE_BATCH)
                    )
                ]
                if ids:
                    conn.execute(
                        delete(records).where(records.c.dataset_id == ds.id, records.c.id.in_(ids))
                    )
                    if imported:
                        remove_import_links(conn, ids)
                    self.record(
                        conn,
                        principal,
                        action,
                        dataset=ds.name,
                        details={"step": "records", "records": len(ids)},
                    )
            removed += len(ids)
            if len(ids) < _DELETE_BATCH:
                break
        return {
            "dataset": ds.name,
            "keys": keys,
            "records": removed,
            "partitions_dropped": dropped_parts,
            "blobs": deleted,
            "held_records": blocked,
        }

    def _has_imports(self, dataset_id: str) -> bool:
        """Whether import links (source row -> record) may point at this dataset's records."""
        with self.db.read() as conn:
            found = conn.execute(select(imports.c.id).where(imports.c.dataset_id == dataset_id))
            return found.first() is not None

    def _drop_partitions(
        self,
        principal: Principal,
        ds: Row[Any],
        cutoff: datetime,
        held: set[str],
        imported: bool,
    ) -> tuple[int, int]:
        """PostgreSQL: drop each day partition wholly past retention; returns (records, tables).

        A partition holding a record of a held subject is kept (its other rows are deleted one
        by one after this). Each drop and its audit entry share one transaction. A drop that
        cannot get its lock in time is left for the row-by-row delete that follows.
        """
        parts = self.db.partitions
        if not parts.enabled:
            return 0, 0
        with self.db.read() as conn:
            expired = parts.expired(conn, ds.id, cutoff)
        records_dropped = tables = 0
        for part in expired:
            try:
                with self.db.write() as conn:
                    if parts.holds_any(conn, part, held):
                        continue
                    count = parts.count(conn, part)
                    if imported:
                        remove_import_links(conn, parts.record_ids(part))
                    parts.drop(conn, part)
                    self.record(
                        conn,
                        principal,
                        AuditAction.RETENTION_SWEEP,
                        dataset=ds.name,
                        details={
                            "step": "partition",
                            "day": part.start.date().isoformat(),
                            "records": count,
                        },
                    )
            except OperationalError:
                _log.warning("partition %s busy; its rows are deleted one by one", part.name)
                continue
            records_dropped += count
            tables += 1
        return records_dropped, tables

    @staticmethod
    def _delete_keys(conn: Connection, dataset_id: str, expired_day: int, held: set[str]) -> int:
        where: list[Any] = [
            subject_keys.c.dataset_id == dataset_id,
            subject_keys.c.epoch < expired_day,
        ]
        if held:
            where.append(not_(subject_keys.c.subject.in_(held)))
        return int(conn.execute(delete(subject_keys).where(*where)).rowcount)

    @staticmethod
    def _expired(dataset_id: str, cutoff: datetime, excluded: set[str]) -> list[Any]:
        where: list[Any] = [records.c.dataset_id == dataset_id, records.c.event_time < cutoff]
        if excluded:
            where.append(not_(records.c.subject.in_(excluded)))
        return where

    @staticmethod
    def _count_expired(
        conn: Connection, dataset_id: str, cutoff: datetime, held: set[str] | None
    ) -> int:
        """Expired records a hold keeps: all of them (``held`` None) or those of held subjects."""
        where: list[Any] = [records.c.dataset_id == dataset_id, records.c.event_time < cutoff]
        if held is not None:
            if not held:
                return 0
            where.append(records.c.subject.in_(held))
        return int(conn.execute(select(func.count()).where(*where)).scalar_one())
