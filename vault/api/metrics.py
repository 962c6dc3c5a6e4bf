"""Prometheus metrics, on a registry owned by the app (no process-wide globals)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["Metrics"]

access = logging.getLogger("vault.access")


class Metrics:
    """Request counts and latencies by route template (bounded label values)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tvault_http_requests_total",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tvault_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            registry=self.registry,
        )
        self.events = Counter(
            "tvault_ingest_events_total",
            "Ingested events by outcome",
            ["outcome"],
            registry=self.registry,
        )

    async def middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Time and count every request."""
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        self.requests.labels(request.method, template, str(response.status_code)).inc()
        # The access log names route templates, never raw paths or query strings: those can
        # carry subject ids (``/v1/subjects/{subject}``, ``?subject=``).
        access.info("%s %s %s", request.method, template, response.status_code)
        self.latency.labels(template).observe(time.perf_counter() - start)
        return response

    def render(self) -> Response:
        """The exposition text."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
