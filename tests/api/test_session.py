"""A scripted session through the HTTP API, following CONTRACT.md step by step.

Cast: an admin, a collector, a reader limited to one dataset (``datasets`` claim), a reader
limited to one purpose (``purposes`` claim), an unrestricted reader, an auditor, a privacy
officer and two people with the ``subject`` role. Every test runs on a real SQLite file and on
the real PostgreSQL server (the ``database_url`` fixture).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Clock

Headers = dict[str, str]

FORBIDDEN = [
    "performance_review",
    "hr_investigation",
    "disciplinary",
    "Performance-Review",
    "PERFORMANCE_REVIEW",
    "HR-Investigation",
    "hr investigation",
    " Disciplinary ",
]
EXCLUDED_APPS = ["1Password 8", " 1PASSWORD ", "1Password.exe", "KeePassXC.app", "SLACK"]
EXCLUDED_URLS = [
    "https://WWW.Chase.COM./x",
    "chase.com/login",
    "https://user:pw@chase.com/",
    "https://chase.com:8443/",
    "HTTPS://CHASE.COM",
    "https:\\\\chase.com\\login",
]
PRIVATE_TITLES = ["New Tab - Google Chrome (Incognito)", "Bing - [InPrivate] - Microsoft Edge"]
EMAIL = "jane.doe@example.com"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """``response`` is the uniform error shape with ``status`` (and ``code``, if given)."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert set(error) <= {"code", "message", "details"}, error
    if code is not None:
        assert error["code"] == code, error
    return error


def at(clock: Clock, **delta: float) -> str:
    """An RFC 3339 time relative to the vault's clock (``at(clock, minutes=-5)``)."""
    return (clock() + timedelta(**delta)).isoformat()


def ev(clock: Clock, subject: str = "emp-1", **fields: Any) -> dict[str, Any]:
    """A valid key_run event stamped a minute ago."""
    body: dict[str, Any] = {
        "subject": subject,
        "time": at(clock, minutes=-1),
        "kind": "key_run",
        "device": {"id": "LT-88", "owner": "corporate"},
        "app": "Code",
        "data": {"text": "hello world"},
    }
    body.update(fields)
    return body


@dataclass
class Cast:
    """Tokens for everyone in the session, and the two datasets ``ux`` and ``logs``."""

    admin: Headers
    collector: Headers
    reader: Headers  # unlimited
    reader_ux: Headers  # datasets=["ux"]
    reader_research: Headers  # purposes=["research"]
    auditor: Headers
    privacy: Headers
    make: Callable[..., Headers]


def create(client: TestClient, headers: Headers, **spec: Any) -> Any:
    body = {"retention_days": 30, "purposes": ["agent_training", "research"], "consent": "opt_out"}
    body.update(spec)
    return client.post("/v1/datasets", json=body, headers=headers)


@pytest.fixture
def cast(client: TestClient, auth: Callable[..., Headers]) -> Cast:
    c = Cast(
        admin=auth("alice-admin", "admin"),
        collector=auth("col-1", "collector"),
        reader=auth("rd-all", "reader"),
        reader_ux=auth("rd-ux", "reader", datasets=["ux"]),
        reader_research=auth("rd-research", "reader", purposes=["research"]),
        auditor=auth("aud-1", "auditor"),
        privacy=auth("po-1", "privacy_officer"),
        make=auth,
    )
    assert create(client, c.admin, name="ux").status_code == 201
    assert create(client, c.admin, name="logs", purposes=["research"]).status_code == 201
    return c


def with_purpose(headers: Headers, purpose: str) -> Headers:
    return {**headers, "X-Purpose": purpose}


def ingest(client: TestClient, cast: Cast, dataset: str, events: list[Any]) -> dict[str, Any]:
    response = client.post(f"/v1/datasets/{dataset}/events", json=events, headers=cast.collector)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def read_all(
    client: TestClient, headers: Headers, dataset: str, limit: int = 1000, **params: Any
) -> list[dict[str, Any]]:
    """Every event of a listing, following ``next_cursor`` to the end."""
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        query = {**params, "limit": limit}
        if cursor is not None:
            query["cursor"] = cursor
        response = client.get(f"/v1/datasets/{dataset}/events", params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["events"]) <= limit
        events.extend(page["events"])
        cursor = page["next_cursor"]
        if cursor is None:
            return events
    raise AssertionError("the cursor never ended")


def audit_entries(client: TestClient, cast: Cast) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    after = 0
    while True:
        response = client.get(
            "/v1/audit", params={"after": after, "limit": 1000}, headers=cast.auditor
        )
        assert response.status_code == 200, response.text
        page = response.json()
        entries.extend(page["entries"])
        if page["next_after"] is None:
            return entries
        after = page["next_after"]


# -- datasets --------------------------------------------------------------------------------


def test_dataset_create_conflict_and_admin_only(client: TestClient, cast: Cast) -> None:
    created = create(
        client,
        cast.admin,
        name="web",
        retention_days=7,
        purposes=["Agent-Training", "research"],
        consent="opt_in",
        jurisdictions=["US", "DE"],
        exclusions={"apps": ["Signal"], "domains": ["https://Example.org/x"]},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "web"
    assert body["retention_days"] == 7
    assert body["purposes"] == ["agent_training", "research"]
    assert body["consent"] == "opt_in"
    assert body["jurisdictions"] == ["DE", "US"]
    assert body["exclusions"]["apps"] == ["signal"]
    assert body["exclusions"]["domains"] == ["example.org"]

    assert_error(create(client, cast.admin, name="web"), 409, "conflict")
    for who in (cast.collector, cast.reader, cast.auditor, cast.privacy):
        assert_error(create(client, who, name="other"), 403, "forbidden")
    names = [d["name"] for d in client.get("/v1/datasets", headers=cast.admin).json()["datasets"]]
    assert names == ["logs", "ux", "web"]


def test_dataset_cannot_allow_a_forbidden_purpose(client: TestClient, cast: Cast) -> None:
    for purpose in ("performance_review", "Performance-Review", "disciplinary", "HR Investigation"):
        spec = {"name": "hr", "purposes": ["research", purpose]}
        error = assert_error(create(client, cast.admin, **spec), 422)
        assert "forbidden" in json.dumps(error), purpose
    assert_error(client.get("/v1/datasets/hr", headers=cast.admin), 404, "not_found")
    # Nothing was created by the refused attempts.
    names = [d["name"] for d in client.get("/v1/datasets", headers=cast.admin).json()["datasets"]]
    assert names == ["logs", "ux"]


def test_dataset_grants_hide_other_datasets(client: TestClient, cast: Cast) -> None:
    listed = client.get("/v1/datasets", headers=cast.reader_ux)
    assert listed.status_code == 200
    assert [d["name"] for d in listed.json()["datasets"]] == ["ux"]
    assert client.get("/v1/datasets/ux", headers=cast.reader_ux).json()["name"] == "ux"

    hidden = client.get("/v1/datasets/logs", headers=cast.reader_ux)
    missing = client.get("/v1/datasets/nope", headers=cast.reader_ux)
    missing_unlimited = client.get("/v1/datasets/nope", headers=cast.reader)
    assert_error(hidden, 404, "not_found")
    assert hidden.content == missing.content == missing_unlimited.content
    assert hidden.headers.get("content-length") == missing.headers.get("content-length")

    # The same on the events routes, with an allowed purpose declared.
    hidden_events = client.get(
        "/v1/datasets/logs/events", headers=with_purpose(cast.reader_ux, "research")
    )
    missing_events = client.get(
        "/v1/datasets/nope/events", headers=with_purpose(cast.reader_ux, "research")
    )
    assert_error(hidden_events, 404, "not_found")
    assert hidden_events.content == missing_events.content

    # A collector limited to ux cannot write into logs, nor tell it from a missing dataset.
    collector_ux = cast.make("col-ux", "collector", datasets=["ux"])
    event = [{"subject": "emp-1", "time": "2026-01-01T00:00:00Z", "kind": "focus"}]
    into_hidden = client.post("/v1/datasets/logs/events", json=event, headers=collector_ux)
    into_missing = client.post("/v1/datasets/nope/events", json=event, headers=collector_ux)
    assert_error(into_hidden, 404, "not_found")
    assert into_hidden.content == missing.content == into_missing.content


# -- ingest and read -------------------------------------------------------------------------


def test_ingest_json_and_ndjson_then_read_redacted(
    client: TestClient, cast: Cast, clock: Clock
) -> None:
    secret_text = f"mail {EMAIL} key {AWS_KEY_ID} done"
    batch = [
        ev(clock, data={"text": secret_text}, time=at(clock, minutes=-3)),
        ev(
            clock,
            kind="click",
            data={"x": 10, "y": 20, "button": "left"},
            time=at(clock, minutes=-2),
        ),
    ]
    first = ingest(client, cast, "ux", batch)
    assert first["accepted"] == 2
    assert first["refused"] == 0
    assert [r["index"] for r in first["results"]] == [0, 1]
    assert all(r["status"] == "stored" for r in first["results"])
    assert first["results"][0]["redactions"] == {"EMAIL": 1, "AWS_ACCESS_KEY": 1}
    assert "redactions" not in first["results"][1]

    ndjson = "\n".join(
        json.dumps(
            ev(clock, subject="emp-2", time=at(clock, seconds=-30 + i), data={"text": f"n{i}"})
        )
        for i in range(3)
    )
    second = client.post(
        "/v1/datasets/ux/events",
        content=ndjson.encode() + b"\n\n",
        headers={**cast.collector, "Content-Type": "application/x-ndjson"},
    )
    assert second.status_code == 200, second.text
    assert second.json()["accepted"] == 3
    stored_ids = [r["id"] for r in first["results"] + second.json()["results"]]
    assert len(set(stored_ids)) == 5
    assert all(len(i) == 32 for i in stored_ids)

    response = client.get(
        "/v1/datasets/ux/events", headers=with_purpose(cast.reader, "agent_training")
    )
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None
    assert [e["id"] for e in page["events"]] == stored_ids  # oldest first
    key_run = page["events"][0]
    assert key_run["kind"] == "key_run"
    assert key_run["data"]["text"] == "mail [EMAIL] key [AWS_ACCESS_KEY] done"
    assert key_run["app"] == "Code"
    assert key_run["time"].endswith("Z")
    assert EMAIL not in response.text
    assert AWS_KEY_ID not in response.text
    assert page["events"][1]["data"] == {"x": 10, "y": 20, "button": "left"}
    assert [e["data"]["text"] for e in page["events"][2:]] == ["n0", "n1", "n2"]

    one = client.get(
        f"/v1/datasets/ux/events/{stored_ids[0]}", headers=with_purpose(cast.reader_ux, "research")
    )
    assert one.status_code == 200, one.text
    assert one.json() == key_run

    # The purpose-limited reader reads with its purpose, and only with it.
    assert (
        client.get(
            "/v1/datasets/ux/events", headers=with_purpose(cast.reader_research, "research")
        ).status_code
        == 200
    )
    assert_error(
        client.get(
            "/v1/datasets/ux/events", headers=with_purpose(cast.reader_research, "agent_training")
        ),
        403,
        "forbidden",
    )


def test_same_id_under_another_dataset_is_not_found(
    client: TestClient, cast: Cast, clock: Clock
) -> None:
    stored = ingest(client, cast, "ux", [ev(clock)])["results"][0]["id"]
    ingest(client, cast, "logs", [ev(clock)])
    headers = with_purpose(cast.reader, "research")
    assert client.get(f"/v1/datasets/ux/events/{stored}", headers=headers).status_code == 200
    elsewhere = client.get(f"/v1/datasets/logs/events/{stored}", headers=headers)
    random_id = client.get(f"/v1/datasets/logs/events/{'0' * 32}", headers=headers)
    assert_error(elsewhere, 404, "not_found")
    assert elsewhere.content == random_id.content
    # A reader limited to ux cannot reach logs' records, nor learn that an id exists there.
    other = ingest(client, cast, "logs", [ev(clock)])["results"][0]["id"]
    hidden = client.get(
        f"/v1/datasets/logs/events/{other}", headers=with_purpose(cast.reader_ux, "research")
    )
    assert_error(hidden, 404, "not_found")
    assert hidden.content == random_id.content


def test_paging_returns_every_event_once_in_time_order(
    client: TestClient, cast: Cast, clock: Clock
) -> None:
    rng = random.Random(7)
    offsets = [rng.randint(1, 3000) for _ in range(30)]
    offsets += offsets[:6]  # several events share a timestamp: the id breaks the tie
    batch = [
        ev(clock, subject=f"emp-{i % 3}", time=at(clock, seconds=-s), data={"text": f"t{i}"})
        for i, s in enumerate(offsets)
    ]
    rng.shuffle(batch)
    result = ingest(client, cast, "ux", batch)
    assert result["accepted"] == len(batch)
    expected_ids = {r["id"] for r in result["results"]}

    headers = with_purpose(cast.reader, "research")
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/datasets/ux/events", params=params, headers=headers).json()
        pages.append(page["events"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [7, 7, 7, 7, 7, 1]
    events = [e for p in pages for e in p]
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)) == len(batch)
    assert set(ids) == expected_ids
    keys = [(e["time"], e["id"]) for e in events]
    assert keys == sorted(keys)
    assert sorted(e["data"]["text"] for e in events) == sorted(f"t{i}" for i in range(len(batch)))
    # Exactly a page boundary: the last page is full and next_cursor is null.
    exact = client.get("/v1/datasets/ux/events", params={"limit": len(batch)}, headers=headers)
    assert exact.json()["next_cursor"] is None
    assert len(exact.json()["events"]) == len(batch)


def test_filters_subject_time_range_and_kind(client: TestClient, cast: Cast, clock: Clock) -> None:
    batch = [
        ev(clock, subject="emp-1", time=at(clock, minutes=-50), data={"text": "a"}),
        ev(clock, subject="emp-1", time=at(clock, minutes=-40), kind="focus", data={}),
        ev(clock, subject="emp-2", time=at(clock, minutes=-30), data={"text": "c"}),
        ev(
            clock,
            subject="emp-2",
            time=at(clock, minutes=-20),
            kind="scroll",
            data={"dx": 0, "dy": 3},
        ),
        ev(clock, subject="emp-1", time=at(clock, minutes=-10), data={"text": "e"}),
    ]
    ids = [r["id"] for r in ingest(client, cast, "ux", batch)["results"]]
    headers = with_purpose(cast.reader, "research")

    def listed(**params: Any) -> list[str]:
        return [e["id"] for e in read_all(client, headers, "ux", **params)]

    assert listed() == ids
    assert listed(subject="emp-1") == [ids[0], ids[1], ids[4]]
    assert listed(subject="emp-2") == [ids[2], ids[3]]
    assert listed(subject="emp-404") == []
    # since is inclusive, until exclusive
    assert listed(since=batch[1]["time"], until=batch[3]["time"]) == [ids[1], ids[2]]
    assert listed(since=at(clock, minutes=-35)) == ids[2:]
    assert listed(until=at(clock, minutes=-35)) == ids[:2]
    assert listed(kind="key_run") == [ids[0], ids[2], ids[4]]
    assert listed(kind="scroll") == [ids[3]]
    assert listed(kind="focus", subject="emp-1") == [ids[1]]
    assert listed(kind="focus", subject="emp-2") == []
    assert listed(subject="emp-1", since=at(clock, minutes=-45), kind="key_run") == [ids[4]]
    # The same record through the subject filter and page by page.
    assert listed(subject="emp-1", limit=1) == [ids[0], ids[1], ids[4]]


# -- purposes and roles ----------------------------------------------------------------------


def _norm(purpose: str) -> str:
    return purpose.strip().lower().replace("-", "_").replace(" ", "_")


def test_forbidden_purposes_refused_and_audited(
    client: TestClient, cast: Cast, clock: Clock
) -> None:
    stored = ingest(client, cast, "ux", [ev(clock)])["results"][0]["id"]
    for purpose in FORBIDDEN:
        headers = with_purpose(cast.reader, purpose)
        listing = client.get("/v1/datasets/ux/events", headers=headers)
        single = client.get(f"/v1/datasets/ux/events/{stored}", headers=headers)
        assert_error(listing, 403, "forbidden_purpose")
        assert_error(single, 403, "forbidden_purpose")
        assert "hello world" not in listing.text + single.text

    entries = audit_entries(client, cast)
    denied = [
        e
        for e in entries
        if e["outcome"] == "denied" and e["action"] in {"events:read", "event:read"}
    ]
    # One entry per refused request, in order, each naming the action and the purpose.
    assert [(e["action"], _norm(e["purpose"] or "")) for e in denied] == [
        (action, _norm(p)) for p in FORBIDDEN for action in ("events:read", "event:read")
    ]
    for entry in denied:
        assert entry["dataset"] == "ux"
        assert "forbidden" in (entry["reason"] or "")
        assert entry["role"] == "reader"
    # No read entry says ok: nothing was returned.
    assert not [
        e for e in entries if e["action"] in {"events:read", "event:read"} and e["outcome"] == "ok"
    ]


def test_purpose_checks(client: TestClient, cast: Cast, clock: Clock) -> None:
    ingest(client, cast, "logs", [ev(clock)])
    # logs allows research only
    assert (
        client.get(
            "/v1/datasets/logs/events", headers=with_purpose(cast.reader, "research")
        ).status_code
        == 200
    )
    assert_error(
        client.get("/v1/datasets/logs/events", headers=with_purpose(cast.reader, "agent_training")),
        403,
        "forbidden",
    )
    assert_error(
        client.get("/v1/datasets/logs/events", headers=with_purpose(cast.reader, "marketing")),
        403,
        "forbidden",
    )
    assert_error(client.get("/v1/datasets/logs/events", headers=cast.reader), 400)
    assert_error(
        client.get("/v1/datasets/logs/events", headers=with_purpose(cast.reader, "  ")), 400
    )
    assert_error(
        client.get("/v1/datasets/logs/events", headers=with_purpose(cast.reader, "r$search!")), 400
    )
    denied = [
        e
        for e in audit_entries(client, cast)
        if e["action"] == "events:read" and e["outcome"] == "denied"
    ]
    assert len(denied) == 5


def test_roles_cannot_cross(client: TestClient, cast: Cast, clock: Clock) -> None:
    ingest(client, cast, "ux", [ev(clock)])
    for who in (cast.admin, cast.collector, cast.auditor, cast.privacy):
        response = client.get("/v1/datasets/ux/events", headers=with_purpose(who, "research"))
        assert_error(response, 403, "forbidden")
        assert "hello world" not in response.text
    for who in (cast.reader, cast.admin, cast.auditor):
        response = client.post("/v1/datasets/ux/events", json=[ev(clock)], headers=who)
        assert_error(response, 403, "forbidden")
    for who in (cast.reader, cast.admin, cast.collector):
        assert_error(client.get("/v1/audit", headers=who), 403, "forbidden")
        assert_error(client.get("/v1/audit/verify", headers=who), 403, "forbidden")
    # Nothing the refused collectors sent was stored.
    assert len(read_all(client, with_purpose(cast.reader, "research"), "ux")) == 1


# -- consent and collection policy -------------------------------------------------------------


def test_opt_in_consent_grant_and_withdrawal(client: TestClient, cast: Cast, clock: Clock) -> None:
    assert create(client, cast.admin, name="optin", consent="opt_in").status_code == 201
    first = ingest(client, cast, "optin", [ev(clock, subject="emp-7")])
    assert first["accepted"] == 0
    assert first["results"] == [{"index": 0, "status": "refused", "reason": "consent_missing"}]

    body = {"dataset": "optin", "state": "granted"}
    emp7 = cast.make("emp-7", "subject")
    emp8 = cast.make("emp-8", "subject")
    assert_error(
        client.put("/v1/subjects/emp-7/consent", json=body, headers=emp8), 403, "forbidden"
    )
    assert_error(
        client.put("/v1/subjects/emp-7/consent", json=body, headers=cast.collector),
        403,
        "forbidden",
    )
    assert_error(
        client.put("/v1/subjects/emp-7/consent", json=body, headers=cast.admin), 403, "forbidden"
    )
    # A reader named emp-7 is not the subject: the role matters, not just the sub.
    assert_error(
        client.put("/v1/subjects/emp-7/consent", json=body, headers=cast.make("emp-7", "reader")),
        403,
        "forbidden",
    )
    assert ingest(client, cast, "optin", [ev(clock, subject="emp-7")])["accepted"] == 0

    granted = client.put("/v1/subjects/emp-7/consent", json=body, headers=emp7)
    assert granted.status_code == 200, granted.text
    assert granted.json()["state"] == "granted"
    assert granted.json()["dataset"] == "optin"
    second = ingest(client, cast, "optin", [ev(clock, subject="emp-7"), ev(clock, subject="emp-8")])
    assert [r["status"] for r in second["results"]] == ["stored", "refused"]
    assert second["results"][1]["reason"] == "consent_missing"

    # The privacy officer grants emp-8, then withdraws emp-7.
    by_po = client.put("/v1/subjects/emp-8/consent", json=body, headers=cast.privacy)
    assert by_po.status_code == 200, by_po.text
    withdrawn = client.put(
        "/v1/subjects/emp-7/consent",
        json={"dataset": "optin", "state": "withdrawn"},
        headers=cast.privacy,
    )
    assert withdrawn.status_code == 200, withdrawn.text
    third = ingest(client, cast, "optin", [ev(clock, subject="emp-7"), ev(clock, subject="emp-8")])
    assert third["results"][0] == {"index": 0, "status": "refused", "reason": "consent_withdrawn"}
    assert third["results"][1]["status"] == "stored"

    # Withdrawal also refuses in an opt-out dataset.
    client.put(
        "/v1/subjects/emp-7/consent", json={"dataset": "ux", "state": "withdrawn"}, headers=emp7
    )
    fourth = ingest(client, cast, "ux", [ev(clock, subject="emp-7"), ev(clock, subject="emp-9")])
    assert [r.get("reason") for r in fourth["results"]] == ["consent_withdrawn", None]

    stored = read_all(client, with_purpose(cast.reader, "research"), "optin")
    assert len(stored) == 2
    assert_error(
        client.put(
            "/v1/subjects/emp-7/consent",
            json={"dataset": "optin", "state": "maybe"},
            headers=cast.privacy,
        ),
        422,
    )
    assert_error(
        client.put(
            "/v1/subjects/emp-7/consent",
            json={"dataset": "nope", "state": "granted"},
            headers=cast.privacy,
        ),
        404,
        "not_found",
    )


def test_policy_refusals_per_event(client: TestClient, cast: Cast, clock: Clock) -> None:
    assert (
        create(
            client,
            cast.admin,
            name="policy",
            jurisdictions=["US", "DE"],
            exclusions={"apps": ["Slack"]},
        ).status_code
        == 201
    )
    cases: list[tuple[dict[str, Any], str | None]] = [
        (ev(clock, jurisdiction="US"), None),
        (
            ev(clock, jurisdiction="US", device={"id": "PH-1", "owner": "personal"}),
            "personal_device",
        ),
        (ev(clock, jurisdiction="US", private_window=True), "private_window"),
        (
            ev(clock, jurisdiction="US", window_title="Search - Mozilla Firefox Private Browsing"),
            "private_window",
        ),
        (ev(clock, jurisdiction="US", app="1Password"), "excluded_app"),
        (ev(clock, jurisdiction="US", app="slack"), "excluded_app"),
        (
            ev(clock, jurisdiction="US", app="Chrome", url="https://secure.chase.com/accounts"),
            "excluded_domain",
        ),
        (ev(clock, jurisdiction="US", app="Chrome", url="https://chase.com/"), "excluded_domain"),
        (ev(clock, jurisdiction="FR"), "jurisdiction_not_allowed"),
        (ev(clock), "jurisdiction_missing"),
        (ev(clock, jurisdiction="US", time=at(clock, days=-31)), "too_old"),
        (ev(clock, jurisdiction="US", time=at(clock, minutes=10)), "in_future"),
        # both ends of [now - retention, now + skew] are included
        (ev(clock, jurisdiction="DE", time=at(clock, days=-30)), None),
        (ev(clock, jurisdiction="DE", time=at(clock, seconds=300)), None),
        (ev(clock, jurisdiction="US", app="Chrome", url="https://notchase.com/"), None),
    ]
    # Spelling variants of the same app, site or marker are the same thing.
    variants: list[tuple[dict[str, Any], str]] = [
        *((ev(clock, jurisdiction="US", app=a), "excluded_app") for a in EXCLUDED_APPS),
        *(
            (ev(clock, jurisdiction="US", app="Chrome", url=u), "excluded_domain")
            for u in EXCLUDED_URLS
        ),
        *((ev(clock, jurisdiction="US", window_title=t), "private_window") for t in PRIVATE_TITLES),
    ]
    cases += variants
    result = ingest(client, cast, "policy", [event for event, _ in cases])
    assert result["accepted"] == 4
    assert result["refused"] == len(cases) - 4
    for (_, reason), got in zip(cases, result["results"], strict=True):
        if reason is None:
            assert got["status"] == "stored", got
            assert len(got["id"]) == 32
        else:
            assert got == {"index": got["index"], "status": "refused", "reason": reason}
    stored = read_all(client, with_purpose(cast.reader, "research"), "policy")
    assert sorted(e["id"] for e in stored) == sorted(
        r["id"] for r in result["results"] if r["status"] == "stored"
    )

    # The clock moves on: the future event is now acceptable, the oldest accepted one is not.
    future = ev(clock, jurisdiction="US", time=at(clock, minutes=10))
    oldest = ev(clock, jurisdiction="US", time=at(clock, days=-30))
    clock.advance(minutes=6)
    later = ingest(client, cast, "policy", [future, oldest])
    assert [r["status"] for r in later["results"]] == ["stored", "refused"]
    assert later["results"][1]["reason"] == "too_old"


# -- audit, health, docs ------------------------------------------------------------------------


def test_audit_verify_health_metrics_and_docs(client: TestClient, cast: Cast, clock: Clock) -> None:
    ingest(client, cast, "ux", [ev(clock)])
    client.get("/v1/datasets/ux/events", headers=with_purpose(cast.reader, "research"))
    client.get("/v1/datasets/ux/events", headers=with_purpose(cast.reader, "disciplinary"))
    entries = audit_entries(client, cast)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    actions = {(e["action"], e["outcome"]) for e in entries}
    assert {
        ("dataset:create", "ok"),
        ("events:ingest", "ok"),
        ("events:read", "ok"),
        ("events:read", "denied"),
        ("token:issue", "ok"),
    } <= actions
    # People appear as keyed hashes, never by name.
    assert "rd-all" not in json.dumps(entries)
    assert "col-1" not in json.dumps(entries)

    verify = client.get("/v1/audit/verify", headers=cast.auditor)
    assert verify.status_code == 200, verify.text
    report = verify.json()
    assert report["ok"] is True
    assert report["first_broken_seq"] is None
    assert report["entries"] >= len(entries)

    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "tvault_http_requests_total" in metrics.text
    assert 'route="/v1/datasets/{name}/events"' in metrics.text
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    spec = client.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert "/v1/datasets" in paths
    assert "/v1/datasets/{name}/events" in paths
    assert "/v1/audit/verify" in paths
