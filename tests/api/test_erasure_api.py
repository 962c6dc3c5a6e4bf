"""Erasure over HTTP: 410 for erased records, others intact, certificate downloadable."""

from __future__ import annotations

from tests.conftest import event, make_dataset

EVENTS = "/v1/datasets/ux/events"


def test_erase_over_http(vault, client, auth, clock) -> None:
    make_dataset(vault, "ux")
    collector = auth("col-1", "collector")
    reader = auth("rd-1", "reader", purpose="agent_training")
    batch = [event(clock, "emp-1"), event(clock, "emp-2")]
    ids = [r["id"] for r in client.post(EVENTS, json=batch, headers=collector).json()["results"]]

    assert client.delete("/v1/subjects/emp-1", headers=reader).status_code == 403
    erased = client.delete("/v1/subjects/emp-1", headers=auth("po-1", "privacy_officer"))
    assert erased.status_code == 200, erased.text
    cert = erased.json()
    assert cert["format"] == "tvault-deletion-certificate-v1"

    gone = client.get(f"{EVENTS}/{ids[0]}", headers=reader)
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "gone"
    assert client.get(f"{EVENTS}/{ids[1]}", headers=reader).status_code == 200
    assert client.get(f"{EVENTS}/{'0' * 32}", headers=reader).status_code == 404

    own = client.get(f"/v1/erasures/{cert['erasure']}", headers=auth("emp-1", "subject"))
    assert own.status_code == 200
    assert own.json() == cert
    other = client.get(f"/v1/erasures/{cert['erasure']}", headers=auth("emp-2", "subject"))
    assert other.status_code == 403

    keys = client.get("/v1/keys", headers=auth("adm", "admin")).json()
    assert keys["datasets"][0]["shred_horizon"]["pending"] is True
    rotated = client.post(
        "/v1/datasets/ux/keys/rotate?destroy_old=true", headers=auth("adm", "admin")
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["destroyed_versions"] == [1]
    keys = client.get("/v1/keys", headers=auth("adm", "admin")).json()
    assert keys["datasets"][0]["shred_horizon"]["pending"] is False
    assert client.get(f"{EVENTS}/{ids[1]}", headers=reader).status_code == 200


def test_sweep_and_hold_routes(vault, client, auth, clock) -> None:
    make_dataset(vault, "ux", retention_days=3)
    collector = auth("col-1", "collector")
    client.post(EVENTS, json=[event(clock, "emp-1"), event(clock, "emp-2")], headers=collector)
    po = auth("po-1", "privacy_officer")
    holds = "/v1/datasets/ux/legal-holds"
    assert client.post(holds, json={"reason": "x"}, headers=po).status_code == 422
    assert client.post(holds, json={"reason": "case 1"}, headers=collector).status_code == 403
    placed = client.post(holds, json={"reason": "case 1", "subject": "emp-1"}, headers=po)
    assert placed.status_code == 201, placed.text
    assert (
        client.post(holds, json={"reason": "case 1", "subject": "emp-1"}, headers=po).status_code
        == 409
    )
    clock.advance(days=4)  # tokens made before are expired now: make fresh ones
    admin, po = auth("adm", "admin"), auth("po-1", "privacy_officer")
    assert client.post("/v1/sweep", headers=auth("col-1", "collector")).status_code == 403
    swept = client.post("/v1/sweep", headers=admin)
    assert swept.status_code == 200
    assert swept.json()["datasets"][0]["records"] == 1
    assert swept.json()["datasets"][0]["held_records"] == 1
    assert client.delete(f"{holds}?subject=emp-1", headers=po).status_code == 200
    assert client.delete(f"{holds}?subject=emp-1", headers=po).status_code == 404
    assert client.post("/v1/sweep", headers=admin).json()["datasets"][0]["records"] == 1
