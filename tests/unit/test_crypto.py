"""vault.crypto: AEAD, context encoding, the record envelope, KEK wrapping, pseudonyms, key cache.

Every decryption failure must be the one opaque ``DecryptionError``: the tamper properties use
``pytest.raises(DecryptionError)``, so any other exception (or returned plaintext) fails them.
The byte layouts are checked against independent decoders written here from docs/envelope.md,
so the document and the code cannot drift apart.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import struct
import threading
from collections.abc import Callable
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vault.crypto import (
    RecordContext,
    encode_context,
    keyed_hash,
    new_key,
    open_record,
    open_sealed,
    seal,
    seal_record,
    unwrap_with_kek,
    wrap_with_kek,
)
from vault.crypto.context import MAX_CONTEXT_FIELD
from vault.crypto.envelope import HEADER_BYTES, MAX_PLAINTEXT, sek_id_of
from vault.crypto.keycache import KeyCache
from vault.errors import DecryptionError

PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))

ids16 = st.binary(min_size=16, max_size=16)
texts = st.text(max_size=40)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
keys32 = st.binary(min_size=32, max_size=32)


@st.composite
def plaintexts(draw: st.DrawFn, max_size: int = 64 * 1024) -> bytes:
    """Small shrinkable byte strings, or large ones drawn from a seeded PRNG (fast to make)."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=256))
    size = draw(st.integers(min_value=0, max_value=max_size))
    return random.Random(draw(st.integers(0, 2**32))).randbytes(size)


contexts = st.builds(RecordContext, texts, ids16, texts, int64, ids16)


# -- independent decoders, written from docs/envelope.md ---------------------------------------


def doc_field(value: bytes | str | int) -> bytes:
    raw = struct.pack(">q", value) if isinstance(value, int) else value
    raw = raw.encode() if isinstance(raw, str) else raw
    return struct.pack(">H", len(raw)) + raw


def doc_record_aad(label: bytes, ctx: RecordContext) -> bytes:
    fields = (label, 1, ctx.dataset_id, ctx.record_id, ctx.subject, ctx.epoch, ctx.sek_id)
    return b"".join(doc_field(f) for f in fields)


def doc_open_envelope(sek: bytes, ctx: RecordContext, envelope: bytes) -> bytes:
    assert envelope[:4] == b"TV\x01\x01"
    assert envelope[4:20] == ctx.sek_id
    sealed_dek = envelope[20:80]
    (body_len,) = struct.unpack(">I", envelope[80:84])
    assert len(envelope) == 84 + body_len
    dek = AESGCM(sek).decrypt(
        sealed_dek[:12], sealed_dek[12:], doc_record_aad(b"tvault/record-dek/v1", ctx)
    )
    body = envelope[84:]
    return AESGCM(dek).decrypt(body[:12], body[12:], doc_record_aad(b"tvault/record-body/v1", ctx))


def doc_unwrap(kek: bytes, wrapped: bytes, context: bytes) -> bytes:
    assert wrapped[0] == 0x01
    salt, nonce, rest = wrapped[1:33], wrapped[33:45], wrapped[45:]
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=salt, info=b"tvault/kek-wrap/v1" + context
    ).derive(kek)
    return AESGCM(derived).decrypt(nonce, rest, context)


def refused(call: Callable[[], object]) -> None:
    """``call`` must raise exactly the opaque DecryptionError (never return, never another type)."""
    with pytest.raises(DecryptionError) as info:
        call()
    assert type(info.value) is DecryptionError
    assert str(info.value) == "decryption failed"


# -- aead --------------------------------------------------------------------------------------


def test_seal_open_round_trip_and_layout() -> None:
    sealed = seal(KEY, b"hello", b"aad")
    assert len(sealed) == 12 + 5 + 16
    assert open_sealed(KEY, sealed, b"aad") == b"hello"
    assert AESGCM(KEY).decrypt(sealed[:12], sealed[12:], b"aad") == b"hello"
    assert open_sealed(KEY, seal(KEY, b"", b""), b"") == b""


def test_new_key_is_fresh_256_bits() -> None:
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(len(k) == 32 for k in keys)


@PROPS
@given(key=keys32, plaintext=plaintexts(max_size=4096), aad=st.binary(max_size=64))
def test_seal_open_property(key: bytes, plaintext: bytes, aad: bytes) -> None:
    assert open_sealed(key, seal(key, plaintext, aad), aad) == plaintext


@PROPS
@given(plaintext=st.binary(max_size=64), aad=st.binary(max_size=16), data=st.data())
def test_any_flipped_byte_is_refused(plaintext: bytes, aad: bytes, data: st.DataObject) -> None:
    sealed = bytearray(seal(KEY, plaintext, aad))
    index = data.draw(st.integers(0, len(sealed) - 1))
    sealed[index] ^= data.draw(st.integers(1, 255))
    refused(lambda: open_sealed(KEY, bytes(sealed), aad))


@PROPS
@given(plaintext=st.binary(max_size=64), data=st.data())
def test_truncated_or_extended_sealed_is_refused(plaintext: bytes, data: st.DataObject) -> None:
    sealed = seal(KEY, plaintext, b"")
    cut = data.draw(st.integers(0, len(sealed) - 1))
    refused(lambda: open_sealed(KEY, sealed[:cut], b""))
    extra = data.draw(st.binary(min_size=1, max_size=32))
    refused(lambda: open_sealed(KEY, sealed + extra, b""))


def test_wrong_key_or_aad_is_refused() -> None:
    sealed = seal(KEY, b"secret", b"aad")
    refused(lambda: open_sealed(OTHER_KEY, sealed, b"aad"))
    refused(lambda: open_sealed(KEY, sealed, b"aae"))
    refused(lambda: open_sealed(KEY, sealed, b""))


@pytest.mark.parametrize("size", [0, 16, 24, 31, 33, 64])
def test_key_size_is_checked(size: int) -> None:
    with pytest.raises(ValueError):
        seal(bytes(size), b"x", b"")
    refused(lambda: open_sealed(bytes(size), seal(KEY, b"x", b""), b""))


def test_nonces_differ_across_seals() -> None:
    sealed = [seal(KEY, b"same plaintext", b"same aad") for _ in range(2000)]
    assert len({s[:12] for s in sealed}) == len(sealed)
    assert len(set(sealed)) == len(sealed)


# -- context encoding --------------------------------------------------------------------------


@PROPS
@given(a=st.lists(st.binary(max_size=8), max_size=5), b=st.lists(st.binary(max_size=8), max_size=5))
def test_encode_context_is_injective_on_bytes(a: list[bytes], b: list[bytes]) -> None:
    # Short fields make boundary shifts (["ab","c"] vs ["a","bc"]) and empty fields likely.
    assert (encode_context(b"L", *a) == encode_context(b"L", *b)) == (a == b)


@PROPS
@given(a=st.lists(st.text(max_size=4), max_size=5), b=st.lists(st.text(max_size=4), max_size=5))
def test_encode_context_is_injective_on_text(a: list[str], b: list[str]) -> None:
    assert (encode_context(b"L", *a) == encode_context(b"L", *b)) == (a == b)


@st.composite
def typed_pair(draw: st.DrawFn) -> tuple[bytes, list[bytes | str | int], list[bytes | str | int]]:
    """Two field lists under one label and one schema of field types, as the vault uses them."""
    kinds = draw(st.lists(st.sampled_from(["bytes", "str", "int"]), max_size=6))
    of = {"bytes": st.binary(max_size=8), "str": st.text(max_size=4), "int": int64}
    label = draw(st.binary(max_size=8))
    first: list[bytes | str | int] = [draw(of[k]) for k in kinds]
    second: list[bytes | str | int] = [
        draw(st.one_of(st.just(v), of[k])) for k, v in zip(kinds, first, strict=True)
    ]
    return label, first, second


@PROPS
@given(typed_pair())
def test_encode_context_is_injective_per_schema(
    pair: tuple[bytes, list[bytes | str | int], list[bytes | str | int]],
) -> None:
    label, a, b = pair
    assert (encode_context(label, *a) == encode_context(label, *b)) == (a == b)


@PROPS
@given(l1=st.binary(max_size=8), l2=st.binary(max_size=8), fields=st.lists(texts, max_size=3))
def test_labels_separate_domains(l1: bytes, l2: bytes, fields: list[str]) -> None:
    assert (encode_context(l1, *fields) == encode_context(l2, *fields)) == (l1 == l2)


def test_encode_context_known_answer_and_limits() -> None:
    assert encode_context(b"ab", "c", 1, b"\x00") == (
        b"\x00\x02ab" + b"\x00\x01c" + b"\x00\x08" + b"\x00" * 7 + b"\x01" + b"\x00\x01\x00"
    )
    assert encode_context(b"L", -1)[-8:] == b"\xff" * 8
    assert encode_context(b"L", b"") != encode_context(b"L")
    encode_context(b"L", b"x" * MAX_CONTEXT_FIELD)
    with pytest.raises(ValueError):
        encode_context(b"L", b"x" * (MAX_CONTEXT_FIELD + 1))
    with pytest.raises(ValueError):
        encode_context(b"x" * (MAX_CONTEXT_FIELD + 1))
    with pytest.raises(TypeError):
        encode_context(b"L", True)


# -- record envelope ---------------------------------------------------------------------------


CTX = RecordContext("0" * 32, b"r" * 16, "f" * 32, 20_000, b"k" * 16)


@FEW
@given(sek=keys32, ctx=contexts, plaintext=plaintexts())
def test_envelope_round_trip(sek: bytes, ctx: RecordContext, plaintext: bytes) -> None:
    envelope = seal_record(sek, ctx, plaintext)
    assert len(envelope) == HEADER_BYTES + 12 + len(plaintext) + 16
    assert open_record(sek, ctx, envelope) == plaintext
    assert doc_open_envelope(sek, ctx, envelope) == plaintext
    assert sek_id_of(envelope) == ctx.sek_id


def test_envelope_layout_matches_the_document() -> None:
    envelope = seal_record(KEY, CTX, b"x" * 100)
    assert HEADER_BYTES == 84
    assert envelope[:2] == b"TV"
    assert envelope[2] == 1  # format version
    assert envelope[3] == 1  # object type: record
    assert envelope[4:20] == CTX.sek_id
    assert struct.unpack(">I", envelope[80:84]) == (12 + 100 + 16,)
    assert len(envelope) == 84 + 128
    assert doc_open_envelope(KEY, CTX, envelope) == b"x" * 100


def test_envelope_hides_the_plaintext() -> None:
    plaintext = b"password=hunter2 " * 64
    envelope = seal_record(KEY, CTX, plaintext)
    assert b"hunter2" not in envelope
    assert seal_record(KEY, CTX, plaintext) != envelope  # fresh DEK and nonces every time


def test_envelope_limits() -> None:
    assert MAX_PLAINTEXT == 1024 * 1024
    envelope = seal_record(KEY, CTX, b"\x00" * MAX_PLAINTEXT)
    assert open_record(KEY, CTX, envelope) == b"\x00" * MAX_PLAINTEXT
    with pytest.raises(ValueError):
        seal_record(KEY, CTX, b"\x00" * (MAX_PLAINTEXT + 1))
    for bad in (b"", b"r" * 15, b"r" * 17):
        with pytest.raises(ValueError):
            RecordContext("d", bad, "s", 1, b"k" * 16)
        with pytest.raises(ValueError):
            RecordContext("d", b"r" * 16, "s", 1, bad)


@PROPS
@given(plaintext=st.binary(max_size=64), data=st.data())
def test_envelope_any_flipped_byte_is_refused(plaintext: bytes, data: st.DataObject) -> None:
    envelope = bytearray(seal_record(KEY, CTX, plaintext))
    index = data.draw(st.integers(0, len(envelope) - 1), label="index")
    envelope[index] ^= data.draw(st.integers(1, 255), label="mask")
    refused(lambda: open_record(KEY, CTX, bytes(envelope)))


def test_envelope_every_single_byte_flip_is_refused() -> None:
    # Exhaustive over positions for one envelope (the property above samples masks too).
    envelope = seal_record(KEY, CTX, b"0123456789")
    for index in range(len(envelope)):
        tampered = bytearray(envelope)
        tampered[index] ^= 0x80
        refused(lambda t=bytes(tampered): open_record(KEY, CTX, t))


@PROPS
@given(plaintext=st.binary(max_size=64), data=st.data())
def test_envelope_truncated_or_extended_is_refused(plaintext: bytes, data: st.DataObject) -> None:
    envelope = seal_record(KEY, CTX, plaintext)
    cut = data.draw(st.integers(0, len(envelope) - 1), label="cut")
    refused(lambda: open_record(KEY, CTX, envelope[:cut]))
    extra = data.draw(st.binary(min_size=1, max_size=64), label="extra")
    refused(lambda: open_record(KEY, CTX, envelope + extra))


def _changed(ctx: RecordContext, field: str, data: st.DataObject) -> RecordContext:
    strategies = {"dataset_id": texts, "record_id": ids16, "subject": texts, "epoch": int64}
    strategy = strategies.get(field, ids16)
    value = data.draw(strategy.filter(lambda v: v != getattr(ctx, field)), label=field)
    return replace(ctx, **{field: value})


FIELDS = ["dataset_id", "record_id", "subject", "epoch", "sek_id"]


@PROPS
@given(ctx=contexts, field=st.sampled_from(FIELDS), data=st.data())
def test_envelope_is_bound_to_every_context_field(
    ctx: RecordContext, field: str, data: st.DataObject
) -> None:
    envelope = seal_record(KEY, ctx, b"payload")
    moved = _changed(ctx, field, data)
    refused(lambda: open_record(KEY, moved, envelope))
    # Also rewrite the header's (unauthenticated) SEK id to match: the AADs still bind it.
    relabelled = envelope[:4] + moved.sek_id + envelope[20:]
    refused(lambda: open_record(KEY, moved, relabelled))


def test_envelope_parts_cannot_be_spliced_between_records() -> None:
    a = seal_record(KEY, CTX, b"record a")
    ctx_b = replace(CTX, record_id=b"R" * 16)
    b = seal_record(KEY, ctx_b, b"record b")
    refused(lambda: open_record(KEY, CTX, b))
    refused(lambda: open_record(KEY, ctx_b, a))
    spliced = a[:84] + b[84:]  # a's DEK, b's body: lengths agree
    refused(lambda: open_record(KEY, CTX, spliced))
    refused(lambda: open_record(KEY, ctx_b, spliced))


@FEW
@given(sek=keys32, wrong=keys32, plaintext=st.binary(max_size=64))
def test_envelope_wrong_key_is_refused(sek: bytes, wrong: bytes, plaintext: bytes) -> None:
    envelope = seal_record(sek, CTX, plaintext)
    if wrong != sek:
        refused(lambda: open_record(wrong, CTX, envelope))
    refused(lambda: open_record(sek[:31], CTX, envelope))


@pytest.mark.parametrize(
    "garbage",
    [b"", b"TV", b"TV\x01\x01" + b"\x00" * 200, b"XX" + b"\x00" * 200, b"\x00" * 112],
)
def test_garbage_is_refused(garbage: bytes) -> None:
    refused(lambda: open_record(KEY, CTX, garbage))
    refused(lambda: sek_id_of(garbage))


def test_body_length_field_is_bounded() -> None:
    envelope = seal_record(KEY, CTX, b"abc")
    for claimed in (0, 27, 2**32 - 1, (1024 * 1024 + 29)):
        forged = envelope[:80] + struct.pack(">I", claimed) + envelope[84:]
        refused(lambda f=forged: open_record(KEY, CTX, f))


# -- KEK wrapping ------------------------------------------------------------------------------


@PROPS
@given(kek=keys32, key=st.binary(max_size=128), context=st.binary(max_size=64))
def test_kekwrap_round_trip(kek: bytes, key: bytes, context: bytes) -> None:
    wrapped = wrap_with_kek(kek, key, context)
    assert len(wrapped) == 1 + 32 + 12 + len(key) + 16
    assert wrapped[0] == 0x01
    assert unwrap_with_kek(kek, wrapped, context) == key
    assert doc_unwrap(kek, wrapped, context) == key


def test_kekwrap_salts_and_outputs_differ() -> None:
    wraps = [wrap_with_kek(KEY, b"k" * 32, b"ctx") for _ in range(500)]
    assert len({w[1:33] for w in wraps}) == 500
    assert len(set(wraps)) == 500


@PROPS
@given(context=st.binary(max_size=32), other=st.binary(max_size=32))
def test_kekwrap_is_bound_to_its_context(context: bytes, other: bytes) -> None:
    wrapped = wrap_with_kek(KEY, b"k" * 32, context)
    if other != context:
        refused(lambda: unwrap_with_kek(KEY, wrapped, other))
    refused(lambda: unwrap_with_kek(OTHER_KEY, wrapped, context))


@PROPS
@given(data=st.data())
def test_kekwrap_tamper_is_refused(data: st.DataObject) -> None:
    wrapped = wrap_with_kek(KEY, b"k" * 32, b"ctx")
    flipped = bytearray(wrapped)
    flipped[data.draw(st.integers(0, len(wrapped) - 1))] ^= data.draw(st.integers(1, 255))
    refused(lambda: unwrap_with_kek(KEY, bytes(flipped), b"ctx"))
    cut = data.draw(st.integers(0, len(wrapped) - 1))
    refused(lambda: unwrap_with_kek(KEY, wrapped[:cut], b"ctx"))
    refused(lambda: unwrap_with_kek(KEY, wrapped + data.draw(st.binary(min_size=1)), b"ctx"))


def test_kekwrap_key_size_is_checked() -> None:
    with pytest.raises(ValueError):
        wrap_with_kek(KEY[:16], b"k" * 32, b"")
    wrapped = wrap_with_kek(KEY, b"k" * 32, b"")
    refused(lambda: unwrap_with_kek(KEY[:16], wrapped, b""))
    refused(lambda: unwrap_with_kek(KEY + b"\x00", wrapped, b""))


@pytest.mark.parametrize("size", [4096, 4097, 10_000])
def test_kekwrap_never_makes_what_it_cannot_unwrap(size: int) -> None:
    # Either wrap refuses up front, or the result unwraps: a wrap that only fails on the way back
    # would destroy the key it was given.
    key = b"k" * size
    try:
        wrapped = wrap_with_kek(KEY, key, b"ctx")
    except ValueError:
        return
    assert unwrap_with_kek(KEY, wrapped, b"ctx") == key


# -- keyed hash (pseudonyms) -------------------------------------------------------------------


def test_keyed_hash_known_answer() -> None:
    # Pinned: changing the pseudonym function would orphan every stored pseudonym.
    message = b"\x00\x11tvault/subject/v1" + b"\x00\x02ds" + b"\x00\x05emp-1"
    expected = hmac.new(KEY, message, hashlib.sha256).hexdigest()[:32]
    assert keyed_hash(KEY, b"tvault/subject/v1", "ds", "emp-1") == expected
    assert expected == "a1605ef0005064e7f2291de0b6cc3a99"


@PROPS
@given(key=keys32, l1=st.binary(max_size=12), l2=st.binary(max_size=12), field=texts)
def test_keyed_hash_labels_separate(key: bytes, l1: bytes, l2: bytes, field: str) -> None:
    h1, h2 = keyed_hash(key, l1, field), keyed_hash(key, l2, field)
    assert len(h1) == 32
    assert int(h1, 16) >= 0
    assert (h1 == h2) == (l1 == l2)


@PROPS
@given(key=keys32, a=st.lists(texts, max_size=3), b=st.lists(texts, max_size=3))
def test_keyed_hash_fields_separate(key: bytes, a: list[str], b: list[str]) -> None:
    assert (keyed_hash(key, b"L", *a) == keyed_hash(key, b"L", *b)) == (a == b)


def test_keyed_hash_depends_on_key_and_refuses_short_keys() -> None:
    assert keyed_hash(KEY, b"L", "x") != keyed_hash(OTHER_KEY, b"L", "x")
    assert keyed_hash(KEY, b"L", "ab", "c") != keyed_hash(KEY, b"L", "a", "bc")
    keyed_hash(b"k" * 64, b"L", "x")
    with pytest.raises(ValueError):
        keyed_hash(b"k" * 31, b"L", "x")


# -- key cache ---------------------------------------------------------------------------------


class FakeClock:
    """Monotonic seconds that only move when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_is_bounded_lru() -> None:
    cache = KeyCache(3, 60, FakeClock())
    for name in "abc":
        cache.put(name, name.encode())
    assert cache.get("a") == b"a"  # a is now most recently used
    cache.put("d", b"d")
    assert len(cache) == 3
    assert cache.get("b") is None  # least recently used went first
    assert [cache.get(k) for k in "acd"] == [b"a", b"c", b"d"]
    cache.put("a", b"A")  # overwrite: no growth
    assert len(cache) == 3
    assert cache.get("a") == b"A"
    for i in range(100):
        cache.put(i, b"x")
    assert len(cache) == 3


def test_cache_entries_expire_by_age_not_by_use() -> None:
    clock = FakeClock()
    cache = KeyCache(10, 30, clock)
    cache.put("k", b"v")
    clock.now += 29.999
    assert cache.get("k") == b"v"  # a hit does not extend the age limit
    clock.now += 0.001
    assert cache.get("k") is None
    assert len(cache) == 0  # the expired entry is gone, not just hidden
    cache.put("k", b"v2")  # re-caching restarts the clock
    clock.now += 29
    assert cache.get("k") == b"v2"


def test_cache_discard_and_clear() -> None:
    cache = KeyCache(10, 30, FakeClock())
    for i in range(5):
        cache.put(("ds", i), b"x")
    cache.discard(("ds", 0))
    cache.discard(("ds", 99))  # absent: no error
    assert cache.get(("ds", 0)) is None
    cache.discard_where(lambda k: isinstance(k, tuple) and k[1] % 2 == 1)
    assert len(cache) == 2
    assert cache.get(("ds", 2)) == b"x"
    cache.clear()
    assert len(cache) == 0


@pytest.mark.parametrize(("size", "ttl"), [(0, 10), (-1, 10), (1, 0), (1, -5)])
def test_cache_needs_positive_limits(size: int, ttl: float) -> None:
    with pytest.raises(ValueError):
        KeyCache(size, ttl, FakeClock())


def test_cache_thread_safety_smoke() -> None:
    clock = FakeClock()
    cache = KeyCache(16, 5, clock)
    errors: list[BaseException] = []
    wrong: list[tuple[int, bytes]] = []
    start = threading.Barrier(8)

    def hammer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            start.wait()
            for _ in range(3000):
                k = rng.randrange(64)
                if rng.random() < 0.5:
                    cache.put(k, k.to_bytes(2, "big"))
                else:
                    got = cache.get(k)
                    if got is not None and got != k.to_bytes(2, "big"):
                        wrong.append((k, got))
                if rng.random() < 0.01:
                    cache.discard(rng.randrange(64))
                if rng.random() < 0.01:
                    clock.now += 1
                assert len(cache) <= 16
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert not wrong
    assert len(cache) <= 16
