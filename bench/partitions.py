"""Retention on PostgreSQL: dropping an expired day partition vs deleting its rows.

Both cases fill a dataset with one expired day of records (``bench.fill``: genuine sealed
records, the day's partition made by the vault) plus one young day that must survive, move the
clock past retention, and time ``RetentionService.sweep`` — the whole sweep: the subject-epoch
keys of the day destroyed first, then the records, every step audited.

* ``sweep[layout=partitions]`` is the sweep as it runs on PostgreSQL: the day's table is dropped
  whole (docs/partitions.md).
* ``sweep[layout=delete]`` is the same sweep with the vault told it has no partitions, so it
  deletes the rows in audited batches of 5,000 — what it does on SQLite, and for the part of a
  day that is only partly expired.

The unit is records removed per second. Untimed checks afterwards: the expired records are gone,
the young ones are all there. On SQLite both cases take the delete path (no partitions there),
so the suite is measured on PostgreSQL only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from bench.backends import TrialPlace
from bench.fill import ADMIN, Clock, create_dataset, fill, new_vault, redacted_bodies, spread
from bench.runner import Case, Goal, Mode, Suite
from vault.storage.tables import records

__all__ = ["suites"]

EXPIRED = {"quick": 30_000, "full": 1_000_000}
YOUNG = 1_000
PEOPLE = [f"emp-{i:04d}" for i in range(200)]
RETENTION_DAYS = 10
#: Dropping must beat deleting by at least this much to be worth its complexity.
GOAL = 5.0


class SweepTrial:
    """One expired day of ``expired`` records and a young day; the sweep is timed."""

    def __init__(self, place: TrialPlace, expired: int, *, drop: bool) -> None:
        self.place, self.expired, self.drop = place, expired, drop
        self.clock = Clock()
        self.vault = new_vault(
            self.place.directory / "home", self.place.database_url, now=self.clock
        )
        create_dataset(self.vault, "ux", retention_days=RETENTION_DAYS)
        bodies = redacted_bodies()
        day = self.clock().replace(hour=0, minute=0, second=0, microsecond=0)
        fill(
            self.vault,
            "ux",
            spread(PEOPLE, day, day + timedelta(hours=23), self.expired),
            bodies=bodies,
        )
        self.clock.advance(days=RETENTION_DAYS + 2)
        young = self.clock().replace(hour=0, minute=0, second=0, microsecond=0)
        fill(
            self.vault,
            "ux",
            spread(PEOPLE, young, young + timedelta(hours=1), YOUNG),
            bodies=bodies,
        )
        self.report: dict[str, Any] = {}
        if not self.drop:
            self.vault.db.partitions.enabled = False  # the row-by-row delete path

    def run(self) -> int:
        self.report = self.vault.retention.sweep(ADMIN)["datasets"][0]
        return int(self.report["records"])

    def close(self) -> None:
        try:
            with self.vault.db.read() as conn:
                left = conn.execute(select(func.count()).select_from(records)).scalar_one()
            if left != YOUNG or self.report.get("records") != self.expired:
                raise AssertionError(f"sweep left {left} records, report {self.report}")
            dropped = self.report.get("partitions_dropped", 0)
            if self.drop and not self.vault.db.is_sqlite and dropped != 1:
                raise AssertionError(f"expected one dropped partition, report {self.report}")
        finally:
            self.vault.close()


def suites(mode: Mode) -> list[Suite]:
    """The two sweeps of the same expired day, and the drop/delete goal."""
    expired = EXPIRED[mode.name]

    def partitioned(place: TrialPlace) -> SweepTrial:
        return SweepTrial(place, expired, drop=True)

    def deleting(place: TrialPlace) -> SweepTrial:
        return SweepTrial(place, expired, drop=False)

    note = f"sweep of an expired day of {expired:,} records (keys first, audited)"
    drop_case = Case("sweep", {"layout": "partitions"}, "records/s", partitioned, note)
    delete_case = Case("sweep", {"layout": "delete"}, "records/s", deleting, note)
    goal = Goal("partition drop/delete", drop_case.key, delete_case.key, GOAL)
    return [Suite("partitions", [drop_case, delete_case], [goal], backends=("postgres",))]
