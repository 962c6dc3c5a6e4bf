"""Dataset routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from vault.api.body import read_json
from vault.api.deps import CurrentPrincipal, VaultDep
from vault.services.redaction_job import DEFAULT_BATCH, MAX_BATCH

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.post("", status_code=201, summary="Create a dataset (admin)")
async def create_dataset(
    request: Request, vault: VaultDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Create a dataset: name, retention_days, purposes, consent, jurisdictions, exclusions,
    redaction (``{"replacement": "placeholder" | "pseudonym"}``)."""
    s = vault.settings
    body = await read_json(request, max_bytes=s.max_body_bytes, max_depth=s.max_json_depth)
    # The services are synchronous (database, crypto): off the event loop, in the pool.
    return await run_in_threadpool(vault.datasets.create, principal, body)


@router.get("", summary="Datasets the caller may see")
def list_datasets(vault: VaultDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Every dataset the caller's token grants."""
    return {"datasets": vault.datasets.list(principal)}


@router.get("/{name}", summary="One dataset")
def get_dataset(name: str, vault: VaultDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """A dataset's description; 404 when absent or not granted."""
    return vault.datasets.get(principal, name)


@router.post("/{name}/redact", summary="Re-redact stored records under the current rules (admin)")
async def redact_dataset(
    name: str,
    vault: VaultDep,
    principal: CurrentPrincipal,
    batch_size: Annotated[int, Query(ge=1, le=MAX_BATCH)] = DEFAULT_BATCH,
) -> dict[str, Any]:
    """Run the re-redaction job to the end; answers its summary (records examined, changed,
    redactions by type, ``remaining`` under older rules and ``complete``). Resumable: calling
    it again goes on where an interrupted run stopped. 409 while another run of the dataset is
    going; 404 for a dataset the caller's grant does not name."""
    return await run_in_threadpool(vault.redaction.run, principal, name, batch_size=batch_size)
