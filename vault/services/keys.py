"""Key inventory: ids, versions, states and ages; never key bytes (admins and auditors)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from vault.audit import AuditAction
from vault.domain.lifecycle import shred_horizon
from vault.domain.principal import Principal, Role
from vault.errors import ConfigurationError
from vault.providers.local import LocalKeyringProvider
from vault.services.base import Deps, ServiceBase
from vault.storage.tables import dataset_keks, datasets, subject_keys

__all__ = ["KeyService"]


class KeyService(ServiceBase):
    """What the vault can say about its keys without revealing any."""

    def __init__(self, deps: Deps, *, shred_interval: timedelta) -> None:
        super().__init__(deps)
        self._shred_interval = shred_interval

    def inventory(self, principal: Principal) -> dict[str, Any]:
        """Per dataset: KEK versions with state and age, and the number of subject-epoch keys."""
        self.require(principal, AuditAction.KEYS_LIST, [Role.ADMIN, Role.AUDITOR])
        now = self.deps.now()
        out: list[dict[str, Any]] = []
        with self.db.read() as conn:
            counts = {
                str(row[0]): int(row[1])
                for row in conn.execute(
                    select(subject_keys.c.dataset_id, func.count()).group_by(
                        subject_keys.c.dataset_id
                    )
                )
            }
            for ds in conn.execute(select(datasets).order_by(datasets.c.name)):
                if not principal.may_see_dataset(ds.name):
                    continue
                versions = conn.execute(
                    select(dataset_keks)
                    .where(dataset_keks.c.dataset_id == ds.id)
                    .order_by(dataset_keks.c.version)
                ).all()
                out.append(
                    {
                        "dataset": ds.name,
                        "kek_current_version": ds.kek_version,
                        "kek_versions": [
                            {
                                "version": v.version,
                                "state": v.state,
                                "created_at": v.created_at.isoformat(),
                                "age_seconds": int((now - v.created_at).total_seconds()),
                            }
                            for v in versions
                        ],
                        "subject_epoch_keys": int(counts.get(ds.id, 0)),
                        "shred_horizon": shred_horizon(
                            ds.shred_pending_since, self._shred_interval, now
                        ),
                    }
                )
        with self.db.write() as conn:
            self.record(conn, principal, AuditAction.KEYS_LIST)
        status = self.keyring.provider.check()
        return {"provider": status, "datasets": out}

    def rotate_master(
        self,
        principal: Principal,
        new_passphrase: str | None,
        *,
        scrypt_n: int,
        allow_unseal: bool,
    ) -> dict[str, Any]:
        """Reseal every key file of the local keyring under a new master key (admin)."""
        action = AuditAction.KEYS_ROTATE_MASTER
        self.require(principal, action, [Role.ADMIN])
        provider = self.keyring.provider
        if not isinstance(provider, LocalKeyringProvider):
            raise ConfigurationError("master-key rotation applies to the local keyring only")
        if new_passphrase is None and not allow_unseal:
            raise ConfigurationError(
                "set TVAULT_NEW_MASTER_PASSPHRASE (or pass --unseal to unseal, dev only)"
            )
        # Announced first: if the rotation then fails half-way, the log says it was attempted.
        with self.db.write() as conn:
            self.record(conn, principal, action, details={"step": "start"})
        counts = provider.rotate_master(
            new_passphrase, scrypt_n=scrypt_n, allow_unseal=allow_unseal
        )
        with self.db.write() as conn:
            self.record(conn, principal, action, details={"step": "done", **counts})
        return counts
