"""TokenVerifier, verify_jws/verify_signature and the dev key (vault.tokens)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from vault.domain.principal import Principal, Role
from vault.errors import AuthenticationError, BadRequest, ConfigurationError
from vault.tokens import (
    TokenSettings,
    TokenVerifier,
    ensure_dev_key,
    issue_dev_token,
    verify_jws,
    verify_signature,
)

NOW = 1_800_000_000.0
ISSUER = "https://idp.example"
AUDIENCE = "tvault"
MESSAGE = "authentication failed"

ED_KEY = ed25519.Ed25519PrivateKey.generate()
OTHER_ED_KEY = ed25519.Ed25519PrivateKey.generate()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_pem(key: Any) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def claims(**changes: Any) -> dict[str, Any]:
    """A valid claim set; a change to ``None`` removes that claim."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice@example.com",
        "roles": ["reader"],
        "purposes": ["Support-Ticket"],
        "datasets": ["laptops"],
        "iat": int(NOW) - 60,
        "nbf": int(NOW) - 60,
        "exp": int(NOW) + 600,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(
    payload: dict[str, Any] | None = None,
    *,
    key: Any = ED_KEY,
    alg: str = "EdDSA",
    headers: dict[str, Any] | None = None,
) -> str:
    return jwt.encode(
        claims() if payload is None else payload,
        key,
        algorithm=alg,
        headers={"kid": "issuer"} if headers is None else headers,
    )


def raw_token(header: dict[str, Any], payload: bytes | dict[str, Any], signature: bytes) -> str:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return ".".join((b64(json.dumps(header).encode()), b64(body), b64(signature)))


def hs256(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    unsigned = raw_token(header, payload, b"").rstrip(".")
    mac = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64(mac)}"


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("keys")
    (root / "issuer.pem").write_bytes(public_pem(ED_KEY))
    (root / "rsa-issuer.pem").write_bytes(public_pem(RSA_KEY))
    return root


@pytest.fixture(scope="module")
def base_settings(keydir: Path) -> TokenSettings:
    return TokenSettings(
        algorithms=("EdDSA",),
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway_seconds=30,
        max_ttl_seconds=3600,
        public_key_files=(keydir / "issuer.pem",),
        jwks=None,
        dev_key_path=None,
    )


@pytest.fixture(scope="module")
def verifier(base_settings: TokenSettings) -> TokenVerifier:
    return TokenVerifier(base_settings, now=lambda: NOW)


def rejects(verifier: TokenVerifier, token: Any) -> str:
    """Assert the uniform failure and return the internal reason."""
    with pytest.raises(AuthenticationError) as excinfo:
        verifier.verify(token)
    assert excinfo.value.message == MESSAGE
    assert str(excinfo.value) == MESSAGE
    assert isinstance(excinfo.value.details, str)
    assert excinfo.value.details
    return excinfo.value.details


# -- acceptance ------------------------------------------------------------------------------


def test_valid_token_gives_principal(verifier: TokenVerifier) -> None:
    principal = verifier.verify(sign())
    assert principal == Principal(
        sub="alice@example.com",
        roles=frozenset({Role.READER}),
        purposes=frozenset({"support_ticket"}),
        datasets=frozenset({"laptops"}),
    )


def test_unlimited_token_has_no_purpose_or_dataset_limit(verifier: TokenVerifier) -> None:
    principal = verifier.verify(sign(claims(purposes=None, datasets=None, roles=["admin"])))
    assert principal.purposes is None
    assert principal.datasets is None
    assert principal.roles == frozenset({Role.ADMIN})


def test_empty_purpose_list_limits_to_nothing(verifier: TokenVerifier) -> None:
    assert verifier.verify(sign(claims(purposes=[]))).purposes == frozenset()


def test_leeway_applies_to_exp_and_nbf(verifier: TokenVerifier) -> None:
    verifier.verify(sign(claims(exp=int(NOW) - 10)))
    verifier.verify(sign(claims(nbf=int(NOW) + 10, iat=int(NOW) + 10)))


def test_lone_key_needs_no_kid(verifier: TokenVerifier) -> None:
    assert verifier.verify(sign(headers={})).sub == "alice@example.com"


def test_audience_list_containing_ours_is_accepted(verifier: TokenVerifier) -> None:
    verifier.verify(sign(claims(aud=["other", AUDIENCE])))


# -- rejection: each case names the reason it must be refused for -------------------------------


def _case_token_builders() -> list[tuple[str, Callable[[], Any], str]]:
    ok = claims()
    return [
        ("expired", lambda: sign(claims(exp=int(NOW) - 31)), "expired"),
        ("nbf in future", lambda: sign(claims(nbf=int(NOW) + 31)), "not yet valid"),
        ("iat in future", lambda: sign(claims(iat=int(NOW) + 31)), "issued in the future"),
        ("wrong iss", lambda: sign(claims(iss="https://evil.example")), "InvalidIssuerError"),
        ("wrong aud", lambda: sign(claims(aud="other")), "InvalidAudienceError"),
        *[
            (f"missing {name}", lambda n=name: sign(claims(**{n: None})), "MissingRequiredClaim")
            for name in ("exp", "iat", "nbf", "iss", "aud", "sub")
        ],
        ("missing roles", lambda: sign(claims(roles=None)), "roles missing"),
        ("unknown role", lambda: sign(claims(roles=["reader", "root"])), "roles empty or unknown"),
        ("empty roles", lambda: sign(claims(roles=[])), "roles empty or unknown"),
        ("roles as string", lambda: sign(claims(roles="reader")), "not a list"),
        ("bad purpose", lambda: sign(claims(purposes=["x;drop"])), "invalid purpose"),
        ("purposes not list", lambda: sign(claims(purposes="support")), "not a list"),
        ("datasets not list", lambda: sign(claims(datasets={"a": 1})), "not a list"),
        ("empty dataset", lambda: sign(claims(datasets=[""])), "invalid dataset"),
        ("empty sub", lambda: sign(claims(sub="")), "bad sub"),
        ("long sub", lambda: sign(claims(sub="a" * 257)), "bad sub"),
        ("sub with newline", lambda: sign(claims(sub="alice\nadmin")), "bad sub"),
        ("sub not string", lambda: sign(claims(sub=42)), "InvalidSubjectError"),
        ("exp string", lambda: sign(claims(exp="2100-01-01")), "exp is not a number"),
        ("exp bool", lambda: sign(claims(exp=True)), "exp is not a number"),
        ("exp huge", lambda: sign(claims(exp=10**400)), "exp out of range"),
        ("ttl over max", lambda: sign(claims(exp=int(NOW) - 60 + 3600 + 31)), "lifetime"),
        (
            "ttl over max from now",
            lambda: sign(claims(iat=int(NOW) + 20, nbf=int(NOW), exp=int(NOW) + 3600 + 31)),
            "lifetime",
        ),
        (
            "alg none",
            lambda: raw_token({"alg": "none", "kid": "issuer"}, ok, b"") + "AA",
            "alg not allowed",
        ),
        ("alg none unsigned", lambda: raw_token({"alg": "none"}, ok, b""), "not a compact JWS"),
        (
            "HS256 with public key PEM as secret",
            lambda: hs256({"alg": "HS256", "kid": "issuer"}, ok, public_pem(ED_KEY)),
            "alg not allowed",
        ),
        (
            "HS256 with raw public key as secret",
            lambda: hs256({"alg": "HS256"}, ok, ED_KEY.public_key().public_bytes_raw()),
            "alg not allowed",
        ),
        ("tampered signature", lambda: _tamper(sign(), part=2), "bad signature"),
        ("tampered payload", lambda: _swap_payload(sign(), claims(roles=["admin"])), "bad sig"),
        ("wrong kid", lambda: sign(headers={"kid": "someone-else"}), "unknown kid"),
        (
            "non-string kid",
            lambda: _with_header(b'{"alg":"EdDSA","kid":7}'),
            "unknown kid",
        ),
        ("different key", lambda: sign(key=OTHER_ED_KEY), "bad signature"),
        (
            "oversized",
            lambda: sign(claims(datasets=[f"d{i}" for i in range(2000)])),
            "longer than 8 KiB",
        ),
        (
            "embedded jwk",
            lambda: sign(
                key=OTHER_ED_KEY,
                headers={"kid": "issuer", "jwk": OKPAlgorithm.to_jwk(OTHER_ED_KEY.public_key())},
            ),
            "refused header: jwk",
        ),
        ("jku", lambda: sign(headers={"jku": "https://evil.example/k"}), "refused header: jku"),
        ("x5u", lambda: sign(headers={"x5u": "https://evil.example/c"}), "refused header: x5u"),
        ("x5c", lambda: sign(headers={"x5c": ["MIIB"]}), "refused header: x5c"),
        ("crit", lambda: sign(headers={"crit": ["exp"], "exp": 1}), "refused header: crit"),
        (
            "json serialization",
            lambda: json.dumps({"payload": "e30", "signatures": []}),
            "not a compact JWS",
        ),
        ("four parts", lambda: sign() + ".AAAA", "not a compact JWS"),
        ("padded base64", lambda: _pad(sign()), "not a compact JWS"),
        ("bytes token", lambda: sign().encode(), "not a string"),
        ("empty", lambda: "", "not a compact JWS"),
        (
            "duplicate claim",
            lambda: _resign(b'{"sub":"alice","sub":"bob","roles":["admin"]}'),
            "payload is not strict JSON",
        ),
        ("NaN exp", lambda: _resign(json.dumps(claims(exp=float("nan"))).encode()), "strict"),
        ("payload not object", lambda: _resign(b"[1, 2]"), "not a JSON object"),
        ("header not object", lambda: _with_header(b'["EdDSA"]'), "header is not a JSON object"),
    ]


def _tamper(token: str, *, part: int) -> str:
    parts = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(parts[part] + "=="))
    raw[0] ^= 1
    parts[part] = b64(bytes(raw))
    return ".".join(parts)


def _swap_payload(token: str, payload: dict[str, Any]) -> str:
    head, _, sig = token.split(".")
    return f"{head}.{b64(json.dumps(payload).encode())}.{sig}"


def _pad(token: str) -> str:
    head, body, sig = token.split(".")
    return f"{head}.{body}{'=' * (-len(body) % 4) or '=='}.{sig}"


def _resign(payload: bytes) -> str:
    """Sign arbitrary payload bytes with the trusted key, bypassing PyJWT's JSON encoder."""
    head = b64(json.dumps({"alg": "EdDSA", "kid": "issuer"}).encode())
    signing_input = f"{head}.{b64(payload)}"
    return f"{signing_input}.{b64(ED_KEY.sign(signing_input.encode()))}"


def _with_header(header: bytes) -> str:
    signing_input = f"{b64(header)}.{b64(json.dumps(claims()).encode())}"
    return f"{signing_input}.{b64(ED_KEY.sign(signing_input.encode()))}"


CASES = _case_token_builders()


@pytest.mark.parametrize(("build", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rejected_uniformly(verifier: TokenVerifier, build: Callable[[], Any], reason: str) -> None:
    assert reason in rejects(verifier, build())


def test_one_message_for_every_failure(verifier: TokenVerifier) -> None:
    messages = set()
    for _, build, _ in CASES:
        with pytest.raises(AuthenticationError) as excinfo:
            verifier.verify(build())
        messages.add(str(excinfo.value))
    assert messages == {MESSAGE}


def test_pyjwt_errors_are_chained(verifier: TokenVerifier) -> None:
    with pytest.raises(AuthenticationError) as excinfo:
        verifier.verify(sign(claims(iss="https://evil.example")))
    assert isinstance(excinfo.value.__cause__, jwt.InvalidIssuerError)


# -- key configurations ------------------------------------------------------------------------


def test_rsa_config_refuses_hs256_signed_with_its_public_key(
    base_settings: TokenSettings, keydir: Path
) -> None:
    settings_ = dataclasses.replace(
        base_settings, algorithms=("RS256",), public_key_files=(keydir / "rsa-issuer.pem",)
    )
    verifier = TokenVerifier(settings_, now=lambda: NOW)
    assert verifier.verify(sign(key=RSA_KEY, alg="RS256", headers={"kid": "rsa-issuer"})).sub
    forged = hs256({"alg": "HS256", "kid": "rsa-issuer"}, claims(), public_pem(RSA_KEY))
    assert "alg not allowed" in rejects(verifier, forged)
    # Even if a caller of the core allows HS256, the RSA key never becomes an HMAC secret.
    keys = {"rsa-issuer": ("RSA", RSA_KEY.public_key())}
    with pytest.raises(ConfigurationError, match="mix"):
        verify_jws(forged, keys, ("RS256", "HS256"))
    with pytest.raises(AuthenticationError) as excinfo:
        verify_jws(forged, keys, ("HS256",))
    assert excinfo.value.details == "key does not fit alg HS256"


@pytest.mark.parametrize(
    ("algorithms", "reason"),
    [
        (("RS256", "HS256"), "mix HMAC"),
        (("none",), "unsupported"),
        (("ES521",), "unsupported"),
        ((), "no JWT algorithms"),
    ],
)
def test_bad_algorithm_config(
    base_settings: TokenSettings, algorithms: tuple[str, ...], reason: str
) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        TokenVerifier(dataclasses.replace(base_settings, algorithms=algorithms))


def test_no_key_at_all(base_settings: TokenSettings) -> None:
    with pytest.raises(ConfigurationError, match="no JWT verification key"):
        TokenVerifier(dataclasses.replace(base_settings, public_key_files=()))


def test_keys_unusable_with_the_algorithms(base_settings: TokenSettings) -> None:
    with pytest.raises(ConfigurationError, match="no JWT verification key usable with ES256"):
        TokenVerifier(dataclasses.replace(base_settings, algorithms=("ES256",)))


def test_pem_policy(base_settings: TokenSettings, tmp_path: Path) -> None:
    private = tmp_path / "private.pem"
    private.write_bytes(
        ED_KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    weak = tmp_path / "weak.pem"
    weak.write_bytes(public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    for path, reason in (
        (private, "not a PEM public key"),
        (weak, "1024 bits"),
        (tmp_path / "absent.pem", "cannot read"),
    ):
        with pytest.raises(ConfigurationError, match=reason):
            TokenVerifier(dataclasses.replace(base_settings, public_key_files=(path,)))


def test_jwks_file_and_kid_selection(base_settings: TokenSettings, tmp_path: Path) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks_doc = {
        "keys": [
            {**json.loads(ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "ec-1", "use": "sig"},
            {**json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key())), "kid": "rsa-1"},
        ]
    }
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks_doc))
    settings_ = dataclasses.replace(
        base_settings, algorithms=("ES256", "RS256"), public_key_files=(), jwks=str(path)
    )
    verifier = TokenVerifier(settings_, now=lambda: NOW)
    assert verifier.verify(sign(key=ec_key, alg="ES256", headers={"kid": "ec-1"})).sub
    assert verifier.verify(sign(key=RSA_KEY, alg="RS256", headers={"kid": "rsa-1"})).sub
    # The kid picks the key; an RS256 token naming the EC key fails the key/alg fit.
    wrong = sign(key=RSA_KEY, alg="RS256", headers={"kid": "ec-1"})
    assert rejects(verifier, wrong) == "key does not fit alg RS256"
    assert "kid required" in rejects(verifier, sign(key=RSA_KEY, alg="RS256", headers={}))


@pytest.mark.parametrize("source", ["http://idp.example/jwks.json", "file:///etc/jwks.json"])
def test_jwks_source_must_be_path_or_https(base_settings: TokenSettings, source: str) -> None:
    with pytest.raises(ConfigurationError, match="https"):
        TokenVerifier(dataclasses.replace(base_settings, jwks=source))


def test_hmac_deployment(base_settings: TokenSettings, tmp_path: Path) -> None:
    secret = bytes(range(48))
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": b64(secret), "kid": "shared"}]}))
    settings_ = dataclasses.replace(
        base_settings, algorithms=("HS256", "HS384"), public_key_files=(), jwks=str(path)
    )
    verifier = TokenVerifier(settings_, now=lambda: NOW)
    assert verifier.verify(sign(key=secret, alg="HS384", headers={"kid": "shared"})).sub
    hs512 = sign(key=secret + bytes(16), alg="HS512", headers={"kid": "shared"})
    assert "alg not allowed" in rejects(verifier, hs512)
    with pytest.raises(ConfigurationError, match="mix HMAC secrets with public keys"):
        TokenVerifier(
            dataclasses.replace(settings_, public_key_files=base_settings.public_key_files)
        )


# -- dev key -----------------------------------------------------------------------------------


def test_ensure_dev_key_creates_once_with_private_modes(tmp_path: Path) -> None:
    path = tmp_path / "home" / "keys" / "dev-token.pem"
    assert ensure_dev_key(path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    first = path.read_bytes()
    assert ensure_dev_key(path) is False
    assert path.read_bytes() == first
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind
    key = serialization.load_pem_private_key(first, password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)


def test_dev_token_round_trip(base_settings: TokenSettings, tmp_path: Path) -> None:
    path = tmp_path / "dev.pem"
    ensure_dev_key(path)
    token = issue_dev_token(
        path,
        sub="ops",
        roles=["auditor", "admin"],
        purposes=["Security Audit"],
        datasets=["laptops"],
        ttl_seconds=600,
        issuer=ISSUER,
        audience=AUDIENCE,
        now=NOW,
    )
    header = jwt.get_unverified_header(token)
    assert header["kid"] == "dev"
    assert header["alg"] == "EdDSA"
    verifier = TokenVerifier(dataclasses.replace(base_settings, dev_key_path=path), now=lambda: NOW)
    assert verifier.verify(token) == Principal(
        sub="ops",
        roles=frozenset({Role.AUDITOR, Role.ADMIN}),
        purposes=frozenset({"security_audit"}),
        datasets=frozenset({"laptops"}),
    )
    # Two keys are trusted now, so a kid-less token no longer picks one.
    assert "kid required" in rejects(verifier, sign(headers={}))
    later = TokenVerifier(verifier_settings(base_settings, path), now=lambda: NOW + 631)
    assert rejects(later, token) == "expired"


def verifier_settings(base: TokenSettings, dev_key: Path) -> TokenSettings:
    return dataclasses.replace(base, public_key_files=(), dev_key_path=dev_key)


def test_dev_token_without_limits_omits_claims(
    base_settings: TokenSettings, tmp_path: Path
) -> None:
    path = tmp_path / "dev.pem"
    ensure_dev_key(path)
    token = issue_dev_token(
        path,
        sub="c1",
        roles=["collector"],
        ttl_seconds=60,
        issuer=ISSUER,
        audience=AUDIENCE,
        now=NOW,
    )
    payload = jwt.decode(token, options={"verify_signature": False})
    assert "purposes" not in payload
    assert "datasets" not in payload
    principal = TokenVerifier(verifier_settings(base_settings, path), now=lambda: NOW).verify(token)
    assert principal.purposes is None
    assert principal.datasets is None


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"roles": ["root"]}, BadRequest),
        ({"roles": []}, BadRequest),
        ({"ttl_seconds": 0}, BadRequest),
        ({"ttl_seconds": -5}, BadRequest),
        ({"sub": ""}, BadRequest),
        ({"purposes": ["bad;purpose"]}, BadRequest),
    ],
)
def test_issue_dev_token_validates(tmp_path: Path, changes: dict[str, Any], error: type) -> None:
    path = tmp_path / "dev.pem"
    ensure_dev_key(path)
    arguments: dict[str, Any] = {
        "sub": "x",
        "roles": ["reader"],
        "ttl_seconds": 60,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "now": NOW,
        **changes,
    }
    with pytest.raises(error):
        issue_dev_token(path, **arguments)


def test_issue_dev_token_needs_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        issue_dev_token(
            tmp_path / "absent.pem",
            sub="x",
            roles=["reader"],
            ttl_seconds=60,
            issuer=ISSUER,
            audience=AUDIENCE,
            now=NOW,
        )


def test_dev_key_must_exist_for_verifier(base_settings: TokenSettings, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        TokenVerifier(dataclasses.replace(base_settings, dev_key_path=tmp_path / "absent.pem"))


def test_dev_kid_cannot_be_claimed_twice(base_settings: TokenSettings, tmp_path: Path) -> None:
    path = tmp_path / "dev.pem"
    ensure_dev_key(path)
    (tmp_path / "x").mkdir()
    clash = tmp_path / "x" / "dev.pem"
    clash.write_bytes(public_pem(OTHER_ED_KEY))
    settings_ = dataclasses.replace(base_settings, public_key_files=(clash,), dev_key_path=path)
    with pytest.raises(ConfigurationError, match="share the kid 'dev'"):
        TokenVerifier(settings_)


# -- the core functions ------------------------------------------------------------------------


def test_verify_signature_and_verify_jws() -> None:
    keys = {"issuer": ("OKP", ED_KEY.public_key())}
    token = sign()
    assert verify_signature(token, keys, ("EdDSA",)) == claims()
    assert (
        verify_jws(token, keys, ("EdDSA",)) == json.dumps(claims(), separators=(",", ":")).encode()
    )
    not_json = _resign(b"hello")
    assert verify_jws(not_json, keys, ("EdDSA",)) == b"hello"
    with pytest.raises(AuthenticationError):
        verify_signature(not_json, keys, ("EdDSA",))


# -- property: nothing but AuthenticationError, whatever arrives --------------------------------

_B64_TEXT = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_HEADERS = st.dictionaries(
    st.sampled_from(["alg", "kid", "typ", "crit", "jwk", "b64", "x5c", "zip"]),
    st.one_of(
        st.sampled_from(["EdDSA", "HS256", "none", "issuer", "dev"]),
        st.integers(),
        st.none(),
        st.lists(st.text(max_size=5), max_size=3),
    ),
)
_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


def _verify_only_auth_errors(verifier: TokenVerifier, token: Any) -> None:
    # Any other exception escapes pytest.raises and fails the property.
    with pytest.raises(AuthenticationError) as excinfo:
        verifier.verify(token)
    assert str(excinfo.value) == MESSAGE


_PROPERTY = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_PROPERTY
@given(st.binary(max_size=9000))
def test_random_bytes_only_fail_authentication(verifier: TokenVerifier, data: bytes) -> None:
    _verify_only_auth_errors(verifier, data)
    _verify_only_auth_errors(verifier, data.decode("latin-1"))


@_PROPERTY
@given(st.lists(st.one_of(_B64_TEXT, st.text(max_size=30)), min_size=0, max_size=6))
def test_random_dotted_strings_only_fail_authentication(
    verifier: TokenVerifier, parts: list[str]
) -> None:
    _verify_only_auth_errors(verifier, ".".join(parts))


@_PROPERTY
@given(_HEADERS, _JSONISH, st.binary(max_size=80), st.booleans())
def test_structured_garbage_only_fails_authentication(
    verifier: TokenVerifier, header: dict[str, Any], payload: Any, signature: bytes, sign_it: bool
) -> None:
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(payload).encode())
    if sign_it:  # correctly signed by the trusted key: only the claims can fail now
        signature = ED_KEY.sign(f"{head}.{body}".encode())
    _verify_only_auth_errors(verifier, f"{head}.{body}.{b64(signature)}")


_CLAIM_VALUES = {name: st.one_of(st.just(value), _JSONISH) for name, value in claims().items()}


@_PROPERTY
@given(st.fixed_dictionaries({}, optional=_CLAIM_VALUES))
def test_signed_claim_sets_give_principal_or_uniform_failure(
    verifier: TokenVerifier, payload: dict[str, Any]
) -> None:
    # Correctly signed, so every claim check is reached with a mix of good and junk values.
    try:
        outcome: object = verifier.verify(_resign(json.dumps(payload).encode()))
    except AuthenticationError as exc:
        outcome = str(exc)
    assert outcome == MESSAGE or isinstance(outcome, Principal)


# -- remembered tokens -------------------------------------------------------------------------


def _count_full_checks(verifier: TokenVerifier, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens that go through both verification layers from now on."""
    calls: list[str] = []
    real = verifier._verify

    def counting(token: str) -> Any:
        calls.append(token)
        return real(token)

    monkeypatch.setattr(verifier, "_verify", counting)
    return calls


def test_a_verified_token_is_checked_once_then_remembered(
    base_settings: TokenSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [NOW]
    fresh = TokenVerifier(base_settings, now=lambda: clock[0])
    calls = _count_full_checks(fresh, monkeypatch)
    token = sign()
    first, second = fresh.verify(token), fresh.verify(token)
    assert first == second
    assert len(calls) == 1
    # The time claims are checked again on every use: expiry (plus leeway) still ends it.
    clock[0] = NOW + 600 + 31
    assert rejects(fresh, token) == "expired"
    assert len(calls) == 1


def test_failed_tokens_are_never_remembered(
    base_settings: TokenSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = TokenVerifier(base_settings, now=lambda: NOW)
    calls = _count_full_checks(fresh, monkeypatch)
    forged = _tamper(sign(), part=2)
    for _ in range(3):
        rejects(fresh, forged)
    assert len(calls) == 3
    assert not fresh._verified


def test_remembered_tokens_are_bounded(
    base_settings: TokenSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vault.tokens.verifier as module

    monkeypatch.setattr(module, "_MAX_VERIFIED", 3)
    fresh = TokenVerifier(base_settings, now=lambda: NOW)
    for n in range(10):
        fresh.verify(sign(claims(sub=f"user-{n}")))
        assert len(fresh._verified) <= 3
    assert all(len(key) == 32 for key in fresh._verified)  # digests, not tokens


def test_remembered_answers_only_for_verified_and_current_tokens(
    base_settings: TokenSettings,
) -> None:
    clock = [NOW]
    fresh = TokenVerifier(base_settings, now=lambda: clock[0])
    token = sign()
    assert fresh.remembered(token) is None  # never verified: the full path decides
    principal = fresh.verify(token)
    assert fresh.remembered(token) == principal
    assert fresh.remembered(_tamper(token, part=2)) is None
    assert fresh.remembered(b"not a string") is None  # type: ignore[arg-type]
    clock[0] = NOW + 600 + 31
    assert fresh.remembered(token) is None  # expired: verify() reports (and audits) it
