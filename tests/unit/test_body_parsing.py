"""The strict JSON reader: its fast depth and duplicate checks agree with the plain definitions."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from vault.api.body import _depth_ok, strict_loads
from vault.errors import BadRequest


def _reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_reference_depth(v) for v in value), default=0)
    return 0


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 30 or roll < 0.3:
        return rng.choice(["[{", 1, -2.5, None, True, "}]"])
    if roll < 0.65:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}": _random_json(rng, depth + 1) for i in range(rng.randint(0, 3))}


def test_depth_check_matches_the_definition() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        value = _random_json(rng)
        depth = _reference_depth(value)
        for limit in (1, 2, 3, 8, 32):
            assert _depth_ok(value, limit) is (depth <= limit)


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_strict_loads_refuses_past_the_limit(limit: int) -> None:
    assert strict_loads(json.dumps(_nest(limit)).encode(), max_depth=limit) == _nest(limit)
    with pytest.raises(BadRequest, match="nested deeper"):
        strict_loads(json.dumps(_nest(limit + 1)).encode(), max_depth=limit)


def _nest(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


@pytest.mark.parametrize(
    "raw", [b'{"a":1,"a":2}', b'[{"x":{"b":1,"c":2,"b":3}}]', b'{"a":{},"a":{}}']
)
def test_duplicate_keys_are_refused_at_any_depth(raw: bytes) -> None:
    with pytest.raises(BadRequest, match="duplicate key"):
        strict_loads(raw, max_depth=8)


def test_distinct_keys_keep_their_order() -> None:
    assert list(strict_loads(b'{"b":1,"a":2,"c":3}', max_depth=2)) == ["b", "a", "c"]
