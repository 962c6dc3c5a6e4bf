"""Liveness and readiness (database and key provider reachable)."""

from __future__ import annotations

from typing import Any

from vault.errors import Unavailable, VaultError
from vault.services.base import ServiceBase

__all__ = ["HealthService"]


class HealthService(ServiceBase):
    """Health checks; they reveal nothing but reachability."""

    def ready(self) -> dict[str, Any]:
        """Raise Unavailable unless the database and the key provider answer."""
        self.db.ping()
        try:
            provider = self.keyring.provider.check()
        except VaultError as exc:
            raise Unavailable("key provider unavailable") from exc
        return {"status": "ready", "database": "ok", "key_provider": provider}
