"""A helper process that redacts an import's next batch while the importer stores the current
one (docs/import.md "Speed"; issue "Protect datasets...", item 8).

Redaction is pure Python and takes about a third of an import's time; storing a batch (sealing,
encoding, the database) takes most of the rest. With one helper process the two overlap on two
cores. The helper is forked from the importing process, so it runs the very redactor the import
uses (same code, same rules, same replacement mode and keys) and nothing is pickled but the
events' stored forms going in and their redactions coming out (:class:`Ahead`: the sealed form
of each redacted body, not the body itself, but for ``key`` events), over a pipe: no file, no
database, no network. The helper holds at most one batch; it ends when the import closes it,
when its parent dies (the pipe's end), or on the import's interruption.

What the helper answers is only a head start: the ingest service uses it for the events it
decides to accept, exactly as :func:`redact_event` would have redacted them, and redacts
anything else itself. Whenever the helper cannot answer (no ``fork`` on this platform, the
process died, a batch it could not redact), the importer redacts in its own process instead,
and a failure there is the import's error, as without a helper.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import pickle
import signal
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from vault.domain.redaction import Redactor, redact_body
from vault.services.cpus import cpus
from vault.services.ingest import Ahead, ahead_of

__all__ = ["RedactionHelper"]

#: How long closing waits for the helper to end by itself before it is terminated.
_JOIN_SECONDS = 5.0
#: How long an answer may take before the helper is given up (and the batch redacted in the
#: importing process): far beyond any batch's redaction (≈ 40 µs an event here), so that only
#: a helper that hangs meets it.
_ANSWER_SECONDS = 60.0
_ANSWER_SECONDS_PER_EVENT = 0.01
_log = logging.getLogger(__name__)


class RedactionHelper:
    """One forked helper process and its pipe; one batch at a time (:meth:`submit`, then
    :meth:`result`). Not thread-safe: one import uses it."""

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self._process = process
        self._conn = conn
        self._pending: int | None = None  # events in the batch submitted, not yet answered
        self.usable = True

    @classmethod
    def start(cls, redactor: Redactor) -> RedactionHelper | None:
        """A helper redacting with ``redactor``; None where processes cannot be forked, or
        where this process may run on one CPU only (the two would take turns: slower)."""
        if "fork" not in multiprocessing.get_all_start_methods() or cpus() < 2:
            return None
        context = multiprocessing.get_context("fork")
        mine, theirs = context.Pipe(duplex=True)
        process = context.Process(
            target=_serve, args=(theirs, mine, redactor), name="tvault-redaction", daemon=True
        )
        try:
            process.start()
        except OSError:
            mine.close()
            theirs.close()
            return None
        theirs.close()  # (the helper's end: the helper sees EOF once this process's end closes)
        return cls(process, mine)

    def submit(self, bodies: list[dict[str, Any]]) -> bool:
        """Send a batch of stored forms (:meth:`TelemetryEvent.stored_form`) to redact; False
        if the helper cannot take it (then it is not used again)."""
        if not self.usable or self._pending is not None:
            return False
        try:
            self._conn.send_bytes(pickle.dumps(bodies, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as exc:  # noqa: BLE001 - any failure: the import redacts in process
            self._give_up(exc)
            return False
        self._pending = len(bodies)
        return True

    def result(self) -> Ahead | None:
        """The redaction of the batch submitted (:class:`Ahead`), waiting for it; None if there
        is none (nothing submitted, or the helper failed)."""
        expected, self._pending = self._pending, None
        if expected is None or not self.usable:
            return None
        deadline = time.monotonic() + _ANSWER_SECONDS + _ANSWER_SECONDS_PER_EVENT * expected
        try:
            while not self._conn.poll(1.0):
                if not self._process.is_alive() or time.monotonic() > deadline:
                    raise TimeoutError("the redaction helper ended or does not answer")
            answer = pickle.loads(self._conn.recv_bytes())  # noqa: S301 - our own child's
        except Exception as exc:  # noqa: BLE001 - any failure: the import redacts in process
            self._give_up(exc)
            return None
        if not isinstance(answer, Ahead) or len(answer.kinds) != expected:
            _log.warning("the redaction helper could not redact a batch; redacting it here")
            return None
        return answer

    def ready(self) -> bool:
        """Whether the answer to the batch submitted can be had without waiting (or the helper
        has ended: :meth:`result` then says None at once)."""
        if self._pending is None or not self.usable:
            return False
        try:
            return self._conn.poll(0)
        except OSError:
            return True

    def _give_up(self, exc: BaseException) -> None:
        _log.warning(
            "the import's redaction helper failed (%s); redacting in this process",
            type(exc).__name__,
        )
        self.close(at_once=True)

    def close(self, *, at_once: bool = False) -> None:
        """End the helper (idempotent): its pipe closed, then the process joined (``at_once``:
        terminated first, as when the import is failing; no batch is waited for)."""
        self.usable = False
        self._pending = None
        self._conn.close()
        if at_once and self._process.is_alive():
            self._process.terminate()
        self._process.join(_JOIN_SECONDS)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(_JOIN_SECONDS)

    def __enter__(self) -> RedactionHelper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(at_once=exc[0] is not None)


def _serve(conn: Connection, parents: Connection, redactor: Redactor) -> None:
    """The helper's loop: batches of stored forms in, ``(body, counts, sealed form)`` lists out
    (None for a batch that raised); ends at EOF. Runs in the forked child only."""
    parents.close()  # only the parent holds its end: its exit is this loop's EOF
    # Nothing else the parent had open is the helper's: not its database connections or
    # locks (which must end with the parent), not its source file, not its output.
    _keep_only(conn.fileno())
    # An interrupt at the terminal reaches the whole process group: the parent handles it
    # and closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent's SIGTERM handler (tvault's: an interrupt) is not the helper's: a SIGTERM
    # (the import's own terminate(), or one sent to the process group) ends it at once.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # The parent's objects are never garbage here: keep the collector off them (no pages
    # copied for its bookkeeping).
    gc.freeze()
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            bodies = pickle.loads(data)  # noqa: S301 - from our own parent
            answer = ahead_of([redact_body(body, redactor) for body in bodies])
            payload = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - the parent redacts this batch itself, and raises
            payload = pickle.dumps(None)
        with contextlib.suppress(OSError):
            conn.send_bytes(payload)


def _keep_only(fd: int) -> None:
    """Close every file descriptor of this (forked) process but ``fd``; standard input and
    output become /dev/null. Closing a copy never closes the parent's: its connections, files
    and locks are untouched."""
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        if std != fd:
            os.dup2(null, std)
    limit = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536
    os.closerange(3, fd)
    os.closerange(fd + 1, max(limit, fd + 2))
