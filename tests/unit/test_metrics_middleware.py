"""The ASGI metrics middleware: route templates, statuses, and failures counted as 500."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from vault.api.metrics import Metrics, MetricsMiddleware


def _app(metrics: Metrics) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item}")
    def item(item: str) -> dict[str, str]:
        if item == "missing":
            raise HTTPException(404)
        if item == "boom":
            raise RuntimeError("unexpected")
        return {"item": item}

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _count(metrics: Metrics, route: str, status: str) -> float:
    value = metrics.registry.get_sample_value(
        "tvault_http_requests_total", {"method": "GET", "route": route, "status": status}
    )
    return value or 0.0


def test_counts_by_template_and_status(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    client = TestClient(_app(metrics), raise_server_exceptions=False)
    caplog.set_level("INFO", logger="vault.access")
    assert client.get("/items/alice@example.com").status_code == 200
    assert client.get("/items/missing").status_code == 404
    assert client.get("/items/boom").status_code == 500
    assert client.get("/nowhere").status_code == 404
    assert _count(metrics, "/items/{item}", "200") == 1
    assert _count(metrics, "/items/{item}", "404") == 1
    assert _count(metrics, "/items/{item}", "500") == 1
    assert _count(metrics, "unmatched", "404") == 1
    # Never the raw path (it can carry a subject id).
    assert "alice" not in caplog.text
    assert "GET /items/{item} 200" in caplog.text
