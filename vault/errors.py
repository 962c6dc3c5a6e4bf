"""The one exception tree of telemetry-vault.

Every error the vault raises on purpose is a ``VaultError``. Faces map the tree to HTTP statuses
(``vault/api/errors.py``) and CLI exit codes (``vault/cli.py``) in one place each; no other code
builds an error response.

::

    VaultError                         500  (never raised directly)
    ├── BadRequest                     400  malformed input that is not a schema error
    │   └── InvalidCursor              400
    ├── ValidationFailed               422  schema-invalid input (carries per-item details)
    ├── AuthenticationError            401  any token problem, always one uniform body
    ├── Forbidden                      403  role or purpose refused
    │   └── ForbiddenPurpose           403  a purpose on the forbidden floor
    ├── NotFound                       404  no such object, or no grant on it
    ├── Conflict                       409  the object exists / state does not allow it
    ├── Gone                           410  erased or expired
    ├── PayloadTooLarge                413  body, batch or field over its limit
    ├── Unavailable                    503  database or key provider unreachable
    ├── ConfigurationError             config / settings cannot be used (startup)
    ├── IntegrityError                 stored data failed authentication (tampering, corruption)
    │   └── DecryptionError            one opaque failure for every AEAD/unwrap problem
    ├── KeyError_                      key material missing, destroyed or over its usage limit
    │   ├── KeyDestroyed               the key was shredded: data is gone (maps to 410)
    │   └── KeyUsageExceeded           a key reached its hard usage limit
    └── AuditFailure                   the audit log could not be written: the operation is void

Messages are safe to show to a client: they never contain keys, tokens or plaintext.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuditFailure",
    "AuthenticationError",
    "BadRequest",
    "ConfigurationError",
    "Conflict",
    "DecryptionError",
    "Forbidden",
    "ForbiddenPurpose",
    "Gone",
    "IntegrityError",
    "InvalidCursor",
    "KeyDestroyed",
    "KeyError_",
    "KeyUsageExceeded",
    "NotFound",
    "PayloadTooLarge",
    "Unavailable",
    "ValidationFailed",
    "VaultError",
]


class VaultError(Exception):
    """Base of every error the vault raises on purpose."""

    code = "internal_error"

    def __init__(self, message: str = "", *, details: Any = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip()
        self.details = details


class BadRequest(VaultError):
    """The request is malformed."""

    code = "bad_request"


class InvalidCursor(BadRequest):
    """The cursor is not one this vault issued."""

    code = "invalid_cursor"


class ValidationFailed(VaultError):
    """The input does not follow the schema."""

    code = "validation_failed"


class AuthenticationError(VaultError):
    """Authentication failed."""

    code = "unauthenticated"


class Forbidden(VaultError):
    """The caller may not do this."""

    code = "forbidden"


class ForbiddenPurpose(Forbidden):
    """This purpose can never be granted."""

    code = "forbidden_purpose"


class NotFound(VaultError):
    """No such object."""

    code = "not_found"


class Conflict(VaultError):
    """The request conflicts with the current state."""

    code = "conflict"


class Gone(VaultError):
    """The data was erased or has expired."""

    code = "gone"


class PayloadTooLarge(VaultError):
    """The request is over a size limit."""

    code = "payload_too_large"


class Unavailable(VaultError):
    """A dependency (database or key provider) is unavailable."""

    code = "unavailable"


class ConfigurationError(VaultError):
    """The configuration cannot be used."""

    code = "configuration_error"


class IntegrityError(VaultError):
    """Stored data failed its integrity check."""

    code = "integrity_error"


class DecryptionError(IntegrityError):
    """Decryption failed."""

    code = "decryption_failed"


class KeyError_(VaultError):  # noqa: N801 - trailing underscore avoids shadowing the builtin
    """Key material is not available."""

    code = "key_unavailable"


class KeyDestroyed(KeyError_):
    """The key was destroyed; the data it protected is gone."""

    code = "gone"


class KeyUsageExceeded(KeyError_):
    """A key reached its usage limit."""

    code = "key_usage_exceeded"


class AuditFailure(VaultError):
    """The audit log could not be written; the operation did not happen."""

    code = "audit_failure"
