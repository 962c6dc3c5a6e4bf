"""What the vault holds about the calling person (role ``subject``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from vault.audit import AuditAction
from vault.domain.principal import Principal, Role
from vault.services.base import ServiceBase
from vault.storage.tables import consents, datasets, records

__all__ = ["SubjectService"]


class SubjectService(ServiceBase):
    """A person's own view: per dataset, their pseudonym, consent state and record count."""

    def summary(self, principal: Principal) -> dict[str, Any]:
        """Counts and consent per dataset; no contents (those are at /v1/me/events)."""
        self.require(principal, AuditAction.SUBJECT_SUMMARY, [Role.SUBJECT])
        held: list[dict[str, Any]] = []
        with self.db.read() as conn:
            for ds in conn.execute(select(datasets).order_by(datasets.c.name)):
                if not principal.may_see_dataset(ds.name):
                    continue
                pseudonym = self.keyring.subject_pseudonym(ds.id, principal.sub)
                count = conn.execute(
                    select(func.count()).where(
                        records.c.dataset_id == ds.id, records.c.subject == pseudonym
                    )
                ).scalar_one()
                consent = conn.execute(
                    select(consents.c.state).where(
                        consents.c.dataset_id == ds.id, consents.c.subject == pseudonym
                    )
                ).scalar_one_or_none()
                held.append(
                    {
                        "dataset": ds.name,
                        "pseudonym": pseudonym,
                        "records": int(count),
                        "consent_mode": ds.consent_mode,
                        "consent": consent,
                        "retention_days": ds.retention_days,
                        "purposes": list(ds.purposes),
                    }
                )
        with self.db.write() as conn:
            self.record(conn, principal, AuditAction.SUBJECT_SUMMARY)
        return {"sub": principal.sub, "datasets": held}
