"""Bytes in, bytes out: AEAD, key wrapping, the record envelope and pseudonyms.

Pure: no database, no clock, no settings. Callers never choose a nonce or an algorithm.
"""

from vault.crypto.aead import KEY_BYTES, new_key, open_sealed, seal
from vault.crypto.context import encode_context
from vault.crypto.envelope import RecordContext, open_record, seal_record
from vault.crypto.kekwrap import unwrap_with_kek, wrap_with_kek
from vault.crypto.pseudonym import keyed_hash

__all__ = [
    "KEY_BYTES",
    "RecordContext",
    "encode_context",
    "keyed_hash",
    "new_key",
    "open_record",
    "open_sealed",
    "seal",
    "seal_record",
    "unwrap_with_kek",
    "wrap_with_kek",
]
