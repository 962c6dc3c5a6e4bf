"""Regressions for the security review of 2026-11-23 (each test names its finding)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.conftest import (
    ADMIN,
    AUDITOR,
    COLLECTOR,
    PRIVACY,
    READER,
    Clock,
    event,
    make_dataset,
    principal,
)
from vault.bootstrap import Vault
from vault.domain.collection import url_host
from vault.domain.principal import Role
from vault.domain.purposes import ForbiddenPurposes, normalize_purpose
from vault.errors import Forbidden, NotFound, ValidationFailed
from vault.services.reads import EventQuery


def test_purpose_separator_variants_hit_the_floor() -> None:
    floor = ForbiddenPurposes()
    for variant in (
        "performance__review",
        "performance_review_",
        "performance-_review",
        "PerformanceReview",
        " hr  investigation ",
        "disciplinary",
    ):
        assert normalize_purpose(variant) in floor, variant
    assert "research" not in floor


def test_dataset_cannot_allow_a_disguised_forbidden_purpose(vault: Vault) -> None:
    with pytest.raises(ValidationFailed):
        make_dataset(vault, "hr", purposes=["performance__review"])


def test_wrapper_schemes_do_not_hide_an_excluded_domain() -> None:
    assert url_host("blob:https://chase.com/x") == "chase.com"
    assert url_host("view-source:https://www.chase.com/") == "www.chase.com"


def test_dataset_limited_tokens_stay_inside_their_datasets(vault: Vault, clock: Clock) -> None:
    make_dataset(vault, "alpha", retention_days=5)
    make_dataset(vault, "beta", retention_days=5)
    for name in ("alpha", "beta"):
        vault.ingest.ingest(COLLECTOR, name, [event(clock, "emp-1")])
    clock.advance(days=6)
    limited_admin = principal("adm", Role.ADMIN, datasets=frozenset({"alpha"}))
    swept = vault.retention.sweep(limited_admin)
    assert [d["dataset"] for d in swept["datasets"]] == ["alpha"]
    with vault.db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM records")).scalar_one() == 1

    limited_auditor = principal("aud", Role.AUDITOR, datasets=frozenset({"alpha"}))
    with pytest.raises(Forbidden):
        vault.audit.entries(limited_auditor)
    with pytest.raises(Forbidden):
        vault.audit.verify(limited_auditor)
    assert vault.audit.entries(AUDITOR)["entries"]

    cert = vault.lifecycle.erase(PRIVACY, "emp-9")
    limited_po = principal("po", Role.PRIVACY_OFFICER, datasets=frozenset({"beta"}))
    with pytest.raises(NotFound):
        vault.lifecycle.certificate(limited_po, cert["erasure"])
    assert vault.lifecycle.certificate(PRIVACY, cert["erasure"]) == cert


def test_erasure_keeps_held_data_and_says_so(vault: Vault, clock: Clock) -> None:
    make_dataset(vault, "ux")
    make_dataset(vault, "other")
    for name in ("ux", "other"):
        vault.ingest.ingest(COLLECTOR, name, [event(clock, "emp-1")])
    vault.retention.set_hold(PRIVACY, "ux", {"reason": "case 12", "subject": "emp-1"})
    cert = vault.lifecycle.erase(PRIVACY, "emp-1")
    by_name = {d["dataset"]: d for d in cert["destroyed"]}
    assert by_name["ux"] == {"dataset": "ux", "keys": 0, "records": 0, "held": True}
    assert by_name["other"]["records"] == 1
    page = vault.reads.list_events(READER, "ux", "research", EventQuery(subject="emp-1"))
    assert len(page["events"]) == 1
    # Collection stops even where the data is held.
    refused = vault.ingest.ingest(COLLECTOR, "ux", [event(clock, "emp-1")])
    assert refused["results"][0]["reason"] == "consent_withdrawn"


def test_interrupted_destruction_is_announced_then_finished(
    vault: Vault, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_dataset(vault, "ux")
    vault.ingest.ingest(COLLECTOR, "ux", [event(clock, "emp-1")])
    provider = vault.provider

    def fail(key_ref: str, version: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(provider, "destroy_version", fail)
    with pytest.raises(OSError):
        vault.lifecycle.rotate(ADMIN, "ux", destroy_old=True)
    with vault.db.read() as conn:
        states = conn.execute(
            text("SELECT version, state FROM dataset_keks ORDER BY version")
        ).all()
        actions = [a for (a,) in conn.execute(text("SELECT action FROM audit_log ORDER BY seq"))]
    assert [tuple(r) for r in states] == [(1, "destroying"), (2, "active")]
    assert actions[-1] == "keys:rotate"  # the destruction was announced before it was tried
    monkeypatch.undo()
    result = vault.lifecycle.rotate(ADMIN, "ux", destroy_old=True)
    assert result["destroyed_versions"] == [1, 2]
    with vault.db.read() as conn:
        states = conn.execute(
            text("SELECT version, state FROM dataset_keks ORDER BY version")
        ).all()
    assert [tuple(r) for r in states] == [(1, "destroyed"), (2, "destroyed"), (3, "active")]
    page = vault.reads.list_events(READER, "ux", "research", EventQuery(subject="emp-1"))
    assert len(page["events"]) == 1


def test_raw_caller_input_never_reaches_the_audit_log(vault: Vault) -> None:
    make_dataset(vault, "ux")
    canary = "canary.person@example.com"
    with pytest.raises(Exception):
        vault.reads.list_events(READER, "ux", f"investigate {canary}", EventQuery())
    with pytest.raises(NotFound):
        vault.reads.list_events(READER, f"ux {canary}", "research", EventQuery())
    with pytest.raises(ValidationFailed):
        vault.datasets.create(ADMIN, {"name": "x", "retention_days": 1, "purposes": [canary]})
    with vault.db.read() as conn:
        dump = " ".join(str(r) for r in conn.execute(text("SELECT * FROM audit_log")))
    assert "canary" not in dump
    assert "malformed:" in dump
