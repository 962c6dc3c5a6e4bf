"""Choose a key provider by the scheme of its URI (``local:///path/to/keys``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from vault.errors import ConfigurationError
from vault.providers.base import KeyProvider
from vault.providers.local import LocalKeyringProvider

__all__ = ["PLANNED_SCHEMES", "open_provider"]

#: Schemes the provider interface is shaped for but that this build does not ship yet.
PLANNED_SCHEMES = frozenset({"pkcs11", "aws-kms", "hcvault"})


def open_provider(
    uri: str,
    *,
    passphrase: str | None,
    scrypt_n: int,
    cache_size: int,
    cache_ttl_seconds: float,
) -> KeyProvider:
    """Open the provider named by ``uri``; unknown or unavailable schemes fail loudly."""
    parts = urlsplit(uri)
    if parts.scheme == "local":
        path = Path(unquote(parts.netloc + parts.path))
        if not path.is_absolute():
            raise ConfigurationError("local:// key provider needs an absolute path")
        return LocalKeyringProvider(
            path,
            passphrase=passphrase,
            scrypt_n=scrypt_n,
            cache_size=cache_size,
            cache_ttl_seconds=cache_ttl_seconds,
        )
    if parts.scheme in PLANNED_SCHEMES:
        raise ConfigurationError(f"key provider scheme {parts.scheme!r} is not in this build yet")
    raise ConfigurationError(f"unknown key provider scheme {parts.scheme!r}")
