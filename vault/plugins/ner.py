"""The person-name plug-in: a spaCy pipeline the operator installed, as a ``NameDetector``.

Enabled by one setting, ``TVAULT_NER=spacy:<installed package name or directory>``, and loaded
once at start. Nothing is ever downloaded: ``spacy.load`` is given the package or path and
loads only what is already on this machine; if spaCy is not installed or the model is missing,
the vault refuses to start (``ConfigurationError``) rather than run without the detector the
operator asked for. Entities labelled ``PERSON`` (English models) or ``PER`` (most others)
become ``[PERSON]`` (or a ``PERSON`` pseudonym).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vault.domain.redaction import NameDetector
from vault.errors import ConfigurationError

__all__ = ["PERSON_LABELS", "SpacyNameDetector", "load_name_detector"]

PERSON_LABELS = frozenset({"PERSON", "PER"})
#: Texts longer than this are given to the model in pieces (spaCy's own limit is 1,000,000).
_PIECE = 100_000
#: Consecutive pieces share this many characters, so a name cut by one piece's end is whole in
#: the next one (a name is far shorter).
_OVERLAP = 1_000
_ENTITY_FACTORIES = frozenset({"ner", "beam_ner", "entity_ruler", "span_ruler"})


class SpacyNameDetector:
    """Person-name spans from a loaded spaCy ``Language`` (anything with ``__call__`` -> Doc)."""

    def __init__(self, nlp: Any, labels: Iterable[str] = PERSON_LABELS) -> None:
        self._nlp = nlp
        self._labels = frozenset(labels)
        # spaCy pipelines are not documented as thread-safe; ingest runs in a thread pool.
        self._lock = threading.Lock()

    def find_names(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the entities with a person label.

        Long texts go in pieces of ``_PIECE`` characters that overlap by ``_OVERLAP``: an
        entity that starts in the overlap at a piece's end is left to the next piece, which
        holds it whole (one that starts before it ends within the piece: names are shorter
        than the overlap).
        """
        spans: set[tuple[int, int]] = set()
        step = _PIECE - _OVERLAP
        offset = 0
        while offset < len(text):
            end = min(len(text), offset + _PIECE)
            last = end == len(text)
            piece = text[offset:end]
            if piece.strip():
                with self._lock:
                    doc = self._nlp(piece)
                for ent in doc.ents:
                    if ent.label_ not in self._labels:
                        continue
                    if not last and ent.start_char >= step:
                        continue  # in the overlap: the next piece sees it whole
                    spans.add((offset + ent.start_char, offset + ent.end_char))
            if last:
                break
            offset += step
        return sorted(spans)


def load_name_detector(spec: str | None) -> NameDetector | None:
    """The detector ``spec`` names (``spacy:<package or path>``), or None when unset."""
    if spec is None or not spec.strip():
        return None
    scheme, sep, target = spec.strip().partition(":")
    if not sep or scheme != "spacy" or not target:
        raise ConfigurationError("TVAULT_NER must look like spacy:<package name or directory>")
    try:
        spacy = importlib.import_module("spacy")
    except ImportError as exc:
        raise ConfigurationError("TVAULT_NER is set but spaCy is not installed") from exc
    path = Path(target).expanduser()
    # A directory is loaded as such; anything else must be an installed package (spacy.load
    # never downloads: a missing package is an OSError).
    model: str | Path = path if path.is_dir() else target
    try:
        nlp = spacy.load(model)
    except (OSError, ImportError, ValueError) as exc:
        raise ConfigurationError(f"cannot load the spaCy model {target!r}: {exc}") from exc
    factories = {nlp.get_pipe_meta(name).factory for name in nlp.pipe_names}
    if not factories & _ENTITY_FACTORIES:
        raise ConfigurationError(f"the spaCy pipeline {target!r} has no entity recognizer")
    detector = SpacyNameDetector(nlp)
    if not isinstance(detector, NameDetector):  # pragma: no cover - protocol drift guard
        raise ConfigurationError("name detector does not implement NameDetector")
    return detector
