"""The record envelope, format version 1 (byte layout in docs/envelope.md).

::

    offset  size  field
    0       2     magic b"TV"
    2       1     format version (0x01)
    3       1     object type (0x01 = record)
    4       16    subject-epoch key id (SEK id)
    20      60    DEK sealed under the SEK: nonce(12) || ct(32) || tag(16), AAD = dek context
    80      4     body length N, unsigned big-endian, 28 <= N <= MAX_BODY
    84      N     body sealed under the DEK: nonce(12) || ct || tag(16), AAD = body context

Both AADs bind the format version, dataset id, record id, subject pseudonym, epoch and SEK id
(DESIGN.md §3), under different labels, so a DEK or body moved to another row, subject, day or
dataset fails to open. Anything but exactly ``84 + N`` bytes is refused before any crypto runs.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.crypto.aead import KEY_BYTES, NONCE_BYTES, SEALED_OVERHEAD, new_key, open_sealed, seal
from vault.crypto.context import MAX_CONTEXT_FIELD, encode_context
from vault.errors import DecryptionError

__all__ = [
    "FORMAT_VERSION",
    "HEADER_BYTES",
    "MAX_BODY",
    "RecordContext",
    "RecordOpener",
    "RecordSealer",
    "open_record",
    "seal_record",
    "sek_id_of",
]

MAGIC = b"TV"
FORMAT_VERSION = 0x01
TYPE_RECORD = 0x01
ID_BYTES = 16
SEALED_DEK_BYTES = SEALED_OVERHEAD + KEY_BYTES
HEADER_BYTES = 4 + ID_BYTES + SEALED_DEK_BYTES + 4
MAX_PLAINTEXT = 1024 * 1024
MAX_BODY = MAX_PLAINTEXT + SEALED_OVERHEAD
_LEN = struct.Struct(">I")
_DEK_LABEL = b"tvault/record-dek/v1"
_BODY_LABEL = b"tvault/record-body/v1"
_U16 = struct.Struct(">H")
_EPOCH = struct.Struct(">Hq")
_ID_PREFIX = _U16.pack(ID_BYTES)
_VERSION_FIELD = encode_context(b"", FORMAT_VERSION)[2:]
_LABEL_PREFIX = {label: encode_context(label) for label in (_DEK_LABEL, _BODY_LABEL)}
# Offsets of the layout above, for RecordOpener.
_HEADER_ID_END = 4 + ID_BYTES
_DEK_NONCE_END = _HEADER_ID_END + NONCE_BYTES
_DEK_END = _HEADER_ID_END + SEALED_DEK_BYTES
_LEN_AT = HEADER_BYTES - 4
_BODY_NONCE_END = HEADER_BYTES + NONCE_BYTES
_MIN_ENVELOPE = HEADER_BYTES + SEALED_OVERHEAD
_MAX_ENVELOPE = HEADER_BYTES + MAX_BODY


@dataclass(frozen=True, slots=True)
class RecordContext:
    """Where a record belongs; every field is bound into its associated data."""

    dataset_id: str
    record_id: bytes
    subject: str
    epoch: int
    sek_id: bytes
    _fields: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.record_id) != ID_BYTES or len(self.sek_id) != ID_BYTES:
            raise ValueError("record and key ids are 16 bytes")
        # Encoded once, and by hand (the hot path): exactly encode_context's bytes for
        # (FORMAT_VERSION, dataset_id, record_id, subject, epoch, sek_id), as a test checks.
        dataset = self.dataset_id.encode("utf-8")
        subject = self.subject.encode("utf-8")
        if len(dataset) > MAX_CONTEXT_FIELD or len(subject) > MAX_CONTEXT_FIELD:
            raise ValueError("context field too long")
        fields = b"".join(
            (
                _VERSION_FIELD,
                _U16.pack(len(dataset)),
                dataset,
                _ID_PREFIX,
                self.record_id,
                _U16.pack(len(subject)),
                subject,
                _EPOCH.pack(8, self.epoch),
                _ID_PREFIX,
                self.sek_id,
            )
        )
        object.__setattr__(self, "_fields", fields)

    def aad(self, label: bytes) -> bytes:
        """The associated data for one of the envelope's two seals (docs/envelope.md)."""
        prefix = _LABEL_PREFIX.get(label)
        return (prefix if prefix is not None else encode_context(label)) + self._fields


def seal_record(sek: bytes, ctx: RecordContext, plaintext: bytes) -> bytes:
    """Encrypt ``plaintext`` under a fresh DEK, itself sealed under the subject-epoch key."""
    if len(plaintext) > MAX_PLAINTEXT:
        raise ValueError("record plaintext over the envelope limit")
    dek = new_key()
    sealed_dek = seal(sek, dek, ctx.aad(_DEK_LABEL))
    body = seal(dek, plaintext, ctx.aad(_BODY_LABEL))
    header = MAGIC + bytes([FORMAT_VERSION, TYPE_RECORD]) + ctx.sek_id
    return header + sealed_dek + _LEN.pack(len(body)) + body


def sek_id_of(envelope: bytes) -> bytes:
    """The SEK id an envelope names (unauthenticated until the envelope opens)."""
    _check_frame(envelope)
    return envelope[4 : 4 + ID_BYTES]


def _check_frame(envelope: bytes) -> int:
    if len(envelope) < HEADER_BYTES + SEALED_OVERHEAD or envelope[:2] != MAGIC:
        raise DecryptionError("decryption failed")
    if envelope[2] != FORMAT_VERSION or envelope[3] != TYPE_RECORD:
        raise DecryptionError("decryption failed")
    (body_len,) = _LEN.unpack_from(envelope, HEADER_BYTES - 4)
    if not SEALED_OVERHEAD <= body_len <= MAX_BODY or len(envelope) != HEADER_BYTES + body_len:
        raise DecryptionError("decryption failed")
    return int(body_len)


def open_record(sek: bytes, ctx: RecordContext, envelope: bytes) -> bytes:
    """Inverse of :func:`seal_record`; every failure is one opaque DecryptionError."""
    _check_frame(envelope)
    if envelope[4 : 4 + ID_BYTES] != ctx.sek_id:
        raise DecryptionError("decryption failed")
    dek_start = 4 + ID_BYTES
    dek = open_sealed(sek, envelope[dek_start : dek_start + SEALED_DEK_BYTES], ctx.aad(_DEK_LABEL))
    return open_sealed(dek, envelope[HEADER_BYTES:], ctx.aad(_BODY_LABEL))


def _context_parts(
    dataset_id: str, subject: str, epoch: int, sek_id: bytes
) -> tuple[bytes, bytes, bytes]:
    """(DEK label + fields before the record id, body label + the same, fields after it): the
    associated data of a record of this (dataset, subject, epoch, SEK) is prefix + record id +
    tail, exactly :meth:`RecordContext.aad`'s bytes."""
    fields = RecordContext(dataset_id, bytes(ID_BYTES), subject, epoch, sek_id)._fields
    # The fields are version, dataset, record id, subject, epoch, SEK id; split around the
    # record id (after its length prefix).
    split = len(_VERSION_FIELD) + 2 + len(dataset_id.encode("utf-8")) + len(_ID_PREFIX)
    head, tail = fields[:split], fields[split + ID_BYTES :]
    return _LABEL_PREFIX[_DEK_LABEL] + head, _LABEL_PREFIX[_BODY_LABEL] + head, tail


class _GroupKey:
    """What every record of one (dataset, subject, epoch, SEK) shares: the SEK's cipher, the
    fixed parts of both associated data, and the first 20 bytes of the envelope (magic,
    version, type, SEK id)."""

    __slots__ = ("_body_prefix", "_dek_prefix", "_header", "_sek", "_tail")

    def __init__(self, sek: bytes, dataset_id: str, subject: str, epoch: int, sek_id: bytes):
        self._dek_prefix, self._body_prefix, self._tail = _context_parts(
            dataset_id, subject, epoch, sek_id
        )
        self._sek = AESGCM(sek)
        self._header = MAGIC + bytes([FORMAT_VERSION, TYPE_RECORD]) + sek_id


#: A record's fresh bytes (DEK, DEK nonce, body nonce) and where its DEK nonce ends.
_FRESH_BYTES = KEY_BYTES + 2 * NONCE_BYTES
_DEK_NONCE = KEY_BYTES + NONCE_BYTES


class RecordSealer(_GroupKey):
    """Seals many records of one (dataset, subject, epoch, SEK) exactly as :func:`seal_record`
    does for each (a fresh DEK and fresh nonces per record, the same associated data), with the
    SEK's cipher and the context's fixed fields prepared once: the ingest hot path."""

    __slots__ = ()

    def __init__(self, sek: bytes, dataset_id: str, subject: str, epoch: int, sek_id: bytes):
        if len(sek) != KEY_BYTES:
            raise ValueError("AES-256-GCM needs a 32-byte key")
        super().__init__(sek, dataset_id, subject, epoch, sek_id)

    def seal(self, record_id: bytes, plaintext: bytes) -> bytes:
        """The envelope of one record (``record_id``: its 16 id bytes)."""
        if len(record_id) != ID_BYTES:
            raise ValueError("record ids are 16 bytes")
        if len(plaintext) > MAX_PLAINTEXT:
            raise ValueError("record plaintext over the envelope limit")
        tail = record_id + self._tail
        # The DEK and both nonces from one read of the OS CSPRNG (a third of the system calls;
        # its bytes are independent whichever way they are cut).
        fresh = os.urandom(_FRESH_BYTES)
        dek, dek_nonce, body_nonce = (
            fresh[:KEY_BYTES],
            fresh[KEY_BYTES:_DEK_NONCE],
            fresh[_DEK_NONCE:],
        )
        sealed_dek = dek_nonce + self._sek.encrypt(dek_nonce, dek, self._dek_prefix + tail)
        body = body_nonce + AESGCM(dek).encrypt(body_nonce, plaintext, self._body_prefix + tail)
        return self._header + sealed_dek + _LEN.pack(len(body)) + body


class RecordOpener(_GroupKey):
    """Opens many records of one (dataset, subject, epoch, SEK), as :func:`open_record` does
    for each (same checks, same associated data, one opaque DecryptionError), with the SEK's
    cipher and the context's fixed fields prepared once: the export hot path.

    Only the record id differs between the records of one opener, so a row whose subject or
    epoch column was edited must get an opener of its own (its wrong context then fails)."""

    __slots__ = ()

    def __init__(self, sek: bytes, dataset_id: str, subject: str, epoch: int, sek_id: bytes):
        if len(sek) != KEY_BYTES:
            raise DecryptionError("decryption failed")
        super().__init__(sek, dataset_id, subject, epoch, sek_id)

    def open(self, record_id: bytes, envelope: bytes) -> bytes:
        """The plaintext of one record's envelope; DecryptionError on any problem."""
        # _check_frame's checks, and open_record's SEK id check, in fewer steps: the body
        # length field must be the rest of the envelope, within SEALED_OVERHEAD..MAX_BODY.
        size = len(envelope)
        if (
            len(record_id) != ID_BYTES
            or not _MIN_ENVELOPE <= size <= _MAX_ENVELOPE
            or envelope[:_HEADER_ID_END] != self._header
            or _LEN.unpack_from(envelope, _LEN_AT)[0] != size - HEADER_BYTES
        ):
            raise DecryptionError("decryption failed")
        tail = record_id + self._tail
        try:
            dek = self._sek.decrypt(
                envelope[_HEADER_ID_END:_DEK_NONCE_END],
                envelope[_DEK_NONCE_END:_DEK_END],
                self._dek_prefix + tail,
            )
            return AESGCM(dek).decrypt(
                envelope[HEADER_BYTES:_BODY_NONCE_END],
                envelope[_BODY_NONCE_END:],
                self._body_prefix + tail,
            )
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError("decryption failed") from exc
