"""Reads: decrypted records per second by subject and by time range, vault against the floor.

One vault and one floor database per backend are filled once (untimed), then the reads are
timed, interleaved, ``repeats`` times each (reads change nothing but the vault's audit log, so
the same data serves every repetition):

``read-by-subject`` / ``read-by-time``
    ``vault.reads.list_events`` as a reader with purpose ``research``: pages of 1000 (the
    default ``max_page_size``) through every record of one subject, or of a time range, keyset
    cursor after cursor. Each page pays the purpose check, the select, per record the
    subject-epoch key lookup (a select; the unwrapped key comes from the vault's cache), the
    DEK unwrap, the body decryption, the JSON parse and the check of the clear-text index
    columns against the sealed body, and the page's audit entry.
``floor-read-by-subject`` / ``floor-read-by-time``
    The same rows of a database the floor filled with ``bench.ingest.FloorTrial``: the same
    filter, order and pages of 1000 through ``vault.storage.Database``; per record the DEK
    unwrapped (AES-256-GCM under the subject-day key held in memory) and the body decrypted and
    parsed as JSON.

Both databases hold the same number of records of the same 8 people over one day, made from
the same synthetic events; the vault's through ``bench.fill`` (the vault's redaction, keys and
envelopes), the floor's through its own ingest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import ColumnElement, select

from bench.backends import Backend, TrialPlace
from bench.fill import READER, create_dataset, fill, new_vault, redacted_bodies
from bench.ingest import FloorTrial
from bench.runner import Case, Goal, Mode, Suite, Timed, interleave, shared_place
from bench.workload import Workload, key_run_batches
from vault.bootstrap import Vault
from vault.domain.events import format_time, parse_time_utc
from vault.services.reads import EventQuery, after
from vault.storage.tables import records

__all__ = ["FloorReader", "VaultReader", "read_pages", "suites"]

DATASET = "bench-reads"
PAGE = 1000
GOAL = 0.5
SUBJECTS = 8
#: Records stored before the reads, by mode (a subject holds 1/8 of them).
RECORDS = {"quick": 12_000, "full": 80_000}


def read_pages(vault: Vault, dataset: str, query: EventQuery, limit: int | None = None) -> int:
    """Page through what ``query`` selects (stopping once ``limit`` are read); the count."""
    got, cursor = 0, None
    while True:
        page = vault.reads.list_events(
            READER,
            dataset,
            "research",
            EventQuery(
                subject=query.subject,
                since=query.since,
                until=query.until,
                limit=PAGE,
                cursor=cursor,
            ),
        )
        got += len(page["events"])
        cursor = page["next_cursor"]
        if cursor is None or (limit is not None and got >= limit):
            return got


def _events(count: int) -> Workload:
    size = min(1000, count)
    batches = max(count // size, 1)
    return key_run_batches(batch_size=size, batches=batches, subjects=SUBJECTS, seed=5)


class VaultReader:
    """A vault holding ``count`` records of 8 people; reads through the read service."""

    def __init__(self, place: TrialPlace, count: int, *, dataset: str = DATASET) -> None:
        self.vault: Vault = new_vault(place.directory / "home", place.database_url)
        self.dataset = dataset
        create_dataset(self.vault, dataset)
        events = [e for batch in _events(count).batches for e in batch]
        self.people = sorted({e["subject"] for e in events})
        times = sorted(parse_time_utc(e["time"]) for e in events)
        self.window = (times[len(times) // 4], times[len(times) // 4 + len(times) // SUBJECTS])
        items = [(e["subject"], parse_time_utc(e["time"])) for e in events]
        self.stored = fill(self.vault, dataset, items, bodies=redacted_bodies())

    def read(self, query: EventQuery, limit: int | None = None) -> int:
        """Page through every record the query selects (at most ``limit``); returns the count."""
        return read_pages(self.vault, self.dataset, query, limit)

    def by_subject(self, limit: int | None = None) -> int:
        """All records of the first person."""
        return self.read(EventQuery(subject=self.people[0]), limit)

    def by_time(self, limit: int | None = None) -> int:
        """All records of a time window holding about 1/8 of the data."""
        since, until = (format_time(t) for t in self.window)
        return self.read(EventQuery(since=since, until=until), limit)

    def close(self) -> None:
        """Release the vault."""
        self.vault.close()


class FloorReader:
    """The floor's database with the same records; select + unwrap + decrypt, pages of 1000."""

    def __init__(self, place: TrialPlace, count: int) -> None:
        workload = _events(count)
        self.floor = FloorTrial(place, workload)
        self.floor.run()  # store everything (untimed)
        events = [e for batch in workload.batches for e in batch]
        self.first = hashlib.sha256(sorted({e["subject"] for e in events})[0].encode())
        times = sorted(parse_time_utc(e["time"]) for e in events)
        self.window = (times[len(times) // 4], times[len(times) // 4 + len(times) // SUBJECTS])
        self.keys = {key.id: key for key in self.floor.keys.values()}

    def _open(self, row: Any) -> dict[str, Any]:
        envelope = bytes(row.envelope)
        key = self.keys[envelope[:16]]
        aad = key.prefix + bytes.fromhex(row.id)
        dek = key.aead.decrypt(envelope[16:28], envelope[28:76], b"dek|" + aad)
        body = AESGCM(dek).decrypt(envelope[76:88], envelope[88:], b"body|" + aad)
        return {"id": row.id, "subject": row.subject, **json.loads(body)}

    def read(self, where: list[ColumnElement[bool]], limit: int | None = None) -> int:
        """Page through the selected rows; returns how many were decrypted."""
        got, last = 0, None
        while True:
            conditions = [records.c.dataset_id == self.floor.dataset_id, *where]
            if last is not None:
                conditions.append(after(*last))
            stmt = (
                select(records)
                .where(*conditions)
                .order_by(records.c.event_time, records.c.id)
                .limit(PAGE)
            )
            with self.floor.db.read() as conn:
                rows = conn.execute(stmt).all()
            opened = [self._open(row) for row in rows]
            got += len(opened)
            if len(rows) < PAGE or (limit is not None and got >= limit):
                return got
            last = (rows[-1].event_time, rows[-1].id)

    def by_subject(self, limit: int | None = None) -> int:
        """All records of the first person."""
        return self.read([records.c.subject == self.first.hexdigest()[:32]], limit)

    def by_time(self, limit: int | None = None) -> int:
        """All records of the same time window as the vault's."""
        since, until = self.window
        return self.read([records.c.event_time >= since, records.c.event_time < until], limit)

    def close(self) -> None:
        """Check and release the floor's database."""
        self.floor.close()


def _case(name: str, count: int) -> Case:
    note = f"decrypted records/s, pages of {PAGE}, {count:,} records stored (8 people, one day)"
    return Case(name, {}, "records/s", shared_place, note)


def _measure(count: int) -> Callable[[Backend, int, Callable[[str], None]], dict[str, Any]]:
    def measure(backend: Backend, repeats: int, progress: Callable[[str], None]) -> dict[str, Any]:
        with ExitStack() as stack:
            vault_place = stack.enter_context(backend.trial("reads-vault"))
            floor_place = stack.enter_context(backend.trial("reads-floor"))
            progress(f"  filling {count:,} records (vault and floor)")
            vault = VaultReader(vault_place, count)
            stack.callback(vault.close)
            floor = FloorReader(floor_place, count)
            stack.callback(floor.close)
            # The two must select the same records, or the ratio means nothing.
            expected = (floor.by_subject(), floor.by_time())
            if (vault.by_subject(), vault.by_time()) != expected:
                raise RuntimeError("vault and floor reads select different record counts")
            work = [
                Timed(_case("floor-read-by-subject", count), floor.by_subject),
                Timed(_case("read-by-subject", count), vault.by_subject),
                Timed(_case("floor-read-by-time", count), floor.by_time),
                Timed(_case("read-by-time", count), vault.by_time),
            ]
            goals = [
                Goal("read/floor[by-subject]", "read-by-subject", "floor-read-by-subject", GOAL),
                Goal("read/floor[by-time]", "read-by-time", "floor-read-by-time", GOAL),
            ]
            return interleave(backend.name, work, repeats, progress, goals)

    return measure


def suites(mode: Mode) -> list[Suite]:
    """Reads by subject and by time range, vault and floor, on one filled database each."""
    count = RECORDS[mode.name]
    return [Suite("reads", measure=_measure(count))]
