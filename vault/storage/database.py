"""Engines and transactions, with the durability settings the vault promises.

SQLite (embedded default): WAL, ``synchronous=FULL`` (an acknowledged write survives power
loss), foreign keys on, a busy timeout, and write transactions opened with ``BEGIN IMMEDIATE``
so two writers never deadlock upgrading a read lock. PostgreSQL: any SQLAlchemy URL.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from vault.errors import ConfigurationError, Unavailable
from vault.storage.partitions import RecordPartitions

__all__ = ["Database"]

T = TypeVar("T")
#: At most this many concurrent writes share one SQLite transaction (see ``write_shared``).
MAX_SHARED_WRITES = 64

#: A pooled PostgreSQL connection idle this long is pinged before it is handed out again.
PING_AFTER_IDLE = 1.0

_IMMEDIATE = "tvault_write"
_IDLE_SINCE = "tvault_idle_since"
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _json_dumps(value: Any) -> str:
    # JSON columns (redaction counts) are written once per record: most are empty.
    return "{}" if value == {} else _JSON.encode(value)


def _sqlite_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    # Driver-level autocommit; transactions are begun explicitly below.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _note_checkin(_dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _create_owner_only(path: Path) -> None:
    """Make a missing database file owner-only from the start (SQLite gives its -wal and -shm
    files the database file's mode). An existing file is left as it is (its mode, and a file
    that may only be read, as a backup being restored); a file that cannot be made here is left
    for SQLite to report."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError:
        return


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql(
        "BEGIN IMMEDIATE" if conn.get_execution_options().get(_IMMEDIATE) else "BEGIN"
    )


class Database:
    """The engine plus the two ways to use it: a write transaction and a read transaction."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigurationError("invalid database URL") from exc
        self.url = parsed
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, "future": True, "json_serializer": _json_dumps}
        if self.is_sqlite:
            if (
                parsed.database
                and parsed.database != ":memory:"
                and not parsed.database.startswith("file:")
            ):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
                _create_owner_only(Path(parsed.database))
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            # No pool_pre_ping (a round trip on every checkout): see _ping_if_idle.
            kwargs.update(pool_size=10, max_overflow=20)
        try:
            self.engine: Engine = create_engine(parsed, **kwargs)
        except (ArgumentError, ImportError) as exc:
            raise ConfigurationError(f"cannot use database URL: {exc}") from exc
        #: Day partitions of ``records`` (PostgreSQL; a no-op on SQLite).
        self.partitions = RecordPartitions(self.engine, enabled=not self.is_sqlite)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            event.listen(self.engine, "checkin", _note_checkin)
            event.listen(self.engine, "checkout", self._ping_if_idle)
        # SQLite has one writer at a time. Writers of this process queue here, and the next
        # one starts as soon as the last commits; left to SQLite, a waiting writer sleeps in its
        # busy handler (1, 2, 5, 10... ms) however soon the lock frees. Other processes still
        # wait through the busy timeout. Re-entrant: a nested write of the same thread is an
        # error SQLite reports itself, not a deadlock here.
        self._writer = threading.RLock() if self.is_sqlite else None
        # (Not on PostgreSQL: measured, its commits are cheap here and a shared transaction's
        # savepoints and one thread running every caller's work cost more than they saved.)
        self._shared = _SharedWrites(self) if self.is_sqlite else None

    def _ping_if_idle(
        self, dbapi_conn: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        """Check a pooled connection before use if it sat idle :data:`PING_AFTER_IDLE` seconds
        or more (a server restart, an idle timeout or a failover may have closed it); a dead
        one is replaced, the caller never sees it (what ``pool_pre_ping`` does, without a
        round trip per checkout for connections in steady use)."""
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return
        try:
            alive = self.engine.dialect.do_ping(dbapi_conn)
        except self.engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("pooled connection is gone") from exc
        if not alive:
            raise DisconnectionError("pooled connection is gone")

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: commits on success, rolls back on any error."""
        if self._writer is None:
            with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        with self._writer, self.engine.connect() as raw:
            conn = raw.execution_options(**{_IMMEDIATE: True})
            with conn.begin():
                yield conn

    def write_shared(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a write transaction, possibly shared with concurrent callers.

        SQLite (one writer at a time): writes that arrive while another is running wait, then
        run together, each in a savepoint of one transaction, with one commit (one fsync) for
        all (group commit). ``work`` that raises is rolled back alone and its exception is
        raised in its caller; if the commit fails, every caller of the group gets that error
        and none of their work is kept. ``work`` returns only once its transaction committed.
        PostgreSQL (concurrent writers): a write transaction of its own.
        """
        if self._shared is None:
            with self.write() as conn:
                return work(conn)
        return self._shared.run(work)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction: one snapshot on SQLite; on PostgreSQL (READ COMMITTED) each
        statement sees its own, so counts that must agree are read in one statement."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Try to take a lock that one process of the whole deployment can hold; yields whether
        it was taken. PostgreSQL: a session advisory lock (across replicas); SQLite: a file lock
        beside the database (one machine holds the file)."""
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        if not self.is_sqlite:
            with self.engine.connect() as conn:
                got = bool(
                    conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                )
                try:
                    yield got
                finally:
                    if got:
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
            return
        path = Path(self.url.database or "tvault").with_name(
            f".{Path(self.url.database or 'tvault').name}.{key & 0xFFFFFFFF:08x}.lock"
        )
        fh = _lock_file(path)
        if fh is None:
            yield False
            return
        try:
            yield True
        finally:
            # Removed while still held, so that no lock file is left behind per name (one per
            # import otherwise): a process that opened it before is refused the lock meanwhile,
            # or finds, once it has it, that the file is no longer under its name, and tries
            # again with a new one (_lock_file).
            try:
                with contextlib.suppress(OSError):  # (not ours to remove, say: it stays)
                    path.unlink()
            finally:
                fh.close()  # (closing lets go of the lock)

    def ping(self) -> None:
        """Raise Unavailable unless the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise Unavailable("database unavailable") from exc

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _lock_file(path: Path) -> IO[str] | None:
    """The lock file at ``path``, open and locked (exclusively) by this process; None if
    another holds it. A file whose holder removed it between our opening and our locking it is
    not the lock any more: opened anew."""
    while True:
        fh = path.open("a")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return None
        try:
            current = os.stat(path)
            mine = os.fstat(fh.fileno())
        except FileNotFoundError:
            same = False
        except BaseException:
            fh.close()
            raise
        else:
            same = (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino)
        if same:
            return fh
        fh.close()


class _Write:
    """One caller's ``work`` waiting in :class:`_SharedWrites`."""

    __slots__ = ("error", "lead", "ready", "result", "work")

    def __init__(self, work: Callable[[Connection], Any]) -> None:
        self.work = work
        self.ready = threading.Event()  # set when done, or when promoted to lead
        self.lead = False
        self.result: Any = None
        self.error: BaseException | None = None


class _SharedWrites:
    """Group commit for SQLite: the first waiting caller leads the next transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._queue: list[_Write] = []
        self._busy = False

    def run(self, work: Callable[[Connection], T]) -> T:
        mine = _Write(work)
        with self._lock:
            self._queue.append(mine)
            if not self._busy:
                self._busy = mine.lead = True
        if not mine.lead:
            mine.ready.wait()
        if mine.lead:
            self._lead()
        error, mine.error = mine.error, None
        if error is not None:
            # Raised with no cycle back to it (exception -> traceback -> this frame -> the
            # write -> exception): what its frames hold (a source's open cursor) is freed when
            # the caller lets the exception go, not at some later garbage collection.
            try:
                raise error
            finally:
                del error
        return mine.result  # type: ignore[no-any-return]

    def _lead(self) -> None:
        with self._lock:
            group = self._queue[:MAX_SHARED_WRITES]
            del self._queue[:MAX_SHARED_WRITES]
        try:
            self._commit(group)
        finally:
            with self._lock:
                if self._queue:  # hand the next transaction to the first one waiting
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.ready.set()
                else:
                    self._busy = False
            for write in group:
                write.ready.set()

    def _commit(self, group: list[_Write]) -> None:
        try:
            with self._db.write() as conn:
                if len(group) == 1:
                    group[0].result = group[0].work(conn)
                    return
                for write in group:
                    try:
                        with conn.begin_nested():
                            write.result = write.work(conn)
                    except Exception as exc:  # noqa: BLE001 - handed to its own caller
                        write.error = exc
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the group
            # Nothing of the group was committed: everyone learns why.
            for write in group:
                if write.error is None:
                    write.error = exc  # raised instead of any result it had
