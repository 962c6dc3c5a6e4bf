"""Ingest: validate a batch, refuse what must not be collected, redact, encrypt, store, audit.

A batch with any schema-invalid event is refused whole (nothing stored). Policy refusals are
per event. Everything that is stored, and the audit entry that records it, commit together.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Connection, Row, bindparam, select

from vault.audit import AuditAction, Outcome
from vault.crypto.envelope import MAX_PLAINTEXT, RecordSealer
from vault.domain.collection import Accepted, CollectionPolicy, Decision, decide_collection
from vault.domain.events import TelemetryEvent, epoch_of
from vault.domain.principal import Principal, Role
from vault.domain.redaction import (
    MASKED_KEY,
    RULES_VERSION,
    KeyTail,
    Redactor,
    StreamResult,
    redact_stream,
)
from vault.domain.redaction.keystrokes import target_key
from vault.errors import DecryptionError, KeyDestroyed, PayloadTooLarge, ValidationFailed
from vault.services.base import Deps, ServiceBase
from vault.services.redaction_modes import RedactionSetup, redactor_for
from vault.services.resealing import book_keys, lock_record, open_body, reseal
from vault.services.validation import pydantic_details
from vault.storage.record_insert import insert_records
from vault.storage.tables import consents, datasets

__all__ = ["IngestService", "collection_policy", "consent_states"]

_EVENT = TypeAdapter(TelemetryEvent)
ConsentState = Literal["granted", "withdrawn"]
# One encoder, built once: json.dumps with options builds a new one on every call.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
# Statements built once (their compiled forms are cached): every batch runs them.
# The KEK version is read under a share lock inside the write transaction (see _store).
_KEK_VERSION = (
    select(datasets.c.kek_version)
    .where(datasets.c.id == bindparam("ds"))
    .with_for_update(read=True)
)
_CONSENTS = select(consents.c.subject, consents.c.state).where(
    consents.c.dataset_id == bindparam("ds"),
    consents.c.subject.in_(bindparam("subjects", expanding=True)),
)


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


Member = tuple[int, TelemetryEvent, bytes, dict[str, int], uuid.UUID]


@dataclass(frozen=True, slots=True)
class _Plan:
    """A batch redacted before its transaction: for the events it expected to accept."""

    redactor: Redactor
    tails: dict[bytes, KeyTail]
    consent: dict[str, ConsentState]
    decisions: list[Decision]
    expected: list[int]
    stream: StreamResult
    rids: list[uuid.UUID]


class IngestService(ServiceBase):
    """Stores batches of telemetry events."""

    def __init__(self, deps: Deps, redaction: RedactionSetup | None = None) -> None:
        super().__init__(deps)
        self.redaction = redaction or RedactionSetup()

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
            self.record_alone(
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
        # One read transaction for the dataset and its subjects' consent (the batch is checked
        # in between: pure work, no I/O).
        with self.db.read() as conn:
            ds = self.visible_dataset(principal, dataset, AuditAction.EVENTS_INGEST, conn=conn)
            if not items:
                raise ValidationFailed("empty batch", details={"invalid_indexes": []})
            if len(items) > self.deps.limits.max_batch_events:
                raise PayloadTooLarge(
                    f"batch over {self.deps.limits.max_batch_events} events; split it"
                )
            events = self._validate(principal, dataset, items)
            pseudonyms = {
                s: self.keyring.subject_pseudonym(ds.id, s) for s in {e.subject for e in events}
            }
            early = consent_states(conn, ds.id, set(pseudonyms.values()))
        now = self.deps.now()
        policy = collection_policy(ds, self.deps.limits.clock_skew_seconds)

        results: list[dict[str, Any]] = []
        state = self.redaction.keystrokes
        redactor = redactor_for(self.keyring, ds, self.redaction.names)
        # Redaction (a name model can be slow) runs before the write transaction, on the events
        # the collection rules accept now; inside it the decision is made again and, should
        # consent have changed meanwhile (rare), what is accepted then is redacted there again.
        decisions = [
            decide_collection(e, policy, early.get(pseudonyms[e.subject]), now) for e in events
        ]
        expected = [i for i, d in enumerate(decisions) if isinstance(d, Accepted)]
        lease = state.lease() if state is not None else None
        try:
            tails: dict[bytes, KeyTail] = {}
            if state is not None:
                tails = state.take(
                    {target_key(ds.id, events[i]) for i in expected if events[i].kind == "key"}
                )
            plan = _Plan(
                redactor,
                tails,
                early,
                decisions,
                expected,
                *self._redact(redactor, ds, events, expected, tails),
            )
            # PostgreSQL: the day partitions these events go to, made in a transaction of their
            # own. Times outside retention or in the future are refused below: no partition.
            earliest, latest = now - timedelta(days=ds.retention_days + 1), now + timedelta(days=1)
            self.db.partitions.ensure(
                ds.id, (epoch_of(e.time) for e in events if earliest <= e.time <= latest)
            )

            def store(conn: Connection) -> tuple[int, StreamResult]:
                results.clear()  # filled here only: nothing of a rolled-back attempt remains
                done = self._store(
                    conn, principal, ds, events, plan, policy=policy, pseudonyms=pseudonyms,
                    results=results, now=now,
                )  # fmt: skip
                if after_store is not None:
                    after_store(conn, results)
                return done

            # On SQLite, concurrent batches share one transaction and one commit (group
            # commit, each in a savepoint of its own); this returns once it is committed.
            stored, stream = self.db.write_shared(store)
            if state is not None:
                subjects = {
                    target_key(ds.id, e): pseudonyms[e.subject] for e in events if e.kind == "key"
                }
                # Only once the batch is committed, and not for a subject forgotten meanwhile.
                state.put(stream.tails, subjects=subjects, lease=lease)
        finally:
            if state is not None and lease is not None:
                state.release(lease)
        return {"accepted": stored, "refused": len(events) - stored, "results": results}

    def _store(
        self,
        conn: Connection,
        principal: Principal,
        ds: Row[Any],
        events: list[TelemetryEvent],
        plan: _Plan,
        *,
        policy: CollectionPolicy,
        pseudonyms: dict[str, str],
        results: list[dict[str, Any]],
        now: datetime,
    ) -> tuple[int, StreamResult]:
        """Decide, re-mask, seal, insert and audit, in the write transaction."""
        # The KEK version is read under a share lock inside this transaction, so a rotation
        # cannot destroy the version this batch wraps its new keys with (services/lifecycle).
        # The same lock orders this batch before or after an erasure (FOR UPDATE) as a whole.
        kek_version = conn.execute(_KEK_VERSION, {"ds": ds.id}).scalar_one()
        consent = consent_states(conn, ds.id, set(pseudonyms.values()))
        decisions = plan.decisions
        if consent != plan.consent:  # consent changed since the batch was redacted: decide again
            decisions = [
                decide_collection(e, policy, consent.get(pseudonyms[e.subject]), now)
                for e in events
            ]
        reasons: Counter[str] = Counter()
        accepted: list[int] = []
        for index, decision in enumerate(decisions):
            if isinstance(decision, Accepted):
                accepted.append(index)
            else:
                reasons[decision.reason] += 1
                results.append({"index": index, "status": "refused", "reason": decision.reason})
        stream, rids = plan.stream, plan.rids
        if accepted != plan.expected:
            stream, rids = self._redact(plan.redactor, ds, events, accepted, plan.tails)
        if stream.remask:
            self._remask(conn, principal, ds, stream.remask)
        redactions: Counter[str] = Counter()
        groups: dict[tuple[str, int], list[Member]] = defaultdict(list)
        for index, outcome, rid in zip(accepted, stream.outcomes, rids, strict=True):
            event = events[index]
            subject = pseudonyms[event.subject]
            plaintext = _JSON.encode(outcome.body).encode("utf-8")
            if len(plaintext) > MAX_PLAINTEXT:
                raise PayloadTooLarge(f"event {index} is over the record size limit")
            redactions.update(outcome.counts)
            groups[(subject, epoch_of(event.time))].append(
                (index, event, plaintext, outcome.counts, rid)
            )
        rows = self._seal_groups(conn, ds, kek_version, groups=groups, results=results, now=now)
        insert_records(conn, rows)
        self.record(
            conn,
            principal,
            AuditAction.EVENTS_INGEST,
            dataset=ds.name,
            details={
                "received": len(events),
                "stored": len(rows),
                "refused": dict(sorted(reasons.items())),
                "redactions": dict(sorted(redactions.items())),
                "rules_version": RULES_VERSION,
            },
        )
        results.sort(key=lambda r: int(r["index"]))
        return len(rows), stream

    def _seal_groups(
        self,
        conn: Connection,
        ds: Row[Any],
        kek_version: int,
        *,
        groups: dict[tuple[str, int], list[Member]],
        results: list[dict[str, Any]],
        now: datetime,
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        keys = self.keyring.seks_for_write(
            conn, ds.id, kek_version, {pair: len(members) for pair, members in groups.items()}
        )
        for (subject, epoch), members in groups.items():
            sek = keys[(subject, epoch)]
            sealer = RecordSealer(sek.key, ds.id, subject, epoch, sek.id)
            for index, event, plaintext, counts, rid in members:
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
                        "envelope": sealer.seal(rid.bytes, plaintext),
                        "stored_at": now,
                    }
                )
                result: dict[str, Any] = {"index": index, "status": "stored", "id": rid.hex}
                if counts:
                    result["redactions"] = dict(sorted(counts.items()))
                results.append(result)
        return rows

    def _redact(
        self,
        redactor: Redactor,
        ds: Row[Any],
        events: list[TelemetryEvent],
        indexes: list[int],
        tails: dict[bytes, KeyTail],
    ) -> tuple[StreamResult, list[uuid.UUID]]:
        """Redact the events at ``indexes`` with the dataset's redactor, continuing keystroke
        streams from ``tails`` (this process's, taken by the caller); pure, no transaction."""
        kept = [events[i] for i in indexes]
        rids = [uuid.uuid4() for _ in kept]
        state = self.redaction.keystrokes
        if state is None:
            return redact_stream(kept, redactor=redactor, scope=ds.id), rids
        stream = redact_stream(
            kept,
            redactor=redactor,
            scope=ds.id,
            refs=[rid.hex for rid in rids],
            tails=tails,
            idle_seconds=state.idle_seconds,
        )
        return stream, rids

    def _remask(
        self,
        conn: Connection,
        principal: Principal,
        ds: Row[Any],
        remask: dict[str, dict[str, int]],
    ) -> None:
        """Mask stored key events that turned out to be part of a secret typed across batches:
        decrypt, mask, seal again (same id, fresh DEK), audited in this transaction."""
        changed = skipped = 0
        counts: Counter[str] = Counter()
        # Lock order (as the re-redaction job): the dataset row (FOR SHARE, taken by the
        # caller), then every record, in id order, then the subject keys, in id order.
        rows = [row for rid in sorted(remask) if (row := lock_record(conn, ds.id, rid)) is not None]
        opened: list[tuple[Row[Any], dict[str, Any]]] = []
        for row in rows:  # a record erased meanwhile is gone: nothing left to mask
            try:
                body = open_body(self.keyring, conn, ds.id, row)
            except (DecryptionError, KeyDestroyed):
                skipped += 1  # shredded or unreadable: its plaintext is out of reach already
                continue
            if body.get("data") == MASKED_KEY and not remask[row.id]:
                continue
            opened.append((row, body))
        keys = book_keys(self.keyring, conn, Counter(bytes(row.sek_id) for row, _ in opened))
        for row, body in opened:
            sek = keys.get(bytes(row.sek_id))
            if sek is None:
                skipped += 1  # key shredded or at its usage limit meanwhile
                continue
            body["data"] = dict(MASKED_KEY)
            merged = Counter(row.redactions or {})
            merged.update(remask[row.id])
            counts.update(remask[row.id])
            reseal(conn, sek, row, body, redactions=dict(merged))
            changed += 1
        self.record(
            conn,
            principal,
            AuditAction.EVENTS_REMASK,
            dataset=ds.name,
            details={
                "records": changed,
                "unreadable": skipped,
                "redactions": dict(sorted(counts.items())),
            },
        )


def consent_states(
    conn: Connection, dataset_id: str, subjects: set[str]
) -> dict[str, ConsentState]:
    """The recorded consent of each of ``subjects`` (pseudonyms) in one dataset."""
    found: dict[str, ConsentState] = {}
    ordered = sorted(subjects)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        for row in conn.execute(_CONSENTS, {"ds": dataset_id, "subjects": chunk}):
            found[row.subject] = "granted" if row.state == "granted" else "withdrawn"
    return found
