"""Malformed and hostile input: always a 4xx in the uniform error shape, never a 500.

Also: nothing half-written (a refused batch stores nothing), and no error body ever carries the
token, a stack trace or the plaintext that was sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi.testclient import TestClient

from tests.conftest import Clock
from vault.api import create_app
from vault.bootstrap import DEV_KEY_NAME, Vault, build_vault
from vault.config import Settings

Headers = dict[str, str]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


PLANTED = "PLANTED-4f1c9e-plaintext-jane.doe@example.com"
EVENTS = "/v1/datasets/ux/events"


def assert_error(
    response: Any, status: int | None = None, code: str | None = None
) -> dict[str, Any]:
    """A client error in the uniform shape, with nothing it must never contain."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if status is not None:
        assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "details"}, error
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    assert PLANTED not in response.text
    assert "jane.doe" not in response.text
    return error


def ev(clock: Clock, subject: str = "emp-1", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": subject,
        "time": (clock() - timedelta(minutes=1)).isoformat(),
        "kind": "key_run",
        "app": "Code",
        "data": {"text": "hello world"},
    }
    body.update(fields)
    return body


@pytest.fixture
def collector(client: TestClient, auth: Callable[..., Headers]) -> Headers:
    admin = auth("alice-admin", "admin")
    spec = {"name": "ux", "retention_days": 30, "purposes": ["research"], "consent": "opt_out"}
    assert client.post("/v1/datasets", json=spec, headers=admin).status_code == 201
    return auth("col-1", "collector")


@pytest.fixture
def reader(auth: Callable[..., Headers]) -> Headers:
    return auth("rd-1", "reader", purpose="research")


def stored_count(client: TestClient, reader: Headers) -> int:
    response = client.get(EVENTS, params={"limit": 1000}, headers=reader)
    assert response.status_code == 200, response.text
    return len(response.json()["events"])


def nested(depth: int) -> Any:
    value: Any = PLANTED
    for _ in range(depth):
        value = {"k": value}
    return value


# -- request bodies ---------------------------------------------------------------------------


def _valid(clock: Clock) -> str:
    return json.dumps(ev(clock, window_title=PLANTED))


BAD_BODIES: dict[str, Callable[[Clock], bytes]] = {
    "invalid_json": lambda c: b'[{"subject": "a", ' + PLANTED.encode(),
    "truncated": lambda c: _valid(c).encode()[:-3],
    "nan": lambda c: f'[{{"subject": "a", "time": NaN, "planted": "{PLANTED}"}}]'.encode(),
    "infinity": lambda c: b'[{"subject": "a", "data": {"x": Infinity}}]',
    "neg_infinity": lambda c: b'[{"kind": "click", "data": {"x": -Infinity, "y": 1}}]',
    "duplicate_keys": lambda c: (
        "[" + _valid(c)[:-1] + f', "subject": "{PLANTED}"' + "}]"
    ).encode(),
    "duplicate_nested_keys": lambda c: b'[{"data": {"text": "a", "text": "b"}}]',
    "depth_10000": lambda c: b"[" * 10_000 + b"]" * 10_000,
    "depth_10000_objects": lambda c: b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "custom_depth_40": lambda c: json.dumps([ev(c, kind="custom", data=nested(40))]).encode(),
    "non_utf8": lambda c: b'[{"subject": "\xff\xfe\xc3\x28", "kind": "key"}]',
    "utf16": lambda c: json.dumps([ev(c)]).encode("utf-16"),
    "lone_surrogate_escape": lambda c: (
        "[" + _valid(c).replace(PLANTED, "\\ud800x") + "]"
    ).encode(),
    # A lone surrogate where no model checks text (typed text, a key, custom data): no UTF-8
    # can hold it, so it is refused with the batch, never a failure at sealing.
    "lone_surrogate_in_typed_text": lambda c: json.dumps(
        [ev(c, data={"text": "a\ud800"})]
    ).encode(),
    "lone_surrogate_in_key": lambda c: json.dumps(
        [ev(c, kind="key", data={"key": "\udfff"})]
    ).encode(),
    "lone_surrogate_in_custom_data": lambda c: json.dumps(
        [ev(c, kind="custom", data={"a": [{"b": "\ud800"}]})]
    ).encode(),
    "lone_surrogate_in_custom_key": lambda c: json.dumps(
        [ev(c, kind="custom", data={"\ud800": 1})]
    ).encode(),
    "object_not_array": lambda c: _valid(c).encode(),
    "string_not_array": lambda c: b'"hello"',
    "number_not_array": lambda c: b"12",
    "null": lambda c: b"null",
    "empty": lambda c: b"",
    "whitespace": lambda c: b"  \n\t ",
    "trailing_garbage": lambda c: ("[" + _valid(c) + "] xx").encode(),
    "nul_byte": lambda c: b"[\x00]",
}


def test_malformed_json_bodies(
    client: TestClient, collector: Headers, reader: Headers, clock: Clock
) -> None:
    failures = []
    for name, make in sorted(BAD_BODIES.items()):
        response = client.post(
            EVENTS, content=make(clock), headers={**collector, "Content-Type": "application/json"}
        )
        try:
            assert_error(response)
            assert response.status_code in {400, 413, 422}
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    assert not failures, "\n".join(failures)
    assert stored_count(client, reader) == 0
    # Control: custom data nested well within the limit is fine.
    shallow = client.post(
        EVENTS, json=[ev(clock, kind="custom", data=nested(20))], headers=collector
    )
    assert shallow.status_code == 200, shallow.text
    assert stored_count(client, reader) == 1


NDJSON_BAD_LINES: dict[str, list[bytes]] = {
    "broken_line": [b'{"subject": "a"', b"{}"],
    "array_line": [b"[1, 2]"],
    "nan": [b'{"a": NaN}'],
    "non_utf8": [b"\xff\xfe"],
    "duplicate": [b'{"a": 1, "a": 2}'],
    "deep": [b"[" * 5000 + b"]" * 5000],
    "custom_depth_40": [
        json.dumps({"subject": "a", "kind": "custom", "data": nested(40)}).encode()
    ],
}


def test_malformed_ndjson(
    client: TestClient, collector: Headers, reader: Headers, clock: Clock
) -> None:
    failures = []
    for name, lines in sorted(NDJSON_BAD_LINES.items()):
        good = json.dumps(ev(clock)).encode()
        body = b"\n".join([good, *lines, good])
        response = client.post(
            EVENTS, content=body, headers={**collector, "Content-Type": "application/x-ndjson"}
        )
        try:
            assert_error(response)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    assert not failures, "\n".join(failures)
    assert stored_count(client, reader) == 0


def test_empty_ndjson_and_empty_array(client: TestClient, collector: Headers) -> None:
    for content, ctype in (
        (b"", "application/x-ndjson"),
        (b"\n\n", "application/x-ndjson"),
        (b"[]", "application/json"),
    ):
        response = client.post(
            EVENTS, content=content, headers={**collector, "Content-Type": ctype}
        )
        assert_error(response)


def test_malformed_dataset_and_consent_bodies(
    client: TestClient, auth: Callable[..., Headers], collector: Headers
) -> None:
    admin = auth("alice-admin", "admin")
    po = auth("po-1", "privacy_officer")
    for body in (
        b"",
        b"{",
        b"[]",
        b'{"name": "x", "name": "y"}',
        b"\xff",
        b'{"retention_days": NaN}',
    ):
        assert_error(client.post("/v1/datasets", content=body, headers=admin))
        assert_error(client.put("/v1/subjects/emp-1/consent", content=body, headers=po))
    bad_specs: list[Any] = [
        {"name": "../etc", "retention_days": 1, "purposes": ["research"]},
        {"name": "UPPER", "retention_days": 1, "purposes": ["research"]},
        {"name": "x" * 65, "retention_days": 1, "purposes": ["research"]},
        {"name": "ok", "retention_days": "30", "purposes": ["research"]},
        {"name": "ok", "retention_days": 0, "purposes": ["research"]},
        {"name": "ok", "retention_days": True, "purposes": ["research"]},
        {"name": "ok", "retention_days": 1, "purposes": []},
        {"name": "ok", "retention_days": 1, "purposes": ["no way!"]},
        {"name": "ok", "retention_days": 1, "purposes": ["research"], "consent": "maybe"},
        {"name": "ok", "retention_days": 1, "purposes": ["research"], "jurisdictions": ["usa"]},
        {"name": "ok", "retention_days": 1, "purposes": ["research"], "exclusions": {"apps": "x"}},
        {
            "name": "ok",
            "retention_days": 1,
            "purposes": ["research"],
            "exclusions": {"domains": ["a@b"]},
        },
        {
            "name": "ok",
            "retention_days": 1,
            "purposes": ["research"],
            "exclusions": {"categories": ["nope"]},
        },
        {"name": "ok", "retention_days": 1, "purposes": ["research"], "extra": PLANTED},
        {"name": "ok", "retention_days": 10**30, "purposes": ["research"]},
    ]
    for spec in bad_specs:
        assert_error(client.post("/v1/datasets", json=spec, headers=admin), 422)
    assert [d["name"] for d in client.get("/v1/datasets", headers=admin).json()["datasets"]] == [
        "ux"
    ]


# -- schema errors: the whole batch is refused ---------------------------------------------------


@pytest.mark.parametrize("ndjson", [False, True], ids=["json", "ndjson"])
def test_one_invalid_event_refuses_the_whole_batch(
    client: TestClient, collector: Headers, reader: Headers, clock: Clock, ndjson: bool
) -> None:
    batch = [ev(clock) for _ in range(5)]
    batch[3] = ev(clock, kind="teleport", window_title=PLANTED)
    if ndjson:
        content = "\n".join(json.dumps(e) for e in batch).encode()
        headers = {**collector, "Content-Type": "application/x-ndjson"}
    else:
        content = json.dumps(batch).encode()
        headers = {**collector, "Content-Type": "application/json"}
    response = client.post(EVENTS, content=content, headers=headers)
    error = assert_error(response, 422, "validation_failed")
    assert error["details"]["invalid_indexes"] == [3]
    assert stored_count(client, reader) == 0


INVALID_EVENTS: dict[str, Callable[[Clock], Any]] = {
    "unknown_top_level_field": lambda c: ev(c, passwrod=PLANTED),
    "naive_time": lambda c: ev(c, time=c().replace(tzinfo=None).isoformat()),
    "date_only": lambda c: ev(c, time=c().date().isoformat()),
    "numeric_time": lambda c: ev(c, time=int(c().timestamp())),
    "float_time": lambda c: ev(c, time=c().timestamp()),
    "garbage_time": lambda c: ev(c, time=PLANTED),
    "missing_subject": lambda c: {k: v for k, v in ev(c).items() if k != "subject"},
    "empty_subject": lambda c: ev(c, subject=""),
    "huge_subject": lambda c: ev(c, subject="s" * 300),
    "subject_not_string": lambda c: ev(c, subject=12),
    "unknown_kind": lambda c: ev(c, kind=PLANTED),
    "huge_window_title": lambda c: ev(c, window_title=PLANTED * 100),
    "huge_app": lambda c: ev(c, app="A" * 5000),
    "huge_url": lambda c: ev(c, url="https://example.com/" + "a" * 9000),
    "huge_text": lambda c: ev(c, data={"text": PLANTED * 2000}),
    "huge_label": lambda c: ev(c, field={"type": "text", "label": "L" * 3000}),
    "key_too_long": lambda c: ev(c, kind="key", data={"key": PLANTED * 3}),
    "text_not_string": lambda c: ev(c, data={"text": ["a"]}),
    "extra_data_field": lambda c: ev(c, data={"text": "a", "secret": PLANTED}),
    "click_without_y": lambda c: ev(c, kind="click", data={"x": 1}),
    "click_bool": lambda c: ev(c, kind="click", data={"x": True, "y": 1}),
    "move_without_shape": lambda c: ev(c, kind="mouse_move", data={}),
    "bad_owner": lambda c: ev(c, device={"id": "x", "owner": "borrowed"}),
    "bad_jurisdiction": lambda c: ev(c, jurisdiction="usa"),
    "private_window_string": lambda c: ev(c, private_window="no"),
    "custom_data_list": lambda c: ev(c, kind="custom", data=[1, 2]),
    "event_is_list": lambda c: [ev(c)],
    "event_is_string": lambda c: PLANTED,
    "event_is_null": lambda c: None,
    "screenshot_negative_region": lambda c: ev(
        c, kind="screenshot", data={"blob_id": "b", "regions": [{"x": -1, "y": 0, "w": 1, "h": 1}]}
    ),
}


def test_schema_invalid_events(
    client: TestClient, collector: Headers, reader: Headers, clock: Clock
) -> None:
    failures = []
    for name, make in sorted(INVALID_EVENTS.items()):
        batch = [ev(clock), make(clock), ev(clock)]
        response = client.post(EVENTS, json=batch, headers=collector)
        try:
            error = assert_error(response, 422, "validation_failed")
            assert error["details"]["invalid_indexes"] == [1]
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    assert not failures, "\n".join(failures)
    assert stored_count(client, reader) == 0


# -- size limits --------------------------------------------------------------------------------


@pytest.fixture
def small(
    settings_factory: Callable[..., Settings], clock: Clock
) -> Iterator[tuple[Vault, TestClient]]:
    """A vault with tight limits (own instance; the shared ``vault`` fixture is not used)."""
    vault = build_vault(settings_factory(max_body_bytes=2048, max_batch_events=5), now=clock)
    with TestClient(create_app(vault), raise_server_exceptions=False) as client:
        yield vault, client
    vault.close()


def _small_setup(vault: Vault, client: TestClient) -> tuple[Headers, Headers]:
    from tests.conftest import OPERATOR

    def token(sub: str, role: str) -> Headers:
        raw = vault.auth.issue_dev_token(
            OPERATOR, sub=sub, roles=[role], purposes=[], datasets=[], ttl_seconds=3600
        )
        return {"Authorization": f"Bearer {raw}"}

    spec = {"name": "ux", "retention_days": 30, "purposes": ["research"], "consent": "opt_out"}
    assert client.post("/v1/datasets", json=spec, headers=token("a", "admin")).status_code == 201
    return token("c", "collector"), {**token("r", "reader"), "X-Purpose": "research"}


def test_oversized_body_and_batch(small: tuple[Vault, TestClient], clock: Clock) -> None:
    vault, client = small
    collector, reader = _small_setup(vault, client)
    big = json.dumps([ev(clock, data={"text": "x" * 3000})]).encode()
    assert_error(
        client.post(EVENTS, content=big, headers={**collector, "Content-Type": "application/json"}),
        413,
    )
    # Without a Content-Length (chunked): the limit holds while streaming.
    chunks = iter(
        [b"[", json.dumps(ev(clock)).encode()]
        + [b", " + json.dumps(ev(clock)).encode()] * 40
        + [b"]"]
    )
    assert_error(
        client.post(
            EVENTS, content=chunks, headers={**collector, "Content-Type": "application/json"}
        ),
        413,
    )
    # A lying Content-Length
    lying = client.post(
        EVENTS,
        content=json.dumps([ev(clock)]).encode(),
        headers={**collector, "Content-Type": "application/json", "Content-Length": "abc"},
    )
    assert 400 <= lying.status_code < 500
    too_many = [ev(clock) for _ in range(6)]
    assert_error(client.post(EVENTS, json=too_many, headers=collector), 413, "payload_too_large")
    ok = client.post(EVENTS, json=too_many[:5], headers=collector)
    assert ok.status_code == 200, ok.text
    assert ok.json()["accepted"] == 5
    listed = client.get(EVENTS, headers=reader)
    assert len(listed.json()["events"]) == 5
    assert_error(
        client.post("/v1/datasets", content=b"{" + b" " * 4000 + b"}", headers=collector), 413
    )


def test_too_many_events_default_limit(
    client: TestClient, collector: Headers, reader: Headers, clock: Clock
) -> None:
    one = ev(clock)
    response = client.post(EVENTS, json=[one] * 1001, headers=collector)
    assert_error(response, 413, "payload_too_large")
    assert stored_count(client, reader) == 0


# -- query parameters and paths -------------------------------------------------------------


BAD_QUERIES: list[tuple[dict[str, str], int | None, str | None]] = [
    ({"cursor": "garbage"}, 400, "invalid_cursor"),
    ({"cursor": "!!!"}, 400, "invalid_cursor"),
    ({"cursor": _b64url(b'["2026-01-01T00:00:00Z","../../x"]')}, 400, "invalid_cursor"),
    ({"cursor": _b64url(b'["yesterday","' + b"a" * 32 + b'"]')}, 400, "invalid_cursor"),
    ({"cursor": _b64url(b'["2026-01-01T00:00:00","' + b"a" * 32 + b'"]')}, 400, "invalid_cursor"),
    ({"cursor": _b64url(b'{"a": 1}')}, 400, "invalid_cursor"),
    ({"cursor": _b64url(b"[1, 2, 3]")}, 400, "invalid_cursor"),
    ({"cursor": _b64url(b"[1, 2]")}, 400, "invalid_cursor"),
    ({"cursor": _b64url(b"null")}, 400, "invalid_cursor"),
    ({"cursor": _b64url(b"\xff\xfe")}, 400, "invalid_cursor"),
    ({"cursor": "A" * 300}, None, None),
    ({"limit": "0"}, None, None),
    ({"limit": "-1"}, None, None),
    ({"limit": "abc"}, None, None),
    ({"limit": "1e3"}, None, None),
    ({"limit": "99999999999999999999999"}, None, None),
    ({"limit": "100000"}, None, None),
    ({"kind": "teleport"}, 400, None),
    ({"kind": "KEY"}, 400, None),
    ({"since": "yesterday"}, 400, None),
    ({"since": "2026-01-01T00:00:00"}, 400, None),
    ({"since": "9999-12-31T23:59:59-23:59"}, 400, None),
    ({"until": "0001-01-01T00:00:00+01:00"}, 400, None),
    (
        {"cursor": _b64url(b'["9999-12-31T23:59:59-23:59","' + b"a" * 32 + b'"]')},
        400,
        "invalid_cursor",
    ),
    ({"until": "1700000000"}, 400, None),
    ({"until": "2026-02-30T00:00:00Z"}, 400, None),
    ({"subject": "s" * 300}, None, None),
]


def test_bad_query_parameters(
    client: TestClient, collector: Headers, reader: Headers, clock: Clock
) -> None:
    client.post(EVENTS, json=[ev(clock)], headers=collector)
    failures = []
    for params, status, code in BAD_QUERIES:
        response = client.get(EVENTS, params=params, headers=reader)
        try:
            assert_error(response, status, code)
        except AssertionError:
            failures.append(f"{str(params)[:60]}: {response.status_code} {response.text[:80]}")
    assert not failures, "\n".join(failures)


TRAVERSAL_PATHS = [
    "/v1/datasets/%2e%2e/events",
    "/v1/datasets/%2e%2e%2f%2e%2e%2fetc%2fpasswd/events",
    "/v1/datasets/UX/events",
    "/v1/datasets/ux%2f..%2fux/events",
    "/v1/datasets/ux%20/events",
    "/v1/datasets/%27%20OR%201%3D1%20--/events",
    "/v1/datasets/" + "x" * 5000 + "/events",
    "/v1/datasets/ux/events/..%2f..%2fetc%2fpasswd",
    "/v1/datasets/ux/events/%2e%2e",
    "/v1/datasets/ux/events/00000000000000000000000000000000",
    "/v1/datasets/ux/events/%27%20OR%20%271%27%3D%271",
    "/v1/datasets/ux/events/" + "a" * 5000,
    "/v1/datasets/ux/events/%00",
    "/v1/datasets/ux/events/" + "G" * 32,
    "/v1/datasets/%2e%2e",
    "/v1/datasets/..%2fux",
]


def test_traversal_ish_names_are_not_found(
    client: TestClient, collector: Headers, reader: Headers, clock: Clock
) -> None:
    stored = client.post(EVENTS, json=[ev(clock)], headers=collector).json()["results"][0]["id"]
    assert client.get(f"{EVENTS}/{stored}", headers=reader).status_code == 200
    paths = [*TRAVERSAL_PATHS, f"{EVENTS}/{stored.upper()}", f"{EVENTS}/{stored}%20"]
    paths += [f"{EVENTS}/%2e%2e%2f{stored}", f"/v1/datasets/ux%2f..%2fux/events/{stored}"]
    failures = []
    for path in paths:
        try:
            assert_error(client.get(path, headers=reader), 404, "not_found")
        except AssertionError as exc:
            failures.append(f"{path[:80]}: {exc}")
    assert not failures, "\n".join(failures)


def test_extreme_event_times_are_refused_per_event(
    client: TestClient, collector: Headers, reader: Headers, clock: Clock
) -> None:
    batch = [
        ev(clock, time="9999-12-31T23:59:59.999999999-23:59"),
        ev(clock, time="0001-01-01T00:00:00+23:59"),
        ev(clock, time="9999-12-31T23:59:59Z"),
        ev(clock, time="0001-01-01T00:00:00Z"),
    ]
    response = client.post(EVENTS, json=batch, headers=collector)
    # Either answer is sound: refused per event by the collection window, or refused as a
    # schema error; never a crash, and never stored.
    if response.status_code == 200:
        reasons = [r.get("reason") for r in response.json()["results"]]
        assert reasons == ["in_future", "too_old", "in_future", "too_old"]
    else:
        error = assert_error(response, 422, "validation_failed")
        assert error["details"]["invalid_indexes"] == [0, 1, 2, 3]
    assert stored_count(client, reader) == 0


def test_numbers_that_overflow_to_infinity_are_refused(
    client: TestClient, collector: Headers, reader: Headers, clock: Clock
) -> None:
    """``1e400`` is how Infinity gets past a parser that only refuses the literal: refuse it."""
    template = [
        ev(clock, kind="click", data={"x": 1, "y": 2}),
        ev(clock, kind="custom", data={"score": 3, "nested": {"v": [4]}}),
    ]
    cases = {
        "click_x": json.dumps(template[:1]).replace('"x": 1', '"x": 1e400'),
        "click_y_negative": json.dumps(template[:1]).replace('"y": 2', '"y": -1e999'),
        "custom_value": json.dumps(template[1:]).replace('"score": 3', '"score": 1e309'),
        "custom_nested": json.dumps(template[1:]).replace("[4]", "[4e400]"),
    }
    failures = []
    for name, body in cases.items():
        # The same event as a JSON array, and as the one line of an NDJSON body.
        for ctype, content in (("application/json", body), ("application/x-ndjson", body[1:-1])):
            response = client.post(
                EVENTS, content=content.encode(), headers={**collector, "Content-Type": ctype}
            )
            try:
                assert_error(response)
            except AssertionError:
                failures.append(f"{name} ({ctype}): {response.status_code} {response.text[:90]}")
    stored = stored_count(client, reader)
    assert not failures, "\n".join([*failures, f"records stored: {stored}"])
    assert stored == 0


def test_audit_paging_parameters(client: TestClient, auth: Callable[..., Headers]) -> None:
    auditor = auth("aud-1", "auditor")
    failures = []
    for params in (
        {"after": "-1"},
        {"after": "abc"},
        {"after": "99999999999999999999999"},
        {"after": str(2**63)},
        {"limit": "0"},
        {"limit": "100000000"},
        {"limit": "99999999999999999999999"},
    ):
        response = client.get("/v1/audit", params=params, headers=auditor)
        try:
            assert_error(response)
        except AssertionError:
            failures.append(f"{params}: {response.status_code} {response.text[:80]}")
    assert not failures, "\n".join(failures)
    # The largest sequence number a column can hold is a fine "after": nothing comes back.
    last = client.get("/v1/audit", params={"after": str(2**63 - 1)}, headers=auditor)
    assert last.status_code == 200, last.text
    assert last.json()["entries"] == []


def test_nul_byte_in_a_name_is_a_client_error(
    client: TestClient,
    auth: Callable[..., Headers],
    collector: Headers,
    reader: Headers,
    clock: Clock,
) -> None:
    """A NUL in a dataset name is just a name that does not exist (PostgreSQL text refuses NUL)."""
    po = auth("po-1", "privacy_officer")
    admin = auth("alice-admin", "admin")
    attempts = {
        "get dataset": client.get("/v1/datasets/ux%00", headers=admin),
        "list events": client.get("/v1/datasets/ux%00/events", headers=reader),
        "get event": client.get(f"/v1/datasets/ux%00/events/{'0' * 32}", headers=reader),
        "ingest": client.post("/v1/datasets/ux%00/events", json=[ev(clock)], headers=collector),
        "consent": client.put(
            "/v1/subjects/emp-1/consent", json={"dataset": "ux\x00", "state": "granted"}, headers=po
        ),
    }
    failures = []
    for name, response in attempts.items():
        try:
            assert_error(response)
        except AssertionError:
            failures.append(f"{name}: {response.status_code} {response.text[:80]}")
    assert not failures, "\n".join(failures)


# -- forged and broken tokens ---------------------------------------------------------------------


def _claims(clock: Clock, **overrides: Any) -> dict[str, Any]:
    now = int(clock().timestamp())
    claims: dict[str, Any] = {
        "iss": "tvault-dev",
        "aud": "tvault",
        "sub": "mallory",
        "roles": ["reader"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _hs256(secret: bytes, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    head = _b64(json.dumps(header or {"alg": "HS256", "typ": "JWT", "kid": "dev"}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def test_forged_tokens_all_get_the_same_401(
    client: TestClient, vault: Vault, collector: Headers, reader: Headers, clock: Clock
) -> None:
    dev_pem = (vault.settings.keys_dir / DEV_KEY_NAME).read_bytes()
    dev_key = serialization.load_pem_private_key(dev_pem, password=None)
    public = dev_key.public_key()
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    other_key = ed25519.Ed25519PrivateKey.generate()

    def signed(key: Any = dev_key, headers: dict[str, Any] | None = None, **overrides: Any) -> str:
        return jwt.encode(
            _claims(clock, **overrides), key, algorithm="EdDSA", headers=headers or {"kid": "dev"}
        )

    valid = signed()
    head, body, sig = valid.split(".")
    none_header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    none_kid = _b64(json.dumps({"alg": "none", "kid": "dev"}).encode())
    claims_b64 = _b64(json.dumps(_claims(clock)).encode())
    admin_claims = _b64(json.dumps(_claims(clock, roles=["admin", "reader"])).encode())
    forged_sub = "mallory\nseq=1 action=ok"
    now = int(clock().timestamp())
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]

    forged: dict[str, str | None] = {
        "no_header": None,
        "empty": "",
        "basic": "Basic " + base64.b64encode(b"admin:admin").decode(),
        "bearer_only": "Bearer",
        "bearer_space": "Bearer   ",
        "garbage": "Bearer garbage",
        "garbage_dots": "Bearer a.b.c",
        "token_without_scheme": valid,
        "wrong_scheme": f"Token {valid}",
        "alg_none": f"Bearer {none_header}.{claims_b64}.",
        "alg_none_with_sig": f"Bearer {none_kid}.{claims_b64}.{sig}",
        "hs256_public_pem": f"Bearer {_hs256(public_pem, _claims(clock))}",
        "hs256_public_raw": f"Bearer {_hs256(public_raw, _claims(clock))}",
        "hs256_no_kid": f"Bearer {_hs256(public_pem, _claims(clock), {'alg': 'HS256'})}",
        "other_ed25519_key": f"Bearer {signed(other_key)}",
        "other_key_no_kid": f"Bearer {signed(other_key, headers={'typ': 'JWT'})}",
        "unknown_kid": f"Bearer {signed(headers={'kid': '../../keys/dev'})}",
        "embedded_jwk": f"Bearer {signed(headers={'kid': 'dev', 'jwk': {'kty': 'OKP'}})}",
        "swapped_payload": f"Bearer {head}.{admin_claims}.{sig}",
        "flipped_signature": f"Bearer {head}.{body}.{flipped}",
        "padded_signature": f"Bearer {valid}==",
        "wrong_audience": f"Bearer {signed(aud='someone-else')}",
        "no_audience": f"Bearer {signed(aud=None)}",
        "wrong_issuer": f"Bearer {signed(iss='https://evil.example')}",
        "no_exp": f"Bearer {signed(exp=None)}",
        "not_yet_valid": f"Bearer {signed(nbf=now + 3600, exp=now + 7200)}",
        "issued_in_future": f"Bearer {signed(iat=now + 3600)}",
        "expired_long_ago": f"Bearer {signed(iat=1, nbf=1, exp=2)}",
        "lifetime_too_long": f"Bearer {signed(exp=int(clock().timestamp()) + 10 * 24 * 3600)}",
        "unknown_role": f"Bearer {signed(roles=['superuser'])}",
        "role_string": f"Bearer {signed(roles='admin')}",
        "no_roles": f"Bearer {signed(roles=None)}",
        "empty_roles": f"Bearer {signed(roles=[])}",
        "sub_with_newline": f"Bearer {signed(sub=forged_sub)}",
        "exp_string": f"Bearer {signed(exp='tomorrow')}",
        "huge": "Bearer " + "a" * 20_000,
        "non_ascii": "Bearer \u00e9.\u00e9.\u00e9",
    }
    bodies: dict[str, bytes] = {}
    for name, value in forged.items():
        headers: dict[str, Any] = {"X-Purpose": "research"}
        if value is not None:
            headers["Authorization"] = value.encode("utf-8")
        response = client.get(EVENTS, headers=headers)
        assert response.status_code == 401, (name, response.status_code, response.text)
        assert_error(response, 401, "unauthenticated")
        assert response.headers.get("www-authenticate", "").lower().startswith("bearer"), name
        if value:
            token = value.split(" ", 1)[-1]
            if len(token) > 8:
                assert token not in response.text, name
        bodies[name] = response.content
    assert len(set(bodies.values())) == 1, {
        k: v for k, v in bodies.items() if v != bodies["garbage"]
    }
    assert json.loads(bodies["garbage"]) == {
        "error": {"code": "unauthenticated", "message": "authentication failed"}
    }
    # The same on a write route and a route without a dataset.
    for path, method in ((EVENTS, "post"), ("/v1/datasets", "get"), ("/v1/audit", "get")):
        response = getattr(client, method)(
            path, headers={"Authorization": forged["unknown_role"] or ""}
        )
        assert response.status_code == 401
        assert response.content == bodies["garbage"]
    # The genuine token still works (the forgeries were refused on their merits).
    assert (
        client.get(
            EVENTS, headers={"Authorization": f"Bearer {signed()}", "X-Purpose": "research"}
        ).status_code
        == 200
    )


def test_expired_token_via_clock(
    client: TestClient, auth: Callable[..., Headers], collector: Headers, clock: Clock
) -> None:
    reader = auth("rd-1", "reader", purpose="research", ttl_seconds=600)
    assert client.get(EVENTS, headers=reader).status_code == 200
    clock.advance(seconds=600 + 31)  # past exp plus the 30 s leeway
    expired = client.get(EVENTS, headers=reader)
    garbage = client.get(EVENTS, headers={"Authorization": "Bearer garbage"})
    assert_error(expired, 401, "unauthenticated")
    assert expired.content == garbage.content
    assert reader["Authorization"].split(" ")[1] not in expired.text


def test_auth_failures_are_audited_without_the_token(
    client: TestClient, auth: Callable[..., Headers], collector: Headers
) -> None:
    token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0."
    client.get(EVENTS, headers={"Authorization": f"Bearer {token}"})
    auditor = auth("aud-1", "auditor")
    entries = client.get("/v1/audit", params={"limit": 1000}, headers=auditor).json()["entries"]
    failed = [e for e in entries if e["action"] == "auth:failed"]
    assert len(failed) == 1
    assert failed[0]["outcome"] == "denied"
    assert token not in json.dumps(entries)
    assert "mallory" not in json.dumps(entries)


# -- error bodies never echo what they were sent ---------------------------------------------


def test_error_bodies_do_not_echo_plaintext(
    client: TestClient, collector: Headers, reader: Headers, clock: Clock
) -> None:
    attempts = [
        client.post(EVENTS, json=[ev(clock, unknown=PLANTED)], headers=collector),
        client.post(EVENTS, json=[ev(clock, time=PLANTED)], headers=collector),
        client.post(EVENTS, json=[ev(clock, kind=PLANTED)], headers=collector),
        client.post(EVENTS, json=[ev(clock, device={"owner": PLANTED})], headers=collector),
        client.post(EVENTS, json=[ev(clock, jurisdiction=PLANTED)], headers=collector),
        client.post(
            EVENTS, json=[ev(clock, kind="click", data={"x": PLANTED, "y": 1})], headers=collector
        ),
        client.post(
            EVENTS, json=[ev(clock, data={"text": 1, "planted": PLANTED})], headers=collector
        ),
        client.get(EVENTS, params={"since": PLANTED}, headers=reader),
        client.get(EVENTS, params={"kind": PLANTED}, headers=reader),
        client.get(EVENTS, params={"cursor": PLANTED}, headers=reader),
        client.get(f"/v1/datasets/{PLANTED}/events", headers=reader),
        client.get(EVENTS, headers={**reader, "X-Purpose": PLANTED}),
        client.get(EVENTS, headers={**reader, "X-Purpose": PLANTED * 5}),
        client.get(EVENTS, params={"limit": PLANTED}, headers=reader),
        client.get(EVENTS, params={"subject": PLANTED * 10}, headers=reader),
        client.get(f"{EVENTS}/{PLANTED}", headers=reader),
    ]
    for response in attempts:
        assert_error(response)
