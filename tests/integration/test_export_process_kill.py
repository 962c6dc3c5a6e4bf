"""``tvault export`` as its own process, stopped in the middle of its stream.

SIGTERM (what systemd, Kubernetes and ``timeout`` send) ends it as Ctrl-C does: the manifest of
what it sent is stored and its end audited as interrupted. SIGKILL leaves no manifest: an
erasure's certificate then names the export among the unfinished ones that may hold the person
(unless its subject filter leaves the person out). Both backends.

The export writes to a pipe the test does not read, so it is blocked mid-stream, with records
sent, when the signal arrives: no timing guesswork.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from tests.conftest import Clock
from vault.storage.tables import export_subjects, exports

ROWS = 3000


@pytest.fixture
def cli_env(tmp_path: Path, database_url: str, clock: Clock) -> dict[str, str]:
    env = {
        "TVAULT_HOME": str(tmp_path / "home"),
        "TVAULT_DATABASE_URL": database_url,
        "TVAULT_OPERATOR": "ops-1",
        "TVAULT_SCRYPT_N": str(2**14),
        "TVAULT_EXPORT_WORKERS": "0",
    }
    _tvault(env, "dataset", "create", "ux", "--retention-days", "7", "--purpose", "research",
            "--consent", "opt_out")  # fmt: skip
    source = tmp_path / "events.jsonl"
    start = clock() - timedelta(hours=2)
    with source.open("w", encoding="utf-8") as fh:
        for i in range(ROWS):
            row = {
                "subject": f"emp-{i % 3}",
                "time": (start + timedelta(seconds=i)).isoformat(),
                "kind": "key_run",
                "app": "Code",
                "data": {"text": f"row {i} " + "notes " * 20},
            }
            fh.write(json.dumps(row) + "\n")
    _tvault(env, "import", "ux", str(source))
    return env


def _tvault(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vault.cli", *args], env=env, check=True, capture_output=True,
        text=True,
    )  # fmt: skip


def _blocked_export(env: dict[str, str], database_url: str, *extra: str, nth: int = 1) -> Any:
    """An export blocked on its full output pipe, its ``exports`` row (the ``nth``) written."""
    command = [sys.executable, "-m", "vault.cli", "export", "ux", "--purpose", "research", *extra]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    engine = create_engine(database_url)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the export did not start"
            with engine.connect() as conn:
                started = conn.execute(select(func.count()).select_from(exports)).scalar_one()
            if started >= nth:
                break
            time.sleep(0.05)
    finally:
        engine.dispose()
    time.sleep(0.5)  # it fills the pipe (64 KiB) in far less, then waits
    assert proc.poll() is None, "the export ended before it was stopped"
    return proc


def _rows(database_url: str) -> list[Any]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(exports).order_by(exports.c.started_at)))
    finally:
        engine.dispose()


def test_sigterm_ends_an_export_with_its_manifest(
    cli_env: dict[str, str], database_url: str
) -> None:
    proc = _blocked_export(cli_env, database_url)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)  # (read, so its exit is not blocked on the pipe)
    assert proc.returncode != 0
    (row,) = _rows(database_url)
    assert row.finished_at is None  # interrupted
    assert row.ids_sha256 is not None  # but its manifest is stored
    assert 0 < row.records < ROWS
    # Everything that went out is in the manifest (a page counts once handed to the output,
    # so a page cut in its write is counted whole: the manifest errs towards naming people).
    assert 0 < len(out.splitlines()) <= row.records
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            people = conn.execute(select(func.sum(export_subjects.c.records))).scalar_one()
            finish = conn.execute(
                text("SELECT reason FROM audit_log WHERE action = 'export:finish'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert people == row.records
    assert finish == "export interrupted"


def test_an_export_killed_without_a_manifest_is_named_by_an_erasure(
    cli_env: dict[str, str], database_url: str
) -> None:
    everyone = _blocked_export(cli_env, database_url)
    everyone.send_signal(signal.SIGKILL)
    everyone.communicate(timeout=60)
    only_other = _blocked_export(cli_env, database_url, "--subject", "emp-2", nth=2)
    only_other.send_signal(signal.SIGKILL)
    only_other.communicate(timeout=60)
    killed, filtered = _rows(database_url)
    assert killed.ids_sha256 is None
    assert filtered.ids_sha256 is None

    certificate = json.loads(_tvault(cli_env, "erase", "emp-1").stdout)
    (ux,) = certificate["destroyed"]
    assert ux["exports"] == []  # no manifest names the person...
    assert ux["unfinished_exports"] == [killed.id]  # ...but this one may hold them
    # The export for emp-2 only cannot hold emp-1: it is not named.
    other = json.loads(_tvault(cli_env, "erase", "emp-2").stdout)
    assert other["destroyed"][0]["unfinished_exports"] == [killed.id, filtered.id]
