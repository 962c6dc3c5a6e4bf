"""TVAULT_NER: a local spaCy pipeline loaded at start redacts person names at ingest."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import COLLECTOR, READER, event, make_dataset
from tests.unit.test_ner_plugin import ruler_pipeline
from vault.bootstrap import build_vault
from vault.errors import ConfigurationError
from vault.services.reads import EventQuery


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
