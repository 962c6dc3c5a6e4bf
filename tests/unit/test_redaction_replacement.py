"""Replacement modes: typed placeholders or keyed pseudonyms, idempotent either way."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.domain.events import TelemetryEvent
from vault.domain.redaction import (
    PSEUDONYM_HEX,
    Redactor,
    is_placeholder,
    pseudonym_replacer,
    redact_body,
    redact_event,
)
from vault.domain.redaction.replacement import PSEUDONYM_TOKEN, normalize_value

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))
TEXT = (
    "mail Bob@Example.com, then bob@example.com; call +44 20 7123 4567 or +442071234567; "
    "key AKIAZ2345ABCDEFGHJK7; DB_PASSWORD=hunter2hunter2; card 4111 1111 1111 1111"
)


def tokens(text: str) -> list[tuple[str, str]]:
    return [(m[1], m[2]) for m in PSEUDONYM_TOKEN.finditer(text)]


def test_pseudonyms_are_stable_normalized_and_keyed() -> None:
    out, counts = Redactor(replacer=pseudonym_replacer(KEY_A)).redact_text(TEXT)
    found = tokens(out)
    emails = [h for kind, h in found if kind == "EMAIL"]
    phones = [h for kind, h in found if kind == "PHONE"]
    assert len(emails) == 2
    assert emails[0] == emails[1]
    assert len(phones) == 2
    assert phones[0] == phones[1]
    assert all(len(h) == PSEUDONYM_HEX for _, h in found)
    # Secrets are never pseudonymized: a keyed hash of a secret would be a verifier for it.
    assert "[AWS_ACCESS_KEY]" in out
    assert "[PASSWORD]" in out
    assert "AKIA" not in out
    assert "hunter2" not in out
    assert "Bob" not in out
    assert counts["EMAIL"] == 2
    assert counts["AWS_ACCESS_KEY"] == 1
    other, _ = Redactor(replacer=pseudonym_replacer(KEY_B)).redact_text(TEXT)
    assert {h for _, h in tokens(other)}.isdisjoint({h for _, h in found})
    assert [k for k, _ in tokens(other)] == [k for k, _ in found]


def test_placeholder_mode_is_unchanged() -> None:
    out, _ = Redactor().redact_text(TEXT)
    assert "[EMAIL]" in out
    assert not tokens(out)


@pytest.mark.parametrize("key", [None, KEY_A])
def test_redaction_is_idempotent_in_both_modes(key: bytes | None) -> None:
    redactor = Redactor(replacer=pseudonym_replacer(key) if key else None)
    once, _ = redactor.redact_text(TEXT)
    # Stored bodies are re-redacted by a redactor that trusts the vault's own tokens.
    twice, counts = redactor.trusting().redact_text(once)
    assert twice == once
    assert counts == {}
    # A pseudonymized text is also left alone by a placeholder redactor (and the reverse).
    assert Redactor(trust_tokens=True).redact_text(once) == (once, {})


def test_incoming_tokens_are_not_trusted_at_ingest() -> None:
    # A collector sends token-shaped text: it can neither forge a pseudonym (linkage) nor
    # hide 16 hex digits (a card number) from the rules behind one.
    forged = "[EMAIL:0123456789abcdef] card [CREDIT_CARD:4111111111111111]"
    plain, counts = Redactor().redact_text(forged)
    assert plain == "[EMAIL] card [CREDIT_CARD]"
    assert counts == {}
    keyed, _ = Redactor(replacer=pseudonym_replacer(KEY_A)).redact_text(forged)
    assert "0123456789abcdef" not in keyed
    assert "4111111111111111" not in keyed
    assert keyed.endswith("card [CREDIT_CARD]")  # cards are never pseudonyms
    # The re-redaction job (trusted) keeps the vault's own tokens as they are.
    assert Redactor(trust_tokens=True).redact_text(forged) == (forged, {})


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789abcdef", min_size=PSEUDONYM_HEX, max_size=PSEUDONYM_HEX))
def test_pseudonym_digits_never_match_a_rule(digest: str) -> None:
    # All-digit digests look like card numbers or phones; trusted tokens are opaque to rules.
    text = f"card [CREDIT_CARD:{digest}] phone: [PHONE:{digest}] ip [IP_ADDRESS:{digest}]"
    assert Redactor(trust_tokens=True).redact_text(text) == (text, {})
    keyed = Redactor(replacer=pseudonym_replacer(KEY_A), trust_tokens=True)
    assert keyed.redact_text(text) == (text, {})


def test_placeholder_detection_and_normalization() -> None:
    assert is_placeholder("[EMAIL]")
    assert is_placeholder("[EMAIL:" + "0" * PSEUDONYM_HEX + "]")
    assert not is_placeholder("[EMAIL:" + "0" * (PSEUDONYM_HEX - 1) + "]")
    assert not is_placeholder("[email]")
    assert not is_placeholder("x[EMAIL]")
    assert normalize_value("EMAIL", " A@B.CO ") == "a@b.co"
    assert normalize_value("IBAN", "de89 3704-0044") == "DE8937040044"
    with pytest.raises(ValueError, match="256"):
        pseudonym_replacer(b"short")


def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"subject": "s", "time": "2026-11-23T10:00:00Z", "kind": "custom"}
    base.update(fields)
    return TelemetryEvent.model_validate(base).stored_form()


def test_event_fields_use_the_replacer_and_stay_idempotent() -> None:
    redactor = Redactor(replacer=pseudonym_replacer(KEY_A))
    stored = body(
        url="https://x.example/p?email=bob%40example.com&token=abcdef123456#q=1",
        window_title="Inbox - bob@example.com",
        data={"to": "bob@example.com", "password": "hunter2", "n": {"ip": "10.1.2.3"}},
    )
    first = redact_body(stored, redactor)
    text = repr(first.body)
    assert "bob@example.com" not in text
    assert "bob%40example.com" not in text
    assert "hunter2" not in text
    assert "abcdef123456" not in text
    assert first.body["data"]["password"] == "[PASSWORD]"
    assert first.body["data"]["n"]["ip"].startswith("[IP_ADDRESS:")
    assert "token=[SECRET]" in first.body["url"]
    emails = {h for k, h in tokens(text) if k == "EMAIL"}
    assert len(emails) == 1  # the same address in title, URL and data: one token
    again = redact_body(copy.deepcopy(first.body), redactor.trusting())
    assert again.body == first.body
    assert again.counts == {}


def test_password_fields_are_idempotent() -> None:
    event = TelemetryEvent.model_validate(
        {
            "subject": "s",
            "time": "2026-11-23T10:00:00Z",
            "kind": "key_run",
            "field": {"type": "password"},
            "data": {"text": "hunter2"},
        }
    )
    first = redact_event(event)
    assert first.body["data"]["text"] == "[PASSWORD]"
    assert first.counts == {"PASSWORD_FIELD": 1}
    assert redact_body(first.body).counts == {}


PIECES = [
    "bob@example.com",
    "+44 20 7123 4567",
    "4111 1111 1111 1111",
    "DE89 3704 0044 0532 0130 00",
    "10.0.0.7",
    "2001:db8::1",
    "078-05-1123",
    "AKIAZ2345ABCDEFGHJK7",
    "password=hunter2x",
    "[EMAIL]",
    "[PHONE:0123456789abcdef]",
    "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "call",
    "ssn",
    " ",
    ":",
    "=",
    "\n",
    "x",
    "9",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=12))
def test_glued_pieces_redact_idempotently_in_pseudonym_mode(parts: list[str]) -> None:
    text = "".join(parts)
    redactor = Redactor(replacer=pseudonym_replacer(KEY_A))
    once, counts = redactor.redact_text(text)
    assert redactor.trusting().redact_text(once) == (once, {})
    # The same spans as placeholder mode: only what replaces them differs.
    plain, plain_counts = Redactor().redact_text(text)
    assert PSEUDONYM_TOKEN.sub(lambda m: f"[{m[1]}]", once) == PSEUDONYM_TOKEN.sub(
        lambda m: f"[{m[1]}]", plain
    )
    assert counts == plain_counts


def test_only_linkable_kinds_become_pseudonyms() -> None:
    # Low-entropy identifiers would be testable offline by a key holder: they stay typed.
    replace = pseudonym_replacer(KEY_A)
    for kind in ("CREDIT_CARD", "US_SSN", "US_ITIN", "DATE_OF_BIRTH", "PASSPORT", "IBAN"):
        assert replace(kind, "4111111111111111") == f"[{kind}]"
    assert replace("DRIVER_LICENSE", "D1234567") == "[DRIVER_LICENSE]"
    for kind in ("EMAIL", "PHONE", "PERSON", "IP_ADDRESS"):
        assert PSEUDONYM_TOKEN.fullmatch(replace(kind, "x@example.com"))
    out, _ = Redactor(replacer=replace).redact_text(
        "card 4111 1111 1111 1111, iban DE89 3704 0044 0532 0130 00, ssn 536-22-1234"
    )
    assert out == "card [CREDIT_CARD], iban [IBAN], ssn [US_SSN]"


def test_person_and_phone_normalization() -> None:
    replace = pseudonym_replacer(KEY_A)
    assert replace("PERSON", "Alice  Martin") == replace("PERSON", "alice martin")
    assert normalize_value("PERSON", " ALICE\tMartin ") == "alice martin"
    assert normalize_value("PHONE", "+44 (20) 7123-4567") == "+442071234567"
    assert normalize_value("PHONE", "0044 20 7123 4567") == "+442071234567"
    assert normalize_value("PHONE", "(415) 555.0100") == "4155550100"
    assert replace("PHONE", "+1 415-555-0100") == replace("PHONE", "+1 (415) 555 0100")
