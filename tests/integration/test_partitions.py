"""Day partitions of records on PostgreSQL: made on demand, dropped whole by the sweep, migrated.

Every test here runs on the real PostgreSQL server (``pg_url``): partitions do not exist on
SQLite, where the sweep deletes rows (tests/integration/test_retention.py covers both).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from tests.conftest import ADMIN, COLLECTOR, PRIVACY, READER, Clock, event, make_dataset
from vault.bootstrap import Vault, build_vault
from vault.config import Settings
from vault.services.reads import EventQuery
from vault.storage import Database, upgrade_to_head
from vault.storage.migrate import MIGRATIONS_DIR
from vault.storage.partitions import Partition

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_vault(tmp_path: Path, pg_url: str, clock: Clock) -> Iterator[Vault]:
    settings = Settings(
        home=tmp_path / "home", database_url=pg_url, scrypt_n=2**14, operator="test-operator"
    )
    v = build_vault(settings, now=clock)
    yield v
    v.close()


def partitions(vault: Vault) -> dict[str, list[str]]:
    """Dataset partition -> its day partitions, from the catalog."""
    with vault.db.read() as conn:
        rows = conn.execute(
            text(
                "SELECT p.relname, c.relname FROM pg_inherits i"
                " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
                " WHERE p.relname LIKE 'records%' ORDER BY 1, 2"
            )
        ).all()
    out: dict[str, list[str]] = {}
    for parent, child in rows:
        out.setdefault(parent, []).append(child)
    return out


def ingest(vault: Vault, clock: Clock, dataset: str, subject: str, n: int) -> list[str]:
    result = vault.ingest.ingest(COLLECTOR, dataset, [event(clock, subject) for _ in range(n)])
    assert result["accepted"] == n
    return [r["id"] for r in result["results"]]


def readable(vault: Vault, dataset: str, subject: str) -> set[str]:
    page = vault.reads.list_events(
        READER, dataset, "agent_training", EventQuery(subject=subject, limit=1000)
    )
    return {e["id"] for e in page["events"]}


def ds_id(vault: Vault, name: str) -> str:
    with vault.db.read() as conn:
        value = conn.execute(text("SELECT id FROM datasets WHERE name = :n"), {"n": name})
        return str(value.scalar_one())


def test_records_is_partitioned_by_dataset_then_day(pg_vault: Vault, clock: Clock) -> None:
    make_dataset(pg_vault, "ux", retention_days=30)
    make_dataset(pg_vault, "other", retention_days=30)
    ingest(pg_vault, clock, "ux", "emp-1", 2)
    clock.advance(days=1)
    ingest(pg_vault, clock, "ux", "emp-1", 1)
    ingest(pg_vault, clock, "other", "emp-1", 1)
    layout = partitions(pg_vault)
    ux, other = f"records_{ds_id(pg_vault, 'ux')}", f"records_{ds_id(pg_vault, 'other')}"
    assert layout["records"] == sorted([ux, other])
    assert len(layout[ux]) == 2  # two days
    assert len(layout[other]) == 1
    with pg_vault.db.read() as conn:
        kind = conn.execute(
            text("SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'records'::regclass")
        ).scalar_one()
        assert kind == "l"  # list by dataset
        # Each day's table holds exactly its rows.
        for day_table in layout[ux]:
            count = conn.execute(text(f"SELECT count(*) FROM {day_table}")).scalar_one()
            assert count in (1, 2)


def test_sweep_drops_expired_days_whole_and_audits_it(pg_vault: Vault, clock: Clock) -> None:
    make_dataset(pg_vault, "ux", retention_days=10)
    old = ingest(pg_vault, clock, "ux", "emp-1", 3)
    clock.advance(days=5)
    young = ingest(pg_vault, clock, "ux", "emp-1", 2)
    clock.advance(days=7)  # first day 12 days old, second 7
    report = pg_vault.retention.sweep(ADMIN)["datasets"][0]
    assert report["partitions_dropped"] == 1
    assert report["records"] == 3
    parent = f"records_{ds_id(pg_vault, 'ux')}"
    assert len(partitions(pg_vault)[parent]) == 1
    assert readable(pg_vault, "ux", "emp-1") == set(young)
    assert not set(old) & readable(pg_vault, "ux", "emp-1")
    with pg_vault.db.read() as conn:
        entries = pg_vault.retention.audit.entries(conn, after=0, limit=10_000)
    steps = [json.loads(e["details"]) for e in entries if e["action"] == "retention:sweep"]
    keys_step = next(i for i, d in enumerate(steps) if d.get("step") == "keys")
    drop_step = next(i for i, d in enumerate(steps) if d.get("step") == "partition")
    assert keys_step < drop_step  # keys are destroyed before the rows go
    assert steps[drop_step]["records"] == 3
    # The same day can be written again later only if it is inside retention: it is not.
    ingest(pg_vault, clock, "ux", "emp-2", 1)  # today: a new partition, made on demand
    assert len(partitions(pg_vault)[parent]) == 2


def test_a_held_subject_keeps_the_partition(pg_vault: Vault, clock: Clock) -> None:
    make_dataset(pg_vault, "ux", retention_days=10)
    kept = ingest(pg_vault, clock, "ux", "emp-1", 2)
    ingest(pg_vault, clock, "ux", "emp-2", 2)
    pg_vault.retention.set_hold(PRIVACY, "ux", {"reason": "case 12", "subject": "emp-1"})
    clock.advance(days=12)
    report = pg_vault.retention.sweep(ADMIN)["datasets"][0]
    assert report["partitions_dropped"] == 0
    assert report["records"] == 2
    assert readable(pg_vault, "ux", "emp-1") == set(kept)
    pg_vault.retention.lift_hold(PRIVACY, "ux", "emp-1")
    again = pg_vault.retention.sweep(ADMIN)["datasets"][0]
    assert again["partitions_dropped"] == 1
    assert again["records"] == 2


def test_concurrent_first_writes_to_a_new_day_make_one_partition(
    tmp_path: Path, pg_url: str, clock: Clock
) -> None:
    """Two vault processes (two engines, two caches) ingest into the same new day at once."""
    vaults = []
    for name in ("a", "b"):
        settings = Settings(
            home=tmp_path / "home", database_url=pg_url, scrypt_n=2**14, operator=name
        )
        vaults.append(build_vault(settings, now=clock))
    try:
        make_dataset(vaults[0], "ux", retention_days=30)
        errors: list[BaseException] = []

        def work(v: Vault, subject: str) -> None:
            try:
                for _ in range(5):
                    ingest(v, clock, "ux", subject, 20)
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        threads = [
            threading.Thread(target=work, args=(v, f"emp-{i}")) for i, v in enumerate(vaults)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        parent = f"records_{ds_id(vaults[0], 'ux')}"
        assert len(partitions(vaults[0])[parent]) == 1
        assert len(readable(vaults[0], "ux", "emp-0")) == 100
        assert len(readable(vaults[1], "ux", "emp-1")) == 100
    finally:
        for v in vaults:
            v.close()


def test_migration_moves_existing_rows_both_ways(pg_vault: Vault, clock: Clock) -> None:
    make_dataset(pg_vault, "ux", retention_days=30)
    first = ingest(pg_vault, clock, "ux", "emp-1", 3)
    clock.advance(days=2)
    second = ingest(pg_vault, clock, "ux", "emp-1", 2)
    url = pg_vault.db.url.render_as_string(hide_password=False)
    pg_vault.close()
    db = Database(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.write() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009-1")  # back to one plain table
    with db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM records")).scalar_one() == 5
        assert (
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_partitioned_table"
                    " WHERE partrelid = 'records'::regclass"
                )
            ).scalar_one()
            == 0
        )
    upgrade_to_head(db)  # and partitioned again, rows moved into their days
    db.dispose()
    settings = pg_vault.settings
    again = build_vault(settings, now=clock)
    try:
        assert readable(again, "ux", "emp-1") == set(first) | set(second)
        assert len(partitions(again)[f"records_{ds_id(again, 'ux')}"]) == 2
    finally:
        again.close()


def test_partition_names_refuse_anything_but_a_vault_dataset_id() -> None:
    assert Partition("0" * 32, 0).name == f"records_{'0' * 32}_19700101"
    with pytest.raises(ValueError, match="dataset id"):
        _ = Partition("x'; DROP TABLE records; --", 0).name
