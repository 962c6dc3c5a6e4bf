"""Prometheus metrics, on a registry owned by the app (no process-wide globals)."""

from __future__ import annotations

import logging
import time

from fastapi import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "MetricsMiddleware"]

access = logging.getLogger("vault.access")
#: Bound on the label combinations whose metric children are kept at hand (methods are the
#: client's to choose on unmatched paths).
_MAX_CHILDREN = 1024


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
        #: The metric children of each (method, template, status) seen (see :meth:`observe`).
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, template: str, status: int, seconds: float) -> None:
        """Count and time one request (by route template)."""
        key = (method, template, status)
        children = self._children.get(key)
        if children is None:
            # labels() validates and looks its child up under a lock: once per combination.
            children = (
                self.requests.labels(method, template, str(status)),
                self.latency.labels(template),
            )
            if len(self._children) >= _MAX_CHILDREN:
                self._children.clear()
            self._children[key] = children
        children[0].inc()
        # The access log names route templates, never raw paths or query strings: those can
        # carry subject ids (``/v1/subjects/{subject}``, ``?subject=``).
        access.info("%s %s %s", method, template, status)
        children[1].observe(seconds)

    def render(self) -> Response:
        """The exposition text."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Plain ASGI middleware that feeds :class:`Metrics` (no per-request task or body stream,
    unlike an ``@app.middleware("http")`` function). A request that ends in an exception counts
    as a 500."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The router put the matched route in the scope; its template, never the raw path.
            template = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - start)
