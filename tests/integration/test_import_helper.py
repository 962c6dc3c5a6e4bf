"""An import whose batches are redacted by the helper process (vault/services/redaction_helper.py)
against the same import redacted in the importing process: the same summary, audit entries per
batch and records per source row (secrets, keystrokes typed across batches, refused and invalid
rows among them); the helper's failures fall back to redacting in process; an interrupted import
leaves no helper behind and resumes exactly once. The ingest service uses a redaction made
ahead only for the dataset and mode it was made for. Both backends."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import COLLECTOR, OPERATOR, READER, Clock, event, make_dataset
from tests.integration.test_import import Killed, kill_after
from tests.integration.test_import_speedpaths import (
    assert_imports_agree,
    bodies,
    dataset_id,
    same_import,
    write,
)
from tests.unit.test_redaction_helper import NEEDS_HELPER, before_each_redaction
from vault.bootstrap import Vault, build_vault
from vault.config import Settings
from vault.domain.events import TelemetryEvent
from vault.domain.redaction import Redactor, redact_event
from vault.services.importer import _READ_AHEAD, ImportOptions, ImportService, _Pipeline
from vault.services.ingest import IngestService, Redacted, ahead_of
from vault.services.reads import EventQuery
from vault.services.redaction_helper import RedactionHelper
from vault.services.redaction_modes import redactor_for
from vault.storage.tables import datasets

pytestmark = NEEDS_HELPER

AWS = "AKIAZ2345ABCDEFGHJK7"
BATCH = 7


def source_lines(clock: Clock, n: int) -> list[str]:
    """Typed text with secrets, a secret typed key by key across batches, events of an
    excluded app (refused) and invalid rows."""
    lines = []
    typed = iter(f"export K={AWS} ")
    for i in range(n):
        when = (clock() - timedelta(seconds=n - i)).isoformat()
        row: dict[str, Any] = {"subject": f"emp{i % 3}@corp.example", "time": when}
        if i % 2:
            key = next(typed, "x")
            row.update(kind="key", app="Terminal", data={"key": key}, subject="typist")
        elif i % 10 == 4:
            row.update(kind="key_run", app="Signal", data={"text": "private"})
        elif i % 10 == 6:
            row.update(kind="click", data={})  # no x, y: invalid
        else:
            text = f"note {i} mail jane{i}@example.com key {AWS}" if i % 4 == 0 else f"note {i}"
            row.update(kind="key_run", app="Code", data={"text": text})
        lines.append(json.dumps(row))
    return lines


@pytest.fixture
def two(vault: Vault) -> Vault:
    for name in ("fast", "slow"):
        make_dataset(vault, name, exclusions={"apps": ["Signal"]})
    return vault


def spy_helpers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the batches submitted to helpers from now on."""
    sizes: list[int] = []
    real = RedactionHelper.submit

    def submit(self: RedactionHelper, batch: list[dict[str, Any]]) -> bool:
        sizes.append(len(batch))
        return real(self, batch)

    monkeypatch.setattr(RedactionHelper, "submit", submit)
    return sizes


def spy_ahead(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For each batch ingest redacts from now on, whether it used a redaction made ahead."""
    used: list[bool] = []
    real = IngestService._redact

    def redact(self: IngestService, *args: Any, **kw: Any) -> Any:
        used.append(kw.get("ahead") is not None)
        return real(self, *args, **kw)

    monkeypatch.setattr(IngestService, "_redact", redact)
    return used


def in_process(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault.imports, "_helper", False)


def import_in_process(vault: Vault, monkeypatch: pytest.MonkeyPatch, source: Path) -> Any:
    """The same source imported again into ``slow``, without a helper (the reference)."""
    in_process(vault, monkeypatch)
    return vault.imports.run(OPERATOR, "slow", source, ImportOptions(batch=BATCH))


def test_the_helper_redacts_as_the_importing_process_does(
    two: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write(tmp_path / "events.jsonl", source_lines(clock, 60))
    sizes = spy_helpers(monkeypatch)
    used = spy_ahead(monkeypatch)
    fast = two.imports.run(OPERATOR, "fast", source, ImportOptions(batch=BATCH))
    assert len(sizes) >= 5
    assert max(sizes) == BATCH
    # Every batch the helper took was stored with what it made; a last batch that found the
    # pipeline empty (the helper done with all before it) is redacted here, as a lone one.
    assert used[: len(sizes)] == [True] * len(sizes)
    assert used[len(sizes) :] in ([], [False])
    assert multiprocessing.active_children() == []  # ended with the import
    submitted = len(sizes)
    slow = import_in_process(two, monkeypatch, source)
    assert len(sizes) == submitted  # (no helper for the second)
    assert_imports_agree(two, fast, slow)
    assert fast["refused"] == {"excluded_app": 6}
    assert fast["invalid"] == 6
    assert fast["redactions"]["AWS_ACCESS_KEY"] >= 8
    typed = "".join(
        "*" if b["data"]["key"] == "[MASKED]" else b["data"]["key"]
        for _, b in sorted(bodies(two, "fast").items())
        if b["kind"] == "key"
    )
    assert typed.startswith("export K=" + "*" * len(AWS))  # masked across batches


def test_no_helper_when_the_settings_say_so(
    settings_factory: Callable[..., Settings],
    clock: Clock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[Redactor] = []
    real = RedactionHelper.start

    def start(redactor: Redactor) -> RedactionHelper | None:
        started.append(redactor)
        return real(redactor)

    monkeypatch.setattr(RedactionHelper, "start", start)
    source = write(tmp_path / "events.jsonl", source_lines(clock, 30))
    for wanted in (False, True):
        vault = build_vault(settings_factory(import_helper=wanted), now=clock)
        try:
            make_dataset(vault, f"h{int(wanted)}", exclusions={"apps": ["Signal"]})
            summary = vault.imports.run(OPERATOR, f"h{int(wanted)}", source, ImportOptions(batch=5))
            assert summary["verification"]["ok"] is True
        finally:
            vault.close()
        assert len(started) == int(wanted)


def test_one_lone_batch_is_redacted_in_process(
    two: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write(tmp_path / "events.jsonl", source_lines(clock, 6))
    sizes = spy_helpers(monkeypatch)
    summary = two.imports.run(OPERATOR, "fast", source, ImportOptions(batch=BATCH))
    assert summary["stored"] > 0
    assert sizes == []  # no process forked for one batch


def test_a_helper_that_dies_is_replaced_by_redacting_in_process(
    two: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write(tmp_path / "events.jsonl", source_lines(clock, 60))
    real = RedactionHelper.submit
    taken: list[bool] = []

    def submit(self: RedactionHelper, batch: list[dict[str, Any]]) -> bool:
        if len(taken) == 2:  # the helper dies before the third batch
            pid = self._process.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            self._process.join()
        taken.append(real(self, batch))
        return taken[-1]

    monkeypatch.setattr(RedactionHelper, "submit", submit)
    fast = two.imports.run(OPERATOR, "fast", source, ImportOptions(batch=BATCH))
    assert taken == [True, True, False]  # not used again once dead
    slow = import_in_process(two, monkeypatch, source)
    assert_imports_agree(two, fast, slow)


def test_a_batch_the_helper_cannot_redact_is_redacted_in_process(
    two: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fussy(body: dict[str, Any]) -> None:
        if "note 20 " in str(body.get("data")):
            raise RuntimeError("cannot")

    before_each_redaction(monkeypatch, fussy)
    source = write(tmp_path / "events.jsonl", source_lines(clock, 60))
    used = spy_ahead(monkeypatch)
    fast = two.imports.run(OPERATOR, "fast", source, ImportOptions(batch=BATCH))
    assert used[:-1].count(False) == 1  # that batch only (and perhaps a lone last one)
    assert used.count(True) >= 5
    slow = import_in_process(two, monkeypatch, source)
    assert_imports_agree(two, fast, slow)


@pytest.mark.parametrize("inside", [True, False], ids=["in-transaction", "between-batches"])
def test_an_interrupted_import_leaves_no_helper_and_resumes_exactly_once(
    two: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inside: bool
) -> None:
    source = write(tmp_path / "events.jsonl", source_lines(clock, 60))
    options = ImportOptions(batch=BATCH)
    kill_after(two, monkeypatch, 3, inside=inside)
    with pytest.raises(Killed):
        two.imports.run(OPERATOR, "fast", source, options)
    assert multiprocessing.active_children() == []
    monkeypatch.undo()
    resumed = two.imports.run(OPERATOR, "fast", source, options)
    assert resumed["resumed_at_row"] > 0
    in_process(two, monkeypatch)
    whole = two.imports.run(OPERATOR, "slow", source, options)
    assert same_import(resumed) == same_import(whole)
    # (A resumed import also verifies a sample of its earlier runs' rows: a larger sample.)
    verified = resumed["verification"]
    assert verified["matched_source"] == verified["decrypted"] > whole["verification"]["decrypted"]
    assert bodies(two, "fast") == bodies(two, "slow")


def dataset_row(vault: Vault, name: str) -> Any:
    with vault.db.read() as conn:
        return conn.execute(select(datasets).where(datasets.c.name == name)).one()


def stored_texts(vault: Vault, dataset: str) -> list[str]:
    page = vault.reads.list_events(READER, dataset, "research", EventQuery(limit=50))
    return sorted(e["data"]["text"] for e in page["events"])


def test_ingest_uses_a_redaction_made_ahead_only_for_its_dataset_and_mode(
    vault: Vault, clock: Clock
) -> None:
    make_dataset(vault, "ux")
    make_dataset(vault, "pz", redaction={"replacement": "pseudonym"})
    items = []
    for i in range(3):
        clock.advance(seconds=1)
        items.append(event(clock, data={"text": f"mail jane{i}@example.com"}))
    parsed = [TelemetryEvent.model_validate(i) for i in items]

    def marked() -> list[Any]:
        outcomes = [redact_event(e) for e in parsed]
        for outcome in outcomes:
            outcome.body["data"] = {"text": "made ahead"}
        return outcomes

    ids = {name: dataset_id(vault, name) for name in ("ux", "pz")}
    # Another dataset's, another mode's, not one per item, or another batch's: redacted anew.
    shifted = marked()
    shifted[0].body["time"] = shifted[1].body["time"]  # another batch's (other times)
    for name, redacted in (
        ("ux", Redacted(ids["pz"], "placeholder", ahead_of(marked()))),
        ("pz", Redacted(ids["pz"], "placeholder", ahead_of(marked()))),
        ("ux", Redacted(ids["ux"], "placeholder", ahead_of(marked()[:2]))),
        ("ux", Redacted(ids["ux"], "placeholder", ahead_of(shifted))),
        ("ux", Redacted(ids["ux"], "placeholder", ahead_of(marked()[::-1][:1] + marked()[1:]))),
    ):
        vault.ingest.ingest(COLLECTOR, name, items, redacted=redacted)
    assert stored_texts(vault, "ux") == ["mail [EMAIL]"] * 12
    assert "made ahead" not in json.dumps(stored_texts(vault, "pz"))
    # Its own: used as it is (the importer's helper made it with the same redactor).
    vault.ingest.ingest(
        COLLECTOR, "ux", items, redacted=Redacted(ids["ux"], "placeholder", ahead_of(marked()))
    )
    assert stored_texts(vault, "ux").count("made ahead") == 3


def test_ingest_seals_the_forms_made_ahead_but_for_key_events(vault: Vault, clock: Clock) -> None:
    make_dataset(vault, "ux")
    items = [event(clock, data={"text": f"note {i}"}) for i in range(2)]
    items.append(event(clock, kind="key", data={"key": "a"}))
    parsed = [TelemetryEvent.model_validate(i) for i in items]
    outcomes = [redact_event(e) for e in parsed]
    forms: list[bytes | None] = []
    for i, outcome in enumerate(outcomes):
        body = {**outcome.body, "data": {"text": f"sealed ahead {i}"}}
        forms.append(json.dumps(body, separators=(",", ":")).encode())
    ux = dataset_id(vault, "ux")
    vault.ingest.ingest(
        COLLECTOR, "ux", items, redacted=Redacted(ux, "placeholder", ahead_of(outcomes, forms))
    )
    page = vault.reads.list_events(READER, "ux", "research", EventQuery(limit=10))
    data = sorted(json.dumps(e["data"]) for e in page["events"])
    # The forms made ahead are what is sealed; a key event's body is encoded here (its form
    # made ahead is ignored: the stream redaction may have masked it since).
    assert data == sorted(
        [
            json.dumps({"text": "sealed ahead 0"}),
            json.dumps({"text": "sealed ahead 1"}),
            json.dumps({"key": "a", "modifiers": []}),
        ]
    )
    # Not whole (a sealed form missing, a body carried where its sealed form belongs, a key
    # event's body missing, another kind): nothing of it is used, the batch is redacted anew.
    whole = ahead_of(outcomes[:2], forms[:2])
    broken = [
        whole._replace(plaintexts=whole.plaintexts[:1]),
        whole._replace(plaintexts=[forms[0], None], bodies=[None, outcomes[1].body]),
        whole._replace(kinds=["key_run", "clipboard"]),
    ]
    keyed = ahead_of(outcomes, forms)
    broken.append(keyed._replace(bodies=[None, None, None]))
    for made, batch in zip(broken, [items[:2]] * 3 + [items], strict=True):
        vault.ingest.ingest(COLLECTOR, "ux", batch, redacted=Redacted(ux, "placeholder", made))
    page = vault.reads.list_events(READER, "ux", "research", EventQuery(limit=50))
    texts = [e["data"]["text"] for e in page["events"] if "text" in e["data"]]
    assert texts.count("note 0") == 4
    assert texts.count("note 1") == 4
    assert texts.count("sealed ahead 0") == 1


def test_the_importer_reads_ahead_of_a_slow_helper_a_few_batches_at_most(
    two: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow(body: dict[str, Any]) -> None:
        time.sleep(0.005)  # (a batch: 35 ms, several times what storing it takes)

    before_each_redaction(monkeypatch, slow)
    put, stored = _Pipeline.put, ImportService._store
    waiting = {"now": 0, "most": 0}

    def counting_put(self: _Pipeline, chunk: Any, *, last: bool = False) -> None:
        waiting["now"] += 1
        put(self, chunk, last=last)
        waiting["most"] = max(waiting["most"], waiting["now"])  # (read on after the put)

    def counting_store(self: ImportService, *args: Any) -> None:
        waiting["now"] -= 1
        stored(self, *args)

    monkeypatch.setattr(_Pipeline, "put", counting_put)
    monkeypatch.setattr(ImportService, "_store", counting_store)
    source = write(tmp_path / "events.jsonl", source_lines(clock, 120))
    fast = two.imports.run(OPERATOR, "fast", source, ImportOptions(batch=BATCH))
    # Read ahead (the queue and the chunk with the helper), never more.
    assert waiting["now"] == 0
    assert 2 <= waiting["most"] <= _READ_AHEAD + 1
    monkeypatch.undo()
    assert_imports_agree(two, fast, import_in_process(two, monkeypatch, source))


@pytest.mark.parametrize("helper", [True, False], ids=["helper", "in-process"])
def test_a_pseudonym_dataset_imports_verified_with_its_own_redactor(
    vault: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helper: bool
) -> None:
    make_dataset(
        vault, "pz", redaction={"replacement": "pseudonym"}, exclusions={"apps": ["Signal"]}
    )
    if not helper:
        in_process(vault, monkeypatch)
    used = spy_ahead(monkeypatch)
    source = write(tmp_path / "events.jsonl", source_lines(clock, 60))
    summary = vault.imports.run(OPERATOR, "pz", source, ImportOptions(batch=BATCH))
    # The sample is checked against the dataset's own redaction (pseudonyms, not [TYPE]).
    assert summary["verification"]["ok"] is True
    assert summary["verification"]["matched_source"] == summary["verification"]["decrypted"]
    assert any(used) is helper
    stored = bodies(vault, "pz")
    texts = [b["data"]["text"] for b in stored.values() if b["kind"] == "key_run"]
    assert any("[EMAIL:" in t for t in texts)
    assert not any("@example.com" in t or AWS in t for t in texts)
    lines = source.read_text("utf-8").splitlines()
    row = dataset_row(vault, "pz")
    redactor = redactor_for(vault.imports.keyring, row, None)
    parsed = {n: TelemetryEvent.model_validate_json(lines[n - 1]) for n in stored}
    for number, body in stored.items():
        if body["kind"] == "key":
            continue  # (keystrokes may be masked across events)
        expected = json.loads(json.dumps(redact_event(parsed[number], redactor).body))
        assert body == expected


def test_an_event_over_the_record_size_limit_is_refused_alike_with_the_helper(
    two: Vault, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = source_lines(clock, 40)
    big = {f"k{i}": "x" * 60_000 for i in range(20)}  # ≈ 1.2 MB sealed: over the limit
    when = (clock() - timedelta(seconds=100)).isoformat()
    lines[17] = json.dumps({"subject": "emp1", "time": when, "kind": "custom", "data": big})
    source = write(tmp_path / "events.jsonl", lines)
    used = spy_ahead(monkeypatch)
    fast = two.imports.run(OPERATOR, "fast", source, ImportOptions(batch=BATCH))
    assert fast["invalid_causes"].get("too_large") == 1
    assert True in used  # (the other batches: the helper's)
    slow = import_in_process(two, monkeypatch, source)
    assert_imports_agree(two, fast, slow)
