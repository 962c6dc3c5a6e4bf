"""Keyed pseudonyms: HMAC-SHA256 under a secret key, domain-separated by a label."""

from __future__ import annotations

import hashlib
import hmac

from vault.crypto.context import encode_context

__all__ = ["PSEUDONYM_HEX_CHARS", "keyed_hash"]

PSEUDONYM_HEX_CHARS = 32  # 128 bits: collision-free at any realistic workforce size


def keyed_hash(key: bytes, label: bytes, *fields: str | bytes) -> str:
    """Hex HMAC-SHA256 (first 128 bits) of the canonical encoding of ``fields`` under ``key``."""
    if len(key) < 32:
        raise ValueError("pseudonym key must be at least 256 bits")
    mac = hmac.new(key, encode_context(label, *fields), hashlib.sha256).hexdigest()
    return mac[:PSEUDONYM_HEX_CHARS]
