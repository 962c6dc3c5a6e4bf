"""A person's own view of what the vault holds about them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from vault.api.deps import CurrentPrincipal, VaultDep
from vault.services.reads import EventQuery

router = APIRouter(prefix="/v1/me", tags=["subjects"])


@router.get("", summary="What the vault holds about the caller (subject)")
def me(vault: VaultDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Per dataset: pseudonym, consent, record count."""
    return vault.subjects.summary(principal)


@router.get("/events", summary="The caller's own events (subject)")
def my_events(
    vault: VaultDep,
    principal: CurrentPrincipal,
    dataset: Annotated[str, Query(max_length=64)],
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    """Decrypted, redacted events whose subject is the caller; audited."""
    query = EventQuery(None, since, until, kind, limit, cursor)
    return vault.reads.list_own_events(principal, dataset, query)
