"""A bounded, thread-safe cache of unwrapped keys with an age limit.

Explicit and injected, never a module global. The clock is passed in (monotonic seconds) so the
cache stays pure and its expiry is testable without sleeping.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["KeyCache"]


class KeyCache:
    """LRU of at most ``max_entries`` keys, each dropped ``ttl_seconds`` after it was cached."""

    def __init__(self, max_entries: int, ttl_seconds: float, clock: Callable[[], float]) -> None:
        if max_entries < 1 or ttl_seconds <= 0:
            raise ValueError("cache needs a positive size and age limit")
        self._max = max_entries
        self._ttl = ttl_seconds
        self._clock = clock
        self._items: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        """The cached value, or ``None`` when absent or expired."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if self._clock() >= item[0]:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: Hashable, value: bytes) -> None:
        """Cache ``value``, evicting the least recently used entries past the size limit."""
        with self._lock:
            self._items[key] = (self._clock() + self._ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` (used when a key is destroyed)."""
        with self._lock:
            self._items.pop(key, None)

    def discard_where(self, predicate: Callable[[Hashable], bool]) -> None:
        """Forget every entry whose cache key matches ``predicate``."""
        with self._lock:
            for key in [k for k in self._items if predicate(k)]:
                del self._items[key]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
