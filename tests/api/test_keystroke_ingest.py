"""Ingest reassembles keystrokes: a key typed key by key is never stored in the clear."""

from __future__ import annotations

from tests.conftest import make_dataset


def test_typed_secret_is_masked_in_storage(vault, client, auth, clock) -> None:
    make_dataset(vault, "ux")
    secret = "AKIAIOSFODNN7EXAMPLE"
    base = clock()
    batch = [
        {
            "subject": "emp-1",
            "time": (base.replace(microsecond=0)).isoformat().replace("+00:00", f".{i:03d}Z"),
            "kind": "key",
            "app": "Terminal",
            "data": {"key": key},
        }
        for i, key in enumerate(f"export K={secret}")
    ]
    stored = client.post("/v1/datasets/ux/events", json=batch, headers=auth("c", "collector"))
    assert stored.status_code == 200, stored.text
    assert stored.json()["accepted"] == len(batch)
    page = client.get(
        "/v1/datasets/ux/events?limit=100", headers=auth("r", "reader", purpose="research")
    ).json()["events"]
    typed = "".join("*" if e["data"]["key"] == "[MASKED]" else e["data"]["key"] for e in page)
    assert typed == "export K=" + "*" * len(secret)
