"""The redaction speed comparison (``bench.redaction_speed``) as a suite of ``python -m bench``.

The measurement is ``bench.redaction_speed.measure_speed`` unchanged (ours ``redact_event`` and
``redact_text`` beside detect-secrets and Presidio's pattern recognizers on the same texts,
interleaved; see that module), run once per run (it does not touch the database) and turned
into the runner's rows; the ratios of ours to each peer are given for information. The
separate command ``python -m bench.redaction_speed`` still runs it with the accuracy scoring.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bench.backends import Backend
from bench.runner import Case, Goal, Mode, Suite, goal_entry, result_entry, shared_place

__all__ = ["print_notes", "suites"]

OURS = "ours-redact_text"
PEERS = ("detect-secrets-scan_file", "presidio-core-patterns", "presidio-all-patterns")


def _key(name: str) -> str:
    return name.replace(" ", "-")


def rows(speed: Mapping[str, Any]) -> dict[str, Any]:
    """``measure_speed``'s results as the runner's results and goals."""
    results, rates = [], {}
    for name, figures in speed.items():
        if name.startswith("_"):
            continue
        samples = [float(x) for x in figures["samples"]]
        items = int(figures["items"])
        case = Case(_key(name), {}, str(figures["unit"]), shared_place, "bench.redaction_speed")
        results.append(
            result_entry(case, samples, [items] * len(samples), [items / r for r in samples])
        )
        rates[case.key] = samples
    goals = [
        goal_entry(Goal(f"{OURS}/{peer}", OURS, peer, None), rates[OURS], rates[peer])
        for peer in PEERS
        if OURS in rates and peer in rates
    ]
    return {"results": results, "goals": goals}


def _measure(mode: Mode) -> Callable[[Backend, int, Callable[[str], None]], dict[str, Any]]:
    def measure(backend: Backend, repeats: int, progress: Callable[[str], None]) -> dict[str, Any]:
        del backend
        from bench.redaction_eval import DEFAULT_ENGINE
        from bench.redaction_speed import measure_speed

        progress("  redaction speed (bench.redaction_speed.measure_speed)")
        speed, notes = measure_speed(mode.name, DEFAULT_ENGINE, repeats)
        return {**rows(speed), "notes": list(notes), "workload": speed.get("_workload")}

    return measure


def suites(mode: Mode) -> list[Suite]:
    """One suite, measured on the first backend only."""
    return [Suite("redaction", measure=_measure(mode), once=True)]


def print_notes(report: Mapping[str, Any]) -> None:
    """Print what the redaction suite had to say (a missing peer, recognizers not loaded)."""
    for run_ in report["runs"]:
        for suite in run_["suites"]:
            for note in suite.get("notes", ()) if suite["suite"] == "redaction" else ():
                print(f"redaction: {note}")
