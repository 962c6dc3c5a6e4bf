"""The shared runner: repetitions, statistics, goals, the stdout table and the JSON report.

A scenario module (``bench/ingest.py``, later HTTP, peers, reads) contributes a :class:`Suite`:
cases to measure and goals relating them. The runner owns everything else, so every scenario
is measured the same way:

* each case runs ``repeats`` times (at least 5 for a figure worth quoting), each time in a fresh
  trial place (new directory, new database), prepared untimed;
* the cases of a suite are *interleaved* (floor, service, floor, service...) with the order
  reversed on every other repetition, so drift in the machine (thermal, page cache, a
  neighbour's load) falls on every case alike instead of on whichever ran last;
* only :meth:`Trial.run` is timed (``time.perf_counter``); the figure is items per second;
* the report gives the median with min-max; a goal compares the medians of two cases and
  gives the min-max of the per-repetition ratios beside it.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Protocol

from bench.backends import Backend, TrialPlace, open_backend

__all__ = [
    "MIN_REPEATS",
    "Case",
    "Goal",
    "Mode",
    "Suite",
    "Trial",
    "run",
]

MIN_REPEATS = 5
_REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Mode:
    """How long to measure: ``quick`` (about 2 minutes) or ``full`` (about 10)."""

    name: str
    repeats: int


class Trial(Protocol):
    """One prepared repetition of one case."""

    def run(self) -> int:
        """Do the measured work; return how many items (events, records...) it processed."""
        ...

    def close(self) -> None:
        """Check the work was really done (untimed) and release resources."""
        ...


@dataclass(frozen=True, slots=True)
class Case:
    """Something measured: a scenario with fixed parameters."""

    scenario: str
    params: Mapping[str, Any]
    unit: str
    prepare: Callable[[TrialPlace], Trial]
    description: str = ""

    @property
    def key(self) -> str:
        """A stable name such as ``service[batch=100]``."""
        inner = ",".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.scenario}[{inner}]" if inner else self.scenario


@dataclass(frozen=True, slots=True)
class Goal:
    """``numerator / denominator`` (medians of two cases) should be at least ``target``."""

    name: str
    numerator: str
    denominator: str
    target: float


@dataclass(frozen=True, slots=True)
class Suite:
    """What one scenario module contributes: cases measured together, and their goals."""

    name: str
    cases: Sequence[Case]
    goals: Sequence[Goal] = ()


@dataclass(slots=True)
class _Samples:
    case: Case
    rates: list[float] = field(default_factory=list)
    items: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "scenario": self.case.scenario,
            "params": dict(self.case.params),
            "key": self.case.key,
            "description": self.case.description,
            "unit": self.case.unit,
            "median": statistics.median(self.rates),
            "min": min(self.rates),
            "max": max(self.rates),
            "repeats": len(self.rates),
            "samples": [round(r, 1) for r in self.rates],
            "items": self.items,
            "seconds": [round(s, 4) for s in self.seconds],
        }


def _measure(backend: Backend, case: Case, samples: _Samples) -> None:
    with backend.trial(case.scenario) as place:
        trial = case.prepare(place)
        try:
            gc.collect()
            start = time.perf_counter()
            items = trial.run()
            elapsed = time.perf_counter() - start
        finally:
            trial.close()
    samples.rates.append(items / elapsed)
    samples.items.append(items)
    samples.seconds.append(elapsed)


def _run_suite(
    backend: Backend, suite: Suite, repeats: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    collected = {case.key: _Samples(case) for case in suite.cases}
    for rep in range(repeats):
        order = list(suite.cases) if rep % 2 == 0 else list(reversed(suite.cases))
        for case in order:
            _measure(backend, case, collected[case.key])
            rate = collected[case.key].rates[-1]
            progress(
                f"  {backend.name} {case.key} rep {rep + 1}/{repeats}: {rate:,.0f} {case.unit}"
            )
    results = [collected[c.key].summary() for c in suite.cases]
    goals = []
    for goal in suite.goals:
        num, den = collected[goal.numerator], collected[goal.denominator]
        ratio = statistics.median(num.rates) / statistics.median(den.rates)
        paired = [n / d for n, d in zip(num.rates, den.rates, strict=True)]
        goals.append(
            {
                "name": goal.name,
                "numerator": goal.numerator,
                "denominator": goal.denominator,
                "ratio": ratio,
                "paired_min": min(paired),
                "paired_max": max(paired),
                "target": goal.target,
                "status": "PASS" if ratio >= goal.target else "MISS",
            }
        )
    return {"suite": suite.name, "results": results, "goals": goals}


def _git() -> dict[str, Any]:
    def out(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=_REPO, capture_output=True, text=True, check=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    return {"commit": out("rev-parse", "HEAD") or None, "dirty": bool(out("status", "--porcelain"))}


def _versions() -> dict[str, str]:
    found = {}
    for name in ("telemetry-vault", "cryptography", "sqlalchemy", "psycopg", "pydantic"):
        try:
            found[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            found[name] = "absent"
    import sqlite3

    found["sqlite"] = sqlite3.sqlite_version
    return found


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _meta(mode: Mode, repeats: int) -> dict[str, Any]:
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode.name,
        "repeats": repeats,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": _loadavg(),
        "git": _git(),
        "versions": _versions(),
    }


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def format_table(report: Mapping[str, Any]) -> str:
    """The human-readable table printed at the end of a run."""
    lines: list[str] = []
    header = f"{'backend':<9} {'case':<22} {'median':>12} {'min - max':>23}  {'unit':<9} reps"
    for run_ in report["runs"]:
        backend = run_["backend"]["backend"]
        for suite in run_["suites"]:
            lines.append("")
            lines.append(f"== {suite['suite']} on {backend} ==")
            lines.append(header)
            for r in suite["results"]:
                spread = f"{_fmt_rate(r['min'])} - {_fmt_rate(r['max'])}"
                lines.append(
                    f"{backend:<9} {r['key']:<22} {_fmt_rate(r['median']):>12} {spread:>23}  "
                    f"{r['unit']:<9} {r['repeats']}"
                )
            for g in suite["goals"]:
                lines.append(
                    f"{backend:<9} {g['name']:<22} {g['ratio']:>12.2f} "
                    f"{g['paired_min']:>11.2f} - {g['paired_max']:<9.2f}  "
                    f"goal >= {g['target']:.2f}  {g['status']}"
                )
    return "\n".join(lines)


def run(
    *,
    suites: Callable[[Mode], Sequence[Suite]],
    mode: Mode,
    backends: Sequence[str],
    out: Path | None,
    pg_url: str,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """Measure every suite on every backend; print the table; write the JSON report."""
    repeats = mode.repeats
    if repeats < MIN_REPEATS:
        progress(f"note: {repeats} repetition(s); quote figures only from >= {MIN_REPEATS}")
    report: dict[str, Any] = {"meta": _meta(mode, repeats), "runs": []}
    load = report["meta"]["loadavg_at_start"]
    cpus = os.cpu_count() or 1
    if load is not None and load[0] > 0.25 * cpus:
        progress(
            f"warning: load average {load[0]} on {cpus} CPUs before the run; other work on"
            " the machine will lower and scatter the figures (ratios suffer less: interleaved)"
        )
    started = time.perf_counter()
    for name in backends:
        with open_backend(name, pg_url=pg_url) as backend:
            entry: dict[str, Any] = {"backend": {"backend": name}, "suites": []}
            for suite in suites(mode):
                progress(f"{suite.name} on {name} ({repeats} repetitions, interleaved)")
                entry["suites"].append(_run_suite(backend, suite, repeats, progress))
            entry["backend"] = backend.describe()
            report["runs"].append(entry)
    report["meta"]["wall_seconds"] = round(time.perf_counter() - started, 1)
    report["meta"]["loadavg_at_end"] = _loadavg()
    print(format_table(report))
    meta = report["meta"]
    print(
        f"\nwall time {meta['wall_seconds']} s, mode {mode.name}, load average"
        f" {meta['loadavg_at_start']} at start, {meta['loadavg_at_end']} at end"
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"JSON report: {out}")
    return report
