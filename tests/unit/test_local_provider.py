"""The local keyring provider and the provider registry (docs/keyring.md).

The sealed layout is checked with an independent reader written from docs/keyring.md (scrypt,
AES-256-GCM, the context encoding), so the document stays true and no file holds a raw key.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from vault.crypto.kekwrap import unwrap_with_kek
from vault.errors import ConfigurationError, DecryptionError, KeyDestroyed, KeyError_
from vault.providers import KeyState, open_provider
from vault.providers.local import LocalKeyringProvider

PASSPHRASE = "correct horse battery staple"
N = 2**14
CTX = b"wrap-context"


def sealed_keyring(root: Path, passphrase: str | None = PASSPHRASE) -> LocalKeyringProvider:
    return LocalKeyringProvider(root, passphrase=passphrase, scrypt_n=N)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "keys"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def ctx_field(value: bytes | str | int) -> bytes:
    raw = struct.pack(">q", value) if isinstance(value, int) else value
    raw = raw.encode() if isinstance(raw, str) else raw
    return struct.pack(">H", len(raw)) + raw


def doc_read_key(root: Path, passphrase: str, key_ref: str, version: int) -> bytes:
    """Read a raw key from a sealed keyring exactly as docs/keyring.md describes it."""
    header = json.loads((root / "keyring.json").read_text())
    kdf = header["kdf"]
    master = Scrypt(
        salt=base64.b64decode(kdf["salt"]), length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]
    ).derive(passphrase.encode())
    check = base64.b64decode(header["check"])
    assert AESGCM(master).decrypt(check[:12], check[12:], b"tvault/keyring-check/v1") == b"ok"
    doc = json.loads((root / key_ref / f"v{version}.key").read_text())
    sealed = base64.b64decode(doc["material"])
    aad = b"".join(ctx_field(f) for f in (b"tvault/keyfile/v1", key_ref, version, doc["kind"]))
    return AESGCM(master).decrypt(sealed[:12], sealed[12:], aad)


def every_file(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


# -- sealed keyring on disk --------------------------------------------------------------------


def test_sealed_keyring_files_are_private_and_shaped(root: Path) -> None:
    provider = sealed_keyring(root)
    assert provider.create_version("ds-abc") == 1
    provider.sign("audit-checkpoint", b"m")
    assert mode(root) == 0o700
    assert mode(root / "ds-abc") == 0o700
    assert mode(root / "audit-checkpoint") == 0o700
    files = every_file(root)
    assert {p.relative_to(root).as_posix() for p in files} == {
        "keyring.json",
        "ds-abc/v1.key",
        "audit-checkpoint/v1.key",
    }
    for path in files:
        assert mode(path) == 0o600, path

    header = json.loads((root / "keyring.json").read_text())
    assert header.keys() == {"format", "sealed", "kdf", "check"}
    assert header["format"] == 1
    assert header["sealed"] is True
    assert header["kdf"]["name"] == "scrypt"
    assert (header["kdf"]["n"], header["kdf"]["r"], header["kdf"]["p"]) == (N, 8, 1)
    assert len(base64.b64decode(header["kdf"]["salt"])) == 32

    for key_ref, kind in (("ds-abc", "aes256"), ("audit-checkpoint", "ed25519")):
        doc = json.loads((root / key_ref / "v1.key").read_text())
        assert doc.keys() == {"format", "key_ref", "version", "kind", "sealed", "material"}
        assert (doc["format"], doc["key_ref"], doc["version"]) == (1, key_ref, 1)
        assert (doc["kind"], doc["sealed"]) == (kind, True)
        assert len(base64.b64decode(doc["material"])) == 12 + 32 + 16  # nonce, key, tag


def test_no_file_holds_a_raw_key(root: Path) -> None:
    provider = sealed_keyring(root)
    provider.create_version("ds-abc")
    public = provider.public_key("audit-checkpoint")
    kek = doc_read_key(root, PASSPHRASE, "ds-abc", 1)
    signing = doc_read_key(root, PASSPHRASE, "audit-checkpoint", 1)
    # The independent reader found the real keys: they do what the provider does.
    known = b"a known plaintext key, 32 bytes"
    assert unwrap_with_kek(kek, provider.wrap("ds-abc", 1, known, CTX), CTX) == known
    assert Ed25519PrivateKey.from_private_bytes(signing).public_key().public_bytes_raw() == public
    for path in every_file(root):
        content = path.read_bytes()
        for secret in (kek, signing, known):
            assert secret not in content, path
            assert base64.b64encode(secret) not in content, path
            assert secret.hex().encode() not in content, path


def test_wrong_or_missing_passphrase_is_refused(root: Path) -> None:
    sealed_keyring(root).create_version("ds-abc")
    with pytest.raises(ConfigurationError, match="wrong master passphrase"):
        sealed_keyring(root, "not the passphrase")
    with pytest.raises(ConfigurationError, match="sealed"):
        sealed_keyring(root, None)
    with pytest.raises(ConfigurationError, match="sealed"):
        sealed_keyring(root, "")


def test_unsealed_keyring_cannot_be_opened_with_a_passphrase(root: Path) -> None:
    sealed_keyring(root, None)
    with pytest.raises(ConfigurationError, match="unsealed"):
        sealed_keyring(root, PASSPHRASE)


def test_unreadable_header_is_a_configuration_error(root: Path) -> None:
    root.mkdir(mode=0o700)
    (root / "keyring.json").write_text("{not json")
    with pytest.raises(ConfigurationError):
        sealed_keyring(root)


def test_keys_survive_reopen(root: Path) -> None:
    first = sealed_keyring(root)
    first.create_version("ds-abc")
    wrapped = first.wrap("ds-abc", 1, b"k" * 32, CTX)
    public = first.public_key("audit-checkpoint")
    signature = first.sign("audit-checkpoint", b"message")

    again = sealed_keyring(root)
    assert again.unwrap("ds-abc", 1, wrapped, CTX) == b"k" * 32
    assert again.public_key("audit-checkpoint") == public
    Ed25519PublicKey.from_public_bytes(public).verify(signature, b"message")
    Ed25519PublicKey.from_public_bytes(public).verify(
        again.sign("audit-checkpoint", b"other"), b"other"
    )
    assert again.public_key("another-signer") != public


def test_tampered_or_moved_key_files_are_refused(root: Path) -> None:
    provider = sealed_keyring(root)
    provider.create_version("ds-abc")
    provider.create_version("ds-abc")
    wrapped = provider.wrap("ds-abc", 2, b"k" * 32, CTX)
    # A v1 file copied over v2: the file's AAD binds key_ref and version, so it will not open.
    (root / "ds-abc" / "v2.key").write_bytes((root / "ds-abc" / "v1.key").read_bytes())
    with pytest.raises(DecryptionError):
        sealed_keyring(root).unwrap("ds-abc", 2, wrapped, CTX)
    doc = json.loads((root / "ds-abc" / "v1.key").read_text())
    material = bytearray(base64.b64decode(doc["material"]))
    material[20] ^= 1
    doc["material"] = base64.b64encode(bytes(material)).decode()
    (root / "ds-abc" / "v1.key").write_text(json.dumps(doc))
    with pytest.raises(DecryptionError):
        sealed_keyring(root).wrap("ds-abc", 1, b"k" * 32, CTX)


# -- unsealed (development) keyring ------------------------------------------------------------


def test_unsealed_keyring_warns_and_says_so(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vault.providers.local"):
        provider = sealed_keyring(root, None)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings
    assert "UNSEALED" in warnings[0].getMessage()
    assert str(root) in warnings[0].getMessage()
    assert provider.sealed is False
    status = provider.check()
    assert status["sealed"] is False
    assert "warning" in status
    assert json.loads((root / "keyring.json").read_text()) == {"format": 1, "sealed": False}

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vault.providers.local"):
        sealed_keyring(root, None)  # every open warns, not only the first
    assert any("UNSEALED" in r.getMessage() for r in caplog.records)

    provider.create_version("ds-abc")
    doc = json.loads((root / "ds-abc" / "v1.key").read_text())
    assert doc["sealed"] is False
    assert len(base64.b64decode(doc["material"])) == 32  # raw: protected by mode 0600 only
    assert mode(root / "ds-abc" / "v1.key") == 0o600


def test_sealed_keyring_does_not_warn(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vault.providers.local"):
        provider = sealed_keyring(root)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert provider.check() == {"provider": "local", "sealed": True}


# -- versions ----------------------------------------------------------------------------------


def test_versions_create_and_destroy(root: Path) -> None:
    provider = sealed_keyring(root)
    assert provider.versions("ds-abc") == {}
    assert provider.create_version("ds-abc") == 1
    assert provider.create_version("ds-abc") == 2
    assert provider.versions("ds-abc") == {1: KeyState.ACTIVE, 2: KeyState.ACTIVE}
    wrapped = provider.wrap("ds-abc", 1, b"k" * 32, CTX)
    assert provider.unwrap("ds-abc", 1, wrapped, CTX) == b"k" * 32  # now cached

    provider.destroy_version("ds-abc", 1)
    with pytest.raises(KeyDestroyed):
        provider.unwrap("ds-abc", 1, wrapped, CTX)  # the cached copy went too
    with pytest.raises(KeyDestroyed):
        provider.wrap("ds-abc", 1, b"k" * 32, CTX)
    assert not (root / "ds-abc" / "v1.key").exists()
    assert (root / "ds-abc" / "v1.destroyed").exists()
    assert mode(root / "ds-abc" / "v1.destroyed") == 0o600
    assert provider.versions("ds-abc") == {1: KeyState.DESTROYED, 2: KeyState.ACTIVE}
    with pytest.raises(KeyDestroyed):
        sealed_keyring(root).unwrap("ds-abc", 1, wrapped, CTX)

    provider.destroy_version("ds-abc", 1)  # idempotent
    assert provider.create_version("ds-abc") == 3  # a destroyed number is never reused
    with pytest.raises(KeyError_):
        provider.destroy_version("ds-abc", 9)
    with pytest.raises(KeyError_):
        provider.unwrap("ds-abc", 9, wrapped, CTX)


def test_a_destroy_interrupted_after_its_tombstone_counts_as_destroyed(root: Path) -> None:
    # destroy_version writes the tombstone first, then overwrites and unlinks the key file. A
    # crash between the two leaves both files: the version is destroyed, whatever order the
    # directory lists them in.
    provider = sealed_keyring(root)
    for _ in range(20):
        provider.create_version("ds-abc")
    wrapped = provider.wrap("ds-abc", 7, b"k" * 32, CTX)
    for version in range(1, 21):
        (root / "ds-abc" / f"v{version}.destroyed").write_bytes(b"")
    reopened = sealed_keyring(root)
    assert reopened.versions("ds-abc") == dict.fromkeys(range(1, 21), KeyState.DESTROYED)
    with pytest.raises(KeyDestroyed):
        reopened.unwrap("ds-abc", 7, wrapped, CTX)


def test_a_wrap_opens_only_under_its_own_version_and_context(root: Path) -> None:
    provider = sealed_keyring(root)
    provider.create_version("ds-abc")
    provider.create_version("ds-abc")
    provider.create_version("ds-xyz")
    wrapped = provider.wrap("ds-abc", 2, b"k" * 32, CTX)
    assert provider.unwrap("ds-abc", 2, wrapped, CTX) == b"k" * 32
    with pytest.raises(DecryptionError):
        provider.unwrap("ds-abc", 1, wrapped, CTX)
    with pytest.raises(DecryptionError):
        provider.unwrap("ds-xyz", 1, wrapped, CTX)
    with pytest.raises(DecryptionError):
        provider.unwrap("ds-abc", 2, wrapped, CTX + b"!")


def test_signing_and_wrapping_keys_do_not_mix_cold(root: Path) -> None:
    provider = sealed_keyring(root)
    provider.create_version("ds-abc")
    with pytest.raises(KeyError_):
        provider.sign("ds-abc", b"m")
    provider.public_key("signer")
    with pytest.raises(KeyError_):
        sealed_keyring(root).wrap("signer", 1, b"k" * 32, CTX)


def test_signing_and_wrapping_keys_do_not_mix_warm(root: Path) -> None:
    # Same as above with the key already in the provider's cache: the kind must still be checked
    # (a KEK must never become a signing seed, nor a signing seed a KEK).
    provider = sealed_keyring(root)
    provider.create_version("ds-abc")
    provider.wrap("ds-abc", 1, b"k" * 32, CTX)  # caches the KEK
    with pytest.raises(KeyError_):
        provider.sign("ds-abc", b"m")
    provider.public_key("signer")  # caches the signing seed
    with pytest.raises(KeyError_):
        provider.wrap("signer", 1, b"k" * 32, CTX)


@pytest.mark.parametrize(
    "key_ref", ["../x", "..", "a/b", "/etc", "Upper", "DS-ABC", "", "-x", ".hidden", "x" * 129]
)
def test_invalid_key_refs_are_refused(root: Path, key_ref: str) -> None:
    provider = sealed_keyring(root)
    with pytest.raises(ValueError):
        provider.create_version(key_ref)
    with pytest.raises(ValueError):
        provider.versions(key_ref)
    with pytest.raises(ValueError):
        provider.wrap(key_ref, 1, b"k" * 32, CTX)
    with pytest.raises(ValueError):
        provider.sign(key_ref, b"m")
    with pytest.raises(ValueError):
        provider.destroy_version(key_ref, 1)
    assert not (root.parent / "x").exists()
    assert sorted(os.listdir(root)) == ["keyring.json"]


# -- registry ----------------------------------------------------------------------------------


def open_uri(uri: str) -> object:
    return open_provider(uri, passphrase=None, scrypt_n=N, cache_size=8, cache_ttl_seconds=60)


def test_registry_opens_local_absolute_paths(root: Path) -> None:
    provider = open_uri(f"local://{root}")
    assert isinstance(provider, LocalKeyringProvider)
    assert provider.root == root
    assert (root / "keyring.json").is_file()


@pytest.mark.parametrize("uri", ["local://relative/keys", "local://keys", "local:keys"])
def test_registry_refuses_relative_local_paths(uri: str) -> None:
    with pytest.raises(ConfigurationError, match="absolute"):
        open_uri(uri)


@pytest.mark.parametrize(
    "uri",
    [
        "pkcs11:token=vault;object=kek",
        "pkcs11://slot/0",
        "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/abc",
        "hcvault://vault.example:8200/transit/keys/tvault",
    ],
)
def test_registry_planned_schemes_are_not_in_this_build(uri: str) -> None:
    with pytest.raises(ConfigurationError, match="not in this build"):
        open_uri(uri)


@pytest.mark.parametrize("uri", ["ftp://x/keys", "file:///keys", "/abs/keys", "", "LOCAL2://x"])
def test_registry_refuses_unknown_schemes(uri: str) -> None:
    with pytest.raises(ConfigurationError, match="unknown"):
        open_uri(uri)
