"""Routes about people: consent."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from vault.api.body import read_json
from vault.api.deps import CurrentPrincipal, VaultDep

router = APIRouter(prefix="/v1/subjects", tags=["subjects"])


@router.put("/{subject}/consent", summary="Grant or withdraw consent (privacy officer, self)")
async def set_consent(
    subject: str, request: Request, vault: VaultDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Body: ``{"dataset": name, "state": "granted" | "withdrawn"}``."""
    s = vault.settings
    body = await read_json(request, max_bytes=64 * 1024, max_depth=s.max_json_depth)
    return vault.consent.set(principal, subject, body)
