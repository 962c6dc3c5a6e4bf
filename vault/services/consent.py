"""Consent: a privacy officer, or the person themself, grants or withdraws per dataset."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import insert as sa_insert
from sqlalchemy import select, update

from vault.audit import AuditAction
from vault.domain.access import Denied
from vault.domain.principal import Principal, Role
from vault.errors import ValidationFailed
from vault.services.base import Deps, ServiceBase
from vault.services.lifecycle import LifecycleService
from vault.services.validation import pydantic_details
from vault.storage.tables import consents

__all__ = ["ConsentChange", "ConsentService"]


class ConsentChange(BaseModel):
    """The body of ``PUT /v1/subjects/{subject}/consent``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(min_length=1, max_length=64)
    state: Literal["granted", "withdrawn"]


class ConsentService(ServiceBase):
    """Records consent decisions; ingest reads them for every event."""

    def __init__(self, deps: Deps, lifecycle: LifecycleService) -> None:
        super().__init__(deps)
        self._lifecycle = lifecycle

    def set(self, principal: Principal, subject: str, raw: Any) -> dict[str, Any]:
        """Set the consent of ``subject`` for one dataset."""
        action = AuditAction.CONSENT_SET
        try:
            change = ConsentChange.model_validate(raw)
        except ValidationError as exc:
            raise ValidationFailed("invalid consent change", details=pydantic_details(exc)) from exc
        if not 1 <= len(subject) <= 256:
            raise ValidationFailed("subject must be 1..256 characters")
        is_self = principal.has(Role.SUBJECT) and principal.sub == subject
        if not (principal.has(Role.PRIVACY_OFFICER) or is_self):
            self.deny(
                principal,
                action,
                Denied("consent needs privacy_officer or the subject"),
                dataset=change.dataset,
            )
        ds = self.visible_dataset(principal, change.dataset, action)
        pseudonym = self.keyring.subject_pseudonym(ds.id, subject)
        now = self.deps.now()
        with self.db.write() as conn:
            exists = conn.execute(
                select(consents.c.state).where(
                    consents.c.dataset_id == ds.id, consents.c.subject == pseudonym
                )
            ).first()
            if exists is None:
                conn.execute(
                    sa_insert(consents).values(
                        dataset_id=ds.id, subject=pseudonym, state=change.state, updated_at=now
                    )
                )
            else:
                conn.execute(
                    update(consents)
                    .where(consents.c.dataset_id == ds.id, consents.c.subject == pseudonym)
                    .values(state=change.state, updated_at=now)
                )
            self.record(
                conn,
                principal,
                action,
                dataset=ds.name,
                details={
                    "subject": self.keyring.person_hash(subject),
                    "state": change.state,
                    "by_self": is_self,
                },
            )
        if change.state == "withdrawn":
            # Nothing typed before the withdrawal is joined to what comes later.
            self._lifecycle.forget_keystrokes(pseudonym)
        result: dict[str, Any] = {
            "subject": pseudonym,
            "dataset": ds.name,
            "state": change.state,
            "updated_at": now.isoformat(),
        }
        if change.state == "withdrawn" and ds.erase_on_withdrawal:
            # The dataset promises that withdrawing consent also removes what was collected.
            result["erasure"] = self._lifecycle.erase(principal, subject, only_dataset=ds.name)
        return result
