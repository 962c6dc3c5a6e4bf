"""Screenshot routes: upload (collector) and purpose-bound download (reader)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from vault.api.body import read_body, strict_loads
from vault.api.deps import CurrentPrincipal, Purpose, VaultDep
from vault.errors import BadRequest

router = APIRouter(prefix="/v1/datasets/{name}/blobs", tags=["blobs"])

_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
    }
}


@router.post(
    "", status_code=201, summary="Upload a screenshot (collector)", openapi_extra=_UPLOAD_DOC
)
async def upload(
    name: str,
    request: Request,
    vault: VaultDep,
    principal: CurrentPrincipal,
    subject: Annotated[str, Query(max_length=256)],
    time: Annotated[str, Query(max_length=64)],
    app: Annotated[str | None, Query(max_length=2048)] = None,
    url: Annotated[str | None, Query(max_length=8192)] = None,
    window_title: Annotated[str | None, Query(max_length=2048)] = None,
    private_window: bool = False,
    device_owner: Annotated[str, Query(max_length=16)] = "corporate",
    jurisdiction: Annotated[str | None, Query(max_length=2)] = None,
    regions: Annotated[
        str | None, Query(max_length=32768, description='JSON list of {"x","y","w","h"}')
    ] = None,
) -> dict[str, Any]:
    """The image body; regions are blacked out before encryption. 403 names a refusal reason."""
    meta: dict[str, Any] = {
        "subject": subject,
        "time": time,
        "app": app,
        "url": url,
        "window_title": window_title,
        "private_window": private_window,
        "device_owner": device_owner,
        "jurisdiction": jurisdiction,
    }
    if regions is not None:
        parsed = strict_loads(regions.encode(), max_depth=3)
        if not isinstance(parsed, list):
            raise BadRequest("regions must be a JSON list")
        meta["regions"] = parsed
    image = await read_body(request, vault.settings.max_blob_bytes)
    # The services are synchronous (database, crypto): off the event loop, in the pool.
    return await run_in_threadpool(vault.blobs.upload, principal, name, meta, image)


@router.get("/{blob_id}", summary="Download a screenshot for a declared purpose (reader)")
def download(
    name: str, blob_id: str, vault: VaultDep, principal: CurrentPrincipal, purpose: Purpose = None
) -> Response:
    """The decrypted (and blacked-out) image."""
    content_type, image = vault.blobs.download(principal, name, blob_id, purpose)
    return Response(content=image, media_type=content_type)
