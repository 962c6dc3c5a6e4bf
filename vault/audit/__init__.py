"""The tamper-evident audit log: hash chain, signed checkpoints, verification (DESIGN.md §6)."""

from vault.audit.actions import AuditAction, Outcome
from vault.audit.log import AuditEntry, AuditLog, VerifyReport

__all__ = ["AuditAction", "AuditEntry", "AuditLog", "Outcome", "VerifyReport"]
