"""Bearer-token verification: compact JWS in, :class:`Principal` out (DESIGN.md §4).

Every failure is one ``AuthenticationError("authentication failed")``; the reason travels in
``exc.details`` for the audit log only, so a client cannot probe which check tripped.

Verification runs in two layers. :func:`verify_jws` is the vault's own gate, also exercised by
the Wycheproof vectors: size and shape, strict base64url, header policy, pinned algorithm, key
selection by ``kid``, key/algorithm fit, then the signature. Only a token that passed it reaches
``jwt.decode`` (which re-checks the signature against the same key and checks ``iss``, ``aud``
and the required claims). Time claims are checked here against the injected clock, because
PyJWT reads the wall clock itself.

A token that passed both layers is remembered (by its SHA-256, never the token itself; at most
:data:`_MAX_VERIFIED` tokens per process, then all are forgotten at once) with its principal and
time claims, so a collector sending the same token on every request pays for one signature
check, not two per request. The time claims are checked again on every use; a token that
failed is never remembered, so every failure goes through every check (and is audited).
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from jwt.types import Options

from vault.domain.principal import Principal, Role
from vault.domain.purposes import normalize_purpose
from vault.errors import AuthenticationError, ConfigurationError
from vault.tokens.devkey import DEV_KID, load_dev_public_key
from vault.tokens.jwks import (
    ALGORITHM_KTY,
    SUPPORTED_ALGORITHMS,
    b64url_decode,
    check_public_key,
    fetch_jwks,
    key_fits,
    load_jwks,
    strict_json_loads,
)

__all__ = [
    "TokenSettings",
    "TokenVerifier",
    "validate_algorithms",
    "verify_jws",
    "verify_signature",
]

_MESSAGE = "authentication failed"
_MAX_TOKEN_CHARS = 8 * 1024
# Three base64url segments; the payload may be empty (RFC 7515 §7.1), header and signature not.
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+")
# Embedded or remote keys let the token choose its own verifier; "crit" and "b64" change how
# the token must be processed. None of them has a place in a bearer token for this vault.
_REFUSED_HEADERS = frozenset({"crit", "b64", "jwk", "jku", "x5u", "x5c"})
_REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub"]
_MAX_SUB_CHARS = 256
#: Bound on the verified tokens remembered per process (see the module docstring).
_MAX_VERIFIED = 4096
_MAX_DATASET_CHARS = 256


def _fail(reason: str) -> AuthenticationError:
    return AuthenticationError(_MESSAGE, details=reason)


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """What a :class:`TokenVerifier` trusts; built once from ``Settings`` by the composition root.

    ``max_ttl_seconds`` refuses tokens whose ``exp - iat`` (and ``exp - now``) exceeds it plus
    the leeway. ``jwks`` is a file path or an ``https://`` URL fetched once at construction.
    PEM files get the file stem as ``kid``; the dev key (when ``dev_key_path`` is set) gets
    ``"dev"``.
    """

    algorithms: tuple[str, ...]
    issuer: str
    audience: str
    leeway_seconds: int
    max_ttl_seconds: int
    public_key_files: tuple[Path, ...]
    jwks: str | None
    dev_key_path: Path | None


def validate_algorithms(algorithms: tuple[str, ...]) -> tuple[str, ...]:
    """Return ``algorithms`` if usable; ``ConfigurationError`` if empty, unknown or mixed.

    Mixing HS* with asymmetric algorithms is refused outright (RFC 8725 §2.1): it is the
    configuration under which a public key can be replayed as an HMAC secret.
    """
    if not algorithms:
        raise ConfigurationError("no JWT algorithms configured")
    unknown = sorted(set(algorithms) - SUPPORTED_ALGORITHMS)
    if unknown:
        raise ConfigurationError(f"unsupported JWT algorithms: {', '.join(unknown)}")
    if len({ALGORITHM_KTY[alg] == "oct" for alg in algorithms}) > 1:
        raise ConfigurationError("JWT algorithms mix HMAC (HS*) with asymmetric algorithms")
    return tuple(algorithms)


@dataclass(frozen=True, slots=True)
class _Checked:
    key: Any
    payload: bytes


def _decode_object(raw: bytes, part: str) -> dict[str, Any]:
    try:
        value = strict_json_loads(raw)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _fail(f"{part} is not strict JSON") from exc
    if not isinstance(value, dict):
        raise _fail(f"{part} is not a JSON object")
    return value


def _select_key(header: Mapping[str, Any], keys: Mapping[str, tuple[str, Any]]) -> tuple[str, Any]:
    if "kid" in header:
        kid = header["kid"]
        if not isinstance(kid, str) or not kid or kid not in keys:
            raise _fail("unknown kid")
        return keys[kid]
    if len(keys) != 1:
        raise _fail("kid required when several keys are trusted")
    return next(iter(keys.values()))


def _check(
    token: object, keys: Mapping[str, tuple[str, Any]], algorithms: tuple[str, ...]
) -> _Checked:
    if not isinstance(token, str):
        raise _fail("token is not a string")
    if len(token) > _MAX_TOKEN_CHARS:
        raise _fail("token longer than 8 KiB")
    if not _COMPACT.fullmatch(token):
        raise _fail("not a compact JWS")
    header_b64, payload_b64, signature_b64 = token.split(".")
    try:
        header_raw = b64url_decode(header_b64)
        payload = b64url_decode(payload_b64)
        signature = b64url_decode(signature_b64)
    except ValueError as exc:
        raise _fail("bad base64url") from exc
    header = _decode_object(header_raw, "header")
    alg = header.get("alg")
    # The allow-list comes from configuration; the header only picks within it.
    if not isinstance(alg, str) or alg not in algorithms:
        raise _fail(f"alg not allowed: {alg!r:.24}")  # repr: no raw control chars in logs
    refused = _REFUSED_HEADERS & header.keys()
    if refused:
        raise _fail(f"refused header: {','.join(sorted(refused))}")
    kty, key = _select_key(header, keys)
    if not key_fits(alg, kty, key):
        raise _fail(f"key does not fit alg {alg}")
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    try:
        valid = jwt.get_algorithm_by_name(alg).verify(signing_input, key, signature)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise _fail(f"signature check error: {type(exc).__name__}") from exc
    if not valid:
        raise _fail("bad signature")
    return _Checked(key=key, payload=payload)


def verify_jws(
    token: str, keys: Mapping[str, tuple[str, Any]], algorithms: tuple[str, ...]
) -> bytes:
    """Check a compact JWS's shape, header and signature; return the raw payload bytes.

    No claim is examined (the payload need not be JSON). ``keys`` is ``kid -> (kty, key)`` as
    from :func:`~vault.tokens.jwks.load_jwks`. Raises ``AuthenticationError`` for every token
    problem and ``ConfigurationError`` for unusable ``algorithms``.
    """
    return _check(token, keys, validate_algorithms(algorithms)).payload


def verify_signature(
    token: str, keys: Mapping[str, tuple[str, Any]], algorithms: tuple[str, ...]
) -> dict[str, Any]:
    """Like :func:`verify_jws`, but the payload must be a (strict) JSON object, returned parsed."""
    return _decode_object(verify_jws(token, keys, algorithms), "payload")


def _load_pem(path: Path) -> tuple[str, Any]:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise ConfigurationError(f"cannot read JWT public key {path}: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"{path} is not a PEM public key") from exc
    try:
        return check_public_key(key), key
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc.message}") from exc


def _load_jwks_source(source: str) -> dict[str, tuple[str, Any]]:
    if source.startswith("https://"):
        return load_jwks(fetch_jwks(source))
    if "://" in source:
        raise ConfigurationError("JWKS must be a file path or an https:// URL")
    try:
        return load_jwks(Path(source).read_bytes())
    except OSError as exc:
        raise ConfigurationError(f"cannot read JWKS file {source}: {exc}") from exc


def _collect_keys(settings: TokenSettings) -> dict[str, tuple[str, Any]]:
    sources: list[tuple[str, tuple[str, Any]]] = [
        (path.stem, _load_pem(path)) for path in settings.public_key_files
    ]
    if settings.jwks is not None:
        sources.extend(_load_jwks_source(settings.jwks).items())
    if settings.dev_key_path is not None:
        dev_key = load_dev_public_key(settings.dev_key_path)
        sources.append((DEV_KID, (check_public_key(dev_key), dev_key)))
    keys: dict[str, tuple[str, Any]] = {}
    for kid, entry in sources:
        if kid in keys:
            raise ConfigurationError(f"two JWT verification keys share the kid {kid!r}")
        keys[kid] = entry
    if len({kty == "oct" for kty, _ in keys.values()}) > 1:
        raise ConfigurationError("JWT keys mix HMAC secrets with public keys")
    return keys


def _time_claim(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"{name} is not a number")
    try:
        number = float(value)
    except OverflowError as exc:
        raise _fail(f"{name} out of range") from exc
    if not math.isfinite(number):
        raise _fail(f"{name} out of range")
    return number


def _string_list(claims: Mapping[str, Any], name: str) -> list[str]:
    value = claims[name]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _fail(f"{name} is not a list of strings")
    return value


def _principal(claims: Mapping[str, Any]) -> Principal:
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub or len(sub) > _MAX_SUB_CHARS or not sub.isprintable():
        # sub lands in audit entries verbatim; control characters would forge log lines.
        raise _fail("bad sub")
    if "roles" not in claims:
        raise _fail("roles missing")
    role_names = _string_list(claims, "roles")
    known = {role.value for role in Role}
    if not role_names or not set(role_names) <= known:
        raise _fail("roles empty or unknown")
    purposes: frozenset[str] | None = None
    if "purposes" in claims:
        normalized = {normalize_purpose(raw) for raw in _string_list(claims, "purposes")}
        if None in normalized:
            raise _fail("invalid purpose")
        purposes = frozenset(p for p in normalized if p is not None)
    datasets: frozenset[str] | None = None
    if "datasets" in claims:
        names = _string_list(claims, "datasets")
        if not all(0 < len(n) <= _MAX_DATASET_CHARS and n.isprintable() for n in names):
            raise _fail("invalid dataset name")
        datasets = frozenset(names)
    return Principal(
        sub=sub,
        roles=frozenset(Role(name) for name in role_names),
        purposes=purposes,
        datasets=datasets,
    )


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenVerifier:
    """Turns a bearer token into a :class:`Principal`, or raises one uniform 401 error.

    Keys are loaded once, at construction; a key that fits none of the configured algorithms is
    dropped. Construction raises ``ConfigurationError`` for bad settings or when no usable key
    remains.
    """

    def __init__(self, settings: TokenSettings, *, now: Callable[[], float] = time.time) -> None:
        self._algorithms = validate_algorithms(settings.algorithms)
        if not settings.issuer or not settings.audience:
            raise ConfigurationError("JWT issuer and audience must be set")
        if settings.leeway_seconds < 0 or settings.max_ttl_seconds <= 0:
            raise ConfigurationError("JWT leeway must be >= 0 and max TTL > 0")
        self._settings = settings
        self._now = now
        self._keys = {
            kid: (kty, key)
            for kid, (kty, key) in _collect_keys(settings).items()
            if any(key_fits(alg, kty, key) for alg in self._algorithms)
        }
        if not self._keys:
            raise ConfigurationError(
                f"no JWT verification key usable with {', '.join(self._algorithms)}"
            )
        self._verified: dict[bytes, tuple[Principal, Mapping[str, Any]]] = {}
        self._verified_lock = threading.Lock()
        # PyJWT's own time checks read the wall clock; ours use the injected one instead.
        self._options: Options = {
            "require": list(_REQUIRED_CLAIMS),
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "enforce_minimum_key_length": True,
        }

    def remembered(self, token: str) -> Principal | None:
        """The caller behind ``token`` if it was verified before and is still within its time
        claims; ``None`` otherwise (then :meth:`verify` decides). Never raises, no I/O."""
        known = self._verified.get(_digest(token)) if isinstance(token, str) else None
        if known is None:
            return None
        principal, times = known
        try:
            self._check_times(times)
        except AuthenticationError:
            return None
        return principal

    def verify(self, token: str) -> Principal:
        """Return the caller behind ``token``; ``AuthenticationError`` for any problem at all."""
        if not isinstance(token, str):
            return self._verify(token)[0]  # fails closed, as any malformed token
        digest = _digest(token)
        known = self._verified.get(digest)
        if known is not None:
            principal, times = known
            self._check_times(times)
            return principal
        principal, times = self._verify(token)
        with self._verified_lock:
            if len(self._verified) >= _MAX_VERIFIED:
                self._verified.clear()
            self._verified[digest] = (principal, times)
        return principal

    def _verify(self, token: str) -> tuple[Principal, Mapping[str, Any]]:
        """Both layers; the principal and the token's time claims."""
        try:
            checked = _check(token, self._keys, self._algorithms)
            _decode_object(checked.payload, "payload")  # duplicates / NaN refused before PyJWT
            try:
                claims = jwt.decode(
                    token,
                    key=checked.key,
                    algorithms=list(self._algorithms),
                    issuer=self._settings.issuer,
                    audience=self._settings.audience,
                    options=self._options,
                )
            except jwt.PyJWTError as exc:
                raise _fail(f"claims: {type(exc).__name__}") from exc
            self._check_times(claims)
            times = {name: claims[name] for name in ("exp", "nbf", "iat")}
            return _principal(claims), times
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # Fail closed on anything a hostile token provokes that the checks above missed.
            raise _fail(f"malformed: {type(exc).__name__}") from exc

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._now()
        leeway = self._settings.leeway_seconds
        exp = _time_claim(claims, "exp")
        nbf = _time_claim(claims, "nbf")
        iat = _time_claim(claims, "iat")
        if exp <= now - leeway:
            raise _fail("expired")
        if nbf > now + leeway:
            raise _fail("not yet valid")
        if iat > now + leeway:
            raise _fail("issued in the future")
        limit = self._settings.max_ttl_seconds + leeway
        if exp - iat > limit or exp - now > limit:
            raise _fail("lifetime over the maximum")
