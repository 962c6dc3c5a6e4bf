"""Reading request bodies: size-capped, strict JSON (no NaN, no duplicate keys, bounded depth).

NDJSON (``application/x-ndjson``) is read line by line with the same rules.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import Request

from vault.domain.json_keys import DuplicateKey, no_duplicate_keys
from vault.errors import BadRequest, PayloadTooLarge

__all__ = ["read_body", "read_json", "read_json_or_ndjson", "strict_loads"]


def _no_constant(name: str) -> Any:
    raise BadRequest(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses to inf: refuse it like the literal Infinity
        raise BadRequest("number out of range")
    return value


def _depth_ok(value: Any, limit: int) -> bool:
    """Whether parsed JSON nests containers at most ``limit`` deep (level by level, visiting
    containers only: this runs over every ingested batch)."""
    level = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return False
        deeper = []
        for item in level:
            for child in item.values() if type(item) is dict else item:
                if type(child) is dict or type(child) is list:
                    deeper.append(child)
        level = deeper
    return True


def strict_loads(raw: bytes, *, max_depth: int) -> Any:
    """Parse one JSON document strictly; any problem is a BadRequest."""
    try:
        text = raw.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=no_duplicate_keys,
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
    except UnicodeDecodeError as exc:
        raise BadRequest("body is not UTF-8") from exc
    except RecursionError as exc:
        raise BadRequest("JSON nested too deeply") from exc
    except DuplicateKey as exc:
        raise BadRequest(str(exc)) from exc
    except ValueError as exc:
        raise BadRequest(f"malformed JSON: {exc.args[0].split(':')[0]}") from exc
    if not _depth_ok(value, max_depth):
        raise BadRequest(f"JSON nested deeper than {max_depth}")
    return value


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("invalid Content-Length")
        if int(declared) > max_bytes:
            raise PayloadTooLarge(f"body over {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body over {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, *, max_bytes: int, max_depth: int) -> Any:
    """A strict JSON body."""
    raw = await read_body(request, max_bytes)
    if not raw.strip():
        raise BadRequest("empty body; JSON expected")
    return strict_loads(raw, max_depth=max_depth)


async def read_json_or_ndjson(request: Request, *, max_bytes: int, max_depth: int) -> list[Any]:
    """A JSON array, or NDJSON when the content type says so."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await read_body(request, max_bytes)
    if content_type in {"application/x-ndjson", "application/ndjson"}:
        items = []
        for number, line in enumerate(raw.split(b"\n"), start=1):
            if line.strip():
                try:
                    items.append(strict_loads(line, max_depth=max_depth))
                except BadRequest as exc:
                    raise BadRequest(f"line {number}: {exc.message}") from exc
        return items
    if not raw.strip():
        raise BadRequest("empty body; a JSON array of events expected")
    value = strict_loads(raw, max_depth=max_depth)
    if not isinstance(value, list):
        raise BadRequest("a JSON array of events expected")
    return value
