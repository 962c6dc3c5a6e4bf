"""The embedded SQLite database is readable by its owner only (found by an exploratory test:
it was made 0644, and SQLite gives its -wal and -shm files the database file's mode)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy import text

from vault.storage import Database


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_and_its_wal_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "home" / "tvault.sqlite3"
    old = os.umask(0o022)  # (the usual umask: files 0644 unless made otherwise)
    try:
        db = Database(f"sqlite:///{path}")
        with db.write() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        wal = path.with_name(path.name + "-wal")
        assert wal.exists()  # (the connection is still open: WAL mode keeps it)
        assert _mode(path) == 0o600
        assert _mode(wal) == 0o600
        db.dispose()
    finally:
        os.umask(old)


def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    path.touch()
    path.chmod(0o640)  # an operator's choice (a group of readers, say)
    db = Database(f"sqlite:///{path}")
    with db.write() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    db.dispose()
    assert _mode(path) == 0o640
