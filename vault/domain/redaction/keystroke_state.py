"""The bounded, in-memory store of keystroke tails between batches (docs/redaction.md).

Per process: every ingest of this process shares one store (bootstrap makes it); another
replica, or this one after a restart, starts with none — a secret typed across two batches that
land on different replicas is seen in pieces. Nothing here is ever written anywhere.

Bounded in size, whatever a collector sends (it controls how many targets there are): at most
``max_targets`` tails, at most ``max_bytes`` held by all of them together (each tail's
:meth:`KeyTail.cost`), at most ``max_per_subject`` tails per subject; past a bound the least
recently used tails go first. Bounded in age: a target untouched for ``idle_seconds`` is
dropped. :meth:`KeystrokeState.forget` drops every tail of a subject (erasure, consent
withdrawal), including tails a batch in flight took and puts back later (see *leases*).

Thread-safe: a batch *takes* the tails of its targets and *puts* the new ones back after its
transaction commits, so two concurrent batches never share a tail (the second to finish wins;
neither corrupts the other).
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from vault.domain.redaction.keystrokes import IDLE_SECONDS, KeyTail

__all__ = ["KeystrokeState"]

#: Leases open at once past which the oldest are dropped (a caller that never closes its own).
_MAX_LEASES = 10_000


@dataclass(slots=True)
class _Entry:
    stamp: float
    tail: KeyTail
    subject: str | None
    cost: int


class KeystrokeState:
    """Keystroke tails per focus target, bounded in count, bytes, per subject and age."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        max_targets: int = 10_000,
        idle_seconds: float = IDLE_SECONDS,
        max_bytes: int = 64 * 1024 * 1024,
        max_per_subject: int = 64,
    ) -> None:
        if max_targets < 1 or idle_seconds <= 0 or max_bytes < 1 or max_per_subject < 1:
            raise ValueError("max_targets, max_bytes, max_per_subject >= 1 and idle_seconds > 0")
        self._clock = clock
        self._max = max_targets
        self._max_bytes = max_bytes
        self._max_per_subject = max_per_subject
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._tails: OrderedDict[bytes, _Entry] = OrderedDict()
        self._by_subject: dict[str, OrderedDict[bytes, None]] = {}
        self._bytes = 0
        self._leases: OrderedDict[int, set[str]] = OrderedDict()
        self._lease_ids = itertools.count(1)

    def __len__(self) -> int:
        with self._lock:
            return len(self._tails)

    @property
    def bytes_held(self) -> int:
        """The estimated bytes held by every tail."""
        with self._lock:
            return self._bytes

    def _drop(self, key: bytes) -> None:
        entry = self._tails.pop(key, None)
        if entry is None:
            return
        self._bytes -= entry.cost
        if entry.subject is not None:
            keys = self._by_subject.get(entry.subject)
            if keys is not None:
                keys.pop(key, None)
                if not keys:
                    del self._by_subject[entry.subject]

    def _expire(self, now: float) -> None:
        # Entries are kept in least-recently-put order, so the stale ones are at the front.
        while self._tails:
            key, entry = next(iter(self._tails.items()))
            if now - entry.stamp <= self.idle_seconds:
                break
            self._drop(key)

    def lease(self) -> int:
        """Open a lease before taking tails: a subject forgotten while it is open is not put
        back by :meth:`put` with that lease. Close it with :meth:`release`."""
        with self._lock:
            number = next(self._lease_ids)
            self._leases[number] = set()
            while len(self._leases) > _MAX_LEASES:
                self._leases.popitem(last=False)
            return number

    def release(self, lease: int) -> None:
        """Close a lease (after :meth:`put`, or when the batch failed)."""
        with self._lock:
            self._leases.pop(lease, None)

    def take(self, keys: Iterable[bytes]) -> dict[bytes, KeyTail]:
        """Remove and return the live tails of ``keys``."""
        now = self._clock()
        taken: dict[bytes, KeyTail] = {}
        with self._lock:
            self._expire(now)
            for key in keys:
                entry = self._tails.get(key)
                if entry is not None:
                    taken[key] = entry.tail
                    self._drop(key)
        return taken

    def put(
        self,
        tails: Mapping[bytes, KeyTail],
        *,
        subjects: Mapping[bytes, str] | None = None,
        lease: int | None = None,
    ) -> None:
        """Store ``tails`` (replacing any of the same targets), each under its subject in
        ``subjects`` (a pseudonym); then drop the least recently used past every bound.
        Tails of a subject forgotten during ``lease`` are not stored; the lease is closed."""
        now = self._clock()
        subjects = subjects or {}
        with self._lock:
            forgotten = self._leases.pop(lease, set()) if lease is not None else set()
            for key, tail in tails.items():
                self._drop(key)
                subject = subjects.get(key)
                if not (tail.text or tail.raw) or subject in forgotten:
                    continue
                cost = tail.cost()
                if cost > self._max_bytes:
                    continue
                self._tails[key] = _Entry(now, tail, subject, cost)
                self._bytes += cost
                if subject is not None:
                    mine = self._by_subject.setdefault(subject, OrderedDict())
                    mine[key] = None
                    while len(mine) > self._max_per_subject:
                        self._drop(next(iter(mine)))
            self._expire(now)
            while self._tails and (len(self._tails) > self._max or self._bytes > self._max_bytes):
                self._drop(next(iter(self._tails)))

    def forget(self, subject: str) -> int:
        """Drop every tail of ``subject`` (a pseudonym), also those batches in flight took;
        returns how many were held."""
        with self._lock:
            for forgotten in self._leases.values():
                forgotten.add(subject)
            keys = list(self._by_subject.get(subject, ()))
            for key in keys:
                self._drop(key)
            return len(keys)

    def clear(self) -> None:
        """Forget every tail."""
        with self._lock:
            self._tails.clear()
            self._by_subject.clear()
            self._bytes = 0
