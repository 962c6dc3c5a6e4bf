"""Retention on PostgreSQL: dropping an expired day partition vs deleting its rows.

Both cases are ``bench.lifecycle.SweepTrial``: a dataset with one expired day of records
(``bench.fill``: genuine sealed records, the day's partition made by the vault) and 1,000 young
ones; the clock moves past retention and ``RetentionService.sweep`` is timed — the whole
sweep: the day's subject-epoch keys destroyed first, then the records, every step audited.

* ``sweep[layout=partitions]`` is the sweep as it runs on PostgreSQL: the day's table is dropped
  whole (docs/partitions.md).
* ``sweep[layout=delete]`` is the same sweep with the vault told it has no partitions, so it
  deletes the rows in audited batches of 5,000 — what it does on SQLite, and for the part of a
  day that is only partly expired.

The unit is records removed per second. Untimed checks afterwards: the expired records are gone,
the young ones are all there, one partition dropped (first case). Each case fills one vault
(untimed) and every repetition sweeps a copy of it (``bench.lifecycle.fill_sweep``). On SQLite
both cases would take the delete path, so the suite runs on PostgreSQL only.
"""

from __future__ import annotations

from bench.backends import TrialPlace
from bench.lifecycle import SweepTrial, fill_sweep
from bench.runner import Case, Goal, Mode, Suite

__all__ = ["suites"]

EXPIRED = {"quick": 15_000, "full": 1_000_000}
#: Dropping must beat deleting by at least this much to be worth its complexity.
GOAL = 5.0


def suites(mode: Mode) -> list[Suite]:
    """The two sweeps of the same expired day, and the drop/delete goal."""
    expired = EXPIRED[mode.name]

    def partitioned(place: TrialPlace) -> SweepTrial:
        return SweepTrial(place, expired, drop=True)

    def deleting(place: TrialPlace) -> SweepTrial:
        return SweepTrial(place, expired, drop=False)

    def filled(place: TrialPlace) -> None:
        fill_sweep(place, expired)

    note = f"sweep of an expired day of {expired:,} records (keys first, audited)"
    drop_case = Case("sweep", {"layout": "partitions"}, "records/s", partitioned, note, filled)
    delete_case = Case("sweep", {"layout": "delete"}, "records/s", deleting, note, filled)
    goal = Goal("partition drop/delete", drop_case.key, delete_case.key, GOAL)
    # Full mode: 5 repetitions, not 7 (a row-by-row sweep of 10^6 records takes ~95 s here).
    repeats = 5 if mode.name == "full" else None
    return [
        Suite(
            "partitions", [drop_case, delete_case], [goal], backends=("postgres",), repeats=repeats
        )
    ]
