"""Retention routes: sweep (admin) and legal holds (privacy officer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from vault.api.body import read_json
from vault.api.deps import CurrentPrincipal, VaultDep

router = APIRouter(prefix="/v1", tags=["retention"])


@router.post("/sweep", summary="Delete everything past retention, except held data (admin)")
def sweep(vault: VaultDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Keys of expired days destroyed first, then expired rows deleted; per-dataset counts."""
    return vault.retention.sweep(principal)


@router.post("/datasets/{name}/legal-holds", status_code=201, summary="Place a legal hold")
async def set_hold(
    name: str, request: Request, vault: VaultDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Body: ``{"reason": "...", "subject": optional}``; without a subject the dataset is held."""
    body = await read_json(request, max_bytes=16 * 1024, max_depth=4)
    # The services are synchronous (database, crypto): off the event loop, in the pool.
    return await run_in_threadpool(vault.retention.set_hold, principal, name, body)


@router.delete("/datasets/{name}/legal-holds", summary="Lift a legal hold")
def lift_hold(
    name: str,
    vault: VaultDep,
    principal: CurrentPrincipal,
    subject: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    """Lift the dataset's hold, or one subject's with ``?subject=``."""
    return vault.retention.lift_hold(principal, name, subject)
