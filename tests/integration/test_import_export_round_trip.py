"""An export of the vault imports back: NDJSON and Parquet, with no mapping.

A platform team moving a dataset between vaults (or restoring an exported sample) feeds an
export to ``tvault import``. The Parquet export holds ``device``, ``field`` and ``data`` as
JSON text in string columns, so the import must read a string given for an object field as the
JSON it holds (as it does for a CSV cell), not refuse every row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OPERATOR, READER, Clock, event, make_dataset
from tests.integration.test_import import read_back
from vault.bootstrap import Vault
from vault.services.export import ExportQuery
from vault.services.importer import ImportOptions

#: Compared between the original and the imported copy (the subject is a pseudonym in the
#: export, and each record gets an id of its own).
COMPARED = ("time", "kind", "app", "window_title", "url", "device", "field", "data")


def _events(clock: Clock) -> list[dict[str, Any]]:
    device = {"id": "laptop-17", "owner": "corporate"}
    made: list[dict[str, Any]] = []
    for i in range(9):
        who = f"emp-{i % 3}"
        clock.advance(seconds=1)
        made.append(
            event(
                clock,
                who,
                device=device,
                field={"type": "search", "label": "Search"},
                data={"text": f'query {i} with a quote " and a tab\t'},
            )
        )
        clock.advance(milliseconds=250)
        made.append(event(clock, who, kind="click", data={"x": 10 + i, "y": 2.5, "button": "left"}))
        clock.advance(milliseconds=250)
        made.append(
            event(clock, who, kind="focus", app="Browser", url=f"https://intranet.example/p/{i}",
                  window_title="Wiki \u2013 ünïcode", data={})
        )  # fmt: skip
        clock.advance(milliseconds=250)
        made.append(event(clock, who, kind="scroll", data={"dx": 0, "dy": -3}))
    return made


def _read(vault: Vault, dataset: str) -> list[dict[str, Any]]:
    return sorted(read_back(vault, dataset), key=lambda e: e["time"])


def _compared(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: e.get(k) for k in COMPARED} for e in events]


@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
def test_an_export_imports_back_unchanged(
    vault: Vault, clock: Clock, tmp_path: Path, fmt: str
) -> None:
    make_dataset(vault, "ux")
    make_dataset(vault, "copy")
    assert vault.ingest.ingest(OPERATOR, "ux", _events(clock))["accepted"] == 36
    _, chunks = vault.exports.start(READER, "ux", "research", ExportQuery(format=fmt))
    source = tmp_path / ("export.jsonl" if fmt == "ndjson" else "export.parquet")
    source.write_bytes(b"".join(chunks))

    summary = vault.imports.run(OPERATOR, "copy", source, ImportOptions())

    assert summary["mapping"] == "automatic"
    assert summary["invalid"] == 0, summary["invalid_causes"]
    assert summary["stored"] == 36
    assert summary["verification"]["ok"] is True
    original, copied = _read(vault, "ux"), _read(vault, "copy")
    assert _compared(copied) == _compared(original)
    # Subjects arrive as the export's pseudonyms: three people stay three, none named.
    assert len({e["subject"] for e in copied}) == 3
    assert not {e["subject"] for e in copied} & {e["subject"] for e in original}


def test_a_string_that_is_not_json_object_is_invalid_not_stored(
    vault: Vault, clock: Clock, tmp_path: Path
) -> None:
    """A Parquet string column mapped to ``data`` that holds no JSON object makes its row
    invalid (counted by cause), as a CSV cell does; the rows around it are stored."""
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    make_dataset(vault, "ux")
    times = []
    for _ in range(4):
        clock.advance(seconds=1)
        times.append(clock().isoformat())
    table = pa.table(
        {
            "subject": ["emp-1"] * 4,
            "time": times,
            "kind": ["key_run"] * 4,
            "data": ['{"text":"ok"}', "not json", '["a list"]', '{"text":"fine"}'],
        }
    )
    source = tmp_path / "events.parquet"
    pq.write_table(table, source)
    summary = vault.imports.run(OPERATOR, "ux", source, ImportOptions())
    assert summary["stored"] == 2
    assert summary["invalid"] == 2
    assert summary["invalid_rows"] == [2, 3]
    assert set(summary["invalid_causes"]) == {"data"}
