"""Event routes: ingest (collector) and purpose-bound reads (reader)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from vault.api.body import read_json_or_ndjson
from vault.api.deps import CurrentPrincipal, Purpose, VaultDep
from vault.services.reads import EventQuery

router = APIRouter(prefix="/v1/datasets/{name}/events", tags=["events"])

_INGEST_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "",
    summary="Ingest a batch of events (collector)",
    openapi_extra=_INGEST_DOC,
    response_model=dict[str, Any],
)
async def ingest(
    name: str, request: Request, vault: VaultDep, principal: CurrentPrincipal
) -> JSONResponse:
    """A JSON array (or NDJSON) of events; per-event results."""
    s = vault.settings
    items = await read_json_or_ndjson(
        request, max_bytes=s.max_body_bytes, max_depth=s.max_json_depth
    )
    # The services are synchronous (database, crypto): off the event loop, in the pool.
    result = await run_in_threadpool(vault.ingest.ingest, principal, name, items)
    # Plain JSON (ints, strings, a dict of counts per event): encoded once, in C, without a
    # second validation pass over up to max_batch_events results.
    return JSONResponse(result)


@router.get("", summary="Read decrypted events for a declared purpose (reader)")
def list_events(
    name: str,
    vault: VaultDep,
    principal: CurrentPrincipal,
    purpose: Purpose = None,
    subject: Annotated[str | None, Query(max_length=256)] = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    """One page, oldest first; pass ``next_cursor`` back as ``cursor`` for the next."""
    query = EventQuery(subject, since, until, kind, limit, cursor)
    return vault.reads.list_events(principal, name, purpose, query)


@router.get("/{record_id}", summary="One decrypted event (reader)")
def get_event(
    name: str, record_id: str, vault: VaultDep, principal: CurrentPrincipal, purpose: Purpose = None
) -> dict[str, Any]:
    """One event by id; 404 when absent or not granted."""
    return vault.reads.get_event(principal, name, record_id, purpose)
