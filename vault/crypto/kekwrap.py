"""Wrapping keys under a key-encryption key with a per-wrap derived key.

Each wrap draws a random 256-bit salt, derives a one-time AES-256 key with HKDF-SHA256
(RFC 5869) from the KEK, the salt and the context, and seals the key with AES-256-GCM. Because
every derived key encrypts exactly once, the GCM usage bound of SP 800-38D §8.3 never comes
into play for the KEK however many keys it wraps, and the context binds the wrapped key to where
it belongs. Layout: ``0x01 || salt(32) || nonce(12) || ciphertext || tag(16)``.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.crypto.aead import KEY_BYTES, SEALED_OVERHEAD, open_sealed, seal
from vault.errors import DecryptionError

__all__ = ["MAX_WRAPPED_PLAINTEXT", "WRAP_VERSION", "unwrap_with_kek", "wrap_with_kek"]

WRAP_VERSION = 0x01
SALT_BYTES = 32
_INFO = b"tvault/kek-wrap/v1"
MAX_WRAPPED_PLAINTEXT = 4096
_MAX_WRAPPED = 1 + SALT_BYTES + SEALED_OVERHEAD + MAX_WRAPPED_PLAINTEXT


def _derive(kek: bytes, salt: bytes, context: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=_INFO + context
    ).derive(kek)


def wrap_with_kek(kek: bytes, plaintext_key: bytes, context: bytes) -> bytes:
    """Wrap ``plaintext_key`` under ``kek``, bound to ``context``."""
    if len(kek) != KEY_BYTES:
        raise ValueError("KEK must be 32 bytes")
    if len(plaintext_key) > MAX_WRAPPED_PLAINTEXT:
        raise ValueError(f"at most {MAX_WRAPPED_PLAINTEXT} bytes can be wrapped")
    salt = os.urandom(SALT_BYTES)
    return bytes([WRAP_VERSION]) + salt + seal(_derive(kek, salt, context), plaintext_key, context)


def unwrap_with_kek(kek: bytes, wrapped: bytes, context: bytes) -> bytes:
    """Inverse of :func:`wrap_with_kek`; every failure is one opaque DecryptionError."""
    if (
        len(kek) != KEY_BYTES
        or not 1 + SALT_BYTES + SEALED_OVERHEAD <= len(wrapped) <= _MAX_WRAPPED
        or wrapped[0] != WRAP_VERSION
    ):
        raise DecryptionError("decryption failed")
    salt = wrapped[1 : 1 + SALT_BYTES]
    return open_sealed(_derive(kek, salt, context), wrapped[1 + SALT_BYTES :], context)
