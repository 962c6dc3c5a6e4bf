"""Export route: a streamed NDJSON or Parquet export for a declared purpose (reader)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from vault.api.deps import CurrentPrincipal, Purpose, VaultDep, given_once
from vault.services.export import MEDIA_TYPES, ExportQuery

router = APIRouter(prefix="/v1/datasets/{name}/export", tags=["export"])


@router.get(
    "",
    summary="Stream an export for a declared purpose (reader)",
    dependencies=[Depends(given_once("format", "since", "until", "linkage"))],
)
def export(
    name: str,
    vault: VaultDep,
    principal: CurrentPrincipal,
    purpose: Purpose = None,
    format: Annotated[str, Query(max_length=16)] = "ndjson",
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[list[str] | None, Query(max_length=32)] = None,
    subject: Annotated[list[str] | None, Query()] = None,
    linkage: Annotated[str, Query(max_length=16)] = "purpose",
) -> StreamingResponse:
    """NDJSON (one event a line, the default) or Parquet (``format=parquet``); the
    ``X-Export-Id`` header names the manifest."""
    query = ExportQuery(since, until, tuple(kind or ()), tuple(subject or ()), linkage, format)
    export_id, chunks = vault.exports.start(principal, name, purpose, query)
    return StreamingResponse(
        chunks, media_type=MEDIA_TYPES[query.format], headers={"X-Export-Id": export_id}
    )
