"""Read purposes and the forbidden floor (DESIGN.md §4).

The floor is part of the code: configuration may add purposes to it, never remove any.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "FORBIDDEN_FLOOR",
    "PURPOSE_PATTERN",
    "ForbiddenPurposes",
    "normalize_purpose",
]

PURPOSE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

#: Purposes that can never be granted, whatever the configuration says.
FORBIDDEN_FLOOR: frozenset[str] = frozenset(
    {
        "performance_review",
        "hr_investigation",
        "disciplinary",
        "performance_management",
        "employee_monitoring",
        "productivity_scoring",
        "termination",
    }
)


def normalize_purpose(raw: str) -> str | None:
    """Return the canonical form of a purpose, or ``None`` when it is not a valid name.

    Case, surrounding space, hyphens and spaces are folded so that ``Performance-Review``
    cannot slip past the floor as a "different" purpose.
    """
    folded = re.sub(r"[\s\-_]+", "_", raw.strip().lower()).strip("_")
    return folded if PURPOSE_PATTERN.fullmatch(folded) else None


def _compact(purpose: str) -> str:
    # "performance_review", "performancereview" and "performance__review" are one purpose.
    return purpose.replace("_", "")


class ForbiddenPurposes:
    """The forbidden list in force: the floor plus configured additions."""

    __slots__ = ("_compact", "_names")

    def __init__(self, extra: Iterable[str] = ()) -> None:
        names = set(FORBIDDEN_FLOOR)
        for item in extra:
            norm = normalize_purpose(item)
            if norm is None:
                raise ValueError(f"invalid forbidden purpose name: {item!r}")
            names.add(norm)
        self._names = frozenset(names)
        self._compact = frozenset(_compact(n) for n in names)

    def __contains__(self, purpose: object) -> bool:
        if not isinstance(purpose, str):
            return False
        norm = normalize_purpose(purpose)
        return purpose in self._names or (norm is not None and _compact(norm) in self._compact)

    @property
    def names(self) -> frozenset[str]:
        """Every forbidden purpose."""
        return self._names
