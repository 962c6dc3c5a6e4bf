"""Removing import links (source row -> record) with the records they point to.

Erasures and retention sweeps delete records; the links an import kept to them go too (they
tie a source row to a person). Each import counts the links removed from it (``imports.
removed``), so that its verification still balances: stored = links + removed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from vault.storage.tables import import_records, imports

__all__ = ["remove_import_links"]


def remove_import_links(conn: Connection, record_ids: Any) -> int:
    """Delete the links to ``record_ids`` (a list of ids, or a select of them) in the
    connection's transaction, counting them per import; how many were removed."""
    linked = import_records.c.record_id.in_(record_ids)
    counts = conn.execute(
        select(import_records.c.import_id, func.count())
        .where(linked)
        .group_by(import_records.c.import_id)
    ).all()
    for import_id, count in counts:
        conn.execute(
            update(imports)
            .where(imports.c.id == import_id)
            .values(removed=imports.c.removed + count)
        )
    if counts:
        conn.execute(delete(import_records).where(linked))
    return sum(count for _, count in counts)
