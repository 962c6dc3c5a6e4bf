"""A person sees what the vault holds about them, and only that."""

from __future__ import annotations

from tests.conftest import COLLECTOR, event, make_dataset


def test_subject_reads_only_own_events(vault, client, auth, clock) -> None:
    make_dataset(vault, "ux")
    make_dataset(vault, "other")
    batch = [
        event(clock, "emp-1"),
        event(clock, "emp-2"),
        event(clock, "emp-1", kind="focus", data={}),
    ]
    vault.ingest.ingest(COLLECTOR, "ux", batch)

    me = client.get("/v1/me", headers=auth("emp-1", "subject"))
    assert me.status_code == 200
    held = {d["dataset"]: d for d in me.json()["datasets"]}
    assert held["ux"]["records"] == 2
    assert held["other"]["records"] == 0
    assert held["ux"]["pseudonym"] != held["other"]["pseudonym"]

    own = client.get("/v1/me/events?dataset=ux", headers=auth("emp-1", "subject"))
    assert own.status_code == 200
    events = own.json()["events"]
    assert len(events) == 2
    assert {e["subject"] for e in events} == {held["ux"]["pseudonym"]}

    # A reader token cannot use the subject route, a subject cannot use the reader route.
    assert client.get("/v1/me", headers=auth("rd", "reader")).status_code == 403
    reader_route = client.get(
        "/v1/datasets/ux/events", headers=auth("emp-1", "subject", purpose="agent_training")
    )
    assert reader_route.status_code == 403

    audit = client.get("/v1/audit?limit=1000", headers=auth("aud", "auditor")).json()
    access = [e for e in audit["entries"] if e["action"] == "subject:access"]
    assert access
    assert access[-1]["purpose"] == "subject_access"


def test_subject_limited_by_dataset_claim(vault, client, auth, clock) -> None:
    make_dataset(vault, "ux")
    vault.ingest.ingest(COLLECTOR, "ux", [event(clock, "emp-9")])
    headers = auth("emp-9", "subject", datasets=["other"])
    assert client.get("/v1/me/events?dataset=ux", headers=headers).status_code == 404
    assert client.get("/v1/me", headers=headers).json()["datasets"] == []
