"""Per-principal view cache of an API worker, kept exact by the processor's touch records.

The processor publishes, for every written piece and before it moves the tenant's position,
which principals' rows it changed and the point it applied (`adapters/view_updates.py`). The
worker's follower feeds them here: a touched principal is evicted, and the tenant's followed
point moves. The rule that makes a hit exact (ADR 0017):

- an entry holds rows read after the tenant's position was `entry.point`;
- a request needing point q may use the entry when `entry.point` covers q (nothing newer was
  asked for), or when the followed point covers q (every touch up to q has arrived, and none
  named this principal since the entry was filled);
- a read that started before a touch of its tenant arrived is not stored (its rows may predate
  the touch); `ticket()` taken before the read tells.

When the follower stops or falls behind, `reset()` forgets every entry and followed point, so
only the first rule serves until it follows again: a slow stream costs reads, never answers.
Bounded by rows (LRU); an entry costs its rows plus one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cachetools import LRUCache
from prometheus_client import Counter

from permstore.adapters.cassandra_layout.encodings import Rows
from permstore.core.consistency import LogPoint

FULL_VIEW_ROWS = 128
"""A principal with at most this many view rows is cached whole: any question about it is a hit."""

CACHE_LOOKUPS = Counter(
    "permstore_view_cache_lookups_total", "Principal view cache lookups", ["kind", "result"]
)
CACHE_EVICTIONS = Counter(
    "permstore_view_cache_evictions_total", "Principals evicted on a touch from the processor"
)

View = Mapping[tuple[str, str], tuple[tuple[str, int], ...]]
"""A whole principal's view: (pattern, action) -> its (source, expiry) pairs."""


@dataclass(slots=True)
class PrincipalEntry:
    """What is known of one principal, read after its tenant's position was `point`."""

    point: tuple[int, int]
    view: View | None = None
    """The whole view when small; None while only some answers are known."""
    answers: dict[tuple[str, str], Rows] = field(default_factory=dict)
    """(resource, action) -> rows, for a principal too large to hold whole."""
    paths: dict[str, str] | None = None

    def size(self) -> int:
        """Rows held, plus one for the entry itself."""
        held = len(self.view) if self.view is not None else sum(map(len, self.answers.values()))
        return 1 + held + (len(self.paths) if self.paths else 0)

    def rows_for(self, patterns: list[str], resource: str, action: str) -> Rows | None:
        """The rows a check of (resource, action) reads, in pattern order, if known."""
        if self.view is None:
            return self.answers.get((resource, action))
        return rows_in_view(self.view, patterns, action)


def rows_in_view(view: View, patterns: list[str], action: str) -> Rows:
    """The rows of a whole view that a check of patterns and action reads, in pattern order
    (the order Cassandra returns a read of them in)."""
    found = [(pattern, view[key]) for pattern in patterns if (key := (pattern, action)) in view]
    if len(found) > 1:
        found.sort()
    return tuple(found)


class _FloorLRU(LRUCache[str, int]):
    """Tenant -> sequence of its last eviction; an entry pushed out raises the floor, so a
    read whose ticket predates it is refused as if its tenant had just been touched."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize=maxsize)
        self.floor = 0

    def popitem(self) -> tuple[str, int]:
        key, seq = super().popitem()
        self.floor = max(self.floor, seq)
        return key, seq


class ViewCache:
    """Principal entries of one generation, bounded by rows; rows 0 turns the cache off."""

    def __init__(self, rows: int, tenants: int = 100_000) -> None:
        self.enabled = rows > 0
        self._entries: LRUCache[tuple[str, str], PrincipalEntry] = LRUCache(
            maxsize=max(1, rows), getsizeof=PrincipalEntry.size
        )
        self._seq = 0
        self._touched = _FloorLRU(tenants)
        self._followed: LRUCache[str, tuple[int, int]] = LRUCache(maxsize=tenants)
        self._hit = CACHE_LOOKUPS.labels("principal", "hit")
        self._miss = CACHE_LOOKUPS.labels("principal", "miss")

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def rows(self) -> int:
        """Rows held now."""
        return int(self._entries.currsize)

    def ticket(self) -> int:
        """Taken before a read whose result may be stored."""
        return self._seq

    def lookup(self, tenant: str, principal: str, point: LogPoint) -> PrincipalEntry | None:
        """The principal's entry if it may answer a request needing point."""
        if not self.enabled:
            return None
        entry = self._entries.get((tenant, principal))
        if entry is not None and (
            _covers(entry.point, point) or _covers(self._followed.get(tenant), point)
        ):
            self._hit.inc()
            return entry
        self._miss.inc()
        return None

    def store(
        self,
        tenant: str,
        principal: str,
        point: LogPoint,
        ticket: int,
        *,
        view: View | None = None,
        answers: dict[tuple[str, str], Rows] | None = None,
        paths: dict[str, str] | None = None,
    ) -> None:
        """Remember what a read found (the parts given), unless a touch of the tenant arrived
        since its ticket.

        Parts join an entry already held (no touch evicted it), which then claims the older
        of its point and the read's: every part reflects at least that.
        """
        if not self.enabled or self._touched.get(tenant, self._touched.floor) > ticket:
            return
        key = (tenant, principal)
        entry = self._entries.get(key)
        here = (point.partition, point.offset)
        if entry is not None and _covers(entry.point, point):
            # A read no newer than the entry: the entry now claims only the read's point.
            entry.point = here
        elif entry is None or not _covers(here, _as_point(entry.point)):
            entry = PrincipalEntry(here)
        if view is not None:
            entry.view = view
            entry.answers = {}
        if answers is not None and entry.view is None:
            entry.answers.update(answers)
        if paths is not None:
            entry.paths = paths
        if entry.size() > self._entries.maxsize:
            self._entries.pop(key, None)
            return
        # Setting again recomputes the entry's size.
        self._entries[key] = entry

    def touched(self, tenant: str, principals: list[str], applied: LogPoint | None) -> None:
        """A piece of the tenant was written: evict its principals, then follow its point."""
        if principals:
            self._seq += 1
            self._touched[tenant] = self._seq
            for principal in principals:
                if self._entries.pop((tenant, principal), None) is not None:
                    CACHE_EVICTIONS.inc()
        if applied is not None:
            known = self._followed.get(tenant)
            if known is None or applied.covers(_as_point(known)):
                self._followed[tenant] = (applied.partition, applied.offset)

    def reset(self) -> None:
        """Forget every entry and followed point: touches may have been missed."""
        self._seq += 1
        self._touched.clear()
        self._touched.floor = self._seq
        self._entries.clear()
        self._followed.clear()


def _as_point(point: tuple[int, int]) -> LogPoint:
    return LogPoint(point[0], point[1])


def _covers(known: tuple[int, int] | None, wanted: LogPoint) -> bool:
    """LogPoint.covers on the stored tuple (a hit's hot path: no object is built)."""
    return known is not None and (
        wanted.offset < 0 or (known[0] == wanted.partition and known[1] >= wanted.offset)
    )
