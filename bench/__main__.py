"""Benchmarks of telemetry-vault: python -m bench [--quick|--full] [--backend ...] [--out FILE]."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from bench import http_ingest, ingest
from bench.backends import BACKENDS, DEFAULT_PG_URL
from bench.runner import MIN_REPEATS, Mode, Suite, run

MODES = {"quick": Mode("quick", repeats=5), "full": Mode("full", repeats=7)}
DEFAULT_OUT = Path("bench/results/latest.json")


def all_suites(mode: Mode) -> list[Suite]:
    """Every scenario module's suites, in report order (add new modules here)."""
    return [*ingest.suites(mode), *http_ingest.suites(mode)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="5 repetitions, ~10k timed events per trial: under a minute per backend (default)",
    )
    size.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="7 repetitions, 30k timed events per trial: 3 to 5 minutes per backend",
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
    # The vault logs a warning per fresh dev signing key; one per trial is noise here.
    logging.basicConfig(level=logging.ERROR)
    report = run(suites=all_suites, mode=mode, backends=backends, out=args.out, pg_url=args.pg_url)
    http_ingest.add_latency_report(report, args.out)  # p50/p95/p99 per batch size
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
