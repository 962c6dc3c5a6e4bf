"""Wycheproof JSON Web Key(set) vectors against ``load_jwks`` and the verifier's core.

Every group's keyset is loaded as the vault would load a configured JWKS; a valid vector must
then verify its token with ``verify_jws`` (algorithms pinned to the keys' declared ``alg``), an
invalid one must be refused, either at load (``ConfigurationError``) or at verification. Each
refusal is matched to the reason the vector is about, so a key refused "by accident" (for some
unrelated defect) is noticed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from vault.errors import AuthenticationError, ConfigurationError
from vault.tokens import load_jwks, verify_jws

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "wycheproof"
NAME = "testvectors_v1/json_web_key_test.json"
EXPECTED_TESTS = 26

# tcId -> the refusal reason (substring of the ConfigurationError message, or of the
# AuthenticationError details when the keyset is fine and the token is not).
REFUSALS = {
    1: "mixes symmetric and asymmetric",
    # The second key's "k" also has non-zero unused bits; the canonical twin is tested below.
    4: "JWK member 'k' is not base64url",
    3: "bad signature",
    6: "use 'enc' is not 'sig'",
    7: "ROCA",
    8: "RSA key of 1024 bits",
    9: "invalid RSA JWK",  # e = 1, refused by cryptography's RSAPublicNumbers
    10: "HMAC key of 248 bits (need 256)",
    11: "HMAC key of 376 bits (need 384)",
    12: "HMAC key of 504 bits (need 512)",
    16: "HMAC key of 0 bits",
    17: "HMAC key of 0 bits",
    18: "HMAC key of 0 bits",
    19: "JWK alg 'ES521' is not a supported signature alg",
    20: "JWK alg 'ES224' is not a supported signature alg",
    21: "use 'enc' is not 'sig'",
    22: "not on the curve",
    23: "does not match curve",
    24: "JWK alg 'ES256' is not a supported signature alg for RSA",
    25: "JWK alg 'A256GCM' is not a supported signature alg",
    26: "JWK alg 'A256KW' is not a supported signature alg",
}


@functools.cache
def vectors() -> dict[str, Any]:
    path = VECTORS / NAME
    assert path.is_file(), f"Wycheproof vectors missing at {path}; clone shared/ beside the repo"
    data = path.read_bytes()
    sums = {}
    for line in (VECTORS / "SHA256SUMS").read_text().splitlines():
        digest, _, name = line.partition("  ")
        sums[name] = digest
    assert hashlib.sha256(data).hexdigest() == sums[NAME], "vector file differs from SHA256SUMS"
    document: dict[str, Any] = json.loads(data)
    assert document["schema"] == "json_web_key_schema_v1.json"
    return document


def keyset(group: dict[str, Any]) -> dict[str, Any]:
    """What a verifier is configured with: the public set, or the secret set for HMAC."""
    chosen: dict[str, Any] = group.get("public") or group["private"]
    return chosen


def outcome(jws: str, jwks: dict[str, Any]) -> tuple[bool, str]:
    try:
        keys = load_jwks(json.dumps(jwks).encode())
    except ConfigurationError as exc:
        return False, exc.message
    algorithms = tuple(sorted({key["alg"] for key in jwks["keys"]}))
    try:
        verify_jws(jws, keys, algorithms)
    except AuthenticationError as exc:
        return False, str(exc.details)
    return True, ""


def test_every_vector() -> None:
    document = vectors()
    assert document["numberOfTests"] == EXPECTED_TESTS
    seen: set[int] = set()
    wrong: list[str] = []
    for group in document["testGroups"]:
        for test in group["tests"]:
            tc_id = test["tcId"]
            seen.add(tc_id)
            accepted, reason = outcome(test["jws"], keyset(group))
            if test["result"] == "valid":
                if not accepted:
                    wrong.append(f"tcId {tc_id} ({test['comment']}): valid but refused: {reason}")
            elif test["result"] == "invalid":
                if accepted:
                    wrong.append(f"tcId {tc_id} ({test['comment']}): invalid but accepted")
                elif REFUSALS.get(tc_id, "\0") not in reason:
                    wrong.append(f"tcId {tc_id}: refused for {reason!r}, not {REFUSALS.get(tc_id)}")
            else:
                wrong.append(f"tcId {tc_id}: unexpected result {test['result']!r}")
    assert not wrong, "\n".join(wrong)
    assert len(seen) == EXPECTED_TESTS
    assert set(REFUSALS) <= seen


def test_valid_vectors_counted() -> None:
    valid = [t for g in vectors()["testGroups"] for t in g["tests"] if t["result"] == "valid"]
    assert sorted(t["tcId"] for t in valid) == [2, 5, 13, 14, 15]


def test_duplicate_kid_refused_for_that_reason() -> None:
    # tcId 4's second key is also non-canonically encoded; a clean duplicate must still fail.
    group = next(g for g in vectors()["testGroups"] if g["comment"] == "jws_duplicate_kid")
    first = group["private"]["keys"][0]
    other_secret = base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()
    twin = {**first, "k": other_secret}
    with pytest.raises(ConfigurationError, match="duplicate kid 'kid-aes-sign'"):
        load_jwks(json.dumps({"keys": [first, twin]}).encode())


def test_private_keysets_are_refused() -> None:
    # Groups with a public set also ship the private one; a verifier must refuse to hold it.
    refused = 0
    for group in vectors()["testGroups"]:
        if "public" not in group:
            continue
        with pytest.raises(ConfigurationError, match="private key material"):
            load_jwks(json.dumps(group["private"]).encode())
        refused += 1
    assert refused == 11
