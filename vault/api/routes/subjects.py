"""Routes about people: consent."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

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
    # The services are synchronous (database, crypto): off the event loop, in the pool.
    return await run_in_threadpool(vault.consent.set, principal, subject, body)


@router.delete("/{subject}", summary="Erase a person from every dataset (privacy officer, self)")
def erase(subject: str, vault: VaultDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Crypto-shred the person's keys, delete their records; a signed deletion certificate."""
    return vault.lifecycle.erase(principal, subject)


erasures_router = APIRouter(prefix="/v1/erasures", tags=["subjects"])


@erasures_router.get("/{erasure_id}", summary="A signed deletion certificate")
def certificate(erasure_id: str, vault: VaultDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Privacy officers, auditors and the erased person may download it."""
    return vault.lifecycle.certificate(principal, erasure_id)
