"""Re-redaction: apply the current rules to records redacted by older ones (``tvault redact``).

Each record remembers the rules version that redacted it. The job walks one dataset's records
whose version differs from :data:`RULES_VERSION`, oldest first (keyset on (event time, id)), in
batches; each batch is one transaction: lock the rows, decrypt, redact the stored body again
with the dataset's replacement mode, seal the changed ones again under a fresh DEK (same id and
subject-epoch key), set the rules version and the counts, and append a ``redaction:batch``
audit entry. An interrupted run loses at most its open batch; running it again goes on with
the records still behind (the version column *is* the progress), so the job is resumable
without any progress table. Ingest and reads go on meanwhile: rows locked by another writer are
skipped (PostgreSQL ``SKIP LOCKED``) and picked up by the next run; new records carry the
current version already.

Limits: keystrokes are not reassembled again (each stored key event is redacted on its own);
records whose key was shredded, or that fail their integrity check, are counted and left as
they are (their plaintext is out of reach).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Row, select, update

from vault.audit import AuditAction
from vault.domain.principal import Principal, Role
from vault.domain.redaction import RULES_VERSION, Redactor, redact_body
from vault.errors import BadRequest, DecryptionError, KeyDestroyed
from vault.services.base import Deps, ServiceBase
from vault.services.reads import after
from vault.services.redaction_modes import RedactionSetup, redactor_for
from vault.services.resealing import open_body, reseal
from vault.storage.tables import records

__all__ = ["DEFAULT_BATCH", "MAX_BATCH", "RedactionJobService"]

DEFAULT_BATCH = 200
MAX_BATCH = 5000

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
        self.redactions: Counter[str] = Counter()

    def summary(self, dataset: str) -> dict[str, Any]:
        return {
            "dataset": dataset,
            "rules_version": RULES_VERSION,
            "batches": self.batches,
            "examined": self.examined,
            "changed": self.changed,
            "unreadable": self.unreadable,
            "newer": self.skipped_newer,
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
        """Run the job to the end; returns the summary (also in ``redaction:finish``)."""
        action = AuditAction.REDACT_START
        self.require(principal, action, [Role.ADMIN], dataset=dataset)
        ds = self.visible_dataset(principal, dataset, action)
        if isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_BATCH:
            raise BadRequest(f"batch size must be 1..{MAX_BATCH}")
        redactor = redactor_for(self.keyring, ds, self.redaction.names)
        with self.db.write() as conn:
            self.record(
                conn,
                principal,
                action,
                dataset=ds.name,
                details={"rules_version": RULES_VERSION, "replacement": ds.replacement},
            )
        totals = _Totals()
        position = None
        while True:
            with self.db.write() as conn:
                stmt = select(records).where(
                    records.c.dataset_id == ds.id, records.c.rules_version != RULES_VERSION
                )
                if position is not None:
                    stmt = stmt.where(after(*position))
                rows = list(
                    conn.execute(
                        stmt.order_by(records.c.event_time, records.c.id)
                        .limit(batch_size)
                        .with_for_update(skip_locked=True)
                    ).all()
                )
                if not rows:
                    break
                batch = self._batch(conn, ds, rows, redactor)
                self.record(
                    conn, principal, AuditAction.REDACT_BATCH, dataset=ds.name, details=batch
                )
            position = (rows[-1].event_time, rows[-1].id)
            totals.batches += 1
            totals.examined += batch["examined"]
            totals.changed += batch["changed"]
            totals.unreadable += batch["unreadable"]
            totals.skipped_newer += batch["newer"]
            totals.redactions.update(batch["redactions"])
            if progress is not None:
                progress(totals.summary(ds.name))
        summary = totals.summary(ds.name)
        with self.db.write() as conn:
            self.record(
                conn, principal, AuditAction.REDACT_FINISH, dataset=ds.name, details=summary
            )
        return summary

    def _batch(
        self, conn: Connection, ds: Row[Any], rows: list[Row[Any]], redactor: Redactor
    ) -> dict[str, Any]:
        changed: list[tuple[Row[Any], dict[str, Any], dict[str, int]]] = []
        current: list[Row[Any]] = []
        unreadable = newer = 0
        found: Counter[str] = Counter()
        for row in rows:
            if _newer(row.rules_version):
                newer += 1
                continue
            try:
                body = open_body(self.keyring, conn, ds.id, row)
            except (DecryptionError, KeyDestroyed):
                unreadable += 1
                continue
            outcome = redact_body(body, redactor)
            if outcome.counts:
                merged = Counter(row.redactions or {})
                merged.update(outcome.counts)
                found.update(outcome.counts)
                changed.append((row, outcome.body, dict(merged)))
            else:
                current.append(row)
        uses = Counter(bytes(row.sek_id) for row, _, _ in changed)
        # Subject keys in id order: two writers booking the same keys never wait on each other
        # in a cycle.
        keys = {
            sek_id: self.keyring.sek_for_reseal(conn, sek_id, uses=n)
            for sek_id, n in sorted(uses.items())
        }
        for row, body, counts in changed:
            reseal(
                conn,
                keys[bytes(row.sek_id)],
                row,
                body,
                redactions=counts,
                rules_version=RULES_VERSION,
            )
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
            "examined": len(rows),
            "changed": len(changed),
            "unreadable": unreadable,
            "newer": newer,
            "redactions": dict(sorted(found.items())),
        }
