"""Smoke tests of the benchmark's suites at tiny sizes: every code path runs and checks itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tink
from sqlalchemy import create_engine, func, select, text

from bench import __main__ as bench_main
from bench import (
    export_memory,
    growth,
    import_export,
    lifecycle,
    peers,
    plots,
    reads,
    redaction,
    sizes,
)
from bench import runner as runner_module
from bench.backends import Backend, TrialPlace, open_backend
from bench.fill import READER, create_dataset, fill, new_vault, redacted_bodies, spread
from bench.ingest import make_workload
from bench.runner import Case, Goal, Mode, Suite, goal_entry, run, shared_place
from vault.services.reads import EventQuery
from vault.storage.tables import records, subject_keys

QUICK = Mode("quick", 1)


def _run_and_close(trial: Any, expected: int) -> None:
    """Run ``trial`` (it must report ``expected`` items), then close it whatever happens."""
    try:
        assert trial.run() == expected
    finally:
        trial.close()


def _quiet(_: str) -> None:
    pass


@pytest.fixture
def backend() -> Iterator[Backend]:
    with open_backend("sqlite") as b:
        yield b


@pytest.fixture
def place(backend: Backend) -> Iterator[TrialPlace]:
    with backend.trial("test") as p:
        yield p


def test_goal_entry_statuses() -> None:
    assert goal_entry(Goal("g", "a", "b", 0.5), [3.0, 1.0], [2.0, 2.0])["status"] == "PASS"
    miss = goal_entry(Goal("g", "a", "b", 2.0), [3.0, 1.0], [2.0, 2.0])
    assert miss["status"] == "MISS"
    assert miss["ratio"] == pytest.approx(1.0)
    assert (miss["paired_min"], miss["paired_max"]) == (0.5, 1.5)
    assert goal_entry(Goal("g", "a", "b", None), [1.0], [4.0])["status"] == "INFO"


class _Count:
    def __init__(self, n: int) -> None:
        self.n = n

    def run(self) -> int:
        return self.n

    def close(self) -> None:
        pass


def test_runner_measures_custom_and_once_suites(tmp_path: Path, capsys: Any) -> None:
    calls: list[str] = []

    def measure(backend: Backend, repeats: int, progress: Any) -> dict[str, Any]:
        calls.append(backend.name)
        return {"results": [], "goals": []}

    def suites(mode: Mode) -> list[Suite]:
        case = Case("c", {"n": 3}, "items/s", lambda p: _Count(3))
        return [
            Suite("plain", [case], [Goal("self", case.key, case.key, None)]),
            Suite("custom", measure=measure, once=True),
            Suite("pg-only", [case], backends=("postgres",)),
        ]

    out = tmp_path / "r.json"
    report = run(
        suites=suites, mode=QUICK, backends=["sqlite"], out=out, pg_url="", progress=_quiet
    )
    assert calls == ["sqlite"]
    assert [s["suite"] for s in report["runs"][0]["suites"]] == ["plain", "custom"]
    assert json.loads(out.read_text())["runs"][0]["suites"][0]["goals"][0]["status"] == "INFO"
    assert report["runs"][0]["suites"][0]["results"][0]["key"] == "c[n=3]"
    printed = capsys.readouterr().out
    assert "(ratio)  INFO" in printed
    meta = report["meta"]
    assert meta["cpu_probe_ms_at_start"] > 0
    assert meta["cpu_probe_ms_at_end"] > 0
    assert f"CPU probe {meta['cpu_probe_ms_at_start']} ms at start" in printed
    assert meta["steal_share"] is None or 0 <= meta["steal_share"] <= 1
    for at_rest in (meta["busy_at_rest_at_start"], meta["busy_at_rest_at_end"]):
        assert at_rest is None or 0 <= at_rest <= 1
    with pytest.raises(RuntimeError):
        shared_place(TrialPlace(tmp_path, None, None))


def test_steal_share_of_cpu_time_between_readings() -> None:
    """user nice system idle iowait irq softirq steal: steal's part of what was spent."""
    before = [100, 0, 50, 800, 0, 0, 0, 50]
    after = [160, 0, 70, 900, 0, 0, 0, 70]  # 200 spent, 20 of it stolen
    assert runner_module._steal_share(before, after) == 0.1
    assert runner_module._steal_share(None, after) is None
    assert runner_module._steal_share(before, before) is None  # nothing spent
    assert runner_module._steal_share(before[:4], after[:4]) is None  # no steal column
    assert runner_module._busy_share(before, after) == 0.5  # 200 spent, 100 of it idle


class _TakesTemplate:
    """Reads the template's marker and the template's table, then spoils both in its copy."""

    def __init__(self, place: TrialPlace) -> None:
        self.place = place
        self.marker = place.directory / "marker.txt"

    def run(self) -> int:
        text_ = self.marker.read_text(encoding="utf-8")  # the copy holds the template's file
        self.marker.unlink()  # ...and removing it leaves the template (and later copies) whole
        engine = create_engine(self.place.url)
        try:
            with engine.begin() as conn:
                n = conn.execute(text("SELECT count(*) FROM t")).scalar_one()
                conn.execute(text("DELETE FROM t"))
        finally:
            engine.dispose()
        return len(text_) + n

    def close(self) -> None:
        pass


@pytest.mark.parametrize("name", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_runner_copies_a_template_per_trial_and_skips_places_when_asked(name: str) -> None:
    made: list[Path] = []
    given: list[Path] = []

    def template(place: TrialPlace) -> None:
        made.append(place.directory)
        (place.directory / "marker.txt").write_text("abc", encoding="utf-8")
        engine = create_engine(place.url)
        try:
            with engine.begin() as conn:
                conn.execute(text("CREATE TABLE t (x integer)"))
                conn.execute(text("INSERT INTO t VALUES (1), (2)"))
        finally:
            engine.dispose()

    def reference(place: TrialPlace) -> _Count:
        given.append(place.directory)
        return _Count(1)

    def suites(mode: Mode) -> list[Suite]:
        copied = Case("copied", {}, "items/s", _TakesTemplate, template=template)
        return [Suite("s", [copied, Case("ref", {}, "items/s", reference, fresh=False)])]

    pg = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    report = run(
        suites=suites, mode=Mode("quick", 3), backends=[name], out=None, pg_url=pg, progress=_quiet
    )
    copied, ref = report["runs"][0]["suites"][0]["results"]
    assert len(made) == 1  # the template is made once per backend...
    assert copied["items"] == [5, 5, 5]  # ...and every trial sees it whole (3 chars + 2 rows)
    assert ref["items"] == [1, 1, 1]
    assert len(set(given)) == 1  # no fresh place for the reference
    assert given[0] not in made


def test_fill_makes_records_the_read_service_opens(tmp_path: Path, database_url: str) -> None:
    vault = new_vault(tmp_path / "home", database_url)
    try:
        create_dataset(vault, "filled")
        # Noon yesterday: the two days before it touch exactly three UTC days.
        end = (datetime.now(UTC) - timedelta(days=1)).replace(hour=12, minute=0, second=0)
        people = ["ann", "bob"]
        bodies = redacted_bodies(20)
        assert all("@" not in json.dumps(b) for b in bodies)  # the vault's redaction ran
        items = spread(people, end - timedelta(days=2), end, 60)
        assert fill(vault, "filled", items, bodies=bodies, chunk=25) == 60
        page = vault.reads.list_events(READER, "filled", "research", EventQuery(subject="ann"))
        assert len(page["events"]) == 30
        assert {e["kind"] for e in page["events"]} == {"key_run"}
        with vault.db.read() as conn:
            keys = conn.execute(select(func.count()).select_from(subject_keys)).scalar_one()
        assert keys == 2 * 3  # one subject-epoch key per person and day
    finally:
        vault.close()


def test_peers_store_decryptable_envelopes(place: TrialPlace) -> None:
    workload = make_workload(10, 2)
    trial = peers.EsdkTrial(place, workload, "default")
    try:
        assert trial.run() == 20
        with trial.db.read() as conn:
            row = conn.execute(select(records).limit(1)).one()
        assert json.loads(trial.check_one(bytes(row.envelope)))["kind"] == "key_run"
    finally:
        trial.close()


def test_tink_trial_and_no_signature_suite(backend: Backend) -> None:
    workload = make_workload(10, 1)
    with backend.trial("tink") as p:
        tink_trial = peers.TinkTrial(p, workload)
        try:
            assert tink_trial.run() == 10
            with tink_trial.db.read() as conn:
                row = conn.execute(select(records).limit(1)).one()
            ids = (tink_trial.dataset_id, row.subject, str(row.epoch))
            aad = b"|".join(x.encode() for x in ids) + b"|" + bytes.fromhex(row.id)
            body = tink_trial.envelope.decrypt(bytes(row.envelope), aad)
            assert json.loads(body)["kind"] == "key_run"
            with pytest.raises(tink.TinkError):
                tink_trial.envelope.decrypt(bytes(row.envelope), aad[:-1] + b"\x00")
        finally:
            tink_trial.close()
    with backend.trial("esdk") as p:
        unsigned = peers.EsdkTrial(p, workload, "no-signature")
        try:
            assert unsigned.run() == 10
        finally:
            unsigned.close()
    suite, seal = peers.suites(QUICK)
    assert {g.name for g in suite.goals} >= {"service/esdk-default"}
    assert seal.once


def test_seal_suite_times_every_sealer(backend: Backend) -> None:
    counts = {"vault": 20, "tink": 20, "no-signature": 3, "default": 2}
    done = peers._measure_seal(counts)(backend, 1, _quiet)
    assert [r["items"] for r in done["results"]] == [[20], [2], [3], [20]]
    goal = done["goals"][0]
    assert goal["name"] == "seal vault/esdk-default"
    assert goal["target"] == peers.GOAL_VS_ESDK


def test_screenshot_service_and_floor(backend: Backend) -> None:
    image = sizes.screenshot(target=12_000)
    for make in (sizes.BlobServiceTrial, sizes.BlobFloorTrial):
        with backend.trial("shot") as p:
            trial = make(p, image, 2)
            try:
                assert trial.run() == 2
            finally:
                trial.close()


def test_reads_measure_compares_the_same_records(backend: Backend) -> None:
    done = reads._measure(2000)(backend, 1, _quiet)
    by_key = {r["key"]: r for r in done["results"]}
    assert by_key["read-by-subject"]["items"] == by_key["floor-read-by-subject"]["items"]
    assert by_key["read-by-time"]["items"] == by_key["floor-read-by-time"]["items"]
    assert by_key["read-by-subject"]["items"] == [250]
    assert {g["name"] for g in done["goals"]} == {"read/floor[by-subject]", "read/floor[by-time]"}


def test_export_memory_traces_a_whole_export(backend: Backend) -> None:
    before = len(import_export.MEMORY)
    done = export_memory._measure(600)(backend, 5, _quiet)
    assert [r["key"] for r in done["results"]] == [
        "export_memory[format=ndjson,records=600]",
        "export_memory[format=parquet,records=600]",
    ]
    for result in done["results"]:
        assert result["items"] == [600]
        assert result["peak_bytes"] > 0
        assert result["bytes"] > 0
    added = import_export.MEMORY[before:]
    assert [m["case"] for m in added] == [r["key"] for r in done["results"]]


def test_growth_and_plots(backend: Backend, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(growth, "INGEST_BATCHES", 1)
    done = growth._measure([500, 2500])(backend, 1, _quiet)
    keys = [r["key"] for r in done["results"]]
    assert "ingest[stored=2500]" in keys
    by_key = {r["key"]: r for r in done["results"]}
    assert by_key["read-by-subject[stored=500]"]["items"] == [125]
    assert by_key["read-by-time[stored=2500]"]["items"] == [1250]
    report = {
        "meta": {},
        "runs": [{"backend": {"backend": "sqlite"}, "suites": [{"suite": "growth", **done}]}],
    }
    written = plots.write_growth_plots(report, tmp_path)
    assert [p.name for p in written] == ["growth-ingest.png", "growth-read.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)
    assert plots.write_growth_plots({"runs": []}, tmp_path / "none") == []


def test_lifecycle_rotation_sweep_and_erasure(backend: Backend) -> None:
    done = lifecycle._measure_rotation([(10, 100), (10, 1000)])(backend, 1, _quiet)
    assert [r["items"] for r in done["results"]] == [[10], [10]]
    assert done["goals"][0]["name"] == "rotate 10x records, same keys"
    with backend.trial("sweep") as p:
        _run_and_close(lifecycle.SweepTrial(p, 300), 300)
    with backend.trial("erase") as p:
        _run_and_close(lifecycle.EraseTrial(p, 200), 200)


def test_sweep_and_erasure_run_on_copies_of_one_fill(backend: Backend) -> None:
    with backend.trial("sweep-template") as template:
        lifecycle.fill_sweep(template, 300)
        for _ in range(2):  # each copy holds the whole fill, though the previous one swept its own
            with backend.trial("sweep", template=template) as p:
                _run_and_close(lifecycle.SweepTrial(p, 300), 300)
        with backend.trial("sweep", template=template) as p, pytest.raises(RuntimeError):
            lifecycle.SweepTrial(p, 400)  # not the fill it holds
    with backend.trial("erase-template") as template:
        lifecycle.fill_erase(template, 200)
        for _ in range(2):
            with backend.trial("erase", template=template) as p:
                _run_and_close(lifecycle.EraseTrial(p, 200), 200)


def test_export_suite_exports_copies_of_one_fill_per_case(monkeypatch: Any) -> None:
    monkeypatch.setattr(import_export, "EXPORT_SIZES", {"quick": (30, 60)})
    monkeypatch.setattr(import_export, "MEMORY", [])
    fills: list[int] = []
    real_fill = import_export.fill_export

    def counted(place: TrialPlace, records: int) -> None:
        fills.append(records)
        real_fill(place, records)

    monkeypatch.setattr(import_export, "fill_export", counted)
    (_, exports) = import_export.suites(QUICK)
    report = run(
        suites=lambda m: [exports],
        mode=Mode("quick", 2),
        backends=["sqlite"],
        out=None,
        pg_url="",
        progress=_quiet,
    )
    results = {r["key"]: r["items"] for r in report["runs"][0]["suites"][0]["results"]}
    assert results["export[records=30]"] == [30, 30]
    assert results["export_parquet[records=60]"] == [60, 60]
    assert sorted(fills) == [30, 30, 60, 60]  # one fill per case, not per repetition
    assert {m["case"] for m in import_export.MEMORY} == {
        "export[records=30]",
        "export_parquet[records=30]",
        "export[records=60]",
        "export_parquet[records=60]",
    }


def test_redaction_rows_and_notes(capsys: Any) -> None:
    speed = {
        "ours redact_text": {"samples": [100.0, 120.0], "items": 10, "unit": "lines/s"},
        "detect-secrets scan_file": {"samples": [10.0, 12.0], "items": 5, "unit": "lines/s"},
        "_workload": {},
    }
    done = redaction.rows(speed)
    assert [r["key"] for r in done["results"]] == ["ours-redact_text", "detect-secrets-scan_file"]
    (goal,) = done["goals"]
    assert goal["ratio"] == pytest.approx(10.0)
    redaction.print_notes({"runs": [{"suites": [{"suite": "redaction", "notes": ["x"]}]}]})
    assert "redaction: x" in capsys.readouterr().out


def test_all_suites_and_only_filter(capsys: Any) -> None:
    names = bench_main.suite_names()
    for name in (
        "ingest",
        "http-ingest",
        "peers",
        "sizes",
        "reads",
        "growth",
        "rotation",
        "lifecycle",
        "redaction",
        "export-memory",
    ):
        assert name in names
    with pytest.raises(SystemExit):
        bench_main.main(["--only", "no-such-suite"])
    assert "unknown suite" in capsys.readouterr().err
