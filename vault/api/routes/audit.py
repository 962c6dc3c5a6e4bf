"""Audit and key-inventory routes (auditors, admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from vault.api.body import read_json
from vault.api.deps import CurrentPrincipal, VaultDep
from vault.errors import BadRequest

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/audit", summary="Audit entries after a sequence number (auditor)")
def audit_entries(
    vault: VaultDep,
    principal: CurrentPrincipal,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
) -> dict[str, Any]:
    """Entries oldest first; pass ``next_after`` back as ``after``."""
    return vault.audit.entries(principal, after, limit)


@router.get("/audit/verify", summary="Verify the hash chain and checkpoints (auditor)")
def audit_verify(vault: VaultDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Where the chain breaks, if it does."""
    return vault.audit.verify(principal)


@router.post("/audit/verify", summary="Verify against a checkpoint kept outside (auditor)")
async def audit_verify_checkpoint(
    request: Request, vault: VaultDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Body: a checkpoint document as written by ``tvault audit checkpoint``."""
    body = await read_json(request, max_bytes=64 * 1024, max_depth=4)
    if not isinstance(body, dict):
        raise BadRequest("a checkpoint object expected")
    # The services are synchronous (database, crypto): off the event loop, in the pool.
    return await run_in_threadpool(vault.audit.verify, principal, body)


@router.post("/audit/checkpoint", summary="Sign and store the current head (auditor)")
def audit_checkpoint(vault: VaultDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """A signed checkpoint to keep outside the vault."""
    return vault.audit.checkpoint(principal)


@router.get("/keys", summary="Key inventory: ids, versions, ages, never bytes (admin, auditor)")
def keys(vault: VaultDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Per-dataset KEK versions and subject-epoch key counts."""
    return vault.keys.inventory(principal)


@router.post("/datasets/{name}/keys/rotate", summary="Rotate a dataset KEK (admin)")
def rotate(
    name: str,
    vault: VaultDep,
    principal: CurrentPrincipal,
    destroy_old: Annotated[
        bool, Query(description="Destroy old versions: erasures reach backups")
    ] = False,
) -> dict[str, Any]:
    """New KEK version; subject-epoch keys rewrapped; old versions destroyed on request."""
    return vault.lifecycle.rotate(principal, name, destroy_old=destroy_old)
