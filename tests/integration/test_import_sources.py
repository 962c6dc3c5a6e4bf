"""`tvault import` of Parquet files and SQL tables/queries, time options and retiring sources.

Both vault backends; the SQL sources live in a database of their own (a SQLite file beside the
vault, or a fresh PostgreSQL database), like a team's existing telemetry table.
"""

from __future__ import annotations

import json
import zoneinfo
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from tests.conftest import OPERATOR, Clock, make_dataset
from tests.integration.test_import import (
    AWS,
    EMAIL,
    MAPPING,
    Killed,
    assert_no_plaintext_secrets,
    count_records,
    export_rows,
    kill_after,
    read_back,
    write_csv,
)
from vault.audit import AuditAction
from vault.bootstrap import Vault
from vault.cli import app
from vault.errors import BadRequest, Conflict
from vault.services.importer import ImportOptions
from vault.storage.tables import audit_log, import_records


@pytest.fixture
def ux(vault: Vault) -> Vault:
    make_dataset(vault, "ux")
    return vault


def write_parquet(path: Path, rows: list[dict[str, Any]], *, group: int = 10) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=group)
    return path


# -- Parquet ------------------------------------------------------------------------------------


def test_parquet_with_mapping_streams_row_groups(ux: Vault, clock: Clock, tmp_path: Path) -> None:
    rows = export_rows(clock, 45, bad_time_at=12)
    source = write_parquet(tmp_path / "lake.parquet", rows, group=8)
    summary = ux.imports.run(OPERATOR, "ux", source, ImportOptions(mapping=MAPPING, batch=6))
    assert summary["source"]["format"] == "parquet"
    assert summary["rows"] == summary["rows_read"] == 45
    assert summary["invalid_rows"] == [13]
    assert summary["stored"] == 44 == count_records(ux)
    assert summary["verification"]["ok"] is True
    assert_no_plaintext_secrets(ux)


def test_parquet_typed_columns_and_automatic_mapping(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    now = clock()
    table = pa.table(
        {
            "subject": ["emp-1", "emp-2", "emp-3"],
            "time": pa.array([now, now, now], pa.timestamp("ms", tz="UTC")),
            "kind": ["key_run", "click", "focus"],
            "data": [{"text": f"mail {EMAIL}", "x": None}, {"text": None, "x": 3}, None],
            "private_window": [False, False, False],
        }
    )
    source = tmp_path / "typed.parquet"
    pq.write_table(table, source)
    summary = ux.imports.run(OPERATOR, "ux", source, ImportOptions())
    assert summary["mapping"] == "automatic"
    assert summary["stored"] == 2, summary  # struct nulls make the click's data invalid
    assert summary["invalid_causes"] == {"data.y": 1}  # the click has no y
    assert summary["redactions"] == {"EMAIL": 1}


@pytest.mark.parametrize("inside", [True, False], ids=["in-transaction", "between-batches"])
def test_parquet_killed_and_resumed_exactly_once(
    ux: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inside: bool
) -> None:
    source = write_parquet(tmp_path / "big.parquet", export_rows(clock, 70), group=9)
    options = ImportOptions(mapping=MAPPING, batch=7)
    kill_after(ux, monkeypatch, 5, inside=inside)
    with pytest.raises(Killed):
        ux.imports.run(OPERATOR, "ux", source, options)
    stored_before = count_records(ux)
    assert stored_before == 7 * (4 if inside else 5)
    monkeypatch.undo()
    summary = ux.imports.run(OPERATOR, "ux", source, options)
    assert summary["resumed_at_row"] == stored_before  # resumed by row position
    assert summary["this_run"]["rows"] == 70 - stored_before
    assert summary["stored"] == 70 == count_records(ux)
    with ux.db.read() as conn:
        linked = sorted(conn.execute(select(import_records.c.row)).scalars())
    assert linked == list(range(1, 71))


def test_not_a_parquet_file(ux: Vault, tmp_path: Path) -> None:
    bad = tmp_path / "x.parquet"
    bad.write_bytes(b"PAR1 but not really")
    with pytest.raises(BadRequest, match="not a readable Parquet file"):
        ux.imports.run(OPERATOR, "ux", bad, ImportOptions(mapping=MAPPING))


# -- times --------------------------------------------------------------------------------------


def test_epoch_and_naive_times(ux: Vault, clock: Clock, tmp_path: Path) -> None:
    now = clock().replace(microsecond=0)
    base = {"subject": "emp-1", "kind": "focus"}
    epoch = tmp_path / "epoch.jsonl"
    epoch.write_text(
        "\n".join(json.dumps({**base, "time": int(now.timestamp() * 1000) - i}) for i in range(3)),
        "utf-8",
    )
    summary = ux.imports.run(OPERATOR, "ux", epoch, ImportOptions(time_unit="epoch_ms"))
    assert summary["stored"] == 3
    times = sorted(e["time"] for e in read_back(ux))
    assert times[-1] == now.astimezone(UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )

    # Naive times (no offset) are refused without --timezone, clearly, before anything.
    local = now.astimezone(UTC).replace(tzinfo=None) - timedelta(hours=5)
    naive = tmp_path / "naive.csv"
    naive.write_text("subject,time,kind\n" + f"emp-2,{local.isoformat(sep=' ')},focus\n", "utf-8")
    with pytest.raises(BadRequest, match="--timezone"):
        ux.imports.run(OPERATOR, "ux", naive, ImportOptions())
    assert count_records(ux) == 3
    with pytest.raises(BadRequest, match="unknown --timezone"):
        ux.imports.run(OPERATOR, "ux", naive, ImportOptions(timezone="Mars/Olympus"))
    done = ux.imports.run(OPERATOR, "ux", naive, ImportOptions(timezone="Europe/Paris"))
    assert done["stored"] == 1
    (event,) = [e for e in read_back(ux) if e["time"] not in times]
    expected = local.replace(tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    assert event["time"] == expected.astimezone(UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
    with pytest.raises(BadRequest, match="--time-unit"):
        ux.imports.run(OPERATOR, "ux", naive, ImportOptions(time_unit="fortnights"))


def test_naive_parquet_timestamps_need_a_timezone(ux: Vault, clock: Clock, tmp_path: Path) -> None:
    when = clock().astimezone(UTC).replace(tzinfo=None)
    table = pa.table({"subject": ["a"], "time": [when], "kind": ["focus"]})
    source = tmp_path / "naive.parquet"
    pq.write_table(table, source)
    with pytest.raises(BadRequest, match="without a UTC offset"):
        ux.imports.run(OPERATOR, "ux", source, ImportOptions())
    assert ux.imports.run(OPERATOR, "ux", source, ImportOptions(timezone="UTC"))["stored"] == 1


# -- SQL sources --------------------------------------------------------------------------------


def fill_table(url: str, rows: list[dict[str, Any]], *, pk: bool = True) -> None:
    engine = create_engine(url)
    key = "event_id INTEGER PRIMARY KEY" if pk else "event_id INTEGER"
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE events ({key}, user_email VARCHAR(200), ts VARCHAR(64), "
                'event_type VARCHAR(32), application VARCHAR(64), "window" VARCHAR(200), '
                "url VARCHAR(500), typed_text TEXT, vault_id VARCHAR(32), note VARCHAR(20))"
            )
        )
        # Inserted out of order: the import reads in key order, whatever the storage order.
        ordered = list(enumerate(rows, start=1))
        ordered = ordered[1::2] + ordered[::2]
        conn.execute(
            text(
                'INSERT INTO events (event_id, user_email, ts, event_type, application, "window",'
                " url, typed_text, note) VALUES (:event_id, :user_email, :ts, :event_type,"
                " :application, :window, :url, :typed_text, 'keep')"
            ),
            [{"event_id": i * 10, **row} for i, row in ordered],
        )
    engine.dispose()


def source_rows(url: str) -> list[Any]:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(text("SELECT * FROM events ORDER BY event_id")).all()
    engine.dispose()
    return found


def test_sql_table_killed_resumed_and_replaced(
    ux: Vault, clock: Clock, source_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = export_rows(clock, 40, bad_time_at=None)
    fill_table(source_url, rows)
    options = ImportOptions(
        mapping=MAPPING, batch=6, table="events", retire="replace", id_column="vault_id"
    )
    kill_after(ux, monkeypatch, 3, inside=True)
    with pytest.raises(Killed):
        ux.imports.run(OPERATOR, "ux", source_url, options)
    assert count_records(ux) == 12
    monkeypatch.undo()
    assert source_rows(source_url)[0].user_email is not None  # not retired: not verified yet

    summary = ux.imports.run(OPERATOR, "ux", source_url, options)
    assert summary["source"]["format"] == "sql"
    assert summary["resumed_at_row"] == 12
    assert summary["stored"] == 40 == count_records(ux)
    assert summary["verification"]["ok"] is True
    assert_no_plaintext_secrets(ux)
    retired = summary["retired"]
    assert retired["mode"] == "replace"
    assert retired["record_ids_written"] == 40
    assert "user_email" in retired["nulled_columns"]

    # The table keeps its rows and keys; mapped columns are NULL; each row names its record.
    after = source_rows(source_url)
    assert len(after) == 40
    with ux.db.read() as conn:
        links = dict(conn.execute(select(import_records.c.row, import_records.c.record_id)).all())
    for number, row in enumerate(after, start=1):
        assert (row.user_email, row.typed_text, row.ts) == (None, None, None)
        assert row.note == "keep"
        assert row.vault_id == links[number]  # row n in key order <-> source row n
    dumped = json.dumps([list(r) for r in after], default=str)
    assert AWS not in dumped
    assert EMAIL not in dumped

    # The audit log has the retirement, by fingerprint: no URL, no table content.
    with ux.db.read() as conn:
        audit = conn.execute(
            select(audit_log).where(audit_log.c.action == AuditAction.IMPORT_RETIRE.value)
        ).one()
        whole = json.dumps([list(r) for r in conn.execute(select(audit_log))], default=str)
    assert audit.outcome == "ok"
    assert summary["source"]["fingerprint"] in whole
    assert make_url(source_url).database not in whole
    assert "emp1@corp.example" not in whole


def test_sql_query_source_with_key_and_drop_refused(
    ux: Vault, clock: Clock, source_url: str
) -> None:
    fill_table(source_url, export_rows(clock, 9))
    query = "SELECT * FROM events WHERE event_type <> 'window_focus'"
    with pytest.raises(BadRequest, match="--key"):
        ux.imports.run(OPERATOR, "ux", source_url, ImportOptions(mapping=MAPPING, query=query))
    with pytest.raises(BadRequest, match="query source cannot be retired"):
        ux.imports.run(
            OPERATOR,
            "ux",
            source_url,
            ImportOptions(mapping=MAPPING, query=query, key=("event_id",), retire="drop"),
        )
    summary = ux.imports.run(
        OPERATOR, "ux", source_url, ImportOptions(mapping=MAPPING, query=query, key=("event_id",))
    )
    assert summary["stored"] == 6
    assert len(source_rows(source_url)) == 9  # a query is never written to


def test_sql_table_without_key_is_refused_then_dropped(
    ux: Vault, clock: Clock, source_url: str
) -> None:
    fill_table(source_url, export_rows(clock, 5), pk=False)
    with pytest.raises(BadRequest, match="has no primary key"):
        ux.imports.run(OPERATOR, "ux", source_url, ImportOptions(mapping=MAPPING, table="events"))
    options = ImportOptions(mapping=MAPPING, table="events", key=("event_id",), retire="drop")
    summary = ux.imports.run(OPERATOR, "ux", source_url, options)
    assert summary["stored"] == 5
    assert summary["retired"] == {"mode": "drop", "action": "dropped", "rows": 5}
    engine = create_engine(source_url)
    with engine.connect() as conn, pytest.raises(Exception, match="events"):
        conn.execute(text("SELECT count(*) FROM events"))
    engine.dispose()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ImportOptions(mapping=MAPPING), "exactly one of --table"),
        (ImportOptions(mapping=MAPPING, table="nope"), "no table 'nope'"),
        (ImportOptions(mapping=MAPPING, table="events", key=("zz",)), "key column 'zz'"),
        (ImportOptions(mapping=MAPPING, table="events", retire="replace"), "--id-column"),
        (
            ImportOptions(mapping=MAPPING, table="events", retire="replace", id_column="note"),
            "32\\+ characters",
        ),
        (ImportOptions(mapping=MAPPING, table="events", retire="overwrite"), "replace or =drop"),
        (
            ImportOptions(
                mapping=MAPPING, table="events", key=("ts",), retire="replace", id_column="vault_id"
            ),
            "key column 'ts' is mapped",
        ),
    ],
)
def test_bad_sql_sources(
    ux: Vault, clock: Clock, source_url: str, options: ImportOptions, message: str
) -> None:
    fill_table(source_url, export_rows(clock, 3))
    with pytest.raises(BadRequest, match=message):
        ux.imports.run(OPERATOR, "ux", source_url, options)
    assert count_records(ux) == 0
    assert len(source_rows(source_url)) == 3


def test_password_never_in_messages_or_audit(ux: Vault, tmp_path: Path) -> None:
    url = "postgresql+psycopg://tv:s3cret-pw@127.0.0.1:1/nowhere"
    with pytest.raises(BadRequest) as caught:
        ux.imports.run(OPERATOR, "ux", url, ImportOptions(mapping=MAPPING, table="events"))
    assert "s3cret-pw" not in caught.value.message
    with ux.db.read() as conn:
        whole = json.dumps([list(r) for r in conn.execute(select(audit_log))], default=str)
    assert "s3cret-pw" not in whole
    with pytest.raises(BadRequest, match="SQLAlchemy URL"):
        ux.imports.run(OPERATOR, "ux", "nodialect://x", ImportOptions(table="t"))
    with pytest.raises(BadRequest, match="for SQL sources"):
        ux.imports.run(OPERATOR, "ux", tmp_path / "a.csv", ImportOptions(table="t"))


# -- retiring files -----------------------------------------------------------------------------


def test_retire_file_after_verified_import(ux: Vault, clock: Clock, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "old.csv", export_rows(clock, 12))
    inode_bytes = source.stat().st_size
    # Keep a second name on the inode to look at the bytes after the overwrite.
    witness = tmp_path / "witness"
    witness.hardlink_to(source)
    summary = ux.imports.run(
        OPERATOR, "ux", source, ImportOptions(mapping=MAPPING, retire="overwrite")
    )
    assert summary["stored"] == 12
    assert summary["retired"]["action"] == "overwritten and removed"
    assert summary["retired"]["bytes"] == inode_bytes
    assert summary["retired"]["other_hard_links"] == 1
    assert not source.exists()
    assert witness.read_bytes() == bytes(inode_bytes)  # the bytes are gone: zeros remain
    with ux.db.read() as conn:
        entry = conn.execute(
            select(audit_log).where(audit_log.c.action == AuditAction.IMPORT_RETIRE.value)
        ).one()
    assert "old.csv" not in json.dumps(list(entry), default=str)


def test_retire_parquet_file(ux: Vault, clock: Clock, tmp_path: Path) -> None:
    source = write_parquet(tmp_path / "old.parquet", export_rows(clock, 5))
    summary = ux.imports.run(
        OPERATOR, "ux", source, ImportOptions(mapping=MAPPING, retire="overwrite")
    )
    assert summary["retired"]["mode"] == "overwrite"
    assert not source.exists()


def test_no_retirement_after_failed_verification_or_invalid_rows(
    ux: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_csv(tmp_path / "keep.csv", export_rows(clock, 8))
    before = source.read_bytes()
    monkeypatch.setattr(ux.imports, "_verify", lambda run: {"ok": False})
    with pytest.raises(Conflict, match="verification failed"):
        ux.imports.run(OPERATOR, "ux", source, ImportOptions(mapping=MAPPING, retire="overwrite"))
    assert source.read_bytes() == before
    monkeypatch.undo()

    invalid = write_csv(tmp_path / "bad.csv", export_rows(clock, 8, bad_time_at=3))
    with pytest.raises(Conflict, match="invalid") as caught:
        ux.imports.run(OPERATOR, "ux", invalid, ImportOptions(mapping=MAPPING, retire="overwrite"))
    assert caught.value.details["summary"]["stored"] == 7
    assert invalid.exists()
    with ux.db.read() as conn:
        outcomes = (
            conn.execute(
                select(audit_log.c.outcome).where(
                    audit_log.c.action == AuditAction.IMPORT_RETIRE.value
                )
            )
            .scalars()
            .all()
        )
    assert outcomes == ["denied", "denied"]
    with pytest.raises(BadRequest, match="is for SQL tables"):
        ux.imports.run(OPERATOR, "ux", source, ImportOptions(mapping=MAPPING, retire="drop"))


def test_cli_parquet_import_with_retirement(tmp_path: Path, database_url: str) -> None:
    env = {
        "TVAULT_HOME": str(tmp_path / "home"),
        "TVAULT_DATABASE_URL": database_url,
        "TVAULT_SCRYPT_N": str(2**14),
    }
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    created = run("dataset", "create", "ux", "--retention-days", "7", "--purpose", "research",
                  "--consent", "opt_out")  # fmt: skip
    assert created.exit_code == 0, created.output
    rows = export_rows(Clock(datetime.now(UTC).replace(microsecond=0)), 6)
    source = write_parquet(tmp_path / "t.parquet", rows)
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps(MAPPING), "utf-8")
    flags = ["--mapping-file", str(mapping)]
    bad = run("import", "ux", str(source), *flags, "--retire-source=shred")
    assert bad.exit_code == 2, bad.output
    assert "--retire-source must be one of" in bad.stderr
    stray = run("import", "ux", str(source), *flags, "--bogus")
    assert stray.exit_code == 2
    done = run("import", "ux", str(source), *flags, "--retire-source")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["stored"] == 6
    assert summary["retired"]["mode"] == "overwrite"
    assert not source.exists()


def test_cli_sql_import_drop(tmp_path: Path, database_url: str, source_url: str) -> None:
    env = {
        "TVAULT_HOME": str(tmp_path / "home"),
        "TVAULT_DATABASE_URL": database_url,
        "TVAULT_SCRYPT_N": str(2**14),
    }
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    created = run("dataset", "create", "ux", "--retention-days", "7", "--purpose", "research",
                  "--consent", "opt_out")  # fmt: skip
    assert created.exit_code == 0, created.output
    fill_table(source_url, export_rows(Clock(datetime.now(UTC).replace(microsecond=0)), 7))
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps(MAPPING), "utf-8")
    query = run("import", "ux", source_url, "--query", "SELECT * FROM events",
                "--mapping-file", str(mapping), "--retire-source=drop")  # fmt: skip
    assert query.exit_code == 2
    assert "query source cannot be retired" in query.stderr
    # --retire-source may come before SOURCE too.
    done = run("import", "ux", "--retire-source=drop", source_url, "--table", "events",
               "--mapping-file", str(mapping))  # fmt: skip
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["stored"] == 7
    assert summary["retired"]["action"] == "dropped"
    assert source_url.rpartition("/")[2] not in done.stdout


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("data.x", "pos.nope"),  # no such field in the struct
        ("data.x", "pos.x.deeper"),  # an int holds no fields
        ("data.x", "at.x"),  # a timestamp holds no fields
    ],
)
def test_a_mapped_path_the_parquet_struct_lacks_is_a_clear_error(
    ux: Vault, clock: Clock, tmp_path: Path, field: str, path: str
) -> None:
    """A path into a struct column is checked against the struct's fields before anything is
    stored, as a missing column is (not every row invalid)."""
    table = pa.table(
        {
            "who": ["emp-1", "emp-2"],
            "at": pa.array([clock(), clock()], pa.timestamp("ms", tz="UTC")),
            "pos": pa.array([{"x": 1, "y": 2}, {"x": 3, "y": 4}]),
        }
    )
    source = tmp_path / "moves.parquet"
    pq.write_table(table, source)
    move = {"fields": {"subject": "who", "time": "at"}, "defaults": {"kind": "mouse_move"}}
    options = ImportOptions(map=(f"{field}={path}",), mapping=move)
    with pytest.raises(BadRequest, match=f"no column {path}"):
        ux.imports.run(OPERATOR, "ux", source, options)
    assert count_records(ux) == 0
    good = ImportOptions(map=("data.x=pos.x", "data.y=pos.y"), mapping=move)
    summary = ux.imports.run(OPERATOR, "ux", source, good)
    assert summary["stored"] == 2, (summary["invalid_causes"], summary["refused"])


def test_sql_text_booleans_and_json_columns_import_and_retire_to_sql_null(
    ux: Vault, clock: Clock, source_url: str
) -> None:
    """(Found by an exploratory test.) A text column holding 0/1 fills ``private_window`` (it
    made every row invalid); a JSON column (jsonb on PostgreSQL) mapped to ``data`` is set to
    SQL NULL by ``--retire-source=replace`` (it got the JSON value null)."""
    json_type = "JSON" if source_url.startswith("sqlite") else "JSONB"
    engine = create_engine(source_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE ev (event_id INTEGER PRIMARY KEY, who VARCHAR(64), ts VARCHAR(64),"
                f" incognito VARCHAR(5), payload {json_type}, vault_id VARCHAR(32))"
            )
        )
        rows = []
        for i in range(12):
            clock.advance(seconds=1)
            payload = json.dumps({"text": f"note {i} {EMAIL}"})
            rows.append(
                {"i": i, "who": f"emp-{i % 3}", "ts": clock().isoformat(), "p": payload,
                 "inc": "1" if i % 4 == 0 else "0"}
            )  # fmt: skip
        conn.execute(
            text(
                "INSERT INTO ev (event_id, who, ts, incognito, payload)"
                " VALUES (:i, :who, :ts, :inc, :p)"
            ),
            rows,
        )
    engine.dispose()
    mapping = {
        "fields": {
            "subject": "who", "time": "ts", "private_window": "incognito", "data": "payload",
        },
        "defaults": {"kind": "key_run"},
    }  # fmt: skip
    options = ImportOptions(mapping=mapping, table="ev", retire="replace", id_column="vault_id")
    summary = ux.imports.run(OPERATOR, "ux", source_url, options)
    assert summary["invalid"] == 0
    assert summary["stored"] == 9
    assert summary["refused"] == {"private_window": 3}  # the 1s: private windows, refused
    engine = create_engine(source_url)
    with engine.connect() as conn:
        nulls = conn.execute(text("SELECT count(*) FROM ev WHERE payload IS NULL")).scalar_one()
        ids = conn.execute(text("SELECT count(vault_id) FROM ev")).scalar_one()
    engine.dispose()
    assert nulls == 12
    assert ids == 9


def test_a_sqlite_source_that_does_not_exist_is_not_created(ux: Vault, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "events.db"
    with pytest.raises(BadRequest, match="no database file"):
        ux.imports.run(
            OPERATOR, "ux", f"sqlite:///{missing}", ImportOptions(mapping=MAPPING, table="ev")
        )
    assert not missing.exists()
    assert not missing.parent.exists()
