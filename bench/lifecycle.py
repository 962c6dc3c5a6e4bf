"""Lifecycle costs: KEK rotation, a retention sweep of an expired day, erasure of one person.

All through the vault's services on vaults pre-filled by ``bench.fill`` (genuine sealed records
and subject-epoch keys made by the vault's keyring), with an injected clock where time matters.

``rotate[keys=K,records=R]`` (suite ``rotation``)
    ``vault.lifecycle.rotate(admin, dataset, destroy_old=True)``: a new KEK version, every
    subject-epoch key rewrapped in batches of 500, the old version marked, destroyed in the key
    provider and confirmed, each step audited. One vault per configuration is filled once and
    rotated ``repeats`` times (a rotation leaves the data as it found it, under a new version),
    the configurations interleaved. Unit: keys rewrapped per second. The configurations hold
    K keys (people x 10 days) and R records; the pair with the same keys and 10x the records
    shows whether the cost follows keys or records (goal: the rate with 10x records is at
    least 2/3 of the rate with 1x). 10^5 keys only in full mode; at most 5 repetitions.
``sweep[records=N]`` (suite ``lifecycle``)
    A dataset with 30 days of retention holds N records of 8 people on one day and 1,000 records
    of today; the clock is then moved 32 days on and ``vault.retention.sweep(admin)`` is timed:
    whatever the service does (destroy the day's subject-epoch keys, remove its records: row
    deletes in audited batches, or on PostgreSQL with day partitions a dropped partition).
    Unit: records removed per second; checked afterwards: the N are gone, the 1,000 are there.
``erase[records=N]`` (suite ``lifecycle``)
    One person with N records over 25 days among 7 others with 1,000 records each;
    ``vault.lifecycle.erase(privacy_officer, person)`` is timed: keys destroyed, records
    deleted with a tombstone each, consent withdrawn, signed certificate, audit entry. Unit:
    records erased per second; checked: the person has no record left, the others all theirs.

The sweep and erasure destroy what they measure, so each of their repetitions gets a freshly
filled vault (untimed): a copy of one filled per case and backend (the vault closed, its files
copied and on PostgreSQL its database cloned), opened anew for the trial; in full mode they
run 3 repetitions, which the table shows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

from sqlalchemy import func, select

from bench.backends import Backend, TrialPlace
from bench.fill import (
    ADMIN,
    PRIVACY,
    Clock,
    create_dataset,
    fill,
    new_vault,
    redacted_bodies,
    spread,
)
from bench.runner import Case, Goal, Mode, Suite, Timed, interleave, shared_place
from vault.bootstrap import Vault
from vault.storage.tables import records, subject_keys

__all__ = ["EraseTrial", "RotationSubject", "SweepTrial", "fill_erase", "fill_sweep", "suites"]

DATASET = "bench-lifecycle"
DAYS = 10
#: (keys, records) per rotation configuration, by mode (10^5 keys: ~40 s a rotation on
#: PostgreSQL here, so only in full mode).
ROTATIONS = {
    "quick": [(250, 2_500), (250, 25_000), (2_500, 2_500)],
    "full": [(1_000, 10_000), (1_000, 100_000), (10_000, 10_000), (100_000, 100_000)],
}
SWEEP = {"quick": 15_000, "full": 1_000_000}
ERASE = {"quick": 5_000, "full": 100_000}
HEAVY_REPEATS = {"quick": None, "full": 3}
YOUNG = 1_000
OTHERS = 7
ROTATION_GOAL = 2 / 3


def _count(vault: Vault, table: Any, *where: Any) -> int:
    with vault.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


# -- rotation ------------------------------------------------------------------------------------


class RotationSubject:
    """A vault holding ``keys`` subject-epoch keys (people x 10 days) and ``count`` records."""

    def __init__(self, place: TrialPlace, keys: int, count: int) -> None:
        if keys % DAYS or count < keys:
            raise ValueError("keys must be a multiple of 10 and records at least keys")
        self.keys = keys
        self.vault = new_vault(place.directory / "home", place.database_url)
        create_dataset(self.vault, DATASET)
        people = [f"person-{i:06d}" for i in range(keys // DAYS)]
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = end - timedelta(days=DAYS)
        fill(self.vault, DATASET, spread(people, start, end, count), bodies=redacted_bodies())
        made = _count(self.vault, subject_keys)
        if made != keys or _count(self.vault, records) != count:
            raise RuntimeError(f"rotation fill made {made} keys, wanted {keys}")

    def rotate(self) -> int:
        """One full rotation; returns the keys rewrapped (checked: all of them)."""
        done = self.vault.lifecycle.rotate(ADMIN, DATASET, destroy_old=True)
        if done["rewrapped_keys"] != self.keys or len(done["destroyed_versions"]) != 1:
            raise RuntimeError(f"rotation did not rewrap every key: {done}")
        return int(done["rewrapped_keys"])

    def close(self) -> None:
        """Release the vault."""
        self.vault.close()


def _rotation_case(keys: int, count: int) -> Case:
    note = f"{keys:,} subject-epoch keys ({keys // DAYS:,} people x {DAYS} days), {count:,} records"
    return Case("rotate", {"keys": keys, "records": count}, "keys/s", shared_place, note)


def _measure_rotation(
    configs: list[tuple[int, int]],
) -> Callable[[Backend, int, Callable[[str], None]], dict[str, Any]]:
    def measure(backend: Backend, repeats: int, progress: Callable[[str], None]) -> dict[str, Any]:
        with ExitStack() as stack:
            work = []
            for keys, count in configs:
                place = stack.enter_context(backend.trial(f"rotate-{keys}-{count}"))
                progress(f"  filling {keys:,} keys, {count:,} records")
                subject = RotationSubject(place, keys, count)
                stack.callback(subject.close)
                work.append(Timed(_rotation_case(keys, count), subject.rotate))
            goals = []
            small = [c for c in configs if c[0] == min(k for k, _ in configs)]
            if len(small) >= 2:
                few, many = min(small), max(small)
                goals.append(
                    Goal(
                        f"rotate {many[1] // few[1]}x records, same keys",
                        _rotation_case(*many).key,
                        _rotation_case(*few).key,
                        ROTATION_GOAL,
                    )
                )
            first, last = configs[0], max(configs)
            if last[0] > first[0]:
                goals.append(
                    Goal(
                        f"rotate {last[0] // first[0]}x keys (rate)",
                        _rotation_case(*last).key,
                        _rotation_case(*first).key,
                        None,
                    )
                )
            return interleave(backend.name, work, repeats, progress, goals)

    return measure


# -- sweep and erasure ---------------------------------------------------------------------------


#: The file a filled place keeps beside the vault's home: what was filled, and the fill's clock.
FILLED = "filled.json"


def _filled(place: TrialPlace, kind: str, count: int) -> dict[str, Any] | None:
    """What :func:`_mark_filled` left in ``place`` (a copy of a filled template), if anything."""
    path = place.directory / FILLED
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if (state["kind"], state["count"]) != (kind, count):
        raise RuntimeError(f"{place.directory} holds a {state} fill, not {kind} of {count}")
    return state


def _mark_filled(place: TrialPlace, kind: str, count: int, **extra: Any) -> None:
    state = {"kind": kind, "count": count, **extra}
    (place.directory / FILLED).write_text(json.dumps(state), encoding="utf-8")


def fill_sweep(place: TrialPlace, count: int) -> None:
    """The sweep's untimed fill, vault closed afterwards (a template for the repetitions):
    ``count`` records of 8 people on a day 40 days ago, :data:`YOUNG` of 32 days later."""
    clock = Clock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=40))
    vault = new_vault(place.directory / "home", place.database_url, now=clock)
    try:
        create_dataset(vault, DATASET, retention_days=30)
        bodies = redacted_bodies()
        day = clock().replace(hour=0, minute=0, second=0, microsecond=0)
        people = [f"employee-{i:04d}" for i in range(8)]
        fill(vault, DATASET, spread(people, day, day + timedelta(days=1), count), bodies=bodies)
        clock.advance(days=32)
        today = clock().replace(hour=0, minute=0, second=0, microsecond=0)
        fill(vault, DATASET, spread(people, today, clock(), YOUNG), bodies=bodies)
    finally:
        vault.close()
    _mark_filled(place, "sweep", count, clock=clock().isoformat())


class SweepTrial:
    """``count`` records on a day that expires when the clock moves 32 days on.

    The place is filled by :func:`fill_sweep` unless it is already a copy of such a fill (the
    runner's ``Case.template``); the vault is then opened on it with the fill's clock, moved
    32 days on. ``drop=False`` tells the vault it has no partitions, so even on PostgreSQL the
    sweep deletes the rows in audited batches (``bench/partitions.py`` compares both)."""

    def __init__(self, place: TrialPlace, count: int, *, drop: bool = True) -> None:
        self.count, self.drop = count, drop
        self.report: dict[str, Any] = {}
        state = _filled(place, "sweep", count)
        if state is None:
            fill_sweep(place, count)
            state = _filled(place, "sweep", count)
            assert state is not None
        self.clock = Clock(datetime.fromisoformat(state["clock"]))
        self.vault = new_vault(place.directory / "home", place.database_url, now=self.clock)
        if not drop:
            self.vault.db.partitions.enabled = False  # the row-by-row delete path
        # Untimed: the copy holds the whole fill (and the vault has its connection open).
        held = _count(self.vault, records)
        if held != count + YOUNG:
            self.vault.close()
            raise RuntimeError(f"the sweep's vault holds {held} records, not {count + YOUNG}")

    def run(self) -> int:
        report = self.vault.retention.sweep(ADMIN)
        (self.report,) = report["datasets"]
        if self.report["records"] != self.count:
            raise RuntimeError(
                f"the sweep removed {self.report['records']} records, not {self.count}"
            )
        return int(self.report["records"])

    def close(self) -> None:
        try:
            left = _count(self.vault, records)
            if left != YOUNG:
                raise RuntimeError(f"{left} records left after the sweep, expected {YOUNG}")
            dropped = self.report.get("partitions_dropped", 0)
            if self.drop and not self.vault.db.is_sqlite and dropped != 1:
                raise RuntimeError(f"expected one dropped day partition, report {self.report}")
        finally:
            self.vault.close()


def fill_erase(place: TrialPlace, count: int) -> None:
    """The erasure's untimed fill, vault closed afterwards (a template for the repetitions):
    one person with ``count`` records over 25 days, :data:`OTHERS` others with 1,000 each."""
    vault = new_vault(place.directory / "home", place.database_url)
    try:
        create_dataset(vault, DATASET)
        end = datetime.now(UTC) - timedelta(minutes=1)
        start = end - timedelta(days=25)
        others = [f"colleague-{i}" for i in range(OTHERS)]
        items: Iterator[tuple[str, datetime]] = chain(
            spread(["the-person"], start, end, count),
            spread(others, start, end, OTHERS * YOUNG),
        )
        fill(vault, DATASET, items, bodies=redacted_bodies())
    finally:
        vault.close()
    _mark_filled(place, "erase", count)


class EraseTrial:
    """One person with ``count`` records over 25 days, 7 others with 1,000 each.

    The place is filled by :func:`fill_erase` unless it is already a copy of such a fill."""

    def __init__(self, place: TrialPlace, count: int) -> None:
        self.count = count
        if _filled(place, "erase", count) is None:
            fill_erase(place, count)
        self.vault = new_vault(place.directory / "home", place.database_url)
        held = _count(self.vault, records)  # untimed: the whole fill is there
        if held != count + OTHERS * YOUNG:
            self.vault.close()
            raise RuntimeError(f"the erasure's vault holds {held} records")

    def run(self) -> int:
        certificate = self.vault.lifecycle.erase(PRIVACY, "the-person")
        erased = sum(int(d["records"]) for d in certificate["destroyed"])
        if erased != self.count:
            raise RuntimeError(f"erasure removed {erased} records, not {self.count}")
        return erased

    def close(self) -> None:
        try:
            left = _count(self.vault, records)
            if left != OTHERS * YOUNG:
                raise RuntimeError(f"{left} records left, expected {OTHERS * YOUNG}")
        finally:
            self.vault.close()


def suites(mode: Mode) -> list[Suite]:
    """``rotation`` (one filled vault per configuration) and ``lifecycle`` (sweep, erasure)."""
    sweep_n, erase_n = SWEEP[mode.name], ERASE[mode.name]

    def sweep(place: TrialPlace) -> SweepTrial:
        return SweepTrial(place, sweep_n)

    def erase(place: TrialPlace) -> EraseTrial:
        return EraseTrial(place, erase_n)

    def sweep_fill(place: TrialPlace) -> None:
        fill_sweep(place, sweep_n)

    def erase_fill(place: TrialPlace) -> None:
        fill_erase(place, erase_n)

    cases = [
        Case(
            "sweep",
            {"records": sweep_n},
            "records/s",
            sweep,
            f"one expired day of {sweep_n:,} records (8 people) + {YOUNG:,} young records",
            template=sweep_fill,
        ),
        Case(
            "erase",
            {"records": erase_n},
            "records/s",
            erase,
            f"one person with {erase_n:,} records over 25 days among {OTHERS} others",
            template=erase_fill,
        ),
    ]
    return [
        Suite("rotation", measure=_measure_rotation(ROTATIONS[mode.name]), repeats=5),
        Suite("lifecycle", cases, repeats=HEAVY_REPEATS[mode.name]),
    ]
