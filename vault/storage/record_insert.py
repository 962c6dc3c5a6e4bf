"""Writing a batch of ``records`` rows: one statement on SQLite, one COPY on PostgreSQL.

SQLAlchemy's ``executemany`` on psycopg 3 pipelines one Bind/Execute message per row. Over
loopback TCP that pipeline stalls about 200 ms in one batch of 1000 records in two (the server
is idle meanwhile; over the Unix socket it never happens; bench/README.md, "PostgreSQL at
batch 1000"), which halved the vault's ingest rate at that batch size. ``COPY ... FROM STDIN``
streams the rows instead: no per-row reply, no stall, and as fast as a stall-free pipeline.

The rows are the same dicts the SQLAlchemy insert takes; the COPY path applies what the
column types would (timestamps as naive UTC, JSON as its text) and runs in the caller's
transaction on the caller's connection, so it commits or rolls back with everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from vault.storage.tables import records

__all__ = ["insert_records"]

_COLUMNS = tuple(column.name for column in records.columns)
_COPY = f"COPY records ({', '.join(_COLUMNS)}) FROM STDIN"
_Processor = Callable[[Any], Any] | None


def insert_records(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (every column of ``records``) in the connection's transaction."""
    if not rows:
        return
    dialect = conn.dialect
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        conn.execute(insert(records), list(rows))
        return
    # Each column's own bind conversion, as the insert would apply it (UTCDateTime: naive UTC,
    # refusing naive input; JSON: the engine's serializer).
    processors = _processors(dialect)
    # The psycopg connection under this SQLAlchemy connection: same session, same transaction.
    driver = conn.connection.driver_connection
    assert driver is not None
    dbapi = dialect.loaded_dbapi
    try:
        with driver.cursor() as cursor, cursor.copy(_COPY) as copy:
            for row in rows:
                copy.write_row(
                    [
                        row[name] if process is None else process(row[name])
                        for name, process in processors
                    ]
                )
    except dbapi.Error as exc:  # the same exception types as the SQLAlchemy insert raises
        raise DBAPIError.instance(_COPY, None, exc, dbapi.Error) from exc


def _processors(dialect: Dialect) -> list[tuple[str, _Processor]]:
    return [
        (column.name, column.type.dialect_impl(dialect).bind_processor(dialect))
        for column in records.columns
    ]
