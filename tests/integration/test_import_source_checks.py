"""What an exploratory test of ``tvault import`` found in session 12, each fixed:

* a SQL ``--key`` that is not unique, or NULL in some rows, was taken on trust: the import's
  order (and so resuming) and a ``--retire-source=replace`` (which finds rows by it) went wrong,
  writing other people's record ids and leaving plaintext in the rows it did not find;
* a CSV cell over 128 KiB (csv's own limit) stopped the import of a legal file, whose error
  then said "fix the file and run again", which imported every stored row a second time;
* a symbolic link given with ``--retire-source`` was imported whole, then refused;
* a SQL JSON value lost its null members (a rule for Parquet structs);
* a SQL URL whose driver is not installed gave a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import OPERATOR, Clock, event
from tests.integration.test_import import (
    MAPPING,
    count_records,
    export_rows,
    read_back,
    write_csv,
)
from vault.bootstrap import Vault
from vault.errors import BadRequest
from vault.services.importer import ImportOptions


def _table(url: str, clock: Clock, keys: list[Any]) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE ev (grp INTEGER, who VARCHAR(64), at VARCHAR(64))"))
        for i, key in enumerate(keys):
            clock.advance(seconds=1)
            conn.execute(
                text("INSERT INTO ev VALUES (:k, :who, :at)"),
                {"k": key, "who": f"emp-{i % 3}", "at": clock().isoformat()},
            )
    engine.dispose()


_SQL = {
    "table": "ev",
    "key": ("grp",),
    "mapping": {"fields": {"subject": "who", "time": "at"}, "defaults": {"kind": "custom"}},
}


@pytest.mark.parametrize(
    ("keys", "problem"),
    [([1, 2, 2, 3], "not unique"), ([1, None, 3], "NULL in 1 rows")],
    ids=["repeated", "null"],
)
def test_a_sql_key_that_orders_rows_more_than_one_way_is_refused(
    ux: Vault, clock: Clock, source_url: str, keys: list[Any], problem: str
) -> None:
    _table(source_url, clock, keys)
    for retire in (None, "replace"):
        with pytest.raises(BadRequest, match=problem):
            ux.imports.run(OPERATOR, "ux", source_url, ImportOptions(**_SQL, retire=retire))
    assert count_records(ux) == 0


def test_a_unique_never_null_key_is_taken(ux: Vault, clock: Clock, source_url: str) -> None:
    _table(source_url, clock, [5, 1, 3])
    assert ux.imports.run(OPERATOR, "ux", source_url, ImportOptions(**_SQL))["stored"] == 3


def test_a_csv_cell_over_csv_s_own_limit_is_imported(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    rows = export_rows(clock, 12)
    rows[3]["typed_text"] = "word " * 60_000  # 300 KB, over csv's 128 KiB default
    source = write_csv(tmp_path / "big.csv", rows)
    summary = ux.imports.run(OPERATOR, "ux", source, ImportOptions(mapping=MAPPING))
    # Read to the end: the long text is one invalid row (longer than an event's text may be,
    # as the same JSONL line would be), not the end of the import.
    assert summary["rows"] == 12
    assert summary["stored"] == 11
    assert summary["invalid_causes"] == {"data.text": 1}


def test_a_source_that_stops_an_import_says_what_is_stored(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    rows = export_rows(clock, 100)
    source = write_csv(tmp_path / "cut.csv", rows)
    with source.open("a", encoding="utf-8") as fh:
        fh.write('emp9@corp.example,2026-01-01T00:00:00Z,typing,Code,f.py,,"open\n')
    with pytest.raises(BadRequest) as stopped:
        ux.imports.run(OPERATOR, "ux", source, ImportOptions(mapping=MAPPING, batch=10))
    message = stopped.value.message
    stored = count_records(ux)
    assert stored >= 60  # (chunks read ahead of the bad row are not stored)
    assert "CSV row 101 cannot be parsed" in message
    assert f"stopped after row {stored}" in message
    assert "put only the rows to import, fixed, in a new file" in message
    assert "fix the file and run again" not in message
    # A first row that cannot be parsed stops the import before it begins.
    first = write_csv(tmp_path / "head.csv", [])
    with first.open("a", encoding="utf-8") as fh:
        fh.write('emp9@corp.example,2026-01-01T00:00:00Z,typing,Code,f.py,,"open\n')
    with pytest.raises(BadRequest, match="CSV row 1 cannot be parsed"):
        ux.imports.run(OPERATOR, "ux", first, ImportOptions(mapping=MAPPING))


def test_a_symbolic_link_to_retire_is_refused_before_anything_is_imported(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    target = tmp_path / "events.jsonl"
    with target.open("w", encoding="utf-8") as fh:
        for i in range(5):
            clock.advance(seconds=1)
            fh.write(json.dumps(event(clock, f"emp-{i}")) + "\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    with pytest.raises(BadRequest, match="symbolic link"):
        ux.imports.run(OPERATOR, "ux", link, ImportOptions(retire="overwrite"))
    assert count_records(ux) == 0
    assert target.exists()
    # Without retirement a link is read as the file it points to.
    assert ux.imports.run(OPERATOR, "ux", link, ImportOptions())["stored"] == 5


def test_sql_json_keeps_its_null_members(ux: Vault, clock: Clock, source_url: str) -> None:
    engine = create_engine(source_url)
    doc = {"a": [1, {"b": None}], "c": None, "d": {"e": None, "f": 2}}
    with engine.begin() as conn:
        column = "JSONB" if engine.dialect.name == "postgresql" else "JSON"
        conn.execute(
            text(f"CREATE TABLE ev (n INTEGER PRIMARY KEY, who TEXT, at TEXT, d {column})")
        )
        clock.advance(seconds=1)
        conn.execute(
            text("INSERT INTO ev VALUES (1, 'emp-1', :at, :d)"),
            {"at": clock().isoformat(), "d": json.dumps(doc)},
        )
    engine.dispose()
    options = ImportOptions(
        table="ev",
        mapping={
            "fields": {"subject": "who", "time": "at", "data": "d"},
            "defaults": {"kind": "custom"},
        },
    )
    assert ux.imports.run(OPERATOR, "ux", source_url, options)["stored"] == 1
    (row,) = read_back(ux)
    assert row["data"] == doc


@pytest.mark.parametrize("url", ["mysql://u:pw@db.example/x", "mssql+pyodbc://u:pw@h/x"])
def test_a_sql_url_whose_driver_is_missing_is_a_clear_error(ux: Vault, url: str) -> None:
    with pytest.raises(BadRequest, match=r"driver .* is not installed") as refused:
        ux.imports.run(OPERATOR, "ux", url, ImportOptions(table="ev"))
    assert "pw" not in refused.value.message


@pytest.mark.parametrize("table", ["legal_holds", "datasets", "records"])
def test_the_vault_s_own_tables_are_not_a_source(ux: Vault, table: str) -> None:
    """With the vault's own database URL, ``--table legal_holds --retire-source=drop`` used to
    import the holds as events and drop the table (holds gone, with no audit of a lift)."""
    own = ux.db.engine.url.render_as_string(hide_password=False)
    options = ImportOptions(
        table=table,
        mapping={"fields": {"subject": "id", "time": "created_at"}, "defaults": {"kind": "custom"}},
        retire="drop",
    )
    with pytest.raises(BadRequest, match="one of the vault's own"):
        ux.imports.run(OPERATOR, "ux", own, options)
    with ux.db.read() as conn:  # still there, and nothing imported
        conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    assert count_records(ux) == 0


def test_a_table_of_the_user_in_another_database_with_a_vault_name_is_a_source(
    ux: Vault, clock: Clock, source_url: str
) -> None:
    engine = create_engine(source_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE records (n INTEGER PRIMARY KEY, who TEXT, at TEXT)"))
        clock.advance(seconds=1)
        conn.execute(
            text("INSERT INTO records VALUES (1, 'emp-1', :at)"), {"at": clock().isoformat()}
        )
    engine.dispose()
    options = ImportOptions(
        table="records",
        mapping={"fields": {"subject": "who", "time": "at"}, "defaults": {"kind": "custom"}},
    )
    assert ux.imports.run(OPERATOR, "ux", source_url, options)["stored"] == 1


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_driver_error_while_reading_rows_does_not_show_their_values(
    ux: Vault, clock: Clock, source_url: str
) -> None:
    _table(source_url, clock, [1, 2, 3])
    secret = "AKIAQWERTYUIOP999999"
    options = ImportOptions(
        query=f"SELECT grp, who, at, (who || ' {secret}')::int AS bad FROM ev",
        key=("grp",),
        mapping={"fields": {"subject": "who", "time": "at"}, "defaults": {"kind": "custom"}},
    )
    with pytest.raises(BadRequest, match="invalid input syntax") as failed:
        ux.imports.run(OPERATOR, "ux", source_url, options)
    assert secret not in failed.value.message
    assert "emp-" not in failed.value.message


def test_a_table_with_a_dot_in_its_name(ux: Vault, clock: Clock, source_url: str) -> None:
    engine = create_engine(source_url)
    with engine.begin() as conn:
        conn.execute(text('CREATE TABLE "ev.2024" (n INTEGER PRIMARY KEY, who TEXT, at TEXT)'))
        clock.advance(seconds=1)
        conn.execute(
            text('INSERT INTO "ev.2024" VALUES (1, :who, :at)'),
            {"who": "emp-1", "at": clock().isoformat()},
        )
    engine.dispose()
    mapping = {"fields": {"subject": "who", "time": "at"}, "defaults": {"kind": "custom"}}
    first = ux.imports.run(
        OPERATOR, "ux", source_url, ImportOptions(table="ev.2024", mapping=mapping)
    )
    assert first["stored"] == 1
    # The same table named in quotes is the same import, not a second copy of its rows.
    again = ux.imports.run(
        OPERATOR, "ux", source_url, ImportOptions(table='"ev.2024"', mapping=mapping)
    )
    assert again["already_imported"] is True
    assert again["import"] == first["import"]
    assert count_records(ux) == 1
    with pytest.raises(BadRequest, match="has no table"):
        ux.imports.run(OPERATOR, "ux", source_url, ImportOptions(table="nope.ev"))
