"""Ingest: validate a batch, refuse what must not be collected, redact, encrypt, store, audit.

A batch with any schema-invalid event is refused whole (nothing stored). Policy refusals are
per event. Everything that is stored, and the audit entry that records it, commit together.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, Literal, NamedTuple, cast

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Connection, Row, bindparam, select

from vault.audit import AuditAction, Outcome
from vault.crypto.envelope import MAX_PLAINTEXT, RecordSealer
from vault.domain.collection import Accepted, CollectionPolicy, Decision, decide_collection
from vault.domain.events import EventKind, TelemetryEvent, epoch_of, format_time
from vault.domain.principal import Principal, Role
from vault.domain.redaction import (
    MASKED_KEY,
    RULES_VERSION,
    KeyTail,
    RedactionOutcome,
    Redactor,
    StreamResult,
    redact_stream,
)
from vault.domain.redaction.keystrokes import target_key
from vault.errors import DecryptionError, KeyDestroyed, PayloadTooLarge, ValidationFailed
from vault.keyring import SubjectKey
from vault.services.base import Deps, ServiceBase
from vault.services.body_json import encode_text
from vault.services.redaction_modes import RedactionSetup, redactor_for
from vault.services.resealing import book_keys, lock_record, open_body, reseal
from vault.services.validation import pydantic_details
from vault.storage.record_insert import insert_record_parts
from vault.storage.tables import consents, datasets

__all__ = [
    "WITHHELD",
    "Ahead",
    "IngestService",
    "Redacted",
    "ahead_of",
    "collection_policy",
    "consent_states",
]

_EVENT = TypeAdapter(TelemetryEvent)
_EVENTS = TypeAdapter(list[TelemetryEvent])
ConsentState = Literal["granted", "withdrawn"]

# Statements built once (their compiled forms are cached): every batch runs them.
# The dataset row (its KEK version) is read under a share lock inside the write transaction
# (see _store).
_DATASET_FOR_SHARE = (
    select(datasets).where(datasets.c.id == bindparam("ds")).with_for_update(read=True)
)
_CONSENT_OF = select(consents.c.state).where(
    consents.c.dataset_id == bindparam("ds"), consents.c.subject == bindparam("subject")
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


def _record_ids(count: int) -> list[bytes]:
    """``count`` fresh random record ids: the 16 bytes of a UUID version 4 each (what
    ``uuid.uuid4().bytes`` gives), from one ``os.urandom`` call for the batch."""
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = bytes(b & 0x0F | 0x40 for b in raw[6::16])  # version 4
    raw[8::16] = bytes(b & 0x3F | 0x80 for b in raw[8::16])  # variant RFC 4122
    return [bytes(raw[i : i + 16]) for i in range(0, len(raw), 16)]


def _to_ms(value: datetime) -> datetime:
    # Stored times carry milliseconds, as the sealed body does, so the two can be compared.
    extra = value.microsecond % 1000
    return value.replace(microsecond=value.microsecond - extra) if extra else value


Member = tuple[int, TelemetryEvent, bytes, dict[str, int], bytes]  # ..., record id

#: The dataset columns that change after creation (KEK rotation; erasure and sweep
#: bookkeeping). Ingest takes the KEK version from the row it reads in its write transaction.
_MUTABLE = frozenset({"kek_version", "shred_pending_since"})
_FIXED = tuple(column.name for column in datasets.columns if column.name not in _MUTABLE)
#: At most this many consent hints per dataset (then they are dropped and learned again).
_MAX_HINTS = 65_536
#: Records sealed before they go to the insert together (see IngestService._sealed).
_PART = 100


def _fixed(ds: Row[Any]) -> tuple[Any, ...]:
    """What a dataset row holds that never changes after the dataset is created."""
    mapping = ds._mapping
    return tuple(mapping[name] for name in _FIXED)


class _StaleDataset(Exception):
    """A remembered dataset row differs from the database's (or is gone)."""


@dataclass(slots=True)
class _Known:
    """What this process remembers of a dataset between batches (see ``IngestService.ingest``).

    ``row`` and ``policy``: the dataset and its collection rules, which never change after
    creation; every write transaction reads the row under its share lock and compares.
    ``consent``: per pseudonym, the state the last write transaction read (None: no record).
    Only a guess of which events to redact before the write transaction: whether an event is
    stored is always decided on the states read inside it, so a withdrawal is never missed.
    """

    row: Row[Any]
    policy: CollectionPolicy
    consent: dict[str, ConsentState | None]

    def guess(self, subjects: set[str]) -> tuple[dict[str, ConsentState], set[str]]:
        """The remembered states of ``subjects`` (as :func:`consent_states` gives them) and
        the subjects with nothing remembered."""
        states: dict[str, ConsentState] = {}
        unknown: set[str] = set()
        for subject in subjects:
            try:
                state = self.consent[subject]
            except KeyError:
                unknown.add(subject)
                continue
            if state is not None:
                states[subject] = state
        return states, unknown

    def learn(self, states: dict[str, ConsentState | None]) -> None:
        """Remember the states a write transaction read."""
        if len(self.consent) + len(states) > _MAX_HINTS:
            self.consent.clear()
        self.consent.update(states)


class _Withheld(Mapping[str, Any]):
    """A body that is not here: every read of it raises (``get`` too), and it is no JSON."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("a withheld body is never read: its sealed form stands for it")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("a withheld body is never read: its sealed form stands for it")

    def __len__(self) -> int:
        raise RuntimeError("a withheld body is never read: its sealed form stands for it")

    def __repr__(self) -> str:
        return "WITHHELD"


#: The body of an outcome made ahead whose sealed form came with it (every kind but ``key``):
#: never read, since its sealed form stands for it. Any read raises (a quiet ``get`` returning
#: None would be a trap), and encoding it as JSON fails.
WITHHELD: dict[str, Any] = cast(dict[str, Any], _Withheld())


class Ahead(NamedTuple):
    """A batch's redaction made ahead (by the importer's helper process,
    vault/services/redaction_helper.py): for each event, in order, what :func:`redact_event`
    gives, in the form that costs least to carry between processes. ``counts``: the counts
    of each; ``plaintexts``: for each event but ``key`` ones, ``encode_text`` of its redacted
    body in UTF-8, which is sealed as it is (its body is not carried); ``bodies``: for
    ``key`` events only, the redacted body, which the stream redaction may still mask here
    (it is encoded when sealed). ``kinds`` and the first and last ``time`` of the redacted
    bodies: a check that the answer is this batch's (:func:`_made_for`)."""

    kinds: list[str]
    first_time: str | None
    last_time: str | None
    counts: list[dict[str, int]]
    plaintexts: list[bytes | None]
    bodies: list[dict[str, Any] | None]


def ahead_of(
    outcomes: list[RedactionOutcome], plaintexts: Sequence[bytes | None] | None = None
) -> Ahead:
    """The :class:`Ahead` form of whole outcomes (``plaintexts``: their sealed forms, made
    with them; else encoded here)."""
    kinds = [str(o.body.get("kind")) for o in outcomes]
    made: list[bytes | None] = []
    bodies: list[dict[str, Any] | None] = []
    for index, (kind, outcome) in enumerate(zip(kinds, outcomes, strict=True)):
        if kind == EventKind.KEY:
            made.append(None)
            bodies.append(outcome.body)
        else:
            form = plaintexts[index] if plaintexts is not None else None
            made.append(form if form is not None else encode_text(outcome.body).encode("utf-8"))
            bodies.append(None)
    first = outcomes[0].body.get("time") if outcomes else None
    last = outcomes[-1].body.get("time") if outcomes else None
    return Ahead(kinds, first, last, [o.counts for o in outcomes], made, bodies)


@dataclass(frozen=True, slots=True)
class Redacted:
    """A batch's redaction made ahead of :meth:`IngestService.ingest` with the redactor of the
    dataset ``dataset_id`` in mode ``replacement`` (:func:`redactor_for`). Used once, for the
    events the batch's first decision accepts, and only for that dataset and mode, and only
    if it is whole (:func:`_made_for`); anything else is redacted anew."""

    dataset_id: str
    replacement: str
    ahead: Ahead


@dataclass(frozen=True, slots=True)
class _Plan:
    """A batch redacted before its transaction: for the events it expected to accept."""

    redactor: Redactor
    tails: dict[bytes, KeyTail]
    consent: dict[str, ConsentState]
    decisions: list[Decision]
    expected: list[int]
    stream: StreamResult
    rids: list[bytes]  # record ids (16 bytes each)
    #: The sealed forms of ``stream.outcomes`` made ahead (:attr:`Ahead.plaintexts`).
    plaintexts: list[bytes | None] | None = None


class IngestService(ServiceBase):
    """Stores batches of telemetry events."""

    def __init__(self, deps: Deps, redaction: RedactionSetup | None = None) -> None:
        super().__init__(deps)
        self.redaction = redaction or RedactionSetup()
        #: By dataset name, the datasets this process ingested into.
        self._known: dict[str, _Known] = {}

    def _validate(
        self, principal: Principal, dataset: str, items: list[Any]
    ) -> list[TelemetryEvent]:
        try:  # the whole batch in one call; on any error, event by event for the details
            return _EVENTS.validate_python(items)
        except ValidationError:
            pass
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
        redacted: Redacted | None = None,
    ) -> dict[str, Any]:
        """Store what may be stored of a batch; answer per event.

        ``after_store`` (the importer's) runs inside the write transaction with the per-event
        results, after the records and the audit entry: what it writes commits with them, and
        if it raises nothing of the batch is stored. ``redacted`` (the importer's): the
        batch's redaction made ahead (:class:`Redacted`).

        A dataset this process ingested into before is not read again ahead of the write
        transaction: its row and the consent states its subjects had are remembered
        (:class:`_Known`), and the write transaction, which reads both under its locks anyway,
        checks the row and decides on the states it reads. Only subjects with no remembered
        state are read ahead (in a read transaction, as for a dataset seen for the first time).
        """
        action = AuditAction.EVENTS_INGEST
        self.require(principal, action, [Role.COLLECTOR], dataset=dataset)
        known = self._known.get(dataset)
        if known is not None:
            self.may_name_dataset(principal, dataset, action)
            events = self._checked(principal, dataset, items)
            pseudonyms = self._pseudonyms(known.row.id, events)
            early, unknown = known.guess(set(pseudonyms.values()))
            if unknown:
                with self.db.read() as conn:
                    early.update(consent_states(conn, known.row.id, unknown))
            try:
                return self._ingest(
                    principal,
                    known,
                    events,
                    pseudonyms,
                    early,
                    after_store=after_store,
                    redacted=redacted,
                )
            except _StaleDataset:  # never seen: dataset rows keep their policy; read it again
                self._known.pop(dataset, None)
                redacted = None  # (its outcomes may have been changed by the attempt)
        # One read transaction for the dataset and its subjects' consent (the batch is checked
        # in between: pure work, no I/O).
        with self.db.read() as conn:
            ds = self.visible_dataset(principal, dataset, action, conn=conn)
            events = self._checked(principal, dataset, items)
            pseudonyms = self._pseudonyms(ds.id, events)
            early = consent_states(conn, ds.id, set(pseudonyms.values()))
        known = _Known(ds, collection_policy(ds, self.deps.limits.clock_skew_seconds), {})
        self._known[dataset] = known
        return self._ingest(
            principal,
            known,
            events,
            pseudonyms,
            early,
            after_store=after_store,
            remembered=False,
            redacted=redacted,
        )

    def _checked(
        self, principal: Principal, dataset: str, items: list[Any]
    ) -> list[TelemetryEvent]:
        """The batch's events, or the client error that refuses it whole."""
        if not items:
            raise ValidationFailed("empty batch", details={"invalid_indexes": []})
        if len(items) > self.deps.limits.max_batch_events:
            raise PayloadTooLarge(
                f"batch over {self.deps.limits.max_batch_events} events; split it"
            )
        return self._validate(principal, dataset, items)

    def _pseudonyms(self, dataset_id: str, events: list[TelemetryEvent]) -> dict[str, str]:
        return {
            s: self.keyring.subject_pseudonym(dataset_id, s) for s in {e.subject for e in events}
        }

    def _ingest(
        self,
        principal: Principal,
        known: _Known,
        events: list[TelemetryEvent],
        pseudonyms: dict[str, str],
        early: dict[str, ConsentState],
        *,
        after_store: Callable[[Connection, list[dict[str, Any]]], None] | None,
        remembered: bool = True,
        redacted: Redacted | None = None,
    ) -> dict[str, Any]:
        """Redact, then store in the write transaction; ``remembered``: ``known.row`` was not
        read for this batch (the write transaction raises _StaleDataset if it changed)."""
        ds, policy = known.row, known.policy
        now = self.deps.now()
        results: list[dict[str, Any]] = []
        read: dict[str, ConsentState | None] = {}  # the consent states the transaction read
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
        subjects: dict[bytes, str] = {}
        if state is not None:
            subjects = {
                target_key(ds.id, e): pseudonyms[e.subject] for e in events if e.kind == "key"
            }
        tails: dict[bytes, KeyTail] = {}
        ahead: list[RedactionOutcome] | None = None
        plaintexts: list[bytes | None] | None = None
        if (
            redacted is not None
            and redacted.dataset_id == ds.id
            and redacted.replacement == ds.replacement
            and _made_for(redacted.ahead, events)
        ):
            made = redacted.ahead
            ahead = [
                RedactionOutcome(WITHHELD if body is None else body, counts)
                for counts, body in zip(made.counts, made.bodies, strict=True)
            ]
            plaintexts = [made.plaintexts[i] for i in expected]
        try:
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
                *self._redact(redactor, ds, events, expected, tails, ahead=ahead),
                plaintexts,
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
                    results=results, now=now, read=read, remembered=remembered,
                )  # fmt: skip
                if after_store is not None:
                    after_store(conn, results)
                return done

            # On SQLite, concurrent batches share one transaction and one commit (group
            # commit, each in a savepoint of its own); this returns once it is committed.
            stored, stream = self.db.write_shared(store)
            if state is not None:
                # Only once the batch is committed, and not for a subject forgotten meanwhile.
                state.put(stream.tails, subjects=subjects, lease=lease)
        except _StaleDataset:
            if state is not None:  # nothing was stored: the tails taken go back as they were
                state.put(tails, subjects=subjects, lease=lease)
            raise
        finally:
            if state is not None and lease is not None:
                state.release(lease)
        known.learn(read)
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
        read: dict[str, ConsentState | None],
        remembered: bool,
    ) -> tuple[int, StreamResult]:
        """Decide, re-mask, seal, insert and audit, in the write transaction."""
        # The KEK version is read under a share lock inside this transaction, so a rotation
        # cannot destroy the version this batch wraps its new keys with (services/lifecycle).
        # The same lock orders this batch before or after an erasure (FOR UPDATE) as a whole.
        row = conn.execute(_DATASET_FOR_SHARE, {"ds": ds.id}).one_or_none()
        if row is None or (remembered and _fixed(row) != _fixed(ds)):
            raise _StaleDataset(f"dataset {ds.name} changed under the batch")
        kek_version = row.kek_version
        # Read after the lock: a withdrawal committed before it is seen here.
        consent = consent_states(conn, ds.id, set(pseudonyms.values()))
        read.update({subject: consent.get(subject) for subject in pseudonyms.values()})
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
        stream, rids, made = plan.stream, plan.rids, plan.plaintexts
        if accepted != plan.expected:
            stream, rids = self._redact(plan.redactor, ds, events, accepted, plan.tails)
            made = None
        if stream.remask:
            self._remask(conn, principal, ds, stream.remask)
        redactions: dict[str, int] = {}  # (Counter.update of a dict loops in Python, slower)
        groups: dict[tuple[str, int], list[Member]] = defaultdict(list)
        for position, (index, outcome, rid) in enumerate(
            zip(accepted, stream.outcomes, rids, strict=True)
        ):
            event = events[index]
            subject = pseudonyms[event.subject]
            plaintext = None if made is None or event.kind is EventKind.KEY else made[position]
            if plaintext is None:
                plaintext = encode_text(outcome.body).encode("utf-8")
            if len(plaintext) > MAX_PLAINTEXT:
                raise PayloadTooLarge(f"event {index} is over the record size limit")
            for kind, count in outcome.counts.items():
                redactions[kind] = redactions.get(kind, 0) + count
            groups[(subject, epoch_of(event.time))].append(
                (index, event, plaintext, outcome.counts, rid)
            )
        keys = self.keyring.seks_for_write(
            conn, ds.id, kek_version, {pair: len(members) for pair, members in groups.items()}
        )
        stored = len(accepted)
        # Sealed part by part into the insert: on PostgreSQL the server inserts one part while
        # the next is sealed.
        insert_record_parts(
            conn, self._sealed(ds, keys, groups=groups, results=results, now=now), stored
        )
        self.record(
            conn,
            principal,
            AuditAction.EVENTS_INGEST,
            dataset=ds.name,
            details={
                "received": len(events),
                "stored": stored,
                "refused": dict(sorted(reasons.items())),
                "redactions": dict(sorted(redactions.items())),
                "rules_version": RULES_VERSION,
            },
        )
        results.sort(key=itemgetter("index"))
        return stored, stream

    @staticmethod
    def _sealed(
        ds: Row[Any],
        keys: Mapping[tuple[str, int], SubjectKey],
        *,
        groups: dict[tuple[str, int], list[Member]],
        results: list[dict[str, Any]],
        now: datetime,
    ) -> Iterator[list[dict[str, Any]]]:
        """The records of ``groups``, sealed, in parts of at most :data:`_PART` rows (each
        record's result added to ``results`` as it is sealed)."""
        rows: list[dict[str, Any]] = []
        for (subject, epoch), members in groups.items():
            sek = keys[(subject, epoch)]
            sealer = RecordSealer(sek.key, ds.id, subject, epoch, sek.id)
            for index, event, plaintext, counts, rid in members:
                rid_hex = rid.hex()
                rows.append(
                    {
                        "id": rid_hex,
                        "dataset_id": ds.id,
                        "subject": subject,
                        "epoch": epoch,
                        "event_time": _to_ms(event.time),
                        "kind": str(event.kind),  # its value (StrEnum), at a third of the cost
                        "size": len(plaintext),
                        "redactions": counts,
                        "rules_version": RULES_VERSION,
                        "sek_id": sek.id,
                        "envelope": sealer.seal(rid, plaintext),
                        "stored_at": now,
                    }
                )
                result: dict[str, Any] = {"index": index, "status": "stored", "id": rid_hex}
                if counts:
                    result["redactions"] = dict(sorted(counts.items()))
                results.append(result)
                if len(rows) == _PART:
                    yield rows
                    rows = []
        if rows:
            yield rows

    def _redact(
        self,
        redactor: Redactor,
        ds: Row[Any],
        events: list[TelemetryEvent],
        indexes: list[int],
        tails: dict[bytes, KeyTail],
        *,
        ahead: list[RedactionOutcome] | None = None,
    ) -> tuple[StreamResult, list[bytes]]:
        """Redact the events at ``indexes`` with the dataset's redactor, continuing keystroke
        streams from ``tails`` (this process's, taken by the caller); pure, no transaction.
        ``ahead``: every event's redaction made beforehand (:class:`Redacted`)."""
        kept = [events[i] for i in indexes]
        kept_ahead = None if ahead is None else [ahead[i] for i in indexes]
        rids = _record_ids(len(kept))
        state = self.redaction.keystrokes
        if state is None:
            return redact_stream(kept, redactor=redactor, scope=ds.id, ahead=kept_ahead), rids
        stream = redact_stream(
            kept,
            redactor=redactor,
            scope=ds.id,
            refs=[rid.hex() for rid in rids],
            tails=tails,
            idle_seconds=state.idle_seconds,
            ahead=kept_ahead,
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


def _made_for(made: Ahead, events: list[TelemetryEvent]) -> bool:
    """Whether ``made`` can be the redaction of ``events``, in order, and is whole: one entry
    per event in each list, of the same kinds, a sealed form for each event but ``key`` ones
    and a body for each ``key`` event, the first and the last of the same times (redaction
    changes neither). A cheap guard against a batch's answer paired with another batch, and
    the reason a withheld body (:data:`WITHHELD`) is never read: its sealed form is there."""
    count = len(events)
    if not (
        len(made.kinds) == len(made.counts) == len(made.plaintexts) == len(made.bodies) == count
    ):
        return False
    if not events:
        return True
    for kind, plaintext, body, event in zip(
        made.kinds, made.plaintexts, made.bodies, events, strict=True
    ):
        keyed = kind == EventKind.KEY  # (a body, no sealed form; others the other way round)
        if kind != event.kind or (plaintext is None) != keyed or (body is None) == keyed:
            return False
    return made.first_time == format_time(events[0].time) and made.last_time == format_time(
        events[-1].time
    )


def consent_states(
    conn: Connection, dataset_id: str, subjects: set[str]
) -> dict[str, ConsentState]:
    """The recorded consent of each of ``subjects`` (pseudonyms) in one dataset."""
    found: dict[str, ConsentState] = {}
    if len(subjects) == 1:  # (a batch of one event) a statement with no IN list to expand
        (subject,) = subjects
        state = conn.execute(_CONSENT_OF, {"ds": dataset_id, "subject": subject}).scalar()
        if state is not None:
            found[subject] = "granted" if state == "granted" else "withdrawn"
        return found
    ordered = sorted(subjects)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        for row in conn.execute(_CONSENTS, {"ds": dataset_id, "subjects": chunk}):
            found[row.subject] = "granted" if row.state == "granted" else "withdrawn"
    return found
