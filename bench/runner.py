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
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Protocol

from bench.backends import Backend, TrialPlace, open_backend

__all__ = [
    "MIN_REPEATS",
    "Case",
    "FreshTrial",
    "Goal",
    "Measure",
    "Mode",
    "Suite",
    "Timed",
    "Trial",
    "format_table",
    "goal_entry",
    "interleave",
    "result_entry",
    "run",
    "shared_place",
]

MIN_REPEATS = 5
_REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Mode:
    """How long to measure: ``quick`` (a few minutes for both backends) or ``full`` (about an
    hour for both)."""

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
    #: Untimed work done once per backend in a place of its own (e.g. a fill); each trial's
    #: place then starts as a copy of it (``Backend.trial(template=...)``), so the trials stay
    #: independent without repeating the work.
    template: Callable[[TrialPlace], None] | None = None
    #: ``False`` for a trial that stores nothing (a reference such as a metronome): it gets the
    #: backend's scratch directory instead of a fresh place (no database made for it).
    fresh: bool = True

    @property
    def key(self) -> str:
        """A stable name such as ``service[batch=100]``."""
        inner = ",".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.scenario}[{inner}]" if inner else self.scenario


@dataclass(frozen=True, slots=True)
class Goal:
    """``numerator / denominator`` (medians of two cases) should be at least ``target``.

    With ``target`` ``None`` the ratio is reported for information (status ``INFO``).
    """

    name: str
    numerator: str
    denominator: str
    target: float | None


#: A suite that measures itself (e.g. one growing database for all its cases):
#: ``measure(backend, repeats, progress)`` returns ``{"results": [...], "goals": [...]}`` built
#: with :func:`result_entry` and :func:`goal_entry`.
Measure = Callable[[Backend, int, Callable[[str], None]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Suite:
    """What one scenario module contributes: cases measured together, and their goals.

    ``measure`` replaces the runner's fresh-place-per-repetition loop for suites that need
    state shared between repetitions; ``once`` marks a suite that does not touch the database
    (measured on the first backend only); ``repeats`` caps the repetitions (heavy cases);
    ``backends`` limits it to some backends (e.g. ``("postgres",)``).
    """

    name: str
    cases: Sequence[Case] = ()
    goals: Sequence[Goal] = ()
    measure: Measure | None = None
    once: bool = False
    repeats: int | None = None
    backends: tuple[str, ...] | None = None


@dataclass(slots=True)
class _Samples:
    case: Case
    rates: list[float] = field(default_factory=list)
    items: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return result_entry(self.case, self.rates, self.items, self.seconds)


def result_entry(
    case: Case,
    rates: Sequence[float],
    items: Sequence[int],
    seconds: Sequence[float],
    **extra: Any,
) -> dict[str, Any]:
    """One case's figures as the report and the table hold them."""
    return {
        "scenario": case.scenario,
        "params": dict(case.params),
        "key": case.key,
        "description": case.description,
        "unit": case.unit,
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "repeats": len(rates),
        "samples": [round(r, 1) for r in rates],
        "items": list(items),
        "seconds": [round(s, 4) for s in seconds],
        **extra,
    }


def goal_entry(goal: Goal, num: Sequence[float], den: Sequence[float]) -> dict[str, Any]:
    """A goal's ratio of medians, the min-max of the per-repetition ratios and its status."""
    ratio = statistics.median(num) / statistics.median(den)
    paired = [n / d for n, d in zip(num, den, strict=True)]
    status = "INFO"
    if goal.target is not None:
        status = "PASS" if ratio >= goal.target else "MISS"
    return {
        "name": goal.name,
        "numerator": goal.numerator,
        "denominator": goal.denominator,
        "ratio": ratio,
        "paired_min": min(paired),
        "paired_max": max(paired),
        "target": goal.target,
        "status": status,
    }


def shared_place(place: TrialPlace) -> Trial:
    """The ``prepare`` of cases measured by a suite's own ``measure`` (never called)."""
    raise RuntimeError(f"this case is measured by its suite, not in {place.directory}")


@dataclass(frozen=True, slots=True)
class Timed:
    """Work a ``measure`` suite times: ``run`` returns the items done; ``prepare`` (before) and
    ``reset`` (after) are untimed."""

    case: Case
    run: Callable[[], int]
    reset: Callable[[], None] | None = None
    #: Untimed, before each ``run`` (e.g. a fresh trial to time).
    prepare: Callable[[], None] | None = None


def interleave(
    label: str,
    work: Sequence[Timed],
    repeats: int,
    progress: Callable[[str], None],
    goals: Sequence[Goal] = (),
) -> dict[str, Any]:
    """Time each piece of ``work`` ``repeats`` times, interleaved as the runner does."""
    collected = {w.case.key: _Samples(w.case) for w in work}
    for rep in range(repeats):
        for w in list(work) if rep % 2 == 0 else list(reversed(work)):
            began = time.perf_counter()
            if w.prepare is not None:
                w.prepare()
            gc.collect()
            start = time.perf_counter()
            items = w.run()
            elapsed = time.perf_counter() - start
            if w.reset is not None:
                w.reset()
            samples = collected[w.case.key]
            samples.rates.append(items / elapsed)
            samples.items.append(items)
            samples.seconds.append(elapsed)
            progress(
                f"  {label} {w.case.key} rep {rep + 1}/{repeats}: "
                f"{samples.rates[-1]:,.0f} {w.case.unit}"
                f" ({_took(elapsed, time.perf_counter() - began)})"
            )
    return {
        "results": [s.summary() for s in collected.values()],
        "goals": [
            goal_entry(g, collected[g.numerator].rates, collected[g.denominator].rates)
            for g in goals
        ],
    }


def _took(timed: float, whole: float) -> str:
    """The progress line's durations: the timed part and the whole trial with its setup."""
    return f"timed {timed:.2f} s of {whole:.1f} s"


class FreshTrial:
    """A :class:`Case` measured inside :func:`interleave`: each repetition prepared in a fresh
    place (``prepare``), timed (``run``), then checked and its place removed (``reset``)."""

    def __init__(self, backend: Backend, case: Case, template: TrialPlace | None = None) -> None:
        self.backend, self.case, self.template = backend, case, template
        self._stack: ExitStack | None = None
        self._trial: Trial | None = None

    def prepare(self) -> None:
        """Open a fresh place (a copy of ``template`` if given) and prepare the trial in it."""
        self._stack = ExitStack()
        place = TrialPlace(self.backend.root, None, None)
        if self.case.fresh:
            place = self._stack.enter_context(
                self.backend.trial(self.case.scenario, template=self.template)
            )
        self._trial = self.case.prepare(place)

    def run(self) -> int:
        """The timed work."""
        assert self._trial is not None
        return self._trial.run()

    def reset(self) -> None:
        """Close (check) the trial and remove its place."""
        assert self._stack is not None
        assert self._trial is not None
        with self._stack:
            self._trial.close()
        self._stack = self._trial = None

    def timed(self) -> Timed:
        """This case as :func:`interleave` takes it."""
        return Timed(self.case, self.run, self.reset, self.prepare)


def _measure(backend: Backend, case: Case, samples: _Samples, template: TrialPlace | None) -> float:
    """One trial in a fresh place; returns its whole duration (setup and checks included)."""
    began = time.perf_counter()
    with ExitStack() as stack:
        if case.fresh:
            place = stack.enter_context(backend.trial(case.scenario, template=template))
        else:
            place = TrialPlace(backend.root, None, None)
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
    return time.perf_counter() - began


def _run_suite(
    backend: Backend, suite: Suite, repeats: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    collected = {case.key: _Samples(case) for case in suite.cases}
    with ExitStack() as stack:
        templates: dict[str, TrialPlace] = {}
        for case in suite.cases:
            if case.template is not None:
                began = time.perf_counter()
                place = stack.enter_context(backend.trial(f"{case.scenario}-template"))
                case.template(place)
                templates[case.key] = place
                progress(
                    f"  {backend.name} {case.key} template prepared"
                    f" ({time.perf_counter() - began:.1f} s)"
                )
        for rep in range(repeats):
            order = list(suite.cases) if rep % 2 == 0 else list(reversed(suite.cases))
            for case in order:
                samples = collected[case.key]
                whole = _measure(backend, case, samples, templates.get(case.key))
                progress(
                    f"  {backend.name} {case.key} rep {rep + 1}/{repeats}:"
                    f" {samples.rates[-1]:,.0f} {case.unit} ({_took(samples.seconds[-1], whole)})"
                )
    results = [collected[c.key].summary() for c in suite.cases]
    goals = [
        goal_entry(g, collected[g.numerator].rates, collected[g.denominator].rates)
        for g in suite.goals
    ]
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
    for name in (
        "telemetry-vault",
        "cryptography",
        "sqlalchemy",
        "psycopg",
        "pydantic",
        "aws-encryption-sdk",
        "tink",
        "matplotlib",
    ):
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


def _cpu_probe() -> float:
    """Milliseconds a fixed pure-Python loop (10^6 additions) takes, best of 5: how fast this
    machine runs the interpreter now. It scales every absolute goal (the export's 100,000
    records/s), which no peer in the same run corrects; ratios to peers hardly move with it
    (bench/README.md "Machine speed")."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for number in range(1_000_000):
            total += number
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def _cpu_times() -> list[int] | None:
    """The machine's CPU time counters (Linux /proc/stat: user ... steal), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            return [int(x) for x in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None


def _spent(start: list[int] | None, end: list[int] | None) -> list[int] | None:
    """The CPU time counters spent between two readings (:func:`_cpu_times`), or None when
    either is missing or nothing was spent."""
    if start is None or end is None or len(start) < 8 or len(end) < 8:
        return None
    spent = [b - a for a, b in zip(start, end, strict=True)]
    return spent if sum(spent) > 0 else None


def _busy_share(start: list[int] | None, end: list[int] | None) -> float | None:
    """The share of all CPUs' time between two readings that was not idle (nor waiting for
    I/O)."""
    spent = _spent(start, end)
    return None if spent is None else round(1 - (spent[3] + spent[4]) / sum(spent), 3)


def _busy_at_rest(seconds: float = 2.0) -> float | None:
    """:func:`_busy_share` over ``seconds`` while the run does nothing: what other processes
    and the kernel's own threads take of the CPUs (on the 2-vCPU machines here a kernel
    memory-reclaim thread took a fifth to a quarter of one CPU at rest, which a run that keeps
    both CPUs busy loses and the CPU probe, on one CPU, does not see)."""
    start = _cpu_times()
    time.sleep(seconds)
    return _busy_share(start, _cpu_times())


def _steal_share(start: list[int] | None, end: list[int] | None) -> float | None:
    """The share of the CPU time between two readings that the hypervisor gave to others
    (steal): time the run waited for a CPU it was not shown as losing in the load average."""
    spent = _spent(start, end)
    return None if spent is None else round(spent[7] / sum(spent), 3)


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
        "cpu_probe_ms_at_start": _cpu_probe(),
        "busy_at_rest_at_start": _busy_at_rest(),
        "git": _git(),
        "versions": _versions(),
    }


def _share_text(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.1%}"


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def _fmt_ratio(value: float) -> str:
    return f"{value:.3f}" if value < 0.1 else f"{value:.2f}"


def format_table(report: Mapping[str, Any]) -> str:
    """The human-readable table printed at the end of a run."""
    lines: list[str] = []
    for run_ in report["runs"]:
        backend = run_["backend"]["backend"]
        for suite in run_["suites"]:
            width = max(
                [22]
                + [len(r["key"]) for r in suite["results"]]
                + [len(g["name"]) for g in suite["goals"]]
            )
            lines.append("")
            lines.append(f"== {suite['suite']} on {backend} ==")
            lines.append(
                f"{'backend':<9} {'case':<{width}} {'median':>12} {'min - max':>23}  "
                f"{'unit':<9} reps"
            )
            for r in suite["results"]:
                spread = f"{_fmt_rate(r['min'])} - {_fmt_rate(r['max'])}"
                lines.append(
                    f"{backend:<9} {r['key']:<{width}} {_fmt_rate(r['median']):>12} "
                    f"{spread:>23}  {r['unit']:<9} {r['repeats']}"
                )
            for g in suite["goals"]:
                target = "(ratio)" if g["target"] is None else f"goal >= {g['target']:.2f}"
                lines.append(
                    f"{backend:<9} {g['name']:<{width}} {_fmt_ratio(g['ratio']):>12} "
                    f"{_fmt_ratio(g['paired_min']):>11} - {_fmt_ratio(g['paired_max']):<9}  "
                    f"{target}  {g['status']}"
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
    cpu_before = _cpu_times()
    for index, name in enumerate(backends):
        with open_backend(name, pg_url=pg_url) as backend:
            entry: dict[str, Any] = {"backend": {"backend": name}, "suites": []}
            for suite in suites(mode):
                if suite.once and index > 0:
                    continue  # does not depend on the database: measured once
                if suite.backends is not None and name not in suite.backends:
                    continue
                reps = min(repeats, suite.repeats) if suite.repeats else repeats
                progress(f"{suite.name} on {name} ({reps} repetitions, interleaved)")
                suite_started = time.perf_counter()
                if suite.measure is not None:
                    done = {"suite": suite.name, **suite.measure(backend, reps, progress)}
                else:
                    done = _run_suite(backend, suite, reps, progress)
                done["wall_seconds"] = round(time.perf_counter() - suite_started, 1)
                progress(
                    f"{suite.name} on {name}: {done['wall_seconds']} s"
                    f" ({time.perf_counter() - started:.0f} s since the start)"
                )
                entry["suites"].append(done)
            entry["backend"] = backend.describe()
            report["runs"].append(entry)
    report["meta"]["wall_seconds"] = round(time.perf_counter() - started, 1)
    report["meta"]["loadavg_at_end"] = _loadavg()
    report["meta"]["steal_share"] = _steal_share(cpu_before, _cpu_times())
    report["meta"]["cpu_probe_ms_at_end"] = _cpu_probe()
    report["meta"]["busy_at_rest_at_end"] = _busy_at_rest()
    print(format_table(report))
    meta = report["meta"]
    at_rest = (_share_text(meta["busy_at_rest_at_start"]), _share_text(meta["busy_at_rest_at_end"]))
    print(
        f"\nwall time {meta['wall_seconds']} s, mode {mode.name}, load average"
        f" {meta['loadavg_at_start']} at start, {meta['loadavg_at_end']} at end;"
        f" CPU probe {meta['cpu_probe_ms_at_start']} ms at start,"
        f" {meta['cpu_probe_ms_at_end']} at end; CPU steal {_share_text(meta['steal_share'])};"
        f" CPUs busy at rest {at_rest[0]} at start, {at_rest[1]} at end"
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"JSON report: {out}")
    return report
