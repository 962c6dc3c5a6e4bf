"""The ingest route (``POST /v1/datasets/{name}/events``): the hot path of the HTTP face.

It authenticates the caller itself instead of through a FastAPI dependency and encodes its
answer with a shared encoder: these tests pin that nothing of what the dependency and
``JSONResponse`` gave was lost (the same 401 for every bad credential, audited, nothing stored;
the same security declaration in the OpenAPI document; the same bytes out).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.conftest import Clock, event, make_dataset
from vault.bootstrap import Vault
from vault.storage.tables import audit_log, records

EVENTS = "/v1/datasets/ux/events"
Headers = dict[str, str]


def _stored(vault: Vault) -> int:
    with vault.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(records)).scalar_one())


def _auth_failures(vault: Vault) -> int:
    with vault.db.read() as conn:
        return int(
            conn.execute(
                select(func.count()).where(audit_log.c.action == "auth:failed")
            ).scalar_one()
        )


def test_every_bad_credential_gets_the_same_401_and_stores_nothing(
    client: TestClient, vault: Vault, auth: Callable[..., Headers], clock: Clock
) -> None:
    make_dataset(vault)
    reader = auth("rd-1", "reader")["Authorization"]  # valid, but for the wrong role: 403 later
    collector = auth("col-1", "collector", ttl_seconds=60)["Authorization"]
    clock.advance(seconds=60 + 31)  # past exp plus the leeway: expired
    bad: dict[str, str | None] = {
        "none": None,
        "empty": "",
        "basic": "Basic YWRtaW46YWRtaW4=",
        "bearer_only": "Bearer",
        "bearer_spaces": "Bearer   ",
        "garbage": "Bearer garbage",
        "no_scheme": collector.split(" ", 1)[1],
        "wrong_scheme": "Token " + collector.split(" ", 1)[1],
        "expired": collector,
    }
    bodies = set()
    body = json.dumps([event(clock)])
    for name, value in bad.items():
        headers = {"content-type": "application/json"}
        if value is not None:
            headers["Authorization"] = value
        response = client.post(EVENTS, content=body, headers=headers)
        assert response.status_code == 401, (name, response.text)
        assert response.headers["www-authenticate"] == "Bearer", name
        assert response.json() == {
            "error": {"code": "unauthenticated", "message": "authentication failed"}
        }
        bodies.add(response.content)
    assert len(bodies) == 1
    assert _stored(vault) == 0
    assert _auth_failures(vault) >= 1  # counted, written at most once a second
    # Authenticated before the body is looked at: a bad body with a bad token is still a 401.
    response = client.post(EVENTS, content=b"[{", headers={"Authorization": "Bearer x"})
    assert response.status_code == 401
    # A valid token of the wrong role passes authentication, then the service refuses it.
    response = client.post(EVENTS, content=body, headers={"Authorization": reader})
    assert response.status_code == 403
    assert _stored(vault) == 0


def test_a_token_verified_before_expires_on_time(
    client: TestClient, vault: Vault, auth: Callable[..., Headers], clock: Clock
) -> None:
    make_dataset(vault)
    collector = auth("col-1", "collector", ttl_seconds=600)
    ok = client.post(EVENTS, json=[event(clock)], headers=collector)
    assert ok.status_code == 200, ok.text  # verified, and now remembered
    clock.advance(seconds=600 + 31)
    late = client.post(EVENTS, json=[event(clock)], headers=collector)
    assert late.status_code == 401
    assert _stored(vault) == 1


def test_answer_is_the_json_it_always_was(
    client: TestClient, vault: Vault, auth: Callable[..., Headers], clock: Clock
) -> None:
    make_dataset(vault)
    collector = auth("col-1", "collector")
    events = [event(clock, data={"text": "café ☕ mail bob@example.com"}), {"subject": "x"}]
    refused = client.post(EVENTS, json=events[1:], headers=collector)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/json"
    response = client.post(EVENTS, json=events[:1], headers=collector)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    result = response.json()
    # Compact, UTF-8 (not \\u-escaped): what Starlette's JSONResponse sends.
    expected = json.dumps(result, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    assert response.content == expected.encode("utf-8")
    assert int(response.headers["content-length"]) == len(response.content)
    assert result["accepted"] == 1


def test_openapi_still_declares_bearer_auth_on_ingest(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    ingest = doc["paths"]["/v1/datasets/{name}/events"]["post"]
    listing = doc["paths"]["/v1/datasets/{name}/events"]["get"]
    assert ingest["security"] == listing["security"] == [{"HTTPBearer": []}]
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    assert "requestBody" in ingest
