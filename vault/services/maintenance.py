"""The periodic job: retention sweep, then the KEK rotations that make shreds reach backups.

Runs inside ``tvault serve`` every ``maintenance_interval_seconds``; with several replicas on
PostgreSQL only the one that takes the database lock runs a round, the others skip it.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from vault.domain.principal import Principal, Role
from vault.errors import VaultError
from vault.services.lifecycle import LifecycleService
from vault.services.retention import RetentionService
from vault.storage import Database

__all__ = ["SCHEDULER", "Maintenance"]

log = logging.getLogger("vault.maintenance")

#: The identity the scheduled job acts as (recorded in the audit log).
SCHEDULER = Principal(sub="maintenance", roles=frozenset({Role.ADMIN}), via="scheduler")
_LOCK = "tvault-maintenance"


class Maintenance:
    """One round on demand (``run_once``), or rounds in a background thread."""

    def __init__(
        self,
        db: Database,
        retention: RetentionService,
        lifecycle: LifecycleService,
        *,
        shred_interval: timedelta,
        every_seconds: float,
    ) -> None:
        self._db = db
        self._retention = retention
        self._lifecycle = lifecycle
        self._shred_interval = shred_interval
        self._every = every_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> dict[str, Any]:
        """Sweep and rotate what is due, if this process wins the lock."""
        with self._db.exclusive(_LOCK) as mine:
            if not mine:
                return {"ran": False, "reason": "another replica holds the maintenance lock"}
            swept = self._retention.sweep(SCHEDULER)
            rotated = self._lifecycle.rotate_due(SCHEDULER, self._shred_interval)
            return {"ran": True, "sweep": swept, "rotated": rotated}

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.run_once()
            except VaultError as exc:  # logged and retried next round; never kills the server
                log.error("maintenance round failed: %s", exc.code)

    def start(self) -> None:
        """Run rounds in a daemon thread until :meth:`stop`."""
        if self._every > 0 and self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="tvault-maintenance", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the background rounds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
