"""c2sp.org/chunked-encryption (Cobblestone-256) against the Wycheproof vectors, plus properties."""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.crypto.chunked import CHUNK, HEADER, decrypt, decrypt_chunks, encrypt
from vault.errors import DecryptionError

VECTORS = (
    Path(__file__).resolve().parents[2].parent
    / "shared/vectors/wycheproof/testvectors_v1/c2sp_chunked_encryption_aes_256_gcm_test.json"
)


def _tests() -> list[dict]:
    data = json.loads(VECTORS.read_text())  # a missing file fails the run, never skips it
    return [t for group in data["testGroups"] for t in group["tests"]]


def test_every_vector() -> None:
    valid = invalid = 0
    for t in _tests():
        ct = zlib.decompress(bytes.fromhex(t["ct"]))
        key, ctx = bytes.fromhex(t["key"]), bytes.fromhex(t["ctx"])
        if t["result"] == "valid":
            message = decrypt(key, ct, ctx)
            assert len(message) == t["msgLength"], t["tcId"]
            assert hashlib.sha512(message).hexdigest() == t["msgSha512"], t["tcId"]
            # Encryption with the vector's salt reproduces the ciphertext byte for byte.
            assert encrypt(key, message, ctx, salt=ct[:24]) == ct, t["tcId"]
            valid += 1
        else:
            with pytest.raises(DecryptionError):
                decrypt(key, ct, ctx)
            invalid += 1
    assert (valid, invalid) == (10, 25)


def _drain(chunks: Iterator[bytes], into: list[bytes]) -> None:
    for chunk in chunks:
        into.append(chunk)


def test_partial_plaintext_vectors_never_yield_past_the_valid_prefix() -> None:
    for t in _tests():
        if "PartialPlaintext" not in t["flags"]:
            continue
        ct = zlib.decompress(bytes.fromhex(t["ct"]))
        produced: list[bytes] = []
        with pytest.raises(DecryptionError):
            _drain(decrypt_chunks(bytes.fromhex(t["key"]), ct, bytes.fromhex(t["ctx"])), produced)
        # Only whole authenticated chunks, never past the valid prefix (none at all is allowed).
        prefix = b"".join(produced)
        assert len(prefix) <= t["msgLength"]
        assert len(prefix) % CHUNK == 0
        if len(prefix) == t["msgLength"]:
            assert hashlib.sha512(prefix).hexdigest() == t["msgSha512"]


@settings(max_examples=40, deadline=None)
@given(
    size=st.sampled_from([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK]), ctx=st.binary(max_size=40)
)
def test_round_trip_and_tamper(size: int, ctx: bytes) -> None:
    key, message = os.urandom(32), os.urandom(size)
    ct = encrypt(key, message, ctx)
    assert decrypt(key, ct, ctx) == message
    assert len(ct) == HEADER + (size // CHUNK + 1) * 16 + size
    for bad in (ct[:-1], ct + b"\x00", ct[:HEADER] + bytes([ct[HEADER] ^ 1]) + ct[HEADER + 1 :]):
        with pytest.raises(DecryptionError):
            decrypt(key, bad, ctx)
    with pytest.raises(DecryptionError):
        decrypt(key, ct, ctx + b"x")
    with pytest.raises(DecryptionError):
        decrypt(os.urandom(32), ct, ctx)


def test_reordered_chunks_fail() -> None:
    key = os.urandom(32)
    ct = encrypt(key, os.urandom(2 * CHUNK + 10), b"")
    sealed = CHUNK + 16
    first, second = ct[HEADER : HEADER + sealed], ct[HEADER + sealed : HEADER + 2 * sealed]
    swapped = ct[:HEADER] + second + first + ct[HEADER + 2 * sealed :]
    with pytest.raises(DecryptionError):
        decrypt(key, swapped, b"")
    with pytest.raises(DecryptionError):
        decrypt(os.urandom(16), ct, b"")
