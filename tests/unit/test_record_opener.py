"""RecordOpener (export) and RecordSealer (ingest) match open_record and seal_record exactly."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.crypto.envelope import (
    RecordContext,
    RecordOpener,
    RecordSealer,
    open_record,
    seal_record,
)
from vault.errors import DecryptionError

IDS = st.binary(min_size=16, max_size=16)


def any_record(test: Any) -> Any:
    """Run ``test`` as a property over any record context and plaintext."""
    strategies = given(
        dataset=st.text(max_size=40),
        record=IDS,
        subject=st.text(max_size=40),
        epoch=st.integers(-(2**63), 2**63 - 1),
        sek_id=IDS,
        plaintext=st.binary(max_size=300),
    )
    return settings(max_examples=150, deadline=None)(strategies(test))


@any_record
def test_opener_matches_open_record(dataset, record, subject, epoch, sek_id, plaintext) -> None:
    sek = os.urandom(32)
    ctx = RecordContext(dataset, record, subject, epoch, sek_id)
    envelope = seal_record(sek, ctx, plaintext)
    opener = RecordOpener(sek, dataset, subject, epoch, sek_id)
    assert opener.open(record, envelope) == open_record(sek, ctx, envelope) == plaintext


def test_opener_refuses_what_open_record_refuses() -> None:
    sek, sek_id, record = os.urandom(32), os.urandom(16), os.urandom(16)
    envelope = seal_record(sek, RecordContext("ds", record, "subj", 20000, sek_id), b"{}")
    good = RecordOpener(sek, "ds", "subj", 20000, sek_id)
    assert good.open(record, envelope) == b"{}"
    wrong = [
        (RecordOpener(sek, "ds", "other", 20000, sek_id), record),  # subject column edited
        (RecordOpener(sek, "ds", "subj", 20001, sek_id), record),  # epoch edited
        (RecordOpener(sek, "ds2", "subj", 20000, sek_id), record),  # another dataset
        (RecordOpener(os.urandom(32), "ds", "subj", 20000, sek_id), record),  # another key
        (good, os.urandom(16)),  # moved to another row
        (good, record[:15]),  # malformed id
    ]
    for opener, rid in wrong:
        with pytest.raises(DecryptionError):
            opener.open(rid, envelope)
    flipped = bytearray(envelope)
    flipped[-1] ^= 1
    for bad in (bytes(flipped), envelope[:-1], envelope + b"\0", b""):
        with pytest.raises(DecryptionError):
            good.open(record, bad)
    with pytest.raises(DecryptionError):
        RecordOpener(sek[:16], "ds", "subj", 20000, sek_id)


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    plaintext=st.binary(max_size=64),
)
def test_opener_refuses_every_altered_envelope(data, plaintext) -> None:
    """Any change to the envelope (a byte, its length field, its size) fails both ways."""
    sek, sek_id, record = os.urandom(32), os.urandom(16), os.urandom(16)
    ctx = RecordContext("ds", record, "subj", 7, sek_id)
    envelope = seal_record(sek, ctx, plaintext)
    opener = RecordOpener(sek, "ds", "subj", 7, sek_id)
    change = data.draw(st.sampled_from(["flip", "cut", "grow", "length"]))
    if change == "flip":
        at = data.draw(st.integers(0, len(envelope) - 1))
        bit = data.draw(st.integers(0, 7))
        altered = bytearray(envelope)
        altered[at] ^= 1 << bit
        bad = bytes(altered)
    elif change == "cut":
        bad = envelope[: data.draw(st.integers(0, len(envelope) - 1))]
    elif change == "grow":
        bad = envelope + data.draw(st.binary(min_size=1, max_size=8))
    else:
        length = data.draw(st.integers(0, 2**32 - 1).filter(lambda n: n != len(envelope) - 84))
        bad = envelope[:80] + length.to_bytes(4, "big") + envelope[84:]
    for opening in (lambda: opener.open(record, bad), lambda: open_record(sek, ctx, bad)):
        with pytest.raises(DecryptionError):
            opening()


@any_record
def test_sealer_seals_what_open_record_opens(
    dataset, record, subject, epoch, sek_id, plaintext
) -> None:
    """RecordSealer (the ingest hot path) writes seal_record's format and context."""
    sek = os.urandom(32)
    ctx = RecordContext(dataset, record, subject, epoch, sek_id)
    sealer = RecordSealer(sek, dataset, subject, epoch, sek_id)
    first, second = sealer.seal(record, plaintext), sealer.seal(record, plaintext)
    assert open_record(sek, ctx, first) == open_record(sek, ctx, second) == plaintext
    assert first != second  # a fresh DEK and fresh nonces each time
    assert len(first) == len(seal_record(sek, ctx, plaintext))
    assert first[:20] == seal_record(sek, ctx, plaintext)[:20]
    # Bound to its context: another record id, subject or epoch does not open it.
    other = RecordContext(dataset, bytes(16) if record != bytes(16) else b"\x01" * 16,
                          subject, epoch, sek_id)  # fmt: skip
    with pytest.raises(DecryptionError):
        open_record(sek, other, first)


def test_sealer_refuses_bad_sizes() -> None:
    sealer = RecordSealer(os.urandom(32), "ds", "s", 1, os.urandom(16))
    with pytest.raises(ValueError, match="16 bytes"):
        sealer.seal(b"short", b"x")
    with pytest.raises(ValueError, match="envelope limit"):
        sealer.seal(os.urandom(16), bytes(1024 * 1024 + 1))
    with pytest.raises(ValueError, match="32-byte"):
        RecordSealer(os.urandom(16), "ds", "s", 1, os.urandom(16))


def test_sealer_draws_distinct_nonces_and_keys() -> None:
    """The DEK and both nonces come from one CSPRNG read: each cut of it is a part of its own,
    fresh for every record."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from vault.crypto import envelope

    sek = os.urandom(32)
    sealer = RecordSealer(sek, "ds", "s", 1, os.urandom(16))
    parts: list[tuple[bytes, bytes, bytes]] = []
    for _ in range(50):
        rid = os.urandom(16)
        sealed = sealer.seal(rid, b"x")
        dek_nonce = sealed[envelope._HEADER_ID_END : envelope._DEK_NONCE_END]
        body_nonce = sealed[envelope.HEADER_BYTES : envelope._BODY_NONCE_END]
        aad = sealer._dek_prefix + rid + sealer._tail
        dek = AESGCM(sek).decrypt(
            dek_nonce, sealed[envelope._DEK_NONCE_END : envelope._DEK_END], aad
        )
        parts.append((dek, dek_nonce, body_nonce))
    deks, dek_nonces, body_nonces = (set(column) for column in zip(*parts, strict=True))
    assert len(deks) == len(dek_nonces) == len(body_nonces) == 50
    assert dek_nonces.isdisjoint(body_nonces)
    assert all(dek[: len(n)] != n for dek, n, _ in parts)
    assert all(dek[-len(n) :] != n for dek, _, n in parts)
