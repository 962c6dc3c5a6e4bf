"""The embedded SQLite database is readable by its owner only (found by an exploratory test:
it was made 0644, and SQLite gives its -wal and -shm files the database file's mode)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from vault.storage import Database
from vault.storage import database as database_module


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


def test_a_database_that_cannot_be_created_or_written_is_still_opened_for_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Review: an existing file that may only be read, as a backup being restored, raised
    PermissionError when the file was opened for writing to set its mode.) An existing file is
    not touched; where the file cannot be made, SQLite reports it."""
    path = tmp_path / "backup.sqlite3"
    first = Database(f"sqlite:///{path}")
    with first.write() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (7)"))
    first.dispose()
    real_open = os.open

    def no_writing(file: Any, flags: int, *args: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and str(file) == str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(file, flags, *args)

    monkeypatch.setattr(database_module.os, "open", no_writing)
    db = Database(f"sqlite:///{path}")
    with db.read() as conn:
        assert conn.execute(text("SELECT x FROM t")).scalar_one() == 7
    db.dispose()


def _lock_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".lock"))


def test_an_exclusive_lock_leaves_no_file_and_is_still_held_by_one_only(tmp_path: Path) -> None:
    """One lock file per lock name was left beside the database (one per import ever run): it
    is removed while still held, and a taker that opened the removed file tries again."""
    db = Database(f"sqlite:///{tmp_path / 'tvault.sqlite3'}")
    try:
        with db.exclusive("import:a") as first:
            assert first
            assert len(_lock_files(tmp_path)) == 1
            with db.exclusive("import:a") as second:  # (flock: per open file, so in-process too)
                assert not second
            with db.exclusive("import:b") as other:
                assert other
        assert _lock_files(tmp_path) == []
        # A taker that opened the file just before its holder removed it and let go has locked
        # a file that is no longer the lock: it must try again with the file under the name
        # (else two could hold the lock: it, and one that made the file anew).
        path = tmp_path / "x.lock"
        other = tmp_path / "other"
        other.write_text("")
        real_stat = os.stat
        seen: list[str] = []

        def moved(target: Any, *args: Any, **kwargs: Any) -> Any:
            if Path(target) == path:
                seen.append("real" if seen else "moved")
                if seen == ["moved"]:
                    return real_stat(other)  # (another file is under the name now)
            return real_stat(target, *args, **kwargs)

        database_module.os.stat = moved  # type: ignore[assignment]
        try:
            fh = database_module._lock_file(path)
        finally:
            database_module.os.stat = real_stat  # type: ignore[assignment]
        assert seen == ["moved", "real"]  # opened and locked again, then the right file
        assert fh is not None
        assert os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino  # the file under the name
        assert database_module._lock_file(path) is None  # and it is held
        fh.close()
        path.unlink()
        assert _lock_files(tmp_path) == []
    finally:
        db.dispose()


def test_a_lock_file_that_cannot_be_removed_is_still_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock file not this process's to remove (made by another user, or by a version that
    left them) stays; the work done under the lock is not failed, and the lock is free."""
    db = Database(f"sqlite:///{tmp_path / 'tvault.sqlite3'}")

    def refuse(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    try:
        with monkeypatch.context() as patch:
            patch.setattr(Path, "unlink", refuse)
            with db.exclusive("import:a") as mine:
                assert mine
        assert len(_lock_files(tmp_path)) == 1  # left, and free:
        with db.exclusive("import:a") as again:
            assert again
        assert _lock_files(tmp_path) == []
    finally:
        db.dispose()
