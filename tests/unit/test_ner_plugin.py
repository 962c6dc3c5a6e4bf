"""The person-name plug-in: any NameDetector, and a real (local, never downloaded) spaCy one."""

from __future__ import annotations

from pathlib import Path

import pytest

from vault.domain.redaction import NameDetector, Redactor, pseudonym_replacer
from vault.errors import ConfigurationError
from vault.plugins import SpacyNameDetector, load_name_detector


class FakeNames:
    """Finds the names it was told about."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def find_names(self, text: str) -> list[tuple[int, int]]:
        spans = []
        for name in self.names:
            start = text.find(name)
            if start >= 0:
                spans.append((start, start + len(name)))
        spans.append((5, 1))  # malformed spans are ignored
        spans.append((0, len(text) + 9))
        return spans


def test_a_detector_plugs_into_the_redactor() -> None:
    names = FakeNames("Alice Martin")
    assert isinstance(names, NameDetector)
    text = "ask Alice Martin (alice@example.com)"
    out, counts = Redactor(names=names).redact_text(text)
    assert out == "ask [PERSON] ([EMAIL])"
    assert counts == {"PERSON": 1, "EMAIL": 1}
    keyed, _ = Redactor(names=names, replacer=pseudonym_replacer(b"k" * 32)).redact_text(text)
    assert keyed.startswith("ask [PERSON:")
    assert "Alice" not in keyed


def ruler_pipeline(path: Path, *, with_ruler: bool = True) -> Path:
    """A blank English pipeline with an entity ruler, saved to ``path`` (no download)."""
    import spacy  # the `ner` extra (installed by the test command): never skipped

    nlp = spacy.blank("en")
    if with_ruler:
        ruler = nlp.add_pipe("entity_ruler")
        ruler.add_patterns(
            [
                {"label": "PERSON", "pattern": "Alice Martin"},
                {"label": "PER", "pattern": [{"LOWER": "bob"}, {"LOWER": "stone"}]},
                {"label": "ORG", "pattern": "Acme"},
            ]
        )
    nlp.to_disk(path)
    return path


def test_spacy_pipeline_from_a_directory(tmp_path: Path) -> None:
    detector = load_name_detector(f"spacy:{ruler_pipeline(tmp_path / 'model')}")
    assert isinstance(detector, SpacyNameDetector)
    text = "Alice Martin and bob stone work at Acme"
    assert detector.find_names(text) == [(0, 12), (17, 26)]
    out, counts = Redactor(names=detector).redact_text(text)
    assert out == "[PERSON] and [PERSON] work at Acme"
    assert counts == {"PERSON": 2}
    assert detector.find_names("   ") == []


@pytest.mark.parametrize(
    "spec",
    ["spacy:", "stanza:en", "en_core_web_sm", "spacy:/nonexistent/model", "spacy:no_such_pkg_x"],
)
def test_bad_settings_fail_at_start(spec: str) -> None:
    with pytest.raises(ConfigurationError):
        load_name_detector(spec)


def test_a_pipeline_without_entities_is_refused(tmp_path: Path) -> None:
    path = ruler_pipeline(tmp_path / "blank", with_ruler=False)
    with pytest.raises(ConfigurationError, match="entity"):
        load_name_detector(f"spacy:{path}")


def test_unset_means_no_detector() -> None:
    assert load_name_detector(None) is None
    assert load_name_detector("  ") is None


class _Ent:
    def __init__(self, start: int, end: int) -> None:
        self.start_char, self.end_char, self.label_ = start, end, "PERSON"


class _Doc:
    def __init__(self, ents: list[_Ent]) -> None:
        self.ents = ents


class FakeNlp:
    """A pipeline that recognises whole occurrences of one name (never a cut one)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0

    def __call__(self, text: str) -> _Doc:
        self.calls += 1
        ents, start = [], text.find(self.name)
        while start >= 0:
            ents.append(_Ent(start, start + len(self.name)))
            start = text.find(self.name, start + 1)
        return _Doc(ents)


def test_long_texts_go_in_overlapping_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    from vault.plugins import ner

    monkeypatch.setattr(ner, "_PIECE", 50)
    monkeypatch.setattr(ner, "_OVERLAP", 20)
    name = "Alice Martin"
    # Names placed across every piece boundary (30, 60, 90...) and inside pieces.
    text = "".join(f"{i:02d} " + name + " " * 9 for i in range(20))
    nlp = FakeNlp(name)
    spans = SpacyNameDetector(nlp).find_names(text)
    expected = []
    start = text.find(name)
    while start >= 0:
        expected.append((start, start + len(name)))
        start = text.find(name, start + 1)
    assert spans == expected
    assert nlp.calls > 1
