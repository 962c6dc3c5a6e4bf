"""The key-provider interface: wrap, unwrap, create a version, destroy a version, sign.

Implementations are named by technology (``LocalKeyringProvider``; PKCS#11, AWS KMS and Vault
transit later) and chosen by the scheme of the provider URI. A provider keeps key material
inside itself where it can; callers only ever see wrapped bytes and signatures.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from typing import Any

__all__ = ["KeyProvider", "KeyState"]


class KeyState(enum.StrEnum):
    """The life of one key version in a provider."""

    ACTIVE = "active"
    DESTROYED = "destroyed"


class KeyProvider(ABC):
    """Holds versioned symmetric KEKs and Ed25519 signing keys, addressed by a key reference."""

    #: URI scheme this implementation serves, e.g. ``local``.
    scheme: str = ""

    @abstractmethod
    def create_version(self, key_ref: str) -> int:
        """Create a new random version of ``key_ref``; returns its number (1, 2, ...)."""

    @abstractmethod
    def wrap(self, key_ref: str, version: int, plaintext: bytes, context: bytes) -> bytes:
        """Wrap ``plaintext`` (a key) under that version, bound to ``context``."""

    @abstractmethod
    def unwrap(self, key_ref: str, version: int, wrapped: bytes, context: bytes) -> bytes:
        """Unwrap; raises ``KeyDestroyed`` for a destroyed version, ``DecryptionError`` else."""

    @abstractmethod
    def destroy_version(self, key_ref: str, version: int) -> None:
        """Destroy that version for good: nothing it wrapped can be unwrapped afterwards."""

    @abstractmethod
    def versions(self, key_ref: str) -> dict[int, KeyState]:
        """Every version of ``key_ref`` the provider knows of, with its state."""

    @abstractmethod
    def sign(self, key_ref: str, message: bytes) -> bytes:
        """Ed25519 signature of ``message`` by the signing key ``key_ref`` (made on first use)."""

    @abstractmethod
    def public_key(self, key_ref: str) -> bytes:
        """Raw 32-byte Ed25519 public key of the signing key ``key_ref`` (made on first use)."""

    @abstractmethod
    def check(self) -> dict[str, Any]:
        """Raise ``Unavailable`` if the provider cannot serve; else a short, key-free status."""
