"""The CLI acts through the same services, checks and audit log as the API."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from vault.cli import EXIT_VERIFY_FAILED, app, parse_ttl
from vault.errors import BadRequest


@pytest.fixture
def run(tmp_path: Path, database_url: str):
    runner = CliRunner()
    env = {
        "TVAULT_HOME": str(tmp_path / "home"),
        "TVAULT_DATABASE_URL": database_url,
        "TVAULT_OPERATOR": "ops-1",
        "TVAULT_SCRYPT_N": str(2**14),
    }

    def invoke(*args: str):
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    return invoke


def test_dataset_create_list_and_conflict(run) -> None:
    created = run("dataset", "create", "ux", "--retention-days", "7", "--purpose", "research")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["retention_days"] == 7
    again = run("dataset", "create", "ux", "--retention-days", "7", "--purpose", "research")
    assert again.exit_code == 6
    assert "conflict" in again.stderr
    listed = json.loads(run("dataset", "list").stdout)
    assert [d["name"] for d in listed] == ["ux"]


def test_forbidden_purpose_refused_from_cli_too(run) -> None:
    result = run(
        "dataset", "create", "hr", "--retention-days", "7", "--purpose", "Performance-Review"
    )
    assert result.exit_code == 2
    assert "forbidden" in result.stderr
    assert json.loads(run("dataset", "list").stdout) == []


def test_token_is_verifiable_and_issue_is_audited(run, tmp_path: Path) -> None:
    result = run("token", "--sub", "trainer", "--role", "reader", "--purpose", "research")
    assert result.exit_code == 0, result.output
    assert result.stdout.count(".") == 2
    bad_role = run("token", "--sub", "x", "--role", "superuser")
    assert bad_role.exit_code == 2
    bad_ttl = run("token", "--sub", "x", "--role", "reader", "--ttl", "forever")
    assert bad_ttl.exit_code == 2
    verify = run("audit", "verify")
    report = json.loads(verify.stdout)
    assert verify.exit_code == 0
    assert report["ok"] is True
    assert report["entries"] >= 1


def test_checkpoint_detects_truncation(run, tmp_path: Path, database_url: str) -> None:
    run("dataset", "create", "ux", "--retention-days", "7", "--purpose", "research")
    run("dataset", "create", "ux2", "--retention-days", "7", "--purpose", "research")
    checkpoint = tmp_path / "cp.json"
    made = run("audit", "checkpoint", "--out", str(checkpoint))
    assert made.exit_code == 0, made.output
    doc = json.loads(checkpoint.read_text())
    assert doc["seq"] >= 3
    assert len(doc["signature"]) > 40
    assert run("audit", "verify", "--checkpoint", str(checkpoint)).exit_code == 0

    # Roll the log back to before the checkpoint, consistently (as a restore of an old backup
    # would): the chain alone still verifies, the checkpoint kept outside does not.
    engine = create_engine(database_url)
    with engine.begin() as conn:
        keep = doc["seq"] - 2
        head = conn.execute(text("SELECT hash FROM audit_log WHERE seq = :s"), {"s": keep}).one()
        conn.execute(text("DELETE FROM audit_checkpoints"))
        conn.execute(text("DELETE FROM audit_log WHERE seq > :s"), {"s": keep})
        conn.execute(
            text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1"),
            {"s": keep, "h": head.hash},
        )
    engine.dispose()
    plain = run("audit", "verify")
    assert plain.exit_code == 0
    broken = run("audit", "verify", "--checkpoint", str(checkpoint))
    assert broken.exit_code == EXIT_VERIFY_FAILED
    report = json.loads(broken.stdout)
    assert report["ok"] is False
    assert "truncated or rolled back" in report["problem"]


def test_checkpoint_file_forged_signature_fails(run, tmp_path: Path) -> None:
    checkpoint = tmp_path / "cp.json"
    run("audit", "checkpoint", "--out", str(checkpoint))
    doc = json.loads(checkpoint.read_text())
    doc["head"] = "f" * 64
    checkpoint.write_text(json.dumps(doc))
    result = run("audit", "verify", "--checkpoint", str(checkpoint))
    assert result.exit_code == EXIT_VERIFY_FAILED
    assert "signature" in json.loads(result.stdout)["problem"]
    checkpoint.write_text("not json")
    assert run("audit", "verify", "--checkpoint", str(checkpoint)).exit_code == 2


def test_keys_list_never_shows_key_bytes(run, tmp_path: Path) -> None:
    run("dataset", "create", "ux", "--retention-days", "7", "--purpose", "research")
    result = run("keys", "list")
    assert result.exit_code == 0, result.output
    inventory = json.loads(result.stdout)
    (entry,) = inventory["datasets"]
    assert entry["kek_current_version"] == 1
    assert entry["kek_versions"][0]["state"] == "active"
    key_files = list((tmp_path / "home" / "keys").rglob("*.key"))
    assert key_files
    for path in key_files:
        material = json.loads(path.read_text())["material"]
        assert material not in result.stdout


def test_parse_ttl() -> None:
    assert parse_ttl("90s") == 90
    assert parse_ttl("15m") == 900
    assert parse_ttl("2d") == 172800
    for bad in ("", "1w", "-1h", "1.5h", "h"):
        with pytest.raises(BadRequest):
            parse_ttl(bad)


def test_erase_and_rotate_from_cli(run) -> None:
    run("dataset", "create", "ux", "--retention-days", "7", "--purpose", "research")
    erased = run("erase", "emp-1")
    assert erased.exit_code == 0, erased.output
    cert = json.loads(erased.stdout)
    assert cert["requested_via"] == "cli"
    assert "emp-1" not in erased.stdout
    pending = json.loads(run("keys", "list").stdout)["datasets"][0]["shred_horizon"]
    assert pending["pending"] is False  # nothing of emp-1 was stored: nothing to reach
    rotated = run("keys", "rotate", "ux", "--destroy-old")
    assert rotated.exit_code == 0, rotated.output
    assert json.loads(rotated.stdout)["destroyed_versions"] == [1]
    assert run("keys", "rotate", "nope").exit_code == 5


def test_sweep_and_holds_from_cli(run) -> None:
    run("dataset", "create", "ux", "--retention-days", "7", "--purpose", "research")
    placed = run("hold", "set", "ux", "--reason", "litigation")
    assert placed.exit_code == 0, placed.output
    assert run("hold", "set", "ux", "--reason", "litigation").exit_code == 6
    swept = run("sweep")
    assert swept.exit_code == 0, swept.output
    assert json.loads(swept.stdout)["datasets"][0]["records"] == 0
    assert run("hold", "lift", "ux").exit_code == 0
    assert run("hold", "lift", "ux").exit_code == 5


def test_rotate_master_seals_the_keyring(tmp_path: Path, database_url: str) -> None:
    runner = CliRunner()
    env = {
        "TVAULT_HOME": str(tmp_path / "home"),
        "TVAULT_DATABASE_URL": database_url,
        "TVAULT_SCRYPT_N": str(2**14),
    }

    def invoke(*args: str, **extra: str):
        return runner.invoke(app, list(args), env={**env, **extra}, catch_exceptions=False)

    assert (
        invoke("dataset", "create", "ux", "--retention-days", "7", "--purpose", "r").exit_code == 0
    )
    assert invoke("keys", "rotate-master").exit_code == 10  # no new passphrase given
    sealed = invoke("keys", "rotate-master", TVAULT_NEW_MASTER_PASSPHRASE="correct horse 42")
    assert sealed.exit_code == 0, sealed.output
    assert json.loads(sealed.stdout)["sealed"] is True
    assert invoke("dataset", "list").exit_code == 10  # now sealed: the passphrase is needed
    reopened = invoke("dataset", "list", TVAULT_MASTER_PASSPHRASE="correct horse 42")
    assert reopened.exit_code == 0
    assert [d["name"] for d in json.loads(reopened.stdout)] == ["ux"]


def test_restore_from_cli(run, tmp_path: Path, database_url: str) -> None:
    run("dataset", "create", "ux", "--retention-days", "7", "--purpose", "research")
    missing = run("restore", str(tmp_path / "nope.sqlite3"))
    assert missing.exit_code == 2
    assert not (tmp_path / "nope.sqlite3").exists()
    if database_url.startswith("sqlite"):  # a copy of the live file restores nothing new
        live = Path(database_url.removeprefix("sqlite:///"))
        backup = tmp_path / "copy.sqlite3"
        src, dst = sqlite3.connect(live), sqlite3.connect(backup)
        src.backup(dst)
        src.close()
        dst.close()
        done = run("restore", str(backup))
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["restored"] == {"records": 0, "blobs": 0}


def _commands(command, path=()):
    """Every command of the CLI (leaves of its groups), with its path."""
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield path, command
        return
    for name, sub in subcommands.items():
        yield from _commands(sub, (*path, name))


def test_every_command_refuses_an_option_given_twice() -> None:
    """Click keeps the last of a repeated option quietly; every command is of the class that
    refuses it (a command added later without it fails here)."""
    import typer.main

    from vault.cli import _Command

    commands = list(_commands(typer.main.get_command(app)))
    assert len(commands) > 10
    assert [path for path, command in commands if not isinstance(command, _Command)] == []


def test_a_repeated_option_is_a_usage_error_and_nothing_is_done(
    run, tmp_path: Path, database_url: str
) -> None:
    created = run("dataset", "create", "ux", "--retention-days", "7", "--purpose", "research")
    assert created.exit_code == 0
    out = tmp_path / "x.ndjson"
    exported = run(
        "export", "ux", "--purpose", "research", "--out", str(out),
        "--since", "2026-01-01T00:00:00Z", "--since", "2026-02-01T00:00:00Z",
    )  # fmt: skip
    assert exported.exit_code == 2
    assert "--since" in exported.output
    assert "more than once" in exported.output
    assert not out.exists()
    assert not Path(f"{out}.part").exists()
    twice = run("dataset", "create", "hr", "--retention-days", "7", "--retention-days", "9",
                "--purpose", "research")  # fmt: skip
    assert twice.exit_code == 2
    assert [d["name"] for d in json.loads(run("dataset", "list").stdout)] == ["ux"]
    # --help still wins (an eager option: nothing is run).
    helped = run("export", "ux", "--purpose", "a", "--purpose", "b", "--help")
    assert helped.exit_code == 0
    assert "--since" in helped.output
    # Repeatable options stay repeatable.
    kinds = run(
        "export", "ux", "--purpose", "research", "--out", str(out),
        "--kind", "key_run", "--kind", "click",
    )  # fmt: skip
    assert kinds.exit_code == 0, kinds.output
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            started = conn.execute(
                text("SELECT details FROM audit_log WHERE action = 'export:start'")
            ).all()
    finally:
        engine.dispose()
    assert [json.loads(row.details)["filters"]["kinds"] for row in started] == [
        ["click", "key_run"]
    ]
