"""Peak memory of one large export: 5·10^4 stored records (quick), 10^6 (full).

``export_memory[format=F,records=N]``
    A vault filled (untimed) with N genuine records of 50 people over three days through
    ``bench.fill`` (the vault's own redaction, keys and envelopes), then one export of all of
    them for the purpose ``research``, consumed to its end under ``tracemalloc``: the peak
    traced memory is the figure (kept in ``bench.import_export.MEMORY``, so the report's
    ``export_memory`` and the table beside it show it with the small exports of the ``export``
    suite: flat memory means the same peak at 2,000 and at 10^6 records). The rate printed is
    taken under tracing (slower than untraced; the ``export`` suite has the untraced rates).
    One pass per format: the peak of a deterministic stream, not a timing to repeat.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bench.backends import Backend
from bench.fill import Clock, create_dataset, fill, new_vault, redacted_bodies, spread
from bench.import_export import MEMORY, OPERATOR
from bench.runner import Case, Mode, Suite, result_entry, shared_place
from vault.bootstrap import Vault
from vault.services.export import ExportQuery

__all__ = ["RECORDS", "suites", "traced_export"]

DATASET = "bench-export-memory"
PEOPLE = 50
#: Records exported, by mode.
RECORDS = {"quick": 50_000, "full": 1_000_000}


def traced_export(vault: Vault, fmt: str) -> tuple[int, int, float]:
    """(bytes written, peak traced bytes, seconds) of one whole export of ``DATASET``."""
    tracemalloc.start()
    try:
        start = time.perf_counter()
        _, chunks = vault.exports.start(OPERATOR, DATASET, "research", ExportQuery(format=fmt))
        size = sum(len(chunk) for chunk in chunks)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return size, peak, seconds


def _measure(count: int) -> Callable[[Backend, int, Callable[[str], None]], dict[str, Any]]:
    def measure(backend: Backend, repeats: int, progress: Callable[[str], None]) -> dict[str, Any]:
        del repeats  # one pass (see the module docstring)
        results = []
        with backend.trial("export-memory") as place:
            clock = Clock()
            vault = new_vault(place.directory / "home", place.database_url, now=clock)
            try:
                create_dataset(vault, DATASET)
                people = [f"person-{i:03d}@example.com" for i in range(PEOPLE)]
                end = clock()
                progress(f"  filling {count:,} records")
                stored = fill(
                    vault,
                    DATASET,
                    spread(people, end - timedelta(days=3), end, count),
                    bodies=redacted_bodies(),
                )
                if stored != count:
                    raise RuntimeError(f"filled {stored} records, wanted {count}")
                for fmt in ("ndjson", "parquet"):
                    progress(f"  {backend.name} export of {count:,} records ({fmt}), traced")
                    size, peak, seconds = traced_export(vault, fmt)
                    if not size:
                        raise RuntimeError("the export wrote nothing")
                    case = Case(
                        "export_memory",
                        {"format": fmt, "records": count},
                        "records/s",
                        shared_place,
                        f"{count:,} records of {PEOPLE} people, {fmt}, under tracemalloc",
                    )
                    MEMORY.append({"case": case.key, "records": count, "peak_bytes": peak})
                    progress(f"    peak {peak / 2**20:.1f} MiB, {size / 2**20:.0f} MiB written")
                    results.append(
                        result_entry(
                            case, [count / seconds], [count], [seconds], peak_bytes=peak, bytes=size
                        )
                    )
            finally:
                vault.close()
        return {"results": results, "goals": []}

    return measure


def suites(mode: Mode) -> list[Suite]:
    """One filled vault per backend, one traced export per format."""
    return [Suite("export-memory", measure=_measure(RECORDS[mode.name]), repeats=1)]
