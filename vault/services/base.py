"""What every service shares: dependencies, the access gate and audit helpers.

Services are the one place that enforces policy and writes the audit log; both faces (HTTP and
CLI) call them, so no check can be skipped by choosing the other face.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import Connection, Row, Table, bindparam, select

from vault.audit import AuditAction, AuditEntry, AuditLog, Outcome
from vault.domain.access import (
    Decision,
    Denial,
    Denied,
    decide_dataset_visible,
    decide_read,
    decide_role,
)
from vault.domain.principal import Principal, Role
from vault.domain.purposes import ForbiddenPurposes, normalize_purpose
from vault.errors import (
    BadRequest,
    DecryptionError,
    Forbidden,
    ForbiddenPurpose,
    Gone,
    IntegrityError,
    KeyDestroyed,
    NotFound,
    VaultError,
)
from vault.keyring import Keyring
from vault.storage import Database
from vault.storage.tables import datasets, record_tombstones

__all__ = ["Deps", "Limits", "ServiceBase"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one request may ask for."""

    max_batch_events: int
    max_page_size: int
    clock_skew_seconds: int


@dataclass(frozen=True, slots=True)
class Deps:
    """Everything a service needs, built once by the composition root."""

    db: Database
    keyring: Keyring
    audit: AuditLog
    now: Callable[[], datetime]
    forbidden: ForbiddenPurposes
    limits: Limits


DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: Record, blob and other object ids: uuid4 hex.
OBJECT_ID = re.compile(r"^[0-9a-f]{32}$")


#: Built once (every request looks its dataset up by name).
_DATASET_BY_NAME = select(datasets).where(datasets.c.name == bindparam("name"))


def _clean(value: str | None, limit: int) -> str | None:
    """Caller-supplied text made safe for any database column: printable, bounded."""
    if value is None:
        return None
    printable = "".join(ch if ch.isprintable() else "\ufffd" for ch in value)
    return printable[:limit]


_DENIAL_ERRORS: dict[Denial, type[VaultError]] = {
    Denial.NOT_FOUND: NotFound,
    Denial.FORBIDDEN: Forbidden,
    Denial.FORBIDDEN_PURPOSE: ForbiddenPurpose,
    Denial.BAD_PURPOSE: BadRequest,
}

_CLIENT_MESSAGES: dict[Denial, str] = {
    Denial.NOT_FOUND: "not found",
    Denial.FORBIDDEN: "not allowed",
    Denial.FORBIDDEN_PURPOSE: "this purpose can never be granted",
    Denial.BAD_PURPOSE: "declare an allowed purpose (X-Purpose header; --purpose in the CLI)",
}


class ServiceBase:
    """Shared helpers: audited denials, role gates, dataset lookup with object-level checks."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.db = deps.db
        self.keyring = deps.keyring
        self.audit = deps.audit

    def actor(self, principal: Principal) -> str:
        """The keyed hash that stands for the caller in the audit log."""
        return self.keyring.person_hash(f"{principal.via}:{principal.sub}")

    def record_alone(
        self,
        principal: Principal,
        action: AuditAction,
        outcome: Outcome = Outcome.OK,
        *,
        dataset: str | None = None,
        purpose: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Append an audit entry in a write transaction of its own."""
        with self.db.write() as conn:
            return self.record(
                conn,
                principal,
                action,
                outcome,
                dataset=dataset,
                purpose=purpose,
                reason=reason,
                details=details,
            )

    def record(
        self,
        conn: Connection,
        principal: Principal,
        action: AuditAction,
        outcome: Outcome = Outcome.OK,
        *,
        dataset: str | None = None,
        purpose: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Append an audit entry in ``conn``'s transaction."""
        return self.audit.append(
            conn,
            AuditEntry(
                actor=self.actor(principal),
                role=principal.primary_role,
                action=action,
                outcome=outcome,
                dataset=self._safe_name(dataset, DATASET_NAME.fullmatch),
                purpose=self._safe_name(purpose, normalize_purpose),
                reason=_clean(reason, 256),
                details=details or {"via": principal.via},
            ),
        )

    def _safe_name(self, value: str | None, check: Callable[[str], object]) -> str | None:
        """A dataset name or purpose as the audit log may hold it.

        Well-formed names are kept (purposes in canonical form); anything else is caller input
        that may carry personal data, so only its keyed hash is written.
        """
        if value is None:
            return None
        ok = check(value)
        if isinstance(ok, str):
            return ok
        if ok is not None:
            return value
        digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
        return "malformed:" + self.keyring.person_hash(digest)[:16]

    def deny(
        self,
        principal: Principal,
        action: AuditAction,
        denied: Denied,
        *,
        dataset: str | None = None,
        purpose: str | None = None,
    ) -> NoReturn:
        """Write the denial to the audit log (its own transaction), then raise the client error."""
        self.record_alone(
            principal,
            action,
            Outcome.DENIED,
            dataset=dataset,
            purpose=purpose,
            reason=denied.reason,
        )
        raise _DENIAL_ERRORS[denied.kind](_CLIENT_MESSAGES[denied.kind])

    def gate(
        self,
        principal: Principal,
        action: AuditAction,
        decision: Decision,
        *,
        dataset: str | None = None,
        purpose: str | None = None,
    ) -> None:
        """Go on if allowed; otherwise audit and raise."""
        if isinstance(decision, Denied):
            self.deny(principal, action, decision, dataset=dataset, purpose=purpose)

    def require(
        self,
        principal: Principal,
        action: AuditAction,
        roles: Iterable[Role],
        *,
        dataset: str | None = None,
    ) -> None:
        """Audited role check."""
        self.gate(principal, action, decide_role(principal, roles), dataset=dataset)

    def may_name_dataset(self, principal: Principal, name: str, action: AuditAction) -> None:
        """The checks of :meth:`visible_dataset` that need no database: the caller's grant on
        ``name`` and its form; an audited NotFound otherwise."""
        self.gate(principal, action, decide_dataset_visible(principal, name), dataset=name)
        if not DATASET_NAME.fullmatch(name):
            # Never send a malformed name (NUL bytes, 5 KB strings) to the database at all.
            self.deny(
                principal, action, Denied("malformed dataset name", Denial.NOT_FOUND), dataset=name
            )

    def visible_dataset(
        self,
        principal: Principal,
        name: str,
        action: AuditAction,
        *,
        conn: Connection | None = None,
    ) -> Row[Any]:
        """The dataset row, or an audited NotFound that does not reveal whether it exists.

        Read in ``conn``'s transaction when given, else in a read transaction of its own.
        """
        self.may_name_dataset(principal, name, action)
        if conn is not None:
            row = self.dataset_row(conn, name)
        else:
            with self.db.read() as own:
                row = self.dataset_row(own, name)
        if row is None:
            self.deny(principal, action, Denied("no such dataset", Denial.NOT_FOUND), dataset=name)
        return row

    def authorize_read(
        self, principal: Principal, dataset: str, purpose: str | None, action: AuditAction
    ) -> tuple[Row[Any], str]:
        """Reader role, a grant on the dataset and an allowed purpose; returns the purpose."""
        self.require(principal, action, [Role.READER], dataset=dataset)
        ds = self.visible_dataset(principal, dataset, action)
        decision = decide_read(principal, ds.purposes, purpose, self.deps.forbidden)
        if isinstance(decision, Denied):
            self.deny(principal, action, decision, dataset=dataset, purpose=purpose)
        return ds, decision.purpose or ""

    def one_object(
        self,
        principal: Principal,
        action: AuditAction,
        ds: Row[Any],
        table: Table,
        *,
        object_id: str,
        purpose: str,
    ) -> Row[Any]:
        """The row ``object_id`` of ``table`` in ``ds``: an audited 410 if it was erased, 404
        if it never existed here (another dataset's id included)."""
        row = None
        if OBJECT_ID.fullmatch(object_id):
            with self.db.read() as conn:
                row = conn.execute(
                    select(table).where(table.c.id == object_id, table.c.dataset_id == ds.id)
                ).one_or_none()
            if row is None:
                self.refuse_if_erased(principal, action, ds, object_id, purpose)
        if row is None:
            raise NotFound("not found")
        return row

    def refuse_if_erased(
        self,
        principal: Principal,
        action: AuditAction,
        ds: Row[Any],
        object_id: str,
        purpose: str,
    ) -> None:
        """Raise an audited Gone (410) when ``object_id`` of ``ds`` was erased."""
        with self.db.read() as conn:
            hit = conn.execute(
                select(record_tombstones.c.id).where(
                    record_tombstones.c.id == object_id,
                    record_tombstones.c.dataset_id == ds.id,
                )
            ).first()
        if hit is None:
            return
        self.record_alone(
            principal,
            action,
            Outcome.DENIED,
            dataset=ds.name,
            purpose=purpose,
            reason="erased",
            details={"object": object_id},
        )
        raise Gone("this object was erased")

    def integrity_failure(
        self,
        principal: Principal,
        action: AuditAction,
        ds: Row[Any],
        purpose: str,
        exc: DecryptionError | KeyDestroyed,
    ) -> NoReturn:
        """Audit a read that failed to decrypt, then raise: 410 if its key was shredded, else
        an integrity error (tampering or corruption)."""
        gone = isinstance(exc, KeyDestroyed)
        self.record_alone(
            principal,
            action,
            Outcome.FAILED,
            dataset=ds.name,
            purpose=purpose,
            reason="key destroyed" if gone else "integrity check failed",
        )
        if gone:
            raise exc
        raise IntegrityError("stored data failed its integrity check") from exc

    @staticmethod
    def dataset_row(conn: Connection, name: str) -> Row[Any] | None:
        """The dataset named ``name``, if any."""
        return conn.execute(_DATASET_BY_NAME, {"name": name}).one_or_none()
