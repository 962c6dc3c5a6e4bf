"""`tvault import`: files shaped like real telemetry exports, through the one ingest path.

Both backends. Mapped CSV and JSONL, automatic mapping, an import killed part-way (inside a
batch's transaction, and between batches) and run again, a changed source, bad mappings,
invalid rows counted by row number only, and the CLI command.
"""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.conftest import OPERATOR, READER, Clock, make_dataset
from vault.audit import AuditAction
from vault.bootstrap import Vault
from vault.cli import app
from vault.domain.events import MAX_DATA_DEPTH
from vault.errors import BadRequest, Conflict
from vault.services.importer import ImportOptions
from vault.services.reads import EventQuery
from vault.storage.tables import audit_log, import_records, imports, records

AWS = "AKIAQ3EGRQW7PLK4ZT2M"
EMAIL = "jane.doe@example.com"
HEADER = ["user_email", "ts", "event_type", "application", "window", "url", "typed_text"]
MAPPING = {
    "fields": {
        "subject": "user_email",
        "time": "ts",
        "kind": "event_type",
        "app": "application",
        "window_title": "window",
        "url": "url",
        "text": "typed_text",
    },
    "values": {"kind": {"typing": "key_run", "paste": "clipboard", "window_focus": "focus"}},
}


def export_rows(clock: Clock, n: int, *, bad_time_at: int | None = None) -> list[dict[str, Any]]:
    """Rows as a telemetry tool exports them; secrets planted in some typed text."""
    rows = []
    for i in range(n):
        when = (clock() - timedelta(minutes=n - i)).isoformat()
        kind = ("typing", "paste", "window_focus")[i % 3]
        text = "" if kind == "window_focus" else f"note {i}"
        if i % 7 == 1 and text:
            text = f"deploy with {AWS} now"
        if i % 7 == 2 and text:
            text = f"mail {EMAIL} please"
        rows.append(
            {
                "user_email": f"emp{i % 4}@corp.example",
                "ts": "yesterday-ish" if i == bad_time_at else when,
                "event_type": kind,
                "application": "Code",
                "window": f"file{i}.py",
                "url": "",
                "typed_text": text,
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]], *, blank_every: int = 0) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i, row in enumerate(rows, start=1):
            fh.write(json.dumps(row) + "\n")
            if blank_every and i % blank_every == 0:
                fh.write("\n")
    return path


def count_records(vault: Vault) -> int:
    with vault.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(records)).scalar_one())


def read_back(vault: Vault, dataset: str = "ux") -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = vault.reads.list_events(
            READER, dataset, "research", EventQuery(limit=500, cursor=cursor)
        )
        events.extend(page["events"])
        cursor = page["next_cursor"]
        if cursor is None:
            return events


def assert_no_plaintext_secrets(vault: Vault) -> None:
    events = read_back(vault)
    blob = json.dumps(events)
    assert AWS not in blob
    assert EMAIL not in blob
    assert "[AWS_ACCESS_KEY]" in blob
    assert "[EMAIL]" in blob


@pytest.fixture
def ux(vault: Vault) -> Vault:
    make_dataset(vault, "ux")
    return vault


def test_csv_with_mapping_file(ux: Vault, clock: Clock, tmp_path: Path) -> None:
    rows = export_rows(clock, 30, bad_time_at=4)
    source = write_csv(tmp_path / "export.csv", rows)
    summary = ux.imports.run(OPERATOR, "ux", source, ImportOptions(mapping=MAPPING, batch=8))

    assert summary["rows"] == summary["rows_read"] == 30
    assert summary["invalid"] == 1
    assert summary["invalid_rows"] == [5]  # row numbers only (1-based, after the header)
    assert summary["invalid_causes"] == {"time": 1}
    assert summary["stored"] == 29 == count_records(ux)
    assert summary["refused"] == {}
    assert summary["redactions"]["AWS_ACCESS_KEY"] >= 2
    assert summary["redactions"]["EMAIL"] >= 2
    assert summary["verification"]["ok"] is True
    assert summary["verification"]["matched_source"] == 16
    assert summary["mapping"] == "given"
    assert summary["this_run"]["rows"] == 30
    assert_no_plaintext_secrets(ux)
    kinds = {e["kind"] for e in read_back(ux)}
    assert kinds == {"key_run", "clipboard", "focus"}
    # Nothing of the source's content in the imports row or the audit log.
    with ux.db.read() as conn:
        dumped = json.dumps([list(r) for r in conn.execute(select(imports)).all()], default=str)
        audit = json.dumps([list(r) for r in conn.execute(select(audit_log)).all()], default=str)
    for secret in (AWS, EMAIL, "emp1@corp.example", "yesterday-ish", "export.csv"):
        assert secret not in dumped
        assert secret not in audit
    assert "import:start" in audit
    assert "import:batch" in audit
    assert "import:finish" in audit


def test_jsonl_flags_and_nested_fields(ux: Vault, clock: Clock, tmp_path: Path) -> None:
    rows = [
        {"who": {"email": "a@corp.example"}, "at": clock().isoformat(), "type": "key_run",
         "payload": f"token {AWS}", "incognito": True}
        for _ in range(5)
    ]  # fmt: skip
    source = write_jsonl(tmp_path / "dump.ndjson", rows)
    options = ImportOptions(
        map=(
            "subject=who.email",
            "time=at",
            "kind=type",
            "text=payload",
            "private_window=incognito",
        )
    )
    summary = ux.imports.run(OPERATOR, "ux", source, options)
    # Private-window events are refused by the collection rules, as on HTTP ingest.
    assert summary["stored"] == 0
    assert sum(summary["refused"].values()) == 5
    assert summary["verification"]["ok"] is True


def test_automatic_mapping_for_schema_shaped_jsonl(ux: Vault, clock: Clock, tmp_path: Path) -> None:
    rows = [
        {"subject": f"emp-{i}", "time": clock().isoformat(), "kind": "key_run",
         "app": "Slack", "data": {"text": f"ping {EMAIL}"}}
        for i in range(12)
    ]  # fmt: skip
    rows.append({"subject": "emp-1", "time": clock().isoformat(), "kind": "focus"})
    source = write_jsonl(tmp_path / "events.jsonl", rows, blank_every=5)
    summary = ux.imports.run(OPERATOR, "ux", source, ImportOptions(batch=4))
    assert summary["mapping"] == "automatic"
    assert summary["stored"] == 13 == count_records(ux)
    assert summary["rows_read"] == 13
    assert summary["rows"] == 15  # blank lines are source rows too (positions are lines)
    assert summary["redactions"] == {"EMAIL": 12}
    assert summary["verification"]["ok"] is True


def test_automatic_mapping_keeps_fields_the_first_jsonl_row_lacks(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    """JSON rows vary: a url, a window title or a field that only later rows hold is kept
    (the identity mapping covers every field of the schema, not the first row's)."""
    first = {"subject": "emp-1", "time": clock().isoformat(), "kind": "focus"}
    later = {
        "subject": "emp-2",
        "time": clock().isoformat(),
        "kind": "key_run",
        "app": "Google Chrome",
        "window_title": f"Inbox - {EMAIL}",
        "url": "https://deploy:hunter2@ci.example.com/job/1",
        "field": {"type": "text", "label": "Search"},
        "data": {"text": "hello"},
    }
    source = write_jsonl(tmp_path / "events.jsonl", [first, later, first])
    summary = ux.imports.run(OPERATOR, "ux", source, ImportOptions(batch=2))
    assert summary["stored"] == 3
    kept = [e for e in read_back(ux) if e["kind"] == "key_run"]
    assert len(kept) == 1
    assert kept[0]["url"] == "https://deploy:[PASSWORD]@ci.example.com/job/1"
    assert kept[0]["window_title"] == "Inbox - [EMAIL]"
    assert kept[0]["field"] == {"type": "text", "label": "Search"}
    assert kept[0]["app"] == "Google Chrome"


def test_malformed_jsonl_lines_are_invalid_not_fatal(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    good = {"subject": "e", "time": clock().isoformat(), "kind": "focus"}
    source = tmp_path / "mixed.jsonl"
    lines = [json.dumps(good), "{not json", "[1, 2]", json.dumps(good), '{"a": NaN}']
    source.write_text("\n".join(lines) + "\n", "utf-8")
    summary = ux.imports.run(OPERATOR, "ux", source, ImportOptions())
    assert summary["stored"] == 2
    assert summary["invalid_rows"] == [2, 3, 5]
    assert summary["invalid_causes"] == {"malformed": 3}


class Killed(Exception):
    """Stands for the process dying."""


def kill_after(vault: Vault, monkeypatch: pytest.MonkeyPatch, k: int, *, inside: bool) -> None:
    """Make the k-th batch die inside its transaction (``inside``) or just after its commit."""
    real = vault.ingest.ingest
    calls = {"n": 0}

    def ingest(principal: Any, dataset: str, items: list[Any], **kw: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == k and inside:
            hook = kw["after_store"]

            def dying(conn: Any, results: list[dict[str, Any]]) -> None:
                hook(conn, results)
                raise Killed

            kw["after_store"] = dying
        answer = real(principal, dataset, items, **kw)
        if calls["n"] == k:
            raise Killed
        return answer

    monkeypatch.setattr(vault.ingest, "ingest", ingest)


@pytest.mark.parametrize("inside", [True, False], ids=["in-transaction", "between-batches"])
def test_killed_import_resumes_exactly_once(
    ux: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inside: bool
) -> None:
    rows = export_rows(clock, 60, bad_time_at=20)
    source = write_csv(tmp_path / "big.csv", rows)
    options = ImportOptions(mapping=MAPPING, batch=7)
    kill_after(ux, monkeypatch, 4, inside=inside)
    with pytest.raises(Killed):
        ux.imports.run(OPERATOR, "ux", source, options)
    done_batches = 3 if inside else 4
    with ux.db.read() as conn:
        row = conn.execute(select(imports)).one()
        links = conn.execute(select(func.count()).select_from(import_records)).scalar_one()
    assert row.state == "running"
    assert row.stored == links == count_records(ux) == 7 * done_batches
    monkeypatch.undo()

    summary = ux.imports.run(OPERATOR, "ux", source, options)
    assert summary["import"] == row.id
    assert summary["resumed_at_row"] == row.position > 0
    assert summary["stored"] == 59 == count_records(ux)
    assert summary["invalid"] == 1
    assert summary["invalid_rows"] == [21]
    assert summary["verification"]["ok"] is True
    with ux.db.read() as conn:
        linked_rows = conn.execute(select(import_records.c.row)).scalars().all()
        failed = conn.execute(
            select(func.count()).where(
                audit_log.c.action == AuditAction.IMPORT_FINISH.value,
                audit_log.c.outcome == "failed",
            )
        ).scalar_one()
    assert sorted(linked_rows) == [n for n in range(1, 61) if n != 21]
    assert failed == 1
    assert_no_plaintext_secrets(ux)

    # Run a third time: already imported, nothing stored twice.
    again = ux.imports.run(OPERATOR, "ux", source, options)
    assert again["already_imported"] is True
    assert again["this_run"]["rows"] == 0
    assert count_records(ux) == 59
    assert again["verification"]["ok"] is True


def test_changed_source_is_a_new_import(ux: Vault, clock: Clock, tmp_path: Path) -> None:
    rows = export_rows(clock, 10)
    source = write_csv(tmp_path / "day.csv", rows)
    first = ux.imports.run(OPERATOR, "ux", source, ImportOptions(mapping=MAPPING))
    write_csv(source, [*rows, *export_rows(clock, 3)])
    second = ux.imports.run(OPERATOR, "ux", source, ImportOptions(mapping=MAPPING))
    assert second["import"] != first["import"]
    assert second["already_imported"] is False
    assert second["resumed_at_row"] == 0
    assert second["stored"] == 13
    assert count_records(ux) == 23


def test_unfinished_import_with_another_mapping_conflicts(
    ux: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_csv(tmp_path / "x.csv", export_rows(clock, 20))
    kill_after(ux, monkeypatch, 1, inside=False)
    with pytest.raises(Killed):
        ux.imports.run(OPERATOR, "ux", source, ImportOptions(mapping=MAPPING, batch=5))
    monkeypatch.undo()
    other = {**MAPPING, "fields": {**MAPPING["fields"], "window_title": "application"}}
    with pytest.raises(Conflict):
        ux.imports.run(OPERATOR, "ux", source, ImportOptions(mapping=other, batch=5))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ImportOptions(map=("subject=user_email", "time=ts")), "no column for kind"),
        (ImportOptions(map=("subjekt=user_email",)), "unknown event field 'subjekt'"),
        (ImportOptions(map=("subject",)), "field=column"),
        (
            ImportOptions(map=("subject=email", "time=ts", "kind=event_type")),
            "the source has no column email",
        ),
        (ImportOptions(), "does not follow the event schema"),
        (ImportOptions(format="xml"), "format must be one of"),
        (ImportOptions(format="parquet"), "not a readable Parquet file"),
        (ImportOptions(mapping={"fields": {"subject": 3}}), "must be an object of str"),
        (ImportOptions(mapping=MAPPING, batch=100_000), "--batch must be between"),
    ],
)
def test_bad_mapping_is_a_clear_error(
    ux: Vault, clock: Clock, tmp_path: Path, options: ImportOptions, message: str
) -> None:
    source = write_csv(tmp_path / "e.csv", export_rows(clock, 3))
    with pytest.raises(BadRequest, match=message):
        ux.imports.run(OPERATOR, "ux", source, options)
    assert count_records(ux) == 0


def test_import_needs_admin(ux: Vault, clock: Clock, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "e.csv", export_rows(clock, 3))
    with pytest.raises(Exception, match="not allowed"):
        ux.imports.run(READER, "ux", source, ImportOptions(mapping=MAPPING))


def test_cli_import(tmp_path: Path, database_url: str, clock: Clock) -> None:
    env = {
        "TVAULT_HOME": str(tmp_path / "home"),
        "TVAULT_DATABASE_URL": database_url,
        "TVAULT_OPERATOR": "ops-1",
        "TVAULT_SCRYPT_N": str(2**14),
    }
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    created = run("dataset", "create", "ux", "--retention-days", "7", "--purpose", "research",
                  "--consent", "opt_out")  # fmt: skip
    assert created.exit_code == 0, created.output
    source = write_csv(tmp_path / "t.csv", export_rows(Clock(), 9, bad_time_at=0))
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"values": MAPPING["values"]}), "utf-8")
    flags = [f"--map={k}={v}" for k, v in MAPPING["fields"].items()]
    done = run("import", "ux", str(source), "--mapping-file", str(mapping), *flags,
               "--batch", "4")  # fmt: skip
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["stored"] == 8
    assert summary["invalid_rows"] == [1]
    bad = run("import", "ux", str(source), "--map", "subject")
    assert bad.exit_code == 2
    assert "field=column" in bad.stderr


CSV_HEAD = "subject,time,kind,data.text\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # A quote never closed would swallow every later row into one field.
        (
            'emp-1,{t},key_run,ok\nemp-2,{t},key_run,"open\nemp-3,{t},key_run,x\n',
            r"CSV row 2 cannot be parsed \(unexpected end of data\)",
        ),
        ('emp-1,{t},key_run,"closed"then-more\n', "CSV row 1 cannot be parsed"),
    ],
)
def test_csv_bad_quoting_stops_the_import_and_keeps_the_source(
    ux: Vault, clock: Clock, tmp_path: Path, body: str, message: str
) -> None:
    """Bad quoting stops the import with the row number (docs/import.md); the source is not
    retired, and nothing after the bad row is stored as text of another row."""
    source = tmp_path / "bad.csv"
    source.write_text(CSV_HEAD + body.format(t=clock().isoformat()), encoding="utf-8")
    with pytest.raises(BadRequest, match=message):
        ux.imports.run(OPERATOR, "ux", source, ImportOptions(retire="overwrite"))
    assert source.exists()
    assert all("emp-3" not in json.dumps(e) for e in read_back(ux))


@pytest.mark.parametrize(
    ("where", "message"),
    [(0, "not UTF-8 text \\(in or near its header\\)"), (300, "line 302 of the file")],
)
def test_csv_that_is_not_utf8_is_a_clear_error(
    ux: Vault, clock: Clock, tmp_path: Path, where: int, message: str
) -> None:
    """A byte that is not UTF-8, in the header's first chunk or far into the file: a clear
    error (never a traceback), naming a row it comes after (text is decoded ahead of the
    parser, so not the row itself)."""
    when = clock().isoformat()
    rows = [f"emp-1,{when},key_run,row {i}".encode() for i in range(1, 401)]
    rows[where] = rows[where] + b"\xff"
    source = tmp_path / "bytes.csv"
    source.write_bytes(CSV_HEAD.encode() + b"\n".join(rows) + b"\n")
    with pytest.raises(BadRequest, match=message):
        ux.imports.run(OPERATOR, "ux", source, ImportOptions(batch=1000))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_a_text_source_in_utf16_or_utf32_is_a_clear_error(
    ux: Vault, clock: Clock, tmp_path: Path, encoding: str
) -> None:
    """Lines cannot be split at newline bytes in UTF-16 or -32: refused whole, nothing stored
    (not some lines read as malformed and others stored)."""
    when = clock().isoformat()
    text_ = "".join(
        f'{{"subject":"emp-1","time":"{when}","kind":"focus","app":"a{i}"}}\n' for i in range(5)
    )
    for name in ("events.jsonl", "events.csv"):
        source = tmp_path / name
        source.write_bytes(text_.encode(encoding))
        with pytest.raises(BadRequest, match="not UTF-8 text"):
            ux.imports.run(OPERATOR, "ux", source, ImportOptions())
    assert count_records(ux) == 0


def test_a_finished_import_run_with_another_mapping_is_refused_not_reported_done(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    """(Found by an exploratory test: it said "already imported" and ignored the new mapping, so
    a file imported with a wrong mapping seemed fine.)"""
    source = write_csv(tmp_path / "x.csv", export_rows(clock, 6))
    ux.imports.run(OPERATOR, "ux", source, ImportOptions(mapping=MAPPING))
    other = {**MAPPING, "fields": {**MAPPING["fields"], "window_title": "application"}}
    with pytest.raises(Conflict, match="was done with another format or mapping"):
        ux.imports.run(OPERATOR, "ux", source, ImportOptions(mapping=other))
    same = ux.imports.run(OPERATOR, "ux", source, ImportOptions(mapping=MAPPING))
    assert same["already_imported"] is True
    assert count_records(ux) == 6


def test_an_invalid_data_field_is_counted_by_its_event_field_name(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    rows = [
        {"subject": "emp-1", "time": clock().isoformat(), "kind": "click",
         "data": {"x": "left of centre", "y": 3}},
        {"subject": "emp-1", "time": clock().isoformat(), "kind": "click",
         "data": {"x": 1, "y": 3}},
    ]  # fmt: skip
    summary = ux.imports.run(
        OPERATOR, "ux", write_jsonl(tmp_path / "c.jsonl", rows), ImportOptions()
    )
    assert summary["invalid_causes"] == {"data.x": 1}
    assert summary["stored"] == 1


def test_a_key_named_twice_is_refused_as_http_ingest_refuses_it(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    """Which value a parser takes of a key named twice differs from parser to parser: the
    import refuses such a row (HTTP ingest refuses such a body), on the fast way (automatic
    mapping), on the general way (a mapping) and in JSON held as text (a CSV cell)."""
    when = clock().isoformat()
    good = f'{{"subject":"emp-1","time":"{when}","kind":"key_run","data":{{"text":"fine"}}}}'
    lines = [
        good,
        f'{{"subject":"emp-1","time":"{when}","kind":"key_run","subject":"emp-2",'
        '"data":{"text":"top"}}',
        f'{{"subject":"emp-1","time":"{when}","kind":"key_run","data":{{"text":"a","text":"b"}}}}',
        good,
    ]
    source = tmp_path / "dup.jsonl"
    source.write_text("\n".join(lines) + "\n", "utf-8")
    summary = ux.imports.run(OPERATOR, "ux", source, ImportOptions())
    assert (summary["stored"], summary["invalid_rows"]) == (2, [2, 3])
    assert summary["invalid_causes"] == {"duplicate_key": 2}
    mapped = tmp_path / "dup-mapped.jsonl"
    mapped.write_text("\n".join(line.replace('"subject"', '"who"') for line in lines) + "\n")
    flags = ("subject=who", "time=time", "kind=kind", "data=data")
    summary = ux.imports.run(OPERATOR, "ux", mapped, ImportOptions(map=flags))
    assert (summary["stored"], summary["invalid_rows"]) == (2, [2, 3])
    assert summary["invalid_causes"] == {"duplicate_key": 2}
    cells = tmp_path / "dup.csv"
    with cells.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["subject", "time", "kind", "data"])
        writer.writerow(["emp-1", when, "key_run", '{"text":"x","text":"y"}'])
        writer.writerow(["emp-1", when, "key_run", '{"text":"x"}'])
    summary = ux.imports.run(OPERATOR, "ux", cells, ImportOptions())
    assert (summary["stored"], summary["invalid_rows"]) == (1, [1])
    assert summary["invalid_causes"] == {"data": 1}
    texts = sorted(e["data"]["text"] for e in read_back(ux))
    assert texts == ["fine", "fine", "fine", "fine", "x"]


def test_text_that_is_not_unicode_is_an_invalid_row_not_a_crash(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    """A JSON ``\\ud800`` escape makes a lone surrogate, which no UTF-8 text can hold: the row
    is refused, named by its field, and the rest is stored."""
    when = clock().isoformat()
    base = f'"subject":"emp-1","time":"{when}"'
    lines = [
        f'{{{base},"kind":"key_run","data":{{"text":"ok"}}}}',
        f'{{{base},"kind":"key_run","data":{{"text":"lone \\ud800"}}}}',
        f'{{{base},"kind":"key","data":{{"key":"\\udfff"}}}}',
        f'{{{base},"kind":"key","data":{{"key":"a","modifiers":["\\ud800"]}}}}',
        f'{{{base},"kind":"custom","data":{{"deep":[{{"x":"\\ud800"}}]}}}}',
        f'{{{base},"kind":"custom","data":{{"\\ud800":1}}}}',
        f'{{{base},"kind":"key_run","app":"\\ud800","data":{{"text":"ok"}}}}',
        f'{{{base},"kind":"custom","data":{{"pair":"\\ud83d\\ude00"}}}}',  # a pair: an emoji
    ]
    source = tmp_path / "surrogates.jsonl"
    source.write_text("\n".join(lines) + "\n", "utf-8")
    summary = ux.imports.run(OPERATOR, "ux", source, ImportOptions())
    assert (summary["stored"], summary["invalid_rows"]) == (2, [2, 3, 4, 5, 6, 7])
    assert summary["invalid_causes"] == {"data.text": 1, "data.key": 1, "data.modifiers": 1,
                                         "schema": 1, "data": 1, "app": 1}  # fmt: skip
    stored = sorted(json.dumps(e["data"]) for e in read_back(ux))
    assert stored == [json.dumps({"pair": "\U0001f600"}), json.dumps({"text": "ok"})]


def test_data_nested_deeper_than_the_vault_walks_is_an_invalid_row_not_a_crash(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    """No HTTP reader bounds an imported row's depth: ``custom`` data nested past
    MAX_DATA_DEPTH is refused by the schema (it stopped the import with a RecursionError at
    about 500 levels), on the fast way and the general way alike."""
    when = clock().isoformat()

    def nested(depth: int) -> str:
        return '{"k":' * depth + "1" + "}" * depth  # (data nested ``depth`` levels)

    lines = [
        f'{{"subject":"emp-1","time":"{when}","kind":"custom","data":{nested(depth)}}}'
        for depth in (MAX_DATA_DEPTH, MAX_DATA_DEPTH + 1, 600, 3000)
    ]
    source = tmp_path / "deep.jsonl"
    source.write_text("\n".join(lines) + "\n", "utf-8")
    summary = ux.imports.run(OPERATOR, "ux", source, ImportOptions())
    assert (summary["stored"], summary["invalid_rows"]) == (1, [2, 3, 4])
    assert summary["invalid_causes"] in ({"schema": 3}, {"schema": 2, "malformed": 1})


def test_a_zeroed_file_is_named_as_such(ux: Vault, tmp_path: Path) -> None:
    """A file of zero bytes (one overwritten by a retirement, through another hard link) is not
    called UTF-16."""
    for name in ("zeroed.jsonl", "zeroed.csv"):
        source = tmp_path / name
        source.write_bytes(bytes(4096))
        with pytest.raises(BadRequest, match="starts with zero bytes"):
            ux.imports.run(OPERATOR, "ux", source, ImportOptions())
    assert count_records(ux) == 0
