"""A run of an import after its last batch verifies the whole import against its source, not
only what it stored itself (found by an exploratory test of ``tvault import``).

A run that stored nothing (the import was done, or the process died after its last batch and
before verifying) used to compare no row with its source and call that verified; with
``--retire-source`` it then destroyed a source whose first verification had failed. Such a
run now reads a sample of the rows earlier runs stored from the source again, and a
retirement needs at least one stored record compared with its source row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text, update

from tests.conftest import OPERATOR, Clock
from tests.integration.test_import_retire_safety import Killed, _source
from vault.bootstrap import Vault
from vault.errors import Conflict
from vault.services.importer import SAMPLE, ImportOptions, ImportService
from vault.storage.tables import records


def _never_matches(*_args: Any) -> bool:
    return False


def test_a_failed_verification_is_not_passed_by_running_again(
    ux: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source(tmp_path / "a.jsonl", clock, 40)
    monkeypatch.setattr(ImportService, "_matches", _never_matches)
    with pytest.raises(Conflict, match="verification failed"):
        ux.imports.run(OPERATOR, "ux", source, ImportOptions(retire="overwrite"))
    assert source.exists()
    # Run again, the source still not matching its records: still refused, and the rows
    # compared are earlier runs' rows read again from the source.
    with pytest.raises(Conflict, match="verification failed") as failed:
        ux.imports.run(OPERATOR, "ux", source, ImportOptions(retire="overwrite"))
    summary = failed.value.details["summary"]
    assert summary["already_imported"] is True
    assert summary["verification"]["decrypted"] == SAMPLE
    assert summary["verification"]["matched_source"] == 0
    assert source.exists()
    # Once the source does match, a run again verifies it for real and retires it.
    monkeypatch.undo()
    summary = ux.imports.run(OPERATOR, "ux", source, ImportOptions(retire="overwrite"))
    assert summary["verification"]["ok"] is True
    assert summary["verification"]["matched_source"] == SAMPLE
    assert summary["retired"]["mode"] == "overwrite"
    assert not source.exists()


def test_a_run_after_a_death_before_verification_compares_the_source(
    ux: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source(tmp_path / "b.jsonl", clock, 30)

    def dies(*_args: Any) -> None:
        raise Killed

    monkeypatch.setattr(ImportService, "_sample_earlier", dies)  # after the last batch
    with pytest.raises(Killed):
        ux.imports.run(OPERATOR, "ux", source, ImportOptions(retire="overwrite"))
    monkeypatch.undo()
    monkeypatch.setattr(ImportService, "_matches", _never_matches)
    with pytest.raises(Conflict, match="verification failed"):
        ux.imports.run(OPERATOR, "ux", source, ImportOptions(retire="overwrite"))
    assert source.exists()
    monkeypatch.undo()
    summary = ux.imports.run(OPERATOR, "ux", source, ImportOptions(retire="overwrite"))
    assert summary["stored"] == 30
    assert summary["verification"]["matched_source"] == SAMPLE
    assert not source.exists()


def test_a_resumed_import_also_verifies_what_earlier_runs_stored(
    ux: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source(tmp_path / "c.jsonl", clock, 60)
    calls = {"n": 0}
    store = ImportService._store_part

    def dies_on_third(self: ImportService, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise Killed
        return store(self, *args, **kwargs)

    monkeypatch.setattr(ImportService, "_store_part", dies_on_third)
    with pytest.raises(Killed):
        ux.imports.run(OPERATOR, "ux", source, ImportOptions(batch=10))
    monkeypatch.undo()
    summary = ux.imports.run(OPERATOR, "ux", source, ImportOptions(batch=10))
    assert summary["resumed_at_row"] == 20
    assert summary["stored"] == 60
    # This run's sample and one of the rows the first run stored.
    assert summary["verification"]["decrypted"] == 2 * SAMPLE
    assert summary["verification"]["matched_source"] == 2 * SAMPLE
    assert summary["verification"]["ok"] is True


def _sql_table(tmp_path: Path, clock: Clock, rows: int) -> tuple[str, dict[str, Any]]:
    """A SQLite source table ``ev`` of ``rows`` typed rows, and the import options for it."""
    url = f"sqlite:///{tmp_path / 'src.sqlite3'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE ev (n INTEGER PRIMARY KEY, who TEXT, at TEXT, typed TEXT)"))
        for n in range(1, rows + 1):
            clock.advance(seconds=1)
            conn.execute(
                text("INSERT INTO ev VALUES (:n, :who, :at, :typed)"),
                {"n": n, "who": f"emp-{n % 3}", "at": clock().isoformat(), "typed": f"t{n}"},
            )
    engine.dispose()
    mapping = {
        "fields": {"subject": "who", "time": "at", "text": "typed"},
        "defaults": {"kind": "key_run"},
    }
    return url, {"table": "ev", "mapping": mapping}


def _edit(url: str, statement: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(statement))
    engine.dispose()


def test_a_sql_source_changed_since_it_was_imported_is_not_retired(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    url, options = _sql_table(tmp_path, clock, 30)
    ux.imports.run(OPERATOR, "ux", url, ImportOptions(**options))
    _edit(url, "UPDATE ev SET typed = typed || ' edited'")  # every row's text, after the import
    with pytest.raises(Conflict, match="verification failed") as failed:
        ux.imports.run(OPERATOR, "ux", url, ImportOptions(**options, retire="drop"))
    assert failed.value.details["summary"]["verification"]["matched_source"] == 0
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ev")).scalar_one() == 30
    engine.dispose()


def test_sampled_rows_the_source_no_longer_gives_fail_the_verification(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    url, options = _sql_table(tmp_path, clock, 20)
    ux.imports.run(OPERATOR, "ux", url, ImportOptions(**options))
    _edit(url, "UPDATE ev SET at = 'not a time'")
    summary = ux.imports.run(OPERATOR, "ux", url, ImportOptions(**options))
    assert summary["verification"]["unreadable_in_source"] == SAMPLE
    assert summary["verification"]["ok"] is False


def test_records_of_older_rules_are_not_compared_and_do_not_retire(
    ux: Vault, clock: Clock, tmp_path: Path
) -> None:
    """A record an earlier run redacted with older rules is not what today's rules make of its
    source row: it is not held against the verification, nor taken as compared."""
    source = _source(tmp_path / "old-rules.jsonl", clock, 20)
    ux.imports.run(OPERATOR, "ux", source, ImportOptions())
    with ux.db.write() as conn:
        conn.execute(update(records).values(rules_version="1"))
    with pytest.raises(Conflict, match="older rules") as refused:
        ux.imports.run(OPERATOR, "ux", source, ImportOptions(retire="overwrite"))
    verification = refused.value.details["summary"]["verification"]
    assert verification["ok"] is True
    assert verification["older_rules"] == verification["decrypted"] == SAMPLE
    assert verification["matched_source"] == 0
    assert source.exists()
