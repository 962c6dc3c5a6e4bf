"""The local keyring: one file per key version under ``keys/``, sealed by a master key.

Layout (docs/keyring.md)::

    keys/keyring.json               format, whether sealed, scrypt parameters and salt, check value
    keys/<key_ref>/v<N>.key         JSON: kind, version, material (sealed under the master key)
    keys/<key_ref>/v<N>.destroyed   tombstone left when a version is destroyed

The master key is derived with scrypt from a passphrase given in the settings
(``TVAULT_MASTER_PASSPHRASE``). Without a passphrase the keyring is *unsealed*: key files hold
raw keys, protected only by file mode 0600. That is for development on one machine and says so,
loudly, every time it is opened.

The master key can be rotated in place (:meth:`LocalKeyringProvider.rotate_master`): every key
file is resealed under a key derived from a new passphrase, crash-safely, through the transient
files ``keyring.json.next``, ``keyring.json.prev`` and ``keys/<key_ref>/v<N>.key.next`` (see the
method's docstring and docs/keyring.md, "Rotating the master key").
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
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

__all__ = ["LocalKeyringProvider", "fsync_directory"]

log = logging.getLogger("vault.providers.local")

_REF = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
_VERSION_FILE = re.compile(r"^v(\d{1,9})\.(key|destroyed)$")
_KEY_FILE = re.compile(r"^v(\d{1,9})\.key$")
_NEXT_KEY_FILE = re.compile(r"^v(\d{1,9})\.key\.next$")
# Temporary files _write_private leaves behind when the process dies mid-write (keys/ only).
_STALE_TMP = re.compile(
    r"^\.(keyring\.json(\.next|\.prev)?|v\d{1,9}\.(key|key\.next|destroyed))\.\d+\.\d+\.tmp$"
)
_HEADER = "keyring.json"
_HEADER_NEXT = "keyring.json.next"
_HEADER_PREV = "keyring.json.prev"
_KINDS = ("aes256", "ed25519")
_FORMAT = 1
_CHECK_LABEL = b"tvault/keyring-check/v1"
_FILE_LABEL = b"tvault/keyfile/v1"
UNSEALED_WARNING = (
    "SECURITY WARNING: the local keyring at %s is UNSEALED (no TVAULT_MASTER_PASSPHRASE). "
    "Key files hold raw keys protected only by file permissions. Development use only."
)
_ROTATED_ELSEWHERE = (
    "the keyring's master key was rotated by another process; restart with the new "
    "TVAULT_MASTER_PASSPHRASE"
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
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """fsync a directory, so that a rename or an unlink in it is durable."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _rename(src: Path, dst: Path) -> None:
    """Atomically move ``src`` over ``dst`` and make the move durable."""
    os.replace(src, dst)
    fsync_directory(dst.parent)


def _overwrite(path: Path) -> None:
    """Overwrite the file's contents in place with random bytes of the same length (best effort:
    see docs/keyring.md on copy-on-write file systems and SSDs)."""
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.write(os.urandom(size))
        fh.flush()
        os.fsync(fh.fileno())


def _shred(path: Path) -> bool:
    """Overwrite then unlink ``path``; ``False`` if it was not there."""
    try:
        _overwrite(path)
    except FileNotFoundError:
        return False
    path.unlink()
    fsync_directory(path.parent)
    return True


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
        self._flock_depth = 0
        self._header_bytes = b""
        self._keys = KeyCache(cache_size, cache_ttl_seconds, time.monotonic)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.root.stat().st_mode & 0o077:
            # Key files must not be listable by other users, whoever made the folder.
            log.warning("tightening permissions of %s to 0700", self.root)
            self.root.chmod(0o700)
        self._master = self._open_keyring(passphrase, scrypt_n)
        if self._master is None:
            log.warning(UNSEALED_WARNING, self.root)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the thread lock and an exclusive ``flock`` on ``keys/`` itself (reentrant).

        Every change to the files of the keyring (creating, destroying, opening with recovery,
        rotating the master key) happens under it, so that a rotation in one process never
        interleaves with a write in another. Locking the directory adds no file to ``keys/``.
        """
        with self._lock:
            if self._flock_depth:
                self._flock_depth += 1
                try:
                    yield
                finally:
                    self._flock_depth -= 1
                return
            fd = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._flock_depth = 1
                try:
                    yield
                finally:
                    self._flock_depth = 0
            finally:
                os.close(fd)  # releases the flock

    # -- keyring header -----------------------------------------------------------------------

    @property
    def sealed(self) -> bool:
        """Whether key files are sealed under a passphrase-derived master key."""
        return self._master is not None

    def _read_header(self, path: Path) -> tuple[bytes, dict[str, Any]]:
        try:
            raw = path.read_bytes()
            header = json.loads(raw)
            if not isinstance(header, dict):
                raise TypeError("header is not an object")
            bool(header["sealed"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"unreadable keyring header {path}") from exc
        return raw, header

    def _unlock(self, header: dict[str, Any], passphrase: str | None) -> bytes | None:
        """The master key that opens ``header`` with ``passphrase``; ConfigurationError if none."""
        if not header["sealed"]:
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
        try:
            kdf = header["kdf"]
            if kdf.get("name") != "scrypt":
                raise ConfigurationError("unknown keyring KDF")
            salt, check = _unb64(kdf["salt"]), _unb64(header["check"])
            n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigurationError("unreadable keyring header") from exc
        master = self._derive(passphrase, salt, n, r, p)
        try:
            open_sealed(master, check, _CHECK_LABEL)
        except DecryptionError as exc:
            raise ConfigurationError("wrong master passphrase for the keyring") from exc
        return master

    def _open_keyring(self, passphrase: str | None, scrypt_n: int) -> bytes | None:
        header_path = self.root / _HEADER
        with self._locked():
            if not header_path.exists():
                if (self.root / _HEADER_NEXT).exists() or (self.root / _HEADER_PREV).exists():
                    raise ConfigurationError("keyring header missing beside a master-key rotation")
                return self._create_keyring(header_path, passphrase, scrypt_n)
            raw, header = self._read_header(header_path)
            try:
                master = self._unlock(header, passphrase)
            except ConfigurationError as refusal:
                return self._open_mid_rotation(passphrase, refusal)
            self._header_bytes = raw
            self._settle()
            return master

    def _open_mid_rotation(
        self, passphrase: str | None, refusal: ConfigurationError
    ) -> bytes | None:
        """The passphrase does not open ``keyring.json``: it may open the other side of a
        rotation that was interrupted (see :meth:`rotate_master`). Re-raise ``refusal`` if not."""
        next_path, prev_path = self.root / _HEADER_NEXT, self.root / _HEADER_PREV
        if next_path.exists():
            # Prepared, not committed: every v<N>.key.next is complete, so the new passphrase
            # may commit and finish the rotation.
            try:
                raw, header = self._read_header(next_path)
                master = self._unlock(header, passphrase)
            except ConfigurationError:
                raise refusal from None
            self._remove_stale_tmp()  # a crash mid-write may have left our very tmp name
            if not prev_path.exists():
                _write_private(prev_path, (self.root / _HEADER).read_bytes())
            _rename(next_path, self.root / _HEADER)
            log.warning("finishing an interrupted master-key rotation of %s", self.root)
            self._header_bytes = raw
            self._roll_forward()
            return master
        if prev_path.exists():
            try:
                self._unlock(self._read_header(prev_path)[1], passphrase)
            except ConfigurationError:
                raise refusal from None
            raise ConfigurationError(
                "a master-key rotation of this keyring was committed but not finished: open it "
                "with the new passphrase to finish it (the old one no longer opens it)"
            ) from None
        raise refusal

    def _create_keyring(self, path: Path, passphrase: str | None, scrypt_n: int) -> bytes | None:
        master, raw = self._new_header(passphrase, scrypt_n)
        _write_private(path, raw)
        self._header_bytes = raw
        return master

    def _new_header(self, passphrase: str | None, scrypt_n: int) -> tuple[bytes | None, bytes]:
        """A fresh master key (random salt) and the header that records it."""
        header: dict[str, Any] = {"format": _FORMAT, "sealed": bool(passphrase)}
        master = None
        if passphrase:
            salt = os.urandom(32)
            master = self._derive(passphrase, salt, scrypt_n)
            header["kdf"] = {"name": "scrypt", "salt": _b64(salt), "n": scrypt_n, "r": 8, "p": 1}
            header["check"] = _b64(seal(master, b"ok", _CHECK_LABEL))
        return master, json.dumps(header, indent=2).encode("utf-8")

    @staticmethod
    def _derive(passphrase: str, salt: bytes, n: int, r: int = 8, p: int = 1) -> bytes:
        if not (2**14 <= n <= 2**22 and 1 <= r <= 32 and 1 <= p <= 16):
            raise ConfigurationError("keyring KDF parameters out of bounds")
        return Scrypt(salt=salt, length=KEY_BYTES, n=n, r=r, p=p).derive(passphrase.encode())

    def _header_changed(self) -> bool:
        """Whether ``keyring.json`` is no longer the header this instance opened."""
        try:
            return (self.root / _HEADER).read_bytes() != self._header_bytes
        except OSError:
            return True

    # -- master-key rotation ------------------------------------------------------------------

    def rotate_master(
        self, new_passphrase: str | None, *, scrypt_n: int, allow_unseal: bool = False
    ) -> dict[str, Any]:
        """Reseal every key file under a master key derived from ``new_passphrase``.

        A fresh salt is drawn, so even the same passphrase gives a new master key; ``scrypt_n``
        sets the new cost. ``None`` (or ``""``) unseals the keyring and is refused unless
        ``allow_unseal=True``; an unsealed keyring is sealed by giving it a passphrase. Every
        ``v<N>.key`` is resealed (dataset KEKs, the pseudonym wrapping key, signing seeds);
        tombstones are left as they are, and a key file beside its tombstone (an interrupted
        destroy) is destroyed instead. The keys themselves do not change: whatever they wrapped
        or signed stays valid, and so does this instance's key cache. Other processes that have
        the keyring open must be restarted with the new passphrase (they fail closed with a
        ConfigurationError when they next read a key from disk or create one).

        Files (H = ``keyring.json``, Hn = ``keyring.json.next``, Hp = ``keyring.json.prev``,
        K = ``<key_ref>/v<N>.key``, Kn = ``<key_ref>/v<N>.key.next``), each written atomically
        (temporary file, fsync, rename, fsync of the directory), in this order:

        1. every key file is read and opened in memory; nothing is written if one fails;
        2. each Kn: the key resealed under the new master key            (state PREPARING)
        3. Hn: the new header, written after every Kn                     (state PREPARED)
        4. Hp: a copy of the old header
        5. rename Hn over H: the single atomic commit                      (state COMMITTED)
        6. each K overwritten in place with random bytes, then Kn renamed over it
        7. Hp overwritten and removed                                      (state IDLE)

        Opening the keyring (and the start of every rotation) reads the state from the files:

        * Hn present: not committed. The old passphrase opens H and rolls back (Hp, every Kn,
          then Hn overwritten and removed); the new passphrase opens Hn and commits (4-7).
        * no Hn, Hp present: committed. Only the new passphrase opens H, and finishes 6-7; the
          old one is refused with a message saying so.
        * no Hn, no Hp, some Kn: preparing. The old passphrase opens H and removes every Kn.

        Whatever the moment of a crash, the keyring opens with the old or the new passphrase,
        and that open leaves it whole (IDLE). Hp must exist before the commit: without it a
        committed rotation would look like a preparing one and be rolled back over the new H.

        Returns counts: ``{"resealed": all files, "aes256": KEKs, "ed25519": signing seeds,
        "tombstones": left untouched, "destroys_finished": ..., "sealed": new state}``.
        """
        new_passphrase = new_passphrase or None
        if new_passphrase is None:
            if not self.sealed:
                raise ConfigurationError("the keyring is already unsealed; nothing to rotate")
            if not allow_unseal:
                raise ConfigurationError(
                    "refusing to unseal the keyring (raw keys on disk): pass allow_unseal=True"
                )
        with self._locked():
            if self._header_changed():
                raise ConfigurationError(_ROTATED_ELSEWHERE)
            self._settle()
            old_raw = self._header_bytes
            new_master, new_raw = self._new_header(new_passphrase, scrypt_n)
            keys, counts = self._read_all_keys()
            committed = False
            try:
                for key_ref, version, kind, material in keys:
                    self._write_key_file(
                        self.root / key_ref / f"v{version}.key.next",
                        new_master,
                        key_ref,
                        version,
                        kind,
                        material=material,
                    )
                _write_private(self.root / _HEADER_NEXT, new_raw)
                _write_private(self.root / _HEADER_PREV, old_raw)
                _rename(self.root / _HEADER_NEXT, self.root / _HEADER)
                committed = True
                self._master, self._header_bytes = new_master, new_raw
                self._roll_forward()
            except Exception:
                # Best effort now; whatever is left is settled by the next open.
                with contextlib.suppress(Exception):
                    if not committed:
                        self._roll_back()
                raise
        log.warning(
            "master key of the keyring %s rotated: %d key files resealed, keyring %s",
            self.root,
            len(keys),
            "sealed" if new_master is not None else "UNSEALED",
        )
        return {**counts, "resealed": len(keys), "sealed": new_master is not None}

    def _read_all_keys(self) -> tuple[list[tuple[str, int, str, bytes]], dict[str, int]]:
        """Every live key, opened with the current master key; finishes interrupted destroys."""
        keys: list[tuple[str, int, str, bytes]] = []
        counts = {"aes256": 0, "ed25519": 0, "tombstones": 0, "destroys_finished": 0}
        for directory in self._key_dirs():
            for entry in sorted(directory.iterdir()):
                if _VERSION_FILE.fullmatch(entry.name) and entry.name.endswith(".destroyed"):
                    counts["tombstones"] += 1
                match = _KEY_FILE.fullmatch(entry.name)
                if not match:
                    continue
                version = int(match[1])
                if (directory / f"v{version}.destroyed").exists():
                    _shred(entry)  # the tombstone wins: finish the destroy, do not reseal
                    counts["destroys_finished"] += 1
                    continue
                kind, material = self._read_key_file(directory.name, version)
                keys.append((directory.name, version, kind, material))
                counts[kind] += 1
        return keys, counts

    def _read_key_file(self, key_ref: str, version: int) -> tuple[str, bytes]:
        where = f"{key_ref}/v{version}.key"
        try:
            doc = json.loads((self.root / where).read_text("utf-8"))
            kind = doc["kind"]
            if (
                kind not in _KINDS
                or doc["key_ref"] != key_ref
                or doc["version"] != version
                or doc["sealed"] != self.sealed
            ):
                raise KeyError_(f"key file {where} does not match the keyring")
            material = _unb64(doc["material"])
            if self._master is not None:
                material = open_sealed(
                    self._master, material, self._file_aad(key_ref, version, kind)
                )
        except (OSError, ValueError, KeyError, TypeError, DecryptionError) as exc:
            raise KeyError_(
                f"key file {where} cannot be read with the current master key; "
                "the master key was not rotated"
            ) from exc
        if len(material) != KEY_BYTES:
            raise KeyError_(
                f"key file {where} holds no 32-byte key; the master key was not rotated"
            )
        return kind, material

    def _key_dirs(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir() if p.is_dir() and _REF.fullmatch(p.name))

    def _pending_key_files(self) -> list[Path]:
        """Every ``v<N>.key.next`` left by a rotation."""
        return [
            entry
            for directory in self._key_dirs()
            for entry in sorted(directory.iterdir())
            if _NEXT_KEY_FILE.fullmatch(entry.name)
        ]

    def _settle(self) -> None:
        """Bring a half-done rotation to IDLE; the caller holds the master key that opens H."""
        if (self.root / _HEADER_NEXT).exists():
            log.warning("rolling back an interrupted master-key rotation of %s", self.root)
            self._roll_back()
        elif (self.root / _HEADER_PREV).exists():
            log.warning("finishing an interrupted master-key rotation of %s", self.root)
            self._roll_forward()
        elif self._pending_key_files():
            log.warning("rolling back an interrupted master-key rotation of %s", self.root)
            self._roll_back()
        else:
            self._remove_stale_tmp()

    def _roll_back(self) -> None:
        # Hp first and Hn last: until Hn is gone the state still reads "not committed".
        _shred(self.root / _HEADER_PREV)
        for pending in self._pending_key_files():
            _shred(pending)
        _shred(self.root / _HEADER_NEXT)
        self._remove_stale_tmp()

    def _roll_forward(self) -> None:
        for pending in self._pending_key_files():
            target = pending.with_name(pending.name.removesuffix(".next"))
            if target.with_suffix(".destroyed").exists():
                _shred(pending)  # destroyed meanwhile: never bring the key back
                continue
            if target.exists():
                _overwrite(target)  # the old sealed material must not outlive the rename
            _rename(pending, target)
        _shred(self.root / _HEADER_PREV)  # Hp goes last: until then the state reads "committed"
        self._remove_stale_tmp()

    def _remove_stale_tmp(self) -> None:
        """Temporary files of writes a crash interrupted (nobody writes while we hold the lock)."""
        for directory in [self.root, *self._key_dirs()]:
            for entry in directory.iterdir():
                if _STALE_TMP.fullmatch(entry.name) and entry.is_file():
                    _shred(entry)

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
        if self._header_changed():
            # Sealing under a master key the header no longer records would make a key file
            # that opens with neither passphrase.
            raise ConfigurationError(_ROTATED_ELSEWHERE)
        self._write_key_file(path, self._master, key_ref, version, kind, material=material)

    def _write_key_file(
        self,
        path: Path,
        master: bytes | None,
        key_ref: str,
        version: int,
        kind: str,
        *,
        material: bytes,
    ) -> None:
        if master is not None:
            material = seal(master, material, self._file_aad(key_ref, version, kind))
        doc = {
            "format": _FORMAT,
            "key_ref": key_ref,
            "version": version,
            "kind": kind,
            "sealed": master is not None,
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
        # Under the thread lock: a rotation in this process swaps the master key and the files.
        with self._lock:
            try:
                material = self._read_material(
                    directory / f"v{version}.key", key_ref, version, kind
                )
            except (Unavailable, KeyError_, DecryptionError) as exc:
                if self._header_changed():
                    raise ConfigurationError(_ROTATED_ELSEWHERE) from exc
                raise
        self._keys.put(cache_key, material)
        return material

    def _read_material(self, path: Path, key_ref: str, version: int, kind: str) -> bytes:
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
        with self._locked():
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
        directory = self._dir(key_ref)
        with self._locked():
            path = directory / f"v{version}.key"
            tombstone = directory / f"v{version}.destroyed"
            self._keys.discard_where(lambda k: k[:2] == (key_ref, version))  # type: ignore[index]
            if not path.exists():
                if tombstone.exists():
                    return
                raise KeyError_("key version not found in the provider")
            if not tombstone.exists():
                _write_private(tombstone, b"")
            _shred(path)

    def _signing_key(self, key_ref: str) -> Ed25519PrivateKey:
        if 1 not in self.versions(key_ref):
            with self._locked():
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
