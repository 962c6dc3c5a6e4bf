"""Rotating the local keyring's master key (docs/keyring.md, "Rotating the master key").

Every key file is resealed under a master key derived from a new passphrase; the keys do not
change. A crash at any moment must leave a keyring that opens with the old or the new
passphrase: the crash tests stop the rotation at every rename and unlink in turn (leaving the
files exactly as a dead process would) and reopen the result both ways.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from vault.errors import ConfigurationError, KeyDestroyed, KeyError_
from vault.providers import KeyState
from vault.providers.local import LocalKeyringProvider

OLD = "old passphrase, long enough"
NEW = "new passphrase, longer still"
N = 2**14
CTX = b"wrap-context"
MESSAGE = b"checkpoint 42"


def open_keyring(root: Path, passphrase: str | None) -> LocalKeyringProvider:
    return LocalKeyringProvider(root, passphrase=passphrase, scrypt_n=N)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root, by relative path, with its contents."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@dataclass
class Fixture:
    """What a keyring did before a rotation, to check it still does it afterwards."""

    wraps: dict[tuple[str, int], tuple[bytes, bytes]] = field(default_factory=dict)
    destroyed: dict[tuple[str, int], bytes] = field(default_factory=dict)
    public: bytes = b""
    signature: bytes = b""


def populate(root: Path, passphrase: str | None) -> Fixture:
    """Three datasets (one with a destroyed version), the pseudonym wrapping key, a signer."""
    provider = open_keyring(root, passphrase)
    fixture = Fixture()
    for key_ref, count in (
        ("ds-alpha", 3),
        ("ds-beta", 2),
        ("ds-gamma", 2),
        ("vault-pseudonym", 1),
    ):
        for _ in range(count):
            version = provider.create_version(key_ref)
            plaintext = os.urandom(32)
            fixture.wraps[key_ref, version] = (
                plaintext,
                provider.wrap(key_ref, version, plaintext, CTX),
            )
    fixture.destroyed["ds-gamma", 1] = fixture.wraps.pop(("ds-gamma", 1))[1]
    provider.destroy_version("ds-gamma", 1)
    fixture.public = provider.public_key("audit-checkpoint")
    fixture.signature = provider.sign("audit-checkpoint", MESSAGE)
    return fixture


LIVE_KEKS = 3 + 2 + 1 + 1  # ds-gamma v1 is destroyed
KEY_FILES = LIVE_KEKS + 1  # and the signing seed


def assert_keys_work(provider: LocalKeyringProvider, fixture: Fixture) -> None:
    for (key_ref, version), (plaintext, wrapped) in fixture.wraps.items():
        assert provider.unwrap(key_ref, version, wrapped, CTX) == plaintext
        again = provider.wrap(key_ref, version, plaintext, CTX)
        assert provider.unwrap(key_ref, version, again, CTX) == plaintext
    for (key_ref, version), wrapped in fixture.destroyed.items():
        with pytest.raises(KeyDestroyed):
            provider.unwrap(key_ref, version, wrapped, CTX)
        assert provider.versions(key_ref)[version] is KeyState.DESTROYED
    assert provider.public_key("audit-checkpoint") == fixture.public
    public = Ed25519PublicKey.from_public_bytes(fixture.public)
    public.verify(fixture.signature, MESSAGE)
    public.verify(provider.sign("audit-checkpoint", b"after"), b"after")


def assert_private_and_idle(root: Path, expected_files: set[str]) -> None:
    """Modes 0700/0600 and no file a rotation leaves while under way (.next, .prev, .tmp)."""
    assert set(tree(root)) == expected_files
    assert mode(root) == 0o700
    for path in root.rglob("*"):
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path


def sealed_blobs(root: Path) -> list[bytes]:
    """The sealed material of every key file and the header's check value, raw and base64."""
    blobs: list[bytes] = []
    for path in root.rglob("v*.key"):
        text = json.loads(path.read_text())["material"]
        blobs += [text.encode(), base64.b64decode(text)]
    header = json.loads((root / "keyring.json").read_text())
    if "check" in header:
        blobs += [header["check"].encode(), base64.b64decode(header["check"])]
    return blobs


def doc_read_key(root: Path, passphrase: str, key_ref: str, version: int) -> bytes:
    """Read one key as docs/keyring.md describes the sealed format (independent of the code)."""
    header = json.loads((root / "keyring.json").read_text())
    kdf = header["kdf"]
    master = Scrypt(
        salt=base64.b64decode(kdf["salt"]), length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]
    ).derive(passphrase.encode())
    check = base64.b64decode(header["check"])
    assert AESGCM(master).decrypt(check[:12], check[12:], b"tvault/keyring-check/v1") == b"ok"
    doc = json.loads((root / key_ref / f"v{version}.key").read_text())
    fields = [b"tvault/keyfile/v1", key_ref.encode(), version.to_bytes(8, "big"), doc["kind"]]
    aad = b"".join(
        len(f).to_bytes(2, "big") + f
        for f in (x if isinstance(x, bytes) else x.encode() for x in fields)
    )
    sealed = base64.b64decode(doc["material"])
    return AESGCM(master).decrypt(sealed[:12], sealed[12:], aad)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "keys"


# -- rotation ----------------------------------------------------------------------------------


def test_rotation_reseals_every_key_file_and_keeps_every_key(root: Path) -> None:
    fixture = populate(root, OLD)
    provider = open_keyring(root, OLD)
    kek_before = doc_read_key(root, OLD, "ds-beta", 2)
    before = tree(root)
    old_blobs = sealed_blobs(root)
    old_kdf = json.loads(before["keyring.json"])["kdf"]

    result = provider.rotate_master(NEW, scrypt_n=2 * N)

    assert result == {
        "resealed": KEY_FILES,
        "aes256": LIVE_KEKS,
        "ed25519": 1,
        "tombstones": 1,
        "destroys_finished": 0,
        "sealed": True,
    }
    assert_keys_work(provider, fixture)  # the rotating instance goes on working
    assert_private_and_idle(root, set(before))
    after = tree(root)
    assert after["ds-gamma/v1.destroyed"] == before["ds-gamma/v1.destroyed"] == b""
    for name, content in after.items():
        if name.endswith(".key") or name == "keyring.json":
            assert content != before[name], name
        for blob in old_blobs:
            assert blob not in content, name
    kdf = json.loads(after["keyring.json"])["kdf"]
    assert kdf["n"] == 2 * N
    assert kdf["salt"] != old_kdf["salt"]
    # The documented format still holds, and the key itself did not change.
    assert doc_read_key(root, NEW, "ds-beta", 2) == kek_before

    with pytest.raises(ConfigurationError, match="wrong master passphrase"):
        open_keyring(root, OLD)
    assert_keys_work(open_keyring(root, NEW), fixture)


def test_the_same_passphrase_still_gets_a_new_master_key(root: Path) -> None:
    fixture = populate(root, OLD)
    before = tree(root)
    provider = open_keyring(root, OLD)
    provider.rotate_master(OLD, scrypt_n=N)
    assert tree(root)["keyring.json"] != before["keyring.json"]
    assert provider.create_version("ds-alpha") == 4  # new files are sealed under the new key
    reopened = open_keyring(root, OLD)
    assert_keys_work(reopened, fixture)
    reopened.wrap("ds-alpha", 4, b"k" * 32, CTX)


def test_an_unsealed_keyring_can_be_sealed(root: Path) -> None:
    fixture = populate(root, None)
    provider = open_keyring(root, None)
    result = provider.rotate_master(NEW, scrypt_n=N)
    assert (result["resealed"], result["sealed"]) == (KEY_FILES, True)
    assert provider.sealed
    assert provider.check() == {"provider": "local", "sealed": True}
    for path in root.rglob("v*.key"):
        doc = json.loads(path.read_text())
        assert doc["sealed"] is True
        assert len(base64.b64decode(doc["material"])) == 12 + 32 + 16
    with pytest.raises(ConfigurationError, match="sealed"):
        open_keyring(root, None)
    assert_keys_work(open_keyring(root, NEW), fixture)


def test_unsealing_needs_allow_unseal(root: Path) -> None:
    fixture = populate(root, OLD)
    provider = open_keyring(root, OLD)
    before = tree(root)
    for refused in (None, ""):
        with pytest.raises(ConfigurationError, match="allow_unseal"):
            provider.rotate_master(refused, scrypt_n=N)
    assert tree(root) == before

    result = provider.rotate_master(None, scrypt_n=N, allow_unseal=True)
    assert (result["resealed"], result["sealed"]) == (KEY_FILES, False)
    assert not provider.sealed
    assert json.loads((root / "keyring.json").read_text()) == {"format": 1, "sealed": False}
    with pytest.raises(ConfigurationError, match="unsealed"):
        open_keyring(root, OLD)
    assert_keys_work(open_keyring(root, None), fixture)
    with pytest.raises(ConfigurationError, match="already unsealed"):
        provider.rotate_master(None, scrypt_n=N, allow_unseal=True)


def test_bad_parameters_and_unreadable_key_files_change_nothing(root: Path) -> None:
    fixture = populate(root, OLD)
    provider = open_keyring(root, OLD)
    before = tree(root)
    with pytest.raises(ConfigurationError, match="out of bounds"):
        provider.rotate_master(NEW, scrypt_n=2**8)
    assert tree(root) == before

    path = root / "ds-beta" / "v2.key"
    doc = json.loads(path.read_text())
    material = bytearray(base64.b64decode(doc["material"]))
    material[20] ^= 1
    doc["material"] = base64.b64encode(bytes(material)).decode()
    path.write_text(json.dumps(doc))
    before = tree(root)
    with pytest.raises(KeyError_, match=r"ds-beta/v2\.key"):
        provider.rotate_master(NEW, scrypt_n=N)
    assert tree(root) == before
    fixture.wraps.pop(("ds-beta", 2))
    assert_keys_work(open_keyring(root, OLD), fixture)


def test_a_rotation_finishes_an_interrupted_destroy(root: Path) -> None:
    provider = open_keyring(root, OLD)
    provider.create_version("ds-x")
    provider.create_version("ds-x")
    (root / "ds-x" / "v1.destroyed").write_bytes(b"")  # tombstone written, key file not yet gone
    (root / "ds-x" / "v1.destroyed").chmod(0o600)
    result = provider.rotate_master(NEW, scrypt_n=N)
    assert (result["resealed"], result["destroys_finished"], result["tombstones"]) == (1, 1, 1)
    assert set(tree(root)) == {"keyring.json", "ds-x/v1.destroyed", "ds-x/v2.key"}


def test_other_processes_fail_closed_after_a_rotation(root: Path) -> None:
    fixture = populate(root, OLD)
    rotator = open_keyring(root, OLD)
    other = open_keyring(root, OLD)
    plaintext, wrapped = fixture.wraps["ds-alpha", 1]
    assert other.unwrap("ds-alpha", 1, wrapped, CTX) == plaintext  # now cached in `other`
    rotator.rotate_master(NEW, scrypt_n=N)

    assert other.unwrap("ds-alpha", 1, wrapped, CTX) == plaintext  # a cached key is unchanged
    plaintext, wrapped = fixture.wraps["ds-alpha", 2]
    with pytest.raises(ConfigurationError, match="rotated by another process"):
        other.unwrap("ds-alpha", 2, wrapped, CTX)
    with pytest.raises(ConfigurationError, match="rotated by another process"):
        other.create_version("ds-alpha")  # would seal under a master key nobody can derive
    with pytest.raises(ConfigurationError, match="rotated by another process"):
        other.rotate_master(OLD, scrypt_n=N)
    assert_keys_work(open_keyring(root, NEW), fixture)


# -- crashes -----------------------------------------------------------------------------------


class Crash(BaseException):
    """The process died here: nothing after it runs, not even clean-up handlers."""


@contextmanager
def crash_after(steps: int | None) -> Iterator[list[str]]:
    """Count renames and unlinks; the one after ``steps`` (and all later ones) crash."""
    done: list[str] = []
    real_replace, real_unlink = os.replace, os.unlink

    def guarded(real: Callable[..., Any], name: str) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            if steps is not None and len(done) >= steps:
                raise Crash(name)
            done.append(f"{name} {Path(args[-1]).name}")
            return real(*args, **kwargs)

        return step

    os.replace = guarded(real_replace, "replace")
    os.unlink = guarded(real_unlink, "unlink")
    try:
        yield done
    finally:
        os.replace, os.unlink = real_replace, real_unlink


SCENARIOS = {"sealed": (OLD, NEW), "seal": (None, NEW), "unseal": (OLD, None)}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_crash_at_any_step_leaves_a_keyring_that_opens(tmp_path: Path, scenario: str) -> None:
    old, new = SCENARIOS[scenario]
    template = tmp_path / "template"
    fixture = populate(template, old)
    expected_files = set(tree(template))

    def rotate(root: Path, steps: int | None) -> list[str]:
        provider = open_keyring(root, old)
        with crash_after(steps) as done:
            provider.rotate_master(new, scrypt_n=N, allow_unseal=True)
        return done

    complete = rotate(shutil.copytree(template, tmp_path / "complete"), None)
    commit = complete.index("replace keyring.json")
    assert len(complete) > 2 * KEY_FILES  # every file written, then renamed into place

    for steps in range(len(complete)):
        crashed = tmp_path / f"crash-{steps}"
        shutil.copytree(template, crashed)
        with pytest.raises(Crash):
            rotate(crashed, steps)
        if steps <= commit:
            assert (crashed / "keyring.json").read_bytes() == (
                template / "keyring.json"
            ).read_bytes()

        opened: dict[str, bool] = {}
        for label, passphrase, other in (("old", old, new), ("new", new, old)):
            attempt = shutil.copytree(crashed, tmp_path / f"crash-{steps}-{label}")
            try:
                provider = open_keyring(attempt, passphrase)
            except ConfigurationError:
                opened[label] = False
                assert tree(attempt) == tree(crashed)  # a refused open touches nothing
                continue
            opened[label] = True
            # That open finished or rolled back the rotation: the keyring is whole again.
            assert_private_and_idle(attempt, expected_files)
            assert_keys_work(provider, fixture)
            assert_keys_work(open_keyring(attempt, passphrase), fixture)
            with pytest.raises(ConfigurationError):
                open_keyring(attempt, other)
            if label == "new":
                old_blobs = sealed_blobs(template)
                for name, content in tree(attempt).items():
                    for blob in old_blobs:
                        assert blob not in content, (steps, name)

        assert opened["old"] or opened["new"], steps
        # Before the new header is complete only the old passphrase opens; after the commit
        # only the new one does.
        wrote_next_header = complete.index("replace keyring.json.next")
        assert opened["old"] == (steps <= commit), steps
        assert opened["new"] == (steps > wrote_next_header), steps


def test_the_old_passphrase_is_told_when_a_committed_rotation_is_unfinished(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    populate(first, OLD)
    with crash_after(None) as done:
        open_keyring(first, OLD).rotate_master(NEW, scrypt_n=N)
    steps = done.index("replace keyring.json") + 2  # committed, one key file renamed

    populate(second, OLD)
    with crash_after(steps), pytest.raises(Crash):
        open_keyring(second, OLD).rotate_master(NEW, scrypt_n=N)
    assert (second / "keyring.json.prev").exists()
    with pytest.raises(ConfigurationError, match="committed but not finished"):
        open_keyring(second, OLD)
    open_keyring(second, NEW)
    assert not (second / "keyring.json.prev").exists()
    with pytest.raises(ConfigurationError, match="wrong master passphrase"):
        open_keyring(second, OLD)
