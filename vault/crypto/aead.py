"""AES-256-GCM with a fresh random 96-bit nonce per encryption (NIST SP 800-38D §8.2.2).

The nonce is generated here and only here; output is ``nonce || ciphertext || tag``.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import DecryptionError

__all__ = [
    "KEY_BYTES",
    "NONCE_BYTES",
    "SEALED_OVERHEAD",
    "TAG_BYTES",
    "new_key",
    "open_sealed",
    "seal",
]

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
SEALED_OVERHEAD = NONCE_BYTES + TAG_BYTES


def new_key() -> bytes:
    """A fresh random 256-bit key from the OS CSPRNG."""
    return os.urandom(KEY_BYTES)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` bound to ``aad``; returns nonce||ct||tag."""
    if len(key) != KEY_BYTES:
        raise ValueError("AES-256-GCM needs a 32-byte key")
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Inverse of :func:`seal`. Every failure is one opaque :class:`DecryptionError`."""
    if len(key) != KEY_BYTES or len(sealed) < SEALED_OVERHEAD:
        raise DecryptionError("decryption failed")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise DecryptionError("decryption failed") from exc
