"""The independent verifier printed in docs/audit.md, run as printed.

The block after the ``audit-verify-snippet`` marker is extracted from the markdown and executed
with nothing but the standard library and ``cryptography``. It must accept a real vault's log
(exported as the HTTP API exports it, on a SQLite file) and a checkpoint file as the CLI writes
it, and must refuse edited, reordered, truncated or re-signed logs.
"""

from __future__ import annotations

import ast
import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import AUDITOR, COLLECTOR, Clock, event, make_dataset
from vault.audit.chain import GENESIS, canonical_json, entry_hash
from vault.audit.log import CHECKPOINT_KEY_REF, checkpoint_message
from vault.bootstrap import build_vault
from vault.config import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"
MARKER = "<!-- audit-verify-snippet"

Verifier = Callable[..., str]


def snippet() -> str:
    text = DOC.read_text("utf-8")
    assert MARKER in text, f"{DOC} lost its verifier block"
    match = re.search(r"```python\n(.*?)```", text[text.index(MARKER) :], re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.fixture(scope="module")
def verify_audit() -> Verifier:
    namespace: dict[str, Any] = {}
    exec(compile(snippet(), str(DOC), "exec"), namespace)  # the documented program, as printed
    function: Verifier = namespace["verify_audit"]
    return function


def test_snippet_is_short_and_self_contained() -> None:
    code = snippet()
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 30
    modules: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add((node.module or "").split(".")[0])
    assert modules == {"base64", "hashlib", "json", "cryptography"}


# -- a chain built from the documented rules (stored form: details as text) -------------------


def make_chain(n: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        entry: dict[str, Any] = {
            "seq": seq,
            "at": f"2026-01-01T00:00:{seq:02d}.000000+00:00",
            "actor": f"{seq:032x}",
            "role": "collector",
            "action": "events:ingest",
            "dataset": "ux" if seq % 2 else None,
            "purpose": None,
            "outcome": "ok",
            "reason": None if seq % 3 else "naïve “reason”",
            "details": canonical_json({"stored": seq, "note": "é"}),
            "prev_hash": prev,
        }
        entry["hash"] = prev = entry_hash(entry)
        entries.append(entry)
    return entries


def sign(key: Ed25519PrivateKey, entries: list[dict[str, Any]], seq: int) -> dict[str, Any]:
    head = entries[seq - 1]["hash"] if seq else GENESIS
    at = "2026-01-02T00:00:00.000000+00:00"
    return {
        "format": "tvault-checkpoint-v1",
        "seq": seq,
        "head": head,
        "at": at,
        "signature": base64.b64encode(key.sign(checkpoint_message(seq, head, at))).decode(),
    }


def test_accepts_a_chain_and_agrees_with_the_vault(verify_audit: Verifier) -> None:
    entries = make_chain(12)
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw().hex()
    assert verify_audit(entries) == entries[-1]["hash"]
    assert verify_audit([]) == GENESIS
    for seq in (0, 1, 7, 12):
        assert verify_audit(entries, sign(key, entries, seq), public) == entries[-1]["hash"]
    parsed = [{**e, "details": json.loads(e["details"])} for e in entries]  # as the API gives
    assert verify_audit(parsed) == entries[-1]["hash"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda es: es[4].update(outcome="denied"),
        lambda es: es[4].update(details=canonical_json({"stored": 0})),
        lambda es: es[0].update(prev_hash="1" * 64),
        lambda es: es.__delitem__(5),
        lambda es: es.insert(2, es.pop(3)),
        lambda es: es[-1].update(seq=99),
    ],
)
def test_refuses_an_edited_chain(
    verify_audit: Verifier, tamper: Callable[[list[Any]], Any]
) -> None:
    entries = make_chain(8)
    tamper(entries)
    with pytest.raises(ValueError, match="breaks at entry"):
        verify_audit(entries)


def test_refuses_a_log_behind_its_checkpoint(verify_audit: Verifier) -> None:
    entries = make_chain(10)
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw().hex()
    checkpoint = sign(key, entries, 10)
    with pytest.raises(ValueError, match="behind the checkpoint"):
        verify_audit(entries[:8], checkpoint, public)  # truncated: still a valid chain
    rewritten = make_chain(10)
    rewritten[9]["at"] = "2030-01-01T00:00:00.000000+00:00"
    rewritten[9]["hash"] = entry_hash(rewritten[9])
    with pytest.raises(ValueError, match="behind the checkpoint"):
        verify_audit(rewritten, checkpoint, public)


def test_refuses_a_bad_signature_or_another_key(verify_audit: Verifier) -> None:
    entries = make_chain(5)
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw().hex()
    checkpoint = sign(key, entries, 5)
    forged = bytearray(base64.b64decode(checkpoint["signature"]))
    forged[0] ^= 1
    with pytest.raises(InvalidSignature):
        verify_audit(
            entries, {**checkpoint, "signature": base64.b64encode(forged).decode()}, public
        )
    with pytest.raises(InvalidSignature):
        verify_audit(entries, {**checkpoint, "seq": 4, "head": entries[3]["hash"]}, public)
    impostor = Ed25519PrivateKey.generate()
    with pytest.raises(InvalidSignature):  # re-signed by someone else, checked with the pin
        verify_audit(entries, sign(impostor, entries, 5), public)


# -- a real vault's log, exported as the API exports it ----------------------------------------


def test_verifies_a_real_vault_export(verify_audit: Verifier, tmp_path: Path) -> None:
    clock = Clock()
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'vault.sqlite3'}",
        scrypt_n=2**14,
        operator="test-operator",
    )
    vault = build_vault(settings, now=clock)
    try:
        make_dataset(vault)
        vault.ingest.ingest(COLLECTOR, "ux", [event(clock), event(clock, "emp-2")])
        clock.advance(seconds=1.5)
        # The checkpoint file exactly as `tvault audit checkpoint --out FILE` writes it.
        path = tmp_path / "checkpoint.json"
        doc = vault.audit.checkpoint(AUDITOR)
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", "utf-8")
        pinned = vault.provider.public_key(CHECKPOINT_KEY_REF).hex()
        vault.ingest.ingest(COLLECTOR, "ux", [event(clock, "emp-3")])

        entries: list[dict[str, Any]] = []
        after = 0
        while True:
            page = vault.audit.entries(AUDITOR, after=after, limit=3)
            # Through JSON, as an HTTP client receives it.
            entries += json.loads(json.dumps(page["entries"]))
            if page["next_after"] is None:
                break
            after = page["next_after"]
        assert all(isinstance(e["details"], dict) for e in entries)
        assert len(entries) > doc["seq"] >= 3

        checkpoint = json.loads(path.read_text("utf-8"))
        assert verify_audit(entries, checkpoint, pinned) == entries[-1]["hash"]
        assert vault.audit.verify(AUDITOR)["ok"] is True

        edited = json.loads(json.dumps(entries))
        edited[1]["details"]["stored"] = 999
        with pytest.raises(ValueError, match="breaks at entry 2"):
            verify_audit(edited, checkpoint, pinned)
        with pytest.raises(ValueError, match="behind the checkpoint"):
            verify_audit(entries[: doc["seq"] - 1], checkpoint, pinned)
    finally:
        vault.close()
