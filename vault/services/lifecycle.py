"""Erasure and KEK rotation: data that should be gone is gone, backups included (DESIGN.md §3).

* Erasure destroys every subject-epoch key of a person in every dataset, deletes their records,
  leaves record tombstones (reads answer 410), withdraws consent (ingest refuses them until
  consent is given again) and issues a signed deletion certificate.
* A backup taken before the erasure still holds the destroyed keys, wrapped by the dataset KEK.
  Rotating the KEK (rewrap surviving keys) and destroying the old version in the provider makes
  those copies useless. Until then the dataset's shred is *pending*; the time left is the shred
  horizon, reported in the key inventory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, or_, select, update

from vault.audit import AuditAction
from vault.audit.chain import canonical_json
from vault.domain.access import Denial, Denied
from vault.domain.principal import Principal, Role
from vault.domain.redaction import KeystrokeState
from vault.errors import Conflict, NotFound, ValidationFailed
from vault.services.base import Deps, ServiceBase
from vault.storage.import_links import remove_import_links
from vault.storage.tables import (
    blobs,
    consents,
    datasets,
    erasures,
    export_subjects,
    exports,
    legal_holds,
    record_tombstones,
    records,
)

__all__ = ["CERTIFICATE_KEY_REF", "LifecycleService"]

CERTIFICATE_KEY_REF = "deletion-certificates"
CERTIFICATE_FORMAT = "tvault-deletion-certificate-v1"
REWRAP_BATCH = 500
_TOMBSTONE_BATCH = 1000


class LifecycleService(ServiceBase):
    """Erase people; rotate dataset KEKs so erasures reach backups."""

    def __init__(self, deps: Deps, keystrokes: KeystrokeState | None = None) -> None:
        super().__init__(deps)
        self._keystrokes = keystrokes

    def forget_keystrokes(self, pseudonym: str) -> None:
        """Drop the subject's keystroke tails held in this process (docs/redaction.md)."""
        if self._keystrokes is not None:
            self._keystrokes.forget(pseudonym)

    # -- erasure --------------------------------------------------------------------------------

    def erase(
        self, principal: Principal, subject: str, *, only_dataset: str | None = None
    ) -> dict[str, Any]:
        """Crypto-shred ``subject`` in every dataset the caller may see (or in ``only_dataset``,
        as consent withdrawal does where the dataset says so); a signed certificate."""
        action = AuditAction.SUBJECT_ERASE
        if not 1 <= len(subject) <= 256 or not subject.isprintable():
            raise ValidationFailed("subject must be 1..256 printable characters")
        is_self = principal.has(Role.SUBJECT) and principal.sub == subject
        if not (principal.has(Role.PRIVACY_OFFICER) or is_self):
            self.require(principal, action, [Role.PRIVACY_OFFICER])
        now = self.deps.now()
        erasure_id = uuid.uuid4().hex
        person = self.keyring.person_hash(subject)
        destroyed: list[dict[str, Any]] = []
        forgotten: list[str] = []
        with self.db.write() as conn:
            # FOR UPDATE waits for in-flight ingests (they hold FOR SHARE) and keeps new ones
            # out until the erasure commits, so nothing of this person is stored behind it.
            rows = conn.execute(select(datasets).order_by(datasets.c.name).with_for_update()).all()
            for ds in rows:
                if not principal.may_see_dataset(ds.name):
                    continue
                if only_dataset is not None and ds.name != only_dataset:
                    continue
                pseudonym = self.keyring.subject_pseudonym(ds.id, subject)
                forgotten.append(pseudonym)
                self._withdraw(conn, ds.id, pseudonym, now)
                if self._held(conn, ds.id, pseudonym):
                    # A legal hold outranks the erasure request (GDPR Art. 17(3)(e)): keep the
                    # data, stop collection, and say so in the certificate.
                    destroyed.append({"dataset": ds.name, "keys": 0, "records": 0, "held": True})
                    continue
                keys = self.keyring.destroy_subject_keys(conn, ds.id, pseudonym)
                count = self._delete_records(conn, ds.id, pseudonym, erasure_id, now)
                count += self._delete_blobs(conn, ds.id, pseudonym, erasure_id, now)
                if keys or count:
                    conn.execute(
                        update(datasets)
                        .where(datasets.c.id == ds.id, datasets.c.shred_pending_since.is_(None))
                        .values(shred_pending_since=now)
                    )
                destroyed.append(
                    {
                        "dataset": ds.name,
                        "keys": keys,
                        "records": count,
                        # Exports made before hold copies outside the vault: name them so the
                        # people who hold those copies (and models trained on them) can act.
                        "exports": self._exports_of(conn, ds.id, pseudonym),
                        "unfinished_exports": _unfinished_exports(conn, ds.id, person),
                    }
                )
            certificate = self._certificate(erasure_id, person, principal, now, destroyed)
            conn.execute(
                insert(erasures).values(
                    id=erasure_id,
                    subject_hash=person,
                    requested_by=self.actor(principal),
                    at=now,
                    certificate=canonical_json(certificate),
                )
            )
            self.record(
                conn,
                principal,
                action,
                details={
                    "erasure": erasure_id,
                    "subject": person,
                    "by_self": is_self,
                    "datasets": destroyed,
                    "certificate_sha256": hashlib.sha256(
                        canonical_json(certificate).encode("ascii")
                    ).hexdigest(),
                },
            )
        for pseudonym in forgotten:  # keystroke tails in this process's memory, too
            self.forget_keystrokes(pseudonym)
        return certificate

    def _delete_records(
        self, conn: Connection, dataset_id: str, subject: str, erasure_id: str, now: Any
    ) -> int:
        total = 0
        while True:
            ids = [
                r.id
                for r in conn.execute(
                    select(records.c.id)
                    .where(records.c.dataset_id == dataset_id, records.c.subject == subject)
                    .limit(_TOMBSTONE_BATCH)
                )
            ]
            if not ids:
                return total
            conn.execute(
                insert(record_tombstones),
                [
                    {
                        "id": rid,
                        "dataset_id": dataset_id,
                        "erased_at": now,
                        "erasure_id": erasure_id,
                    }
                    for rid in ids
                ],
            )
            conn.execute(
                delete(records).where(records.c.dataset_id == dataset_id, records.c.id.in_(ids))
            )
            # Which source row of an import became which record links the person's rows too.
            remove_import_links(conn, ids)
            total += len(ids)

    @staticmethod
    def _exports_of(conn: Connection, dataset_id: str, subject: str) -> list[str]:
        return [
            r.id
            for r in conn.execute(
                select(exports.c.id)
                .join(export_subjects, export_subjects.c.export_id == exports.c.id)
                .where(exports.c.dataset_id == dataset_id, export_subjects.c.subject == subject)
                .order_by(exports.c.started_at)
            )
        ]

    @staticmethod
    def _held(conn: Connection, dataset_id: str, subject: str) -> bool:
        return (
            conn.execute(
                select(legal_holds.c.id).where(
                    legal_holds.c.dataset_id == dataset_id,
                    or_(legal_holds.c.subject.is_(None), legal_holds.c.subject == subject),
                )
            ).first()
            is not None
        )

    @staticmethod
    def _delete_blobs(
        conn: Connection, dataset_id: str, subject: str, erasure_id: str, now: Any
    ) -> int:
        ids = [
            r.id
            for r in conn.execute(
                select(blobs.c.id).where(
                    blobs.c.dataset_id == dataset_id, blobs.c.subject == subject
                )
            )
        ]
        if ids:
            conn.execute(
                insert(record_tombstones),
                [
                    {
                        "id": bid,
                        "dataset_id": dataset_id,
                        "erased_at": now,
                        "erasure_id": erasure_id,
                    }
                    for bid in ids
                ],
            )
            conn.execute(delete(blobs).where(blobs.c.id.in_(ids)))
        return len(ids)

    @staticmethod
    def _withdraw(conn: Connection, dataset_id: str, subject: str, now: Any) -> None:
        where = (consents.c.dataset_id == dataset_id, consents.c.subject == subject)
        if conn.execute(select(consents.c.state).where(*where)).first() is None:
            conn.execute(
                insert(consents).values(
                    dataset_id=dataset_id, subject=subject, state="withdrawn", updated_at=now
                )
            )
        else:
            conn.execute(update(consents).where(*where).values(state="withdrawn", updated_at=now))

    def _certificate(
        self,
        erasure_id: str,
        person: str,
        principal: Principal,
        now: Any,
        destroyed: list[dict[str, Any]],
    ) -> dict[str, Any]:
        body = {
            "format": CERTIFICATE_FORMAT,
            "erasure": erasure_id,
            "subject": person,
            "requested_by": self.actor(principal),
            "requested_via": principal.via,
            "at": now.isoformat(),
            "destroyed": destroyed,
            "note": "keys destroyed in the live vault; backups are covered once each dataset's "
            "KEK is rotated with the old version destroyed (see shred horizon)",
        }
        message = canonical_json(body).encode("ascii")
        provider = self.keyring.provider
        return {
            **body,
            "public_key": provider.public_key(CERTIFICATE_KEY_REF).hex(),
            "signature": base64.b64encode(provider.sign(CERTIFICATE_KEY_REF, message)).decode(),
        }

    def certificate(self, principal: Principal, erasure_id: str) -> dict[str, Any]:
        """A stored deletion certificate (privacy officer, auditor, or the erased person)."""
        action = AuditAction.ERASURE_READ
        with self.db.read() as conn:
            row = conn.execute(select(erasures).where(erasures.c.id == erasure_id)).one_or_none()
        own = (
            row is not None
            and principal.has(Role.SUBJECT)
            and self.keyring.person_hash(principal.sub) == row.subject_hash
        )
        if not own:
            self.require(principal, action, [Role.PRIVACY_OFFICER, Role.AUDITOR])
        if row is None:
            raise NotFound("not found")
        doc: dict[str, Any] = json.loads(row.certificate)
        named = {d["dataset"] for d in doc.get("destroyed", [])}
        if not own and principal.datasets is not None and not named <= principal.datasets:
            self.deny(
                principal,
                action,
                Denied("certificate names datasets outside the grant", Denial.NOT_FOUND),
            )
        with self.db.write() as conn:
            self.record(conn, principal, action, details={"erasure": erasure_id, "own": own})
        return doc

    # -- rotation -------------------------------------------------------------------------------

    def rotate(self, principal: Principal, dataset: str, *, destroy_old: bool) -> dict[str, Any]:
        """New KEK version, surviving SEKs rewrapped in batches, old versions optionally destroyed.

        Fail closed and resumable: every step that changes keys commits with its audit entry;
        old versions are marked for destruction (and that is audited) before the provider
        destroys them, and a rotation interrupted after the mark finishes on the next run.
        Ingest and reads go on meanwhile (new SEKs use the new version as soon as it exists).
        """
        action = AuditAction.KEYS_ROTATE
        self.require(principal, action, [Role.ADMIN], dataset=dataset)
        ds = self.visible_dataset(principal, dataset, action)
        with self.db.write() as conn:
            version = self.keyring.start_rotation(conn, ds.id)
            self.record(
                conn,
                principal,
                action,
                dataset=dataset,
                details={"step": "new_version", "new_version": version},
            )
        rewrapped = 0
        while True:
            with self.db.write() as conn:
                done = self.keyring.rewrap_batch(conn, ds.id, version, REWRAP_BATCH)
            rewrapped += done
            if done < REWRAP_BATCH:
                break
        marked: list[int] = []
        with self.db.write() as conn:
            # Lock the dataset row so no ingest makes an SEK under an old version meanwhile.
            current = conn.execute(
                select(datasets.c.kek_version).where(datasets.c.id == ds.id).with_for_update()
            ).scalar_one()
            if current != version:
                raise Conflict("another rotation of this dataset ran at the same time")
            rewrapped += self.keyring.rewrap_batch(conn, ds.id, version, 1_000_000)
            if destroy_old:
                marked = self.keyring.mark_old_keks(conn, ds.id, version)
            self.record(
                conn,
                principal,
                action,
                dataset=dataset,
                details={
                    "step": "rewrapped",
                    "new_version": version,
                    "rewrapped": rewrapped,
                    "destroying_versions": marked,
                },
            )
        destroyed = self._finish_destruction(principal, ds.id, dataset) if destroy_old else []
        return {
            "dataset": dataset,
            "kek_version": version,
            "rewrapped_keys": rewrapped,
            "destroyed_versions": destroyed,
        }

    def _finish_destruction(self, principal: Principal, dataset_id: str, name: str) -> list[int]:
        with self.db.read() as conn:
            marked = self.keyring.marked_keks(conn, dataset_id)
        self.keyring.destroy_marked(dataset_id, marked)
        with self.db.write() as conn:
            self.keyring.confirm_destroyed(conn, dataset_id, marked)
            conn.execute(
                update(datasets).where(datasets.c.id == dataset_id).values(shred_pending_since=None)
            )
            self.record(
                conn,
                principal,
                AuditAction.KEYS_DESTROY,
                dataset=name,
                details={"destroyed_versions": marked},
            )
        return marked

    def rotate_due(self, principal: Principal, interval: timedelta) -> list[dict[str, Any]]:
        """Rotate, destroying old versions, every dataset whose shred horizon has come."""
        due_before = self.deps.now() - interval
        with self.db.read() as conn:
            names = [
                r.name
                for r in conn.execute(
                    select(datasets.c.name).where(
                        datasets.c.shred_pending_since.is_not(None),
                        datasets.c.shred_pending_since <= due_before,
                    )
                )
            ]
        return [self.rotate(principal, name, destroy_old=True) for name in names]


def _unfinished_exports(conn: Connection, dataset_id: str, person: str) -> list[str]:
    """Exports of the dataset with no manifest (their process was killed before it could
    write one, or they are still running) whose subject filter does not leave ``person`` (a
    person hash) out: what they hold is not known, so they may hold the person's records."""
    out = []
    for row in conn.execute(
        select(exports.c.id, exports.c.filters)
        .where(exports.c.dataset_id == dataset_id, exports.c.ids_sha256.is_(None))
        .order_by(exports.c.started_at)
    ):
        subjects = json.loads(row.filters).get("subjects") or []
        if not subjects or person in subjects:
            out.append(row.id)
    return out
