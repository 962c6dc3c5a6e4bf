"""Turning schema errors into safe, structured details for a 422."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

__all__ = ["pydantic_details"]

_MAX_ERRORS = 20


def pydantic_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Location and message of each error, never the offending input (it may be secret)."""
    return [
        {"loc": [str(part) for part in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)[:_MAX_ERRORS]
    ]
