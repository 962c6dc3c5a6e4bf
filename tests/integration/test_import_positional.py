"""CSV and Parquet imports with rows read as their values (``FieldMapping.positional``, no dict
per row) against the same imports the general way (each row a dict, then mapped): the same
summary, the same records read back, the same audit entries per batch, and the same resume
after an interruption. Both backends."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import OPERATOR, Clock, make_dataset
from tests.integration.test_import import EMAIL
from tests.integration.test_import_speedpaths import assert_imports_agree, assert_resume_is_whole
from vault.bootstrap import Vault
from vault.domain.mapping import FieldMapping
from vault.services.importer import ImportOptions

HEADER = ["subject", "time", "kind", "app", "url", "device.id", "data.text", "data.x", "data.y"]


def source_rows(clock: Clock, n: int) -> list[list[Any]]:
    """Schema-shaped rows (flattened) with empty values, invalid rows and naive times."""
    rows = []
    for i in range(n):
        when = (clock() - timedelta(minutes=n - i)).isoformat()
        click = i % 5 == 3
        rows.append(
            [
                f"emp{i % 3}@corp.example",
                when[:19] if i % 11 == 5 else when,  # naive: invalid without --timezone
                "click" if click else "key_run",
                "Code" if i % 4 else "",
                "https://example.com/?token=x" if i % 6 == 2 else "",
                f"lap-{i % 2}" if i % 7 else "",
                "" if click else f"note {i} for {EMAIL}" if i % 5 == 1 else f"note {i}",
                str(i) if click and i % 10 != 3 else "",  # some clicks without x: invalid
                "2.5" if click else "",
            ]
        )
    return rows


def write_csv(path: Path, rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for i, row in enumerate(rows):
            writer.writerow(row)
            if i == 8:
                writer.writerow([""] * len(HEADER))  # blank
            if i == 13:
                writer.writerow(row[:3])  # malformed
    return path


def write_parquet(path: Path, rows: list[list[Any]]) -> Path:
    columns = {name: [row[i] for row in rows] for i, name in enumerate(HEADER)}
    columns["data.x"] = [int(x) if x else None for x in columns["data.x"]]
    columns["data.y"] = [float(y) if y else None for y in columns["data.y"]]
    pq.write_table(pa.table(columns), path, row_group_size=7)
    return path


def general_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports from now on read rows as dicts."""
    monkeypatch.setattr(FieldMapping, "positional", lambda *_, **__: None)


@pytest.fixture
def two(vault: Vault) -> Vault:
    make_dataset(vault, "fast")
    make_dataset(vault, "slow")
    return vault


MAPPING = {
    "fields": {"subject": "subject", "time": "time", "kind": "kind", "data.text": "data.text",
               "data.x": "data.x", "data.y": "data.y", "device.id": "device.id", "app": "app"},
    "values": {"app": {"Code": "VS Code"}},
    "defaults": {"device.owner": "corporate"},
}  # fmt: skip
CASES = {
    "csv-automatic": ("csv", ImportOptions(batch=6)),
    "csv-given": ("csv", ImportOptions(batch=6, mapping=MAPPING, timezone="Europe/Berlin")),
    "parquet-automatic": ("parquet", ImportOptions(batch=6)),
    "parquet-given": ("parquet", ImportOptions(batch=5, mapping=MAPPING, timezone="UTC")),
}


def source(fmt: str, tmp_path: Path, rows: list[list[Any]]) -> Path:
    if fmt == "csv":
        return write_csv(tmp_path / "events.csv", rows)
    return write_parquet(tmp_path / "events.parquet", rows)


@pytest.mark.parametrize("case", CASES)
def test_positional_and_general_imports_agree(
    two: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    fmt, options = CASES[case]
    path = source(fmt, tmp_path, source_rows(clock, 40))
    made: list[Any] = []
    real = FieldMapping.positional

    def spied(self: FieldMapping, columns: list[str], *, text_values: bool) -> Any:
        made.append(real(self, columns, text_values=text_values))
        return made[-1]

    monkeypatch.setattr(FieldMapping, "positional", spied)
    fast = two.imports.run(OPERATOR, "fast", path, options)
    assert made  # the rows were read as their values
    assert made[0] is not None
    general_way(monkeypatch)
    slow = two.imports.run(OPERATOR, "slow", path, options)
    assert_imports_agree(two, fast, slow)
    assert fast["stored"] > 25
    if options.timezone is None:
        assert fast["invalid_causes"].get("naive_time")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("inside", [True, False], ids=["in-transaction", "between-batches"])
def test_positional_import_resumes_exactly_once(
    two: Vault,
    clock: Clock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    inside: bool,
) -> None:
    path = source(fmt, tmp_path, source_rows(clock, 50))
    assert_resume_is_whole(two, monkeypatch, path, inside=inside, general=general_way)
