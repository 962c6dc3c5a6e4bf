"""The FastAPI app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from vault import __version__
from vault.api.errors import install_error_handlers
from vault.api.metrics import Metrics, MetricsMiddleware
from vault.api.routes import (
    audit,
    blobs,
    datasets,
    events,
    export,
    health,
    me,
    retention,
    subjects,
)
from vault.bootstrap import Vault

__all__ = ["create_app"]


def create_app(vault: Vault) -> FastAPI:
    """An app serving ``vault`` (built by :func:`vault.bootstrap.build_vault`)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        vault.maintenance.start()
        try:
            yield
        finally:
            vault.maintenance.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="telemetry-vault",
        version=__version__,
        summary="Encrypted, purpose-bound, audited storage for computer-use telemetry",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.vault = vault
    app.state.metrics = Metrics()
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    install_error_handlers(app)
    # The router tries its routes in this order on every request: the ingest route (the one a
    # fleet of collectors calls all day) first. No two routes of these modules match one path.
    for module in (events, health, datasets, blobs, export, subjects, me, audit, retention):
        app.include_router(module.router)
    app.include_router(subjects.erasures_router)
    return app
