"""Export workers: processes that open and format an export's pages beside the exporting one
(issue "Protect datasets...", export speed; docs/export.md "Speed").

An export spends most of its time opening records (two AES-GCM opens and a check each) and
formatting them, work that holds the interpreter. A worker does that for some of the pages of a
stream while the exporting process reads the next pages from the database and writes what is
done, so an export can use a second CPU. The exporting process stays in charge of everything
else: access, the audit entries, the order of the pages, the manifest and the pseudonyms.

Protocol (one request, one answer, in order, over two anonymous pipes):

- the worker starts as a fresh interpreter in isolated mode running :func:`main` (never a fork of
  a threaded server). It inherits no descriptor but its two pipes, so it holds no database
  connection or lock, and an empty environment, so no passphrase or
  database URL. It says ``ready`` and the :func:`fingerprint` of its code once its imports are
  done;
- each request is a pickled :class:`Request`: a page's raw rows, the export's subject pseudonyms
  for them, and the key material of the page's subject-epoch keys (key material leaves the
  exporting process only through this pipe; the worker keeps it for the page and never writes
  it anywhere);
- the answer is ``+`` and the page's bytes (NDJSON lines, or the page's Arrow table in the
  Arrow IPC stream format), or ``-``: the worker could not do the page (a record that does not
  open, a destroyed key, a body in an unusual form). The exporting process then does that page
  itself, so every error is raised there exactly as without a worker.

A worker that dies, fails to start, runs other code, answers nonsense or stays silent past its
patience (reading a page, answering one, or getting ready) is closed and its pages are done in
process: a worker makes an export faster, never different. Workers exit when their input pipe
closes, so none outlives the exporting process.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["ExportWorker", "Request", "WorkerPool", "serve"]

_LOG = logging.getLogger(__name__)

#: How long a page may take in a worker before it is given up (the machine may be loaded).
PATIENCE_SECONDS = 60.0
_READY = b"ready"
_PIPE_BYTES = 1 << 20
_DONE, _FAILED = b"+", b"-"
#: What the worker's interpreter runs: ``-I -c _BOOT ROOT IN OUT``.
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from vault.services.export_worker import main; sys.exit(main(sys.argv[2:]))"
)
_LENGTH = struct.Struct("!i")  # multiprocessing.connection's frame header
_PR_SET_DUMPABLE = 4


@dataclass(frozen=True, slots=True)
class Request:
    """One page for a worker: what :func:`~vault.services.export_pages.open_page` and the
    format need."""

    fmt: str
    dataset_id: str
    keys: dict[bytes, bytes]
    rows: list[tuple[Any, ...]]
    subjects: list[str]


def answer(request: Request) -> bytes:
    """The bytes of one page (raises whatever opening or formatting raises)."""
    from vault.services import export_pages

    bodies, times = export_pages.open_page(request.dataset_id, request.keys, request.rows, None)
    ids = [row[0] for row in request.rows]
    if request.fmt == "ndjson":
        return export_pages.ndjson_chunk(ids, request.subjects, bodies)
    import pyarrow as pa  # type: ignore[import-untyped]  # no stubs

    table = export_pages.parquet_table(ids, request.subjects, bodies, times)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return bytes(sink.getvalue())


def serve(requests: Connection, answers: Connection) -> None:
    """The worker's loop: answer each request until the input closes.

    Requests are read by a thread of their own, so that the exporting process can always send
    its next page while this one waits to hand over an answer (both pipes full would otherwise
    block both processes). The exporting process sends at most a few pages before it takes
    their answers, so what waits here is bounded."""
    waiting: queue.Queue[bytes | None] = queue.Queue()

    def read() -> None:
        try:
            while True:
                waiting.put(requests.recv_bytes())
        except (EOFError, OSError):
            waiting.put(None)

    threading.Thread(target=read, name="tvault-export-requests", daemon=True).start()
    answers.send_bytes(_READY + fingerprint())
    while (message := waiting.get()) is not None:
        try:
            request = pickle.loads(message)  # noqa: S301 - from the process that started us
            if not isinstance(request, Request):
                raise TypeError("not a request")
            reply = _DONE + answer(request)
        except Exception:  # noqa: BLE001 - the exporting process does the page itself
            reply = _FAILED
        # Nothing of the page (keys, rows, plaintext) stays referenced while idle (its memory
        # is freed, not wiped: the process is not dumpable and writes nothing anywhere).
        request = message = None
        try:
            answers.send_bytes(reply)
        except OSError:
            return
        reply = b""


def _harden() -> None:
    """No core file can hold the keys or plaintext this process sees, and (Linux) the process
    is not dumpable: no core through a dump helper, no ptrace or /proc/<pid>/mem reads by other
    processes of the same user. Ctrl-C in a terminal reaches the exporting process, which
    closes its workers."""
    with contextlib.suppress(ImportError, ValueError, OSError):  # not on every platform
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with contextlib.suppress(OSError, AttributeError, TypeError):  # Linux only
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def fingerprint() -> bytes:
    """A digest of the code a worker runs (this module, the page code, the record envelope),
    read when this module was imported, so as this process loaded it: a worker started after
    the files changed on disk (an upgrade in place) says another one and is not used."""
    return _FINGERPRINT[0]


def _digest() -> bytes:
    from vault.crypto import envelope
    from vault.services import export_pages

    digest = hashlib.sha256()
    for module in (sys.modules[__name__], export_pages, envelope):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest().encode("ascii")


def main(argv: list[str]) -> int:
    """The worker process: serve on the two descriptors ``IN OUT``."""
    _harden()
    fd_in, fd_out = int(argv[0]), int(argv[1])
    _warm()
    serve(Connection(fd_in, writable=False), Connection(fd_out, readable=False))
    return 0


def _warm() -> None:
    """Before saying ready: one made-up page (a throwaway key, a fixed body) opened and
    formatted both ways, so that the first real page pays no first-use costs (imports, Arrow's
    kernels, the IPC writer)."""
    from vault.crypto.envelope import RecordSealer

    sek, sek_id = os.urandom(32), os.urandom(16)
    sealer = RecordSealer(sek, "warm-up", "warm-up", 0, sek_id)
    body = b'{"time":"2026-01-01T00:00:00.000Z","kind":"key_run","data":{"text":"warm-up"}}'
    rows: list[tuple[Any, ...]] = []
    for _ in range(_WARM_ROWS):
        rid = os.urandom(16)
        row = (rid.hex(), "warm-up", 0, "2026-01-01 00:00:00.000000", "key_run", sek_id)
        rows.append((*row, sealer.seal(rid, body)))
    for fmt in ("ndjson", "parquet"):
        answer(Request(fmt, "warm-up", {sek_id: sek}, rows, ["0"] * len(rows)))


_WARM_ROWS = 64


def _pickled(request: Request) -> bytes:
    """``request`` pickled without the memo: a page's thousands of small values (ids, times,
    envelopes) are each written once, so remembering them only costs (seven times the
    pickling time with it). A request holds no cycle, which is what the memo would guard."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = True  # no memo
    pickler.dump(request)
    return out.getvalue()


def _widen(fd: int) -> None:
    """A pipe that holds a whole page where the system allows it (Linux: up to
    /proc/sys/fs/pipe-max-size, 1 MiB by default): fewer waits on both sides."""
    size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, size, _PIPE_BYTES)


class ExportWorker:
    """The exporting process's end of one worker: requests out, answers back, in order."""

    def __init__(self, process: subprocess.Popen[bytes], out: int, back: Connection):
        self._process = process
        self._out = out  # non-blocking: a send waits at most PATIENCE_SECONDS
        self._back = back
        self._ready = False
        self._started = time.monotonic()
        #: Requests sent and not answered yet.
        self.outstanding = 0
        #: Pages answered (for tests).
        self.answered = 0

    @property
    def usable(self) -> bool:
        """Whether the worker may still be used (not closed)."""
        return self._out >= 0

    @classmethod
    def start(cls) -> ExportWorker | None:
        """A new worker process (not ready yet: see :meth:`ready`), or None if none starts."""
        fds: list[int] = []
        try:
            requests_r, requests_w = os.pipe()
            fds += [requests_r, requests_w]
            answers_r, answers_w = os.pipe()
            fds += [answers_r, answers_w]
            for fd in (requests_w, answers_w):
                _widen(fd)
            os.set_blocking(requests_w, False)
            # Isolated mode (no PYTHON* variables, no user site, not the working directory on
            # the path), then the same vault package as ours first on the path.
            root = str(Path(__file__).resolve().parents[2])
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-I", "-c", _BOOT, root, str(requests_r), str(answers_w)],
                pass_fds=(requests_r, answers_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,  # nothing a page holds may reach a log
                env={},  # nothing of ours: no passphrase, no database URL
            )
        except Exception:  # noqa: BLE001 - no worker: the export runs in process
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            return None
        os.close(requests_r)
        os.close(answers_w)
        return cls(process, requests_w, Connection(answers_r, writable=False))

    def ready(self) -> bool:
        """Whether the worker has said it is ready, running our code (never waits); a worker
        that has not said so within PATIENCE_SECONDS, or says another code, is closed."""
        if self._ready or not self.usable:
            return self._ready and self.usable
        try:
            if self._back.poll(0):
                self._ready = self._back.recv_bytes() == _READY + fingerprint()
                if not self._ready:
                    self._give_up("it runs other code")
            elif time.monotonic() - self._started > PATIENCE_SECONDS:
                self._give_up("it was not ready in time")
        except (EOFError, OSError):
            self._give_up("it ended before it was ready")
        return self._ready and self.usable

    def _give_up(self, why: str) -> None:
        _LOG.warning("export worker not used (%s); exports run in process", why)
        self.close()

    def submit(self, request: Request) -> bool:
        """Send one page; False if the worker cannot take it within PATIENCE_SECONDS (it is
        then closed, and the page is done in process)."""
        if not self.ready():
            return False
        try:
            payload = _pickled(request)
            self._send(_LENGTH.pack(len(payload)) + payload)
        except Exception:  # noqa: BLE001 - any failure: the page is done in process
            self.close()
            return False
        self.outstanding += 1
        return True

    def _send(self, message: bytes) -> None:
        """Write ``message`` (framed as Connection.send_bytes frames it) within the patience."""
        view = memoryview(message)
        deadline = time.monotonic() + PATIENCE_SECONDS
        while view:
            left = deadline - time.monotonic()
            if left <= 0 or self._process.poll() is not None:
                raise TimeoutError("the export worker takes no more")
            _, writable, _ = select.select([], [self._out], [], min(left, 1.0))
            if writable:
                with contextlib.suppress(BlockingIOError):
                    view = view[os.write(self._out, view[:_PIPE_BYTES]) :]

    def answered_next(self) -> bool:
        """Whether the answer to the oldest outstanding request has arrived (never waits)."""
        try:
            return self.outstanding > 0 and self.usable and self._back.poll(0)
        except (EOFError, OSError):
            self.close()
            return False

    def result(self) -> bytes | None:
        """The bytes of the oldest outstanding page, waiting for them; None if the worker did
        not do it (it failed the page, or died or stalled: then it is closed)."""
        if self.outstanding <= 0:
            raise RuntimeError("no page is outstanding")
        self.outstanding -= 1
        if not self.usable:
            return None
        deadline = time.monotonic() + PATIENCE_SECONDS
        try:
            while not self._back.poll(min(1.0, max(0.0, deadline - time.monotonic()))):
                if self._process.poll() is not None or time.monotonic() >= deadline:
                    self.close()
                    return None
            reply = self._back.recv_bytes()
        except (EOFError, OSError):
            self.close()
            return None
        if reply[:1] != _DONE:
            return None
        self.answered += 1
        return reply[1:]

    def close(self) -> None:
        """End the worker now (its pages still outstanding are done in process)."""
        if self._out < 0:
            return
        with contextlib.suppress(OSError):
            os.close(self._out)
        self._out = -1
        with contextlib.suppress(OSError):  # already closed
            self._back.close()
        if self._process.poll() is None:
            self._process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # killed processes end
            self._process.wait(timeout=5)


class WorkerPool:
    """Export workers shared by a service's exports, one export at a time each; started on
    demand, up to ``size``, and kept for the next export."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: list[ExportWorker] = []
        self._live = 0
        self._closed = False
        self._lock = threading.Lock()

    def take(self) -> ExportWorker | None:
        """An idle worker, or a new one while fewer than ``size`` live; None otherwise."""
        with self._lock:
            if self._closed:
                return None
            while self._idle:
                idle = self._idle.pop()
                if idle.usable:
                    return idle
                self._live -= 1
            if self._live >= self.size:
                return None
            self._live += 1
        worker = None
        try:
            worker = ExportWorker.start()
        finally:
            if worker is None:
                with self._lock:
                    self._live -= 1
        return worker

    def give_back(self, worker: ExportWorker) -> None:
        """Return a worker after its export: kept if it is sound and owes nothing, else closed."""
        keep = worker.usable and worker.outstanding == 0
        with self._lock:
            keep = keep and not self._closed
            if keep:
                self._idle.append(worker)
            else:
                self._live -= 1
        if not keep:
            worker.close()

    def prestart(self, wait_seconds: float) -> int:
        """Start the pool's workers now (not at the first long export), waiting up to
        ``wait_seconds`` for them to be ready; how many are ready."""
        taken: list[ExportWorker] = []
        while (worker := self.take()) is not None:
            taken.append(worker)
        deadline = time.monotonic() + wait_seconds
        while not all(worker.ready() or not worker.usable for worker in taken):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        ready = sum(worker.ready() for worker in taken)
        for worker in taken:
            self.give_back(worker)
        return ready

    def close(self) -> None:
        """Close the idle workers; those in use are closed when given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._live -= len(idle)
        for worker in idle:
            worker.close()


_FINGERPRINT = [_digest()]  # a list, so that a test can put another one in
