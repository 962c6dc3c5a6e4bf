"""Which names mark a credential: password fields, URL parameters, custom-data keys."""

from __future__ import annotations

import itertools
import re

__all__ = ["credential_kind", "is_password_field"]

# Words that mark a field as a password field. Long stems are matched anywhere in a word
# ("userpassword", "passwords"); short ones only as whole words, because "pin", "pass" and
# "secret" occur inside ordinary words ("shipping", "passenger", "secretary").
_PASSWORD_STEMS = (
    "password",
    "passwd",
    "passcode",
    "passphrase",
    "passwort",
    "kennwort",
    "mot de passe",
    "contraseña",
)
# Labels of fields that take another credential (a one-time code, a key, a token): masked like
# password fields, but a key *named* so is a SECRET, not a PASSWORD (see credential_kind).
_CREDENTIAL_LABEL_STEMS = (
    "one-time",
    "one time code",
    "verification code",
    "security code",
    "recovery code",
    "backup code",
    "api key",
    "api-key",
    "apikey",
    "access key",
    "access token",
    "auth token",
    "secret key",
    "client secret",
    "private key",
)
_PASSWORD_WORDS = frozenset({"pass", "pin", "pwd", "pw", "secret", "senha", "otp", "cvv", "cvc"})
# Split camelCase and acronyms ("newPassword", "PINCode") into words before matching.
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")


def is_password_field(field_type: str | None, label: str | None) -> bool:
    """Whether a field with this HTML ``type`` and ``label`` is treated as a password field.

    ``type`` containing "password" (``password``, ``new-password``...) or a label naming a
    password, passcode, passphrase, PIN, secret, one-time code (OTP) or card security code
    (CVV/CVC), in English and a few other languages. Labels that merely mention a password
    ("Password hint", "Confirm password") count too: over-masking loses a little training data,
    under-masking stores a credential.
    """
    if field_type is not None and "password" in field_type.lower():
        return True
    if not label:
        return False
    lowered = _CAMEL.sub(" ", label).lower()
    if any(stem in lowered for stem in _CREDENTIAL_LABEL_STEMS):
        return True
    return _names_password(lowered)


def _names_password(lowered: str) -> bool:
    if any(stem in lowered for stem in _PASSWORD_STEMS):
        return True
    return any(word in _PASSWORD_WORDS for word in _WORD_SPLIT.split(lowered))


# Words in a parameter or key name that make its value a credential whatever it looks like.
_SECRET_WORDS = frozenset(
    {
        "token",
        "apikey",
        "key",
        "sig",
        "signature",
        "secret",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "session",
        "sessionid",
        "sid",
        "jwt",
        "bearer",
        "code",
        "cookie",
        "ticket",
        "nonce",
        "assertion",
        "saml",
        "samlresponse",
        "accesskey",
        "privatekey",
        "clientsecret",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "authtoken",
    }
)
_NOT_SECRET_PAIRS = frozenset({("key", "id"), ("public", "key"), ("code", "country")})


def credential_kind(name: str) -> str | None:
    """``"PASSWORD"``/``"SECRET"`` when a key or parameter ``name`` names a credential.

    ``password``, ``db_pass``, ``userPwd`` -> PASSWORD; ``access_token``, ``X-Amz-Signature``,
    ``apiKey``, ``client_secret`` -> SECRET; ``keyword``, ``public_key``, ``zip_code`` -> None.
    """
    if _names_password(_CAMEL.sub(" ", name).lower()) and "secret" not in name.lower():
        return "PASSWORD"
    words = [w for w in _WORD_SPLIT.split(_CAMEL.sub(" ", name).lower()) if w]
    if not words:
        return None
    joined = "".join(words)
    if joined in _SECRET_WORDS or words[-1] in _SECRET_WORDS:
        pairs = set(itertools.pairwise(words))
        if pairs & _NOT_SECRET_PAIRS or (len(words) > 1 and words[-1] == "code"):
            return None
        return "SECRET"
    if any(w in ("secret", "token", "password", "credential", "credentials") for w in words):
        return "SECRET"
    return None
