"""``tvault import`` as its own process, killed with SIGKILL in the middle of a large source and
run again: its redaction helper goes with it, and every row ends up stored exactly once. Both
backends (the process talks to the same database as the test)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from tests.conftest import Clock
from tests.unit.test_redaction_helper import NEEDS_HELPER
from vault.storage.tables import import_records, imports, records

ROWS = 6000
BATCH = 200
EMAIL = "jane.doe@example.com"


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux's /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie nobody reaped has ended too)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@NEEDS_HELPER
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_killed_import_process_leaves_no_helper_and_resumes_exactly_once(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    env = {
        "TVAULT_HOME": str(tmp_path / "home"),
        "TVAULT_DATABASE_URL": database_url,
        "TVAULT_OPERATOR": "ops-1",
        "TVAULT_SCRYPT_N": str(2**14),
    }
    cli = [sys.executable, "-m", "vault.cli"]
    subprocess.run(
        [*cli, "dataset", "create", "ux", "--retention-days", "7", "--purpose", "research",
         "--consent", "opt_out"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    source = tmp_path / "big.jsonl"
    start = clock() - timedelta(hours=2)
    with source.open("w", encoding="utf-8") as fh:
        for i in range(ROWS):
            text = f"row {i} mail {EMAIL}" if i % 3 == 0 else f"row {i} notes"
            row = {
                "subject": f"emp-{i % 7}",
                "time": (start + timedelta(seconds=i)).isoformat(),
                "kind": "key_run",
                "app": "Code",
                "data": {"text": text},
            }
            fh.write(json.dumps(row) + "\n")
    command = [*cli, "import", "ux", str(source), "--batch", str(BATCH)]
    engine = create_engine(database_url)
    try:
        first = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        helpers: list[int] = []
        deadline = time.monotonic() + 120
        position = 0
        while position < 5 * BATCH:  # a few batches in, the helper busy with the next
            assert time.monotonic() < deadline, "the import made no progress"
            assert first.poll() is None, "the import ended before it was killed"
            helpers = children(first.pid) or helpers
            with engine.connect() as conn:
                position = conn.execute(select(func.max(imports.c.position))).scalar() or 0
            time.sleep(0.02)
        helpers = children(first.pid) or helpers
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        assert helpers, "no redaction helper was running"
        deadline = time.monotonic() + 15
        while not all(gone(pid) for pid in helpers):
            assert time.monotonic() < deadline, "the helper outlived the import"
            time.sleep(0.05)
        with engine.connect() as conn:
            stopped = conn.execute(select(imports.c.position, imports.c.state)).one()
            stored = conn.execute(select(func.count()).select_from(records)).scalar_one()
        assert stopped.state == "running"
        assert 0 < stopped.position < ROWS
        assert stored == stopped.position  # whole batches only

        again = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        summary = json.loads(again.stdout)
        assert summary["resumed_at_row"] == stopped.position
        assert summary["stored"] == ROWS
        assert summary["verification"]["ok"] is True
        assert summary["redactions"] == {"EMAIL": ROWS // 3}
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(records)).scalar_one()
            linked = conn.execute(
                select(func.count(func.distinct(import_records.c.row)))
            ).scalar_one()
        assert stored == linked == ROWS
    finally:
        engine.dispose()
