"""Record ids made in bulk are UUID version 4, as ``uuid.uuid4()`` makes them."""

from __future__ import annotations

import uuid

from vault.services.ingest import _record_ids


def test_ids_are_distinct_version_4_uuids() -> None:
    ids = _record_ids(2000)
    assert len(ids) == 2000
    assert len(set(ids)) == 2000
    for raw in ids:
        assert len(raw) == 16
        made = uuid.UUID(bytes=raw)
        assert made.version == 4
        assert made.variant == uuid.RFC_4122
        assert uuid.UUID(made.hex, version=4).bytes == raw  # the version left nothing to fix


def test_the_random_bits_vary() -> None:
    # Every byte position but the fixed nibbles takes many values across ids.
    ids = _record_ids(256)
    for position in range(16):
        assert len({raw[position] for raw in ids}) > (8 if position in (6, 8) else 64)


def test_none() -> None:
    assert _record_ids(0) == []
