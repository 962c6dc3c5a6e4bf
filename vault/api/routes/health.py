"""Liveness, readiness and metrics (no authentication; no data)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from vault.api.deps import VaultDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
def healthz() -> dict[str, Any]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database and key provider reachable")
def readyz(vault: VaultDep) -> dict[str, Any]:
    """503 when a dependency is down."""
    return vault.health.ready()


@router.get("/metrics", summary="Prometheus metrics")
def metrics(request: Request) -> Response:
    """Exposition text format."""
    rendered: Response = request.app.state.metrics.render()
    return rendered
