"""The bounded, in-memory store of keystroke tails between batches (docs/redaction.md).

Per process: every ingest of this process shares one store (bootstrap makes it); another
replica, or this one after a restart, starts with none — a secret typed across two batches that
land on different replicas is seen in pieces. Nothing here is ever written anywhere.

Bounded in size (least recently used targets are dropped past ``max_targets``) and in age (a
target untouched for ``idle_seconds`` is dropped). Thread-safe: a batch *takes* the tails of its
targets and *puts* the new ones back after its transaction commits, so two concurrent batches
never share a tail (the second to finish wins; neither corrupts the other).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping

from vault.domain.redaction.keystrokes import IDLE_SECONDS, KeyTail

__all__ = ["KeystrokeState"]


class KeystrokeState:
    """Keystroke tails per focus target, bounded in count and age."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        max_targets: int = 10_000,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        if max_targets < 1 or idle_seconds <= 0:
            raise ValueError("max_targets >= 1 and idle_seconds > 0")
        self._clock = clock
        self._max = max_targets
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._tails: OrderedDict[bytes, tuple[float, KeyTail]] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._tails)

    def _expire(self, now: float) -> None:
        # Entries are kept in least-recently-put order, so the stale ones are at the front.
        while self._tails:
            key, (stamp, _) = next(iter(self._tails.items()))
            if now - stamp <= self.idle_seconds:
                break
            del self._tails[key]

    def take(self, keys: Iterable[bytes]) -> dict[bytes, KeyTail]:
        """Remove and return the live tails of ``keys``."""
        now = self._clock()
        taken: dict[bytes, KeyTail] = {}
        with self._lock:
            self._expire(now)
            for key in keys:
                entry = self._tails.pop(key, None)
                if entry is not None:
                    taken[key] = entry[1]
        return taken

    def put(self, tails: Mapping[bytes, KeyTail]) -> None:
        """Store ``tails`` (replacing any of the same targets); drop the oldest past the cap."""
        now = self._clock()
        with self._lock:
            for key, tail in tails.items():
                self._tails.pop(key, None)
                if tail.text:
                    self._tails[key] = (now, tail)
            self._expire(now)
            while len(self._tails) > self._max:
                self._tails.popitem(last=False)

    def clear(self) -> None:
        """Forget every tail."""
        with self._lock:
            self._tails.clear()
