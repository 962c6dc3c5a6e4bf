"""Screenshots: refused by the same collection rules as events, regions blacked out, then
encrypted in segments (c2sp.org/chunked-encryption) under a fresh per-blob key sealed by the
subject-epoch key; read back only by readers for an allowed purpose, audited.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import insert, select

from vault.audit import AuditAction
from vault.crypto import chunked
from vault.crypto.aead import new_key, open_sealed, seal
from vault.crypto.context import encode_context
from vault.domain.collection import Accepted, decide_collection
from vault.domain.events import TelemetryEvent, epoch_of
from vault.domain.principal import Principal, Role
from vault.domain.screenshots import Region, ScreenshotError, black_out
from vault.errors import (
    DecryptionError,
    Forbidden,
    KeyDestroyed,
    PayloadTooLarge,
    ValidationFailed,
)
from vault.services.base import ServiceBase
from vault.services.ingest import collection_policy, consent_states
from vault.services.validation import pydantic_details
from vault.storage.tables import blobs, datasets

__all__ = ["BlobMeta", "BlobService"]

_KEY_LABEL = b"tvault/blob-key/v1"
_BLOB_LABEL = b"tvault/blob/v1"


class BlobMeta(BaseModel):
    """What a collector says about a screenshot (query parameters of the upload)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str = Field(min_length=1, max_length=256)
    time: str = Field(max_length=64)
    app: str | None = Field(default=None, max_length=2048)
    url: str | None = Field(default=None, max_length=8192)
    window_title: str | None = Field(default=None, max_length=2048)
    private_window: bool = False
    device_owner: str = Field(default="corporate", pattern="^(corporate|personal)$")
    jurisdiction: str | None = Field(default=None, pattern="^[A-Z]{2}$")
    regions: list[dict[str, int]] = Field(default_factory=list, max_length=256)


class BlobService(ServiceBase):
    """Upload and download of encrypted screenshots."""

    def __init__(self, deps: Any, *, max_bytes: int) -> None:
        super().__init__(deps)
        self._max_bytes = max_bytes

    @staticmethod
    def _contexts(
        ds_id: str, blob_id: str, subject: str, epoch: int, sek_id: bytes
    ) -> tuple[bytes, bytes]:
        fields = (ds_id, bytes.fromhex(blob_id), subject, epoch, sek_id)
        return encode_context(_KEY_LABEL, *fields), encode_context(_BLOB_LABEL, *fields)

    def _event(self, meta: BlobMeta) -> TelemetryEvent:
        body: dict[str, Any] = {
            "subject": meta.subject,
            "time": meta.time,
            "kind": "screenshot",
            "device": {"owner": meta.device_owner},
            "private_window": meta.private_window,
            "data": {"blob_id": "upload", "regions": meta.regions},
        }
        for name in ("app", "url", "window_title", "jurisdiction"):
            value = getattr(meta, name)
            if value is not None:
                body[name] = value
        try:
            return TelemetryEvent.model_validate(body)
        except ValidationError as exc:
            raise ValidationFailed(
                "invalid screenshot metadata", details=pydantic_details(exc)
            ) from exc

    def upload(
        self, principal: Principal, dataset: str, raw_meta: Any, image: bytes
    ) -> dict[str, Any]:
        """Store a screenshot, or refuse it with the collection rule's reason (403)."""
        action = AuditAction.BLOB_UPLOAD
        self.require(principal, action, [Role.COLLECTOR], dataset=dataset)
        ds = self.visible_dataset(principal, dataset, action)
        if len(image) > self._max_bytes:
            raise PayloadTooLarge(f"screenshot over {self._max_bytes} bytes")
        try:
            meta = BlobMeta.model_validate(raw_meta)
        except ValidationError as exc:
            raise ValidationFailed(
                "invalid screenshot metadata", details=pydantic_details(exc)
            ) from exc
        event = self._event(meta)
        regions = [Region(r["x"], r["y"], r["w"], r["h"]) for r in event.data.get("regions", [])]
        try:
            cleaned = black_out(image, regions)
        except ScreenshotError as exc:
            raise ValidationFailed(str(exc)) from exc
        now = self.deps.now()
        subject = self.keyring.subject_pseudonym(ds.id, meta.subject)
        blob_id = uuid.uuid4().hex
        with self.db.write() as conn:
            kek_version = conn.execute(
                select(datasets.c.kek_version)
                .where(datasets.c.id == ds.id)
                .with_for_update(read=True)
            ).scalar_one()
            consent = consent_states(conn, ds.id, {subject}).get(subject)
            decision = decide_collection(
                event, collection_policy(ds, self.deps.limits.clock_skew_seconds), consent, now
            )
            if not isinstance(decision, Accepted):
                self.record(
                    conn,
                    principal,
                    action,
                    dataset=dataset,
                    reason=decision.reason,
                    details={"stored": False},
                )
                refused = Forbidden(f"screenshot refused: {decision.reason}")
                refused.details = {"reason": decision.reason}
                raise refused
            epoch = epoch_of(event.time)
            sek = self.keyring.seks_for_write(conn, ds.id, kek_version, {(subject, epoch): 1})[
                (subject, epoch)
            ]
            key_ctx, blob_ctx = self._contexts(ds.id, blob_id, subject, epoch, sek.id)
            blob_key = new_key()
            conn.execute(
                insert(blobs).values(
                    id=blob_id,
                    dataset_id=ds.id,
                    subject=subject,
                    epoch=epoch,
                    taken_at=event.time,
                    content_type="image/png",
                    size=len(cleaned),
                    regions=len(regions),
                    sek_id=sek.id,
                    sealed_key=seal(sek.key, blob_key, key_ctx),
                    ciphertext=chunked.encrypt(blob_key, cleaned, blob_ctx),
                    stored_at=now,
                )
            )
            self.record(
                conn,
                principal,
                action,
                dataset=dataset,
                details={"blob": blob_id, "bytes": len(cleaned), "regions": len(regions)},
            )
        return {"id": blob_id, "status": "stored", "size": len(cleaned), "regions": len(regions)}

    def download(
        self, principal: Principal, dataset: str, blob_id: str, purpose: str | None
    ) -> tuple[str, bytes]:
        """The decrypted screenshot (content type, bytes) for an allowed purpose."""
        action = AuditAction.BLOB_READ
        ds, purpose_ok = self.authorize_read(principal, dataset, purpose, action)
        row = self.one_object(principal, action, ds, blobs, object_id=blob_id, purpose=purpose_ok)
        try:
            with self.db.read() as conn:
                sek = self.keyring.sek_for_read(conn, bytes(row.sek_id))
            key_ctx, blob_ctx = self._contexts(ds.id, row.id, row.subject, row.epoch, sek.id)
            blob_key = open_sealed(sek.key, bytes(row.sealed_key), key_ctx)
            image = chunked.decrypt(blob_key, bytes(row.ciphertext), blob_ctx)
        except (DecryptionError, KeyDestroyed) as exc:
            self.integrity_failure(principal, action, ds, purpose_ok, exc)
        self.record_alone(
            principal,
            action,
            dataset=dataset,
            purpose=purpose_ok,
            details={"blob": blob_id, "bytes": len(image)},
        )
        return row.content_type, image
