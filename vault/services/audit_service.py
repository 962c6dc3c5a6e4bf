"""Audit use cases: read entries, verify the chain, write a signed checkpoint (auditors)."""

from __future__ import annotations

import json
from typing import Any

from vault.audit import AuditAction
from vault.domain.access import Denied
from vault.domain.principal import Principal, Role
from vault.errors import BadRequest
from vault.services.base import ServiceBase

__all__ = ["AuditService"]

_AUDIT_ROLES = (Role.AUDITOR,)
MAX_SEQ = 2**63 - 1


class AuditService(ServiceBase):
    """What auditors (and the local operator) can do with the log."""

    def _whole_log(self, principal: Principal, action: AuditAction) -> None:
        """The log is vault-wide: an auditor token limited to some datasets may not read it."""
        self.require(principal, action, _AUDIT_ROLES)
        if principal.datasets is not None:
            self.deny(
                principal,
                action,
                Denied("the audit log spans every dataset; this token is limited to some"),
            )

    def entries(self, principal: Principal, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """Entries after ``after``; the read itself is audited."""
        self._whole_log(principal, AuditAction.AUDIT_READ)
        if not 0 <= after <= MAX_SEQ or not 1 <= limit <= self.deps.limits.max_page_size:
            raise BadRequest(f"after >= 0 and limit 1..{self.deps.limits.max_page_size}")
        with self.db.read() as conn:
            rows = self.audit.entries(conn, after=after, limit=limit)
        self.record_alone(
            principal,
            AuditAction.AUDIT_READ,
            details={"after": after, "count": len(rows)},
        )
        entries = [{**row, "details": json.loads(row["details"])} for row in rows]
        next_after = entries[-1]["seq"] if len(entries) == limit else None
        return {"entries": entries, "next_after": next_after}

    def verify(
        self, principal: Principal, checkpoint: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Verify the whole chain, stored checkpoints and an optional external checkpoint."""
        self._whole_log(principal, AuditAction.AUDIT_VERIFY)
        with self.db.read() as conn:
            report = self.audit.verify(conn, checkpoint)
        self.record_alone(
            principal,
            AuditAction.AUDIT_VERIFY,
            details={
                "ok": report.ok,
                "entries": report.entries,
                "first_broken_seq": report.first_broken_seq,
            },
        )
        return report.as_dict()

    def checkpoint(self, principal: Principal) -> dict[str, Any]:
        """Sign the head (after recording this request) and return the checkpoint document."""
        self._whole_log(principal, AuditAction.AUDIT_CHECKPOINT)
        with self.db.write() as conn:
            self.record(conn, principal, AuditAction.AUDIT_CHECKPOINT)
            return self.audit.checkpoint(conn)
