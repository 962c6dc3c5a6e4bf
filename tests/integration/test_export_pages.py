"""Export pages: one read past the page tells whether another follows, one key query a page,
and the Parquet writer's body parsing is json.loads'."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select, text, update
from sqlalchemy import event as sa_event

from tests.conftest import COLLECTOR, PG_ADMIN_URL, READER, event, make_dataset
from vault.domain.events import format_time
from vault.errors import DecryptionError
from vault.services import export as export_module
from vault.services import export_pages
from vault.services.export import ExportQuery
from vault.services.reads import PG_TIME_TEXT, text_time
from vault.storage.tables import datasets, records


def fill(vault: Any, clock: Any, count: int) -> None:
    make_dataset(vault, "ux")
    batch = [event(clock, f"emp-{i % 3}", data={"text": f"line {i}"}) for i in range(count)]
    assert vault.ingest.ingest(COLLECTOR, "ux", batch)["accepted"] == count


def export_lines(vault: Any) -> list[dict[str, Any]]:
    _, chunks = vault.exports.start(READER, "ux", "research", ExportQuery())
    return [json.loads(line) for line in b"".join(chunks).splitlines()]


def count_fetches(vault: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of rows of every page the export reads."""
    sizes: list[int] = []
    fetch = vault.exports._reads.fetch_page

    def counted(*args: Any, **kwargs: Any) -> Any:
        page = fetch(*args, **kwargs)
        sizes.append(len(page.rows))
        return page

    monkeypatch.setattr(vault.exports._reads, "fetch_page", counted)
    return sizes


@pytest.mark.parametrize(("count", "pages"), [(14, [7, 7]), (15, [7, 7, 1]), (6, [6])])
def test_no_empty_page_is_read_after_the_last(
    vault, clock, monkeypatch, count: int, pages: list[int]
) -> None:
    monkeypatch.setattr(export_module, "PAGE", 7)
    fill(vault, clock, count)
    sizes = count_fetches(vault, monkeypatch)
    lines = export_lines(vault)
    assert sizes == pages
    assert len({line["id"] for line in lines}) == count
    with vault.db.read() as conn:
        done = conn.execute(text("SELECT records, finished_at FROM exports")).one()
    assert done.records == count
    assert done.finished_at is not None


def test_an_empty_export_reads_one_page(vault, clock, monkeypatch) -> None:
    make_dataset(vault, "ux")
    sizes = count_fetches(vault, monkeypatch)
    assert export_lines(vault) == []
    assert sizes == [0]


def test_one_key_query_per_page(vault, clock, monkeypatch) -> None:
    """Three people's keys are read in one query per page, not one per key."""
    monkeypatch.setattr(export_module, "PAGE", 7)
    fill(vault, clock, 20)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    sa_event.listen(vault.db.engine, "before_cursor_execute", seen)
    try:
        assert len(export_lines(vault)) == 20
    finally:
        sa_event.remove(vault.db.engine, "before_cursor_execute", seen)
    key_reads = [s for s in statements if "FROM subject_keys" in s]
    assert len(key_reads) == 3  # pages of 7, 7 and 6


def test_a_page_reuses_held_keys_only_while_they_exist(vault, clock) -> None:
    fill(vault, clock, 6)
    reads, keyring = vault.exports._reads, vault.exports._reads.keyring
    with vault.db.read() as conn:
        ds_id = conn.execute(select(datasets.c.id).where(datasets.c.name == "ux")).scalar_one()
        where = [records.c.dataset_id == ds_id]
        first = reads.fetch_page(conn, where, 10)
    assert len(first.rows) == 6
    assert not first.more
    assert len(first.keys) == 3
    with vault.db.read() as conn:
        again = keyring.seks_for_read(conn, set(first.keys) | {b"\x00" * 16}, first.keys)
    assert again == first.keys
    assert all(again[k] is first.keys[k] for k in again)  # held: not unwrapped again
    gone = next(iter(first.keys))
    with vault.db.write() as conn:
        conn.execute(text("DELETE FROM subject_keys WHERE id = :i"), {"i": gone})
    with vault.db.read() as conn:
        after = keyring.seks_for_read(conn, set(first.keys), first.keys)
    assert set(after) == set(first.keys) - {gone}


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@settings(max_examples=300, deadline=None)
@given(value=_JSON_VALUES, indent=st.sampled_from([None, 1]), pad=st.sampled_from(["", " \n"]))
def test_body_parsing_is_json_loads(value: Any, indent: int | None, pad: str) -> None:
    """Compact bodies (what the vault writes) and any other layout parse as json.loads does."""
    encoded = _COMPACT.encode(value) if indent is None else json.dumps(value, indent=indent)
    body = (pad + encoded + pad).encode("utf-8", "surrogatepass")
    assert export_pages._parse_body(body) == json.loads(body.decode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("body", [b"", b"{", b'{"a":1} x', b"nope", b'{"a":1}}'])
def test_body_parsing_fails_as_json_loads(body: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(body.decode())
    with pytest.raises(json.JSONDecodeError):
        export_pages._parse_body(body)


def test_pages_end_inside_a_millisecond(vault, clock, monkeypatch) -> None:
    """Stored times that share a millisecond and differ in microseconds (or not at all) across
    page ends: every record once, in (time, id) order, the time in the export the millisecond.
    On PostgreSQL the next page's keyset is read back from the server's text of the time.
    (Ingest stores milliseconds; the microseconds are set in the database, within the
    millisecond the sealed body holds, so every record still opens.)"""
    monkeypatch.setattr(export_module, "PAGE", 3)
    make_dataset(vault, "ux")
    base = clock().replace(microsecond=123000)
    offsets = [0, 1, 1, 1, 2, 999, 999, 0, 500, 2, 1, 998]  # microseconds past base
    batch = [event(clock, f"emp-{i % 2}", time=base.isoformat()) for i in range(len(offsets))]
    assert vault.ingest.ingest(COLLECTOR, "ux", batch)["accepted"] == len(batch)
    with vault.db.write() as conn:
        ids = conn.execute(select(records.c.id).order_by(records.c.id)).scalars().all()
        for rid, micros in zip(ids, offsets, strict=True):
            conn.execute(
                update(records)
                .where(records.c.id == rid)
                .values(event_time=base + timedelta(microseconds=micros))
            )
    with vault.db.read() as conn:
        stored = conn.execute(
            select(records.c.id, records.c.event_time).order_by(records.c.event_time, records.c.id)
        ).all()
    assert len({row.event_time for row in stored}) == len(set(offsets))
    fetch = vault.exports._reads.fetch_page
    pages: list[int] = []

    def bounded(*args: Any, **kwargs: Any) -> Any:  # a keyset that loses time fails, not hangs
        pages.append(1)
        assert len(pages) <= len(offsets) // 3 + 1, "the export read a page again"
        return fetch(*args, **kwargs)

    monkeypatch.setattr(vault.exports._reads, "fetch_page", bounded)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    sa_event.listen(vault.db.engine, "before_cursor_execute", seen)
    try:
        lines = export_lines(vault)
    finally:
        sa_event.remove(vault.db.engine, "before_cursor_execute", seen)
    # Ordered by the column (its index), not by the text read in its place.
    pages = [s for s in statements if "FROM records" in s and "envelope" in s]
    assert pages
    assert all("ORDER BY records.event_time, records.id" in s for s in pages)
    assert [line["id"] for line in lines] == [row.id for row in stored]
    assert {line["time"] for line in lines} == {format_time(base)}


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
@pytest.mark.parametrize(
    "edited",
    [
        "event_time - interval '4051 years'",  # the same text in 2026 BC: the era is dropped
        "'infinity'::timestamp",
        "event_time + interval '8000 years'",  # year 10026
    ],
)
def test_a_time_the_text_cannot_hold_is_tampering(vault, clock, edited: str) -> None:
    """A time before year 1, infinite, or past 9999 (only a database edit makes one) fails the
    export as tampering, as an edited time does, on the first page (an error status)."""
    fill(vault, clock, 5)
    with vault.db.write() as conn:
        # Day partitions hold no such time: the edit needs a partition of its own too.
        ds_id = conn.execute(select(datasets.c.id)).scalar_one()
        conn.execute(text(f'CREATE TABLE "edited" PARTITION OF "records_{ds_id}" DEFAULT'))
        rid = conn.execute(select(records.c.id).order_by(records.c.id).limit(1)).scalar_one()
        conn.execute(text(f"UPDATE records SET event_time = {edited} WHERE id = :id"), {"id": rid})
    with pytest.raises(DecryptionError):
        export_lines(vault)


@pytest.mark.postgres
def test_the_server_writes_times_as_sqlite_stores_them() -> None:
    """PostgreSQL's text of a time (PG_TIME_TEXT) is SQLite's stored form of it, read back by
    text_time as the column reads it, from year 1 to 9999 (the real server)."""
    rng = random.Random(5)
    start, span = datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999) - datetime(1, 1, 1)
    whens = [start, start + span, datetime(2024, 2, 29, 12, 0, 0, 1), datetime(999, 1, 1)]
    whens += [start + span * rng.random() for _ in range(2000)]
    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            texts = (
                conn.execute(
                    text(
                        "SELECT to_char(t, :fmt) FROM unnest(CAST(:whens AS timestamp[]))"
                        " WITH ORDINALITY AS u(t, n) ORDER BY n"
                    ),
                    {"fmt": PG_TIME_TEXT, "whens": whens},
                )
                .scalars()
                .all()
            )
    finally:
        engine.dispose()
    for when, written in zip(whens, texts, strict=True):
        assert written == when.isoformat(sep=" ", timespec="microseconds")
        assert text_time(written) == when.replace(tzinfo=UTC)
        assert export_pages.raw_time_text(written) == format_time(when.replace(tzinfo=UTC))
