"""Audit action names, as ``scope:action`` values."""

from __future__ import annotations

import enum

__all__ = ["AuditAction", "Outcome"]


class AuditAction(enum.StrEnum):
    """Every kind of entry the vault writes."""

    AUTH_FAILED = "auth:failed"
    DATASET_CREATE = "dataset:create"
    DATASET_LIST = "dataset:list"
    DATASET_READ = "dataset:read"
    EVENTS_INGEST = "events:ingest"
    EVENTS_READ = "events:read"
    EVENT_READ = "event:read"
    BLOB_UPLOAD = "blob:upload"
    BLOB_READ = "blob:read"
    EXPORT_START = "export:start"
    EXPORT_FINISH = "export:finish"
    CONSENT_SET = "consent:set"
    SUBJECT_ACCESS = "subject:access"
    SUBJECT_ERASE = "subject:erase"
    ERASURE_READ = "erasure:read"
    KEYS_ROTATE = "keys:rotate"
    KEYS_DESTROY = "keys:destroy"
    KEYS_ROTATE_MASTER = "keys:rotate_master"
    HOLD_SET = "hold:set"
    HOLD_LIFT = "hold:lift"
    RETENTION_SWEEP = "retention:sweep"
    SUBJECT_SUMMARY = "subject:summary"
    AUDIT_READ = "audit:read"
    AUDIT_VERIFY = "audit:verify"
    AUDIT_CHECKPOINT = "audit:checkpoint"
    KEYS_LIST = "keys:list"
    TOKEN_ISSUE = "token:issue"  # noqa: S105 - an action name, not a secret
    RESTORE = "vault:restore"
    IMPORT_START = "import:start"
    IMPORT_BATCH = "import:batch"
    IMPORT_FINISH = "import:finish"
    IMPORT_RETIRE_BEGIN = "import:retire-begin"
    IMPORT_RETIRE = "import:retire"
    EVENTS_REMASK = "events:remask"
    REDACT_START = "redaction:start"
    REDACT_BATCH = "redaction:batch"
    REDACT_FINISH = "redaction:finish"


class Outcome(enum.StrEnum):
    """What became of the request."""

    OK = "ok"
    DENIED = "denied"
    FAILED = "failed"
