"""The append-only audit log: writing inside the caller's transaction, reading, verifying.

Appends happen in the same database transaction as the operation they record, so an operation
whose entry cannot be written rolls back with it (fail closed). The single ``audit_head`` row is
locked for the append, which serializes writers across replicas on PostgreSQL.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, bindparam, insert, select, update

from vault.audit.actions import AuditAction, Outcome
from vault.audit.chain import GENESIS, canonical_json, entry_hash
from vault.errors import AuditFailure
from vault.providers.base import KeyProvider
from vault.storage.tables import audit_checkpoints, audit_head, audit_log

__all__ = ["AuditEntry", "AuditLog", "VerifyReport", "checkpoint_message"]

CHECKPOINT_KEY_REF = "audit-checkpoint"
CHECKPOINT_FORMAT = "tvault-checkpoint-v1"
_VERIFY_BATCH = 5000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What one audit entry says. ``actor`` is already a keyed hash, never a raw identity."""

    actor: str
    role: str
    action: AuditAction
    outcome: Outcome
    dataset: str | None = None
    purpose: str | None = None
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class VerifyReport:
    """The result of checking the chain and the checkpoints."""

    ok: bool = True
    entries: int = 0
    head: str = GENESIS
    checkpoints_verified: int = 0
    first_broken_seq: int | None = None
    problem: str | None = None

    def fail(self, seq: int | None, problem: str) -> None:
        """Record the first problem found (later ones are consequences)."""
        if self.ok:
            self.ok = False
            self.first_broken_seq = seq
            self.problem = problem

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head": self.head,
            "checkpoints_verified": self.checkpoints_verified,
            "first_broken_seq": self.first_broken_seq,
            "problem": self.problem,
        }


def checkpoint_message(seq: int, head: str, at: str) -> bytes:
    """The exact bytes a checkpoint signature covers."""
    return canonical_json({"format": CHECKPOINT_FORMAT, "seq": seq, "head": head, "at": at}).encode(
        "ascii"
    )


def _verify_sig(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# Built once: each append runs the same three statements (their compiled forms are cached).
# On PostgreSQL the last two go as one: the head moves in a data-modifying WITH of the INSERT
# (both or neither, as two statements of one transaction), one round trip fewer per append.
_HEAD_FOR_UPDATE = (
    select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
)
_INSERT_ENTRY = insert(audit_log)
_MOVE_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)
_INSERT_MOVING_HEAD = insert(audit_log).add_cte(_MOVE_HEAD.cte("moved_head"))


class AuditLog:
    """Appends to, reads and verifies the hash-chained log."""

    def __init__(self, provider: KeyProvider, now: Callable[[], datetime]) -> None:
        self._provider = provider
        self._now = now

    def _stamp(self) -> str:
        return self._now().isoformat(timespec="microseconds")

    def append(self, conn: Connection, entry: AuditEntry) -> int:
        """Append ``entry`` in the caller's transaction; returns its sequence number."""
        try:
            head = conn.execute(_HEAD_FOR_UPDATE).one()
            row: dict[str, Any] = {
                "seq": head.seq + 1,
                "at": self._stamp(),
                "actor": entry.actor,
                "role": entry.role,
                "action": entry.action.value,
                "dataset": entry.dataset,
                "purpose": entry.purpose,
                "outcome": entry.outcome.value,
                "reason": entry.reason[:256] if entry.reason else None,
                "details": canonical_json(dict(entry.details)),
                "prev_hash": head.hash,
            }
            row["hash"] = entry_hash(row)
            moved = {"new_seq": row["seq"], "new_hash": row["hash"]}
            if conn.dialect.name == "postgresql":
                conn.execute(_INSERT_MOVING_HEAD, {**row, **moved})
            else:
                conn.execute(_INSERT_ENTRY, row)
                conn.execute(_MOVE_HEAD, moved)
        except Exception as exc:
            raise AuditFailure("the audit log could not be written") from exc
        return int(row["seq"])

    def entries(self, conn: Connection, *, after: int, limit: int) -> list[dict[str, Any]]:
        """Entries with ``seq > after``, oldest first."""
        rows = conn.execute(
            select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(limit)
        ).mappings()
        return [dict(r) for r in rows]

    def _iter_all(self, conn: Connection) -> Iterator[Mapping[str, Any]]:
        after = 0
        while True:
            batch = self.entries(conn, after=after, limit=_VERIFY_BATCH)
            if not batch:
                return
            yield from batch
            after = int(batch[-1]["seq"])

    # -- checkpoints ----------------------------------------------------------------------------

    def checkpoint(self, conn: Connection) -> dict[str, Any]:
        """Sign the current head with the provider's key, store it, and return it."""
        head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).one()
        at = self._stamp()
        message = checkpoint_message(head.seq, head.hash, at)
        signature = self._provider.sign(CHECKPOINT_KEY_REF, message)
        public = self._provider.public_key(CHECKPOINT_KEY_REF)
        doc = {
            "format": CHECKPOINT_FORMAT,
            "seq": int(head.seq),
            "head": head.hash,
            "at": at,
            "key_ref": CHECKPOINT_KEY_REF,
            "public_key": public.hex(),
            "signature": base64.b64encode(signature).decode("ascii"),
        }
        existing = conn.execute(
            select(audit_checkpoints.c.seq).where(audit_checkpoints.c.seq == head.seq)
        ).first()
        if existing is None:
            conn.execute(
                insert(audit_checkpoints).values(
                    seq=doc["seq"],
                    head_hash=doc["head"],
                    at=at,
                    key_ref=CHECKPOINT_KEY_REF,
                    public_key=doc["public_key"],
                    signature=doc["signature"],
                )
            )
        return doc

    def _check_checkpoint(
        self, report: VerifyReport, hashes: Mapping[int, str], doc: Mapping[str, Any], where: str
    ) -> None:
        trusted = self._provider.public_key(CHECKPOINT_KEY_REF)
        try:
            seq, head, at = int(doc["seq"]), str(doc["head"]), str(doc["at"])
            signature = base64.b64decode(str(doc["signature"]), validate=True)
        except (KeyError, TypeError, ValueError):
            report.fail(None, f"{where}: malformed checkpoint")
            return
        if not _verify_sig(trusted, signature, checkpoint_message(seq, head, at)):
            report.fail(seq, f"{where}: signature does not verify with the provider's key")
        elif seq > report.entries:
            report.fail(
                report.entries + 1,
                f"{where}: log has {report.entries} entries but a checkpoint signed {seq}: "
                "truncated or rolled back",
            )
        elif seq > 0 and hashes.get(seq) != head:
            report.fail(seq, f"{where}: entry {seq} differs from the signed checkpoint")
        else:
            report.checkpoints_verified += 1

    def verify(self, conn: Connection, external: Mapping[str, Any] | None = None) -> VerifyReport:
        """Check the whole chain, the stored checkpoints and an optional external checkpoint."""
        report = VerifyReport()
        wanted = {int(r.seq) for r in conn.execute(select(audit_checkpoints.c.seq))}
        if external is not None and isinstance(external.get("seq"), int):
            wanted.add(int(external["seq"]))
        hashes: dict[int, str] = {}
        prev = GENESIS
        expected_seq = 1
        for row in self._iter_all(conn):
            seq = int(row["seq"])
            if seq != expected_seq:
                report.fail(expected_seq, f"entry {expected_seq} is missing")
            if row["prev_hash"] != prev:
                report.fail(seq, f"entry {seq} does not link to the entry before it")
            recomputed = entry_hash(row)
            if recomputed != row["hash"]:
                report.fail(seq, f"entry {seq} was altered (hash mismatch)")
            prev = row["hash"]
            expected_seq = seq + 1
            report.entries += 1
            if seq in wanted:
                hashes[seq] = row["hash"]
        report.head = prev
        head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).one()
        if head.seq != report.entries or head.hash != prev:
            report.fail(
                min(int(head.seq), report.entries) + 1,
                "the head record does not match the end of the log: entries removed or added",
            )
        for cp in conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq)):
            doc = {"seq": cp.seq, "head": cp.head_hash, "at": cp.at, "signature": cp.signature}
            self._check_checkpoint(report, hashes, doc, f"stored checkpoint {cp.seq}")
        if external is not None:
            self._check_checkpoint(report, hashes, external, "external checkpoint")
        return report
