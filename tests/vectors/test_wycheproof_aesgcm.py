"""Wycheproof AES-GCM and Ed25519 vectors against the vault's own entry points.

* AES-GCM: every vector in the vault's profile (256-bit key, 96-bit nonce, 128-bit tag) goes
  through ``vault.crypto.aead.open_sealed`` as ``nonce || ct || tag``, the layout every sealed
  value in the vault uses (docs/envelope.md). Valid vectors must give back ``msg``, invalid ones
  must raise the one opaque ``DecryptionError``. Vectors outside the profile (128/192-bit keys,
  nonces other than 96 bits) must be refused: the API takes 32-byte keys only and reads exactly
  12 nonce bytes, so such a ciphertext can never open.
* Ed25519: every vector goes through ``vault.audit.log._verify_sig``, the check ``verify`` runs
  on audit checkpoints.
* HMAC-SHA256 (hmac_sha256_test.json) is not used: ``keyed_hash`` MACs a length-prefixed
  encoding of a label and fields and keeps 128 bits, so no Wycheproof message is an input it
  can be given. Its pinned known answer is in tests/unit/test_crypto.py.

The vectors live beside the repository (``../shared/vectors/wycheproof``). A missing or altered
file fails the test: a vector suite that silently skips proves nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from vault.audit.log import _verify_sig
from vault.crypto.aead import KEY_BYTES, NONCE_BYTES, TAG_BYTES, open_sealed, seal
from vault.errors import DecryptionError

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "wycheproof"
AES_GCM = "testvectors_v1/aes_gcm_test.json"
ED25519 = "testvectors_v1/ed25519_test.json"

# Counted from the pinned files (their SHA-256 is checked below), so a vector that stops being
# exercised, or a changed file, fails here.
AES_GCM_TESTS = 316
IN_PROFILE = Counter({"valid": 39, "invalid": 27})
ED25519_OUTCOMES = Counter({("valid", True): 88, ("invalid", False): 63})


@functools.cache
def load(name: str) -> dict[str, Any]:
    assert VECTORS.is_dir(), f"Wycheproof vectors missing at {VECTORS}; clone shared/ beside repo"
    path = VECTORS / name
    assert path.is_file(), f"Wycheproof vector file missing: {path}"
    data = path.read_bytes()
    sums = {}
    for line in (VECTORS / "SHA256SUMS").read_text().splitlines():
        digest, _, file_name = line.partition("  ")
        sums[file_name] = digest
    assert hashlib.sha256(data).hexdigest() == sums[name], f"{name} differs from SHA256SUMS"
    document: dict[str, Any] = json.loads(data)
    return document


def aes_gcm_tests() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    document = load(AES_GCM)
    assert document["algorithm"] == "AES-GCM"
    return [(group, test) for group in document["testGroups"] for test in group["tests"]]


def in_profile(group: dict[str, Any]) -> bool:
    return bool(
        group["keySize"] == 8 * KEY_BYTES
        and group["ivSize"] == 8 * NONCE_BYTES
        and group["tagSize"] == 8 * TAG_BYTES
    )


def sealed_of(test: dict[str, Any]) -> bytes:
    return bytes.fromhex(test["iv"] + test["ct"] + test["tag"])


def test_vector_file_is_complete() -> None:
    tests = aes_gcm_tests()
    assert load(AES_GCM)["numberOfTests"] == AES_GCM_TESTS
    assert len(tests) == AES_GCM_TESTS
    assert len({t["tcId"] for _, t in tests}) == AES_GCM_TESTS


def test_every_in_profile_vector() -> None:
    counts: Counter[str] = Counter()
    wrong: list[str] = []
    for group, test in aes_gcm_tests():
        if not in_profile(group):
            continue
        counts[test["result"]] += 1
        key, aad, msg = (bytes.fromhex(test[k]) for k in ("key", "aad", "msg"))
        assert len(key) == KEY_BYTES
        assert len(bytes.fromhex(test["iv"])) == NONCE_BYTES
        try:
            opened = open_sealed(key, sealed_of(test), aad)
        except DecryptionError:
            if test["result"] == "valid":
                wrong.append(f"tcId {test['tcId']}: valid but refused")
            continue
        if test["result"] != "valid":
            wrong.append(f"tcId {test['tcId']} ({test['comment']}): invalid but opened")
        elif opened != msg:
            wrong.append(f"tcId {test['tcId']}: opened to the wrong plaintext")
    assert not wrong, "\n".join(wrong)
    assert counts == IN_PROFILE
    print(f"AES-256-GCM in-profile Wycheproof vectors exercised: {counts.total()} ({counts})")
    assert counts.total() > 0


def test_other_key_sizes_are_refused() -> None:
    refused = 0
    for group, test in aes_gcm_tests():
        if group["keySize"] == 256:
            continue
        key, aad = bytes.fromhex(test["key"]), bytes.fromhex(test["aad"])
        assert len(key) != KEY_BYTES
        with pytest.raises(DecryptionError):
            open_sealed(key, sealed_of(test), aad)
        with pytest.raises(ValueError):
            seal(key, bytes.fromhex(test["msg"]), aad)
        refused += 1
    assert refused == 211


def test_other_nonce_sizes_never_open() -> None:
    # 256-bit key, nonce of 0..2056 bits: the vault reads exactly 12 nonce bytes, so the bytes
    # the vector calls nonce || ct || tag cannot authenticate, valid upstream or not.
    refused = 0
    for group, test in aes_gcm_tests():
        if group["keySize"] != 256 or group["ivSize"] == 96:
            continue
        with pytest.raises(DecryptionError):
            open_sealed(bytes.fromhex(test["key"]), sealed_of(test), bytes.fromhex(test["aad"]))
        refused += 1
    assert refused == 39


def test_our_seals_only_ever_carry_96_bit_nonces() -> None:
    for group, test in aes_gcm_tests():
        if not in_profile(group) or test["result"] != "valid":
            continue
        key, aad, msg = (bytes.fromhex(test[k]) for k in ("key", "aad", "msg"))
        sealed = seal(key, msg, aad)
        assert len(sealed) == NONCE_BYTES + len(msg) + TAG_BYTES
        assert open_sealed(key, sealed, aad) == msg


def test_every_ed25519_vector() -> None:
    document = load(ED25519)
    assert document["algorithm"] == "EDDSA"
    counts: Counter[tuple[str, bool]] = Counter()
    for group in document["testGroups"]:
        assert group["publicKey"]["curve"] == "edwards25519"
        public = bytes.fromhex(group["publicKey"]["pk"])
        for test in group["tests"]:
            accepted = _verify_sig(public, bytes.fromhex(test["sig"]), bytes.fromhex(test["msg"]))
            assert accepted == (test["result"] == "valid"), f"tcId {test['tcId']}"
            counts[(test["result"], accepted)] += 1
    assert counts == ED25519_OUTCOMES
    assert counts.total() == document["numberOfTests"]


def test_ed25519_malformed_public_keys_are_rejected_not_raised() -> None:
    signature = bytes(64)
    for public in (b"", bytes(31), bytes(33)):
        assert _verify_sig(public, signature, b"m") is False
