"""Pre-filling a vault fast: genuine, readable records without the per-batch ingest path.

Growth, reads and lifecycle scenarios need 10^4 to 10^6 stored records before the clock
starts. Ingesting them through the service (~5,000 events/s here) would take minutes per
trial, so :func:`fill` writes what the service would have written, with the vault's own parts:

* bodies: synthetic key_run events (``bench.workload``) validated by the vault's schema and
  **redacted by the vault's redactor** (``vault.domain.redaction.redact_batch``) once, as a
  pool of templates; each record takes a template and its own event time, so what is sealed
  is what ingest would seal;
* keys: ``Keyring.seks_for_write`` (the ingest's own call) makes and books the subject-epoch
  keys, wrapped by the dataset KEK in the key provider;
* envelopes: ``vault.crypto.envelope.seal_record`` per record (fresh DEK, the record context
  bound as associated data), and a ``records`` row built as the ingest builds it;
* one write transaction and one executemany insert per chunk (:data:`CHUNK` records); on
  PostgreSQL the day partitions are made first through the vault's ``Database.partitions``
  when the vault has them.

What it skips: validation and redaction per record (done once per template), consent and
collection rules, and the audit entry per batch. Reads, exports, rotation, sweeps and erasure
then work on these records exactly as on ingested ones (the tests check a read round trip).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import insert, select

from bench.workload import TEXT_BYTES, key_run_batches
from vault.bootstrap import Vault, build_vault
from vault.config import Settings
from vault.crypto.envelope import RecordContext, seal_record
from vault.domain.events import TelemetryEvent, epoch_of, format_time
from vault.domain.principal import Principal, Role
from vault.domain.redaction import RULES_VERSION, redact_batch
from vault.storage.tables import datasets, records

__all__ = [
    "ADMIN",
    "CHUNK",
    "COLLECTOR",
    "PRIVACY",
    "READER",
    "Clock",
    "fill",
    "new_vault",
    "redacted_bodies",
    "spread",
]

CHUNK = 5000
ADMIN = Principal(sub="bench-admin", roles=frozenset({Role.ADMIN}))
COLLECTOR = Principal(sub="bench-collector", roles=frozenset({Role.COLLECTOR}))
READER = Principal(sub="bench-reader", roles=frozenset({Role.READER}), purposes=None)
PRIVACY = Principal(sub="bench-privacy", roles=frozenset({Role.PRIVACY_OFFICER}))
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Clock:
    """A settable clock for the vault (as the tests' ``Clock``): time is injected."""

    def __init__(self, start: datetime | None = None) -> None:
        self.value = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.value

    def advance(self, **kwargs: float) -> None:
        """Move the clock forward."""
        self.value += timedelta(**kwargs)


def new_vault(
    home: Path,
    database_url: str | None,
    *,
    now: Callable[[], datetime] | None = None,
    **overrides: Any,
) -> Vault:
    """A vault as the ingest benchmark builds it (local keyring sealed by a passphrase)."""
    settings = Settings(
        home=home,
        database_url=database_url,
        master_passphrase=SecretStr("bench-passphrase-not-secret"),
        scrypt_n=2**14,
        operator="bench",
        **overrides,
    )
    return build_vault(settings) if now is None else build_vault(settings, now=now)


def create_dataset(vault: Vault, name: str, *, retention_days: int = 30) -> str:
    """An opt_out dataset for research; returns its id."""
    vault.datasets.create(
        ADMIN,
        {
            "name": name,
            "retention_days": retention_days,
            "purposes": ["research"],
            "consent": "opt_out",
        },
    )
    with vault.db.read() as conn:
        return str(conn.execute(select(datasets.c.id).where(datasets.c.name == name)).scalar_one())


def redacted_bodies(count: int = 500, *, text_bytes: int = TEXT_BYTES) -> list[dict[str, Any]]:
    """``count`` stored forms of synthetic key_run events, after the vault's redaction."""
    raw = key_run_batches(batch_size=count, batches=1, seed=11, text_bytes=text_bytes).batches[0]
    events = [TelemetryEvent.model_validate(e) for e in raw]
    return [dict(outcome.body) for outcome in redact_batch(events)]


def spread(
    people: Sequence[str], start: datetime, end: datetime, count: int
) -> Iterator[tuple[str, datetime]]:
    """``count`` (person, time) pairs evenly over ``[start, end)``, people taking turns."""
    step = (end - start) / max(count, 1)
    for i in range(count):
        when = start + step * i
        yield people[i % len(people)], when.replace(microsecond=when.microsecond // 1000 * 1000)


def fill(
    vault: Vault,
    dataset: str,
    items: Iterable[tuple[str, datetime]],
    *,
    bodies: Sequence[dict[str, Any]],
    chunk: int = CHUNK,
) -> int:
    """Store a record for each (person, event time) of ``items``; returns how many."""
    keyring = vault.ingest.keyring
    with vault.db.read() as conn:
        ds = conn.execute(select(datasets).where(datasets.c.name == dataset)).one()
    pseudonyms: dict[str, str] = {}
    partitions = getattr(vault.db, "partitions", None)
    stored = 0
    it = iter(items)
    n_bodies = len(bodies)
    while True:
        part = list(islice(it, chunk))
        if not part:
            return stored
        plan = []
        for person, when in part:
            subject = pseudonyms.get(person)
            if subject is None:
                subject = pseudonyms[person] = keyring.subject_pseudonym(ds.id, person)
            plan.append((subject, when, epoch_of(when)))
        if partitions is not None:
            partitions.ensure(ds.id, sorted({e for _, _, e in plan}))
        now = vault.ingest.deps.now()
        with vault.db.write() as conn:
            kek_version = conn.execute(
                select(datasets.c.kek_version).where(datasets.c.id == ds.id)
            ).scalar_one()
            wanted = Counter((s, e) for s, _, e in plan)
            keys = keyring.seks_for_write(conn, ds.id, kek_version, dict(wanted))
            rows = []
            for i, (subject, when, epoch) in enumerate(plan):
                sek = keys[(subject, epoch)]
                body = {**bodies[(stored + i) % n_bodies], "time": format_time(when)}
                plaintext = _JSON.encode(body).encode("utf-8")
                rid = uuid.uuid4()
                ctx = RecordContext(ds.id, rid.bytes, subject, epoch, sek.id)
                rows.append(
                    {
                        "id": rid.hex,
                        "dataset_id": ds.id,
                        "subject": subject,
                        "epoch": epoch,
                        "event_time": when,
                        "kind": body["kind"],
                        "size": len(plaintext),
                        "redactions": {},
                        "rules_version": RULES_VERSION,
                        "sek_id": sek.id,
                        "envelope": seal_record(sek.key, ctx, plaintext),
                        "stored_at": now,
                    }
                )
            conn.execute(insert(records), rows)
        stored += len(part)
