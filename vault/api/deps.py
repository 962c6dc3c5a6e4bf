"""FastAPI dependencies: the vault, the authenticated principal, the declared purpose."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from starlette.concurrency import run_in_threadpool

from vault.bootstrap import Vault
from vault.domain.principal import Principal
from vault.errors import BadRequest

__all__ = [
    "BEARER_SCHEME",
    "CurrentPrincipal",
    "Purpose",
    "VaultDep",
    "authenticated",
    "get_vault",
]

#: The name of the bearer-token security scheme in the OpenAPI document.
BEARER_SCHEME = "HTTPBearer"


async def get_vault(request: Request) -> Vault:
    """The vault this app serves (async: no thread hop for an attribute read)."""
    vault: Vault = request.app.state.vault
    return vault


VaultDep = Annotated[Vault, Depends(get_vault)]


async def authenticated(request: Request) -> Principal:
    """Authenticate the caller of ``request``; every failure is the same 401.

    The ``Authorization`` header goes to the auth service as sent (it takes the token of a
    ``Bearer`` header and refuses anything else). A token verified before is recognized on the
    event loop (a digest lookup, its time claims checked again); anything else is verified, and
    a failure audited, in the thread pool (a signature check, a database write), never on the
    loop.
    """
    vault: Vault = request.app.state.vault
    header = request.headers.get("authorization")
    known = vault.auth.remembered(header)
    if known is not None:
        return known
    return await run_in_threadpool(vault.auth.authenticate, header)


class _BearerPrincipal(SecurityBase):
    """The dependency behind :data:`CurrentPrincipal`: :func:`authenticated`, declared as the
    ``HTTPBearer`` security scheme for the OpenAPI document.

    One dependency that reads the request itself: FastAPI solves no sub-dependencies (the vault,
    a credentials model) for it on every request.
    """

    def __init__(self) -> None:
        self.model = HTTPBearerModel(description="A JWT (see README: tokens)")
        self.scheme_name = BEARER_SCHEME

    async def __call__(self, request: Request) -> Principal:
        return await authenticated(request)


CurrentPrincipal = Annotated[Principal, Depends(_BearerPrincipal())]
Purpose = Annotated[
    str | None,
    Header(alias="X-Purpose", description="The declared purpose of a read", max_length=128),
]


def given_once(*names: str) -> Callable[[Request], None]:
    """A route dependency refusing (400) a query parameter among ``names`` given more than
    once: a framework would quietly take the last (``since=...&since=...``), so a filter the
    caller believes applied would not be."""

    def check(request: Request) -> None:
        params = request.query_params
        for name in names:
            if len(params.getlist(name)) > 1:
                raise BadRequest(f"query parameter {name!r} is given more than once")

    return check
