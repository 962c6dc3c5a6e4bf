"""Ingest: validate a batch, refuse what must not be collected, redact, encrypt, store, audit.

A batch with any schema-invalid event is refused whole (nothing stored). Policy refusals are
per event. Everything that is stored, and the audit entry that records it, commit together.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Connection, Row, insert, select

from vault.audit import AuditAction, Outcome
from vault.crypto.envelope import MAX_PLAINTEXT, RecordContext, seal_record
from vault.domain.collection import Accepted, CollectionPolicy, decide_collection
from vault.domain.events import TelemetryEvent, epoch_of
from vault.domain.principal import Principal, Role
from vault.domain.redaction import RULES_VERSION, redact_batch
from vault.errors import PayloadTooLarge, ValidationFailed
from vault.services.base import ServiceBase
from vault.services.validation import pydantic_details
from vault.storage.tables import consents, datasets, records

__all__ = ["IngestService", "collection_policy", "consent_states"]

_EVENT = TypeAdapter(TelemetryEvent)
ConsentState = Literal["granted", "withdrawn"]
# One encoder, built once: json.dumps with options builds a new one on every call.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def collection_policy(ds: Row[Any], skew: int) -> CollectionPolicy:
    """The collection rules of one dataset row."""
    exclusions = ds.exclusions or {}
    return CollectionPolicy(
        consent_mode=ds.consent_mode,
        retention_days=ds.retention_days,
        jurisdictions=frozenset(ds.jurisdictions) if ds.jurisdictions is not None else None,
        excluded_apps=frozenset(exclusions.get("apps", ())),
        excluded_domains=frozenset(exclusions.get("domains", ())),
        excluded_categories=frozenset(exclusions.get("categories", ())),
        clock_skew_seconds=skew,
    )


def _to_ms(value: datetime) -> datetime:
    # Stored times carry milliseconds, as the sealed body does, so the two can be compared.
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


class IngestService(ServiceBase):
    """Stores batches of telemetry events."""

    def _validate(
        self, principal: Principal, dataset: str, items: list[Any]
    ) -> list[TelemetryEvent]:
        events: list[TelemetryEvent] = []
        invalid: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            try:
                events.append(_EVENT.validate_python(item))
            except ValidationError as exc:
                invalid.append({"index": index, "errors": pydantic_details(exc)})
        if invalid:
            with self.db.write() as conn:
                self.record(
                    conn,
                    principal,
                    AuditAction.EVENTS_INGEST,
                    Outcome.DENIED,
                    dataset=dataset,
                    reason="schema-invalid batch refused whole",
                    details={"events": len(items), "invalid": [i["index"] for i in invalid[:100]]},
                )
            raise ValidationFailed(
                f"{len(invalid)} event(s) invalid; nothing stored",
                details={"invalid_indexes": [i["index"] for i in invalid], "errors": invalid[:20]},
            )
        return events

    def ingest(
        self,
        principal: Principal,
        dataset: str,
        items: list[Any],
        *,
        after_store: Callable[[Connection, list[dict[str, Any]]], None] | None = None,
    ) -> dict[str, Any]:
        """Store what may be stored of a batch; answer per event.

        ``after_store`` (the importer's) runs inside the write transaction with the per-event
        results, after the records and the audit entry: what it writes commits with them, and
        if it raises nothing of the batch is stored.
        """
        self.require(principal, AuditAction.EVENTS_INGEST, [Role.COLLECTOR], dataset=dataset)
        ds = self.visible_dataset(principal, dataset, AuditAction.EVENTS_INGEST)
        if not items:
            raise ValidationFailed("empty batch", details={"invalid_indexes": []})
        if len(items) > self.deps.limits.max_batch_events:
            raise PayloadTooLarge(
                f"batch over {self.deps.limits.max_batch_events} events; split it"
            )
        events = self._validate(principal, dataset, items)
        now = self.deps.now()
        policy = collection_policy(ds, self.deps.limits.clock_skew_seconds)
        pseudonyms = {
            s: self.keyring.subject_pseudonym(ds.id, s) for s in {e.subject for e in events}
        }

        results: list[dict[str, Any]] = []
        reasons: Counter[str] = Counter()
        redactions: Counter[str] = Counter()
        groups: dict[tuple[str, int], list[tuple[int, TelemetryEvent, bytes, dict[str, int]]]]
        groups = defaultdict(list)
        with self.db.write() as conn:
            # The KEK version is read under a share lock inside this transaction, so a rotation
            # cannot destroy the version this batch wraps its new keys with (services/lifecycle).
            kek_version = conn.execute(
                select(datasets.c.kek_version)
                .where(datasets.c.id == ds.id)
                .with_for_update(read=True)
            ).scalar_one()
            consent = consent_states(conn, ds.id, set(pseudonyms.values()))
            accepted: list[int] = []
            for index, event in enumerate(events):
                decision = decide_collection(
                    event, policy, consent.get(pseudonyms[event.subject]), now
                )
                if isinstance(decision, Accepted):
                    accepted.append(index)
                else:
                    reasons[decision.reason] += 1
                    results.append({"index": index, "status": "refused", "reason": decision.reason})
            # Redacted as a batch: keystrokes are reassembled per focus target across events.
            outcomes = redact_batch([events[i] for i in accepted])
            for index, outcome in zip(accepted, outcomes, strict=True):
                event = events[index]
                subject = pseudonyms[event.subject]
                plaintext = _JSON.encode(outcome.body).encode("utf-8")
                if len(plaintext) > MAX_PLAINTEXT:
                    raise PayloadTooLarge(f"event {index} is over the record size limit")
                redactions.update(outcome.counts)
                groups[(subject, epoch_of(event.time))].append(
                    (index, event, plaintext, outcome.counts)
                )
            rows = self._seal_groups(conn, ds, kek_version, groups=groups, results=results, now=now)
            if rows:
                conn.execute(insert(records), rows)
            self.record(
                conn,
                principal,
                AuditAction.EVENTS_INGEST,
                dataset=dataset,
                details={
                    "received": len(events),
                    "stored": len(rows),
                    "refused": dict(sorted(reasons.items())),
                    "redactions": dict(sorted(redactions.items())),
                    "rules_version": RULES_VERSION,
                },
            )
            results.sort(key=lambda r: int(r["index"]))
            if after_store is not None:
                after_store(conn, results)
        return {"accepted": len(rows), "refused": len(events) - len(rows), "results": results}

    def _seal_groups(
        self,
        conn: Connection,
        ds: Row[Any],
        kek_version: int,
        *,
        groups: dict[tuple[str, int], list[tuple[int, TelemetryEvent, bytes, dict[str, int]]]],
        results: list[dict[str, Any]],
        now: datetime,
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        keys = self.keyring.seks_for_write(
            conn, ds.id, kek_version, {pair: len(members) for pair, members in groups.items()}
        )
        for (subject, epoch), members in groups.items():
            sek = keys[(subject, epoch)]
            for index, event, plaintext, counts in members:
                rid = uuid.uuid4()
                ctx = RecordContext(ds.id, rid.bytes, subject, epoch, sek.id)
                rows.append(
                    {
                        "id": rid.hex,
                        "dataset_id": ds.id,
                        "subject": subject,
                        "epoch": epoch,
                        "event_time": _to_ms(event.time),
                        "kind": event.kind.value,
                        "size": len(plaintext),
                        "redactions": counts,
                        "rules_version": RULES_VERSION,
                        "sek_id": sek.id,
                        "envelope": seal_record(sek.key, ctx, plaintext),
                        "stored_at": now,
                    }
                )
                result: dict[str, Any] = {"index": index, "status": "stored", "id": rid.hex}
                if counts:
                    result["redactions"] = dict(sorted(counts.items()))
                results.append(result)
        return rows


def consent_states(
    conn: Connection, dataset_id: str, subjects: set[str]
) -> dict[str, ConsentState]:
    """The recorded consent of each of ``subjects`` (pseudonyms) in one dataset."""
    found: dict[str, ConsentState] = {}
    ordered = sorted(subjects)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        for row in conn.execute(
            select(consents.c.subject, consents.c.state).where(
                consents.c.dataset_id == dataset_id, consents.c.subject.in_(chunk)
            )
        ):
            found[row.subject] = "granted" if row.state == "granted" else "withdrawn"
    return found
