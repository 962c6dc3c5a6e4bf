"""FastAPI dependencies: the vault, the authenticated principal, the declared purpose."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vault.bootstrap import Vault
from vault.domain.principal import Principal

__all__ = ["CurrentPrincipal", "Purpose", "VaultDep", "get_vault"]

_bearer = HTTPBearer(auto_error=False, description="A JWT (see README: tokens)")


def get_vault(request: Request) -> Vault:
    """The vault this app serves."""
    vault: Vault = request.app.state.vault
    return vault


VaultDep = Annotated[Vault, Depends(get_vault)]


def current_principal(
    vault: VaultDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Authenticate the caller; every failure is the same 401."""
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    return vault.auth.authenticate(header)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Purpose = Annotated[
    str | None,
    Header(alias="X-Purpose", description="The declared purpose of a read", max_length=128),
]
