"""The token layer: verify bearer JWTs into principals, load verification keys, mint dev tokens."""

from __future__ import annotations

from vault.tokens.devkey import DEV_KID, ensure_dev_key, issue_dev_token, load_dev_public_key
from vault.tokens.jwks import SUPPORTED_ALGORITHMS, check_public_key, fetch_jwks, load_jwks
from vault.tokens.verifier import (
    TokenSettings,
    TokenVerifier,
    validate_algorithms,
    verify_jws,
    verify_signature,
)

__all__ = [
    "DEV_KID",
    "SUPPORTED_ALGORITHMS",
    "TokenSettings",
    "TokenVerifier",
    "check_public_key",
    "ensure_dev_key",
    "fetch_jwks",
    "issue_dev_token",
    "load_dev_public_key",
    "load_jwks",
    "validate_algorithms",
    "verify_jws",
    "verify_signature",
]
