"""Sizes: 4 KiB events and 256 KiB screenshots, service against floor (256 B events: ingest).

``floor[event=4KiB,batch=100]`` / ``service[event=4KiB,batch=100]``
    ``bench.ingest``'s floor and service cases on key_run events whose typed text is 4096
    bytes (the redactor scans 16 times more text than in the 256 B workload).
``screenshot-floor`` / ``screenshot-service``
    One screenshot of about 256 KiB (a 1280x800 PNG: flat UI with a block of noise sized so the
    file is :data:`SHOT_BYTES`), one region to black out, one upload per call and transaction.
    The service is ``vault.blobs.upload``: metadata validation, collection rules and consent,
    decode, black-out and re-encode of the image (Pillow; drops metadata), a fresh blob key,
    chunked AES-256-GCM (c2sp.org/chunked-encryption, 16 KiB chunks, key commitment), the key
    sealed under the subject-epoch key, the ``blobs`` insert and the audit entry. The floor seals
    the same bytes as they arrive: a fresh 256-bit key, one AES-256-GCM over the whole image,
    the key sealed by AES-256-GCM under the subject-day key (associated data binding dataset,
    subject, day, key and blob id), one ``blobs`` row per transaction, in a database of its own
    made from the vault's tables through ``vault.storage.Database``.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from PIL import Image, ImageDraw
from sqlalchemy import func, insert, select

from bench.backends import TrialPlace
from bench.fill import COLLECTOR, create_dataset, new_vault
from bench.ingest import DATASET, GOAL, FloorTrial, ServiceTrial, floor_schema, make_workload
from bench.runner import Case, Goal, Mode, Suite
from bench.workload import Workload
from vault.domain.events import epoch_of, format_time
from vault.storage import Database
from vault.storage.tables import blobs

__all__ = ["SHOT_BYTES", "BlobFloorTrial", "BlobServiceTrial", "screenshot", "suites"]

TEXT_4K = 4096
SHOT_BYTES = 256 * 1024
#: Timed batches of 100 4 KiB events, and timed screenshots, per trial (plus one warm-up).
EVENT_BATCHES = {"quick": 10, "full": 60}
SHOTS = {"quick": 15, "full": 90}
REGION = {"x": 600, "y": 300, "w": 240, "h": 40}
PEOPLE = [f"employee-{i:04d}@example.com" for i in range(4)]


def screenshot(target: int = SHOT_BYTES, seed: int = 3) -> bytes:
    """A deterministic 1280x800 PNG of about ``target`` bytes (UI shapes and a noise block)."""
    rng = random.Random(seed)
    side = max(int((target / 3) ** 0.5) - 5, 8)  # incompressible noise: ~3 bytes per pixel
    img = Image.new("RGB", (1280, 800), (246, 246, 246))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 1280, 40), fill=(40, 44, 52))
    for i in range(30):
        top = 60 + i * 24
        draw.rectangle((300, top, 300 + rng.randrange(200, 900), top + 10), fill=(90, 90, 90))
    img.paste(Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3)), (20, 60))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def _meta(i: int, when: datetime) -> dict[str, Any]:
    return {
        "subject": PEOPLE[i % len(PEOPLE)],
        "time": format_time(when),
        "app": "Google Chrome",
        "url": "https://jira.example.com/browse/OPS-1234",
        "window_title": "OPS-1234 - Jira",
        "regions": [REGION],
    }


class BlobServiceTrial:
    """``vault.blobs.upload`` of the same screenshot ``count`` times (plus one warm-up)."""

    def __init__(self, place: TrialPlace, image: bytes, count: int) -> None:
        self.vault = new_vault(place.directory / "home", place.database_url)
        create_dataset(self.vault, DATASET)
        self.image, self.count = image, count
        self.when = datetime.now(UTC).replace(microsecond=0)
        self._upload(0)  # warm-up: subject-epoch key, caches

    def _upload(self, i: int) -> None:
        done = self.vault.blobs.upload(COLLECTOR, DATASET, _meta(i, self.when), self.image)
        if done["status"] != "stored" or done["regions"] != 1:
            raise RuntimeError(f"the vault did not store the screenshot: {done}")

    def run(self) -> int:
        for i in range(1, self.count + 1):
            self._upload(i)
        return self.count

    def close(self) -> None:
        try:
            with self.vault.db.read() as conn:
                stored = conn.execute(select(func.count()).select_from(blobs)).scalar_one()
            if stored != self.count + 1:
                raise RuntimeError(f"vault stored {stored} blobs, expected {self.count + 1}")
        finally:
            self.vault.close()


class BlobFloorTrial:
    """Fresh key, one AES-256-GCM of the image, key sealed, one ``blobs`` row per transaction."""

    def __init__(self, place: TrialPlace, image: bytes, count: int) -> None:
        self.db = Database(place.url)
        self.dataset_id = uuid.uuid4().hex
        self.image, self.count = image, count
        self.when = datetime.now(UTC).replace(microsecond=0)
        self.epoch = epoch_of(self.when)
        floor_schema(self.db, self.dataset_id, self.when)
        self.keys: dict[str, tuple[bytes, AESGCM]] = {}
        self._store(0)

    def _store(self, i: int) -> None:
        person = PEOPLE[i % len(PEOPLE)]
        subject = hashlib.sha256(person.encode()).hexdigest()[:32]
        if subject not in self.keys:
            self.keys[subject] = (uuid.uuid4().bytes, AESGCM(AESGCM.generate_key(bit_length=256)))
        sek_id, sek = self.keys[subject]
        blob_id = uuid.uuid4()
        aad = b"|".join(
            (self.dataset_id.encode(), subject.encode(), str(self.epoch).encode(), sek_id)
        )
        aad += blob_id.bytes
        key = os.urandom(32)
        key_nonce, body_nonce = os.urandom(12), os.urandom(12)
        sealed_key = key_nonce + sek.encrypt(key_nonce, key, b"key|" + aad)
        ciphertext = body_nonce + AESGCM(key).encrypt(body_nonce, self.image, b"blob|" + aad)
        with self.db.write() as conn:
            conn.execute(
                insert(blobs).values(
                    id=blob_id.hex,
                    dataset_id=self.dataset_id,
                    subject=subject,
                    epoch=self.epoch,
                    taken_at=self.when,
                    content_type="image/png",
                    size=len(self.image),
                    regions=0,
                    sek_id=sek_id,
                    sealed_key=sealed_key,
                    ciphertext=ciphertext,
                    stored_at=datetime.now(UTC),
                )
            )

    def run(self) -> int:
        for i in range(1, self.count + 1):
            self._store(i)
        return self.count

    def close(self) -> None:
        try:
            with self.db.read() as conn:
                stored = conn.execute(select(func.count()).select_from(blobs)).scalar_one()
            if stored != self.count + 1:
                raise RuntimeError(f"floor stored {stored} blobs, expected {self.count + 1}")
        finally:
            self.db.dispose()


def suites(mode: Mode) -> list[Suite]:
    """4 KiB events (floor, service) and 256 KiB screenshots (floor, service)."""
    batches = EVENT_BATCHES[mode.name]
    events: Workload = make_workload(100, batches, TEXT_4K)
    note = f"{batches} timed batches of 100 key_run events with {TEXT_4K} B of text"

    def floor(place: TrialPlace) -> FloorTrial:
        return FloorTrial(place, events)

    def service(place: TrialPlace) -> ServiceTrial:
        return ServiceTrial(place, events)

    params = {"event": "4KiB", "batch": 100}
    floor_case = Case("floor", params, "events/s", floor, note)
    service_case = Case("service", params, "events/s", service, note)

    image = screenshot()
    shots = SHOTS[mode.name]
    shot_note = f"{shots} uploads of a {len(image):,} B PNG, one region blacked out"

    def blob_floor(place: TrialPlace) -> BlobFloorTrial:
        return BlobFloorTrial(place, image, shots)

    def blob_service(place: TrialPlace) -> BlobServiceTrial:
        return BlobServiceTrial(place, image, shots)

    shot_params = {"bytes": len(image)}
    shot_floor = Case("screenshot-floor", shot_params, "images/s", blob_floor, shot_note)
    shot_service = Case("screenshot-service", shot_params, "images/s", blob_service, shot_note)
    goals = [
        Goal("service/floor[event=4KiB]", service_case.key, floor_case.key, GOAL),
        Goal("screenshot service/floor", shot_service.key, shot_floor.key, None),
    ]
    return [Suite("sizes", [floor_case, service_case, shot_floor, shot_service], goals)]
