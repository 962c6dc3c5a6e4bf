"""Growth plots: ``bench/results/growth-ingest.png`` and ``growth-read.png`` from a report.

Drawn after a run that measured the ``growth`` suite (``python -m bench`` calls
:func:`write_growth_plots`), or again from a saved report:
``python -m bench.plots bench/results/latest.json [--out DIR]``. Medians with the min-max over
the repetitions as error bars, stored records on a log axis, one line per backend.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_DIR", "growth_series", "main", "write_growth_plots"]

DEFAULT_DIR = Path("bench/results")
PLOTS = {
    "growth-ingest.png": ("Ingest (service, batches of 1000)", "events/s", ("ingest",)),
    "growth-read.png": (
        "Decrypted reads (pages of 1000, first 2000 records)",
        "records/s",
        ("read-by-subject", "read-by-time"),
    ),
}


def growth_series(
    report: Mapping[str, Any],
) -> dict[tuple[str, str], list[tuple[int, float, float, float]]]:
    """(backend, scenario) -> [(stored, median, min, max)] sorted by stored records."""
    series: dict[tuple[str, str], list[tuple[int, float, float, float]]] = {}
    for run_ in report.get("runs", []):
        backend = run_["backend"]["backend"]
        for suite in run_["suites"]:
            if suite["suite"] != "growth":
                continue
            for r in suite["results"]:
                point = (int(r["params"]["stored"]), r["median"], r["min"], r["max"])
                series.setdefault((backend, r["scenario"]), []).append(point)
    return {k: sorted(v) for k, v in series.items()}


def write_growth_plots(report: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Write the PNGs (Agg backend, no display needed); returns the paths (none without data)."""
    series = growth_series(report)
    if not series:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = report.get("meta", {})
    subtitle = (
        f"{meta.get('mode', '?')} mode, {meta.get('repeats', '?')} repetitions, "
        f"{meta.get('started_at', '')}, load {meta.get('loadavg_at_start')}"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, (title, unit, scenarios) in PLOTS.items():
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        drawn = 0
        for (backend, scenario), points in sorted(series.items()):
            if scenario not in scenarios:
                continue
            xs = [p[0] for p in points]
            med = [p[1] for p in points]
            low = [p[1] - p[2] for p in points]
            high = [p[3] - p[1] for p in points]
            label = backend if len(scenarios) == 1 else f"{backend} {scenario}"
            ax.errorbar(xs, med, yerr=[low, high], marker="o", capsize=4, label=label)
            drawn += 1
        if not drawn:
            plt.close(fig)
            continue
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("records stored")
        ax.set_ylabel(unit)
        ax.set_title(f"{title}\n{subtitle}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / filename
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plots", description=__doc__)
    parser.add_argument("report", type=Path, help="a JSON report of python -m bench")
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    report = json.loads(args.report.read_text(encoding="utf-8"))
    written = write_growth_plots(report, args.out)
    if not written:
        print("no growth figures in that report")
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
