"""Export workers (vault/services/export_worker.py): an export with a worker is the export
without one, byte for byte, whatever happens to the worker; errors are raised as without one."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import select, text, update

from tests.conftest import COLLECTOR, READER, event, make_dataset
from vault.bootstrap import Vault, build_vault
from vault.errors import DecryptionError
from vault.services import export as export_module
from vault.services import export_worker
from vault.services.export import ExportQuery
from vault.services.export_worker import ExportWorker, Request, WorkerPool
from vault.storage.tables import records

PAGE = 7
RECORDS = 60  # 9 pages of 7


@pytest.fixture
def two(
    settings_factory: Callable[..., Any], clock: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Vault, Vault]]:
    """Two vaults on the same database: one with a worker (ready before the test), one with
    none, and small pages."""
    monkeypatch.setattr(export_module, "PAGE", PAGE)
    with_worker = build_vault(settings_factory(export_workers=1), now=clock)
    without = build_vault(settings_factory(export_workers=0), now=clock)
    make_dataset(with_worker, "ux")
    batch = [
        event(clock, f"emp-{i % 4}", data={"text": f'line {i} "quoted" \\ é'})
        for i in range(RECORDS)
    ]
    assert with_worker.ingest.ingest(COLLECTOR, "ux", batch)["accepted"] == RECORDS
    warm(with_worker.exports._workers)
    try:
        yield with_worker, without
    finally:
        with_worker.close()
        without.close()


def warm(pool: WorkerPool) -> None:
    """Start the pool's worker and wait until it is ready (as on a running service)."""
    assert pool.prestart(wait_seconds=30) == 1, "the export worker did not start"


def answered(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many pages workers answered, per export (spied)."""
    counts: list[int] = []
    result = ExportWorker.result

    def counted(self: ExportWorker) -> bytes | None:
        payload = result(self)
        counts.append(payload is not None)
        return payload

    monkeypatch.setattr(ExportWorker, "result", counted)
    return counts


def export(vault: Vault, fmt: str) -> bytes:
    _, chunks = vault.exports.start(READER, "ux", "research", ExportQuery(format=fmt))
    return b"".join(chunks)


@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
def test_a_worker_makes_the_same_export(two, monkeypatch, fmt: str) -> None:
    with_worker, without = two
    used = answered(monkeypatch)
    made = export(with_worker, fmt)
    assert sum(used) >= 2, "the worker did not answer any page"
    plain = export(without, fmt)
    assert made == plain
    if fmt == "parquet":
        parsed = pq.ParquetFile(io.BytesIO(made))
        assert parsed.metadata.num_row_groups == -(-RECORDS // PAGE)
        assert parsed.read().num_rows == RECORDS
    with with_worker.db.read() as conn:
        rows = conn.execute(text("SELECT records, ids_sha256, finished_at FROM exports")).all()
    assert len(rows) == 2
    assert rows[0].records == rows[1].records == RECORDS
    assert rows[0].ids_sha256 == rows[1].ids_sha256
    assert all(row.finished_at is not None for row in rows)


@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
def test_a_worker_killed_mid_export_changes_nothing(two, monkeypatch, fmt: str) -> None:
    with_worker, without = two
    submit = ExportWorker.submit
    sent: list[int] = []

    def kill_after_two(self: ExportWorker, request: Request) -> bool:
        ok = submit(self, request)
        sent.append(ok)
        if len(sent) == 2:
            os.kill(self._process.pid, signal.SIGKILL)
        return ok

    monkeypatch.setattr(ExportWorker, "submit", kill_after_two)
    assert export(with_worker, fmt) == export(without, fmt)
    assert sent[:2] == [True, True]
    # (a page or two may still go into the pipe before the kill lands); once refused, never again
    first_refused = sent.index(False) if False in sent else len(sent)
    assert not any(sent[first_refused:]), "a dead worker was sent pages"
    # The dead worker is not kept: the next export starts a new one, or does without.
    assert not with_worker.exports._workers._idle


def tamper(vault: Vault, offset: int) -> None:
    """Flip a bit of the tag of the record at ``offset`` in the export's order."""
    with vault.db.write() as conn:
        rid = conn.execute(
            select(records.c.id)
            .order_by(records.c.event_time, records.c.id)
            .offset(offset)
            .limit(1)
        ).scalar_one()
        envelope = conn.execute(select(records.c.envelope).where(records.c.id == rid)).scalar()
        broken = bytes(envelope[:-1]) + bytes([envelope[-1] ^ 1])
        conn.execute(update(records).where(records.c.id == rid).values(envelope=broken))


def failed_exports(vaults: tuple[Vault, Vault]) -> list[bytes]:
    """What each vault's export sent before it raised DecryptionError."""
    outcomes = []
    for vault in vaults:
        _, chunks = vault.exports.start(READER, "ux", "research", ExportQuery())
        got: list[bytes] = []
        with pytest.raises(DecryptionError):
            got.extend(chunks)
        outcomes.append(b"".join(got))
    return outcomes


@pytest.mark.parametrize(("offset", "hold_answers"), [(40, False), (24, True)])
def test_a_tampered_record_fails_as_without_a_worker(
    two, monkeypatch, offset: int, hold_answers: bool
) -> None:
    """The stream ends at the tampered record's page, after every page before it, and the
    manifests agree, whether the worker meets the page (it answers '-', the page is opened
    here and raises) or the page is opened here while pages before it are still in the worker
    (``hold_answers``: the worker's answers are taken only when the queue is full, so page 3
    is opened here behind pages 0 to 2; its error waits for its turn)."""
    with_worker, _ = two
    tamper(with_worker, offset)
    if hold_answers:
        monkeypatch.setattr(ExportWorker, "answered_next", lambda self: False)
    used = answered(monkeypatch)
    outcomes = failed_exports(two)
    before = offset // PAGE * PAGE
    assert [len(o.splitlines()) for o in outcomes] == [before, before]
    assert outcomes[0] == outcomes[1]
    assert sum(used) >= 1, "the worker answered no page"
    with with_worker.db.read() as conn:
        rows = conn.execute(text("SELECT records, finished_at FROM exports")).all()
    assert [(row.records, row.finished_at) for row in rows] == [(before, None), (before, None)]


def test_an_abandoned_export_does_not_keep_a_busy_worker(two, monkeypatch) -> None:
    """A client that leaves mid-stream: the worker still owes pages, so it is ended (not kept
    for the next export with answers in its pipe) and the manifest says interrupted."""
    with_worker, _ = two
    pool = with_worker.exports._workers
    (worker,) = pool._idle
    monkeypatch.setattr(ExportWorker, "answered_next", lambda self: False)
    _, chunks = with_worker.exports.start(READER, "ux", "research", ExportQuery())
    next(chunks)
    next(chunks)  # page 1 out; pages 2 and 3 still in the worker
    assert worker.outstanding > 0
    chunks.close()  # type: ignore[attr-defined]  # a generator
    assert worker._process.poll() is not None
    assert pool._idle == []
    assert pool._live == 0
    with with_worker.db.read() as conn:
        row = conn.execute(text("SELECT records, finished_at FROM exports")).one()
    assert (row.records, row.finished_at) == (14, None)


def test_concurrent_exports_share_one_worker(two) -> None:
    """Two exports at once with a pool of one: one gets the worker, the other runs in
    process; both are whole, and the pool ends with its one worker idle."""
    with_worker, without = two
    expected = export(without, "ndjson")
    results: list[bytes] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(3):
                results.append(export(with_worker, "ndjson"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert results == [expected] * 9
    pool = with_worker.exports._workers
    assert pool._live == len(pool._idle) == 1


def test_pages_before_a_read_failure_still_go_out(two, monkeypatch) -> None:
    """A database error reading page 6: pages 0 to 5 are sent first, with or without a
    worker (some of them may still be in the worker when the error comes)."""
    calls: list[int] = []
    fetch = export_module.ExportService._fetch

    def failing(self: Any, *args: Any) -> Any:
        calls.append(1)
        if len(calls) % 7 == 0:  # the 7th page of each export
            raise RuntimeError("the database went away")
        return fetch(self, *args)

    monkeypatch.setattr(export_module.ExportService, "_fetch", failing)
    monkeypatch.setattr(ExportWorker, "answered_next", lambda self: False)
    sent = []
    for vault in two:
        _, chunks = vault.exports.start(READER, "ux", "research", ExportQuery())
        got: list[bytes] = []
        with pytest.raises(RuntimeError, match="went away"):
            got.extend(chunks)
        sent.append(b"".join(got))
    assert [len(part.splitlines()) for part in sent] == [42, 42]
    assert sent[0] == sent[1]


def test_an_answer_that_does_not_decode_is_done_in_process(two, monkeypatch) -> None:
    with_worker, without = two
    monkeypatch.setattr(ExportWorker, "result", lambda self: b"not arrow")
    assert export(with_worker, "parquet") == export(without, "parquet")


def test_a_worker_that_stops_reading_is_given_up_on_send(two, monkeypatch) -> None:
    """A stalled worker with its pipe full: the send gives up at the patience, never hangs."""
    with_worker, _ = two
    request, _ = page_request(with_worker)
    filler = [os.urandom(256 * 1024).hex() for _ in range(16)]  # 8 MB that pickle cannot share
    big = Request(request.fmt, request.dataset_id, request.keys, request.rows, filler)
    worker = started()
    try:
        os.kill(worker._process.pid, signal.SIGSTOP)
        monkeypatch.setattr(export_worker, "PATIENCE_SECONDS", 0.5)
        began = time.monotonic()
        sent = [worker.submit(big) for _ in range(3)]
        assert time.monotonic() - began < 10
        assert sent[-1] is False
        assert not worker.usable
        assert worker._process.poll() is not None
    finally:
        worker.close()


def test_no_worker_when_its_pipes_cannot_be_made(settings_factory, clock, monkeypatch) -> None:
    def no_pipes() -> tuple[int, int]:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(export_worker.os, "pipe", no_pipes)
    pool = WorkerPool(1)
    assert pool.take() is None
    assert pool._live == 0


def test_the_worker_gets_no_secrets_in_its_environment(two, monkeypatch) -> None:
    monkeypatch.setenv("TVAULT_MASTER_PASSPHRASE", "never-in-a-worker")
    monkeypatch.setenv("PYTHONPATH", "/nonexistent-python-path")
    worker = started()
    try:
        with open(f"/proc/{worker._process.pid}/environ", "rb") as fh:
            environ = fh.read()
        assert b"never-in-a-worker" not in environ
        assert b"TVAULT_" not in environ
        assert b"PYTHONPATH" not in environ
        with open(f"/proc/{worker._process.pid}/status", encoding="ascii") as fh:
            status = fh.read()
        assert "\nCoreDumping:\t0" in status or "CoreDumping" not in status
    finally:
        worker.close()


def test_a_worker_running_other_code_is_not_used(two, monkeypatch) -> None:
    """A worker started after the code changed on disk says another fingerprint."""
    monkeypatch.setattr(export_worker, "_FINGERPRINT", [b"0" * 64])
    worker = ExportWorker.start()
    assert worker is not None
    deadline = time.monotonic() + 30
    while worker.usable and not worker.ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not worker.usable
    assert worker._process.poll() is not None


def test_closing_the_vault_ends_its_workers(settings_factory, clock) -> None:
    vault = build_vault(settings_factory(export_workers=1), now=clock)
    try:
        warm(vault.exports._workers)
        (worker,) = vault.exports._workers._idle
    finally:
        vault.close()
    assert worker._process.poll() is not None
    assert vault.exports._workers.take() is None


def test_no_worker_when_none_is_configured(settings_factory, clock, monkeypatch) -> None:
    monkeypatch.setattr(export_module, "PAGE", PAGE)
    started: list[int] = []
    monkeypatch.setattr(ExportWorker, "start", classmethod(lambda cls: started.append(1)))
    vault = build_vault(settings_factory(export_workers=0), now=clock)
    try:
        make_dataset(vault, "ux")
        batch = [event(clock, "emp-1") for _ in range(30)]
        assert vault.ingest.ingest(COLLECTOR, "ux", batch)["accepted"] == 30
        assert len(export(vault, "ndjson").splitlines()) == 30
        assert vault.exports.prestart_workers(wait_seconds=1) == 0
    finally:
        vault.close()
    assert started == []


def test_a_worker_that_never_starts_leaves_the_export_in_process(
    settings_factory, clock, monkeypatch
) -> None:
    """A worker whose interpreter cannot start (here: a missing executable) is no worker."""
    monkeypatch.setattr(export_module, "PAGE", PAGE)
    monkeypatch.setattr(export_worker.sys, "executable", "/nonexistent/python")
    vault = build_vault(settings_factory(export_workers=1), now=clock)
    try:
        make_dataset(vault, "ux")
        batch = [event(clock, "emp-1") for _ in range(30)]
        assert vault.ingest.ingest(COLLECTOR, "ux", batch)["accepted"] == 30
        assert len(export(vault, "parquet")) > 0
        assert len(export(vault, "ndjson").splitlines()) == 30
        assert vault.exports._workers._live == 0
    finally:
        vault.close()


def started() -> ExportWorker:
    worker = ExportWorker.start()
    assert worker is not None
    deadline = time.monotonic() + 30
    while not worker.ready():
        assert time.monotonic() < deadline, "the export worker did not start"
        time.sleep(0.01)
    return worker


def page_request(vault: Vault) -> tuple[Request, bytes]:
    """A request for the first page of ``ux`` and the NDJSON the exporting process makes."""
    with vault.db.read() as conn:
        ds = conn.execute(text("SELECT id FROM datasets WHERE name = 'ux'")).one()
        where = vault.reads.filters(ds.id, since=None, until=None)
        fetched = vault.reads.fetch_page(conn, where, PAGE, {})
    keys = {sek_id: sek.key for sek_id, sek in fetched.keys.items()}
    rows = [tuple(row) for row in fetched.rows]
    subjects = [f"{i:02x}" for i in range(len(rows))]
    opened = vault.reads.open_fetched(ds, fetched)
    ids = [row[0] for row in rows]
    from vault.services.export_pages import ndjson_chunk

    return Request("ndjson", ds.id, keys, rows, subjects), ndjson_chunk(
        ids, subjects, opened.bodies
    )


def test_the_worker_protocol(two) -> None:
    """Pages answered in order; a page it cannot do is '-' (None here) and it goes on; it holds
    no descriptor but its two pipes; it ends when its input closes."""
    with_worker, _ = two
    request, expected = page_request(with_worker)
    worker = started()
    try:
        fds = sorted(int(fd) for fd in os.listdir(f"/proc/{worker._process.pid}/fd"))
        # stdin/stdout/stderr on /dev/null, the two pipes; nothing of this process's.
        assert len(fds) == 5
        wrong_key = Request(
            "ndjson",
            request.dataset_id,
            {k: bytes(32) for k in request.keys},
            request.rows,
            request.subjects,
        )
        no_key = Request("ndjson", request.dataset_id, {}, request.rows, request.subjects)
        for sent in (request, wrong_key, no_key, request):
            assert worker.submit(sent)
        assert worker.outstanding == 4
        assert worker.result() == expected
        assert worker.result() is None
        assert worker.result() is None
        assert worker.result() == expected
        assert worker.usable
        assert worker.answered == 2
        worker._send(export_worker._LENGTH.pack(12) + b"not a pickle")
        worker.outstanding += 1
        assert worker.result() is None
        assert worker.usable
        os.close(worker._out)  # its input closes: it ends by itself
        worker._out = -1
        assert worker._process.wait(timeout=10) == 0
    finally:
        worker.close()


def test_a_stalled_worker_is_given_up(two, monkeypatch) -> None:
    with_worker, _ = two
    request, _ = page_request(with_worker)
    worker = started()
    try:
        os.kill(worker._process.pid, signal.SIGSTOP)
        monkeypatch.setattr(export_worker, "PATIENCE_SECONDS", 0.5)
        assert worker.submit(request)
        began = time.monotonic()
        assert worker.result() is None
        assert time.monotonic() - began < 5
        assert not worker.usable
        assert worker._process.poll() is not None
    finally:
        worker.close()


def test_requests_are_pickled_without_a_memo(two) -> None:
    """A request goes out pickled without the memo (its values written once each): it loads
    as the same request; one holding a cycle (which only the memo would guard) is not sent
    (the worker is closed and the page is done in process)."""
    import pickle

    with_worker, _ = two
    request, _ = page_request(with_worker)
    assert pickle.loads(export_worker._pickled(request)) == request
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    looped = Request("ndjson", request.dataset_id, request.keys, [*request.rows, cyclic], [])
    with pytest.raises(ValueError, match="cyclic"):
        export_worker._pickled(looped)
    worker = started()
    try:
        assert not worker.submit(looped)
        assert worker.outstanding == 0
        assert not worker.usable
    finally:
        worker.close()
