"""Ingest: the vault's service layer against the floor of the same work done minimally.

``floor``
    Per event: compact JSON of the stored form, a fresh 256-bit DEK, AES-256-GCM of the JSON
    under the DEK, the DEK sealed by AES-256-GCM under the subject-day key, a row with exactly the
    columns of vault ``records``; per batch: one SQLAlchemy Core ``executemany`` insert in one
    transaction, through ``vault.storage.Database`` (so SQLite gets WAL, ``synchronous=FULL``
    and ``BEGIN IMMEDIATE`` exactly as the vault does), into a table created from
    ``vault.storage.tables`` in a database of its own.

``service``
    ``vault.ingest.ingest(collector, dataset, batch)`` on a vault from ``build_vault`` (fresh
    home, fresh database, local keyring sealed by a passphrase): validation, consent lookup,
    collection rules, redaction, pseudonyms, subject-epoch key bookkeeping, sealing, insert and
    the hash-chained audit entry, all in the one transaction the vault uses.

Both seal the same events (``bench.workload``), one warm-up batch untimed (it makes the
subject-day keys and fills caches), then the timed batches.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr
from sqlalchemy import func, insert, select

from bench.backends import TrialPlace
from bench.runner import Case, Goal, Mode, Suite
from bench.workload import TEXT_BYTES, Workload, key_run_batches
from vault.bootstrap import Vault, build_vault
from vault.config import Settings
from vault.domain.events import TelemetryEvent, epoch_of
from vault.domain.principal import Principal, Role
from vault.storage import Database
from vault.storage.tables import datasets, metadata, records

__all__ = ["FloorTrial", "Prepared", "ServiceTrial", "SubjectDayKey", "make_workload", "suites"]

DATASET = "bench-ingest"
SUBJECTS = 8
GOAL = 0.5
ADMIN = Principal(sub="bench-admin", roles=frozenset({Role.ADMIN}))
COLLECTOR = Principal(sub="bench-collector", roles=frozenset({Role.COLLECTOR}))

#: Timed batches per trial, by mode and batch size (plus one untimed warm-up batch).
BATCHES: dict[str, dict[int, int]] = {
    "quick": {100: 60, 1000: 6},
    "full": {100: 300, 1000: 30},
}


def make_workload(batch_size: int, batches: int, text_bytes: int = TEXT_BYTES) -> Workload:
    """``batches`` timed batches plus one warm-up batch (the same seed for every case)."""
    return key_run_batches(
        batch_size=batch_size,
        batches=batches + 1,
        subjects=SUBJECTS,
        seed=7,
        text_bytes=text_bytes,
    )


# -- floor ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the floor gets for free: the vault's schema validation and pseudonymization."""

    body: dict[str, Any]  # event.stored_form(): what the vault seals (before redaction)
    subject: str  # a 32-hex pseudonym, as the vault stores
    epoch: int
    event_time: datetime
    kind: str


class SubjectDayKey:
    __slots__ = ("aead", "id", "prefix")

    def __init__(self, dataset_id: str, subject: str, epoch: int) -> None:
        self.id = uuid.uuid4().bytes
        self.aead = AESGCM(AESGCM.generate_key(bit_length=256))
        # Where a record belongs, fixed for the whole group; the record id is appended per
        # record, so each ciphertext is bound to dataset, subject, day, key and row.
        self.prefix = b"|".join(
            (dataset_id.encode(), subject.encode(), str(epoch).encode(), self.id)
        )


def floor_schema(db: Database, dataset_id: str, now: datetime) -> None:
    """The vault's whole schema (so any foreign key resolves) and one ``datasets`` row: what a
    floor needs beside the table it writes."""
    with db.write() as conn:
        metadata.create_all(conn)
        conn.execute(
            insert(datasets).values(
                id=dataset_id,
                name=DATASET,
                retention_days=30,
                consent_mode="opt_out",
                purposes=["research"],
                jurisdictions=None,
                exclusions={},
                kek_version=1,
                created_at=now,
            )
        )


class FloorTrial:
    """Minimal envelope encryption and storage of the same events, same table, same settings."""

    def __init__(
        self, place: TrialPlace, workload: Workload, *, warmup_events: int | None = None
    ) -> None:
        self.db = Database(place.url)
        self.dataset_id = uuid.uuid4().hex
        floor_schema(self.db, self.dataset_id, datetime.now(UTC))
        self.keys: dict[tuple[str, int], SubjectDayKey] = {}
        batches = [[self._prepare(raw) for raw in batch] for batch in workload.batches]
        # Warm-up: makes the subject-day keys, primes the engine. ``warmup_events`` stores only
        # the first events of the warm-up batch (for a slow sealer: the engine is primed alike).
        warm = batches[0][:warmup_events]
        self.expected = len(warm) + sum(len(b) for b in batches[1:])
        self._store(warm)
        self.batches = batches[1:]

    @staticmethod
    def _prepare(raw: dict[str, Any]) -> Prepared:
        event = TelemetryEvent.model_validate(raw)
        subject = hashlib.sha256(event.subject.encode()).hexdigest()[:32]
        return Prepared(event.stored_form(), subject, epoch_of(event.time), event.time, "key_run")

    def _store(self, batch: list[Prepared]) -> None:
        now = datetime.now(UTC)
        rows = []
        for p in batch:
            group = (p.subject, p.epoch)
            key = self.keys.get(group)
            if key is None:
                key = self.keys[group] = SubjectDayKey(self.dataset_id, p.subject, p.epoch)
            plaintext = json.dumps(p.body, separators=(",", ":"), ensure_ascii=False).encode()
            rid = uuid.uuid4()
            rows.append(
                {
                    "id": rid.hex,
                    "dataset_id": self.dataset_id,
                    "subject": p.subject,
                    "epoch": p.epoch,
                    "event_time": p.event_time,
                    "kind": p.kind,
                    "size": len(plaintext),
                    "redactions": {},
                    "rules_version": "1",
                    "sek_id": key.id,
                    "envelope": self.seal(key, p, rid, plaintext),
                    "stored_at": now,
                }
            )
        with self.db.write() as conn:
            conn.execute(insert(records), rows)

    def seal(self, key: SubjectDayKey, p: Prepared, rid: uuid.UUID, plaintext: bytes) -> bytes:
        """The envelope of one record (peers override this and keep everything else)."""
        del p  # bound through the key's prefix (dataset, subject, day, key id)
        aad = key.prefix + rid.bytes
        dek = os.urandom(32)
        dek_nonce = os.urandom(12)
        sealed_dek = dek_nonce + key.aead.encrypt(dek_nonce, dek, b"dek|" + aad)
        body_nonce = os.urandom(12)
        sealed_body = body_nonce + AESGCM(dek).encrypt(body_nonce, plaintext, b"body|" + aad)
        return key.id + sealed_dek + sealed_body

    def run(self) -> int:
        for batch in self.batches:
            self._store(batch)
        return sum(len(b) for b in self.batches)

    def close(self) -> None:
        try:
            with self.db.read() as conn:
                stored = conn.execute(select(func.count()).select_from(records)).scalar_one()
            if stored != self.expected:
                raise RuntimeError(f"floor stored {stored} rows, expected {self.expected}")
        finally:
            self.db.dispose()


# -- service -------------------------------------------------------------------------------------


class ServiceTrial:
    """``vault.ingest.ingest`` on a fresh vault, everything on (there is no switch)."""

    def __init__(self, place: TrialPlace, workload: Workload) -> None:
        settings = Settings(
            home=place.directory / "home",
            database_url=place.database_url,
            master_passphrase=SecretStr("bench-passphrase-not-secret"),
            scrypt_n=2**14,
            operator="bench",
        )
        self.vault: Vault = build_vault(settings)
        self.vault.datasets.create(
            ADMIN,
            {
                "name": DATASET,
                "retention_days": 30,
                "purposes": ["research"],
                "consent": "opt_out",
            },
        )
        self.expected = workload.events
        warm = self._ingest(workload.batches[0])
        redacted = sum(1 for r in warm["results"] if r.get("redactions"))
        if redacted == 0:
            raise RuntimeError("the workload gave the redactor nothing to do")
        self.batches = workload.batches[1:]

    def _ingest(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        result = self.vault.ingest.ingest(COLLECTOR, DATASET, batch)
        if result["accepted"] != len(batch):
            refused = [r for r in result["results"] if r["status"] != "stored"][:3]
            raise RuntimeError(f"the vault refused events of the workload: {refused}")
        return result

    def run(self) -> int:
        for batch in self.batches:
            self._ingest(batch)
        return sum(len(b) for b in self.batches)

    def close(self) -> None:
        try:
            with self.vault.db.read() as conn:
                stored = conn.execute(select(func.count()).select_from(records)).scalar_one()
            if stored != self.expected:
                raise RuntimeError(f"vault stored {stored} records, expected {self.expected}")
        finally:
            self.vault.close()


# -- suite ---------------------------------------------------------------------------------------


def suites(mode: Mode) -> list[Suite]:
    """Floor and service at batch sizes 100 and 1000, and the service/floor goals."""
    cases: list[Case] = []
    goals: list[Goal] = []
    for size, count in BATCHES[mode.name].items():
        events = make_workload(size, count)

        def floor(place: TrialPlace, w: Workload = events) -> FloorTrial:
            return FloorTrial(place, w)

        def service(place: TrialPlace, w: Workload = events) -> ServiceTrial:
            return ServiceTrial(place, w)

        params = {"batch": size}
        note = f"{count} timed batches of {size} key_run events (~{TEXT_BYTES} B text)"
        floor_case = Case("floor", params, "events/s", floor, note)
        service_case = Case("service", params, "events/s", service, note)
        cases += [floor_case, service_case]
        goals.append(Goal(f"service/floor[batch={size}]", service_case.key, floor_case.key, GOAL))
    return [Suite("ingest", cases, goals)]
