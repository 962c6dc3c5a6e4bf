"""Engines and transactions, with the durability settings the vault promises.

SQLite (embedded default): WAL, ``synchronous=FULL`` (an acknowledged write survives power
loss), foreign keys on, a busy timeout, and write transactions opened with ``BEGIN IMMEDIATE``
so two writers never deadlock upgrading a read lock. PostgreSQL: any SQLAlchemy URL.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from vault.errors import ConfigurationError, Unavailable
from vault.storage.partitions import RecordPartitions

__all__ = ["Database"]

_IMMEDIATE = "tvault_write"
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
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        try:
            self.engine: Engine = create_engine(parsed, **kwargs)
        except (ArgumentError, ImportError) as exc:
            raise ConfigurationError(f"cannot use database URL: {exc}") from exc
        #: Day partitions of ``records`` (PostgreSQL; a no-op on SQLite).
        self.partitions = RecordPartitions(self.engine, enabled=not self.is_sqlite)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        # SQLite has one writer at a time. Writers of this process queue here, and the next
        # one starts as soon as the last commits; left to SQLite, a waiting writer sleeps in its
        # busy handler (1, 2, 5, 10... ms) however soon the lock frees. Other processes still
        # wait through the busy timeout. Re-entrant: a nested write of the same thread is an
        # error SQLite reports itself, not a deadlock here.
        self._writer = threading.RLock() if self.is_sqlite else None

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

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot on both backends)."""
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
        with path.open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

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
