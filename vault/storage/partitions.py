"""Time partitions of ``records`` on PostgreSQL (issue "Retention...", item 6; docs/partitions.md).

Layout: ``records`` is partitioned by LIST on ``dataset_id``, one partition per dataset
(``records_<dataset id>``), itself partitioned by RANGE on ``event_time``, one partition per
UTC day (``records_<dataset id>_<yyyymmdd>``, ``[day 00:00, next day 00:00)``). Retention is
per dataset and by day, so an expired day of a dataset is one table that a sweep drops whole
instead of deleting its rows one by one.

Partitions are made on demand, before the transaction that inserts into them, in a short
transaction of their own: each new table is created detached, then attached, which locks the
parent only in SHARE UPDATE EXCLUSIVE mode (concurrent inserts and reads go on). A transaction
advisory lock per dataset serializes two processes making the same partition. What this process
has made or seen is remembered; a day that a sweep dropped is forgotten again.

SQLite has no partitions: every method here is a no-op there (and the sweep deletes rows).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, Engine, Select, column, func, literal, select, table, text

__all__ = ["Partition", "RecordPartitions", "dataset_ddl", "day_bounds", "day_ddl"]

_DATASET_ID = re.compile(r"[0-9a-f]{32}")
_EPOCH = date(1970, 1, 1)
#: Waits longer than this for a lock on a partition's parent give up (the caller falls back).
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True, slots=True)
class Partition:
    """One day of one dataset."""

    dataset_id: str
    day: int  # UTC days since 1970-01-01, as ``domain.events.epoch_of``

    @property
    def name(self) -> str:
        """The table's name."""
        return f"{_parent(self.dataset_id)}_{(_EPOCH + timedelta(days=self.day)):%Y%m%d}"

    @property
    def start(self) -> datetime:
        """First instant in it (UTC)."""
        return day_bounds(self.day)[0]

    @property
    def end(self) -> datetime:
        """First instant after it (UTC)."""
        return day_bounds(self.day)[1]


def day_bounds(day: int) -> tuple[datetime, datetime]:
    """``[start, end)`` of a UTC day number, as aware datetimes."""
    start = datetime.combine(_EPOCH + timedelta(days=day), datetime.min.time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _parent(dataset_id: str) -> str:
    # Identifiers cannot be bound as parameters: only a vault-made id (uuid hex) is accepted.
    if not _DATASET_ID.fullmatch(dataset_id):
        raise ValueError("not a dataset id")
    return f"records_{dataset_id}"


def dataset_ddl(dataset_id: str) -> list[str]:
    """Statements making a dataset's partition (itself partitioned by day), detached first."""
    parent = _parent(dataset_id)
    return [
        f"CREATE TABLE {parent} (LIKE records INCLUDING DEFAULTS) PARTITION BY RANGE (event_time)",
        f"ALTER TABLE records ATTACH PARTITION {parent} FOR VALUES IN ('{dataset_id}')",
    ]


def day_ddl(part: Partition) -> list[str]:
    """Statements making one day partition, detached first (indexes come with the attach)."""
    return [
        f"CREATE TABLE {part.name} (LIKE records INCLUDING DEFAULTS)",
        f"ALTER TABLE {_parent(part.dataset_id)} ATTACH PARTITION {part.name} FOR VALUES"
        f" FROM ('{_naive(part.start)}') TO ('{_naive(part.end)}')",
    ]


def _naive(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def _lock_key(dataset_id: str) -> int:
    digest = hashlib.sha256(b"records-partitions:" + dataset_id.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class RecordPartitions:
    """Makes, lists and drops the day partitions of ``records`` (PostgreSQL only)."""

    def __init__(self, engine: Engine, *, enabled: bool) -> None:
        self.engine = engine
        self.enabled = enabled
        self._known: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def ensure(self, dataset_id: str, days: Iterable[int]) -> None:
        """Make sure a partition exists for each of ``days`` of the dataset (own transaction).

        ``days`` is only consumed on PostgreSQL: a generator costs SQLite's ingest nothing."""
        if not self.enabled:
            return
        wanted = {int(d) for d in days}
        with self._lock:
            missing = {d for d in wanted if (dataset_id, d) not in self._known}
        if not missing:
            return
        parent = _parent(dataset_id)
        with self.engine.connect() as conn, conn.begin():
            conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(dataset_id)})
            if conn.execute(text("SELECT to_regclass(:n)"), {"n": parent}).scalar() is None:
                for statement in dataset_ddl(dataset_id):
                    conn.execute(text(statement))
            present = set(self._days(conn, dataset_id))
            for day in sorted(missing - present):
                for statement in day_ddl(Partition(dataset_id, day)):
                    conn.execute(text(statement))
        with self._lock:
            self._known.update((dataset_id, d) for d in wanted)

    def _days(self, conn: Connection, dataset_id: str) -> list[int]:
        """The days that have a partition, read from the catalog."""
        parent = _parent(dataset_id)
        names = conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = to_regclass(:p)"
            ),
            {"p": parent},
        ).scalars()
        days = []
        for name in names:
            stamp = name[len(parent) + 1 :]
            if len(stamp) == 8 and stamp.isdigit():
                parsed = datetime.strptime(stamp, "%Y%m%d").replace(tzinfo=UTC).date()
                days.append((parsed - _EPOCH).days)
        return sorted(days)

    def partitions(self, conn: Connection, dataset_id: str) -> list[Partition]:
        """Every day partition of the dataset, oldest first."""
        if not self.enabled:
            return []
        return [Partition(dataset_id, d) for d in self._days(conn, dataset_id)]

    def expired(self, conn: Connection, dataset_id: str, cutoff: datetime) -> list[Partition]:
        """Partitions holding only events before ``cutoff`` (their whole day is past it)."""
        return [p for p in self.partitions(conn, dataset_id) if p.end <= cutoff]

    def count(self, conn: Connection, part: Partition) -> int:
        """Rows in one partition."""
        return int(conn.execute(select(func.count()).select_from(table(part.name))).scalar_one())

    def record_ids(self, part: Partition) -> Select[tuple[str]]:
        """A subquery of the record ids in one partition."""
        return select(table(part.name, column("id")).c.id)

    def holds_any(self, conn: Connection, part: Partition, subjects: Iterable[str]) -> bool:
        """Whether the partition has a row of one of ``subjects`` (pseudonyms)."""
        wanted = sorted(subjects)
        if not wanted:
            return False
        rows = table(part.name, column("subject"))
        found = conn.execute(select(literal(1)).where(rows.c.subject.in_(wanted)).limit(1))
        return found.first() is not None

    def drop(self, conn: Connection, part: Partition) -> None:
        """Drop one partition inside the caller's transaction (waits at most LOCK_TIMEOUT)."""
        conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        conn.execute(text(f"DROP TABLE {part.name}"))
        with self._lock:
            self._known.discard((part.dataset_id, part.day))
