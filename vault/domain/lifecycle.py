"""Pure lifecycle arithmetic: the shred horizon."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

__all__ = ["shred_horizon"]


def shred_horizon(
    pending_since: datetime | None, interval: timedelta, now: datetime
) -> dict[str, Any]:
    """When destroyed keys stop being recoverable from backups taken before the destruction.

    ``pending_since`` is the first erasure or sweep not yet followed by a KEK rotation that
    destroyed the old version; the scheduled rotation is due ``interval`` after it.
    """
    if pending_since is None:
        return {"pending": False, "pending_since": None, "due": None, "seconds_left": 0}
    due = pending_since + interval
    return {
        "pending": True,
        "pending_since": pending_since.isoformat(),
        "due": due.isoformat(),
        "seconds_left": max(0, int((due - now).total_seconds())),
    }
