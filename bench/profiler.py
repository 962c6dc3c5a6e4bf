"""Profile one timed part: ``python -m bench.profiler [ingest-service|ingest-floor|reads]``.

The same trial the benchmark times (fresh place, untimed preparation and warm-up), run once
under cProfile (always available) or pyinstrument (``--pyinstrument``, if installed). cProfile
adds overhead to every Python call, so read its figures as shares, not absolute speeds.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from collections.abc import Callable, Sequence

from bench import ingest, reads
from bench.backends import BACKENDS, DEFAULT_PG_URL, TrialPlace, open_backend
from bench.runner import Trial


class _ReadTrial:
    """``bench.reads``' vault, filled with batch x batches records; run = both reads."""

    def __init__(self, place: TrialPlace, size: int, n: int) -> None:
        self.reader = reads.VaultReader(place, size * n)

    def run(self) -> int:
        return self.reader.by_subject() + self.reader.by_time()

    def close(self) -> None:
        self.reader.close()


TARGETS: dict[str, Callable[[TrialPlace, int, int], Trial]] = {
    "ingest-service": lambda p, size, n: ingest.ServiceTrial(p, ingest.make_workload(size, n)),
    "ingest-floor": lambda p, size, n: ingest.FloorTrial(p, ingest.make_workload(size, n)),
    "reads": _ReadTrial,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profiler", description=__doc__)
    parser.add_argument("target", choices=sorted(TARGETS), nargs="?", default="ingest-service")
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument("--batch", type=int, default=100, help="events per batch")
    parser.add_argument("--batches", type=int, default=100, help="timed batches")
    parser.add_argument("--top", type=int, default=30, help="rows of the cProfile listing")
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumulative"])
    parser.add_argument(
        "--pyinstrument", action="store_true", help="use pyinstrument (call tree) instead"
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args(argv)

    with open_backend(args.backend, pg_url=args.pg_url) as backend, backend.trial("prof") as place:
        trial = TARGETS[args.target](place, args.batch, args.batches)
        try:
            if args.pyinstrument:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0005)
                start = time.perf_counter()
                profiler.start()
                items = trial.run()
                profiler.stop()
                elapsed = time.perf_counter() - start
                print(profiler.output_text(unicode=True, color=False, show_all=False))
            else:
                prof = cProfile.Profile()
                start = time.perf_counter()
                prof.enable()
                items = trial.run()
                prof.disable()
                elapsed = time.perf_counter() - start
                buf = io.StringIO()
                pstats.Stats(prof, stream=buf).sort_stats(args.sort).print_stats(args.top)
                print(buf.getvalue())
        finally:
            trial.close()
    print(f"{args.target} on {args.backend}: {items} items in {elapsed:.2f} s under the profiler")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
