"""Benchmarks of telemetry-vault: python -m bench [--quick|--full] [--backend ...] [--out FILE]."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from bench import (
    export_memory,
    growth,
    http_ingest,
    import_export,
    ingest,
    lifecycle,
    partitions,
    peers,
    plots,
    reads,
    redaction,
    sizes,
)
from bench.backends import BACKENDS, DEFAULT_PG_URL
from bench.runner import MIN_REPEATS, Mode, Suite, run

MODES = {"quick": Mode("quick", repeats=5), "full": Mode("full", repeats=7)}
DEFAULT_OUT = Path("bench/results/latest.json")


def all_suites(mode: Mode) -> list[Suite]:
    """Every scenario module's suites, in report order (add new modules here)."""
    out = [
        *ingest.suites(mode),
        *http_ingest.suites(mode),
        *peers.suites(mode),
        *sizes.suites(mode),
        *reads.suites(mode),
    ]
    out += [*import_export.suites(mode), *export_memory.suites(mode), *partitions.suites(mode)]
    out += [*growth.suites(mode), *lifecycle.suites(mode), *redaction.suites(mode)]
    return out


def suite_names() -> list[str]:
    """The names ``--only`` accepts (the quick mode's suites: both modes have the same)."""
    return [s.name for s in all_suites(MODES["quick"])]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="5 repetitions, small workloads: about 2 min on SQLite and 4 on PostgreSQL"
        " on 2 cores shared with other work (default)",
    )
    size.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="7 repetitions, larger workloads (30k timed events per ingest trial, growth to"
        " 10^6 records, sweeps of 10^6, rotations of 10^5 keys): 21 minutes on SQLite and 30"
        " on PostgreSQL here (end to end, 2 cores)",
    )
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="sqlite")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"JSON report path (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="PostgreSQL server to create the bench_* databases on",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="SUITE",
        help="run only this suite (repeatable): ingest, http-ingest, peers, seal, sizes, reads,"
        " import, export, export-memory, partitions, growth, rotation, lifecycle, redaction",
    )
    parser.add_argument(
        "--plots",
        type=Path,
        default=None,
        help=f"where the growth plots go (default {plots.DEFAULT_DIR} with --full; a quick"
        " run draws them only when this is given, so it never replaces the 10^6-record plots)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"override the mode's repetitions (figures need >= {MIN_REPEATS})",
    )
    args = parser.parse_args(argv)
    mode = MODES[args.mode or "quick"]
    if args.repeats is not None:
        if args.repeats < 1:
            parser.error("--repeats must be >= 1")
        mode = Mode(mode.name, args.repeats)
    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    wanted: set[str] | None = None
    if args.only:
        known = suite_names()
        unknown = sorted(set(args.only) - set(known))
        if unknown:
            parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(known)}")
        wanted = set(args.only)

    def chosen(m: Mode) -> list[Suite]:
        return [s for s in all_suites(m) if wanted is None or s.name in wanted]

    # The vault logs a warning per fresh dev signing key; one per trial is noise here.
    logging.basicConfig(level=logging.ERROR)
    report = run(suites=chosen, mode=mode, backends=backends, out=args.out, pg_url=args.pg_url)
    import_export.add_memory_report(report)  # peak memory of the exports, per size
    for entry in report["export_memory"]:
        print(f"export memory: {entry['case']}: peak {entry['peak_bytes_median'] / 2**20:.1f} MiB")
    http_ingest.add_latency_report(report, args.out)  # p50/p95/p99; rewrites the JSON report
    redaction.print_notes(report)
    if args.out is not None:  # the report again, with the memory figures
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot_dir = args.plots or (plots.DEFAULT_DIR if mode.name == "full" else None)
    if plot_dir is not None:
        for path in plots.write_growth_plots(report, plot_dir):
            print(f"growth plot: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
