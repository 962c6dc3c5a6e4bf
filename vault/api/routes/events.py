"""Event routes: ingest (collector) and purpose-bound reads (reader)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from vault.api.body import read_json_or_ndjson
from vault.api.deps import (
    BEARER_SCHEME,
    CurrentPrincipal,
    Purpose,
    VaultDep,
    authenticated,
    given_once,
)
from vault.api.errors import json_response
from vault.bootstrap import Vault
from vault.services.reads import EventQuery

router = APIRouter(prefix="/v1/datasets/{name}/events", tags=["events"])

_INGEST_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    },
    # What the CurrentPrincipal dependency declares on every other route (see ingest).
    "security": [{BEARER_SCHEME: []}],
}


@router.post(
    "",
    summary="Ingest a batch of events (collector)",
    openapi_extra=_INGEST_DOC,
    response_model=dict[str, Any],
)
async def ingest(name: str, request: Request) -> Response:
    """A JSON array (or NDJSON) of events; per-event results."""
    # The route collectors call all day takes no dependencies for FastAPI to solve per request:
    # the caller is authenticated here, first, as CurrentPrincipal does on every other route.
    principal = await authenticated(request)
    vault: Vault = request.app.state.vault
    s = vault.settings
    items = await read_json_or_ndjson(
        request, max_bytes=s.max_body_bytes, max_depth=s.max_json_depth
    )
    # The services are synchronous (database, crypto): off the event loop, in the pool.
    result = await run_in_threadpool(vault.ingest.ingest, principal, name, items)
    # Plain JSON (ints, strings, a dict of counts per event): encoded once, in C, without a
    # second validation pass over up to max_batch_events results.
    return json_response(result)


@router.get(
    "",
    summary="Read decrypted events for a declared purpose (reader)",
    dependencies=[
        Depends(given_once("subject", "since", "until", "kind", "limit", "cursor")),
    ],
)
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
