"""Datasets: create (admin), list and describe (any role with a grant)."""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from sqlalchemy import Row, insert, select

from vault.audit import AuditAction, Outcome
from vault.domain.collection import validate_dataset_exclusions
from vault.domain.principal import Principal, Role
from vault.domain.purposes import normalize_purpose
from vault.errors import Conflict, ValidationFailed
from vault.services.base import DATASET_NAME, ServiceBase
from vault.services.validation import pydantic_details
from vault.storage.tables import datasets

__all__ = ["DATASET_NAME", "DatasetService", "DatasetSpec", "RedactionSpec"]

_ANY_ROLE = tuple(Role)


class Exclusions(BaseModel):
    """A dataset's own exclusions, added to the built-in ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    apps: list[str] = Field(default_factory=list, max_length=256)
    domains: list[str] = Field(default_factory=list, max_length=256)
    categories: list[str] = Field(default_factory=list, max_length=64)


class RedactionSpec(BaseModel):
    """How a dataset's redaction replaces what it finds (fixed at creation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    replacement: Literal["placeholder", "pseudonym"] = "placeholder"


class DatasetSpec(BaseModel):
    """The body of ``POST /v1/datasets`` (CONTRACT.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=DATASET_NAME.pattern)
    retention_days: StrictInt = Field(ge=1, le=3650)
    purposes: list[str] = Field(min_length=1, max_length=64)
    consent: Literal["opt_in", "opt_out"] = "opt_in"
    jurisdictions: list[str] | None = Field(default=None, min_length=1, max_length=250)
    exclusions: Exclusions = Field(default_factory=Exclusions)
    erase_on_withdrawal: StrictBool = False
    redaction: RedactionSpec = Field(default_factory=RedactionSpec)


def describe(row: Row[Any]) -> dict[str, Any]:
    """The public description of a dataset (no key material, nothing about people)."""
    return {
        "name": row.name,
        "retention_days": row.retention_days,
        "purposes": list(row.purposes),
        "consent": row.consent_mode,
        "jurisdictions": list(row.jurisdictions) if row.jurisdictions is not None else None,
        "exclusions": dict(row.exclusions),
        "kek_version": row.kek_version,
        "erase_on_withdrawal": bool(row.erase_on_withdrawal),
        "redaction": {"replacement": row.replacement},
        "created_at": row.created_at.isoformat(),
    }


class DatasetService(ServiceBase):
    """Use cases on datasets."""

    def _validate(self, principal: Principal, raw: Any) -> DatasetSpec:
        try:
            spec = DatasetSpec.model_validate(raw)
        except ValidationError as exc:
            raise ValidationFailed("invalid dataset", details=pydantic_details(exc)) from exc
        problems: list[dict[str, Any]] = []
        for item in spec.purposes:
            purpose = normalize_purpose(item)
            if purpose is None:
                problems.append({"loc": ["purposes"], "msg": f"invalid purpose name {item!r}"})
            elif purpose in self.deps.forbidden:
                problems.append({"loc": ["purposes"], "msg": f"purpose {purpose} is forbidden"})
        for code in spec.jurisdictions or []:
            if not re.fullmatch(r"[A-Z]{2}", code):
                problems.append({"loc": ["jurisdictions"], "msg": f"not an ISO code: {code!r}"})
        try:
            validate_dataset_exclusions(
                spec.exclusions.apps, spec.exclusions.domains, spec.exclusions.categories
            )
        except ValueError as exc:
            problems.append({"loc": ["exclusions"], "msg": str(exc)})
        if problems:
            self.record_alone(
                principal,
                AuditAction.DATASET_CREATE,
                Outcome.DENIED,
                dataset=spec.name,
                # Field names only: the rejected values are caller input.
                reason="invalid " + ", ".join(sorted({str(p["loc"][0]) for p in problems})),
            )
            raise ValidationFailed("invalid dataset", details=problems)
        return spec

    def create(self, principal: Principal, raw: Any) -> dict[str, Any]:
        """Create a dataset and its first KEK version (admin only)."""
        self.require(principal, AuditAction.DATASET_CREATE, [Role.ADMIN])
        spec = self._validate(principal, raw)
        apps, domains, categories = validate_dataset_exclusions(
            spec.exclusions.apps, spec.exclusions.domains, spec.exclusions.categories
        )
        dataset_id = uuid.uuid4().hex
        with self.db.write() as conn:
            if self.dataset_row(conn, spec.name) is not None:
                raise Conflict("a dataset with that name exists")
            conn.execute(
                insert(datasets).values(
                    id=dataset_id,
                    name=spec.name,
                    retention_days=spec.retention_days,
                    consent_mode=spec.consent,
                    purposes=sorted({normalize_purpose(p) or p for p in spec.purposes}),
                    jurisdictions=sorted(set(spec.jurisdictions))
                    if spec.jurisdictions is not None
                    else None,
                    exclusions={
                        "apps": sorted(apps),
                        "domains": sorted(domains),
                        "categories": sorted(categories),
                    },
                    kek_version=1,
                    erase_on_withdrawal=spec.erase_on_withdrawal,
                    replacement=spec.redaction.replacement,
                    created_at=self.deps.now(),
                )
            )
            version = self.keyring.create_dataset_kek(conn, dataset_id)
            if version != 1:
                raise Conflict("the key provider already holds keys for this dataset id")
            self.record(
                conn,
                principal,
                AuditAction.DATASET_CREATE,
                dataset=spec.name,
                details={
                    "retention_days": spec.retention_days,
                    "consent": spec.consent,
                    "replacement": spec.redaction.replacement,
                },
            )
            row = self.dataset_row(conn, spec.name)
        assert row is not None
        return describe(row)

    def list(self, principal: Principal) -> list[dict[str, Any]]:
        """Datasets the caller's token may see."""
        self.require(principal, AuditAction.DATASET_LIST, _ANY_ROLE)
        with self.db.read() as conn:
            rows = conn.execute(select(datasets).order_by(datasets.c.name)).all()
        return [describe(r) for r in rows if principal.may_see_dataset(r.name)]

    def get(self, principal: Principal, name: str) -> dict[str, Any]:
        """One dataset, or NotFound when absent or not granted (indistinguishable)."""
        self.require(principal, AuditAction.DATASET_READ, _ANY_ROLE, dataset=name)
        return describe(self.visible_dataset(principal, name, AuditAction.DATASET_READ))
