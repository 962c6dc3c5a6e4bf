"""Replacement modes per dataset: placeholders, or pseudonyms stable within a dataset only."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import ADMIN, COLLECTOR, READER, event, make_dataset
from vault.audit import AuditAction
from vault.errors import ValidationFailed
from vault.services.reads import EventQuery
from vault.storage.tables import audit_log, datasets, records

TOKEN = re.compile(r"\[(EMAIL|PHONE|PASSWORD|AWS_ACCESS_KEY)(?::([0-9a-f]{16}))?\]")
TEXTS = [
    "write to Alice.Smith@example.com today",
    "cc alice.smith@example.com, key AKIAZ2345ABCDEFGHJK7",
    "call +1 415 555 0100 or mail bob@example.org",
]


def stored_texts(vault: Any, clock: Any, name: str) -> list[str]:
    batch = []
    for text in TEXTS:
        clock.advance(seconds=1)
        batch.append(event(clock, data={"text": text}))
    assert vault.ingest.ingest(COLLECTOR, name, batch)["accepted"] == 3
    since = (clock() - timedelta(seconds=2)).isoformat()
    page = vault.reads.list_events(READER, name, "research", EventQuery(since=since, limit=10))
    return [e["data"]["text"] for e in page["events"]]


def test_pseudonyms_stable_within_a_dataset_different_across(vault, clock) -> None:
    one = make_dataset(vault, "one", redaction={"replacement": "pseudonym"})
    make_dataset(vault, "two", redaction={"replacement": "pseudonym"})
    plain = make_dataset(vault, "plain")
    assert one["redaction"] == {"replacement": "pseudonym"}
    assert plain["redaction"] == {"replacement": "placeholder"}
    assert vault.datasets.get(ADMIN, "one")["redaction"] == {"replacement": "pseudonym"}

    first = stored_texts(vault, clock, "one")
    second = stored_texts(vault, clock, "two")
    placeholders = stored_texts(vault, clock, "plain")
    joined = " ".join(first + second + placeholders)
    assert "example.com" not in joined
    assert "AKIA" not in joined
    assert "415 555" not in joined

    def emails(texts: list[str]) -> list[str]:
        return [m[2] for t in texts for m in TOKEN.finditer(t) if m[1] == "EMAIL"]

    # The same address (any case) in two events: one pseudonym; another address: another.
    a1, a2, b1 = emails(first)
    assert a1 == a2 != b1
    assert set(emails(second)).isdisjoint(emails(first))
    assert "[AWS_ACCESS_KEY]" in first[1]  # secrets stay typed placeholders
    assert placeholders[0] == "write to [EMAIL] today"
    # Stable across restarts of the vault and in a second batch.
    again = stored_texts(vault, clock, "one")
    assert emails(again) == emails(first)


def test_the_mode_is_fixed_and_its_bad_values_refused(vault) -> None:
    for bad in ({"replacement": "hash"}, {"replacement": None}, {"mode": "pseudonym"}, "x"):
        with pytest.raises(ValidationFailed):
            make_dataset(vault, "bad", redaction=bad)
    with vault.db.read() as conn:
        assert conn.execute(select(datasets.c.id)).all() == []
        created = conn.execute(
            select(audit_log.c.details).where(
                audit_log.c.action == AuditAction.DATASET_CREATE.value
            )
        ).all()
    assert created == []
    make_dataset(vault, "good", redaction={"replacement": "pseudonym"})
    with vault.db.read() as conn:
        (details,) = conn.execute(
            select(audit_log.c.details).where(
                audit_log.c.action == AuditAction.DATASET_CREATE.value
            )
        ).one()
    assert '"replacement":"pseudonym"' in details.replace(" ", "")


def test_counts_stay_in_the_clear_values_never(vault, clock) -> None:
    make_dataset(vault, "one", redaction={"replacement": "pseudonym"})
    stored_texts(vault, clock, "one")
    with vault.db.read() as conn:
        rows = conn.execute(select(records.c.redactions, records.c.envelope)).all()
    assert sorted(tuple(sorted(r.redactions.items())) for r in rows) == sorted(
        [(("EMAIL", 1),), (("AWS_ACCESS_KEY", 1), ("EMAIL", 1)), (("EMAIL", 1), ("PHONE", 1))]
    )
    assert all(b"example" not in bytes(r.envelope) for r in rows)
