"""Writing a batch of ``records`` rows: one executemany on SQLite, one COPY on PostgreSQL.

SQLAlchemy's ``executemany`` on psycopg 3 pipelines one Bind/Execute message per row. Over
loopback TCP that pipeline stalls about 200 ms in one batch of 1000 records in two (the server
is idle meanwhile; over the Unix socket it never happens; bench/README.md, "PostgreSQL at
batch 1000"), which halved the vault's ingest rate at that batch size. ``COPY ... FROM STDIN``
streams the rows instead: no per-row reply, no stall, and as fast as a stall-free pipeline.
The COPY is in PostgreSQL's binary format: the envelope goes as its bytes, not as hex text
that the client writes and the server parses back (a third of the client's CPU for a row in
text, measured), and the times as integers. Each column's wire type is the one its DDL gives
(:func:`binary_types`); an integer column refuses a value outside its range before anything
is sent, as the text form's parse would (the binary one would wrap it).

On SQLite the statement is SQLAlchemy's own ``INSERT``, handed to the driver's ``executemany``
directly: SQLAlchemy's per-row, per-column bind processing (a chain of Python calls for each
timestamp and each JSON value) cost about as much as SQLite's work on the row.

Either way the rows are the same dicts the SQLAlchemy insert takes, every value is converted
exactly as its column type would convert it (timestamps as naive UTC, JSON as its text: the
same stored bytes), column by column with a fast path for the value types ingest passes, and
the rows go in the caller's transaction on the caller's connection, so they commit or roll
back with everything else. Driver errors are raised as SQLAlchemy raises them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from operator import itemgetter
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import JSON, Connection, LargeBinary, Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from vault.storage.tables import UTCDateTime, records

__all__ = ["binary_types", "copy_rows", "copy_table", "insert_record_parts", "insert_records"]

_COLUMNS = tuple(column.name for column in records.columns)
_COPY = f"COPY records ({', '.join(_COLUMNS)}) FROM STDIN"
_BINARY = " (FORMAT BINARY)"
_INT_RANGES = {"int4": (-(2**31), 2**31 - 1), "int8": (-(2**63), 2**63 - 1)}
#: Fewer rows go to PostgreSQL as SQLAlchemy's own insert: a COPY costs a round trip more (its
#: start, its rows, its end), the larger part of a one-event batch's database time, and a
#: pipeline of a few rows does not stall.
_COPY_FROM = 8
_row_values = itemgetter(*_COLUMNS)
_Convert = Callable[[Any], Any]
_COUNTS: tuple[dict[str, int], ...] = ({}, {"EMAIL": 2, "PHONE": 1})
_TIMES = (
    datetime(2001, 2, 3, 4, 5, 6, 7, tzinfo=UTC),
    datetime(2001, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-7))),
)


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one dialect writes rows: the statement and each column's value converter."""

    statement: str
    converters: list[_Convert | None]  # in _COLUMNS order; None: the value passes as it is
    #: A binary COPY's wire type per column (psycopg type names), None for a text one.
    types: tuple[str, ...] | None = None


#: Per dialect (one per engine), made on first use.
_PLANS: WeakKeyDictionary[Dialect, _Plan] = WeakKeyDictionary()


def insert_records(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (every column of ``records``) in the connection's transaction."""
    insert_record_parts(conn, [rows], len(rows))


def insert_record_parts(
    conn: Connection, parts: Iterable[Sequence[dict[str, Any]]], count: int
) -> None:
    """:func:`insert_records` of ``count`` rows made part by part (``parts``, consumed
    whole, whatever the path). On PostgreSQL each part goes into the COPY before the next one
    is made, so the server inserts a part while the caller makes the next (a batch's sealing
    and the server's work overlap); elsewhere the parts are written together."""
    dialect = conn.dialect
    fast = dialect.name == "sqlite" or (
        dialect.name == "postgresql" and dialect.driver == "psycopg" and count >= _COPY_FROM
    )
    if not fast or not conn.in_transaction() or dialect.name == "sqlite":
        rows = [row for part in parts for row in part]
        if not rows:
            return
        if not fast or not conn.in_transaction():
            # (Outside a transaction, SQLAlchemy's own insert begins one as the engine's
            # events say.)
            conn.execute(insert(records), rows)
            return
        _execute_sqlite(conn, rows)
        return
    plan = _plan_of(dialect)
    dbapi = dialect.loaded_dbapi
    # Each part bound as the COPY asks for its rows: made, converted and sent in turn.
    bound = (values for part in parts if part for values in _bound(plan, part, dbapi))
    copy_rows(conn, plan.statement, bound, plan.types)


def _plan_of(dialect: Dialect) -> _Plan:
    plan = _PLANS.get(dialect)
    if plan is None:
        plan = _PLANS[dialect] = _plan(dialect)
    return plan


def _bound(plan: _Plan, rows: Sequence[dict[str, Any]], dbapi: Any) -> list[tuple[Any, ...]]:
    try:
        return _bind_values(plan, rows)
    except Exception as exc:  # a value its type refuses: SQLAlchemy's StatementError, as its own
        raise DBAPIError.instance(plan.statement, None, exc, dbapi.Error) from exc


def _execute_sqlite(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    dialect = conn.dialect
    plan = _plan_of(dialect)
    dbapi = dialect.loaded_dbapi
    params = _bound(plan, rows, dbapi)
    # The driver connection under this SQLAlchemy connection: same session, same transaction.
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        cursor = driver.cursor()
        try:
            cursor.executemany(plan.statement, params)
        finally:
            cursor.close()
    except dbapi.Error as exc:  # the same exception types as the SQLAlchemy insert raises
        raise DBAPIError.instance(plan.statement, None, exc, dbapi.Error) from exc


def copy_rows(
    conn: Connection,
    statement: str,
    rows: Iterable[Sequence[Any]],
    types: Sequence[str] | None = None,
) -> None:
    """Stream ``rows`` (values in the statement's column order, as the driver adapts them)
    through ``statement``, a ``COPY table (columns) FROM STDIN``, on ``conn``'s psycopg
    connection: in its transaction, with no per-row round trip. A binary COPY (the statement
    ends ``(FORMAT BINARY)``) needs each column's wire ``types`` (:func:`binary_types`).
    Driver errors are raised as SQLAlchemy's own insert raises them."""
    dbapi = conn.dialect.loaded_dbapi
    driver = conn.connection.driver_connection
    assert driver is not None
    if statement.endswith(_BINARY) != (types is not None):
        raise ValueError("a binary COPY needs its column types, and only it")
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            if types is not None:
                copy.set_types(types)
            for values in rows:
                copy.write_row(values)
    except dbapi.Error as exc:
        raise DBAPIError.instance(statement, None, exc, dbapi.Error) from exc


def _plan(dialect: Dialect) -> _Plan:
    if dialect.name == "sqlite":
        # SQLAlchemy's own statement, as its insert would send it (its parameters in our order).
        compiled = insert(records).compile(dialect=dialect)
        assert tuple(compiled.positiontup or ()) == _COLUMNS
        statement = str(compiled)
        return _Plan(statement, [_converter(column, dialect) for column in records.columns])
    converters = [_converter(column, dialect) for column in records.columns]
    types = binary_types(records, dialect)
    # JSON goes as its text, which only _copy_json_text's converter makes for every value.
    json_as_text = all(
        isinstance(convert, _RememberedCounts)
        for column, convert in zip(records.columns, converters, strict=True)
        if isinstance(column.type, JSON)
    )
    if types is None or not json_as_text:
        return _Plan(_COPY, converters)
    for index, wire in enumerate(types):
        if wire in _INT_RANGES:
            converters[index] = _ranged(converters[index], wire)
    return _Plan(_COPY + _BINARY, converters, types)


#: The binary COPY wire type of a column by its DDL on PostgreSQL. JSON (not JSONB) is sent as
#: text: its binary form is its text, which the server checks as it does in a text COPY.
_WIRE_TYPES = {
    "INTEGER": "int4",
    "BIGINT": "int8",
    "TIMESTAMP WITHOUT TIME ZONE": "timestamp",
    "BYTEA": "bytea",
    "JSON": "text",
    "TEXT": "text",
}


def copy_table(conn: Connection, table: Table, rows: Sequence[Sequence[Any]]) -> None:
    """:func:`copy_rows` of ``rows`` (every column of ``table``, in its order, values the
    driver takes as they are: text, int and bytes) into ``table``: in the binary format when
    each column has a wire type (its integers range-checked here first), else as text."""
    statement, types = _table_copy(table, conn.dialect)
    for index, wire in enumerate(types or ()):
        if wire in _INT_RANGES:
            for values in rows:
                _check_int(values[index], wire)
    copy_rows(conn, statement, rows, types)


@functools.lru_cache(maxsize=16)
def _table_copy(table: Table, dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
    """The COPY statement of every column of ``table`` and its wire types (None: a text
    COPY)."""
    quote = dialect.identifier_preparer.quote
    columns = ", ".join(quote(column.name) for column in table.columns)
    statement = f"COPY {quote(table.name)} ({columns}) FROM STDIN"
    types = binary_types(table, dialect)
    return (statement, None) if types is None else (statement + _BINARY, types)


def binary_types(table: Table, dialect: Dialect) -> tuple[str, ...] | None:
    """Each column's wire type for a binary COPY into ``table`` on PostgreSQL, from the DDL its
    type compiles to, or None when one has no known binary form (then a text COPY is used).
    Text columns (``VARCHAR(n)``) go as text, their length checked by the server as usual."""
    types: list[str] = []
    for column in table.columns:
        ddl = column.type.compile(dialect=dialect)
        wire = "text" if ddl.startswith("VARCHAR(") else _WIRE_TYPES.get(ddl)
        if wire is None:
            return None
        types.append(wire)
    return tuple(types)


def _check_int(value: Any, wire: str) -> Any:
    """``value`` if it is an int in the range of its column's wire type, else ValueError (a
    binary COPY would wrap a larger one, and write a bool as an integer)."""
    low, high = _INT_RANGES[wire]
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"not an integer in an {wire} column's range: {value!r}")
    return value


def _ranged(convert: _Convert | None, wire: str) -> _Convert:
    """An integer column's converter, its result range-checked (:func:`_check_int`)."""

    def check(value: Any) -> Any:
        return _check_int(value if convert is None else convert(value), wire)

    return check


def _bind_values(plan: _Plan, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows as tuples in column order, each value converted as its column's type would:
    column by column (one ``map`` per converted column, the rest moved in C)."""
    columns: list[Sequence[Any]] = list(zip(*map(_row_values, rows), strict=True))
    for index, convert in enumerate(plan.converters):
        if convert is None:
            continue
        values = columns[index]
        if values[0] is values[-1] and len(set(map(id, values))) == 1:
            columns[index] = [convert(values[0])] * len(values)  # one object (``stored_at``)
        else:
            columns[index] = list(map(convert, values))
    return list(zip(*columns, strict=True))


def _converter(column: Any, dialect: Dialect) -> _Convert | None:
    """What SQLAlchemy's bind processor of ``column`` does, faster for the usual values.

    Any value the fast path does not expect goes through SQLAlchemy's processor itself (which
    also raises what it raises: a naive timestamp is refused).
    """
    process: _Convert | None = column.type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return None
    sqlite = dialect.name == "sqlite"
    fast: _Convert
    if isinstance(column.type, UTCDateTime):
        fast = _sqlite_utc_text(process) if sqlite else _naive_utc(process)
        samples: tuple[Any, ...] = _TIMES
    elif sqlite and isinstance(column.type, JSON):
        fast = _RememberedCounts(_json_text(process, dialect._json_serializer or json.dumps))
        samples = _COUNTS
    elif isinstance(column.type, JSON):
        return _copy_json_text(process, dialect._json_serializer) or process
    elif sqlite and isinstance(column.type, LargeBinary):
        # The driver stores bytes as the BLOB it stores for SQLAlchemy's memoryview of them.
        return lambda value: value if type(value) is bytes else process(value)
    else:
        return process
    # Should the engine be configured otherwise (another storage format or serializer), the
    # fast path would differ from the type's own conversion: then the type's is used.
    return fast if all(fast(v) == process(v) for v in samples) else process


def _sqlite_utc_text(process: _Convert) -> _Convert:
    # SQLite DATETIME text, "YYYY-MM-DD HH:MM:SS.ffffff" of the UTC instant (always six digits
    # of microseconds, as SQLAlchemy's storage format): isoformat minus the "+00:00" suffix.
    def convert(value: Any) -> Any:
        if type(value) is not datetime or value.tzinfo is None:
            return process(value)
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.isoformat(" ", "microseconds")[:26]

    return convert


def _naive_utc(process: _Convert) -> _Convert:
    # What UTCDateTime binds on PostgreSQL: the UTC instant as a naive datetime.
    def convert(value: Any) -> Any:
        if type(value) is not datetime or value.tzinfo is not UTC:
            return process(value)
        return value.replace(tzinfo=None)

    return convert


def _json_text(process: _Convert, serializer: Callable[[Any], str]) -> _Convert:
    # SQLAlchemy's JSON processor serializes anything but its NULL markers with the engine's
    # serializer (vault.storage.database: "{}" for the usual empty counts).
    def convert(value: Any) -> Any:
        return serializer(value) if type(value) is dict else process(value)

    return convert


def _copy_json_text(process: _Convert, serializer: Callable[[Any], str] | None) -> _Convert | None:
    """PostgreSQL COPY: JSON as its text, which is what psycopg writes for the ``Json`` wrapper
    SQLAlchemy's processor returns, when the engine has a serializer (SQLAlchemy makes it the
    ``dumps`` of every connection, and the wrapper carries none of its own); None otherwise.
    A value the fast path leaves to the processor goes as its wrapper's text too (the binary
    COPY takes JSON as text only)."""
    if serializer is None:
        return None
    from psycopg.types.json import Json

    def wrapped_as_is(value: Any) -> bool:
        wrapper = process(value)
        return type(wrapper) is Json and wrapper.obj is value and wrapper.dumps is None

    if not all(wrapped_as_is(value) for value in _COUNTS):
        return None

    def text(value: Any) -> Any:
        wrapper = process(value)
        if type(wrapper) is Json and wrapper.dumps is None:
            return serializer(wrapper.obj)
        return wrapper  # (None: SQL NULL)

    return _RememberedCounts(_json_text(text, serializer))


#: At most this many distinct redaction counts keep their JSON text (then all are forgotten).
_MAX_COUNTS_REMEMBERED = 1024


class _RememberedCounts:
    """A JSON converter that remembers its text for counts (a dict of ``str`` to ``int``): most
    records of a dataset carry one of a few, and the serializer costs several times a lookup.
    Only those exact types are remembered (``True == 1`` and ``1.0 == 1``, but they are written
    differently); key order is part of the key, as it is of the text. At most
    ``_MAX_COUNTS_REMEMBERED`` are kept (then all are forgotten at once)."""

    __slots__ = ("convert", "texts")

    def __init__(self, convert: _Convert) -> None:
        self.convert = convert
        self.texts: dict[tuple[tuple[str, int], ...], Any] = {}

    def __call__(self, value: Any) -> Any:
        if type(value) is not dict:
            return self.convert(value)
        items = tuple(value.items())
        if not all(type(key) is str and type(count) is int for key, count in items):
            return self.convert(value)
        text = self.texts.get(items)
        if text is None:
            text = self.convert(value)
            if len(self.texts) >= _MAX_COUNTS_REMEMBERED:
                self.texts.clear()
            self.texts[items] = text
        return text
