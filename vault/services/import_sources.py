"""The sources an import reads: JSONL/CSV and Parquet files, SQL tables and queries.

Every source yields ``(row number, row or None, problem or None)`` one row at a time, starting
after a given position, so an interrupted import resumes without reading what it already stored
(Parquet skips whole row groups; SQL asks the database for ``OFFSET position`` in the order of a
key). Values are turned into JSON values here (times into ISO text, decimals into numbers), so
the mapping and the event schema see what a JSON source would give them.

Sources never write, except when asked to retire themselves after a verified import:
:func:`shred_file` overwrites and removes a file; :meth:`SqlSource.replace` and
:meth:`SqlSource.drop` clear or drop a table. Reading a SQL source runs in a read-only
transaction where the database offers one.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import decimal
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    Select,
    String,
    Table,
    bindparam,
    column,
    create_engine,
    func,
    null,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    NoSuchModuleError,
    NoSuchTableError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.pool import NullPool

from vault.domain.json_keys import DuplicateKey, no_duplicate_keys
from vault.errors import BadRequest
from vault.providers.local import fsync_directory

__all__ = [
    "FILE_FORMATS",
    "HEAD_BYTES",
    "MAX_LINE",
    "RETIRING_SUFFIX",
    "FileSource",
    "Item",
    "Line",
    "ParquetSource",
    "Row",
    "Source",
    "SqlSource",
    "Values",
    "checked_file",
    "content_sha256",
    "decode_line",
    "file_identity",
    "finish_shredding",
    "is_sql_url",
    "query_not_retirable",
    "retiring_name",
    "shred_file",
    "source_fingerprint",
]

FILE_FORMATS = ("jsonl", "csv", "parquet")
HEAD_BYTES = 1 << 20  # the fingerprint covers the first MiB, the size and the file name
MAX_LINE = 4 << 20  # a JSONL line longer than this is invalid (and never held whole)
READ_ROWS = 1024  # rows per Parquet record batch and per SQL fetch
FIRST_ROWS = 16  # rows per Parquet record batch when only the first row with content is wanted
SHRED_CHUNK = 1 << 20

#: (row number, the row as JSON values or None, the problem or None).
Row = tuple[int, dict[str, Any] | None, str | None]
#: (row number, the row in some form or None, the problem or None).
Item = tuple[int, Any, str | None]
#: (row number, a CSV row's values or None, the problem or None): see FileSource.values.
Values = tuple[int, list[str] | None, str | None]
#: (row number, a JSONL line's bytes or None, the problem or None): see FileSource.lines.
Line = tuple[int, bytes | None, str | None]


class Source(Protocol):
    """What the importer needs of a source."""

    format: str
    fingerprint: str
    text_values: bool  # every value is text (CSV): the mapping converts numbers and booleans

    def columns(self) -> list[str]:
        """The column names (CSV header, first JSON object, Parquet schema, SQL columns)."""
        ...

    def first_row(self) -> dict[str, Any] | None:
        """The first row with content (to check the mapping before anything is stored)."""
        ...

    def rows(self, start: int, wanted: set[str]) -> Iterator[Row]:
        """Rows after ``start``; ``wanted``: the mapped columns (others need not be read)."""
        ...

    def progress(self) -> tuple[int, int]:
        """(done, total) in the source's unit (bytes of a file, rows of a table)."""
        ...

    def close(self) -> None:
        """Release what the source holds open."""
        ...


def is_sql_url(source: str | Path) -> bool:
    """A SQL source is named by a SQLAlchemy URL (``dialect[+driver]://...``)."""
    return isinstance(source, str) and "://" in source


def source_fingerprint(path: Path) -> str:
    """sha256 over the file name, size and first MiB: a changed source is a new import."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        return _fingerprint(path.name, size, fh.read(HEAD_BYTES))


def checked_file(path: Path) -> tuple[str, str, dict[str, int]]:
    """(:func:`source_fingerprint`, :func:`content_sha256`, :func:`file_identity`) of the file
    at ``path``, all three of the one file read through one descriptor (not following a
    link), which must still be the file at that name afterwards (OSError otherwise): what a
    retirement checks is what it records, and then overwrites."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        held = os.fstat(fh.fileno())
        head, content = _read_through(fh)
    if _identity(os.lstat(path)) != _identity(held):
        raise FileNotFoundError(f"{path} was replaced while it was read")
    return _fingerprint(path.name, held.st_size, head), content, _identity(held)


def _read_through(fh: IO[bytes]) -> tuple[bytes, str]:
    """A file read to its end in 1 MiB blocks: (its first MiB, sha256 of all of it)."""
    digest = hashlib.sha256()
    head = block = fh.read(HEAD_BYTES)
    while block:
        digest.update(block)
        block = fh.read(HEAD_BYTES)
    return head, digest.hexdigest()


def _fingerprint(name: str, size: int, head: bytes) -> str:
    digest = hashlib.sha256(b"tvault-import-v1\0")
    digest.update(name.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(str(size).encode() + b"\0")
    digest.update(head)
    return digest.hexdigest()


def content_sha256(path: Path) -> str:
    """sha256 over a file's whole content (read in 1 MiB blocks): the fingerprint's first MiB
    does not see a change further in."""
    with path.open("rb") as fh:
        return _read_through(fh)[1]


class _Unjsonable(ValueError):
    """A value with no JSON form (binary that is not UTF-8)."""


def _jsonable(value: Any, *, structs: bool = True) -> Any:  # noqa: PLR0911 - per type family
    """A typed value (Parquet, SQL) as the JSON value a JSON export would have held. A dict is
    a Parquet struct (a field null in this row is absent) unless ``structs`` is off: a SQL
    value's dict is a JSON document (json/jsonb), whose null members are its own."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()  # naive stays naive: the mapping's TimeFormat decides
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Unjsonable("binary") from exc
    if isinstance(value, dict):
        if structs:  # a field that is null in this row is absent
            return {str(k): _jsonable(v) for k, v in value.items() if v is not None}
        return {str(k): _jsonable(v, structs=False) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, structs=structs) for v in value]
    return str(value)  # uuid.UUID, ipaddress, enum members...


def _json_row(
    row: dict[str, Any], *, structs: bool = True
) -> tuple[dict[str, Any] | None, str | None]:
    """A typed row as JSON values; an empty string is an absent value, as in CSV (a column
    cannot be left out of one row of a table). ``structs``: see :func:`_jsonable`."""
    try:
        return {k: _jsonable(v, structs=structs) for k, v in row.items() if v != ""}, None
    except _Unjsonable:
        return None, "malformed"


def _json_columns(
    names: list[str], raw_columns: list[list[Any]], as_is: set[str]
) -> list[list[Any]]:
    """A batch's columns as JSON values: those named in ``as_is`` as they are, the others
    value by value (:func:`_jsonable`; raises _Unjsonable)."""
    return [
        raw if name in as_is else list(map(_jsonable, raw))
        for name, raw in zip(names, raw_columns, strict=True)
    ]


def _batch_rows(batch: Any, as_is: set[str]) -> list[tuple[dict[str, Any] | None, str | None]]:
    """A pyarrow record batch as :func:`_json_row` gives its rows, made column by column: each
    column is read whole, and only the columns not in ``as_is`` (those whose type has values
    that are not JSON values already) are converted, value by value. A batch with a value that
    has no JSON form, or with two columns of one name, is made row by row instead."""
    names: list[str] = batch.schema.names
    if len(set(names)) != len(names):
        return [_json_row(raw) for raw in batch.to_pylist()]
    raw_columns: list[list[Any]] = [column.to_pylist() for column in batch.columns]
    try:
        columns = _json_columns(names, raw_columns, as_is)
    except _Unjsonable:
        return [_json_row(raw) for raw in batch.to_pylist()]
    # (zip's keyword costs more than the dict per row; a batch's columns are of one length)
    rows = [dict(zip(names, values)) for values in zip(*columns, strict=True)]  # noqa: B905
    for name, raw in zip(names, raw_columns, strict=True):
        if "" in raw:  # an empty string is an absent value (see _json_row)
            for row, value in zip(rows, raw, strict=True):
                if value == "":
                    del row[name]
    return [(row, None) for row in rows]


def _batch_values(batch: Any, names: list[str], as_is: set[str]) -> list[Item]:
    """A pyarrow record batch's rows as :func:`_batch_rows` makes them, each as the tuple of
    its values in the order of ``names`` (distinct) instead of a dict, with an absent value
    (an empty string) as None: (row index, values or None, problem)."""
    raw_columns: list[list[Any]] = [batch.column(name).to_pylist() for name in names]
    try:
        columns = _json_columns(names, raw_columns, as_is)
    except _Unjsonable:
        return [(n, *_json_values(raw)) for n, raw in enumerate(zip(*raw_columns, strict=True))]
    # (zip's keyword costs more per row than the rest; a batch's columns are of one length)
    for index, raw in enumerate(raw_columns):
        if "" in raw:
            columns[index] = [None if r == "" else v for r, v in zip(raw, columns[index])]  # noqa: B905
    return [(n, values, None) for n, values in enumerate(zip(*columns))]  # noqa: B905


def _json_values(raw: tuple[Any, ...]) -> tuple[tuple[Any, ...] | None, str | None]:
    """One row's typed values as :func:`_batch_values` gives them (see :func:`_json_row`)."""
    try:
        return tuple(None if value == "" else _jsonable(value) for value in raw), None
    except _Unjsonable:
        return None, "malformed"


# -- files: JSONL and CSV -----------------------------------------------------------------------


class FileSource:
    """A JSONL or CSV file read one row at a time."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.format = fmt
        self.size = path.stat().st_size
        _check_utf8_start(path)
        self.fingerprint = source_fingerprint(path)
        self.text_values = fmt == "csv"
        self._fh: IO[bytes] | None = None

    def progress(self) -> tuple[int, int]:
        done = self._fh.tell() if self._fh is not None and not self._fh.closed else self.size
        return done, self.size

    def close(self) -> None:
        """Nothing stays open between reads."""

    def columns(self) -> list[str]:
        if self.format == "csv":
            with self.path.open("rb") as fh, _text(fh) as text_:
                _, header = _csv_start(text_)
            if header is None:
                raise BadRequest("the CSV source is empty (no header)")
            if len(set(header)) != len(header):
                raise BadRequest("the CSV header names a column twice")
            return header
        first = self.first_row()
        return list(first) if first is not None else []

    def first_row(self) -> dict[str, Any] | None:
        for _, row, problem in self.rows(0, set()):
            if problem is None and row is not None:
                return row
        return None

    def rows(self, start: int, wanted: set[str]) -> Iterator[Row]:  # noqa: ARG002 - rows are whole
        with self.path.open("rb") as fh:
            self._fh = fh
            rows = _csv_rows(fh, self.path) if self.format == "csv" else _jsonl_rows(fh)
            yield from _after(start, rows)

    def values(self, start: int) -> tuple[list[str], Generator[Values, None, None]]:
        """A CSV file's header, and its rows after ``start`` as :meth:`rows` gives them with
        each row's values in the header's order instead of a dict (the file is read once, its
        header with the rows)."""
        if self.format != "csv":
            raise ValueError("only a CSV source has values")
        fh = self.path.open("rb")
        text_ = _text(fh)
        try:
            reader, header = _csv_start(text_)
        except BaseException:
            text_.close()
            raise
        self._fh = fh
        values = _csv_values(reader, len(header or ()), self.path)
        return header or [], _closing(text_, _after(start, values))

    def lines(self, start: int) -> Iterator[Line]:
        """A JSONL file's lines after ``start``, undecoded: what :meth:`rows` gives, with each
        line that has content as its bytes (:func:`decode_line` makes it the row)."""
        if self.format != "jsonl":
            raise ValueError("only a JSONL source has lines")
        with self.path.open("rb") as fh:
            self._fh = fh
            yield from _after(start, _jsonl_lines(fh))


def _after(start: int, numbered: Iterator[Any]) -> Iterator[Any]:
    """The items of ``numbered`` (row number first) after row ``start``."""
    if start:
        for item in numbered:
            if item[0] > start:
                yield item
                break
    yield from numbered  # (no loop of ours per row)


def _csv_rows(fh: IO[bytes], path: Path) -> Iterator[Row]:
    with _text(fh) as text_:
        reader, header = _csv_start(text_)
        header = header or []
        for number, values, problem in _csv_values(reader, len(header), path):
            # (zip's keyword costs more than the dict per row; the lengths were checked)
            row = None if values is None else dict(zip(header, values))  # noqa: B905
            yield number, row, problem


def _csv_values(reader: Iterator[list[str]], width: int, path: Path) -> Iterator[Values]:
    """The CSV rows after the header (of the file at ``path``), numbered from 1: each row's
    values (``width`` of them), or None and the problem (``blank``, ``malformed``)."""
    number = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader's state is unknown after this: stop rather than guess.
            raise BadRequest(f"CSV row {number + 1} cannot be parsed ({exc})") from exc
        except UnicodeDecodeError as exc:
            # Text is decoded ahead of the parser, so the row is not known: the line is.
            raise BadRequest(
                f"the CSV file is not UTF-8 text (line {_first_non_utf8_line(path)} of the file,"
                f" after row {number})"
            ) from exc
        number += 1
        if not any(values):
            yield number, None, "blank"
        elif len(values) != width:
            yield number, None, "malformed"
        else:
            yield number, values, None


def _first_non_utf8_line(path: Path) -> str:
    """The number of the file's first line that is not UTF-8 (found again on error only), or
    ``?`` if it cannot be read now."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as fh:
            for number, line in enumerate(fh, 1):
                try:
                    decoder.decode(line)
                except UnicodeDecodeError:
                    return str(number)
    except OSError:
        pass
    return "?"


def _csv_start(text_: IO[str]) -> tuple[Iterator[list[str]], list[str] | None]:
    """A strict CSV reader of ``text_`` and its first row, the header (None when the file is
    empty); BadRequest if the header cannot be read. Strict: a quoted field still open at the
    end of the file (which a lenient reader returns as one field holding every row after it)
    or text after a closing quote is an error (csv.Error), not a row."""
    # A cell may be as long as a JSONL line (csv's own limit, 128 KiB, stopped imports of legal
    # files); a longer one stops the import (the reader cannot go on after it).
    if csv.field_size_limit() < MAX_LINE:
        csv.field_size_limit(MAX_LINE)
    reader = csv.reader(text_, strict=True)
    try:
        return reader, next(reader, None)
    except csv.Error as exc:
        raise BadRequest(f"the CSV header cannot be parsed ({exc}); fix the file") from exc
    except UnicodeDecodeError as exc:
        raise BadRequest("the CSV file is not UTF-8 text (in or near its header)") from exc


def _closing(resource: IO[str], items: Iterator[Values]) -> Generator[Values, None, None]:
    """``items``, closing ``resource`` once they end (or are given up)."""
    with resource:
        yield from items


def _text(fh: IO[bytes]) -> io.TextIOWrapper:
    return io.TextIOWrapper(fh, encoding="utf-8-sig", newline="", errors="strict")


#: Byte order marks of the encodings a text file may be in other than UTF-8.
_OTHER_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _check_utf8_start(path: Path) -> None:
    """BadRequest for a text source that starts as UTF-16 or UTF-32 (a byte order mark, or a
    NUL among its first bytes): its lines cannot be split at newline bytes, so rows would be
    read wrongly rather than refused."""
    with path.open("rb") as fh:
        start = fh.read(4)
    if len(start) == 4 and not start.strip(b"\x00"):
        raise BadRequest(
            "the source starts with zero bytes, not text (a file overwritten with zeros, or "
            "not a text file?)"
        )
    if start.startswith(_OTHER_BOMS) or b"\x00" in start[:2]:
        raise BadRequest("the source is not UTF-8 text (UTF-16 or UTF-32?): convert it to UTF-8")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: NaN and Infinity are not JSON, nor is an object with a key twice. One decoder for every
#: line (``json.loads`` with an option builds a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_no_constant, object_pairs_hook=no_duplicate_keys)


def _jsonl_lines(fh: IO[bytes]) -> Iterator[Line]:
    """One item per line, numbered from 1: its bytes, or the problem found without decoding it
    (``too_large``, ``blank``); a line is never held beyond MAX_LINE."""
    number = 0
    while True:
        line = fh.readline(MAX_LINE + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE:
            while line and not line.endswith(b"\n"):
                line = fh.readline(MAX_LINE)
            yield number, None, "too_large"
        elif not line.strip():
            yield number, None, "blank"
        else:
            yield number, line, None


def _jsonl_rows(fh: IO[bytes]) -> Iterator[Row]:
    """One row per line, numbered from 1 (:func:`_jsonl_lines`, :func:`decode_line`)."""
    for number, line, problem in _jsonl_lines(fh):
        yield (number, None, problem) if line is None else (number, *decode_line(line))


def decode_line(line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """A JSONL line with content as its row, or None and ``malformed`` (``duplicate_key``: an
    object in it names a key twice)."""
    # What json.loads(line, parse_constant=...) does, without a decoder per line; a line
    # that opens an object with a byte other than NUL after it is UTF-8 for json.loads
    # (no BOM, not UTF-16 or -32), so its encoding need not be detected.
    utf8 = line[:1] == b"{" and line[1:2] != b"\x00"
    try:
        text = line.decode("utf-8" if utf8 else json.detect_encoding(line), "surrogatepass")
        value = _DECODER.decode(text)
    except DuplicateKey:
        return None, "duplicate_key"
    except (ValueError, RecursionError):
        return None, "malformed"
    return (value, None) if isinstance(value, dict) else (None, "malformed")


# -- Parquet ------------------------------------------------------------------------------------


class ParquetSource:
    """A Parquet file read record batch by record batch (one row group in memory at most)."""

    format = "parquet"
    text_values = False

    def __init__(self, path: Path) -> None:
        import pyarrow as pa  # type: ignore[import-untyped]  # no stubs
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        self._errors: tuple[type[Exception], ...] = (pa.ArrowException, OSError)
        self.path = path
        self.fingerprint = source_fingerprint(path)
        try:
            self._file = pq.ParquetFile(path)
        except self._errors as exc:
            raise BadRequest("the source is not a readable Parquet file") from exc
        self.total = int(self._file.metadata.num_rows)
        self._done = 0
        #: Columns whose values are JSON values as pyarrow gives them (text, integers,
        #: booleans, nulls): read without converting each value.
        self._as_is = {
            item.name
            for item in self._file.schema_arrow
            if pa.types.is_string(item.type)
            or pa.types.is_large_string(item.type)
            or pa.types.is_integer(item.type)
            or pa.types.is_boolean(item.type)
            or pa.types.is_null(item.type)
        }

    def progress(self) -> tuple[int, int]:
        return self._done, self.total

    def close(self) -> None:
        """Close the file handle pyarrow keeps (again is harmless)."""
        if not self._file.closed:
            self._file.close()

    def columns(self) -> list[str]:
        return list(self._file.schema_arrow.names)

    def missing_paths(self, paths: Iterable[str]) -> list[str]:
        """The dotted ``paths`` (``data.x``) that name no field inside a struct column: a
        column of another type holds no fields to descend into (a path that is itself a
        column's name, dots and all, is that column)."""
        import pyarrow.types as pa_types  # type: ignore[import-untyped]  # no stubs

        schema = self._file.schema_arrow
        missing = []
        for path in paths:
            head, _, rest = path.partition(".")
            if not rest or path in schema.names or head not in schema.names:
                continue  # not a path, a column, or missing as a column (reported as such)
            kind = schema.field(head).type
            for name in rest.split("."):
                if not pa_types.is_struct(kind) or kind.get_field_index(name) < 0:
                    missing.append(path)
                    break
                kind = kind.field(name).type
        return missing

    def first_row(self) -> dict[str, Any] | None:
        for _, row, problem in self._rows(0, set(self.columns()), FIRST_ROWS):
            if problem is None and row is not None:
                return row
        return None

    def rows(self, start: int, wanted: set[str]) -> Iterator[Row]:
        return self._rows(start, wanted, READ_ROWS)

    @property
    def distinct_names(self) -> bool:
        """No two columns of the file have one name (see :meth:`values`)."""
        names = self.columns()
        return len(set(names)) == len(names)

    def projection(self, wanted: set[str]) -> list[str]:
        """The columns read for the mapped columns ``wanted``: a mapped ``a.b`` reads the
        struct column ``a`` unless a column is named ``a.b``."""
        names = self.columns()
        return sorted({c if c in names else c.split(".")[0] for c in wanted} & set(names))

    def values(self, start: int, names: list[str]) -> Iterator[Item]:
        """The rows after ``start`` as :meth:`rows` gives them, each as the tuple of its
        values in the order of ``names`` (a :meth:`projection`) with None for an absent
        value, instead of a dict; only for a file whose column names are distinct."""
        if not self.distinct_names:
            raise ValueError("a Parquet file with a repeated column name has no values")
        return self._read(
            start, names, READ_ROWS, lambda part: _batch_values(part, names, self._as_is)
        )

    def _rows(self, start: int, wanted: set[str], read_rows: int) -> Iterator[Row]:
        return self._read(
            start,
            self.projection(wanted),
            read_rows,
            lambda part: [(n, *made) for n, made in enumerate(_batch_rows(part, self._as_is))],
        )

    def _read(
        self,
        start: int,
        projection: list[str],
        read_rows: int,
        make: Callable[[Any], list[Item]],
    ) -> Iterator[Item]:
        """The rows after ``start`` of the ``projection`` columns, each record batch's rows
        made by ``make`` (numbered from 0 in the batch)."""
        metadata = self._file.metadata
        groups: list[int] = []
        number = 0  # rows before the first group read
        for index in range(metadata.num_row_groups):
            size = metadata.row_group(index).num_rows
            if not groups and number + size <= start:
                number += size  # a whole row group already imported: never read again
                continue
            groups.append(index)
        skip = start - number
        self._done = number
        if not groups:
            return
        try:
            batches = self._file.iter_batches(
                batch_size=read_rows, row_groups=groups, columns=projection
            )
            for batch in batches:
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    number += batch.num_rows
                    continue
                part = batch
                if skip:
                    number += skip
                    part = batch.slice(skip)
                    skip = 0
                for _, row, problem in make(part):
                    number += 1
                    self._done = number
                    yield number, row, problem
        except self._errors as exc:
            raise BadRequest(f"Parquet rows after {number} cannot be read") from exc


# -- SQL ----------------------------------------------------------------------------------------


def _table_names(given: str) -> list[tuple[str | None, str]]:
    """The (schema, name) pairs ``--table`` may mean, in the order they are tried: a name in
    double quotes is taken whole (``"ev.2024"``, ``archive."ev.2024"``); otherwise
    ``schema.name`` split at the last dot, then the whole text as a name with dots in it."""
    if given.endswith('"'):
        opening = given.rfind('"', 0, len(given) - 1)
        if opening >= 0:
            name = given[opening + 1 : -1]
            schema = given[:opening].removesuffix(".").strip('"') or None
            if opening == 0 or given[opening - 1] == ".":
                return [(schema, name)]
    schema, _, name = given.rpartition(".")
    if not schema:
        return [(None, given)]
    return [(schema, name), (None, given)]


def _safe_url(url: URL) -> str:
    """The URL without its password (for fingerprints and messages)."""
    return url.set(password=None).render_as_string(hide_password=False)


#: A quoted text in a driver's message (one left open runs to the end): it may be a value.
_QUOTED = re.compile(r'"[^"]*(?:"|$)|\'[^\']*(?:\'|$)')
_QUOTE = re.compile("[\"']")


def _db_error(what: str, exc: SQLAlchemyError) -> BadRequest:
    """A database error as a clear BadRequest: the driver's first line, never the URL, and
    no quoted text of it (e.g. ``invalid input syntax for type integer: "<a row's text>"``):
    it may be the source's plaintext, which would reach terminals and log collectors. Quoted
    texts are left out of the whole message before it is cut to a line, so that a value that
    is long or holds a line break is left out whole; a message with an odd number of quotes
    (a value holding one) is cut at its first quote."""
    orig = getattr(exc, "orig", None)
    message = str(orig if orig is not None else exc).strip()
    quote = _QUOTE.search(message)
    if quote is not None and (message.count('"') % 2 or message.count("'") % 2):
        message = message[: quote.start()] + '"…"'  # (a value holds a quote: cut at the first)
    message = _QUOTED.sub('"…"', message)
    first = message.splitlines()
    reason = first[0][:300] if first else type(exc).__name__
    return BadRequest(f"{what}: {reason}")


class SqlSource:
    """A table or a query of any SQLAlchemy database, read in the order of a key."""

    format = "sql"
    text_values = False

    def __init__(
        self,
        url: str,
        *,
        table: str | None,
        query: str | None,
        key: Iterable[str] = (),
    ) -> None:
        if (table is None) == (query is None):
            raise BadRequest("a SQL source needs exactly one of --table NAME or --query SQL")
        try:
            self.url = make_url(url)
            self._engine: Engine = create_engine(self.url, poolclass=NullPool)
        except ImportError as exc:  # the dialect is known, its driver not installed here
            raise BadRequest(
                f"the driver of the source URL's database is not installed ({exc.name or exc})"
            ) from exc
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise BadRequest("the source is not a usable SQLAlchemy URL") from exc
        database = self.url.database
        if (
            self.url.get_backend_name() == "sqlite"
            and database not in (None, "", ":memory:")
            and not database.startswith("file:")
            and not Path(database).is_file()
        ):
            # (SQLite would make an empty database file there: nothing is left behind.)
            raise BadRequest(f"the SQL source has no database file {database}")
        self.safe_url = _safe_url(self.url)
        self.table_name = table
        self.query = query
        self._table: Table | None = None
        self.total = 0
        self._done = 0
        try:
            with self._engine.connect() as conn:
                names = self._describe(conn)
                self._names = names
                self.key = self._key(list(key), names)
                self.total = int(
                    conn.execute(select(func.count()).select_from(self._from())).scalar_one()
                )
                self._check_key(conn)
        except SQLAlchemyError as exc:
            self._engine.dispose()
            raise _db_error("cannot read the SQL source", exc) from exc
        except BaseException:
            self._engine.dispose()
            raise
        what = f"table\0{self._table_text()}" if table is not None else f"query\0{query}"
        digest = hashlib.sha256(b"tvault-import-sql-v1\0")
        for part in (self.safe_url, what, ",".join(self.key)):
            digest.update(part.encode("utf-8") + b"\0")
        self.fingerprint = digest.hexdigest()

    # -- description ----------------------------------------------------------------------

    def _describe(self, conn: Connection) -> list[str]:
        if self.table_name is not None:
            sqlite = conn.dialect.name == "sqlite"
            for schema, name in _table_names(self.table_name):
                try:
                    self._table = Table(name, MetaData(), schema=schema, autoload_with=conn)
                except NoSuchTableError:
                    continue
                except OperationalError:
                    if not sqlite or schema is None:  # (SQLite: no attached database so named)
                        raise
                    continue
                return [c.name for c in self._table.columns]
            raise BadRequest(f"the SQL source has no table {self.table_name!r}")
        assert self.query is not None
        probe = text(f"SELECT * FROM ({self.query}) AS tvault_source WHERE 1 = 0")  # noqa: S608
        return list(conn.execute(probe).keys())

    def _key(self, given: list[str], names: list[str]) -> list[str]:
        if given:
            unknown = [k for k in given if k not in names]
            if unknown:
                raise BadRequest(f"the key column {unknown[0]!r} is not in the SQL source")
            return given
        if self._table is not None and len(self._table.primary_key.columns) > 0:
            return [c.name for c in self._table.primary_key.columns]
        what = (
            f"the table {self.table_name!r} has no primary key"
            if self.query is None
            else ("a query has no primary key")
        )
        raise BadRequest(
            f"{what}: name a unique, never-NULL column to read it in order with --key COLUMN "
            "(an import resumes by position in that order)"
        )

    def _table_text(self) -> str:
        """The table as found, for the fingerprint: ``schema.name`` or ``name`` as given before
        names with dots could be quoted (so that imports begun then resume), a part with a
        dot in double quotes (so that ``ev.2024`` and ``"ev.2024"``, one table, are one
        import, and ``ev.2024`` as schema and name another)."""
        assert self._table is not None
        parts = [p for p in (self._table.schema, self._table.name) if p is not None]
        return ".".join(f'"{p}"' if "." in p else p for p in parts)

    def is_vault_table(self, names: set[str], dataset_id: str) -> bool:
        """Whether the source is a table of the vault's own database (or of a copy of it):
        named as one of the vault's tables (``names``) or its record partitions, in a
        database that knows the dataset ``dataset_id``. Importing one, and then retiring it,
        would drop or rewrite the vault's own rows behind its back."""
        table = self._table
        own = names | {"alembic_version"}
        if table is None or not (table.name in own or table.name.startswith("records_")):
            return False
        datasets = Table("datasets", MetaData(), Column("id", String), schema=table.schema)
        try:
            with self._engine.connect() as conn:
                found = conn.execute(
                    select(datasets.c.id).where(datasets.c.id == dataset_id)
                ).first()
        except SQLAlchemyError:
            return False  # (no such table beside it: another database)
        return found is not None

    def _check_key(self, conn: Connection) -> None:
        """The key must give the rows one order only, as an import resumes by position in it
        and a SQL retirement finds each row by it: never NULL, and unique (checked here on
        every run, not trusted: SQLite even lets a primary key other than an INTEGER one hold
        NULL). No key value is shown (it may be personal data)."""
        table = self._table
        primary = table is not None and self.key == [c.name for c in table.primary_key.columns]
        if primary and conn.dialect.name != "sqlite":
            return  # (the server holds its primary key unique and never NULL)
        source = self._from()
        keys = [source.c[k] for k in self.key]
        named = ", ".join(self.key)
        nulls = conn.execute(
            select(func.count()).select_from(source).where(or_(*(k.is_(None) for k in keys)))
        ).scalar_one()
        if nulls:
            raise BadRequest(
                f"the key ({named}) is NULL in {nulls} rows of the SQL source: name a unique, "
                "never-NULL column (or columns) with --key"
            )
        if primary:
            return  # (SQLite holds a primary key unique, but lets one hold NULL)
        repeated = conn.execute(
            select(func.count()).select_from(
                select(*keys).group_by(*keys).having(func.count() > 1).subquery()
            )
        ).scalar_one()
        if repeated:
            raise BadRequest(
                f"the key ({named}) is not unique in the SQL source ({repeated} values name "
                "more than one row): name a unique, never-NULL column (or columns) with --key"
            )

    def _from(self) -> Any:
        if self._table is not None:
            return self._table
        assert self.query is not None
        return text(self.query).columns(*(column(n) for n in self._names)).subquery("tvault_src")

    def _select(self, wanted: set[str]) -> Select[Any]:
        source = self._from()
        names = [n for n in self._names if n in wanted or n.split(".")[0] in wanted]
        names += [k for k in self.key if k not in names]
        return select(*(source.c[n] for n in names)).order_by(*(source.c[k] for k in self.key))

    def columns(self) -> list[str]:
        return list(self._names)

    def progress(self) -> tuple[int, int]:
        return self._done, self.total

    def close(self) -> None:
        """Close the engine's connections."""
        self._engine.dispose()

    # -- reading --------------------------------------------------------------------------

    def _read_only(self, conn: Connection) -> None:
        """Where the database offers it, the reading transaction cannot write."""
        dialect = conn.dialect.name
        if dialect == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        elif dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA query_only = ON")

    def first_row(self) -> dict[str, Any] | None:
        for _, row, problem in self._read(0, set(self._names), limit=1):
            if problem is None:
                return row
        return None

    def rows(self, start: int, wanted: set[str]) -> Iterator[Row]:
        return self._read(start, wanted, limit=None)

    def _read(self, start: int, wanted: set[str], *, limit: int | None) -> Iterator[Row]:
        stmt = self._select(wanted)
        if start:
            stmt = stmt.offset(start)
        if limit is not None:
            stmt = stmt.limit(limit)
        number = start
        self._done = start
        try:
            with self._engine.connect() as conn, conn.begin() as txn:
                self._read_only(conn)
                streamed = {"stream_results": True, "yield_per": READ_ROWS}
                for raw in conn.execute(stmt, execution_options=streamed):
                    number += 1
                    self._done = number
                    row, problem = _json_row(dict(raw._mapping), structs=False)
                    yield number, row, problem
                txn.rollback()  # nothing to keep: the source is only read
        except SQLAlchemyError as exc:
            raise _db_error(f"the SQL source failed after row {number}", exc) from exc

    # -- retiring -------------------------------------------------------------------------

    def _retirable(self, conn: Connection, position: int) -> Table:
        if self._table is None:
            raise query_not_retirable()
        now = int(conn.execute(select(func.count()).select_from(self._table)).scalar_one())
        if now != position:
            raise BadRequest(
                f"the source table now has {now} rows, the import read {position}: it changed "
                "since the import, so it is not retired"
            )
        return self._table

    def drop(self, position: int) -> dict[str, Any]:
        """Drop the table (after checking it still has the rows the import read)."""
        try:
            with self._engine.begin() as conn:
                table = self._retirable(conn, position)
                table.drop(conn)
        except SQLAlchemyError as exc:
            raise _db_error("the source table could not be dropped", exc) from exc
        return {"action": "dropped", "rows": position}

    def replace(
        self,
        position: int,
        mapped: set[str],
        id_column: str | None,
        record_ids: Callable[[int, int], dict[int, str]],
    ) -> dict[str, Any]:
        """In one transaction: write each row's vault record id into ``id_column`` and set the
        other mapped columns to NULL (rows stored nowhere get NULL there too)."""
        table = self._table
        if table is None:
            raise query_not_retirable()
        cleared = self._replace_plan(table, mapped, id_column)
        assert id_column is not None
        keys = [table.c[k] for k in self.key]
        # SQL NULL, also in JSON columns (where None would be bound as the JSON value null).
        values: dict[str, Any] = dict.fromkeys(cleared, null())
        values[id_column] = bindparam("tvault_record_id")
        stmt = (
            update(table)
            .where(*(c == bindparam(f"tvault_key_{i}") for i, c in enumerate(keys)))
            .values(**values)
        )
        done = 0
        with_id = 0
        try:
            with self._engine.begin() as conn:
                self._retirable(conn, position)
                last: tuple[Any, ...] | None = None
                while True:
                    page = select(*keys).order_by(*keys).limit(READ_ROWS)
                    if last is not None:
                        page = page.where(
                            tuple_(*keys) > tuple_(*last) if len(keys) > 1 else keys[0] > last[0]
                        )
                    found = [tuple(r) for r in conn.execute(page)]
                    if not found:
                        break
                    ids = record_ids(done + 1, done + len(found))
                    params = []
                    for offset, key in enumerate(found, start=done + 1):
                        record = ids.get(offset)
                        with_id += record is not None
                        bound = {f"tvault_key_{i}": v for i, v in enumerate(key)}
                        params.append({"tvault_record_id": record, **bound})
                    conn.execute(stmt, params)
                    done += len(found)
                    last = found[-1]
        except SQLAlchemyError as exc:
            what = "the source table could not be rewritten (nothing changed)"
            raise _db_error(what, exc) from exc
        return {
            "action": "replaced",
            "rows": done,
            "record_ids_written": with_id,
            "id_column": id_column,
            "nulled_columns": sorted(cleared),
        }

    def check_retire(self, mode: str, mapped: set[str], id_column: str | None) -> None:
        """Refuse, before anything is imported, a retirement that could not be done."""
        if self._table is None:
            raise query_not_retirable()
        if mode == "replace":
            self._replace_plan(self._table, mapped, id_column)

    def _replace_plan(self, table: Table, mapped: set[str], id_column: str | None) -> list[str]:
        """The columns to NULL; refuses, before any change, what cannot work."""
        if id_column is None:
            raise BadRequest(
                "--retire-source=replace needs --id-column COLUMN: a text column of the table "
                "to receive each row's vault record id (32 characters)"
            )
        if id_column not in table.c:
            raise BadRequest(f"the source table has no column {id_column!r}")
        if id_column in self.key:
            raise BadRequest("--id-column cannot be the key column the import is ordered by")
        target: Column[Any] = table.c[id_column]
        if not isinstance(target.type, String) or (target.type.length or 32) < 32:
            raise BadRequest(f"--id-column {id_column!r} must be a text column of 32+ characters")
        cleared = sorted(
            {c if c in table.c else c.split(".")[0] for c in mapped}
            & set(table.c.keys()) - {id_column}
        )
        kept_keys = [k for k in self.key if k in cleared]
        if kept_keys:
            raise BadRequest(
                f"the key column {kept_keys[0]!r} is mapped: it cannot be cleared while it "
                "identifies the rows; import with another --key, or use --retire-source=drop"
            )
        not_null = [c for c in [*cleared, id_column] if not table.c[c].nullable]
        if not_null:
            raise BadRequest(
                f"column {not_null[0]!r} is NOT NULL, so it cannot be cleared; use "
                "--retire-source=drop, or allow NULL there first"
            )
        return cleared


def query_not_retirable() -> BadRequest:
    return BadRequest(
        "a query source cannot be retired (which rows of which tables it read is not known): "
        "retire the tables it reads yourself, or import a --table"
    )


# -- retiring a file ----------------------------------------------------------------------------


#: A file being retired is first renamed to ``.NAME`` + this, beside it (see shred_file).
RETIRING_SUFFIX = ".tvault-retiring"


def retiring_name(path: Path) -> Path:
    """Where ``path`` is while it is being overwritten (:func:`shred_file`)."""
    return path.with_name(f".{path.name}{RETIRING_SUFFIX}")


def _refuse_link_or_remains(path: Path) -> None:
    """What no retirement of ``path`` may proceed with: a symbolic link (importing through it,
    then retiring the file it points to, would be a second import of the same rows under
    another name), or the remains of an earlier retirement that was stopped."""
    if path.is_symlink():
        raise BadRequest(
            "the source is a symbolic link: import and retire the file it points to instead"
        )
    if os.path.lexists(retiring_name(path)):
        raise BadRequest(
            f"{retiring_name(path)} exists (an earlier retirement was stopped): remove it first"
        )


def check_retirable_file(path: Path) -> None:
    """Refuse, before anything is imported, a file :func:`shred_file` would refuse once the
    import is done (:func:`_refuse_link_or_remains`), or one this process cannot write or
    rename."""
    _refuse_link_or_remains(path)
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
        raise BadRequest(
            "the source file or its folder cannot be written, so it could not be retired: "
            "nothing was imported"
        )


def file_identity(path: Path) -> dict[str, int]:
    """The file at ``path`` (not following a link) as its file system knows it: device, inode
    and size. Recorded when a retirement begins (``import:retire-begin``), so that a stopped
    one is finished on that very file and on no other (:func:`finish_shredding`)."""
    return _identity(os.lstat(path))


def _identity(found: os.stat_result) -> dict[str, int]:
    return {"device": found.st_dev, "inode": found.st_ino, "size": found.st_size}


def shred_file(path: Path, identity: dict[str, int]) -> dict[str, Any]:
    """Rename a file out of its name (fsynced), overwrite its bytes (random, then zeros; each
    pass fsynced), then unlink it and fsync its directory. See docs/import.md for what this
    can and cannot reach. ``identity`` is the file's :func:`file_identity` as recorded when
    its retirement began: any other file at ``path`` is left alone.

    The rename comes first so that a retirement stopped part-way (the process killed) leaves
    no file under the source's name: the same command run again finds no source, instead of
    taking the partly overwritten file for a new one and importing its intact rows again; it
    finishes the retirement on the remains instead (:func:`finish_shredding`)."""
    _refuse_link_or_remains(path)
    return _shred(
        path,
        identity,
        "the source file",
        f"{path} changed while it was being retired: check it by hand",
        rename_to=retiring_name(path),
    )


def finish_shredding(remains: Path, identity: dict[str, int]) -> dict[str, Any]:
    """Overwrite and remove the remains of a retirement that was stopped part-way
    (:func:`retiring_name` of its source), as :func:`shred_file` would have: both passes
    again from the start, then the unlink. Only the file the retirement began on (its
    recorded ``identity``: device, inode, size) is touched."""
    return _shred(
        remains,
        identity,
        "the remains of the stopped retirement",
        f"{remains} changed since its retirement began: check it by hand",
    )


def _shred(
    path: Path, identity: dict[str, int], what: str, changed: str, *, rename_to: Path | None = None
) -> dict[str, Any]:
    """Overwrite and unlink the file at ``path`` if it is the file ``identity`` names (else
    BadRequest ``changed``), renamed to ``rename_to`` first when given."""
    # Opened first (not following a link), so that a file that cannot be written is refused
    # while it still has its name, and what is overwritten is the very file that was renamed.
    fd = _open_for_overwriting(path, what)
    target = path
    try:
        held = os.fstat(fd)
        if _identity(held) != identity:
            raise BadRequest(changed)
        if rename_to is not None:
            os.rename(path, rename_to)
            moved = os.lstat(rename_to)
            if (moved.st_dev, moved.st_ino) != (held.st_dev, held.st_ino):
                raise BadRequest(changed)
            fsync_directory(path.parent)
            target = rename_to
        _overwrite(fd, held.st_size)
    finally:
        os.close(fd)
    _unlink_held(target, held)
    fsync_directory(path.parent)
    return _shredded(held)


def _unlink_held(path: Path, held: os.stat_result) -> None:
    """Unlink ``path`` if it still names the file ``held`` (that was overwritten)."""
    found = os.lstat(path)
    if (found.st_dev, found.st_ino) != (held.st_dev, held.st_ino):
        raise BadRequest(f"{path} was replaced while it was overwritten: check it by hand")
    os.unlink(path)


def _open_for_overwriting(path: Path, what: str) -> int:
    """``path`` opened to be overwritten in place, not following a link."""
    try:
        return os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise BadRequest(
            f"{what} cannot be written ({exc.strerror}): nothing was overwritten"
        ) from exc


def _overwrite(fd: int, size: int) -> None:
    """Overwrite the first ``size`` bytes of ``fd``: random bytes, then zeros, each pass
    fsynced."""
    for fill in ("random", "zeros"):
        os.lseek(fd, 0, os.SEEK_SET)
        left = size
        while left:
            n = min(left, SHRED_CHUNK)
            block = os.urandom(n) if fill == "random" else bytes(n)
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view) :]
            left -= n
        os.fsync(fd)


def _shredded(held: os.stat_result) -> dict[str, Any]:
    """What a retirement did to the file ``held``."""
    return {
        "action": "overwritten and removed",
        "passes": ["random", "zeros"],
        "bytes": held.st_size,
        "other_hard_links": held.st_nlink - 1,
    }
