"""JSON objects that name a key twice are refused wherever the vault reads JSON from outside
(HTTP bodies, imported lines, JSON held as text in an imported column): which of the values a
reader takes differs from parser to parser, so the vault would keep one while another tool
reading the same input sees the other."""

from __future__ import annotations

from typing import Any

__all__ = ["DuplicateKey", "no_duplicate_keys"]


class DuplicateKey(ValueError):
    """A JSON object names a key twice."""


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An ``object_pairs_hook`` for :mod:`json`: the object, or :class:`DuplicateKey`."""
    out = dict(pairs)  # in C; a repeated key makes it shorter than the pairs
    if len(out) != len(pairs):
        raise DuplicateKey("duplicate key in JSON object")
    return out
