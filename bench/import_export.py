"""Import and export: the vault's ``tvault import`` against the ingest floor, and export speed.

``import[format=jsonl|csv|parquet]``
    ``vault.imports.run(operator, dataset, file, ...)`` on a fresh vault: the whole import path
    (read, map, validate, the one ingest service with its rules, redaction, sealing and audit,
    the exactly-once bookkeeping per batch, and the verification pass) of the same key_run
    events the ingest floor stores (``bench.ingest.FloorTrial``, batch 1000). Goal: import /
    floor >= 0.5, per format, in the same run.

``export[records=N]``
    ``vault.exports.start(reader, dataset, purpose, ...)`` consumed to the end (NDJSON), on a
    vault holding N genuine records of 8 people written by ``bench/fill.py`` (what ingest
    writes, without its per-batch path, so that setting up a trial costs little): every
    record fetched page by page, decrypted (two AES-GCM opens), checked against its index
    columns, pseudonymized for the purpose and serialized, plus the manifest. Two sizes; the
    peak traced memory of each (``tracemalloc``, taken in a separate, untimed pass so tracing
    does not slow the timed one) is printed and kept in :data:`MEMORY` (see
    :func:`add_memory_report`): flat memory means the peak does not grow with N. The vault is
    filled once per case and backend; each repetition exports from a copy of it (its files
    copied and on PostgreSQL its database cloned), opened anew.

``export_parquet[records=N]``
    The same export written as Parquet.

``target[100000/s]``
    A metronome, not a measurement of the vault: it sleeps N/100,000 seconds for N items, so
    its rate is (just under) 100,000/s on any machine. The goal ``export/100k`` (export rate /
    metronome rate >= 1.0) expresses the issue's absolute target, 100,000 records/s, in the
    runner's ratio-of-medians form.
"""

from __future__ import annotations

import csv
import json
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import SecretStr
from sqlalchemy import func, select

from bench import fill
from bench.backends import TrialPlace
from bench.ingest import FloorTrial
from bench.runner import Case, Goal, Mode, Suite
from bench.workload import Workload, key_run_batches
from vault.bootstrap import Vault, build_vault
from vault.config import Settings
from vault.domain.principal import Principal, Role
from vault.services.export import ExportQuery
from vault.services.importer import ImportOptions
from vault.storage.tables import exports, records

__all__ = ["MEMORY", "add_memory_report", "suites"]

DATASET = "bench-import"
SUBJECTS = 8
GOAL_IMPORT = 0.5
TARGET_RATE = 100_000
BATCH = 1000
OPERATOR = Principal(sub="bench-operator", roles=frozenset(Role) - {Role.SUBJECT}, via="cli")
#: Timed import rows (plus one untimed warm-up batch) and export sizes, by mode. Quick mode
#: exports 10,000 records at least, as full mode does: at 2,000 an export's fixed costs (two
#: audited commits, the first page's queries) were about a tenth of the time it measured.
#: Quick mode imports 10,000 rows (ten batches): at 3,000 an import's fixed costs (its begin,
#: verification and finish transactions, forking its redaction helper, the first batch's
#: redaction before anything can be stored and the last batch's storing after the last
#: redaction) were about a fifth of the time, and the goal is a rate.
IMPORT_ROWS = {"quick": 10_000, "full": 30_000}
EXPORT_SIZES = {"quick": (10_000, 20_000), "full": (10_000, 40_000)}
#: (case key, records, peak traced bytes) of every export trial's memory pass.
MEMORY: list[dict[str, Any]] = []


_BODIES: list[dict[str, Any]] = []


def _bodies() -> list[dict[str, Any]]:
    """Redacted stored forms of workload events, made once per process (bench/fill.py)."""
    if not _BODIES:
        _BODIES.extend(fill.redacted_bodies())
    return _BODIES


def _open(place: TrialPlace) -> Vault:
    """The vault of ``place`` (made on first use)."""
    settings = Settings(
        home=place.directory / "home",
        database_url=place.database_url,
        master_passphrase=SecretStr("bench-passphrase-not-secret"),
        scrypt_n=2**14,
        operator="bench",
    )
    return build_vault(settings)


def _vault(place: TrialPlace) -> Vault:
    """A new vault in ``place`` with the benchmark's dataset."""
    vault = _open(place)
    vault.datasets.create(
        OPERATOR,
        {"name": DATASET, "retention_days": 30, "purposes": ["research"], "consent": "opt_out"},
    )
    return vault


def _count(vault: Vault) -> int:
    with vault.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(records)).scalar_one())


# -- import -------------------------------------------------------------------------------------


def _write_source(path: Path, fmt: str, events: list[dict[str, Any]]) -> Path:
    """The events as a file following the event schema (automatic mapping)."""
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for event in events:
                fh.write(json.dumps(event) + "\n")
        return path
    flat = [
        {
            "subject": e["subject"],
            "time": e["time"],
            "kind": e["kind"],
            "app": e.get("app"),
            "window_title": e.get("window_title"),
            "url": e.get("url"),
            "device.id": e["device"]["id"],
            "device.owner": e["device"]["owner"],
            "data.text": e["data"]["text"],
        }
        for e in events
    ]
    if fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(flat[0]))
            writer.writeheader()
            writer.writerows(flat)
        return path
    columns = {name: [row[name] for row in flat] for name in flat[0]}
    pq.write_table(pa.table(columns), path, row_group_size=BATCH)
    return path


class ImportTrial:
    """``vault.imports.run`` of one file, after a warm-up batch ingested untimed."""

    def __init__(self, place: TrialPlace, workload: Workload, fmt: str) -> None:
        self.vault = _vault(place)
        self.vault.ingest.ingest(OPERATOR, DATASET, workload.batches[0])  # subject-day keys
        rows = [e for batch in workload.batches[1:] for e in batch]
        suffix = {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet"}[fmt]
        self.source = _write_source(place.directory / f"source.{suffix}", fmt, rows)
        self.rows = len(rows)
        self.expected = workload.events
        self.summary: dict[str, Any] = {}

    def run(self) -> int:
        self.summary = self.vault.imports.run(
            OPERATOR, DATASET, self.source, ImportOptions(batch=BATCH)
        )
        return int(self.summary["rows"])

    def close(self) -> None:
        try:
            if self.summary.get("stored") != self.rows or not self.summary["verification"]["ok"]:
                raise RuntimeError(f"import did not store every row: {self.summary}")
            if _count(self.vault) != self.expected:
                raise RuntimeError("the vault does not hold every imported row")
        finally:
            self.vault.close()


# -- export -------------------------------------------------------------------------------------


#: The file a filled export place keeps beside the vault's home: how many records it holds.
FILLED = "export-filled.txt"


def fill_export(place: TrialPlace, records: int) -> None:
    """An export trial's untimed fill, the vault closed afterwards (a template for the
    repetitions): genuine records, as ingest writes them (bench/fill.py), of 8 people over
    the last hour."""
    vault = _vault(place)
    try:
        now = datetime.now(UTC)
        people = [f"employee-{i:04d}@example.com" for i in range(SUBJECTS)]
        items = fill.spread(people, now - timedelta(hours=1), now, records)
        stored = fill.fill(vault, DATASET, items, bodies=_bodies())
    finally:
        vault.close()
    (place.directory / FILLED).write_text(str(stored), encoding="utf-8")


class ExportTrial:
    """An export consumed to its end; memory traced in a separate untimed pass (the first
    repetition of each case: the peak does not change between repetitions).

    The place is filled by :func:`fill_export` unless it is already a copy of such a fill (the
    runner's ``Case.template``)."""

    def __init__(self, place: TrialPlace, records: int, fmt: str, key: str) -> None:
        marker = place.directory / FILLED
        if not marker.exists():
            fill_export(place, records)
        self.expected = int(marker.read_text(encoding="utf-8"))
        if self.expected != records:
            raise RuntimeError(f"{place.directory} holds {self.expected} records, not {records}")
        self.vault = _open(place)
        self.format = fmt
        self.key = key
        self.bytes = 0
        # Warm-up, as a running service has it: its export workers started (a CLI export starts
        # its worker at its first page and uses it once it is ready), then one export that
        # fills the key cache and has both processes' code paths run once.
        self.vault.exports.prestart_workers(wait_seconds=30)
        self._consume()
        if any(entry["case"] == key for entry in MEMORY):
            return
        tracemalloc.start()
        try:
            self._consume()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        MEMORY.append({"case": key, "records": self.expected, "peak_bytes": peak})

    def _consume(self) -> int:
        _, chunks = self.vault.exports.start(
            OPERATOR, DATASET, "research", ExportQuery(format=self.format)
        )
        size = 0
        for chunk in chunks:
            size += len(chunk)
        self.bytes = size
        return size

    def run(self) -> int:
        self._consume()
        return self.expected

    def close(self) -> None:
        try:
            with self.vault.db.read() as conn:
                last = conn.execute(
                    select(exports.c.records, exports.c.finished_at)
                    .order_by(exports.c.started_at.desc())
                    .limit(1)
                ).one()
            if last.records != self.expected or last.finished_at is None or not self.bytes:
                raise RuntimeError(f"the export did not hold every record: {last}")
        finally:
            self.vault.close()


class Metronome:
    """Sleeps ``items / TARGET_RATE`` seconds: a reference rate for an absolute goal."""

    def __init__(self, items: int) -> None:
        self.items = items

    def run(self) -> int:
        time.sleep(self.items / TARGET_RATE)
        return self.items

    def close(self) -> None:
        """Nothing to check or release."""


def add_memory_report(report: dict[str, Any]) -> None:
    """Add the export memory passes (peak traced bytes per case) to a runner report."""
    by_case: dict[str, list[int]] = {}
    for entry in MEMORY:
        by_case.setdefault(entry["case"], []).append(entry["peak_bytes"])
    report["export_memory"] = [
        {"case": case, "peak_bytes_median": sorted(peaks)[len(peaks) // 2], "samples": peaks}
        for case, peaks in by_case.items()
    ]


# -- suite --------------------------------------------------------------------------------------


def suites(mode: Mode) -> list[Suite]:
    """Import (three formats) against the floor; export at two sizes against 100,000/s."""
    rows = IMPORT_ROWS[mode.name]
    workload = key_run_batches(batch_size=BATCH, batches=rows // BATCH + 1, subjects=SUBJECTS)
    note = f"{rows} key_run rows after one warm-up batch of {BATCH}"

    def floor(place: TrialPlace, w: Workload = workload) -> FloorTrial:
        return FloorTrial(place, w)

    floor_case = Case("floor", {"batch": BATCH}, "events/s", floor, note)
    import_cases: list[Case] = []
    goals: list[Goal] = []
    for fmt in ("jsonl", "csv", "parquet"):

        def prepare(place: TrialPlace, w: Workload = workload, f: str = fmt) -> ImportTrial:
            return ImportTrial(place, w, f)

        case = Case("import", {"format": fmt}, "rows/s", prepare, note)
        import_cases.append(case)
        goals.append(Goal(f"import/floor[{fmt}]", case.key, floor_case.key, GOAL_IMPORT))
    imports = Suite("import", [floor_case, *import_cases], goals)

    export_cases: list[Case] = []
    export_goals: list[Goal] = []
    small, large = EXPORT_SIZES[mode.name]
    metronome = Case(
        "target",
        {"rate": TARGET_RATE},
        "records/s",
        _metronome(large),
        "reference: sleeps N/100,000 s (the issue's absolute export target)",
        fresh=False,
    )
    for size in (small, large):
        for scenario, fmt in (("export", "ndjson"), ("export_parquet", "parquet")):
            key = f"{scenario}[records={size}]"

            def prepare_export(
                place: TrialPlace, n: int = size, f: str = fmt, k: str = key
            ) -> ExportTrial:
                return ExportTrial(place, n, f, k)

            def filled(place: TrialPlace, n: int = size) -> None:
                fill_export(place, n)

            case = Case(
                scenario,
                {"records": size},
                "records/s",
                prepare_export,
                f"{size} key_run records, {fmt}",
                template=filled,
            )
            export_cases.append(case)
            export_goals.append(Goal(f"{scenario}/100k[{size}]", case.key, metronome.key, 1.0))
    exports = Suite("export", [*export_cases, metronome], export_goals)
    return [imports, exports]


def _metronome(items: int) -> Callable[[TrialPlace], Metronome]:
    def prepare(place: TrialPlace) -> Metronome:  # noqa: ARG001 - needs no place
        return Metronome(items)

    return prepare


if __name__ == "__main__":  # python -m bench.import_export [--full] [--backend ...]
    import argparse
    import logging

    from bench.backends import DEFAULT_PG_URL
    from bench.runner import run

    parser = argparse.ArgumentParser(prog="python -m bench.import_export")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    chosen = Mode("full", 7) if args.full else Mode("quick", 5)
    if args.repeats:
        chosen = Mode(chosen.name, args.repeats)
    result = run(
        suites=suites, mode=chosen, backends=[args.backend], out=args.out, pg_url=DEFAULT_PG_URL
    )
    add_memory_report(result)
    for entry in result["export_memory"]:
        mib = entry["peak_bytes_median"] / 2**20
        print(f"{entry['case']:<32} peak traced memory {mib:.1f} MiB")
