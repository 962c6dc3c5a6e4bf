"""The key hierarchy of DESIGN.md §3: dataset KEK -> subject-epoch key -> record DEK.

* Dataset KEKs live in the key provider, versioned; the database only records which version is
  current and which were destroyed.
* Subject-epoch keys (SEKs), one per (dataset, subject pseudonym, UTC day), are random and stored
  wrapped by the dataset KEK version current when they were made, bound to where they belong.
* Each SEK seals record DEKs with AES-GCM and random nonces; the row counts those uses and the
  keyring refuses past ``max_wraps`` (far below the 2^32 of SP 800-38D §8.3).
* Unwrapped SEKs are cached (bounded, TTL'd), so the provider is called per key, not per record.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, Row, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from vault.crypto.aead import new_key
from vault.crypto.context import encode_context
from vault.crypto.keycache import KeyCache
from vault.crypto.pseudonym import keyed_hash
from vault.errors import KeyDestroyed, KeyError_, KeyUsageExceeded
from vault.providers.base import KeyProvider
from vault.storage.tables import dataset_keks, datasets, subject_keys, vault_meta

__all__ = ["Keyring", "SubjectKey"]

_SEK_LABEL = b"tvault/sek/v1"
_PSEUDONYM_WRAP_LABEL = b"tvault/pseudonym-key/v1"
_SUBJECT_LABEL = b"tvault/subject/v1"
_PERSON_LABEL = b"tvault/audit-person/v1"
_LINKAGE_LABEL = b"tvault/export-subject/v1"
_REDACTION_LABEL = b"tvault/redaction-key/v1"
PSEUDONYM_KEY_REF = "vault-pseudonym"
#: Bound on the redaction keys a keyring keeps derived (one per dataset).
_MAX_REDACTION_KEYS = 1024


# Built once: a write batch runs these two for its subject keys.
_SEKS_OF_BATCH = select(subject_keys).where(
    subject_keys.c.dataset_id == bindparam("ds"),
    subject_keys.c.subject.in_(bindparam("subjects", expanding=True)),
    subject_keys.c.epoch.in_(bindparam("epochs", expanding=True)),
)
#: A batch of one subject-day (every batch of one event): book its uses and read the key back in
#: one statement. The count is checked on the value written (a key past its limit raises, and
#: the caller's transaction rolls the booking back).
_BOOK_ONE = (
    update(subject_keys)
    .where(
        subject_keys.c.dataset_id == bindparam("b_ds"),
        subject_keys.c.subject == bindparam("b_subject"),
        subject_keys.c.epoch == bindparam("b_epoch"),
    )
    .values(wraps=subject_keys.c.wraps + bindparam("b_uses"))
    .returning(
        subject_keys.c.id,
        subject_keys.c.dataset_id,
        subject_keys.c.subject,
        subject_keys.c.epoch,
        subject_keys.c.kek_version,
        subject_keys.c.wrapped,
        subject_keys.c.wraps,
    )
)
#: An export page's keys, by id (Keyring.seks_for_read).
_SEKS_BY_ID = select(subject_keys).where(subject_keys.c.id.in_(bindparam("ids", expanding=True)))
_BOOK_WRAPS = (
    update(subject_keys)
    .where(subject_keys.c.id == bindparam("b_id"))
    .values(wraps=subject_keys.c.wraps + bindparam("b_uses"))
)


def dataset_key_ref(dataset_id: str) -> str:
    """The provider key reference of a dataset's KEK."""
    return f"ds-{dataset_id}"


@dataclass(frozen=True, slots=True)
class SubjectKey:
    """An unwrapped subject-epoch key and where it belongs."""

    id: bytes
    dataset_id: str
    subject: str
    epoch: int
    key: bytes


class Keyring:
    """Gets and makes keys of every level; the only code that calls the key provider to wrap."""

    def __init__(
        self,
        provider: KeyProvider,
        cache: KeyCache,
        *,
        max_wraps: int,
        now: Callable[[], datetime],
    ) -> None:
        self.provider = provider
        self._cache = cache
        self._max_wraps = max_wraps
        self._now = now
        self._pseudonym_key: bytes | None = None
        #: Redaction keys derived so far, by dataset id (see :meth:`redaction_key`).
        self._redaction_keys: dict[str, bytes] = {}

    # -- pseudonyms -----------------------------------------------------------------------------

    def load_pseudonym_key(self, conn: Connection) -> None:
        """Unwrap (creating on first start) the vault's pseudonym key.

        It is stored in the database wrapped by a provider key that is never rotated away, so a
        stolen database alone cannot be joined to an employee directory by brute force.
        """
        row = conn.execute(
            select(vault_meta.c.value).where(vault_meta.c.name == "pseudonym_key")
        ).scalar_one_or_none()
        context = encode_context(_PSEUDONYM_WRAP_LABEL)
        if row is None:
            if not self.provider.versions(PSEUDONYM_KEY_REF):
                self.provider.create_version(PSEUDONYM_KEY_REF)
            key = new_key()
            wrapped = self.provider.wrap(PSEUDONYM_KEY_REF, 1, key, context)
            try:
                with conn.begin_nested():
                    conn.execute(insert(vault_meta).values(name="pseudonym_key", value=wrapped))
            except SAIntegrityError:
                # Another replica started at the same moment and stored its key first.
                self.load_pseudonym_key(conn)
                return
        else:
            key = self.provider.unwrap(PSEUDONYM_KEY_REF, 1, bytes(row), context)
        self._pseudonym_key = key
        self._redaction_keys.clear()  # derived from the key they were made with

    def _pkey(self) -> bytes:
        if self._pseudonym_key is None:
            raise KeyError_("pseudonym key not loaded")
        return self._pseudonym_key

    def subject_pseudonym(self, dataset_id: str, subject: str) -> str:
        """The keyed pseudonym of ``subject`` in one dataset (differs across datasets)."""
        return keyed_hash(self._pkey(), _SUBJECT_LABEL, dataset_id, subject)

    def linkage_pseudonym(self, scope: str, pseudonym: str) -> str:
        """A pseudonym derived for one export or purpose, so separate scopes cannot be joined."""
        return keyed_hash(self._pkey(), _LINKAGE_LABEL, scope, pseudonym)

    def redaction_key(self, dataset_id: str) -> bytes:
        """The key of one dataset's redaction pseudonyms (``[EMAIL:3f9a…]``).

        HKDF-SHA256 (RFC 5869) of the vault pseudonym key, with the dataset id in ``info``:
        nothing new to store or back up, the same key on every replica and after every KEK
        rotation (so pseudonyms stay stable for the dataset's life), a different key per
        dataset (so datasets cannot be joined on them), and, like subject pseudonyms, out of
        reach of whoever holds only the database (the pseudonym key is wrapped by the provider).
        Whoever can use it can test guesses against the pseudonyms made with it, so only kinds
        worth linking are pseudonymized (``PSEUDONYMIZED_KINDS``) and the key never leaves the
        vault: it is not returned by any route, exported or logged.

        Derived once per dataset and process (every batch of a pseudonym-mode dataset asks for
        it), kept in memory beside the pseudonym key it comes from; at most
        :data:`_MAX_REDACTION_KEYS`, then all are forgotten at once.
        """
        key = self._redaction_keys.get(dataset_id)
        if key is None:
            key = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=None,
                info=encode_context(_REDACTION_LABEL, dataset_id),
            ).derive(self._pkey())
            if len(self._redaction_keys) >= _MAX_REDACTION_KEYS:
                self._redaction_keys.clear()
            self._redaction_keys[dataset_id] = key
        return key

    def person_hash(self, identity: str) -> str:
        """The keyed hash that stands for a person (or caller) in the audit log."""
        return keyed_hash(self._pkey(), _PERSON_LABEL, identity)

    # -- dataset KEKs ---------------------------------------------------------------------------

    def create_dataset_kek(self, conn: Connection, dataset_id: str) -> int:
        """Create the first (or next) KEK version of a dataset in the provider and note it."""
        version = self.provider.create_version(dataset_key_ref(dataset_id))
        conn.execute(
            insert(dataset_keks).values(
                dataset_id=dataset_id, version=version, state="active", created_at=self._now()
            )
        )
        return version

    # -- subject-epoch keys ---------------------------------------------------------------------

    @staticmethod
    def _sek_context(dataset_id: str, subject: str, epoch: int, sek_id: bytes, kek: int) -> bytes:
        return encode_context(_SEK_LABEL, dataset_id, subject, epoch, sek_id, kek)

    def sek_for_write(
        self,
        conn: Connection,
        dataset_id: str,
        kek_version: int,
        subject: str,
        epoch: int,
        *,
        uses: int,
    ) -> SubjectKey:
        """The SEK for (dataset, subject, epoch), made if absent; books ``uses`` more wraps."""
        if uses > self._max_wraps:
            raise KeyUsageExceeded("subject-epoch key reached its usage limit")
        row = self._sek_row(conn, dataset_id, subject, epoch)
        if row is None:
            sek_id = uuid.uuid4().bytes
            key = new_key()
            wrapped = self.provider.wrap(
                dataset_key_ref(dataset_id),
                kek_version,
                key,
                self._sek_context(dataset_id, subject, epoch, sek_id, kek_version),
            )
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(subject_keys).values(
                            id=sek_id,
                            dataset_id=dataset_id,
                            subject=subject,
                            epoch=epoch,
                            kek_version=kek_version,
                            wrapped=wrapped,
                            wraps=uses,
                            created_at=self._now(),
                        )
                    )
            except SAIntegrityError:
                # Another writer made it first: use theirs.
                row = self._sek_row(conn, dataset_id, subject, epoch)
                if row is None:
                    raise
            else:
                self._cache.put(sek_id, key)
                return SubjectKey(sek_id, dataset_id, subject, epoch, key)
        return self._book(conn, row, uses)

    def seks_for_write(
        self,
        conn: Connection,
        dataset_id: str,
        kek_version: int,
        wanted: dict[tuple[str, int], int],
    ) -> dict[tuple[str, int], SubjectKey]:
        """:meth:`sek_for_write` for a whole batch: one SELECT, one UPDATE, one INSERT (one
        ``UPDATE ... RETURNING`` for a single subject-day whose key exists).

        ``wanted`` maps (subject, epoch) to the number of wraps to book. Raises
        KeyUsageExceeded past ``max_wraps``, after which the caller's transaction must roll back
        (what it booked is then undone).
        """
        if any(uses > self._max_wraps for uses in wanted.values()):
            raise KeyUsageExceeded("subject-epoch key reached its usage limit")
        if len(wanted) == 1:
            (((subject, epoch), uses),) = wanted.items()
            params = {"b_ds": dataset_id, "b_subject": subject, "b_epoch": epoch, "b_uses": uses}
            booked = conn.execute(_BOOK_ONE, params).one_or_none()
            if booked is not None:
                if booked.wraps > self._max_wraps:
                    raise KeyUsageExceeded("subject-epoch key reached its usage limit")
                key = SubjectKey(
                    bytes(booked.id), dataset_id, subject, epoch, self._unwrap_row(booked)
                )
                return {(subject, epoch): key}
            return self._create_seks(conn, dataset_id, kek_version, [(subject, epoch)], wanted)
        subjects = sorted({s for s, _ in wanted})
        epochs = sorted({e for _, e in wanted})
        found: dict[tuple[str, int], Row[Any]] = {}
        for start in range(0, len(subjects), 500):
            params = {"ds": dataset_id, "subjects": subjects[start : start + 500], "epochs": epochs}
            for row in conn.execute(_SEKS_OF_BATCH, params):
                if (row.subject, row.epoch) in wanted:
                    found[(row.subject, row.epoch)] = row
        out: dict[tuple[str, int], SubjectKey] = {}
        bumps = []
        for pair, row in found.items():
            if row.wraps + wanted[pair] > self._max_wraps:
                raise KeyUsageExceeded("subject-epoch key reached its usage limit")
            bumps.append({"b_id": bytes(row.id), "b_uses": wanted[pair]})
            out[pair] = SubjectKey(
                bytes(row.id), dataset_id, pair[0], pair[1], self._unwrap_row(row)
            )
        if bumps:
            conn.execute(_BOOK_WRAPS, bumps)
        missing = [pair for pair in wanted if pair not in found]
        if missing:
            out.update(self._create_seks(conn, dataset_id, kek_version, missing, wanted))
        return out

    def _create_seks(
        self,
        conn: Connection,
        dataset_id: str,
        kek_version: int,
        missing: list[tuple[str, int]],
        wanted: dict[tuple[str, int], int],
    ) -> dict[tuple[str, int], SubjectKey]:
        made: dict[tuple[str, int], SubjectKey] = {}
        rows = []
        now = self._now()
        ref = dataset_key_ref(dataset_id)
        for subject, epoch in missing:
            sek_id, key = uuid.uuid4().bytes, new_key()
            context = self._sek_context(dataset_id, subject, epoch, sek_id, kek_version)
            rows.append(
                {
                    "id": sek_id,
                    "dataset_id": dataset_id,
                    "subject": subject,
                    "epoch": epoch,
                    "kek_version": kek_version,
                    "wrapped": self.provider.wrap(ref, kek_version, key, context),
                    "wraps": wanted[(subject, epoch)],
                    "created_at": now,
                }
            )
            made[(subject, epoch)] = SubjectKey(sek_id, dataset_id, subject, epoch, key)
        try:
            with conn.begin_nested():
                conn.execute(insert(subject_keys), rows)
        except SAIntegrityError:
            # A concurrent writer made some of them first: take the careful path, one by one.
            return {
                pair: self.sek_for_write(
                    conn, dataset_id, kek_version, pair[0], pair[1], uses=wanted[pair]
                )
                for pair in missing
            }
        for sek in made.values():
            self._cache.put(sek.id, sek.key)
        return made

    def sek_for_read(self, conn: Connection, sek_id: bytes) -> SubjectKey:
        """The SEK with that id; raises KeyDestroyed when it was shredded."""
        row = conn.execute(select(subject_keys).where(subject_keys.c.id == sek_id)).one_or_none()
        if row is None:
            raise KeyDestroyed("subject-epoch key destroyed")
        return SubjectKey(sek_id, row.dataset_id, row.subject, row.epoch, self._unwrap_row(row))

    def seks_for_read(
        self,
        conn: Connection,
        sek_ids: Collection[bytes],
        held: Mapping[bytes, SubjectKey] | None = None,
    ) -> dict[bytes, SubjectKey]:
        """:meth:`sek_for_read` for many keys in one query per 500: those of ``sek_ids`` that
        exist in ``conn``'s snapshot, by id. Keys in ``held`` (already unwrapped) are used as
        they are once their row is found; the others are unwrapped (through the cache). An id
        without a row is left out: the caller raises KeyDestroyed where it needs that key."""
        wanted = sorted(sek_ids)
        found: dict[bytes, SubjectKey] = {}
        for start in range(0, len(wanted), 500):
            for row in conn.execute(_SEKS_BY_ID, {"ids": wanted[start : start + 500]}):
                sek_id = bytes(row.id)
                kept = held.get(sek_id) if held else None
                found[sek_id] = kept or SubjectKey(
                    sek_id, row.dataset_id, row.subject, row.epoch, self._unwrap_row(row)
                )
        return found

    def sek_for_reseal(self, conn: Connection, sek_id: bytes, *, uses: int) -> SubjectKey:
        """The SEK with that id, booking ``uses`` more wraps (records sealed again under it).

        Raises KeyDestroyed when it was shredded and KeyUsageExceeded past ``max_wraps``.
        """
        row = conn.execute(
            select(subject_keys).where(subject_keys.c.id == sek_id).with_for_update()
        ).one_or_none()
        if row is None:
            raise KeyDestroyed("subject-epoch key destroyed")
        return self._book(conn, row, uses)

    def _book(self, conn: Connection, row: Row[Any], uses: int) -> SubjectKey:
        """Count ``uses`` more wraps on the SEK of ``row`` (refused past ``max_wraps``)."""
        sek_id = bytes(row.id)
        if row.wraps + uses > self._max_wraps:
            raise KeyUsageExceeded("subject-epoch key reached its usage limit")
        conn.execute(
            update(subject_keys)
            .where(subject_keys.c.id == sek_id)
            .values(wraps=subject_keys.c.wraps + uses)
        )
        return SubjectKey(sek_id, row.dataset_id, row.subject, row.epoch, self._unwrap_row(row))

    def _sek_row(
        self, conn: Connection, dataset_id: str, subject: str, epoch: int
    ) -> Row[Any] | None:
        return conn.execute(
            select(subject_keys).where(
                subject_keys.c.dataset_id == dataset_id,
                subject_keys.c.subject == subject,
                subject_keys.c.epoch == epoch,
            )
        ).one_or_none()

    def _unwrap_row(self, row: Row[Any]) -> bytes:
        sek_id = bytes(row.id)
        cached = self._cache.get(sek_id)
        if cached is not None:
            return cached
        key = self.provider.unwrap(
            dataset_key_ref(row.dataset_id),
            row.kek_version,
            bytes(row.wrapped),
            self._sek_context(
                row.dataset_id,
                row.subject,
                row.epoch,
                sek_id,
                row.kek_version,
            ),
        )
        self._cache.put(sek_id, key)
        return key

    # -- shredding and rotation (DESIGN.md §3 "Crypto-shredding", "Reaching backups") -----------

    def destroy_subject_keys(self, conn: Connection, dataset_id: str, subject: str) -> int:
        """Delete every SEK of one subject in one dataset (crypto-shred); returns how many.

        The rows vanish from the live database at once; copies in older backups stay wrapped by
        the dataset KEK until the next rotation with destruction of the old version.
        """
        ids = [
            bytes(r.id)
            for r in conn.execute(
                select(subject_keys.c.id).where(
                    subject_keys.c.dataset_id == dataset_id, subject_keys.c.subject == subject
                )
            )
        ]
        if ids:
            conn.execute(delete(subject_keys).where(subject_keys.c.id.in_(ids)))
            for sek_id in ids:
                self._cache.discard(sek_id)
        return len(ids)

    def forget_cached(self) -> None:
        """Drop every cached SEK (after a sweep deleted keys in bulk)."""
        self._cache.clear()

    def start_rotation(self, conn: Connection, dataset_id: str) -> int:
        """Create the next KEK version and make it current for new SEKs; returns it."""
        version = self.create_dataset_kek(conn, dataset_id)
        conn.execute(
            update(datasets).where(datasets.c.id == dataset_id).values(kek_version=version)
        )
        return version

    def rewrap_batch(self, conn: Connection, dataset_id: str, target: int, limit: int) -> int:
        """Rewrap up to ``limit`` SEKs still under an older KEK version; returns how many.

        Records are never touched: rotation costs grow with keys, not records.
        """
        rows = conn.execute(
            select(subject_keys)
            .where(subject_keys.c.dataset_id == dataset_id, subject_keys.c.kek_version != target)
            .order_by(subject_keys.c.id)
            .limit(limit)
        ).all()
        ref = dataset_key_ref(dataset_id)
        for row in rows:
            sek_id = bytes(row.id)
            key = self._unwrap_row(row)
            wrapped = self.provider.wrap(
                ref,
                target,
                key,
                self._sek_context(dataset_id, row.subject, row.epoch, sek_id, target),
            )
            conn.execute(
                update(subject_keys)
                .where(subject_keys.c.id == sek_id, subject_keys.c.kek_version == row.kek_version)
                .values(kek_version=target, wrapped=wrapped)
            )
        return len(rows)

    def mark_old_keks(self, conn: Connection, dataset_id: str, current: int) -> list[int]:
        """Mark every KEK version but ``current`` as being destroyed; returns all so marked.

        Refuses while any SEK is still wrapped by an older version (it would be lost). The
        provider is not touched here: the caller commits this state (and its audit entry)
        first, then calls :meth:`destroy_marked`, then :meth:`confirm_destroyed`.
        """
        left = conn.execute(
            select(subject_keys.c.id)
            .where(subject_keys.c.dataset_id == dataset_id, subject_keys.c.kek_version != current)
            .limit(1)
        ).first()
        if left is not None:
            raise KeyError_("subject-epoch keys remain under an old KEK version; rewrap first")
        conn.execute(
            update(dataset_keks)
            .where(
                dataset_keks.c.dataset_id == dataset_id,
                dataset_keks.c.version != current,
                dataset_keks.c.state == "active",
            )
            .values(state="destroying")
        )
        return self.marked_keks(conn, dataset_id)

    @staticmethod
    def marked_keks(conn: Connection, dataset_id: str) -> list[int]:
        """KEK versions marked for destruction and not yet confirmed destroyed."""
        return [
            int(r.version)
            for r in conn.execute(
                select(dataset_keks.c.version)
                .where(
                    dataset_keks.c.dataset_id == dataset_id, dataset_keks.c.state == "destroying"
                )
                .order_by(dataset_keks.c.version)
            )
        ]

    def destroy_marked(self, dataset_id: str, versions: list[int]) -> None:
        """Destroy the versions in the provider (idempotent: a rerun after a crash is safe)."""
        for version in versions:
            self.provider.destroy_version(dataset_key_ref(dataset_id), version)

    def confirm_destroyed(self, conn: Connection, dataset_id: str, versions: list[int]) -> None:
        """Record that the provider destroyed those versions."""
        if versions:
            conn.execute(
                update(dataset_keks)
                .where(
                    dataset_keks.c.dataset_id == dataset_id,
                    dataset_keks.c.version.in_(versions),
                )
                .values(state="destroyed", destroyed_at=self._now())
            )
