"""TVAULT_NER: a local spaCy pipeline loaded at start redacts person names at ingest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import COLLECTOR, PRIVACY, READER, event, make_dataset
from tests.unit.test_ner_plugin import ruler_pipeline
from vault.bootstrap import build_vault
from vault.errors import ConfigurationError
from vault.services.ingest import IngestService
from vault.services.reads import EventQuery
from vault.services.redaction_modes import RedactionSetup


def test_names_are_redacted_when_the_plugin_is_set(settings_factory, clock, tmp_path: Path) -> None:
    model = ruler_pipeline(tmp_path / "names")
    vault = build_vault(settings_factory(ner=f"spacy:{model}"), now=clock)
    try:
        make_dataset(vault, "ux", redaction={"replacement": "pseudonym"})
        texts = ["meet Alice Martin at 3", "Alice Martin said hi"]
        batch = []
        for text in texts:
            clock.advance(seconds=1)
            batch.append(event(clock, data={"text": text}))
        vault.ingest.ingest(COLLECTOR, "ux", batch)
        page = vault.reads.list_events(READER, "ux", "research", EventQuery(limit=10))
        first, second = (e["data"]["text"] for e in page["events"])
        assert "Alice" not in first + second
        token = first.removeprefix("meet ").removesuffix(" at 3")
        assert token.startswith("[PERSON:")
        assert second == f"{token} said hi"
    finally:
        vault.close()


def test_a_missing_model_stops_the_start(settings_factory, clock, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="spaCy model"):
        build_vault(settings_factory(ner=f"spacy:{tmp_path / 'absent'}"), now=clock)


class WithdrawingNames:
    """A slow name model stand-in: while it runs, the subject withdraws consent (a write in
    another transaction, which must not wait for the ingest: redaction is outside it)."""

    def __init__(self, vault: Any) -> None:
        self.vault = vault
        self.calls = 0

    def find_names(self, text: str) -> list[tuple[int, int]]:
        self.calls += 1
        if self.calls == 1:
            change = {"dataset": "ux", "state": "withdrawn"}
            self.vault.consent.set(PRIVACY, "emp-2", change)
        start = text.find("Alice Martin")
        return [(start, start + 12)] if start >= 0 else []


def test_redaction_runs_outside_the_write_transaction(vault, clock) -> None:
    make_dataset(vault, "ux")
    names = WithdrawingNames(vault)
    ingest = IngestService(vault.ingest.deps, RedactionSetup(names=names))
    batch = [
        event(clock, data={"text": "hi Alice Martin"}),
        event(clock, subject="emp-2", data={"text": "bye Alice Martin"}),
    ]
    result = ingest.ingest(COLLECTOR, "ux", batch)
    # Decided again inside the transaction: emp-2 withdrew meanwhile and is refused.
    assert [r["status"] for r in result["results"]] == ["stored", "refused"]
    page = vault.reads.list_events(READER, "ux", "research", EventQuery(limit=10))
    assert [e["data"]["text"] for e in page["events"]] == ["hi [PERSON]"]
