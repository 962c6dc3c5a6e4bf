"""Restore from a backup that keeps every erasure made since (DESIGN.md §3, docs/restore.md).

Records from the backup, keys from the live vault. A backup row is copied back only when it is
missing live, belongs to a dataset that still exists live, was not erased (no tombstone, no
consent withdrawal since it was stored), is not past retention, and its subject-epoch key still
exists live and opens it. The row is copied as it is: the envelope stays sealed and is opened by
the live key of the same id (rewrapped by KEK rotations since the backup, never re-created), so
nothing the vault destroyed can come back through a restore.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Row, Table, insert, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from vault.audit import AuditAction, Outcome
from vault.crypto import chunked
from vault.crypto.aead import open_sealed
from vault.domain.events import epoch_of
from vault.domain.principal import Principal, Role
from vault.errors import BadRequest, ConfigurationError, Conflict, IntegrityError, KeyError_
from vault.services.base import Deps, ServiceBase
from vault.services.blobs import BlobService
from vault.services.reads import ReadService
from vault.storage import Database
from vault.storage.migrate import MIGRATIONS_DIR
from vault.storage.tables import (
    blobs,
    consents,
    datasets,
    legal_holds,
    record_tombstones,
    records,
    subject_keys,
    vault_meta,
)

__all__ = ["REFUSAL_REASONS", "RestoreService"]

RECORD_BATCH = 500
BLOB_BATCH = 50  # screenshots are large: fewer per transaction
_LOCK = "tvault-restore"

ERASED = "erased"
CONSENT_WITHDRAWN = "consent_withdrawn"
EXPIRED = "expired"
KEY_DESTROYED = "key_destroyed"
UNDECRYPTABLE = "undecryptable"
#: Why a backup row is not copied back, in the order they are checked.
REFUSAL_REASONS = (ERASED, CONSENT_WITHDRAWN, EXPIRED, KEY_DESTROYED, UNDECRYPTABLE)


@dataclass(frozen=True, slots=True)
class _Kind:
    """One restorable table: records or blobs."""

    name: str
    table: Table
    time: str  # the column retention counts from
    batch: int
    verify: Callable[[Connection, Row[Any], Row[Any]], None]


@dataclass(frozen=True, slots=True)
class _Live:
    """What the live vault says about one batch, read in the transaction that copies it."""

    tombstoned: set[str]
    withdrawn: dict[str, datetime]  # subject -> when consent was withdrawn
    holds: set[str | None]  # None: the whole dataset is held
    keys: set[bytes]
    cutoff: datetime


@dataclass(frozen=True, slots=True)
class _Backup:
    db: Database
    label: str
    revision: str
    has_blobs: bool
    same_vault: bool


class RestoreService(ServiceBase):
    """Bring back from a backup what the live vault lost, never what it destroyed."""

    def __init__(self, deps: Deps) -> None:
        super().__init__(deps)
        self._reads = ReadService(deps)

    def restore(self, principal: Principal, backup_url: str) -> dict[str, Any]:
        """Copy missing records and blobs back from the database at ``backup_url`` (admin).

        Every transaction that writes carries its audit entry (fail closed). Idempotent: rows
        already present live are left alone, so a second run restores nothing.
        """
        action = AuditAction.RESTORE
        self.require(principal, action, [Role.ADMIN])
        with self.db.exclusive(_LOCK) as mine:
            if not mine:
                raise Conflict("another restore is running")
            with self._open_backup(principal, backup_url) as backup:
                return self._restore(principal, backup)

    # -- the backup -----------------------------------------------------------------------------

    def _refuse(self, principal: Principal, reason: str) -> NoReturn:
        with self.db.write() as conn:
            self.record(conn, principal, AuditAction.RESTORE, Outcome.FAILED, reason=reason)
        raise BadRequest(f"cannot restore: {reason}")

    @contextmanager
    def _open_backup(self, principal: Principal, backup_url: str) -> Iterator[_Backup]:
        try:
            # A bare path names a SQLite file (what ``tvault restore BACKUP`` is usually given).
            raw = backup_url if "://" in backup_url else f"sqlite:///{Path(backup_url).resolve()}"
            url = make_url(raw)
        except (ArgumentError, ValueError, OSError):
            self._refuse(principal, "the backup is not a database URL or file path")
        if url.get_backend_name() == "sqlite":
            path = url.database
            # Never let the engine create an empty file where the backup was expected.
            if not path or path == ":memory:" or not Path(path).is_file():
                self._refuse(principal, "no backup database file at that path")
        try:
            backup = Database(url.render_as_string(hide_password=False))
        except ConfigurationError:
            self._refuse(principal, "the backup database URL cannot be used")
        try:
            try:
                with backup.read() as conn:
                    revision, has_blobs = self._check_schema(conn)
                    wrapped = (
                        None
                        if isinstance(revision, _Problem)
                        else conn.execute(
                            select(vault_meta.c.value).where(vault_meta.c.name == "pseudonym_key")
                        ).scalar_one_or_none()
                    )
            except SQLAlchemyError:
                self._refuse(principal, "the backup database cannot be read")
            if isinstance(revision, _Problem):
                self._refuse(principal, revision.reason)
            with self.db.read() as conn:
                live = conn.execute(
                    select(vault_meta.c.value).where(vault_meta.c.name == "pseudonym_key")
                ).scalar_one_or_none()
            yield _Backup(
                db=backup,
                label=url.render_as_string(hide_password=True),
                revision=revision,
                has_blobs=has_blobs,
                same_vault=wrapped is not None and live is not None and bytes(wrapped) == live,
            )
        finally:
            backup.dispose()

    @staticmethod
    def _check_schema(conn: Connection) -> tuple[str | _Problem, bool]:
        """The backup's schema revision (or what is wrong with it) and whether it has blobs."""
        tables = set(inspect(conn).get_table_names())
        if "alembic_version" not in tables:
            return _Problem("not a telemetry-vault database (no schema revision)"), False
        found = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        known = {s.revision for s in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions()}
        if len(found) != 1 or found[0] not in known:
            return _Problem("unknown schema revision (not a backup this version can read)"), False
        # What is read from the backup: dataset ids and names, the pseudonym key, whole rows of
        # records and blobs (blobs came with revision 0004: older backups have none).
        needed = {
            datasets: {"id", "name"},
            vault_meta: {"name", "value"},
            records: {c.name for c in records.columns},
        }
        has_blobs = blobs.name in tables
        if has_blobs:
            needed[blobs] = {c.name for c in blobs.columns}
        for table, columns in needed.items():
            if table.name not in tables:
                return _Problem(f"the backup has no {table.name} table"), False
            if not columns <= {c["name"] for c in inspect(conn).get_columns(table.name)}:
                return _Problem(f"the backup's {table.name} table does not match"), False
        return str(found[0]), has_blobs

    # -- the copy -------------------------------------------------------------------------------

    def _restore(self, principal: Principal, backup: _Backup) -> dict[str, Any]:
        now = self.deps.now()
        kinds = [_Kind("records", records, "event_time", RECORD_BATCH, self._open_record)]
        if backup.has_blobs:
            kinds.append(_Kind("blobs", blobs, "taken_at", BLOB_BATCH, self._open_blob))
        with backup.db.read() as bconn:
            saved = bconn.execute(select(datasets.c.id, datasets.c.name).order_by(datasets.c.name))
            saved_sets = saved.all()
        with self.db.read() as conn:
            live = {r.id: r for r in conn.execute(select(datasets))}
        reports: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        for saved_ds in saved_sets:
            ds = live.get(saved_ds.id)
            if ds is None:
                # Never re-created: its keys went with it, so nothing of it could be read anyway.
                if principal.may_see_dataset(saved_ds.name):
                    skipped.append({"dataset": saved_ds.name, "reason": "not in the live vault"})
                continue
            if not principal.may_see_dataset(ds.name):
                continue
            reports.append(self._restore_dataset(principal, backup, ds, kinds, now))
        refused: Counter[str] = Counter()
        for report in reports:
            refused.update(report["refused"])
        restored = {k.name: sum(r[k.name] for r in reports) for k in kinds}
        result = {
            "backup": backup.label,
            "schema_revision": backup.revision,
            "same_vault": backup.same_vault,
            "restored": restored,
            "refused": dict(sorted(refused.items())),
            "datasets": reports,
            "skipped_datasets": skipped,
        }
        self.record_alone(
            principal,
            AuditAction.RESTORE,
            details={
                "step": "done",
                "backup": _fingerprint(backup.label),
                "schema_revision": backup.revision,
                "same_vault": backup.same_vault,
                "restored": restored,
                "refused": result["refused"],
                "skipped_datasets": len(skipped),
            },
        )
        return result

    def _restore_dataset(
        self,
        principal: Principal,
        backup: _Backup,
        ds: Row[Any],
        kinds: list[_Kind],
        now: datetime,
    ) -> dict[str, Any]:
        report: dict[str, Any] = {"dataset": ds.name}
        present = 0
        refused: Counter[str] = Counter()
        for kind in kinds:
            restored = 0
            table = kind.table
            after = ""
            while True:
                with backup.db.read() as bconn:
                    ids = list(
                        bconn.execute(
                            select(table.c.id)
                            .where(table.c.dataset_id == ds.id, table.c.id > after)
                            .order_by(table.c.id)
                            .limit(kind.batch)
                        ).scalars()
                    )
                if not ids:
                    break
                after = ids[-1]
                with self.db.read() as conn:
                    here = set(
                        conn.execute(
                            select(table.c.id).where(
                                table.c.dataset_id == ds.id, table.c.id.in_(ids)
                            )
                        ).scalars()
                    )
                present += len(here)
                missing = [i for i in ids if i not in here]
                if missing:
                    # Only rows missing live travel from the backup (envelopes can be large).
                    with backup.db.read() as bconn:
                        rows = bconn.execute(
                            select(table)
                            .where(table.c.dataset_id == ds.id, table.c.id.in_(missing))
                            .order_by(table.c.id)
                        ).all()
                    restored += self._copy(principal, ds, kind, rows, now=now, refused=refused)
                if len(ids) < kind.batch:
                    break
            report[kind.name] = restored
        report["already_present"] = present
        report["refused"] = dict(sorted(refused.items()))
        return report

    def _copy(
        self,
        principal: Principal,
        ds: Row[Any],
        kind: _Kind,
        rows: Sequence[Row[Any]],
        *,
        now: datetime,
        refused: Counter[str],
    ) -> int:
        """Check and copy one batch in one audited transaction; returns how many were copied."""
        table = kind.table
        cutoff = now - timedelta(days=ds.retention_days)
        if table is records:  # PostgreSQL: the day partitions the copies go to
            self.db.partitions.ensure(ds.id, (epoch_of(r.event_time) for r in rows))
        with self.db.write() as conn:
            # Like ingest: a share lock on the dataset row, so an erasure (which takes it for
            # update) cannot run between these checks and the commit.
            conn.execute(
                select(datasets.c.id).where(datasets.c.id == ds.id).with_for_update(read=True)
            )
            ids = [r.id for r in rows]
            subjects = sorted({r.subject for r in rows})
            here = set(
                conn.execute(
                    select(table.c.id).where(table.c.dataset_id == ds.id, table.c.id.in_(ids))
                ).scalars()
            )
            tombstoned = set(
                conn.execute(
                    select(record_tombstones.c.id).where(record_tombstones.c.id.in_(ids))
                ).scalars()
            )
            withdrawn = {
                r.subject: r.updated_at
                for r in conn.execute(
                    select(consents.c.subject, consents.c.updated_at).where(
                        consents.c.dataset_id == ds.id,
                        consents.c.state == "withdrawn",
                        consents.c.subject.in_(subjects),
                    )
                )
            }
            holds = {
                r.subject
                for r in conn.execute(
                    select(legal_holds.c.subject).where(legal_holds.c.dataset_id == ds.id)
                )
            }
            # Share-locked so no erasure or sweep deletes one of them before this commits.
            live_keys = {
                bytes(k)
                for k in conn.execute(
                    select(subject_keys.c.id)
                    .where(
                        subject_keys.c.dataset_id == ds.id,
                        subject_keys.c.id.in_(sorted({bytes(r.sek_id) for r in rows})),
                    )
                    .with_for_update(read=True)
                ).scalars()
            }
            live = _Live(tombstoned, withdrawn, holds, live_keys, cutoff)
            good: list[dict[str, Any]] = []
            batch: Counter[str] = Counter()
            for row in rows:
                if row.id in here:
                    continue
                reason = self._refusal(conn, ds, kind, row, live)
                if reason is None:
                    good.append(dict(row._mapping))
                else:
                    batch[reason] += 1
            if good:
                conn.execute(insert(table), good)
            if good or batch:
                self.record(
                    conn,
                    principal,
                    AuditAction.RESTORE,
                    dataset=ds.name,
                    details={
                        "step": kind.name,
                        "restored": len(good),
                        "refused": dict(sorted(batch.items())),
                    },
                )
        refused.update(batch)
        return len(good)

    def _refusal(
        self,
        conn: Connection,
        ds: Row[Any],
        kind: _Kind,
        row: Row[Any],
        live: _Live,
    ) -> str | None:
        """Why ``row`` must stay out of the live vault, or None when it may come back."""
        if row.id in live.tombstoned:
            return ERASED
        since = live.withdrawn.get(row.subject)
        if since is not None and since >= row.stored_at:
            return CONSENT_WITHDRAWN
        held = None in live.holds or row.subject in live.holds
        if row._mapping[kind.time] < live.cutoff and not held:
            return EXPIRED
        if bytes(row.sek_id) not in live.keys:
            return KEY_DESTROYED
        try:
            kind.verify(conn, ds, row)
        except (IntegrityError, KeyError_):
            return UNDECRYPTABLE
        return None

    def _open_record(self, conn: Connection, ds: Row[Any], row: Row[Any]) -> None:
        # The read path itself: live SEK, envelope, and clear columns agreeing with the body.
        self._reads.open_row(conn, ds, row)

    def _open_blob(self, conn: Connection, ds: Row[Any], row: Row[Any]) -> None:
        sek = self.keyring.sek_for_read(conn, bytes(row.sek_id))
        # The one definition of a blob's contexts (a static helper of the blob service).
        key_ctx, blob_ctx = BlobService._contexts(ds.id, row.id, row.subject, row.epoch, sek.id)
        blob_key = open_sealed(sek.key, bytes(row.sealed_key), key_ctx)
        chunked.decrypt(blob_key, bytes(row.ciphertext), blob_ctx)


@dataclass(frozen=True, slots=True)
class _Problem:
    reason: str


def _fingerprint(label: str) -> str:
    """What the audit log keeps of the backup's location: no paths, hosts or names."""
    return hashlib.sha256(json.dumps(label).encode()).hexdigest()[:16]
