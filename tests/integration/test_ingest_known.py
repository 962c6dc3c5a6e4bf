"""Ingest into a dataset seen before: no read ahead of the write transaction, same outcomes.

The service remembers a dataset's row and its subjects' last consent states between batches
(``vault.services.ingest._Known``). These tests pin what must not change because of it: a
withdrawal is honoured at once, a late grant is redacted like any batch, a changed dataset row
is noticed, and the statements of a warm batch are the write transaction's only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text, update

from tests.conftest import COLLECTOR, PRIVACY, READER, Clock, event, make_dataset
from vault.bootstrap import Vault
from vault.services.reads import EventQuery
from vault.storage.tables import audit_log, datasets, records

_MAIL = {"text": "write to bob.stone@example.com today"}


def _count(vault: Vault) -> int:
    with vault.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(records)).scalar_one())


@contextmanager
def _statements(vault: Vault) -> Iterator[list[str]]:
    """The SQL sent to the database meanwhile (transaction control included)."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    def commit(_conn: Any) -> None:
        seen.append("COMMIT")

    sa_event.listen(vault.db.engine, "before_cursor_execute", before)
    sa_event.listen(vault.db.engine, "commit", commit)
    try:
        yield seen
    finally:
        sa_event.remove(vault.db.engine, "before_cursor_execute", before)
        sa_event.remove(vault.db.engine, "commit", commit)


def test_a_warm_batch_reads_nothing_ahead_of_its_write(vault: Vault, clock: Clock) -> None:
    make_dataset(vault)
    with _statements(vault) as first:
        vault.ingest.ingest(COLLECTOR, "ux", [event(clock, "emp-1")])
    with _statements(vault) as warm:
        result = vault.ingest.ingest(COLLECTOR, "ux", [event(clock, "emp-1")])
    assert result["accepted"] == 1
    by_name = "WHERE datasets.name ="
    assert any(by_name in s for s in first)
    assert first.count("COMMIT") >= 2  # a read transaction, then the write transaction
    assert not any(by_name in s for s in warm)
    assert warm.count("COMMIT") == 1  # the write transaction only
    # The write transaction still reads the dataset row (under its lock) and the consent.
    assert sum("FROM datasets" in s for s in warm) == 1
    assert sum("FROM consents" in s for s in warm) == 1
    with _statements(vault) as new_subject:
        vault.ingest.ingest(COLLECTOR, "ux", [event(clock, "emp-2")])
    # A subject with nothing remembered: its consent is read ahead too (not the dataset).
    assert not any(by_name in s for s in new_subject)
    assert sum("FROM consents" in s for s in new_subject) == 2
    assert _count(vault) == 3


def test_a_withdrawal_stops_the_next_batch(vault: Vault, clock: Clock) -> None:
    make_dataset(vault, consent="opt_in")
    vault.consent.set(PRIVACY, "emp-1", {"dataset": "ux", "state": "granted"})
    assert vault.ingest.ingest(COLLECTOR, "ux", [event(clock, "emp-1")])["accepted"] == 1
    vault.consent.set(PRIVACY, "emp-1", {"dataset": "ux", "state": "withdrawn"})
    refused = vault.ingest.ingest(COLLECTOR, "ux", [event(clock, "emp-1"), event(clock)])
    assert refused["accepted"] == 0
    assert {r["reason"] for r in refused["results"]} == {"consent_withdrawn"}
    assert _count(vault) == 1


def test_a_late_grant_is_stored_redacted(vault: Vault, clock: Clock) -> None:
    make_dataset(vault, consent="opt_in")
    first = vault.ingest.ingest(COLLECTOR, "ux", [event(clock, "emp-1", data=_MAIL)])
    assert first["results"][0]["reason"] == "consent_missing"
    vault.consent.set(PRIVACY, "emp-1", {"dataset": "ux", "state": "granted"})
    # Remembered "no consent": nothing redacted ahead; the transaction decides and redacts.
    stored = vault.ingest.ingest(COLLECTOR, "ux", [event(clock, "emp-1", data=_MAIL)])
    assert stored["accepted"] == 1
    assert stored["results"][0]["redactions"]
    page = vault.reads.list_events(READER, "ux", "research", EventQuery(subject="emp-1"))
    assert "bob.stone@example.com" not in str(page["events"])
    assert len(page["events"]) == 1


def test_a_changed_dataset_row_is_read_again(vault: Vault, clock: Clock) -> None:
    """Dataset policies never change after creation; should a row differ all the same (a
    hand edit, a restored database), the batch is decided on the row as it is now."""
    make_dataset(vault)
    assert vault.ingest.ingest(COLLECTOR, "ux", [event(clock, "emp-1")])["accepted"] == 1
    with vault.db.write() as conn:
        conn.execute(
            update(datasets)
            .where(datasets.c.name == "ux")
            .values(exclusions={"apps": ["code"], "domains": [], "categories": []})
        )
        before = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
    refused = vault.ingest.ingest(COLLECTOR, "ux", [event(clock, "emp-1", app="Code")])
    assert refused["accepted"] == 0
    assert refused["results"][0]["reason"] == "excluded_app"
    assert _count(vault) == 1
    with vault.db.read() as conn:
        after = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
        last = conn.execute(text("SELECT details FROM audit_log ORDER BY seq DESC")).first()
    assert after == before + 1  # one entry for the batch, none of the abandoned attempt
    assert last is not None
    assert '"refused":{"excluded_app":1}' in last[0]


def test_a_wrong_guess_never_decides(vault: Vault, clock: Clock) -> None:
    """The remembered states only steer what is redacted ahead: even all wrong, the batch is
    decided on the consent read in the write transaction."""
    make_dataset(vault, consent="opt_in")
    vault.consent.set(PRIVACY, "emp-1", {"dataset": "ux", "state": "granted"})
    vault.consent.set(PRIVACY, "emp-2", {"dataset": "ux", "state": "withdrawn"})
    batch = [event(clock, s) for s in ("emp-1", "emp-2", "emp-3")]
    assert vault.ingest.ingest(COLLECTOR, "ux", batch)["accepted"] == 1
    hints = vault.ingest._known["ux"].consent  # poisoned on purpose
    for subject in hints:
        hints[subject] = "granted"
    again = vault.ingest.ingest(COLLECTOR, "ux", batch)
    assert [r.get("reason") for r in again["results"]] == [
        None,
        "consent_withdrawn",
        "consent_missing",
    ]
    assert _count(vault) == 2
