"""Replacement modes and the re-redaction job over HTTP and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import COLLECTOR, event, make_dataset
from vault.cli import app
from vault.storage.tables import datasets

SPEC = {"name": "ps", "retention_days": 7, "purposes": ["research"], "consent": "opt_out"}


def test_create_with_a_mode_and_read_it_back(client, auth) -> None:
    admin = auth("a", "admin")
    created = client.post(
        "/v1/datasets", json={**SPEC, "redaction": {"replacement": "pseudonym"}}, headers=admin
    )
    assert created.status_code == 201, created.text
    assert created.json()["redaction"] == {"replacement": "pseudonym"}
    got = client.get("/v1/datasets/ps", headers=admin).json()
    assert got["redaction"] == {"replacement": "pseudonym"}
    default = client.post("/v1/datasets", json={**SPEC, "name": "pl"}, headers=admin)
    assert default.json()["redaction"] == {"replacement": "placeholder"}
    for bad in ({"replacement": "md5"}, {"replacement": 1}, {"x": 1}, []):
        refused = client.post(
            "/v1/datasets", json={**SPEC, "name": "bad", "redaction": bad}, headers=admin
        )
        assert refused.status_code == 422, refused.text
    assert client.get("/v1/datasets/bad", headers=admin).status_code == 404


def test_redact_route(vault, client, auth, clock) -> None:
    make_dataset(vault, "ux")
    vault.ingest.ingest(COLLECTOR, "ux", [event(clock)])
    admin = auth("a", "admin")
    done = client.post("/v1/datasets/ux/redact", headers=admin)
    assert done.status_code == 200, done.text
    assert done.json()["examined"] == 0  # stored under the current rules already
    assert client.post("/v1/datasets/ux/redact", headers=auth("r", "reader")).status_code == 403
    assert client.post("/v1/datasets/nope/redact", headers=admin).status_code == 404
    for bad in ("0", "-3", "x", "999999"):
        refused = client.post(f"/v1/datasets/ux/redact?batch_size={bad}", headers=admin)
        assert refused.status_code == 422, refused.text
    assert client.post("/v1/datasets/ux/redact").status_code == 401


def test_redact_route_hides_datasets_outside_the_grant_and_refuses_a_second_run(
    vault, client, auth
) -> None:
    make_dataset(vault, "ux")
    limited = auth("a2", "admin", datasets=["other"])
    hidden = client.post("/v1/datasets/ux/redact", headers=limited)
    assert hidden.status_code == 404, hidden.text
    assert hidden.json() == client.post("/v1/datasets/nope/redact", headers=limited).json()
    with vault.db.read() as conn:
        ds_id = conn.execute(select(datasets.c.id).where(datasets.c.name == "ux")).scalar_one()
    with vault.db.exclusive(f"redact:{ds_id}"):
        busy = client.post("/v1/datasets/ux/redact", headers=auth("a", "admin"))
    assert busy.status_code == 409, busy.text


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


def test_cli_create_and_redact(run) -> None:
    made = run(
        "dataset", "create", "ps", "--retention-days", "7", "--purpose", "research",
        "--replacement", "pseudonym",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["redaction"] == {"replacement": "pseudonym"}
    bad = run(
        "dataset", "create", "x", "--retention-days", "7", "--purpose", "research",
        "--replacement", "sha1",
    )  # fmt: skip
    assert bad.exit_code == 2
    done = run("redact", "--dataset", "ps")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["examined"] == 0
    assert run("redact", "--dataset", "nope").exit_code == 5
    assert run("redact", "--dataset", "ps", "--batch", "0").exit_code == 2
