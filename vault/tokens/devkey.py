"""The development signing key: an Ed25519 key on local disk that mints quick-start tokens.

DEV ONLY. Whoever can read this file can mint any role, so it lives under the keyring directory
with mode 0600, and a production deployment turns ``dev_tokens`` off and trusts an IdP instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from vault.domain.principal import Role
from vault.domain.purposes import normalize_purpose
from vault.errors import BadRequest, ConfigurationError

__all__ = ["DEV_KID", "ensure_dev_key", "issue_dev_token", "load_dev_public_key"]

#: The ``kid`` header of every development token.
DEV_KID = "dev"


def ensure_dev_key(path: Path) -> bool:
    """Create the Ed25519 dev key PEM (0600, parent 0700) unless it exists; True if created."""
    if path.exists():
        return False
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Write a private temp file, then link it into place: readers never see a half-written
    # key, and a concurrent creator wins or loses atomically instead of clobbering.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return True


def _load_private_key(path: Path) -> ed25519.Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigurationError(f"dev token key not found: {path}") from exc
    except OSError as exc:
        raise ConfigurationError(f"cannot read dev token key {path}: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"dev token key {path} is not an unencrypted PEM key") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigurationError(f"dev token key {path} is not an Ed25519 key")
    return key


def load_dev_public_key(path: Path) -> ed25519.Ed25519PublicKey:
    """The public half of the dev key; ``ConfigurationError`` if it is absent or not Ed25519."""
    return _load_private_key(path).public_key()


def _checked_roles(roles: Sequence[str]) -> list[str]:
    known = {role.value for role in Role}
    unknown = sorted({str(r) for r in roles} - known)
    if unknown:
        raise BadRequest(f"unknown roles: {', '.join(unknown)}")
    if not roles:
        raise BadRequest("a token needs at least one role")
    return sorted({str(r) for r in roles})


def _checked_purposes(purposes: Sequence[str]) -> list[str]:
    normalized = set()
    for raw in purposes:
        norm = normalize_purpose(raw)
        if norm is None:
            raise BadRequest(f"invalid purpose name: {raw!r}")
        normalized.add(norm)
    return sorted(normalized)


def issue_dev_token(
    path: Path,
    *,
    sub: str,
    roles: Sequence[str],
    purposes: Sequence[str] = (),
    datasets: Sequence[str] = (),
    ttl_seconds: int,
    issuer: str,
    audience: str,
    now: float,
) -> str:
    """Sign an EdDSA token (header ``kid: "dev"``) with the dev key at ``path``.

    Empty ``purposes``/``datasets`` leave the claim out, which means "not limited".
    Raises ``ConfigurationError`` when the key file is absent and ``BadRequest`` for unknown
    roles, no roles, an empty subject, invalid purposes or ``ttl_seconds <= 0``.
    """
    if ttl_seconds <= 0:
        raise BadRequest("ttl_seconds must be positive")
    if not sub:
        raise BadRequest("sub must not be empty")
    claims: dict[str, object] = {
        "iss": issuer,
        "aud": audience,
        "sub": sub,
        "roles": _checked_roles(roles),
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now) + ttl_seconds,
        "jti": secrets.token_urlsafe(16),
    }
    if purposes:
        claims["purposes"] = _checked_purposes(purposes)
    if datasets:
        claims["datasets"] = sorted(set(datasets))
    key = _load_private_key(path)
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": DEV_KID})
