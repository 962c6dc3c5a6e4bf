"""HTTP fixtures: the app from the factory, and tokens signed by the vault's dev key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import OPERATOR
from vault.api import create_app
from vault.bootstrap import Vault


@pytest.fixture
def client(vault: Vault) -> Iterator[TestClient]:
    """A client of the real app; server errors come back as responses, not exceptions."""
    with TestClient(create_app(vault), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def auth(vault: Vault) -> Callable[..., dict[str, str]]:
    """``auth("sub", "reader", purposes=[...], datasets=[...])`` -> request headers."""

    def make(sub: str, *roles: str, purpose: str | None = None, **claims: Any) -> dict[str, str]:
        token = vault.auth.issue_dev_token(
            OPERATOR,
            sub=sub,
            roles=list(roles),
            purposes=claims.get("purposes", []),
            datasets=claims.get("datasets", []),
            ttl_seconds=claims.get("ttl_seconds", 3600),
        )
        headers = {"Authorization": f"Bearer {token}"}
        if purpose is not None:
            headers["X-Purpose"] = purpose
        return headers

    return make
