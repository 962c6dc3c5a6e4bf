"""The JSON text a record's body is sealed as: compact, UTF-8 as is, no NaN (ingest, the
importer's redaction helper, resealing). One encoder, built once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["JSON", "encode_text"]

#: json.dumps with options builds a new encoder on every call: this one is built once.
JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _body_encoder() -> Callable[[Any], str]:
    """What ``JSON.encode`` does to a body, without the encoder it builds on every call.

    ``JSONEncoder.encode`` makes a new C iterencoder per call, which costs about as much as
    encoding a small body. This builds that iterencoder once, with the same settings but no
    circular-reference markers (a body is parsed JSON: it cannot hold a cycle, and reused
    markers could be left behind by an error). Anything unexpected (another Python, another
    signature, another output on the samples) falls back to ``JSON.encode`` itself.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return JSON.encode
    try:  # the arguments JSONEncoder.iterencode passes (markers, default, string encoder,
        # indent, separators, sort_keys, skipkeys, allow_nan), markers aside
        chunks = make(
            None, JSON.default, json.encoder.encode_basestring, None, ":", ",", False, False, False
        )
    except TypeError:
        return JSON.encode

    def encode(body: Any) -> str:
        return "".join(chunks(body, 0))

    samples: list[dict[str, Any]] = [
        {"a": [1, 2.5, -0.0, 1e300, None, True], '\xe9\u2028"': {"x": "\n\x00"}},
        {},
    ]
    try:
        same = all(encode(sample) == JSON.encode(sample) for sample in samples)
    except (TypeError, ValueError):
        same = False
    return encode if same else JSON.encode


encode_text = _body_encoder()
