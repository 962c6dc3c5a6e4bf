"""The local keyring: one file per key version under ``keys/``, sealed by a master key.

Layout (docs/keyring.md)::

    keys/keyring.json               format, whether sealed, scrypt parameters and salt, check value
    keys/<key_ref>/v<N>.key         JSON: kind, version, material (sealed under the master key)
    keys/<key_ref>/v<N>.destroyed   tombstone left when a version is destroyed

The master key is derived with scrypt from a passphrase given in the settings
(``TVAULT_MASTER_PASSPHRASE``). Without a passphrase the keyring is *unsealed*: key files hold
raw keys, protected only by file mode 0600. That is for development on one machine and says so,
loudly, every time it is opened.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from vault.crypto.aead import KEY_BYTES, new_key, open_sealed, seal
from vault.crypto.context import encode_context
from vault.crypto.kekwrap import unwrap_with_kek, wrap_with_kek
from vault.crypto.keycache import KeyCache
from vault.errors import (
    ConfigurationError,
    DecryptionError,
    KeyDestroyed,
    KeyError_,
    Unavailable,
)
from vault.providers.base import KeyProvider, KeyState

__all__ = ["LocalKeyringProvider"]

log = logging.getLogger("vault.providers.local")

_REF = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
_VERSION_FILE = re.compile(r"^v(\d{1,9})\.(key|destroyed)$")
_FORMAT = 1
_CHECK_LABEL = b"tvault/keyring-check/v1"
_FILE_LABEL = b"tvault/keyfile/v1"
UNSEALED_WARNING = (
    "SECURITY WARNING: the local keyring at %s is UNSEALED (no TVAULT_MASTER_PASSPHRASE). "
    "Key files hold raw keys protected only by file permissions. Development use only."
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600 (never visible half-written)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class LocalKeyringProvider(KeyProvider):
    """Key files on the local disk; see the module docstring for the layout."""

    scheme = "local"

    def __init__(
        self,
        root: Path,
        *,
        passphrase: str | None,
        scrypt_n: int = 2**15,
        cache_size: int = 1024,
        cache_ttl_seconds: float = 3600.0,
    ) -> None:
        self.root = root
        self._lock = threading.RLock()
        self._keys = KeyCache(cache_size, cache_ttl_seconds, time.monotonic)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.root.stat().st_mode & 0o077:
            # Key files must not be listable by other users, whoever made the folder.
            log.warning("tightening permissions of %s to 0700", self.root)
            self.root.chmod(0o700)
        self._master = self._open_keyring(passphrase, scrypt_n)
        if self._master is None:
            log.warning(UNSEALED_WARNING, self.root)

    # -- keyring header -----------------------------------------------------------------------

    @property
    def sealed(self) -> bool:
        """Whether key files are sealed under a passphrase-derived master key."""
        return self._master is not None

    def _open_keyring(self, passphrase: str | None, scrypt_n: int) -> bytes | None:
        header_path = self.root / "keyring.json"
        with self._lock:
            if not header_path.exists():
                return self._create_keyring(header_path, passphrase, scrypt_n)
            try:
                header = json.loads(header_path.read_text("utf-8"))
                sealed = bool(header["sealed"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigurationError(f"unreadable keyring header {header_path}") from exc
            if not sealed:
                if passphrase:
                    raise ConfigurationError(
                        "the keyring was created unsealed; unset TVAULT_MASTER_PASSPHRASE "
                        "or start a new keyring"
                    )
                return None
            if not passphrase:
                raise ConfigurationError(
                    "the keyring is sealed: set TVAULT_MASTER_PASSPHRASE to open it"
                )
            kdf = header["kdf"]
            if kdf.get("name") != "scrypt":
                raise ConfigurationError("unknown keyring KDF")
            master = self._derive(
                passphrase, _unb64(kdf["salt"]), int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
            )
            try:
                open_sealed(master, _unb64(header["check"]), _CHECK_LABEL)
            except DecryptionError as exc:
                raise ConfigurationError("wrong master passphrase for the keyring") from exc
            return master

    def _create_keyring(self, path: Path, passphrase: str | None, scrypt_n: int) -> bytes | None:
        header: dict[str, Any] = {"format": _FORMAT, "sealed": bool(passphrase)}
        master = None
        if passphrase:
            salt = os.urandom(32)
            master = self._derive(passphrase, salt, scrypt_n)
            header["kdf"] = {"name": "scrypt", "salt": _b64(salt), "n": scrypt_n, "r": 8, "p": 1}
            header["check"] = _b64(seal(master, b"ok", _CHECK_LABEL))
        _write_private(path, json.dumps(header, indent=2).encode("utf-8"))
        return master

    @staticmethod
    def _derive(passphrase: str, salt: bytes, n: int, r: int = 8, p: int = 1) -> bytes:
        if not (2**14 <= n <= 2**22 and 1 <= r <= 32 and 1 <= p <= 16):
            raise ConfigurationError("keyring KDF parameters out of bounds")
        return Scrypt(salt=salt, length=KEY_BYTES, n=n, r=r, p=p).derive(passphrase.encode())

    # -- key files ----------------------------------------------------------------------------

    def _dir(self, key_ref: str) -> Path:
        if not _REF.fullmatch(key_ref):
            raise ValueError(f"invalid key reference {key_ref!r}")
        return self.root / key_ref

    def _file_aad(self, key_ref: str, version: int, kind: str) -> bytes:
        return encode_context(_FILE_LABEL, key_ref, version, kind)

    def _store(self, key_ref: str, version: int, kind: str, material: bytes) -> None:
        directory = self._dir(key_ref)
        directory.mkdir(mode=0o700, exist_ok=True)
        path = directory / f"v{version}.key"
        if path.exists() or (directory / f"v{version}.destroyed").exists():
            raise KeyError_(f"key version already exists: {key_ref} v{version}")
        if self._master is not None:
            material = seal(self._master, material, self._file_aad(key_ref, version, kind))
        doc = {
            "format": _FORMAT,
            "key_ref": key_ref,
            "version": version,
            "kind": kind,
            "sealed": self._master is not None,
            "material": _b64(material),
        }
        _write_private(path, json.dumps(doc).encode("utf-8"))

    def _load(self, key_ref: str, version: int, kind: str) -> bytes:
        # The kind is part of the cache key: a KEK must never serve as a signing seed, nor the
        # other way round, whether the key comes from the cache or from its file.
        cache_key = (key_ref, version, kind)
        directory = self._dir(key_ref)
        if (directory / f"v{version}.destroyed").exists():
            self._keys.discard(cache_key)
            raise KeyDestroyed("key destroyed")
        cached = self._keys.get(cache_key)
        if cached is not None:
            return cached
        path = directory / f"v{version}.key"
        try:
            doc = json.loads(path.read_text("utf-8"))
        except FileNotFoundError as exc:
            raise KeyError_("key version not found in the provider") from exc
        except (OSError, ValueError) as exc:
            raise Unavailable("key file unreadable") from exc
        if doc.get("kind") != kind or doc.get("sealed") != (self._master is not None):
            raise KeyError_("key file does not match the keyring")
        material = _unb64(doc["material"])
        if self._master is not None:
            material = open_sealed(self._master, material, self._file_aad(key_ref, version, kind))
        self._keys.put(cache_key, material)
        return material

    # -- KeyProvider ---------------------------------------------------------------------------

    def versions(self, key_ref: str) -> dict[int, KeyState]:
        """Every version on disk with its state."""
        directory = self._dir(key_ref)
        found: dict[int, KeyState] = {}
        if directory.is_dir():
            for entry in directory.iterdir():
                match = _VERSION_FILE.fullmatch(entry.name)
                if match:
                    number = int(match[1])
                    # A tombstone wins over a key file left by an interrupted destroy.
                    if match[2] == "destroyed" or number not in found:
                        found[number] = KeyState.ACTIVE if match[2] == "key" else KeyState.DESTROYED
        return dict(sorted(found.items()))

    def create_version(self, key_ref: str) -> int:
        """Create the next version of a symmetric KEK."""
        with self._lock:
            version = max(self.versions(key_ref), default=0) + 1
            self._store(key_ref, version, "aes256", new_key())
            return version

    def wrap(self, key_ref: str, version: int, plaintext: bytes, context: bytes) -> bytes:
        """Wrap with a per-wrap HKDF-derived key (vault.crypto.kekwrap)."""
        return wrap_with_kek(self._load(key_ref, version, "aes256"), plaintext, context)

    def unwrap(self, key_ref: str, version: int, wrapped: bytes, context: bytes) -> bytes:
        """Unwrap; a destroyed version raises KeyDestroyed."""
        return unwrap_with_kek(self._load(key_ref, version, "aes256"), wrapped, context)

    def destroy_version(self, key_ref: str, version: int) -> None:
        """Overwrite and unlink the key file, leave a tombstone, forget the cached key."""
        with self._lock:
            directory = self._dir(key_ref)
            path = directory / f"v{version}.key"
            tombstone = directory / f"v{version}.destroyed"
            self._keys.discard_where(lambda k: k[:2] == (key_ref, version))  # type: ignore[index]
            if not path.exists():
                if tombstone.exists():
                    return
                raise KeyError_("key version not found in the provider")
            if not tombstone.exists():
                _write_private(tombstone, b"")
            size = path.stat().st_size
            with path.open("r+b") as fh:
                fh.write(os.urandom(size))
                fh.flush()
                os.fsync(fh.fileno())
            path.unlink()

    def _signing_key(self, key_ref: str) -> Ed25519PrivateKey:
        with self._lock:
            if 1 not in self.versions(key_ref):
                raw = Ed25519PrivateKey.generate().private_bytes(
                    serialization.Encoding.Raw,
                    serialization.PrivateFormat.Raw,
                    serialization.NoEncryption(),
                )
                self._store(key_ref, 1, "ed25519", raw)
            return Ed25519PrivateKey.from_private_bytes(self._load(key_ref, 1, "ed25519"))

    def sign(self, key_ref: str, message: bytes) -> bytes:
        """Sign with the Ed25519 key ``key_ref`` (created on first use)."""
        return self._signing_key(key_ref).sign(message)

    def public_key(self, key_ref: str) -> bytes:
        """Raw public half of the Ed25519 key ``key_ref``."""
        return (
            self._signing_key(key_ref)
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )

    def check(self) -> dict[str, Any]:
        """Readable and writable keyring directory; reports whether it is sealed."""
        if not os.access(self.root, os.R_OK | os.W_OK | os.X_OK):
            raise Unavailable("key provider unavailable")
        status: dict[str, Any] = {"provider": "local", "sealed": self.sealed}
        if not self.sealed:
            status["warning"] = "keyring unsealed: development only"
        return status
