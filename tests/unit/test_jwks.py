"""JWKS loading, key policy and the strict parsing helpers (vault.tokens.jwks)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from vault.errors import ConfigurationError
from vault.tokens import fetch_jwks, load_jwks
from vault.tokens.jwks import b64url_decode, check_public_key, key_fits, strict_json_loads

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
SECRET = bytes(range(32))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rsa_jwk(**extra: Any) -> dict[str, Any]:
    jwk = RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True)
    assert isinstance(jwk, dict)
    return {**jwk, "kid": "rsa", **extra}


def ec_jwk(**extra: Any) -> dict[str, Any]:
    jwk = ECAlgorithm.to_jwk(EC_KEY.public_key(), as_dict=True)
    assert isinstance(jwk, dict)
    return {**jwk, "kid": "ec", **extra}


def ed_jwk(**extra: Any) -> dict[str, Any]:
    jwk = OKPAlgorithm.to_jwk(ED_KEY.public_key(), as_dict=True)
    assert isinstance(jwk, dict)
    return {**jwk, "kid": "ed", **extra}


def oct_jwk(secret: bytes = SECRET, **extra: Any) -> dict[str, Any]:
    return {"kty": "oct", "k": b64(secret), "kid": "hmac", **extra}


def jwks(*keys: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


def test_loads_public_keys_of_every_supported_type() -> None:
    keys = load_jwks(jwks(rsa_jwk(alg="RS256", use="sig"), ec_jwk(alg="ES256"), ed_jwk()))
    assert {kid: kty for kid, (kty, _) in keys.items()} == {"rsa": "RSA", "ec": "EC", "ed": "OKP"}
    assert keys["rsa"][1].public_numbers() == RSA_KEY.public_key().public_numbers()
    assert keys["ed"][1].public_bytes_raw() == ED_KEY.public_key().public_bytes_raw()


def test_symmetric_set_and_lone_key_without_kid() -> None:
    lone = oct_jwk(key_ops=["sign", "verify"])
    del lone["kid"]
    assert load_jwks(jwks(lone)) == {"": ("oct", SECRET)}


UNTRUSTWORTHY = [
    (b"[]", "keys"),
    (b'{"keys": {}}', "keys"),
    (b'{"keys": []}', "no keys"),
    (b"not json", "not valid JSON"),
    (b'{"keys": [], "keys": []}', "duplicate member"),
    (b'{"keys": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested"),
    (jwks(rsa_jwk(), oct_jwk()), "mixes symmetric"),
    (jwks(rsa_jwk(), ec_jwk(kid="rsa")), "duplicate kid"),
    (jwks(rsa_jwk(kid=None), ec_jwk()), "non-empty string"),
    (
        jwks(
            rsa_jwk(kid=""),
        ),
        "non-empty string",
    ),
    (jwks(oct_jwk(SECRET[:31])), "HMAC key of 248 bits"),
    (jwks(oct_jwk(bytes(40), alg="HS384")), "need 384"),
    (jwks(oct_jwk(b"")), "HMAC key of 0 bits"),
    (jwks({"kty": "foo", "kid": "x"}), "unsupported JWK kty"),
    (jwks(["not", "an", "object"]), "not a JSON object"),
    (jwks(ec_jwk(crv="secp256k1")), "unsupported EC curve"),
    (jwks(ec_jwk(crv="P-384")), "not 48 bytes"),
    (jwks(ec_jwk(x=b64(bytes(32)))), "not on the curve"),
    (jwks(ec_jwk(alg="ES384")), "does not match curve"),
    (jwks(ed_jwk(crv="Ed448")), "unsupported OKP curve"),
    (jwks(rsa_jwk(use="enc")), "use"),
    (jwks(rsa_jwk(key_ops=["encrypt"])), "key_ops"),
    (jwks(rsa_jwk(key_ops=["verify", "wrapKey"])), "key_ops"),
    (jwks(rsa_jwk(key_ops="verify")), "key_ops"),
    (jwks(rsa_jwk(alg="HS256")), "not a supported signature alg for RSA"),
    (jwks(rsa_jwk(alg="RSA-OAEP")), "not a supported signature alg"),
    (jwks(ec_jwk(alg="ES521")), "not a supported signature alg"),
    (jwks(oct_jwk(alg="A256GCM")), "not a supported signature alg"),
    (jwks(rsa_jwk(n="AQAB=")), "not base64url"),
    (jwks(rsa_jwk(e=b64(b"\x01"))), "invalid RSA JWK"),
    (jwks(rsa_jwk(e=b64(b"\x01\x00\x00"))), "invalid RSA JWK"),
    (jwks(rsa_jwk(d=b64(b"secret"))), "private key material"),
    (jwks(ec_jwk(d=b64(b"secret"))), "private key material"),
    (jwks(ed_jwk(d=b64(b"secret"))), "private key material"),
    (jwks(rsa_jwk(p=b64(b"secret"))), "private key material"),
]


@pytest.mark.parametrize(
    ("document", "reason"), UNTRUSTWORTHY, ids=[reason for _, reason in UNTRUSTWORTHY]
)
def test_refuses_untrustworthy_sets(document: bytes, reason: str) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        load_jwks(document)
    assert reason in excinfo.value.message


def test_refuses_oversized_document() -> None:
    with pytest.raises(ConfigurationError, match="1 MiB"):
        load_jwks(b" " * (1024 * 1024 + 1))


def test_refuses_short_rsa_key() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    jwk = RSAAlgorithm.to_jwk(small, as_dict=True)
    assert isinstance(jwk, dict)
    with pytest.raises(ConfigurationError, match="1024 bits"):
        load_jwks(jwks(jwk))
    with pytest.raises(ConfigurationError, match="1024 bits"):
        check_public_key(small)


def test_check_public_key_refuses_private_and_unsupported_keys() -> None:
    for key in (RSA_KEY, EC_KEY, ED_KEY, ed448.Ed448PrivateKey.generate().public_key()):
        with pytest.raises(ConfigurationError, match="unsupported or non-public"):
            check_public_key(key)
    with pytest.raises(ConfigurationError, match="unsupported EC curve"):
        check_public_key(ec.generate_private_key(ec.SECP256K1()).public_key())


def test_roca_check_does_not_flag_fresh_keys() -> None:
    # The fingerprint test has a ~4e-9 false-positive rate; fresh OpenSSL keys must pass.
    for _ in range(3):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        assert check_public_key(key) == "RSA"


@pytest.mark.parametrize(
    ("alg", "kty", "key", "fits"),
    [
        ("RS256", "RSA", RSA_KEY.public_key(), True),
        ("PS512", "RSA", RSA_KEY.public_key(), True),
        ("ES256", "EC", EC_KEY.public_key(), True),
        ("ES384", "EC", EC_KEY.public_key(), False),
        ("EdDSA", "OKP", ED_KEY.public_key(), True),
        ("HS256", "oct", SECRET, True),
        ("HS512", "oct", SECRET, False),
        # Algorithm confusion: an HMAC alg never gets an asymmetric key, nor its bytes.
        ("HS256", "RSA", RSA_KEY.public_key(), False),
        ("HS256", "oct", RSA_KEY.public_key(), False),
        ("RS256", "oct", SECRET, False),
        ("RS256", "RSA", EC_KEY.public_key(), False),
        ("EdDSA", "OKP", RSA_KEY.public_key(), False),
        ("none", "oct", SECRET, False),
    ],
)
def test_key_fits(alg: str, kty: str, key: object, fits: bool) -> None:
    assert key_fits(alg, kty, key) is fits


@pytest.mark.parametrize("segment", ["AQAB=", "A", "a+b/", "Zm9v\n", "AB", "Zm9vYg=="])
def test_b64url_decode_is_strict(segment: str) -> None:
    # "AB" has non-zero unused bits: a second spelling of b"\x00" that must not verify.
    with pytest.raises(ValueError):
        b64url_decode(segment)


@given(st.binary(max_size=200))
def test_b64url_round_trip(data: bytes) -> None:
    assert b64url_decode(b64(data)) == data


@pytest.mark.parametrize("text", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1, "a": 2}', b"\xff"])
def test_strict_json_refuses(text: bytes) -> None:
    with pytest.raises(ValueError):
        strict_json_loads(text)


def _client(handler: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_fetch_jwks_over_https() -> None:
    body = jwks(ed_jwk())
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=body)

    assert fetch_jwks("https://idp.example/jwks.json", client=_client(handler)) == body
    assert seen == ["https://idp.example/jwks.json"]


@pytest.mark.parametrize(
    "url", ["http://idp.example/jwks.json", "ftp://idp.example/k", "https:///nohost", "jwks.json"]
)
def test_fetch_jwks_refuses_non_https(url: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("must not be fetched")

    with pytest.raises(ConfigurationError, match="https"):
        fetch_jwks(url, client=_client(handler))


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (httpx.Response(404), "HTTP 404"),
        (httpx.Response(302, headers={"location": "http://evil.example/"}), "HTTP 302"),
        (httpx.Response(200, content=b"x" * (1024 * 1024 + 1)), "1 MiB"),
    ],
)
def test_fetch_jwks_refuses_bad_responses(response: httpx.Response, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        fetch_jwks("https://idp.example/jwks.json", client=_client(lambda request: response))


def test_fetch_jwks_translates_transport_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("slow", request=request)

    with pytest.raises(ConfigurationError, match="ConnectTimeout") as excinfo:
        fetch_jwks("https://idp.example/jwks.json", client=_client(handler))
    assert isinstance(excinfo.value.__cause__, httpx.ConnectTimeout)
