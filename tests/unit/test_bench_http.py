"""The HTTP ingest benchmark's statistics and report helpers (no server is started)."""

from __future__ import annotations

import json

import pytest

from bench import http_ingest
from bench.backends import open_backend
from bench.http_ingest import format_latency_table, latency_rows, percentile
from bench.runner import Mode


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 95) == pytest.approx(3.85)
    assert percentile([7.0], 99) == 7.0


def test_percentile_matches_nearest_rank_on_a_round_grid() -> None:
    values = [float(i) for i in range(101)]  # 0..100: the p-th percentile is p itself
    for p in (50, 95, 99):
        assert percentile(values, p) == pytest.approx(p)


@pytest.mark.parametrize("p", [-1, 100.5])
def test_percentile_refuses_out_of_range(p: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], p)


def test_percentile_refuses_no_values() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_latency_rows_pool_repetitions_and_give_per_rep_spread() -> None:
    per_case = {
        "http[batch=1,clients=4]": [[0.001, 0.002, 0.003], [0.010, 0.020, 0.030]],
        "http[batch=100,clients=4]": [[], []],  # nothing measured: no row
    }
    rows = latency_rows(per_case)
    assert len(rows) == 1
    row = rows[0]
    assert row["key"] == "http[batch=1,clients=4]"
    assert row["requests"] == 6
    assert row["repeats"] == 2
    pooled = [1, 2, 3, 10, 20, 30]
    assert row["p50_ms"] == pytest.approx(percentile(pooled, 50), abs=0.01)
    assert row["p50_ms_per_rep"] == [2.0, 20.0]
    assert row["p99_ms_per_rep"][0] < row["p99_ms_per_rep"][1]
    assert row["mean_ms"] == pytest.approx(11.0, abs=0.01)
    assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]


def test_table_and_report_carry_the_rows(tmp_path, monkeypatch, capsys) -> None:
    key = "http[batch=100,clients=4]"
    monkeypatch.setattr(http_ingest, "LATENCIES", {"sqlite": {key: [[0.05, 0.07, 0.09]]}})
    report = {
        "runs": [
            {
                "backend": {"backend": "sqlite"},
                "suites": [{"suite": "ingest"}, {"suite": "http-ingest"}],
            }
        ]
    }
    out = tmp_path / "report.json"
    http_ingest.add_latency_report(report, out)
    printed = capsys.readouterr().out
    assert key in printed
    assert "p99" in printed
    written = json.loads(out.read_text(encoding="utf-8"))
    suites = written["runs"][0]["suites"]
    assert "latency" not in suites[0]
    assert suites[1]["latency"][0]["key"] == key
    assert suites[1]["latency"][0]["p50_ms"] == pytest.approx(70.0)
    assert format_latency_table("sqlite", suites[1]["latency"]).count("\n") == 3


def test_suite_pairs_each_http_case_with_a_floor_at_the_same_batch() -> None:
    (suite,) = http_ingest.suites(Mode("quick", 5))
    keys = [c.key for c in suite.cases]
    for size in (1, 100, 1000):
        assert f"floor[batch={size}]" in keys
        assert f"http[batch={size},clients={http_ingest.CLIENTS}]" in keys
    for goal in suite.goals:
        assert goal.target == http_ingest.GOAL
        assert goal.numerator in keys
        assert goal.denominator in keys
    assert suite.measure is not None  # one server per batch size, for all repetitions


def test_one_server_serves_every_repetition_into_a_dataset_of_its_own(monkeypatch) -> None:
    from sqlalchemy import func, select

    from vault.storage import Database
    from vault.storage.tables import datasets, records

    monkeypatch.setattr(http_ingest, "REQUESTS", {"quick": {1: 6, 100: 2}})
    monkeypatch.setattr(http_ingest, "LATENCIES", {})
    servers: list[http_ingest._Server] = []
    per_dataset: list[list[tuple[str, int]]] = []
    real = http_ingest._Server

    def counts(server: http_ingest._Server) -> list[tuple[str, int]]:
        db = Database(server.database_url)
        try:
            with db.read() as conn:
                rows = conn.execute(
                    select(datasets.c.name, func.count(records.c.id))
                    .join(records, records.c.dataset_id == datasets.c.id)
                    .group_by(datasets.c.name)
                    .order_by(datasets.c.name)
                ).all()
        finally:
            db.dispose()
        return [(str(name), int(n)) for name, n in rows]

    def kept(*args, **kwargs):
        server = real(*args, **kwargs)
        servers.append(server)

        def stop() -> None:  # look at its data before it goes
            per_dataset.append(counts(server))
            real.stop(server)

        monkeypatch.setattr(server, "stop", stop)
        return server

    monkeypatch.setattr(http_ingest, "_Server", kept)
    (suite,) = http_ingest.suites(Mode("quick", 2))
    assert suite.measure is not None
    with open_backend("sqlite") as backend:
        done = suite.measure(backend, 2, lambda _: None)
    assert len(servers) == 2  # one per batch size, not one per trial
    keys = {r["key"]: r["items"] for r in done["results"]}
    assert keys["http[batch=1,clients=4]"] == [6, 6]
    assert keys["http[batch=100,clients=4]"] == [200, 200]
    assert keys["floor[batch=100]"] == [200, 200]
    # Each repetition wrote its warm-up and timed events into its own dataset.
    # Warm-up requests: one per client, at least one event per subject (8 at batch 1).
    warm_1 = max(http_ingest.CLIENTS, http_ingest.SUBJECTS) * 1
    warm_100 = http_ingest.CLIENTS * 100
    per_dataset.reverse()  # stopped last to first
    assert per_dataset[0] == [("bench-ingest-1", 6 + warm_1), ("bench-ingest-2", 6 + warm_1)]
    assert per_dataset[1] == [
        ("bench-ingest-1", 200 + warm_100),
        ("bench-ingest-2", 200 + warm_100),
    ]
    latencies = http_ingest.LATENCIES["sqlite"]
    assert [len(rep) for rep in latencies["http[batch=1,clients=4]"]] == [6, 6]
    assert [g["name"] for g in done["goals"]] == ["http/floor[batch=1]", "http/floor[batch=100]"]
