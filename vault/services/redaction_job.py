"""Re-redaction: apply the current rules to records redacted by older ones (``tvault redact``).

Each record remembers the rules version that redacted it. The job walks one dataset's records
whose version differs from :data:`RULES_VERSION`, oldest first (keyset on (event time, id)), in
batches bounded by count and by stored bytes; each batch is one transaction: take the dataset
row FOR SHARE (the lock order of every writer: dataset row, records, subject keys — so an
erasure, which takes the dataset row FOR UPDATE first, never deadlocks with it), lock the rows,
decrypt, redact the stored body again with the dataset's replacement mode, seal the changed
ones again under a fresh DEK (same id and subject-epoch key), set the rules version and the
counts, and append a ``redaction:batch`` audit entry. An interrupted run loses at most its open
batch and is audited as failed; running it again goes on with the records still behind (the
version column *is* the progress). Ingest and reads go on meanwhile: rows locked by another
writer are skipped (PostgreSQL ``SKIP LOCKED``), so after each pass the job counts what is
still behind (``remaining``) and passes again while that makes progress. One run per dataset
at a time (an advisory lock; a second run is a Conflict).

Limits: keystrokes are not reassembled again (each stored key event is redacted on its own);
records whose key was shredded or exhausted, that fail their integrity check (audited) or grow
past the record limit are counted, left as they are and reported in ``remaining``.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Row, func, select, update

from vault.audit import AuditAction, Outcome
from vault.domain.principal import Principal, Role
from vault.domain.redaction import RULES_VERSION, Redactor, redact_body
from vault.errors import BadRequest, Conflict, DecryptionError, KeyDestroyed, PayloadTooLarge
from vault.services.base import Deps, ServiceBase
from vault.services.reads import after
from vault.services.redaction_modes import RedactionSetup, redactor_for
from vault.services.resealing import book_keys, open_body, reseal
from vault.storage.tables import datasets, records

__all__ = ["DEFAULT_BATCH", "MAX_BATCH", "RedactionJobService"]

DEFAULT_BATCH = 200
MAX_BATCH = 5000
#: Stored bytes (sealed sizes) one batch decrypts at most, whatever its record count.
MAX_BATCH_BYTES = 16 * 1024 * 1024
#: Passes over the dataset one run makes at most (a pass skips rows other writers hold).
MAX_PASSES = 5

Progress = Callable[[dict[str, Any]], None]


def _newer(version: str) -> bool:
    """Whether ``version`` is newer than ours (a newer process wrote it): never downgraded."""
    try:
        return int(version) > int(RULES_VERSION)
    except ValueError:
        return False


class _Totals:
    def __init__(self) -> None:
        self.examined = self.changed = self.unreadable = self.skipped_newer = self.batches = 0
        self.skipped = self.passes = 0
        self.remaining: int | None = None
        self.redactions: Counter[str] = Counter()
        # Records this run cannot bring up to date (unreadable, key shredded or exhausted, too
        # large): not examined again in a later pass, still counted in ``remaining``.
        self.stuck: set[str] = set()

    def add(self, batch: dict[str, Any]) -> None:
        self.batches += 1
        self.examined += batch["examined"]
        self.changed += batch["changed"]
        self.unreadable += batch["unreadable"]
        self.skipped += batch["skipped"]
        self.skipped_newer += batch["newer"]
        self.redactions.update(batch["redactions"])

    def summary(self, dataset: str) -> dict[str, Any]:
        return {
            "dataset": dataset,
            "rules_version": RULES_VERSION,
            "batches": self.batches,
            "passes": self.passes,
            "examined": self.examined,
            "changed": self.changed,
            "unreadable": self.unreadable,
            "skipped": self.skipped,
            "newer": self.skipped_newer,
            "remaining": self.remaining,
            "complete": self.remaining == 0,
            "redactions": dict(sorted(self.redactions.items())),
        }


class RedactionJobService(ServiceBase):
    """Re-redacts stored records of a dataset under the current rules (admin)."""

    def __init__(self, deps: Deps, redaction: RedactionSetup | None = None) -> None:
        super().__init__(deps)
        self.redaction = redaction or RedactionSetup()

    def run(
        self,
        principal: Principal,
        dataset: str,
        *,
        batch_size: int = DEFAULT_BATCH,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Run the job to the end; returns the summary (also in ``redaction:finish``).

        One run per dataset at a time in the whole deployment (Conflict otherwise). Passes are
        repeated while records are left behind and the last pass brought some up to date;
        ``remaining`` counts the records still under older rules at the end (rows another
        writer held, unreadable ones): ``complete`` is true only when it is 0.
        """
        action = AuditAction.REDACT_START
        self.require(principal, action, [Role.ADMIN], dataset=dataset)
        ds = self.visible_dataset(principal, dataset, action)
        if isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_BATCH:
            raise BadRequest(f"batch size must be 1..{MAX_BATCH}")
        # Stored bodies: the pseudonym tokens in them are the vault's own.
        redactor = redactor_for(self.keyring, ds, self.redaction.names, stored=True)
        with self.db.exclusive(f"redact:{ds.id}") as mine:
            if not mine:
                self.record_alone(
                    principal,
                    action,
                    Outcome.DENIED,
                    dataset=ds.name,
                    reason="another re-redaction of this dataset is running",
                )
                raise Conflict("another re-redaction of this dataset is running")
            self.record_alone(
                principal,
                action,
                dataset=ds.name,
                details={"rules_version": RULES_VERSION, "replacement": ds.replacement},
            )
            totals = _Totals()
            try:
                self._passes(
                    principal,
                    ds,
                    redactor=redactor,
                    batch_size=batch_size,
                    totals=totals,
                    progress=progress,
                )
            except BaseException as exc:
                self._aborted(principal, ds, totals, exc)
                raise
            summary = totals.summary(ds.name)
            self.record_alone(
                principal, AuditAction.REDACT_FINISH, dataset=ds.name, details=summary
            )
        return summary

    def _aborted(
        self, principal: Principal, ds: Row[Any], totals: _Totals, exc: BaseException
    ) -> None:
        """Audit a run that stopped on an error (its committed batches stay done). Best
        effort: if the database itself failed, the original error is what the caller sees."""
        with contextlib.suppress(Exception):
            self.record_alone(
                principal,
                AuditAction.REDACT_FINISH,
                Outcome.FAILED,
                dataset=ds.name,
                reason="run aborted",
                details={**totals.summary(ds.name), "error": type(exc).__name__},
            )

    def _passes(
        self,
        principal: Principal,
        ds: Row[Any],
        *,
        redactor: Redactor,
        batch_size: int,
        totals: _Totals,
        progress: Progress | None,
    ) -> None:
        while True:
            totals.passes += 1
            updated = self._pass(
                principal,
                ds,
                redactor=redactor,
                batch_size=batch_size,
                totals=totals,
                progress=progress,
            )
            totals.remaining = self._remaining(ds.id)
            others = totals.remaining - len(totals.stuck)
            if others <= 0 or updated == 0 or totals.passes >= MAX_PASSES:
                return

    def _pass(
        self,
        principal: Principal,
        ds: Row[Any],
        *,
        redactor: Redactor,
        batch_size: int,
        totals: _Totals,
        progress: Progress | None,
    ) -> int:
        """One walk over the records still behind, oldest first; returns how many it updated."""
        updated = 0
        position = None
        while True:
            with self.db.write() as conn:
                # Lock order of every writer: the dataset row (FOR SHARE, as ingest; an erasure
                # takes it FOR UPDATE first, so it waits for this batch or this batch for it),
                # then records, then subject keys in id order.
                alive = conn.execute(
                    select(datasets.c.id).where(datasets.c.id == ds.id).with_for_update(read=True)
                ).first()
                if alive is None:
                    return updated
                heads = self._heads(conn, ds.id, position, batch_size)
                if not heads:
                    return updated
                rows = self._rows(conn, ds.id, heads)
                batch = self._batch(
                    conn, principal, ds, rows, redactor=redactor, stuck=totals.stuck
                )
                self.record(
                    conn, principal, AuditAction.REDACT_BATCH, dataset=ds.name, details=batch
                )
            position = (heads[-1].event_time, heads[-1].id)
            updated += batch.pop("updated")
            totals.add(batch)
            if progress is not None:
                progress(totals.summary(ds.name))

    @staticmethod
    def _heads(
        conn: Connection, dataset_id: str, position: tuple[Any, str] | None, batch_size: int
    ) -> list[Row[Any]]:
        """The next rows still behind, locked (rows other writers hold are skipped), cut so
        their sealed sizes add up to at most MAX_BATCH_BYTES (at least one row)."""
        stmt = select(records.c.id, records.c.event_time, records.c.size).where(
            records.c.dataset_id == dataset_id, records.c.rules_version != RULES_VERSION
        )
        if position is not None:
            stmt = stmt.where(after(*position))
        heads: list[Any] = list(
            conn.execute(
                stmt.order_by(records.c.event_time, records.c.id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            ).all()
        )
        total = 0
        for count, head in enumerate(heads):
            total += head.size or 0
            if count and total > MAX_BATCH_BYTES:
                return heads[:count]
        return heads

    @staticmethod
    def _rows(conn: Connection, dataset_id: str, heads: list[Row[Any]]) -> list[Row[Any]]:
        ids = [head.id for head in heads]
        found = conn.execute(
            select(records).where(records.c.dataset_id == dataset_id, records.c.id.in_(ids))
        ).all()
        order = {rid: i for i, rid in enumerate(ids)}
        return sorted(found, key=lambda row: order[row.id])

    def _remaining(self, dataset_id: str) -> int:
        """Records of the dataset still under older rules (newer versions are not behind)."""
        with self.db.read() as conn:
            versions = conn.execute(
                select(records.c.rules_version, func.count())
                .where(records.c.dataset_id == dataset_id, records.c.rules_version != RULES_VERSION)
                .group_by(records.c.rules_version)
            ).all()
        return sum(int(n) for version, n in versions if not _newer(version))

    def _batch(
        self,
        conn: Connection,
        principal: Principal,
        ds: Row[Any],
        rows: list[Row[Any]],
        *,
        redactor: Redactor,
        stuck: set[str],
    ) -> dict[str, Any]:
        changed: list[tuple[Row[Any], dict[str, Any], dict[str, int]]] = []
        current: list[Row[Any]] = []
        unreadable = newer = skipped = examined = 0
        found: Counter[str] = Counter()
        for row in rows:
            if row.id in stuck:
                continue  # seen in an earlier pass of this run
            examined += 1
            if _newer(row.rules_version):
                newer += 1
                continue
            try:
                body = open_body(self.keyring, conn, ds.id, row)
            except (DecryptionError, KeyDestroyed) as exc:
                unreadable += 1
                stuck.add(row.id)
                # Audited as a read that fails is: tampering or corruption must be seen.
                gone = isinstance(exc, KeyDestroyed)
                self.record(
                    conn,
                    principal,
                    AuditAction.REDACT_BATCH,
                    Outcome.FAILED,
                    dataset=ds.name,
                    reason="key destroyed" if gone else "integrity check failed",
                    details={"object": row.id},
                )
                continue
            outcome = redact_body(body, redactor)
            if outcome.counts:
                merged = Counter(row.redactions or {})
                merged.update(outcome.counts)
                changed.append((row, outcome.body, dict(merged)))
            else:
                current.append(row)
        keys = book_keys(self.keyring, conn, Counter(bytes(row.sek_id) for row, _, _ in changed))
        resealed = 0
        for row, body, counts in changed:
            sek = keys.get(bytes(row.sek_id))
            try:
                if sek is None:
                    raise KeyDestroyed("subject-epoch key unavailable")
                reseal(conn, sek, row, body, redactions=counts, rules_version=RULES_VERSION)
            except (KeyDestroyed, PayloadTooLarge):
                # Key shredded or at its usage limit, or the body grew past the record limit:
                # left under its old version (``remaining``), the rest of the batch goes on.
                skipped += 1
                stuck.add(row.id)
                continue
            resealed += 1
            found.update(Counter(counts) - Counter(row.redactions or {}))
        for row in current:
            # Nothing new to redact: the ciphertext stays, only the version moves on.
            conn.execute(
                update(records)
                .where(
                    records.c.dataset_id == ds.id,
                    records.c.id == row.id,
                    records.c.event_time == row.event_time,
                )
                .values(rules_version=RULES_VERSION)
            )
        return {
            "examined": examined,
            "changed": resealed,
            "unreadable": unreadable,
            "skipped": skipped,
            "newer": newer,
            "redactions": dict(sorted(found.items())),
            "updated": resealed + len(current),
        }
