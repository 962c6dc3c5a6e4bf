"""Custom data keys and numbers, password-field masking of every scalar, URL paths."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vault.domain.redaction import Redactor, pseudonym_replacer, redact_body
from vault.domain.redaction.event import looks_like_token

KEY = bytes(range(32))


def custom(data: Any, **fields: Any) -> dict[str, Any]:
    return {"subject": "s", "time": "2026-11-23T10:00:00.000Z", "kind": "custom", "data": data,
            **fields}  # fmt: skip


def test_keys_and_numbers_of_custom_data_are_redacted() -> None:
    body = custom(
        {
            "ssn": 536221234,
            "card": 4111111111111111,
            "amount": 4111111111111111.0,
            "alice@example.com": 1,
            "nested": [{"bob@example.com": {"AKIAZ2345ABCDEFGHJK7": "x"}}, 42, 3.5, True, None],
            "count": 12,
        }
    )
    out = redact_body(copy.deepcopy(body))
    data = out.body["data"]
    assert data["ssn"] == "[US_SSN]"
    assert data["card"] == "[CREDIT_CARD]"
    assert data["amount"] == "[CREDIT_CARD]"
    assert data["[EMAIL]"] == 1
    assert "alice@example.com" not in data
    assert data["nested"][0] == {"[EMAIL]": {"[AWS_ACCESS_KEY]": "x"}}
    assert data["nested"][1:] == [42, 3.5, True, None]  # ordinary numbers stay numbers
    assert data["count"] == 12
    assert out.counts == {"US_SSN": 1, "CREDIT_CARD": 2, "EMAIL": 2, "AWS_ACCESS_KEY": 1}
    text = repr(out.body)
    for leaked in ("536221234", "4111111111111111", "alice", "bob", "AKIA"):
        assert leaked not in text
    # Stored bodies re-redacted: unchanged.
    again = redact_body(copy.deepcopy(out.body))
    assert again.body == out.body
    assert again.counts == {}


def test_key_collisions_are_resolved_deterministically() -> None:
    data = {"[EMAIL]": 0, "alice@example.com": 1, "bob@example.com": 2}
    first = redact_body(custom(dict(data)))
    assert first.body["data"] == {"[EMAIL]": 0, "[EMAIL]#2": 1, "[EMAIL]#3": 2}
    assert redact_body(custom(dict(data))).body == first.body
    keyed = redact_body(custom(dict(data)), Redactor(replacer=pseudonym_replacer(KEY)))
    assert len(keyed.body["data"]) == 3  # different addresses: different keys, none lost
    assert all(k == "[EMAIL]" or k.startswith("[EMAIL:") for k in keyed.body["data"])


def test_credential_named_keys_still_replace_whole_values() -> None:
    out = redact_body(custom({"password": 1234, "apiKey": "abc", "pin": 0}))
    assert out.body["data"] == {"password": "[PASSWORD]", "apiKey": "[SECRET]", "pin": "[PASSWORD]"}


def test_password_field_masks_every_scalar() -> None:
    body = custom(
        {"value": 482913, "f": 1.5, "ok": True, "none": None, "list": ["a", 7]},
        field={"type": "password"},
    )
    out = redact_body(body)
    assert out.body["data"] == {
        "value": "[PASSWORD]",
        "f": "[PASSWORD]",
        "ok": "[PASSWORD]",
        "none": None,
        "list": ["[PASSWORD]", "[PASSWORD]"],
    }
    assert out.counts == {"PASSWORD_FIELD": 5}
    assert redact_body(out.body).counts == {}


def url_of(url: str) -> str:
    return redact_body(custom({}, url=url)).body["url"]


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("https://x.example/users/alice%40example.com/inbox", "https://x.example/users/[EMAIL]/inbox"),
        ("https://x.example/app;jsessionid=0AB34CD99EF1;lang=en/cart",
         "https://x.example/app;jsessionid=[SECRET];lang=en/cart"),
        ("https://x.example/a;token=abc123?q=1", "https://x.example/a;token=[SECRET]?q=1"),
        ("https://x.example/x?JSESSIONID=0AB34CD99EF1", "https://x.example/x?JSESSIONID=[SECRET]"),
        ("https://x.example/reset/Zx9aQ3LmP0vR7tYw2KcN8sBd", "https://x.example/reset/[SECRET]"),
        ("https://x.example/invite/" + "3f9a1c2b" * 5, "https://x.example/invite/[SECRET]"),
        ("/s/kT4vQ9zLx2Wm8RbN5cYp1HdJ/view", "/s/[SECRET]/view"),
    ],
)  # fmt: skip
def test_url_paths_are_redacted(url: str, stored: str) -> None:
    assert url_of(url) == stored
    assert url_of(stored) == stored  # idempotent


@pytest.mark.parametrize(
    "url",
    [
        "https://x.example/api/v2/users/123",
        "https://x.example/static/js/app.3f9a1c.js",
        "https://x.example/static/js/main.a1b2c3d4e5f6a7b8.chunk.js",
        "https://x.example/orders/550e8400-e29b-41d4-a716-446655440000",
        "https://github.com/org/repo/commit/" + "a1b2c3d4e5" * 4,
        "https://x.example/wiki/Getting-Started-With-Python3-Guide",
        "https://x.example/blog/2026/11/how-to-configure-nginx-reverse-proxy",
        "https://x.example/search/caf%C3%A9%20au%20lait",
        "https://x.example/files/Quarterly_Report_2026_Q3_final_v2",
        "https://x.example/",
        "relative/path;v=1",
    ],
)
def test_ordinary_paths_are_kept(url: str) -> None:
    assert url_of(url) == url


def test_token_heuristic() -> None:
    assert looks_like_token("Zx9aQ3LmP0vR7tYw2KcN8sBd")
    assert not looks_like_token("zx9aq3lmp0vr7tyw2kcn8sbd")  # no upper case: may be an id
    assert not looks_like_token("Aaaaaaaaaaaaaaaaaaaaaaaaaaaa1")
    assert not looks_like_token("CANARY" + "3f9a1c2b7e4d5a60" * 2)  # a prefixed hex id
    assert not looks_like_token("ZxaQLmPvRtYwKcNsBdGhJkWq")  # no digit
    assert not looks_like_token("a1b2c3d4e5" * 4, "commit")
    assert looks_like_token("a1b2c3d4e5" * 4, "reset")
