"""Who is calling: roles and the authenticated principal (pure values)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Principal", "Role"]


class Role(enum.StrEnum):
    """The roles a token can carry (DESIGN.md §4)."""

    ADMIN = "admin"
    COLLECTOR = "collector"
    READER = "reader"
    AUDITOR = "auditor"
    PRIVACY_OFFICER = "privacy_officer"
    SUBJECT = "subject"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``purposes`` and ``datasets`` are ``None`` when the token does not limit them.
    """

    sub: str
    roles: frozenset[Role]
    purposes: frozenset[str] | None = None
    datasets: frozenset[str] | None = None
    via: str = "http"

    def has(self, role: Role) -> bool:
        """Whether the principal holds ``role``."""
        return role in self.roles

    def may_see_dataset(self, name: str) -> bool:
        """Whether the token's dataset limit (if any) includes ``name``."""
        return self.datasets is None or name in self.datasets

    @property
    def primary_role(self) -> str:
        """A stable, human-readable role label for audit entries."""
        return ",".join(sorted(r.value for r in self.roles)) or "none"
