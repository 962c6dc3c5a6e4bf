"""Streaming AEAD for large blobs: c2sp.org/chunked-encryption (Cobblestone-256).

AES-256-GCM with HKDF-Expand-SHA-512 key derivation and key commitment, as specified at
https://c2sp.org/chunked-encryption and tested against the Wycheproof vectors of that scheme.
Layout: ``salt (24) || commitment (32) || chunk_0 || ... || chunk_n``; every chunk but the last
holds exactly 16 KiB of plaintext, the last holds less (possibly nothing), so a truncated,
extended, reordered or duplicated chunk stream fails to decrypt. Each chunk's nonce is the
derived base nonce XOR its index; the AEAD's associated data is empty (the context is bound in
the key derivation and checked by the commitment before any chunk is decrypted).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from vault.errors import DecryptionError

__all__ = [
    "CHUNK",
    "HEADER",
    "MAX_CHUNKS",
    "decrypt",
    "decrypt_chunks",
    "encrypt",
]

AEAD_NAME = b"AEAD_AES_256_GCM"
KEY = 32
NONCE = 12
TAG = 16
SALT = 24
COMMITMENT = 32
HEADER = SALT + COMMITMENT
CHUNK = 16 * 1024
#: The spec allows 2^38 chunks; the vault never needs more than 2^32 (64 TiB).
MAX_CHUNKS = 2**32
_INFO_PREFIX = b"c2sp.org/chunked-encryption@v1+" + AEAD_NAME + b"\x00"


def _derive(input_key: bytes, salt: bytes, context: bytes) -> tuple[AESGCM, bytes, bytes]:
    if len(input_key) != KEY:
        raise DecryptionError("decryption failed")
    out = HKDFExpand(
        algorithm=hashes.SHA512(),
        length=KEY + NONCE + COMMITMENT,
        info=_INFO_PREFIX + salt + context,
    ).derive(input_key)
    return AESGCM(out[:KEY]), out[KEY : KEY + NONCE], out[KEY + NONCE :]


def _nonce(base: bytes, index: int) -> bytes:
    if index >= MAX_CHUNKS:
        raise DecryptionError("decryption failed")
    return (int.from_bytes(base, "big") ^ index).to_bytes(NONCE, "big")


def encrypt(
    input_key: bytes, plaintext: bytes, context: bytes, *, salt: bytes | None = None
) -> bytes:
    """Encrypt a whole message. ``salt`` is random unless a test injects one."""
    if len(input_key) != KEY:
        raise ValueError("the input key must be 32 bytes")
    salt = os.urandom(SALT) if salt is None else salt
    if len(salt) != SALT:
        raise ValueError("the salt must be 24 bytes")
    aead, base, commitment = _derive(input_key, salt, context)
    parts = [salt, commitment]
    full = len(plaintext) // CHUNK
    for index in range(full + 1):  # the final chunk is always short, possibly empty
        chunk = (
            plaintext[index * CHUNK : (index + 1) * CHUNK]
            if index < full
            else plaintext[full * CHUNK :]
        )
        parts.append(aead.encrypt(_nonce(base, index), chunk, None))
    return b"".join(parts)


def decrypt_chunks(input_key: bytes, ciphertext: bytes, context: bytes) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk; any problem raises DecryptionError (and keeps raising).

    The commitment is checked before any chunk is decrypted. A caller that must not act on a
    prefix of a message that later fails should use :func:`decrypt`.
    """
    if len(ciphertext) < HEADER + TAG:
        raise DecryptionError("decryption failed")
    aead, base, commitment = _derive(input_key, ciphertext[:SALT], context)
    if not hmac.compare_digest(commitment, ciphertext[SALT:HEADER]):
        raise DecryptionError("decryption failed")
    body = memoryview(ciphertext)[HEADER:]
    sealed = CHUNK + TAG
    full, last = divmod(len(body), sealed)
    if last < TAG:  # a message ending on a full chunk, or a torn tag, is truncated
        raise DecryptionError("decryption failed")
    for index in range(full + 1):
        piece = body[index * sealed : (index + 1) * sealed]
        try:
            yield aead.decrypt(_nonce(base, index), bytes(piece), None)
        except InvalidTag as exc:
            raise DecryptionError("decryption failed") from exc


def decrypt(input_key: bytes, ciphertext: bytes, context: bytes) -> bytes:
    """Decrypt and authenticate a whole message before returning any of it."""
    return b"".join(decrypt_chunks(input_key, ciphertext, context))
