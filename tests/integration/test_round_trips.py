"""Per-request database work of a warm ingest: statements per batch, pooled connections.

The HTTP face ingests batches of one event all day; on PostgreSQL each statement of its write
transaction is a round trip. These tests pin the round trips saved (the subject key booked with
one ``UPDATE ... RETURNING``, the audit head moved inside the entry's INSERT on PostgreSQL, no
ping of a pooled connection in steady use) and that what they replaced still holds: a dead
pooled connection is replaced unseen, the chain verifies, the head follows the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select, text

from tests.conftest import AUDITOR, COLLECTOR, Clock, event, make_dataset
from vault.bootstrap import Vault
from vault.storage import Database
from vault.storage.database import PING_AFTER_IDLE
from vault.storage.tables import audit_head, audit_log, subject_keys


@pytest.fixture
def warm(vault: Vault, clock: Clock) -> Vault:
    """A vault with a dataset and the subject-day key of ``emp-1`` made."""
    make_dataset(vault)
    assert vault.ingest.ingest(COLLECTOR, "ux", [event(clock)])["accepted"] == 1
    return vault


def _statements(vault: Vault, work: Callable[[], object]) -> list[str]:
    """The SQL ``work`` sends, upper-cased, whitespace collapsed."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()).upper())

    sa_event.listen(vault.db.engine, "before_cursor_execute", note)
    try:
        work()
    finally:
        sa_event.remove(vault.db.engine, "before_cursor_execute", note)
    return seen


def test_warm_batch_of_one_books_its_key_in_one_statement(warm: Vault, clock: Clock) -> None:
    seen = _statements(warm, lambda: warm.ingest.ingest(COLLECTOR, "ux", [event(clock)]))
    on_keys = [s for s in seen if "SUBJECT_KEYS" in s]
    assert len(on_keys) == 1, on_keys
    assert on_keys[0].startswith("UPDATE")
    assert "RETURNING" in on_keys[0]
    with warm.db.read() as conn:
        assert conn.execute(select(subject_keys.c.wraps)).scalars().all() == [2]


def test_audit_append_moves_the_head_with_the_entry(warm: Vault, clock: Clock) -> None:
    seen = _statements(warm, lambda: warm.ingest.ingest(COLLECTOR, "ux", [event(clock)]))
    on_audit = [s for s in seen if "AUDIT_" in s]
    if warm.db.is_sqlite:
        assert len(on_audit) == 3, on_audit  # head read (locked), entry, head moved
    else:
        assert len(on_audit) == 2, on_audit  # head locked; entry inserted, head moved in a WITH
        assert on_audit[1].startswith("WITH")
        assert "UPDATE AUDIT_HEAD" in on_audit[1]
    with warm.db.read() as conn:
        head = conn.execute(select(audit_head)).one()
        last = conn.execute(select(audit_log).order_by(audit_log.c.seq.desc()).limit(1)).one()
    assert (head.seq, head.hash) == (last.seq, last.hash)
    assert last.action == "events:ingest"
    assert warm.audit.verify(AUDITOR)["ok"] is True


def _age_pooled(db: Database) -> None:
    """Make every connection in the pool look idle for PING_AFTER_IDLE seconds."""
    for record in list(db.engine.pool._pool.queue):  # type: ignore[attr-defined]
        record.info["tvault_idle_since"] = time.monotonic() - PING_AFTER_IDLE


@pytest.mark.postgres
def test_steady_connections_are_not_pinged_idle_ones_are(pg_url: str) -> None:
    db = Database(pg_url)
    pings: list[object] = []
    real_ping = db.engine.dialect.do_ping

    def ping(dbapi_conn: Any) -> bool:
        pings.append(dbapi_conn)
        return real_ping(dbapi_conn)

    db.engine.dialect.do_ping = ping  # type: ignore[method-assign]
    try:
        for _ in range(3):  # in steady use: handed out as they are
            with db.read() as conn:
                conn.execute(text("SELECT 2"))
        assert pings == []
        _age_pooled(db)
        with db.read() as conn:  # idle long enough: pinged first
            conn.execute(text("SELECT 2"))
        assert len(pings) == 1
    finally:
        db.dispose()


@pytest.mark.postgres
def test_a_dead_idle_connection_is_replaced_unseen(pg_url: str) -> None:
    db = Database(pg_url)
    other = Database(pg_url)
    try:
        with db.read() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with other.write() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        _age_pooled(db)
        with db.read() as conn:  # no error: the dead connection was swapped for a new one
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        other.dispose()
        db.dispose()


def test_redaction_key_is_derived_once_per_dataset(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vault.keyring import hierarchy

    keyring = vault.ingest.keyring
    derived: list[bytes] = []
    real = hierarchy.HKDF

    class Counting:
        def __init__(self, **kwargs: Any) -> None:
            self._hkdf = real(**kwargs)

        def derive(self, key_material: bytes) -> bytes:
            derived.append(self._hkdf.derive(key_material))
            return derived[-1]

    monkeypatch.setattr(hierarchy, "HKDF", Counting)
    first = keyring.redaction_key("ds-a")
    assert keyring.redaction_key("ds-a") == first
    assert len(derived) == 1
    other = keyring.redaction_key("ds-b")
    assert other != first
    assert len(derived) == 2
    # The same key as derived afresh (RFC 5869, the dataset id in info): only remembered.
    expected = real(
        algorithm=hierarchy.hashes.SHA256(),
        length=32,
        salt=None,
        info=hierarchy.encode_context(hierarchy._REDACTION_LABEL, "ds-a"),
    ).derive(keyring._pkey())
    assert first == expected
    with vault.db.write() as conn:  # the pseudonym key loaded again: derived again
        keyring.load_pseudonym_key(conn)
    assert keyring.redaction_key("ds-a") == first
    assert len(derived) == 3
