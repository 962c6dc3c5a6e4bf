"""Group commit: concurrent writes on SQLite share one transaction, each in its own savepoint;
on PostgreSQL each is a transaction of its own. The same outcomes on both."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, func, insert, select

from tests.conftest import COLLECTOR, OPERATOR, Clock, event, make_dataset
from vault.bootstrap import Vault
from vault.errors import ValidationFailed
from vault.storage import Database
from vault.storage.tables import records

_META = MetaData()
_ITEMS = Table("items", _META, Column("id", Integer, primary_key=True), Column("v", String))


@pytest.fixture
def db(database_url: str) -> Any:
    database = Database(database_url)
    with database.write() as conn:
        _META.create_all(conn)
    yield database
    database.dispose()


def _concurrently(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run each job in its own thread, all released at once; results or exceptions."""
    out: list[Any] = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = jobs[i]()
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def _writer(db: Database, i: int, *, fail: bool = False) -> Callable[[], Any]:
    def work(conn: Connection) -> int:
        conn.execute(insert(_ITEMS).values(id=i, v=f"v{i}"))
        if fail:
            raise ValueError(f"job {i} refuses")
        return i

    return lambda: db.write_shared(work)


def _ids(db: Database) -> set[int]:
    with db.read() as conn:
        return {int(r) for r in conn.execute(select(_ITEMS.c.id)).scalars()}


def test_concurrent_writes_all_commit_and_each_gets_its_result(db: Database) -> None:
    results = _concurrently([_writer(db, i) for i in range(40)])
    assert results == list(range(40))
    assert _ids(db) == set(range(40))


def test_a_failing_write_is_rolled_back_alone(db: Database) -> None:
    results = _concurrently([_writer(db, i, fail=i % 5 == 0) for i in range(30)])
    for i, result in enumerate(results):
        if i % 5 == 0:
            assert isinstance(result, ValueError)
            assert str(result) == f"job {i} refuses"
        else:
            assert result == i
    assert _ids(db) == {i for i in range(30) if i % 5}


def test_conflicting_writes_fail_alone(db: Database) -> None:
    results = _concurrently([_writer(db, 7), _writer(db, 7)])
    assert sorted(type(r).__name__ for r in results) == ["IntegrityError", "int"]
    assert _ids(db) == {7}


def test_a_failed_commit_reaches_every_caller_and_keeps_nothing(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = db.write

    @contextmanager
    def failing_write() -> Iterator[Connection]:
        with real_write() as conn:
            yield conn
            raise OSError("disk full")  # after the work, before the commit: rolled back

    monkeypatch.setattr(db, "write", failing_write)
    results = _concurrently([_writer(db, i) for i in range(12)])
    assert all(isinstance(r, OSError) and str(r) == "disk full" for r in results)
    monkeypatch.undo()
    assert _ids(db) == set()
    assert db.write_shared(lambda conn: 5) == 5  # and the next writer goes on


def test_single_writer_needs_no_savepoint(db: Database) -> None:
    assert db.write_shared(lambda conn: conn.execute(insert(_ITEMS).values(id=1)) and 1) == 1
    with pytest.raises(ValueError):
        _writer(db, 2, fail=True)()
    assert _ids(db) == {1}


def test_concurrent_ingest_batches_keep_the_audit_chain(vault: Vault, clock: Clock) -> None:
    make_dataset(vault)

    def batch(n: int) -> Callable[[], Any]:
        items = [event(clock, subject=f"emp-{n % 3}", data={"text": f"batch {n} e{k}"})
                 for k in range(5)]  # fmt: skip
        if n % 7 == 3:
            items.append({"kind": "nonsense"})  # schema-invalid: refused whole, before writing
        return lambda: vault.ingest.ingest(COLLECTOR, "ux", items)

    results = _concurrently([batch(n) for n in range(24)])
    stored = 0
    for n, result in enumerate(results):
        if n % 7 == 3:
            assert isinstance(result, ValidationFailed)
        else:
            assert result["accepted"] == 5, result
            assert [r["index"] for r in result["results"]] == list(range(5))
            stored += 5
    with vault.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(records)).scalar_one() == stored
    assert vault.audit.verify(OPERATOR)["ok"] is True


def test_a_failed_write_frees_what_its_frames_held(db: Database) -> None:
    """The exception a caller gets holds no cycle back to itself: what the failed work's
    frames held (an import source's open cursor) is freed as soon as the caller drops the
    exception, not at a later garbage collection, perhaps in another thread."""

    class Held:
        pass

    refs: list[weakref.ref[Held]] = []

    def work(conn: Connection) -> None:
        held = Held()
        refs.append(weakref.ref(held))
        raise ValueError("refused")

    gc.collect()
    gc.disable()
    try:
        with suppress(ValueError):
            db.write_shared(work)
        assert refs[0]() is None
    finally:
        gc.enable()
