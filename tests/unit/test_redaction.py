"""Redaction, first step: detectors, placeholders in every field, password-field masking."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vault.domain import redaction
from vault.domain.events import TelemetryEvent
from vault.domain.redaction import (
    PLACEHOLDER_TYPES,
    RULES_VERSION,
    RedactionOutcome,
    is_password_field,
    redact_body,
    redact_event,
    redact_text,
)

# Test credentials are assembled from parts so that secret scanners do not flag this file.
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
GITHUB = "ghp_" + "0123456789abcdefghijABCDEFGHIJ012345"
GITHUB_PAT = "github_pat_" + "11ABCDEFG0123456789abc_" + "x" * 59
GITLAB = "glpat-" + "xK3v9Lm2Qp7Rt5Wz8Yb1"
GCP = "AIza" + "SyD-1234567890abcdefghijklmnopqrstu"
SLACK = "xoxb-" + "1234567890-0987654321-AbCdEfGhIjKlMnOp"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
NPM = "npm_" + "abcdefghijklmnopqrstuvwxyz0123456789"
PYPI = "pypi-" + "AgEIcHlwaS5vcmc" + "CJGQ0ZjBlNzE4LTk1MDEtNDc2Ny1hMjY3LTgxMzcwNWE5NjA1Mw" * 2
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM_BODY = "MIIEowIBAAKCAQEA7bq9\nZ3FfakeKeyMaterialForTests0123456789+/==\n"
PEM = "-----BEGIN RSA PRIVATE KEY-----\n" + PEM_BODY + "-----END RSA PRIVATE KEY-----"


def test_rules_version_and_placeholder_types() -> None:
    assert RULES_VERSION == "6"
    assert {
        "EMAIL",
        "AWS_ACCESS_KEY",
        "AWS_SECRET_KEY",
        "GITHUB_TOKEN",
        "GITLAB_TOKEN",
        "GCP_API_KEY",
        "SLACK_TOKEN",
        "STRIPE_KEY",
        "NPM_TOKEN",
        "PYPI_TOKEN",
        "JWT",
        "PRIVATE_KEY",
        "PASSWORD",
        "PASSWORD_FIELD",
    } <= PLACEHOLDER_TYPES


# --- each detector ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "counts"),
    [
        ("mail bob.smith+tag@example.co.uk now", "mail [EMAIL] now", {"EMAIL": 1}),
        ("<a@b.io>, c_d@e-f.example.org.", "<[EMAIL]>, [EMAIL].", {"EMAIL": 2}),
        (f"id={AWS_KEY};", "id=[AWS_ACCESS_KEY];", {"AWS_ACCESS_KEY": 1}),
        ("ASIA" + "Y34FZKBOKMUTVV7A", "[AWS_ACCESS_KEY]", {"AWS_ACCESS_KEY": 1}),
        (
            f"aws_secret_access_key = {AWS_SECRET}",
            "aws_secret_access_key = [AWS_SECRET_KEY]",
            {"AWS_SECRET_KEY": 1},
        ),
        (
            f'"SecretAccessKey": "{AWS_SECRET}",',
            '"SecretAccessKey": "[AWS_SECRET_KEY]",',
            {"AWS_SECRET_KEY": 1},
        ),
        (
            f"export AWS_SECRET_ACCESS_KEY='{AWS_SECRET}'",
            "export AWS_SECRET_ACCESS_KEY='[AWS_SECRET_KEY]'",
            {"AWS_SECRET_KEY": 1},
        ),
        (f"secret: {AWS_SECRET}", "secret: [AWS_SECRET_KEY]", {"AWS_SECRET_KEY": 1}),
        (f"token {GITHUB} end", "token [GITHUB_TOKEN] end", {"GITHUB_TOKEN": 1}),
        (GITHUB.replace("ghp_", "ghs_"), "[GITHUB_TOKEN]", {"GITHUB_TOKEN": 1}),
        (GITHUB_PAT, "[GITHUB_TOKEN]", {"GITHUB_TOKEN": 1}),
        (f"{GITLAB}.", "[GITLAB_TOKEN].", {"GITLAB_TOKEN": 1}),
        (f"key={GCP}&x=1", "key=[GCP_API_KEY]&x=1", {"GCP_API_KEY": 1}),
        (SLACK, "[SLACK_TOKEN]", {"SLACK_TOKEN": 1}),
        ("xapp-1-" + "A0123456789-abcdef", "[SLACK_TOKEN]", {"SLACK_TOKEN": 1}),
        (STRIPE, "[STRIPE_KEY]", {"STRIPE_KEY": 1}),
        ("rk_live_" + "51H8abcdefgh", "[STRIPE_KEY]", {"STRIPE_KEY": 1}),
        (f"//registry.npmjs.org/:_authToken={NPM}", None, {"NPM_TOKEN": 1}),
        (f"password = {PYPI}", "password = [PYPI_TOKEN]", {"PYPI_TOKEN": 1}),
        (f"Authorization: Bearer {JWT}", "Authorization: Bearer [JWT]", {"JWT": 1}),
        (f"before\n{PEM}\nafter", "before\n[PRIVATE_KEY]\nafter", {"PRIVATE_KEY": 1}),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
            "-----END OPENSSH PRIVATE KEY-----",
            "[PRIVATE_KEY]",
            {"PRIVATE_KEY": 1},
        ),
        (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----",
            "[PRIVATE_KEY]",
            {"PRIVATE_KEY": 1},
        ),
        (
            "https://alice:s3cr3t@db.example.com/x",
            "https://alice:[PASSWORD]@db.example.com/x",
            {"PASSWORD": 1},
        ),
        (
            "postgresql+psycopg://app:p@ss:w0rd@10.0.0.5:5432/prod",
            "postgresql+psycopg://app:[PASSWORD]@[IP_ADDRESS]:5432/prod",
            {"PASSWORD": 1, "IP_ADDRESS": 1},
        ),
        ("ftp://:hunter2@files.example", "ftp://:[PASSWORD]@files.example", {"PASSWORD": 1}),
    ],
)
def test_detectors(text: str, expected: str | None, counts: dict[str, int]) -> None:
    redacted, found = redact_text(text)
    if expected is not None:
        assert redacted == expected
    assert found == counts
    assert "[" in redacted


def test_a_truncated_private_key_is_still_redacted() -> None:
    text = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    assert redact_text(text) == ("[PRIVATE_KEY]", {"PRIVATE_KEY": 1})


def test_only_the_password_part_of_a_url_is_replaced() -> None:
    redacted, _ = redact_text("see https://bob:pw1@example.com/a?b=c#d and more")
    assert redacted == "see https://bob:[PASSWORD]@example.com/a?b=c#d and more"


@pytest.mark.parametrize(
    "text",
    [
        "AKIA" + "IOSFODNN7EXAMPL",  # AKIA + 15 characters
        "AKIA" + "iosfodnn7example",  # lower case
        "xAKIA" + "IOSFODNN7EXAMPLE",  # inside a longer word
        "a@b",  # no dot TLD
        "user@localhost",
        "bob@example.c",  # one-letter TLD
        "@example.com",
        "name at example dot com",
        "ghp_" + "0123456789abcdefghijABCDEFGHIJ01234",  # 35 characters
        "glpat-" + "short",
        "AIza" + "SyD-123456789",
        "xoxb-" + "123",
        "sk_live_" + "abc",
        "npm_" + "abc",
        "pypi-" + "notAToken",
        "eyJhbGciOiJIUzI1NiJ9.notjwt",
        "eyJhbGciOiJIUzI1NiJ9.eyJ.sig",
        "aws_secret_access_key = tooshort",
        f"checksum = {AWS_SECRET}",  # 40 base64 characters, but not assigned to a secret
        AWS_SECRET,
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n-----END CERTIFICATE-----",
        "https://example.com:8443/path",
        "https://example.com/a:b@c",  # the "@" is in the path
        "The password is written on a post-it",
        "ordinary window title - Slack",
        "",
    ],
)
def test_near_misses_are_left_alone(text: str) -> None:
    assert redact_text(text) == (text, {})


def test_a_url_user_without_password_is_not_a_password() -> None:
    # "bob@example.com" reads as an address, which is redacted as one; nothing is a password.
    assert redact_text("https://bob@example.com/") == ("https://[EMAIL]/", {"EMAIL": 1})


def test_counts_add_up_across_detectors() -> None:
    text = f"{AWS_KEY} a@example.com {GITHUB} b@example.org https://u:p@h/ {AWS_KEY}"
    redacted, counts = redact_text(text)
    assert counts == {"AWS_ACCESS_KEY": 2, "EMAIL": 2, "GITHUB_TOKEN": 1, "PASSWORD": 1}
    assert redacted == (
        "[AWS_ACCESS_KEY] [EMAIL] [GITHUB_TOKEN] [EMAIL] https://u:[PASSWORD]@h/ [AWS_ACCESS_KEY]"
    )


def test_placeholders_are_not_redacted_again() -> None:
    text = "https://u:[PASSWORD]@h/ [EMAIL] [AWS_SECRET_KEY] [PRIVATE_KEY]"
    assert redact_text(text) == (text, {})


def test_a_url_password_hiding_behind_a_token_is_caught_on_the_next_pass() -> None:
    # The secret contains "/", which ends a URL password; once it is a placeholder the
    # password rule can see the whole userinfo.
    text = f"://u:aws_secret_access_key={AWS_SECRET}@example.com"
    redacted, counts = redact_text(text)
    assert redacted == "://u:[PASSWORD]@example.com"
    assert counts == {"AWS_SECRET_KEY": 1, "PASSWORD": 1}


def test_glued_tokens_do_not_hide_each_other() -> None:
    text = f"{AWS_KEY}{GITHUB} {GITHUB}{AWS_KEY} x@example.com{GITHUB}"
    redacted, _ = redact_text(text)
    assert AWS_KEY not in redacted
    assert GITHUB not in redacted
    assert redact_text(redacted)[0] == redacted


# --- linear time: crafted inputs finish (and stay correct) -----------------------------------

N = 100_000


CRAFTED: dict[str, tuple[str, str | None]] = {
    "long-local-part": ("a" * N + "@", None),
    "at-signs": ("@" * N, None),
    "a-at-repeated": ("a@" * (N // 2), None),
    "dotted-local-part": ("a." * (N // 2) + "@x.com", None),
    "dashed-local-part": ("a-" * (N // 2) + "@x.com", None),
    # A key id is exactly 20 characters: a longer upper-case run is not one.
    "akia-repeated": ("AKIA" * (N // 4), None),
    "ghp-repeated": ("ghp_" * (N // 4), None),
    "eyj-repeated": ("eyJ" * (N // 3), None),
    # Not JWTs: the header does not decode to a JSON object.
    "eyj-segments": ("eyJaaaaa." * 3000, None),
    "eyj-dashed": ("eyJ-" * (N // 4), None),
    "pem-begins": ("-----BEGIN PRIVATE KEY-----" * (N // 27), "[PRIVATE_KEY]" * (N // 27)),
    "pem-dashes": ("-----BEGIN PRIVATE KEY-----" + "----x" * (N // 5), "[PRIVATE_KEY]"),
    "dashes": ("-" * N, None),
    "scheme-separators": ("://" * (N // 3), None),
    "url-no-at": ("https://a:" + "b" * N, None),
    "url-many-ats": ("://u:" + "@" * N, None),
    "url-empty-users": ("://:" * (N // 4) + "@", None),
    "secret-assignments": ("secret=" * (N // 7), None),
    "secret-almost": ("secret = " + "A" * 39 + "!" + "A" * N, None),
    "glpat-dots": ("glpat-" + "." * N, None),
    "aiza-repeated": ("AIza" * (N // 4), "[GCP_API_KEY]"),
    "xoxb-repeated": ("xoxb-" * (N // 5), "[SLACK_TOKEN]"),
    "at-label-dots": ("@a." * (N // 3), None),
    "domain-dashes": ("a@" + "a-" * (N // 2), None),
    "domain-one-letter-labels": ("a@" + "a." * (N // 2), None),
    "long-tld": ("a@b." + "c" * N, "[EMAIL]"),
}


@pytest.mark.parametrize(("text", "expected"), CRAFTED.values(), ids=CRAFTED.keys())
def test_crafted_long_inputs(text: str, expected: str | None) -> None:
    redacted, _ = redact_text(text)
    if expected is None:
        assert "[" not in redacted
    else:
        assert redacted == expected
    assert redact_text(redacted)[0] == redacted


def test_a_run_of_fine_grained_pat_prefixes_leaves_no_prefix() -> None:
    redacted, _ = redact_text("github_pat_" * (N // 11))
    assert "github_pat_" not in redacted
    assert redact_text(redacted)[0] == redacted


def test_crafted_long_input_with_many_matches() -> None:
    text = "x@example.com " * (N // 14)
    redacted, counts = redact_text(text)
    assert counts == {"EMAIL": N // 14}
    assert redacted == "[EMAIL] " * (N // 14)


# --- properties ------------------------------------------------------------------------------

ALNUM = string.ascii_letters + string.digits
UPPER = string.ascii_uppercase + string.digits
B64URL = ALNUM + "_-"


def _chars(alphabet: str, low: int, high: int | None = None) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=low, max_size=low if high is None else high)


# Each planted value is (text to plant, the secret part that must not survive).
PLANTED: st.SearchStrategy[tuple[str, str]] = st.one_of(
    st.builds(lambda p, b: (p + b,) * 2, st.sampled_from(["AKIA", "ASIA"]), _chars(UPPER, 16)),
    st.builds(lambda c, b: (f"gh{c}_{b}",) * 2, st.sampled_from("pousr"), _chars(ALNUM, 36)),
    st.builds(lambda b: ("github_pat_" + b,) * 2, _chars(ALNUM + "_", 22, 82)),
    st.builds(lambda b: ("glpat-" + b,) * 2, _chars(B64URL, 20, 30)),
    st.builds(lambda b: ("AIza" + b,) * 2, _chars(B64URL, 35)),
    st.builds(
        lambda c, b: (f"xox{c}-{b}",) * 2, st.sampled_from("baprs"), _chars(ALNUM + "-", 10, 40)
    ),
    st.builds(lambda c, b: (f"{c}k_live_{b}",) * 2, st.sampled_from("sr"), _chars(ALNUM, 24)),
    st.builds(lambda b: ("npm_" + b,) * 2, _chars(ALNUM, 36)),
    st.builds(lambda b: ("pypi-AgEIcHlwaS5vcmc" + b,) * 2, _chars(B64URL, 50, 120)),
    st.builds(
        # The header must decode to a JSON object (the JWT rule checks it).
        lambda a, b, c: (f"eyJ{a}.eyJ{b}.{c}",) * 2,
        st.sampled_from(["hbGciOiJIUzI1NiJ9", "0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9"]),
        _chars(B64URL, 5, 60),
        _chars(B64URL, 0, 43),
    ),
    st.builds(
        lambda b: (f"-----BEGIN EC PRIVATE KEY-----\n{b}\n-----END EC PRIVATE KEY-----", b),
        _chars(ALNUM + "+/=\n", 24, 80),
    ),
    st.builds(
        lambda u, p: (f"https://{u}:{p}@host.example/", f":{p}@"),
        _chars(ALNUM, 1, 8),
        _chars(ALNUM + "!$&*", 12, 20),
    ),
    st.builds(lambda b: (f"aws_secret_access_key={b}", b), _chars(ALNUM + "/+", 40)),
    st.builds(
        lambda local, domain, tld: (f"{local}@{domain}.{tld}",) * 2,
        _chars(ALNUM, 1, 12),
        _chars(string.ascii_lowercase, 1, 10),
        _chars(string.ascii_lowercase, 2, 6),
    ),
)

FILLER = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["secret=", "://", "://u:", "@", ".", "-----", "eyJ", "AKIA", "[EMAIL]"]),
)


@given(st.text(max_size=2000))
def test_redact_text_never_raises_and_is_idempotent_on_any_unicode(text: str) -> None:
    redacted, counts = redact_text(text)
    assert isinstance(redacted, str)
    assert set(counts) <= PLACEHOLDER_TYPES
    assert all(number > 0 for number in counts.values())
    assert redact_text(redacted) == (redacted, {})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(PLANTED.map(lambda pair: pair[0]), FILLER), max_size=8))
def test_redaction_is_idempotent_on_glued_secrets(parts: list[str]) -> None:
    redacted, _ = redact_text("".join(parts))
    assert redact_text(redacted) == (redacted, {})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(FILLER, PLANTED), min_size=1, max_size=5), FILLER)
def test_planted_secrets_never_survive(
    pieces: list[tuple[str, tuple[str, str]]], tail: str
) -> None:
    # Secrets are planted between whitespace, as they appear in text; the filler around them
    # is arbitrary.
    text = "".join(f"{filler} {planted} " for filler, (planted, _) in pieces) + tail
    redacted, counts = redact_text(text)
    for _, (_, secret) in pieces:
        assert secret not in redacted
    assert sum(counts.values()) >= 1


@given(st.text(alphabet=ALNUM + "@.:/-_=+ \"'[]eyJAKIAsecretghp", max_size=300))
def test_the_prefilter_never_skips_a_text_that_would_match(text: str) -> None:
    rules = redaction.DEFAULT_RULES
    assert rules.find(text) == rules.find(text, prefilter=False)


# --- password fields -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field_type", "label", "expected"),
    [
        ("password", None, True),
        ("PASSWORD", "Anything", True),
        ("new-password", None, True),
        ("text", "Password", True),
        ("text", "Confirm password", True),
        ("text", "newPassword", True),
        ("text", "user_passwd", True),
        ("text", "Passcode", True),
        ("text", "Passphrase", True),
        ("text", "PIN", True),
        ("text", "Enter your PIN:", True),
        ("text", "pwd", True),
        ("text", "PINCode", True),
        ("text", "Mot de passe", True),
        ("text", "One-time code (OTP)", True),
        ("text", "Client secret", True),
        ("text", "Pass", True),
        # Documented choice: a hint sits next to a password and often gives it away.
        ("text", "Password hint", True),
        ("text", "Shipping address", False),
        ("text", "Spinner speed", False),
        ("text", "Passport number", False),
        ("text", "Passenger name", False),
        ("text", "Compass heading", False),
        ("text", "Secretary", False),
        ("text", "Opinion", False),
        ("text", "Message", False),
        ("email", None, False),
        (None, None, False),
    ],
)
def test_is_password_field(field_type: str | None, label: str | None, expected: bool) -> None:
    assert is_password_field(field_type, label) is expected


def make_event(**overrides: Any) -> TelemetryEvent:
    raw: dict[str, Any] = {
        "subject": "emp-1042",
        "time": "2026-04-21T15:04:05.123Z",
        "kind": "key_run",
        "device": {"id": "LT-88", "owner": "corporate"},
        "app": "Slack",
        "window_title": "#infra - Slack",
        "url": "https://app.slack.com/client/T01/C02",
        "field": {"type": "text", "label": "Message"},
        "data": {"text": "hello"},
    }
    raw.update(overrides)
    return TelemetryEvent.model_validate(raw)


def test_key_in_password_field_is_masked_and_modifiers_dropped() -> None:
    event = make_event(
        kind="key", field={"type": "password"}, data={"key": "h", "modifiers": ["shift"]}
    )
    outcome = redact_event(event)
    assert outcome.body["data"] == {"key": "[MASKED]"}
    assert outcome.counts == {"PASSWORD_FIELD": 1}


@pytest.mark.parametrize("kind", ["key_run", "clipboard"])
def test_text_in_password_field_is_masked(kind: str) -> None:
    event = make_event(
        kind=kind, field={"type": "text", "label": "Password"}, data={"text": "hunter2"}
    )
    outcome = redact_event(event)
    assert outcome.body["data"] == {"text": "[PASSWORD]"}
    assert outcome.counts == {"PASSWORD_FIELD": 1}
    assert "hunter2" not in repr(outcome.body)


def test_custom_data_in_password_field_is_masked_whole() -> None:
    event = make_event(
        kind="custom",
        field={"type": "password"},
        data={"typed": "hunter2", "nested": {"chars": ["h", "u"], "n": 7}},
    )
    outcome = redact_event(event)
    assert outcome.body["data"] == {
        "typed": "[PASSWORD]",
        "nested": {"chars": ["[PASSWORD]", "[PASSWORD]"], "n": "[PASSWORD]"},
    }
    assert outcome.counts == {"PASSWORD_FIELD": 4}  # every scalar but null is masked


def test_clicks_in_password_field_are_kept() -> None:
    event = make_event(kind="click", field={"type": "password"}, data={"x": 1, "y": 2})
    outcome = redact_event(event)
    assert outcome.body["data"] == {"x": 1, "y": 2, "button": "left"}
    assert outcome.counts == {}


def test_key_outside_password_field_is_kept() -> None:
    outcome = redact_event(make_event(kind="key", data={"key": "a", "modifiers": ["ctrl"]}))
    assert outcome.body["data"] == {"key": "a", "modifiers": ["ctrl"]}
    assert outcome.counts == {}


# --- every text-bearing field ----------------------------------------------------------------


def test_placeholders_in_every_field() -> None:
    event = make_event(
        kind="clipboard",
        window_title="Inbox (3) - alice@example.com - Mail",
        url=f"https://deploy:pa55@ci.example.com/job?token={GITHUB}",
        field={"type": "text", "label": "Send to bob@example.com"},
        data={"text": f"key {AWS_KEY} and {JWT}"},
    )
    outcome = redact_event(event)
    body = outcome.body
    assert body["window_title"] == "Inbox (3) - [EMAIL] - Mail"
    assert body["url"] == "https://deploy:[PASSWORD]@ci.example.com/job?token=[GITHUB_TOKEN]"
    assert body["field"] == {"type": "text", "label": "Send to [EMAIL]"}
    assert body["data"] == {"text": "key [AWS_ACCESS_KEY] and [JWT]"}
    assert outcome.counts == {
        "EMAIL": 2,
        "PASSWORD": 1,
        "GITHUB_TOKEN": 1,
        "AWS_ACCESS_KEY": 1,
        "JWT": 1,
    }


def test_body_is_the_stored_form() -> None:
    event = make_event(data={"text": "nothing to see"})
    outcome = redact_event(event)
    assert outcome.body == event.stored_form()
    assert "subject" not in outcome.body
    assert outcome.counts == {}
    assert isinstance(outcome, RedactionOutcome)


def test_nested_custom_data_and_its_keys_are_redacted() -> None:
    data = {
        "a@example.com": "owner",
        "items": [
            {"note": f"use {NPM}"},
            ["x", "y@example.org", 3, None, True],
            {"deep": {"deeper": {"deepest": [f"{SLACK}"]}}},
        ],
        "number": 1.5,
    }
    outcome = redact_event(make_event(kind="custom", field=None, data=data))
    assert outcome.body["data"] == {
        "[EMAIL]": "owner",
        "items": [
            {"note": "use [NPM_TOKEN]"},
            ["x", "[EMAIL]", 3, None, True],
            {"deep": {"deeper": {"deepest": ["[SLACK_TOKEN]"]}}},
        ],
        "number": 1.5,
    }
    assert outcome.counts == {"NPM_TOKEN": 1, "EMAIL": 2, "SLACK_TOKEN": 1}


def test_deeply_nested_custom_data_does_not_hit_the_recursion_limit() -> None:
    data: dict[str, Any] = {"leaf": "z@example.com"}
    for _ in range(5000):
        data = {"n": data}
    counts: dict[str, int] = {}
    redaction.event._redact_tree(data, redaction.Redactor(), counts, mask=False)
    assert counts == {"EMAIL": 1}


def test_screenshot_region_reasons_are_redacted() -> None:
    event = make_event(
        kind="screenshot",
        field=None,
        data={
            "blob_id": "b-1",
            "regions": [{"x": 0, "y": 0, "w": 5, "h": 5, "reason": "shows c@example.com"}],
        },
    )
    outcome = redact_event(event)
    assert outcome.body["data"]["regions"][0]["reason"] == "shows [EMAIL]"
    assert outcome.body["data"]["blob_id"] == "b-1"


def test_redact_event_does_not_touch_the_event() -> None:
    event = make_event(data={"text": "x@example.com"})
    redact_event(event)
    assert event.data == {"text": "x@example.com"}


def test_short_identifying_fields_are_redacted_as_text() -> None:
    """Rules v6: the app, the device id, the field type and a screenshot's blob id are text
    too (an app named after its account, a device after its owner); the vault's own ids and
    the usual values are left as they are."""
    leak = "quinn.leak@megacorp.io"
    event = make_event(
        app=f"Mail - {leak}",
        device={"id": leak, "owner": "corporate"},
        field={"type": leak, "label": "To"},
    )
    outcome = redact_event(event)
    assert outcome.body["app"] == "Mail - [EMAIL]"
    assert outcome.body["device"] == {"id": "[EMAIL]", "owner": "corporate"}
    assert outcome.body["field"] == {"type": "[EMAIL]", "label": "To"}
    assert outcome.counts == {"EMAIL": 3}
    shot = make_event(
        kind="screenshot",
        field=None,
        data={"blob_id": leak, "regions": []},
    )
    assert redact_event(shot).body["data"]["blob_id"] == "[EMAIL]"
    plain = make_event()
    assert redact_event(plain).body == plain.stored_form()
    own = make_event(kind="screenshot", field=None, data={"blob_id": "9f" * 16, "regions": []})
    assert redact_event(own).body["data"]["blob_id"] == "9f" * 16
    again = redact_body(outcome.body)  # idempotent, as every rule is
    assert again.body == outcome.body
    assert again.counts == {}


def test_redact_short_remembers_only_clean_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short value found clean costs a lookup the next time; one that held a finding is
    redacted each time and never kept (no plaintext kept in memory); the memory is bounded."""
    from vault.domain.redaction import redactor as redactor_module

    r = redactor_module.Redactor()
    assert r.redact_short("Google Chrome") == ("Google Chrome", {})
    assert r._clean == {"Google Chrome"}
    leak = "Mail - jane.doe@corp.example"
    assert r.redact_short(leak) == ("Mail - [EMAIL]", {"EMAIL": 1})
    assert r.redact_short(leak) == ("Mail - [EMAIL]", {"EMAIL": 1})
    assert leak not in r._clean
    assert r.redact_short("x" * 65) == ("x" * 65, {})  # too long to keep
    assert "x" * 65 not in r._clean
    monkeypatch.setattr(redactor_module, "_CLEAN_TEXTS", 2)
    for name in ("a", "b", "c"):
        r.redact_short(name)
    assert len(r._clean) <= 2
