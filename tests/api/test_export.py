"""Exports: purpose-bound, streamed, redacted, pseudonymized, audited with a manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tests.conftest import COLLECTOR, PRIVACY, event, make_dataset
from vault import cli
from vault.services import export as export_module

URL = "/v1/datasets/ux/export"


@pytest.fixture
def filled(vault, clock, monkeypatch):
    monkeypatch.setattr(export_module, "PAGE", 7)  # many pages from a few records
    make_dataset(vault, "ux")
    batch = [
        event(clock, f"emp-{i % 3}", data={"text": f"line {i} AKIAQ3EGRQW7PLK4ZT2M"})
        for i in range(20)
    ]
    batch.append(event(clock, "emp-1", kind="focus", data={}))
    assert vault.ingest.ingest(COLLECTOR, "ux", batch)["accepted"] == 21
    return vault


def lines(response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines()]


def test_export_streams_every_record_redacted_and_pseudonymized(filled, client, auth) -> None:
    reader = auth("rd-1", "reader", purpose="agent_training")
    first = client.get(URL, headers=reader)
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("application/x-ndjson")
    events = lines(first)
    assert len(events) == 21
    assert len({e["id"] for e in events}) == 21
    assert "AKIAQ3EGRQW7PLK4ZT2M" not in first.text
    assert all("[AWS_ACCESS_KEY]" in e["data"]["text"] for e in events if e["kind"] == "key_run")
    assert not any(e["subject"].startswith("emp-") for e in events)
    assert len({e["subject"] for e in events}) == 3

    # Purpose linkage is stable across exports; export linkage is not; neither equals the
    # pseudonym readers see.
    again = lines(client.get(URL, headers=reader))
    assert [e["subject"] for e in again] == [e["subject"] for e in events]
    solo = lines(client.get(URL + "?linkage=export", headers=reader))
    assert {e["subject"] for e in solo}.isdisjoint({e["subject"] for e in events})
    page = client.get("/v1/datasets/ux/events?limit=50", headers=reader).json()["events"]
    assert {e["subject"] for e in page}.isdisjoint({e["subject"] for e in events})

    filtered = lines(client.get(URL + "?subject=emp-1&kind=focus", headers=reader))
    assert [e["kind"] for e in filtered] == ["focus"]


def test_export_is_purpose_bound_and_validated(filled, client, auth) -> None:
    forbidden = auth("rd-1", "reader", purpose="performance_review")
    assert client.get(URL, headers=forbidden).status_code == 403
    assert (
        client.get(URL, headers=auth("col", "collector", purpose="agent_training")).status_code
        == 403
    )
    reader = auth("rd-1", "reader", purpose="agent_training")
    assert client.get(URL + "?format=csv", headers=reader).status_code == 400
    assert client.get(URL + "?format=" + "x" * 40, headers=reader).status_code in {400, 422}
    assert client.get(URL + "?linkage=none", headers=reader).status_code == 400
    assert client.get(URL + "?since=yesterday", headers=reader).status_code == 400
    assert client.get(URL + "?kind=nope", headers=reader).status_code == 400
    assert client.get("/v1/datasets/nope/export", headers=reader).status_code == 404


def test_manifest_audit_and_erasure_listing(filled, client, auth) -> None:
    reader = auth("rd-1", "reader", purpose="agent_training")
    response = client.get(URL, headers=reader)
    export_id = response.headers["x-export-id"]
    with filled.db.read() as conn:
        row = conn.execute(text("SELECT records, finished_at, ids_sha256 FROM exports")).one()
        people = conn.execute(text("SELECT count(*) FROM export_subjects")).scalar_one()
        actions = [a for (a,) in conn.execute(text("SELECT action FROM audit_log"))]
    assert row.records == 21
    assert row.finished_at is not None
    assert len(row.ids_sha256) == 64
    assert people == 3
    assert actions.count("export:start") == 1
    assert actions.count("export:finish") == 1
    cert = filled.lifecycle.erase(PRIVACY, "emp-1")
    (ux,) = [d for d in cert["destroyed"] if d["dataset"] == "ux"]
    assert ux["exports"] == [export_id]


def test_cli_export_writes_a_private_file(filled, tmp_path: Path, database_url: str) -> None:
    out = tmp_path / "export.ndjson"
    env = {
        "TVAULT_HOME": str(filled.settings.home),
        "TVAULT_DATABASE_URL": database_url,
        "TVAULT_SCRYPT_N": str(2**14),
    }
    result = CliRunner().invoke(
        cli.app,
        ["export", "ux", "--purpose", "research", "--out", str(out)],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 21
    assert os.stat(out).st_mode & 0o777 == 0o600
    refused = CliRunner().invoke(
        cli.app, ["export", "ux", "--purpose", "disciplinary"], env=env, catch_exceptions=False
    )
    assert refused.exit_code == 4
