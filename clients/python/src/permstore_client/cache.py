"""An optional local decision cache: bounded, short-lived, off unless a guard is given one."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

Key = tuple[str, str, str, str]


class DecisionCache:
    """Remembers (tenant, principal, resource, action) -> allowed for at most ttl seconds.

    Staleness: a cached answer may be up to ttl seconds old, so a revoke can still be allowed
    (or a new grant still denied) for that long. At most max_entries answers are kept (the
    least recently used go first). Use it only where that window is acceptable.
    """

    def __init__(
        self,
        ttl: float = 1.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Key, tuple[float, bool]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> bool | None:
        """The cached answer, or None when absent or older than ttl."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self._clock() - entry[0] >= self.ttl:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: Key, allowed: bool) -> None:
        """Remember an answer, evicting the least recently used beyond the bound."""
        with self._lock:
            self._entries[key] = (self._clock(), allowed)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every answer (for example after this process writes)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
