"""The one table from the error tree to HTTP statuses, and the handlers that apply it.

Bodies are always ``{"error": {"code", "message"}}`` (plus safe ``details`` for 4xx), never a
stack trace, key, token or plaintext. Every authentication failure gets the same 401 body.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vault import errors as e

__all__ = ["STATUS", "error_response", "install_error_handlers", "json_response", "status_for"]

log = logging.getLogger("vault.api")

#: Most specific class first; the first match wins.
STATUS: tuple[tuple[type[e.VaultError], int], ...] = (
    (e.InvalidCursor, 400),
    (e.BadRequest, 400),
    (e.AuthenticationError, 401),
    (e.ForbiddenPurpose, 403),
    (e.Forbidden, 403),
    (e.NotFound, 404),
    (e.Conflict, 409),
    (e.KeyDestroyed, 410),
    (e.Gone, 410),
    (e.PayloadTooLarge, 413),
    (e.ValidationFailed, 422),
    (e.Unavailable, 503),
    (e.AuditFailure, 503),
    (e.KeyUsageExceeded, 503),
    (e.DecryptionError, 500),
    (e.IntegrityError, 500),
    (e.KeyError_, 500),
    (e.ConfigurationError, 500),
)


def status_for(exc: e.VaultError) -> int:
    """The HTTP status of an error of the tree."""
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


#: Built once: Starlette's ``JSONResponse`` calls ``json.dumps`` with options, which builds an
#: encoder per response. The same bytes: compact, UTF-8 (not ASCII-escaped), no NaN.
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """``content`` as an ``application/json`` response, byte for byte what ``JSONResponse``
    sends."""
    return Response(_JSON.encode(content).encode("utf-8"), status_code, headers, "application/json")


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    """The error body every failure uses."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return json_response({"error": body}, status, headers)


async def _vault_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, e.VaultError)
    status = status_for(exc)
    if status == 401:
        return error_response(
            401, "unauthenticated", "authentication failed", headers={"WWW-Authenticate": "Bearer"}
        )
    if status >= 500:
        log.error("request failed: %s (%s)", exc.code, type(exc).__name__)
        message = (
            "internal error" if status == 500 and exc.code == "internal_error" else exc.message
        )
        return error_response(status, exc.code, message)
    return error_response(status, exc.code, exc.message, exc.details)


async def _request_validation(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": err.get("msg", "invalid")}
        for err in exc.errors()[:20]
    ]
    return error_response(422, "validation_failed", "invalid request parameters", details)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    code = codes.get(exc.status_code, "http_error")
    message = "not found" if exc.status_code == 404 else str(exc.detail)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, message, headers=headers)


async def _unexpected(_request: Request, exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    return error_response(500, "internal_error", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(e.VaultError, _vault_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
