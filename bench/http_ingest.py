"""Ingest over HTTP on loopback: uvicorn serving the vault, several concurrent clients.

``http``
    A vault (``build_vault`` + ``create_app``, the same settings as the ``service`` case of
    ``bench/ingest.py``) served by uvicorn in a subprocess bound to 127.0.0.1 on a port the
    kernel picks; :data:`CLIENTS` client threads, each with its own ``httpx.Client`` (one
    keep-alive connection), ``POST /v1/datasets/{name}/events`` with a collector token until
    the shared list of batches is empty. One server per backend and batch size serves all the
    repetitions (starting one costs more than a quick trial); each repetition ingests into a
    dataset of its own, made empty with the server, and opens its own connections, so no
    trial inherits another's subject-day keys, connections or counts (only the table's earlier
    rows and the warm process). Bodies are JSON-encoded before the clock starts, so the
    clock sees the request, the server's whole ingest and the response. Every request's latency
    is kept for the p50/p95/p99 table (:func:`latency_rows`).

``floor``
    ``bench.ingest.FloorTrial`` on the same events at the same batch size, each repetition in a
    fresh place, measured in the same suite (interleaved with ``http``), so the ratio
    ``http/floor`` is taken in one run.

The server subprocess stops by itself: when its stdin closes (the parent closed it at the end of
the suite, exited or died) or after :data:`SERVER_MAX_SECONDS`, whichever comes first.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.backends import Backend, TrialPlace
from bench.ingest import ADMIN, DATASET, SUBJECTS, FloorTrial
from bench.runner import (
    Case,
    FreshTrial,
    Goal,
    Measure,
    Mode,
    Suite,
    Timed,
    interleave,
    shared_place,
)
from bench.workload import TEXT_BYTES, Workload, key_run_batches

__all__ = [
    "LATENCIES",
    "HttpTrial",
    "add_latency_report",
    "format_latency_table",
    "latency_rows",
    "percentile",
    "suites",
]

GOAL = 0.3
CLIENTS = 4
PASSPHRASE = "bench-passphrase-not-secret"
SERVER_MAX_SECONDS = 3600.0  # a safety net: the suite closes its servers' stdin
READY_SECONDS = 60.0
REQUEST_TIMEOUT = 60.0
PERCENTILES = (50, 95, 99)
_REPO = Path(__file__).resolve().parents[1]

#: Timed requests per trial, by mode and batch size (plus untimed warm-up requests).
REQUESTS: dict[str, dict[int, int]] = {
    "quick": {1: 200, 100: 25, 1000: 6},
    "full": {1: 1200, 100: 150, 1000: 30},
}

#: Every timed request's latency in seconds: backend -> case key -> one list per repetition.
LATENCIES: dict[str, dict[str, list[list[float]]]] = {}


# -- statistics ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_rows(per_case: Mapping[str, Sequence[Sequence[float]]]) -> list[dict[str, Any]]:
    """Per case: p50/p95/p99 in ms over all repetitions' requests pooled, and the spread.

    Pooling gives p99 enough requests to mean something (``requests`` says how many); beside
    each pooled figure, ``per_rep`` holds the min and max of the same percentile computed per
    repetition, as the runner gives min-max beside its medians.
    """
    rows = []
    for key, reps in per_case.items():
        pooled = [x for rep in reps for x in rep]
        if not pooled:
            continue
        row: dict[str, Any] = {"key": key, "requests": len(pooled), "repeats": len(reps)}
        for p in PERCENTILES:
            per_rep = [percentile(rep, p) * 1000 for rep in reps if rep]
            row[f"p{p}_ms"] = round(percentile(pooled, p) * 1000, 2)
            row[f"p{p}_ms_per_rep"] = [round(min(per_rep), 2), round(max(per_rep), 2)]
        row["mean_ms"] = round(statistics.fmean(pooled) * 1000, 2)
        rows.append(row)
    return rows


def format_latency_table(backend: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """The per-request latency table printed after the runner's table."""
    lines = [
        "",
        f"== http-ingest latency on {backend} (ms per request, all repetitions pooled;"
        " per-repetition min-max in brackets) ==",
        f"{'backend':<9} {'case':<26} {'p50':>20} {'p95':>20} {'p99':>20} {'requests':>9}",
    ]
    for r in rows:
        cells = []
        for p in PERCENTILES:
            lo, hi = r[f"p{p}_ms_per_rep"]
            cells.append(f"{r[f'p{p}_ms']:.1f} [{lo:.1f}-{hi:.1f}]")
        lines.append(
            f"{backend:<9} {r['key']:<26} {cells[0]:>20} {cells[1]:>20} {cells[2]:>20} "
            f"{r['requests']:>9}"
        )
    return "\n".join(lines)


def add_latency_report(report: dict[str, Any], out: Path | None) -> None:
    """Print the latency tables and add them to the JSON report (rewritten in place)."""
    if not LATENCIES:
        return
    for run_ in report["runs"]:
        backend = run_["backend"]["backend"]
        per_case = LATENCIES.get(backend)
        if not per_case:
            continue
        rows = latency_rows(per_case)
        for suite in run_["suites"]:
            if suite["suite"] == "http-ingest":
                suite["latency"] = rows
        print(format_latency_table(backend, rows))
    if out is not None:
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


# -- the server (subprocess) ---------------------------------------------------------------------


def dataset_name(index: int) -> str:
    """The dataset of the ``index``-th repetition (from 0) on a server."""
    return f"{DATASET}-{index + 1}"


def _serve(home: Path, database_url: str | None, max_seconds: float, datasets: int) -> None:
    """Build a vault, make ``datasets`` datasets and a collector token for them all, print
    them, serve until told."""
    import uvicorn
    from pydantic import SecretStr

    from vault.api import create_app
    from vault.bootstrap import build_vault
    from vault.config import Settings

    # As ``tvault serve`` does: INFO, so the per-request access log is paid for as in service.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings(
        home=home,
        database_url=database_url,
        master_passphrase=SecretStr(PASSPHRASE),
        scrypt_n=2**14,
        operator="bench",
        maintenance_interval_seconds=0,  # no sweep thread waking inside a trial
    )
    vault = build_vault(settings)
    try:
        names = [dataset_name(i) for i in range(datasets)]
        for name in names:
            vault.datasets.create(
                ADMIN,
                {
                    "name": name,
                    "retention_days": 30,
                    "purposes": ["research"],
                    "consent": "opt_out",
                },
            )
        token = vault.auth.issue_dev_token(
            ADMIN,
            sub="bench-collector",
            roles=["collector"],
            purposes=[],
            datasets=names,
            ttl_seconds=int(max_seconds) + 60,
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it (Linux). uvicorn's own listening socket (`tvault
        # serve`) answers without Nagle's delay; a socket handed over must ask for it, or each
        # keep-alive response waits ~40 ms for the client's delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(vault), log_level="warning", access_log=False, lifespan="on"
        )
        server = uvicorn.Server(config)

        def stop_on_eof() -> None:
            sys.stdin.buffer.read()  # returns when the parent closes our stdin or dies
            server.should_exit = True

        threading.Thread(target=stop_on_eof, daemon=True).start()
        deadline = threading.Timer(max_seconds, lambda: setattr(server, "should_exit", True))
        deadline.daemon = True
        deadline.start()
        print(json.dumps({"port": port, "token": token, "datasets": names}), flush=True)
        server.run(sockets=[sock])
    finally:
        vault.close()


class _Server:
    """The vault's HTTP service in a subprocess, with ``datasets`` empty datasets (one per
    repetition); stopped (and reaped) by :meth:`stop`."""

    def __init__(self, place: TrialPlace, datasets: int) -> None:
        self.home = place.directory / "home"
        self.place = place
        self.log_path = place.directory / "server.log"
        self._log = self.log_path.open("wb")
        command = [sys.executable, "-m", "bench.http_ingest", "--home", str(self.home)]
        if place.database_url is not None:
            command += ["--database-url", place.database_url]
        command += ["--max-seconds", str(SERVER_MAX_SECONDS), "--datasets", str(datasets)]
        self.proc = subprocess.Popen(
            command,
            cwd=_REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        try:
            ready = self._ready_line()
        except BaseException:
            self.stop()
            raise
        self.base_url = f"http://127.0.0.1:{ready['port']}"
        self.token: str = ready["token"]
        self.datasets: list[str] = ready["datasets"]

    def _ready_line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        end = time.monotonic() + READY_SECONDS
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            readable, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if readable:
                line = self.proc.stdout.readline()
                if line:
                    return json.loads(line)
        raise RuntimeError(f"the vault server did not start; see {self._tail()}")

    def _tail(self) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return text[-2000:]

    @property
    def database_url(self) -> str:
        """The server's database (its default SQLite file unless given a URL)."""
        if self.place.database_url is not None:
            return self.place.database_url
        return f"sqlite:///{self.home / 'tvault.sqlite3'}"

    def stop(self) -> None:
        """Close its stdin (it stops serving), wait for it, terminate it if it does not."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


# -- the trial -----------------------------------------------------------------------------------


class HttpTrial:
    """``clients`` threads POSTing pre-encoded batches to ``server``, into ``dataset`` (empty
    until this trial's warm-up: one dataset per trial)."""

    def __init__(
        self,
        server: _Server,
        dataset: str,
        workload: Workload,
        *,
        clients: int,
        warmup: int,
        latencies: list[list[float]],
    ) -> None:
        import httpx

        self.server = server
        self.dataset = dataset
        self.clients = clients
        self.expected = workload.events
        bodies = [json.dumps(b, separators=(",", ":")).encode() for b in workload.batches]
        self.sizes = [len(b) for b in workload.batches]
        headers = {
            "authorization": f"Bearer {server.token}",
            "content-type": "application/json",
        }
        self.sessions = [
            httpx.Client(base_url=server.base_url, headers=headers, timeout=REQUEST_TIMEOUT)
            for _ in range(clients)
        ]
        self.path = f"/v1/datasets/{dataset}/events"
        try:
            # Warm-up (untimed): opens every client's connection, makes the subject-day keys.
            for i in range(warmup):
                self._post(self.sessions[i % clients], bodies[i], self.sizes[i], check=True)
        except BaseException:
            self._shutdown()
            raise
        self.bodies = bodies[warmup:]
        self.timed_sizes = self.sizes[warmup:]
        self.latencies: list[float] = []
        latencies.append(self.latencies)
        self.failures: list[str] = []

    def _post(self, session: Any, body: bytes, size: int, *, check: bool) -> bytes:
        response = session.post(self.path, content=body)
        if response.status_code != 200:
            raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:300]}")
        if check:
            accepted = response.json()["accepted"]
            if accepted != size:
                raise RuntimeError(f"the vault accepted {accepted} of {size} events")
        return response.content

    def run(self) -> int:
        lock = threading.Lock()
        queue = list(range(len(self.bodies)))
        queue.reverse()
        replies: list[tuple[int, bytes]] = []

        def client(session: Any) -> None:
            mine: list[float] = []
            got: list[tuple[int, bytes]] = []
            try:
                while True:
                    with lock:
                        if not queue:
                            break
                        i = queue.pop()
                    start = time.perf_counter()
                    content = self._post(session, self.bodies[i], self.timed_sizes[i], check=False)
                    mine.append(time.perf_counter() - start)
                    got.append((i, content))
            except Exception as exc:
                with lock:
                    self.failures.append(repr(exc))
                    queue.clear()
            with lock:
                self.latencies.extend(mine)
                replies.extend(got)

        threads = [threading.Thread(target=client, args=(s,)) for s in self.sessions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self.failures:
            raise RuntimeError(f"HTTP ingest failed: {self.failures[:3]}")
        self.replies = replies
        return sum(self.timed_sizes)

    def _shutdown(self) -> None:
        for s in self.sessions:
            s.close()

    def close(self) -> None:
        """Close the clients (the server serves on); check every event of this trial's dataset
        was stored."""
        from sqlalchemy import func, select

        from vault.storage import Database
        from vault.storage.tables import datasets, records

        self._shutdown()
        for i, content in getattr(self, "replies", []):
            accepted = json.loads(content)["accepted"]
            if accepted != self.timed_sizes[i]:
                raise RuntimeError(f"the vault accepted {accepted} of {self.timed_sizes[i]}")
        db = Database(self.server.database_url)
        try:
            with db.read() as conn:
                mine = select(datasets.c.id).where(datasets.c.name == self.dataset)
                stored = conn.execute(
                    select(func.count())
                    .select_from(records)
                    .where(records.c.dataset_id == mine.scalar_subquery())
                ).scalar_one()
        finally:
            db.dispose()
        if stored != self.expected:
            raise RuntimeError(f"vault stored {stored} records over HTTP, expected {self.expected}")


# -- suite ---------------------------------------------------------------------------------------


class _HttpCase:
    """The ``http`` case of one batch size on one backend: one server for all repetitions,
    each repetition a fresh :class:`HttpTrial` on the server's next dataset."""

    def __init__(
        self, case: Case, server: _Server, workload: Workload, warmup: int, backend: str
    ) -> None:
        self.case, self.server, self.workload, self.warmup = case, server, workload, warmup
        self.latencies = LATENCIES.setdefault(backend, {}).setdefault(case.key, [])
        self.used = 0
        self.trial: HttpTrial | None = None

    def prepare(self) -> None:
        """Untimed: the next empty dataset, new client connections, the warm-up requests."""
        if self.used >= len(self.server.datasets):
            raise RuntimeError("more repetitions than the server has datasets")
        dataset = self.server.datasets[self.used]
        self.used += 1
        self.trial = HttpTrial(
            self.server,
            dataset,
            self.workload,
            clients=CLIENTS,
            warmup=self.warmup,
            latencies=self.latencies,
        )

    def run(self) -> int:
        """The timed requests."""
        assert self.trial is not None
        return self.trial.run()

    def reset(self) -> None:
        """Untimed: close the clients, check the dataset holds every event."""
        assert self.trial is not None
        trial, self.trial = self.trial, None
        trial.close()


def _cases(mode: Mode) -> list[tuple[Case, Case, Workload, int]]:
    """Per batch size: the floor case, the http case, the http workload and its warm-up."""
    out = []
    for size, count in REQUESTS[mode.name].items():
        # Warm-up: one request per client, and enough events to touch every subject once.
        warmup = max(CLIENTS, math.ceil(SUBJECTS / size))
        http_events = key_run_batches(
            batch_size=size, batches=count + warmup, subjects=SUBJECTS, seed=7
        )
        floor_events = key_run_batches(
            batch_size=size, batches=count + 1, subjects=SUBJECTS, seed=7
        )
        params = {"batch": size}
        http_params = {"batch": size, "clients": CLIENTS}

        def floor(place: TrialPlace, w: Workload = floor_events) -> FloorTrial:
            return FloorTrial(place, w)

        note = f"{count} timed batches of {size} key_run events (~{TEXT_BYTES} B text)"
        floor_case = Case("floor", params, "events/s", floor, note)
        http_case = Case(
            "http",
            http_params,
            "events/s",
            shared_place,
            f"{note}, {CLIENTS} clients over loopback",
        )
        out.append((floor_case, http_case, http_events, warmup))
    return out


def _goal(floor_case: Case, http_case: Case) -> Goal:
    name = f"http/floor[batch={floor_case.params['batch']}]"
    return Goal(name, http_case.key, floor_case.key, GOAL)


def _measure(mode: Mode) -> Measure:
    def measure(backend: Backend, repeats: int, progress: Callable[[str], None]) -> dict[str, Any]:
        work: list[Timed] = []
        goals: list[Goal] = []
        with ExitStack() as stack:
            for floor_case, http_case, events, warmup in _cases(mode):
                size = floor_case.params["batch"]
                place = stack.enter_context(backend.trial(f"http-server-{size}"))
                server = _Server(place, datasets=repeats)
                stack.callback(server.stop)
                http = _HttpCase(http_case, server, events, warmup, backend.name)
                work.append(FreshTrial(backend, floor_case).timed())
                work.append(Timed(http_case, http.run, http.reset, http.prepare))
                goals.append(_goal(floor_case, http_case))
            return interleave(backend.name, work, repeats, progress, goals)

    return measure


def suites(mode: Mode) -> list[Suite]:
    """Floor and HTTP ingest at batch sizes 1, 100 and 1000, and the http/floor goals (the
    suite measures itself: one server per batch size for all its repetitions)."""
    pairs = [(floor, http) for floor, http, _, _ in _cases(mode)]
    cases = [c for pair in pairs for c in pair]
    goals = [_goal(floor, http) for floor, http in pairs]
    return [Suite("http-ingest", cases, goals, measure=_measure(mode))]


def main(argv: Sequence[str] | None = None) -> int:
    """The server launcher (run by :class:`HttpTrial` as ``python -m bench.http_ingest``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.http_ingest", description=__doc__)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--max-seconds", type=float, default=SERVER_MAX_SECONDS)
    parser.add_argument("--datasets", type=int, default=1)
    args = parser.parse_args(argv)
    _serve(args.home, args.database_url, args.max_seconds, args.datasets)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
