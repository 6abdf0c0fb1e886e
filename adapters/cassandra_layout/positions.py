"""Each tenant's applied position, shared by the checks of one API worker.

Every check without a token answers at the tenant's position. Reading it from Cassandra per
check would double the reads, so a worker shares one read per tenant. A position only moves
forward, so an older one is still a true lower bound: a check answered at it is as correct as
one answered a moment earlier.

Once a position is older than `ttl`, the next check starts a new read and waits for it, as a
check after an idle spell must see what was applied meanwhile. Checks that arrive while that
read runs are answered at the position held instead of queueing behind it: under writes the
read slows down, and every check of the tenant used to stall on it every `ttl`. They wait too
once the held position is older than `ttl + grace`, so no answer is older than that bound
while Cassandra is slow.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from cachetools import LRUCache

from permstore.core.consistency import LogPoint


class SharedPositions:
    """Tenant -> (position, when read): one read at a time once older than ttl, which checks
    arriving meanwhile do not wait for (up to ttl + grace)."""

    def __init__(
        self,
        read: Callable[[str], Awaitable[LogPoint]],
        *,
        ttl: float,
        grace: float,
        tenants: int = 100_000,
    ) -> None:
        self._read = read
        self._ttl = ttl
        self._limit = ttl + grace
        self._known: LRUCache[str, tuple[LogPoint, float]] = LRUCache(maxsize=tenants)
        # At most one read in flight per tenant; bounded by the tenants being asked about.
        self._reading: dict[str, asyncio.Future[LogPoint]] = {}

    async def get(self, tenant: str) -> LogPoint:
        """The tenant's position: the one held while young, or while its next read runs and it
        is not too old; else the next read's."""
        known = self._known.get(tenant)
        if known is not None:
            point, read_at = known
            age = time.monotonic() - read_at
            if age < self._ttl:
                return point
            if tenant in self._reading and age < self._limit:
                return point
        return await asyncio.shield(self._refresh(tenant))

    def offer(self, tenant: str, point: LogPoint, read_at: float) -> None:
        """Hold a position read at read_at (monotonic), unless a newer one is held."""
        known = self._known.get(tenant)
        if known is None or not known[0].covers(point) or known[0] == point:
            self._known[tenant] = (point, read_at)
        elif read_at > known[1]:
            # An older answer than the one held (a replica behind): keep the newer position.
            self._known[tenant] = (known[0], read_at)

    def _refresh(self, tenant: str) -> asyncio.Future[LogPoint]:
        reading = self._reading.get(tenant)
        if reading is None:
            reading = asyncio.ensure_future(self._fetch(tenant))
            # A read nobody waits for still reports its failure to the next read, not the log.
            reading.add_done_callback(_observe)
            self._reading[tenant] = reading
        return reading

    async def _fetch(self, tenant: str) -> LogPoint:
        started = time.monotonic()
        try:
            point = await self._read(tenant)
        finally:
            self._reading.pop(tenant, None)
        self.offer(tenant, point, started)
        return self._known[tenant][0] if tenant in self._known else point


def _observe(future: asyncio.Future[LogPoint]) -> None:
    if not future.cancelled():
        future.exception()
