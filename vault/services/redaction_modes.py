"""The redactor of a dataset: its replacement mode, the optional name detector, and the
process's keystroke tails (docs/redaction.md "Replacement modes", "Keystrokes across batches")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from vault.domain.redaction import KeystrokeState, NameDetector, Redactor, pseudonym_replacer
from vault.errors import ConfigurationError
from vault.keyring import Keyring

__all__ = ["RedactionSetup", "redactor_for"]


@dataclass(frozen=True, slots=True)
class RedactionSetup:
    """What the composition root gives the services that redact."""

    names: NameDetector | None = None
    keystrokes: KeystrokeState | None = None


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
