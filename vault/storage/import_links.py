"""Removing import links (source row -> record) with the records they point to.

Erasures and retention sweeps delete records; the links an import kept to them go too (they
tie a source row to a person). Each import counts the links removed from it (``imports.
removed``), so that its verification still balances: stored = links + removed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Connection, delete, update

from vault.storage.tables import import_records, imports

__all__ = ["remove_import_links"]


def remove_import_links(conn: Connection, record_ids: Any) -> int:
    """Delete the links to ``record_ids`` (a list of ids, or a select of them) in the
    connection's transaction and count them per import; how many were removed.

    What is counted is what the DELETE removed (its RETURNING), so a link committed by
    another transaction between a count and the delete cannot be removed uncounted; the
    imports are then updated in id order, so two removals never wait on each other in a
    cycle."""
    removed = Counter(
        conn.execute(
            delete(import_records)
            .where(import_records.c.record_id.in_(record_ids))
            .returning(import_records.c.import_id)
        ).scalars()
    )
    for import_id in sorted(removed):
        conn.execute(
            update(imports)
            .where(imports.c.id == import_id)
            .values(removed=imports.c.removed + removed[import_id])
        )
    return sum(removed.values())
