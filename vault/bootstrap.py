"""The composition root: Settings in, a ready vault (database, keys, audit, services) out.

Nothing is created at import time; faces call :func:`build_vault` once and pass the result on.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vault.audit import AuditLog
from vault.config import Settings
from vault.crypto.keycache import KeyCache
from vault.domain.purposes import ForbiddenPurposes
from vault.domain.redaction import KeystrokeState
from vault.keyring import Keyring
from vault.plugins import load_name_detector
from vault.providers import KeyProvider, open_provider
from vault.services.audit_service import AuditService
from vault.services.auth import AuthService
from vault.services.base import Deps, Limits
from vault.services.blobs import BlobService
from vault.services.consent import ConsentService
from vault.services.cpus import cpus
from vault.services.datasets import DatasetService
from vault.services.export import ExportService
from vault.services.health import HealthService
from vault.services.importer import ImportService
from vault.services.ingest import IngestService
from vault.services.keys import KeyService
from vault.services.lifecycle import LifecycleService
from vault.services.maintenance import Maintenance
from vault.services.reads import ReadService
from vault.services.redaction_job import RedactionJobService
from vault.services.redaction_modes import RedactionSetup
from vault.services.restore import RestoreService
from vault.services.retention import RetentionService
from vault.services.subjects import SubjectService
from vault.storage import Database, upgrade_to_head
from vault.tokens import TokenSettings, TokenVerifier, ensure_dev_key

__all__ = ["DEV_KEY_NAME", "Vault", "build_vault"]

log = logging.getLogger("vault")

DEV_KEY_NAME = "dev-token-signing.pem"


@dataclass(frozen=True, slots=True)
class Vault:
    """Every service of one running vault, sharing one database and one key provider."""

    settings: Settings
    db: Database
    provider: KeyProvider
    auth: AuthService
    datasets: DatasetService
    ingest: IngestService
    reads: ReadService
    consent: ConsentService
    audit: AuditService
    keys: KeyService
    health: HealthService
    subjects: SubjectService
    lifecycle: LifecycleService
    blobs: BlobService
    exports: ExportService
    imports: ImportService
    retention: RetentionService
    restore: RestoreService
    maintenance: Maintenance
    redaction: RedactionJobService

    def close(self) -> None:
        """Stop background work and release database connections."""
        self.maintenance.stop()
        self.exports.close()
        self.db.dispose()


def _export_workers(settings: Settings) -> int:
    """The export worker pool's size: as configured, else one less than the CPUs (at most 2)."""
    if settings.export_workers is not None:
        return settings.export_workers
    return max(0, min(2, cpus() - 1))


def _utcnow() -> datetime:
    return datetime.now(UTC)


_gc_tuned = threading.Event()


def _tune_gc() -> None:
    """Once per process, after the first vault is built: what is alive then (the ORM's
    metadata, the schemas, the rule tables, the vault itself) is moved out of the collector's
    view (``gc.freeze``), so the collections that every ingested batch triggers (each event
    allocates a few dozen short-lived containers) stop walking it. The thresholds are left as
    they are: a larger young generation was faster still but let an export's transient garbage
    grow with its size (bench/README.md, export-memory)."""
    if _gc_tuned.is_set():
        return
    _gc_tuned.set()
    gc.collect()
    gc.freeze()


def build_vault(settings: Settings, *, now: Callable[[], datetime] = _utcnow) -> Vault:
    """Open (creating on first run) the database, key provider and dev key; migrate; wire."""
    settings.home.mkdir(parents=True, exist_ok=True)
    # Loaded before anything is opened: a configured detector that cannot load stops the start.
    names = load_name_detector(settings.ner)
    db = Database(settings.effective_database_url)
    upgrade_to_head(db)
    passphrase = settings.master_passphrase
    provider = open_provider(
        settings.effective_key_provider,
        passphrase=passphrase.get_secret_value() if passphrase else None,
        scrypt_n=settings.scrypt_n,
        cache_size=settings.key_cache_size,
        cache_ttl_seconds=settings.key_cache_ttl_seconds,
    )
    keyring = Keyring(
        provider,
        KeyCache(settings.key_cache_size, settings.key_cache_ttl_seconds, time.monotonic),
        max_wraps=settings.sek_max_wraps,
        now=now,
    )
    with db.write() as conn:
        keyring.load_pseudonym_key(conn)
    dev_key = None
    if settings.dev_tokens:
        dev_key = settings.keys_dir / DEV_KEY_NAME
        if ensure_dev_key(dev_key):
            log.warning("created a development token signing key at %s", dev_key)
    verifier = TokenVerifier(
        TokenSettings(
            algorithms=settings.jwt_algorithms,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway_seconds=settings.jwt_leeway_seconds,
            max_ttl_seconds=settings.jwt_max_ttl_seconds,
            public_key_files=settings.jwt_public_key_files,
            jwks=settings.jwt_jwks,
            dev_key_path=dev_key,
        ),
        now=lambda: now().timestamp(),
    )
    deps = Deps(
        db=db,
        keyring=keyring,
        audit=AuditLog(provider, now),
        now=now,
        forbidden=ForbiddenPurposes(settings.forbidden_purposes_extra),
        limits=Limits(
            max_batch_events=settings.max_batch_events,
            max_page_size=settings.max_page_size,
            clock_skew_seconds=settings.clock_skew_seconds,
        ),
    )
    # Keystroke tails between batches: this process's memory only (docs/redaction.md); erasure
    # and consent withdrawal forget a subject's tails.
    redaction = RedactionSetup(names=names, keystrokes=KeystrokeState(clock=time.monotonic))
    lifecycle = LifecycleService(deps, redaction.keystrokes)
    reads = ReadService(deps)
    ingest = IngestService(deps, redaction)
    retention = RetentionService(deps)
    shred_interval = timedelta(hours=settings.shred_interval_hours)
    vault = Vault(
        settings=settings,
        db=db,
        provider=provider,
        auth=AuthService(
            deps,
            verifier,
            dev_key=dev_key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            max_ttl_seconds=settings.jwt_max_ttl_seconds,
        ),
        datasets=DatasetService(deps),
        ingest=ingest,
        reads=reads,
        consent=ConsentService(deps, lifecycle),
        audit=AuditService(deps),
        keys=KeyService(deps, shred_interval=shred_interval),
        health=HealthService(deps),
        subjects=SubjectService(deps),
        lifecycle=lifecycle,
        blobs=BlobService(deps, max_bytes=settings.max_blob_bytes),
        exports=ExportService(deps, reads, workers=_export_workers(settings)),
        imports=ImportService(deps, ingest, reads, helper=settings.import_helper),
        retention=retention,
        restore=RestoreService(deps),
        maintenance=Maintenance(
            db,
            retention,
            lifecycle,
            shred_interval=shred_interval,
            every_seconds=settings.maintenance_interval_seconds,
        ),
        redaction=RedactionJobService(deps, redaction),
    )
    _tune_gc()  # the first vault of the process, built: what stays alive is frozen
    return vault
