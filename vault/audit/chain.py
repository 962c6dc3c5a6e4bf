"""The hash chain: canonical entries and their hashes (docs/audit.md).

``hash = SHA-256("tvault-audit-v1\\n" || canonical JSON of the entry fields and prev_hash)``;
canonical JSON has sorted keys, no spaces and ASCII only, so any verifier in any language can
recompute it. The first entry's ``prev_hash`` is 64 zeros.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["GENESIS", "HASHED_FIELDS", "canonical_json", "entry_hash"]

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq",
    "at",
    "actor",
    "role",
    "action",
    "dataset",
    "purpose",
    "outcome",
    "reason",
    "details",
    "prev_hash",
)
_PREFIX = b"tvault-audit-v1\n"


# Built once (json.dumps with options builds an encoder per call); the same output.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, compact, ASCII."""
    return _CANONICAL.encode(value)


def entry_hash(entry: Mapping[str, Any]) -> str:
    """The chain hash of one entry (``details`` as its stored canonical JSON text)."""
    body = {name: entry[name] for name in HASHED_FIELDS}
    return hashlib.sha256(_PREFIX + canonical_json(body).encode("ascii")).hexdigest()
