"""The placeholder body of an outcome whose sealed form came from the import's helper
(``WITHHELD``) can be neither read nor sealed: any path that tried would fail loudly instead of
storing or deciding on an empty body."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from vault.services.body_json import encode_text
from vault.services.ingest import WITHHELD


@pytest.mark.parametrize(
    "read",
    [
        lambda body: body["data"],
        lambda body: body.get("data"),
        lambda body: body.get("data", {}),
        lambda body: "data" in body,
        len,
        list,
        dict,
        bool,
    ],
    ids=["item", "get", "get-default", "in", "len", "iter", "dict", "bool"],
)
def test_every_read_raises(read: Callable[[Any], object]) -> None:
    with pytest.raises(RuntimeError, match="never read"):
        read(WITHHELD)


def test_it_is_no_json() -> None:
    with pytest.raises((TypeError, RuntimeError)):
        encode_text(WITHHELD)
    with pytest.raises((TypeError, RuntimeError)):
        json.dumps(WITHHELD)
