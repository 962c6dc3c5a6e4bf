"""What a finding is replaced by: a typed placeholder ``[EMAIL]`` or a keyed pseudonym.

A dataset chooses its replacement mode once, at creation (docs/redaction.md "Replacement
modes"). In ``pseudonym`` mode the kinds whose linkage is worth it for training
(:data:`PSEUDONYMIZED_KINDS`: e-mails, phones, person names, IP addresses) become
``[EMAIL:3f9a1c2b7e4d5a60]``: the first :data:`PSEUDONYM_HEX` hex digits of HMAC-SHA256, under
a key specific to the dataset, of the type and the (normalized) value, so the same address in
two events gets the same token, while two datasets cannot be joined on it. Everything else
stays ``[TYPE]``: secrets (a keyed hash of a password or token is an offline verifier for it)
and low-entropy identifiers (cards, SSN/ITIN, dates of birth, passports, licences, IBANs,
street addresses), whose few possible values a holder of the key could simply try.

Pure: the key is given by the caller (the keyring derives it, see ``vault.keyring``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable

from vault.domain.redaction.pii_rules import PII_RULES

__all__ = [
    "PSEUDONYMIZED_KINDS",
    "PSEUDONYM_HEX",
    "PSEUDONYM_TOKEN",
    "Replacer",
    "is_placeholder",
    "normalize_value",
    "pseudonym_replacer",
]

#: A replacement hook: (placeholder type, the replaced text) -> what is stored instead.
Replacer = Callable[[str, str], str]

#: Hex digits kept of the HMAC: 64 bits, so two different values of one type in one dataset
#: collide only past ~4 billion distinct values (birthday bound), and tokens stay short.
PSEUDONYM_HEX = 16

#: Types replaced by pseudonyms in ``pseudonym`` mode: those whose linkage is useful for training
#: ("the same person / address again"). Everything else stays ``[TYPE]``. These too are
#: guessable by whoever holds the dataset's redaction key (phone numbers and IPv4 addresses can
#: be enumerated, e-mails and names guessed): the key is derived inside the vault and never
#: leaves it, so that holder is the vault itself (docs/redaction.md "Replacement modes").
PSEUDONYMIZED_KINDS: frozenset[str] = frozenset({"EMAIL", "PHONE", "PERSON", "IP_ADDRESS"})
if not PSEUDONYMIZED_KINDS - {"PERSON"} <= {r.kind for r in PII_RULES}:  # pragma: no cover
    raise RuntimeError("a pseudonymized kind is not produced by any PII rule")

#: A pseudonym token as stored; redaction treats one as already redacted (idempotence).
PSEUDONYM_TOKEN = re.compile(rf"\[([A-Z][A-Z0-9_]{{0,63}}):([0-9a-f]{{{PSEUDONYM_HEX}}})\]")
_PLACEHOLDER = re.compile(rf"\[[A-Z][A-Z0-9_]{{0,63}}(?::[0-9a-f]{{{PSEUDONYM_HEX}}})?\]")

_LABEL = b"tvault/redaction-value/v1\x00"
# Separators people write numbers with; removed so "+44 20 7123 4567" and "+442071234567"
# (or a card with or without spaces) get the same pseudonym.
_NUMBER_KINDS = frozenset({"CREDIT_CARD", "IBAN", "US_SSN", "US_ITIN"})
_SEPARATORS = str.maketrans("", "", " -.()/\t")
_NOT_DIGIT = re.compile(r"[^0-9]")
_BLANKS = re.compile(r"\s+")


def is_placeholder(value: str) -> bool:
    """Whether ``value`` is exactly one placeholder, typed or pseudonymous."""
    return _PLACEHOLDER.fullmatch(value) is not None


def normalize_value(kind: str, value: str) -> str:
    """The form of a value that is hashed: case-folded e-mails, IP addresses and names (blanks
    collapsed), phones as their digits (``+`` and the country code kept when written), other
    numbers without separators."""
    value = value.strip()
    if kind == "EMAIL":
        return value.lower()
    if kind == "PERSON":
        return _BLANKS.sub(" ", value).casefold()
    if kind == "PHONE":
        return _phone(value)
    if kind in _NUMBER_KINDS:
        return value.translate(_SEPARATORS).upper()
    if kind == "IP_ADDRESS":
        return value.lower()
    return value


def _phone(value: str) -> str:
    """``+44 (20) 7123-4567`` and ``0044 20 7123 4567`` -> ``+442071234567``; without a
    country code, the digits alone."""
    digits = _NOT_DIGIT.sub("", value)
    if value.startswith("+"):
        return "+" + digits
    if value.startswith("00") and len(digits) > 2:
        return "+" + digits[2:]
    return digits


def pseudonym_replacer(key: bytes) -> Replacer:
    """The replacer of a ``pseudonym`` dataset whose redaction key is ``key`` (>= 256 bits)."""
    if len(key) < 32:
        raise ValueError("redaction key must be at least 256 bits")

    def replace(kind: str, value: str) -> str:
        if kind not in PSEUDONYMIZED_KINDS:
            return f"[{kind}]"
        # kind is bounded and NUL-free, so "label || kind || NUL || value" is unambiguous.
        message = (
            _LABEL
            + kind.encode("ascii")
            + b"\x00"
            + normalize_value(kind, value).encode("utf-8", "surrogatepass")
        )
        digest = hmac.new(key, message, hashlib.sha256).hexdigest()
        return f"[{kind}:{digest[:PSEUDONYM_HEX]}]"

    return replace
