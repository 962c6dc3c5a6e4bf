"""Growth: ingest and read rates as the vault holds 10^4, 10^5 and 10^6 records.

One vault per backend grows level by level (quick mode: 10^4 and 5·10^4; full mode up to 10^6).
Between levels it is pre-filled, untimed, with ``bench.fill`` (the vault's redaction, keys and
envelopes; one insert per 5,000 records): 4 people (heavy users) over the last 20 days, evenly,
so every level has the same shape, only denser. At each level, ``repeats`` times, interleaved:

``ingest[stored=N]``
    ``vault.ingest.ingest`` of 2 batches of 1000 key_run events (``bench.workload``, the ingest
    benchmark's events) into a second dataset of the same vault (same tables and indexes). The
    events are deleted again after each repetition (untimed), so the level stays N.
``read-by-subject[stored=N]`` / ``read-by-time[stored=N]``
    ``vault.reads.list_events`` (pages of 1000) of the first 2,000 records of one person, or of
    the time range from the middle of the 20 days to now.

The figures go to the report and, drawn by ``bench.plots``, to ``bench/results/growth-*.png``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select

from bench.backends import Backend
from bench.fill import COLLECTOR, create_dataset, fill, new_vault, redacted_bodies, spread
from bench.reads import read_pages
from bench.runner import Case, Goal, Mode, Suite, Timed, goal_entry, interleave, shared_place
from bench.workload import key_run_batches
from vault.bootstrap import Vault
from vault.domain.events import format_time
from vault.services.reads import EventQuery
from vault.storage.tables import records

__all__ = ["LEVELS", "Grown", "suites"]

DATASET = "bench-growth"
SIDE = "bench-growth-new"
LEVELS = {"quick": [10_000, 50_000], "full": [10_000, 100_000, 1_000_000]}
PEOPLE = [f"heavy-user-{i}" for i in range(4)]
DAYS = 20
READ = 2000
INGEST_BATCHES = 2


class Grown:
    """The growing vault and the work timed at each level."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        create_dataset(vault, DATASET)
        self.side_id = create_dataset(vault, SIDE)
        self.end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        self.start = self.end - timedelta(days=DAYS)
        self.stored = 0
        self.bodies = redacted_bodies()
        self.batches = key_run_batches(batch_size=1000, batches=INGEST_BATCHES, seed=7).batches
        self.ingest()  # warm-up: the side dataset's keys, caches
        self.forget_ingested()

    def grow_to(self, level: int) -> None:
        """Fill (untimed) until the main dataset holds ``level`` records."""
        more = level - self.stored
        if more > 0:
            # Each fill spreads evenly over the same 20 days, offset so times do not repeat.
            offset = (self.end - self.start) / (2 * level)
            items = spread(PEOPLE, self.start + offset, self.end, more)
            self.stored += fill(self.vault, DATASET, items, bodies=self.bodies)

    def ingest(self) -> int:
        """The timed ingest: batches of 1000 through the service."""
        for batch in self.batches:
            done = self.vault.ingest.ingest(COLLECTOR, SIDE, batch)
            if done["accepted"] != len(batch):
                raise RuntimeError("the vault refused events of the growth workload")
        return sum(len(b) for b in self.batches)

    def forget_ingested(self) -> None:
        """Delete what :meth:`ingest` stored (untimed), so the level stays where it was."""
        with self.vault.db.write() as conn:
            conn.execute(delete(records).where(records.c.dataset_id == self.side_id))

    def by_subject(self) -> int:
        """The first 2000 records of one person."""
        return read_pages(self.vault, DATASET, EventQuery(subject=PEOPLE[0]), READ)

    def by_time(self) -> int:
        """The first 2000 records from the middle of the range on."""
        middle = self.start + (self.end - self.start) / 2
        query = EventQuery(since=format_time(middle), until=format_time(self.end))
        return read_pages(self.vault, DATASET, query, READ)

    def count(self) -> int:
        """Records in the whole table."""
        with self.vault.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(records)).scalar_one())


def _case(name: str, level: int, unit: str, note: str) -> Case:
    return Case(name, {"stored": level}, unit, shared_place, note)


def _measure(levels: list[int]) -> Callable[[Backend, int, Callable[[str], None]], dict[str, Any]]:
    def measure(backend: Backend, repeats: int, progress: Callable[[str], None]) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        rates: dict[str, list[float]] = {}
        with backend.trial("growth") as place:
            grown = Grown(new_vault(place.directory / "home", place.database_url))
            try:
                for level in levels:
                    progress(f"  growing to {level:,} records")
                    grown.grow_to(level)
                    if grown.count() != level:
                        raise RuntimeError(f"growth level {level}: {grown.count()} records")
                    ingest_note = f"{INGEST_BATCHES} batches of 1000 events, {level:,} stored"
                    read_note = f"first {READ} records, pages of 1000, {level:,} stored"
                    work = [
                        Timed(
                            _case("ingest", level, "events/s", ingest_note),
                            grown.ingest,
                            grown.forget_ingested,
                        ),
                        Timed(
                            _case("read-by-subject", level, "records/s", read_note),
                            grown.by_subject,
                        ),
                        Timed(
                            _case("read-by-time", level, "records/s", read_note),
                            grown.by_time,
                        ),
                    ]
                    done = interleave(f"{backend.name} {level:,}", work, repeats, progress)
                    results += done["results"]
                    for r in done["results"]:
                        rates[r["key"]] = r["samples"]
            finally:
                grown.vault.close()
        goals = []
        low, high = levels[0], levels[-1]
        for name in ("ingest", "read-by-subject", "read-by-time"):
            goal = Goal(
                f"{name} at {high:,} / at {low:,}",
                f"{name}[stored={high}]",
                f"{name}[stored={low}]",
                None,
            )
            goals.append(goal_entry(goal, rates[goal.numerator], rates[goal.denominator]))
        return {"results": results, "goals": goals}

    return measure


def suites(mode: Mode) -> list[Suite]:
    """One growing vault per backend."""
    return [Suite("growth", measure=_measure(LEVELS[mode.name]))]
