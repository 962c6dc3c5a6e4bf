"""An auditor can check a checkpoint kept outside the vault over HTTP, too."""

from __future__ import annotations

from sqlalchemy import text

from tests.conftest import make_dataset


def test_outside_checkpoint_detects_rollback_over_http(vault, client, auth) -> None:
    auditor = auth("aud-1", "auditor")
    make_dataset(vault, "ux")
    make_dataset(vault, "ux2")
    checkpoint = client.post("/v1/audit/checkpoint", headers=auditor).json()
    assert client.post("/v1/audit/verify", json=checkpoint, headers=auditor).json()["ok"] is True

    keep = checkpoint["seq"] - 3
    with vault.db.engine.begin() as conn:
        head = conn.execute(text("SELECT hash FROM audit_log WHERE seq = :s"), {"s": keep}).one()
        conn.execute(text("DELETE FROM audit_checkpoints"))
        conn.execute(text("DELETE FROM audit_log WHERE seq > :s"), {"s": keep})
        conn.execute(
            text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1"),
            {"s": keep, "h": head.hash},
        )
    assert client.get("/v1/audit/verify", headers=auditor).json()["ok"] is True
    report = client.post("/v1/audit/verify", json=checkpoint, headers=auditor).json()
    assert report["ok"] is False
    assert "truncated or rolled back" in report["problem"]


def test_verify_with_checkpoint_needs_auditor_and_an_object(vault, client, auth) -> None:
    auditor = auth("aud-1", "auditor")
    assert client.post("/v1/audit/verify", json={}, headers=auth("a", "admin")).status_code == 403
    assert client.post("/v1/audit/verify", json=[1], headers=auditor).status_code == 400
    malformed = client.post("/v1/audit/verify", json={"seq": "x"}, headers=auditor).json()
    assert malformed["ok"] is False


def test_a_flood_of_bad_tokens_is_audited_in_aggregate(vault, client, auth) -> None:
    for n in range(40):
        assert (
            client.get("/v1/datasets", headers={"Authorization": f"Bearer junk{n}"}).status_code
            == 401
        )
    vault.auth.flush_failures()
    auditor = auth("aud-1", "auditor")
    entries = client.get("/v1/audit?limit=1000", headers=auditor).json()["entries"]
    failed = [e for e in entries if e["action"] == "auth:failed"]
    assert 1 <= len(failed) < 10  # not one row per request
    assert sum(e["details"]["failures"] for e in failed) == 40
