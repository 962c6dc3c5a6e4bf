"""Finishing a file retirement that was stopped part-way (issue "Protect datasets...", item 6;
docs/import.md "Retiring the source").

A file is retired by renaming it to ``.NAME.tvault-retiring`` beside it, then overwriting and
removing that. A retirement whose process was killed, or whose overwriting failed, leaves that
file: imported, partly overwritten, and still holding plaintext. Running the same import again
with ``--retire-source`` finishes the job on it, and only on the very file the retirement began
on: its device, inode and size are in the ``import:retire-begin`` entry, which the vault
committed before it touched the file, after the import was verified. Anything else under that
name is refused and left alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import Row, select

from vault.audit import AuditAction, Outcome
from vault.domain.principal import Principal
from vault.errors import BadRequest, Conflict
from vault.services.base import ServiceBase
from vault.services.import_sources import (
    FILE_FORMATS,
    file_identity,
    finish_shredding,
    retiring_name,
)
from vault.storage.tables import audit_log, imports

__all__ = ["RetirementStopped", "finish_stopped_retirement"]


class RetirementStopped(BadRequest):
    """The file source is gone and the remains of a stopped retirement are beside it."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"no such file: {path}; a retirement of it was stopped part-way and left "
            f"{retiring_name(path).name} beside it (imported, partly overwritten): run the same "
            "import with --retire-source to finish overwriting it, or remove that file yourself "
            "(e.g. shred -u)"
        )
        self.path = path


def finish_stopped_retirement(
    service: ServiceBase, principal: Principal, ds: Row[Any], path: Path
) -> dict[str, Any]:
    """Overwrite and remove the remains of the stopped retirement of the file ``path`` (a
    source of dataset ``ds``), audited as the ``import:retire`` its retirement did not get to
    write; the import's summary as stored, with what was retired. A refusal is audited
    (``denied``), a failure part-way too (``failed``)."""
    remains = retiring_name(path)
    found, begun = _look(service, principal, ds, remains)
    seq, details = begun
    with service.db.exclusive(f"import:{ds.id}:{details['fingerprint']}") as mine:
        if not mine:
            raise Conflict("this source is being imported into this dataset right now")
        # Looked at again under the lock: another run may have finished it meanwhile.
        if _look(service, principal, ds, remains) != (found, begun):
            raise Conflict(f"{remains.name} changed while it was looked at: run it again")
        stored = _import_row(service, details["import"])
        if stored is None or stored.state != "done":
            raise _denied(service, principal, ds, "its import is not done", details)
        try:
            with service.db.write() as conn:
                # The entry commits only if the overwriting succeeded, as in a retirement.
                try:
                    result = finish_shredding(remains, found)
                except OSError as exc:
                    raise BadRequest(
                        f"{remains} could not be overwritten ({exc.strerror}); it may be "
                        "partly overwritten: check it and remove it by hand"
                    ) from exc
                result = {**result, "finished_after": seq}
                service.record(
                    conn,
                    principal,
                    AuditAction.IMPORT_RETIRE,
                    dataset=ds.name,
                    details={**details, "result": result},
                )
        except BadRequest as exc:
            service.record_alone(
                principal,
                AuditAction.IMPORT_RETIRE,
                Outcome.FAILED,
                dataset=ds.name,
                reason=exc.message[:200],
                details=details,
            )
            raise
    return _summary(ds, stored, seq, {"mode": details["mode"], **result})


def _look(
    service: ServiceBase, principal: Principal, ds: Row[Any], remains: Path
) -> tuple[dict[str, int], tuple[int, dict[str, Any]]]:
    """The remains' identity and the retirement that began on them (:func:`_begun`); a
    refusal, audited, when there is none."""
    try:
        found = file_identity(remains)
    except OSError as exc:
        raise BadRequest(f"{remains} cannot be read ({exc.strerror})") from exc
    begun, unrecorded = _begun(service, ds, found)
    if begun is not None:
        return found, begun
    if unrecorded is not None:
        why = (
            f"{remains.name} may be the file of retirement {unrecorded}, begun by an earlier "
            "version that did not record the file's identity: the vault cannot tell, and "
            "leaves it alone; check it and remove it by hand (e.g. shred -u)"
        )
    else:
        why = (
            f"{remains.name} is not the file of a retirement this vault began in dataset "
            f"{ds.name!r} (another file, or changed since): it is left alone; check it and "
            "remove it by hand"
        )
    raise _denied(service, principal, ds, why, {"file": found})


def _denied(
    service: ServiceBase, principal: Principal, ds: Row[Any], why: str, details: dict[str, Any]
) -> BadRequest:
    """The refusal to finish, audited (``import:retire``, ``denied``; the file by its identity
    only, never by path)."""
    service.record_alone(
        principal,
        AuditAction.IMPORT_RETIRE,
        Outcome.DENIED,
        dataset=ds.name,
        reason=why[:200],
        details=details,
    )
    return BadRequest(why)


def _begun(
    service: ServiceBase, ds: Row[Any], found: dict[str, int]
) -> tuple[tuple[int, dict[str, Any]] | None, str | None]:
    """The newest ``import:retire-begin`` of ``ds`` that began on the file ``found`` and has
    no successful ``import:retire`` after it: (its sequence number, its details), or None;
    and, when there is none, the import of the newest such entry that recorded no file (an
    earlier version's), if any."""
    with service.db.read() as conn:
        entries = conn.execute(
            select(audit_log.c.seq, audit_log.c.action, audit_log.c.outcome, audit_log.c.details)
            .where(
                audit_log.c.dataset == ds.name,
                audit_log.c.action.in_(
                    [AuditAction.IMPORT_RETIRE_BEGIN.value, AuditAction.IMPORT_RETIRE.value]
                ),
            )
            .order_by(audit_log.c.seq.desc())
        ).all()
    done: set[str] = set()  # imports retired after the entries still to look at
    unrecorded: str | None = None
    for entry in entries:
        details = json.loads(entry.details)
        if not isinstance(details, dict):
            continue
        retired = str(details.get("import"))
        if entry.action == AuditAction.IMPORT_RETIRE.value:
            if entry.outcome == Outcome.OK.value:
                done.add(retired)
            continue
        if retired in done:
            continue
        if details.get("file") == found:
            return (int(entry.seq), details), None
        if "file" not in details and details.get("format") in FILE_FORMATS and unrecorded is None:
            unrecorded = retired
    return None, unrecorded


def _import_row(service: ServiceBase, import_id: Any) -> Row[Any] | None:
    with service.db.read() as conn:
        return conn.execute(select(imports).where(imports.c.id == str(import_id))).one_or_none()


def _summary(ds: Row[Any], stored: Row[Any], seq: int, retired: dict[str, Any]) -> dict[str, Any]:
    """The import's totals as stored; its verification is the one that passed before the
    retirement began (the source is gone: nothing can be compared with it now)."""
    return {
        "import": stored.id,
        "dataset": ds.name,
        "state": stored.state,
        "already_imported": True,
        "rows": stored.position,
        "rows_read": stored.rows_read,
        "stored": stored.stored,
        "refused": dict(sorted((stored.refused or {}).items())),
        "invalid": stored.invalid,
        "redactions": dict(sorted((stored.redactions or {}).items())),
        "verification": {"ok": True, "passed_before_retirement_began": seq},
        "source": {"format": stored.format, "fingerprint": stored.fingerprint},
        "retired": retired,
    }
