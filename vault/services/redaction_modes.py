"""The redactor of a dataset: its replacement mode, the optional name detector, and the
process's keystroke tails (docs/redaction.md "Replacement modes", "Keystrokes across batches")."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from vault.domain.redaction import KeystrokeState, NameDetector, Redactor, pseudonym_replacer
from vault.errors import ConfigurationError
from vault.keyring import Keyring

__all__ = ["RedactionSetup", "forget_keystrokes", "redactor_for"]

# Every keystroke store of this process (normally one, made by bootstrap), so that erasure and
# consent withdrawal can forget a subject's tails without holding a reference to the store.
_STORES: weakref.WeakSet[KeystrokeState] = weakref.WeakSet()
_STORES_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class RedactionSetup:
    """What the composition root gives the services that redact."""

    names: NameDetector | None = None
    keystrokes: KeystrokeState | None = None

    def __post_init__(self) -> None:
        if self.keystrokes is not None:
            with _STORES_LOCK:
                _STORES.add(self.keystrokes)


def forget_keystrokes(subject: str) -> int:
    """Drop the keystroke tails of ``subject`` (a dataset's subject pseudonym) in every store
    of this process, also those an ingest in flight took; returns how many were held."""
    with _STORES_LOCK:
        stores = list(_STORES)
    return sum(store.forget(subject) for store in stores)


def redactor_for(
    keyring: Keyring, ds: Row[Any], names: NameDetector | None, *, stored: bool = False
) -> Redactor:
    """The redactor of dataset row ``ds``; an unknown mode fails closed. ``stored``: for
    bodies the vault stored itself (re-redaction), whose pseudonym tokens are kept."""
    mode = ds.replacement
    if mode == "placeholder":
        return Redactor(names=names, trust_tokens=stored)
    if mode == "pseudonym":
        key = keyring.redaction_key(ds.id)
        return Redactor(names=names, replacer=pseudonym_replacer(key), trust_tokens=stored)
    raise ConfigurationError("dataset has an unknown redaction replacement mode")
