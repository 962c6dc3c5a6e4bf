"""FastAPI dependencies: the vault, the authenticated principal, the declared purpose."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from vault.bootstrap import Vault
from vault.domain.principal import Principal

__all__ = ["CurrentPrincipal", "Purpose", "VaultDep", "get_vault"]

_bearer = HTTPBearer(auto_error=False, description="A JWT (see README: tokens)")


async def get_vault(request: Request) -> Vault:
    """The vault this app serves (async: no thread hop for an attribute read)."""
    vault: Vault = request.app.state.vault
    return vault


VaultDep = Annotated[Vault, Depends(get_vault)]


async def current_principal(
    vault: VaultDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Authenticate the caller; every failure is the same 401.

    A token verified before is recognized on the event loop (a digest lookup); anything else
    is verified, and a failure audited, in the thread pool (a signature check, a database
    write), never on the loop.
    """
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    known = vault.auth.remembered(header)
    if known is not None:
        return known
    return await run_in_threadpool(vault.auth.authenticate, header)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Purpose = Annotated[
    str | None,
    Header(alias="X-Purpose", description="The declared purpose of a read", max_length=128),
]
