"""Wycheproof JSON Web Signature vectors against the verifier's core (vault.tokens.verify_jws).

Each group's key goes through ``load_jwks`` exactly as a configured JWKS would, the algorithm
list is pinned to the key's declared ``alg`` (as an operator pins ``jwt_algorithms``), and the
token goes through ``verify_jws``, the same gate ``TokenVerifier.verify`` runs first. Vector
payloads are arbitrary bytes, not claim sets, so claims are not checked here.

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

from vault.errors import AuthenticationError, ConfigurationError
from vault.tokens import load_jwks, verify_jws
from vault.tokens.jwks import ALGORITHM_KTY

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "wycheproof"
NAME = "testvectors_v1/json_web_signature_test.json"

# Upstream labels "valid" that the vault refuses on purpose, each with its reason.
VALID_BUT_REFUSED = {
    346: "RFC 7520 Fig. 20: key declares alg PS256, token is PS384; algorithms are pinned",
    350: "RFC 7520 Fig. 20 (key_ops variant): key declares alg PS256, token is PS384",
    347: "RFC 7520 Fig. 27: key declares alg 'ES521', not a registered JWA name (ES512 is)",
    351: "RFC 7520 Fig. 27 (key_ops variant): key declares unregistered alg 'ES521'",
    372: "'?' inside the header segment: strict base64url refuses characters off the alphabet",
    373: "'?' inside the payload segment: strict base64url refuses characters off the alphabet",
}
# Upstream labels "invalid" that no verifier can refuse: the token is byte-identical to tcId
# 357 (ValidMac, "valid") under the same key. Asserted below, so the override cannot hide a bug.
INVALID_BUT_IDENTICAL_TO_VALID = {367: 357, 370: 357}

EXPECTED_TESTS = 401
EXPECTED_OUTCOMES = Counter(
    {
        ("valid", "accepted"): 40,
        ("valid", "refused"): 6,
        ("invalid", "refused"): 353,
        ("invalid", "accepted"): 2,
    }
)


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
    assert document["schema"] == "json_web_signature_schema_v1.json"
    return document


def group_key(group: dict[str, Any]) -> dict[str, Any]:
    """The JWK a verifier would be configured with: the public key, or the shared secret."""
    key: dict[str, Any] = group.get("public") or group["private"]
    return key


def pinned_algorithms(jwk: dict[str, Any]) -> tuple[str, ...]:
    alg = jwk.get("alg")
    if alg in ALGORITHM_KTY:
        return (alg,)
    # No usable alg declared: allow every algorithm of the key's type (the load refuses these
    # keys anyway, for 'use'/'key_ops' or the unregistered alg).
    return tuple(a for a, kty in ALGORITHM_KTY.items() if kty == jwk.get("kty"))


def outcome(jws: str, jwk: dict[str, Any]) -> tuple[bool, str]:
    """(accepted, reason) for one token under one configured key."""
    try:
        keys = load_jwks(json.dumps({"keys": [jwk]}).encode())
    except ConfigurationError as exc:
        return False, f"key refused: {exc.message}"
    try:
        verify_jws(jws, keys, pinned_algorithms(jwk))
    except AuthenticationError as exc:
        return False, str(exc.details)
    return True, ""


def all_tests() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(group, test) for group in vectors()["testGroups"] for test in group["tests"]]


def test_vector_file_is_complete() -> None:
    document = vectors()
    assert document["numberOfTests"] == EXPECTED_TESTS
    assert len(all_tests()) == EXPECTED_TESTS
    assert len({test["tcId"] for _, test in all_tests()}) == EXPECTED_TESTS


def test_every_vector() -> None:
    counts: Counter[tuple[str, str]] = Counter()
    wrong: list[str] = []
    for group, test in all_tests():
        tc_id, expected = test["tcId"], test["result"]
        accepted, reason = outcome(test["jws"], group_key(group))
        counts[(expected, "accepted" if accepted else "refused")] += 1
        if expected == "invalid" and accepted and tc_id not in INVALID_BUT_IDENTICAL_TO_VALID:
            wrong.append(f"tcId {tc_id} ({test['comment']}): invalid but accepted")
        if expected == "valid" and not accepted and tc_id not in VALID_BUT_REFUSED:
            wrong.append(f"tcId {tc_id} ({test['comment']}): valid but refused: {reason}")
        if tc_id in VALID_BUT_REFUSED and accepted:
            wrong.append(f"tcId {tc_id}: listed as deliberately refused but accepted")
        # "acceptable" would allow either outcome; the pinned file has none (counted below).
    assert not wrong, "\n".join(wrong)
    assert counts == EXPECTED_OUTCOMES
    assert sum(counts.values()) == EXPECTED_TESTS


def test_every_asymmetric_private_key_is_refused() -> None:
    # A verifier holds public keys only: every asymmetric private JWK is refused, and for that
    # reason (it is checked before anything else that may be wrong with the key).
    refused = 0
    for group in vectors()["testGroups"]:
        if group["private"].get("kty") == "oct":
            continue
        with pytest.raises(ConfigurationError, match="private key material"):
            load_jwks(json.dumps({"keys": [group["private"]]}).encode())
        refused += 1
    assert refused == 19


def _by_id() -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    return {test["tcId"]: (group, test) for group, test in all_tests()}


def test_mislabelled_invalid_vectors_are_byte_identical_to_a_valid_one() -> None:
    tests = _by_id()
    for tc_id, twin in INVALID_BUT_IDENTICAL_TO_VALID.items():
        group, test = tests[tc_id]
        twin_group, twin_test = tests[twin]
        assert test["result"] == "invalid"
        assert twin_test["result"] == "valid"
        assert test["jws"] == twin_test["jws"]
        assert group_key(group) == group_key(twin_group)


@pytest.mark.parametrize(
    ("tc_id", "fix", "reason"),
    [
        (346, {"alg": "PS384"}, "alg not allowed: 'PS384'"),
        (350, {"alg": "PS384"}, "alg not allowed: 'PS384'"),
        (347, {"alg": "ES512"}, "key refused: JWK alg 'ES521' is not a supported"),
        (351, {"alg": "ES512"}, "key refused: JWK alg 'ES521' is not a supported"),
    ],
)
def test_policy_refusals_are_only_policy(tc_id: int, fix: dict[str, str], reason: str) -> None:
    """The refused RFC 7520 vectors verify once the key's alg names what was really used."""
    group, test = _by_id()[tc_id]
    accepted, why = outcome(test["jws"], group_key(group))
    assert not accepted
    assert why.startswith(reason)
    assert outcome(test["jws"], {**group_key(group), **fix}) == (True, "")


@pytest.mark.parametrize("tc_id", [372, 373])
def test_non_alphabet_characters_are_refused_structurally(tc_id: int) -> None:
    group, test = _by_id()[tc_id]
    assert "?" in test["jws"]
    assert outcome(test["jws"], group_key(group)) == (False, "not a compact JWS")
