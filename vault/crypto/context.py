"""Canonical, unambiguous encoding of associated data (docs/envelope.md §Context).

``label`` then each field as ``u16 length || bytes`` (ints as 8-byte big-endian, str as UTF-8),
so no two different field lists encode to the same bytes.
"""

from __future__ import annotations

import struct

__all__ = ["MAX_CONTEXT_FIELD", "encode_context"]

MAX_CONTEXT_FIELD = 1024


def _field(value: bytes | str | int) -> bytes:
    if isinstance(value, bool):
        raise TypeError("bool is not a context field")
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError("integer context field out of int64 range")
        raw = struct.pack(">q", value)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
    else:
        raw = bytes(value)
    if len(raw) > MAX_CONTEXT_FIELD:
        raise ValueError("context field too long")
    return struct.pack(">H", len(raw)) + raw


def encode_context(label: bytes, *fields: bytes | str | int) -> bytes:
    """Encode a domain-separation ``label`` and ``fields`` as associated data."""
    return _field(label) + b"".join(_field(f) for f in fields)
