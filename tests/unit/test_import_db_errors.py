"""A SQL source's driver errors as messages: never a quoted text of the driver's message (it
may be a row's plaintext), however long, whatever it holds."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import SQLAlchemyError

from vault.services.import_sources import _db_error

SECRET = "jane.doe@example.com AKIAQWERTYUIOP999999"


@pytest.mark.parametrize(
    "message",
    [
        f'invalid input syntax for type integer: "{SECRET}"',
        f'invalid input syntax for type integer: "{SECRET * 20}"',  # past the 300 kept
        f'invalid input syntax for type integer: "first line\n{SECRET}"',
        f'invalid input syntax for type integer: "{SECRET}\nmore"',
        f'invalid input syntax for type integer: "a"b {SECRET}"',  # a quote inside
        f"Could not decode to UTF-8 column 'c' with text '{SECRET}'",
        f"value it's {SECRET}",
    ],
)
def test_no_quoted_value_reaches_the_message(message: str) -> None:
    said = _db_error("the SQL source failed after row 3", SQLAlchemyError(message)).message
    assert said.startswith("the SQL source failed after row 3: ")
    for part in ("jane", "AKIA", "first line", "more"):
        assert part not in said


def test_the_rest_of_the_message_stays() -> None:
    said = _db_error("cannot read", SQLAlchemyError('relation "ev" does not exist')).message
    assert said == 'cannot read: relation "…" does not exist'
