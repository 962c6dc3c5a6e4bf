"""Access decisions as values: ``Allowed`` or ``Denied(reason)`` (DESIGN.md §4).

The reason goes to the audit log; the client only ever sees a plain 403 or 404.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from vault.domain.principal import Principal, Role
from vault.domain.purposes import ForbiddenPurposes, normalize_purpose

__all__ = [
    "Allowed",
    "Decision",
    "Denial",
    "Denied",
    "decide_dataset_visible",
    "decide_read",
    "decide_role",
]


class Denial(enum.StrEnum):
    """How a denial shows to the client."""

    NOT_FOUND = "not_found"  # no grant: indistinguishable from no such object
    FORBIDDEN = "forbidden"  # role or purpose refused
    FORBIDDEN_PURPOSE = "forbidden_purpose"  # on the floor: never grantable
    BAD_PURPOSE = "bad_purpose"  # missing or malformed purpose


@dataclass(frozen=True, slots=True)
class Allowed:
    """The request may go on; ``purpose`` is the normalized declared purpose, if any."""

    purpose: str | None = None


@dataclass(frozen=True, slots=True)
class Denied:
    """The request is refused, with the reason recorded in the audit log."""

    reason: str
    kind: Denial = Denial.FORBIDDEN


Decision = Allowed | Denied


def decide_role(principal: Principal, allowed: Iterable[Role]) -> Decision:
    """Allowed when the principal holds any of ``allowed``."""
    wanted = frozenset(allowed)
    if principal.roles & wanted:
        return Allowed()
    names = ",".join(sorted(r.value for r in wanted))
    return Denied(f"role required: one of {names}")


def decide_dataset_visible(principal: Principal, dataset: str) -> Decision:
    """A token limited to some datasets never reaches (nor learns of) the others."""
    if principal.may_see_dataset(dataset):
        return Allowed()
    return Denied("no grant on dataset", Denial.NOT_FOUND)


def decide_read(
    principal: Principal,
    dataset_purposes: Iterable[str],
    declared: str | None,
    forbidden: ForbiddenPurposes,
) -> Decision:
    """A read needs a declared purpose allowed for the dataset, the token and not forbidden.

    The forbidden floor is checked first, so such a read is refused even where a dataset or a
    token was (wrongly) made to list the purpose.
    """
    if declared is None or not declared.strip():
        return Denied("no purpose declared (X-Purpose)", Denial.BAD_PURPOSE)
    purpose = normalize_purpose(declared)
    if purpose is None:
        return Denied("malformed purpose", Denial.BAD_PURPOSE)
    if purpose in forbidden:
        return Denied(f"purpose {purpose} is forbidden", Denial.FORBIDDEN_PURPOSE)
    if purpose not in frozenset(dataset_purposes):
        return Denied(f"purpose {purpose} not allowed for the dataset")
    if principal.purposes is not None and purpose not in principal.purposes:
        return Denied(f"purpose {purpose} not in the token's purposes")
    return Allowed(purpose)
