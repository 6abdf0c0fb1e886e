"""The API's reads of a tenant's applied position, against the real Cassandra.

Every check needs the tenant's position; a burst of concurrent checks must share one read, a
held position must be read again once older than the TTL (checks arriving while that read runs
answered at it, up to the grace), and a fresh read (consistency waits) must never be followed
by an older one.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import pytest
from cassandra.cluster import ResponseFuture, Session

from permstore.adapters.cassandra import connect
from permstore.adapters.cassandra_layout.catalogue import active_generation
from permstore.adapters.cassandra_layout.reader import (
    POSITION_CACHE_SECONDS,
    POSITION_GRACE_SECONDS,
    ViewReader,
)
from tests.integration.test_crash_restart import settings_of
from tests.integration.test_faults import seed
from tests.support.stack import StackEnvironment

pytestmark = pytest.mark.integration


class CountingSession:
    """The real driver session, counting each statement sent to Cassandra by its text."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.sent: Counter[str] = Counter()

    def prepare(self, query: str) -> Any:
        """Prepare on the real session."""
        return self._session.prepare(query)

    def execute_async(self, statement: Any, parameters: Any = None) -> ResponseFuture:
        """Send on the real session and count it."""
        self.sent[statement.query_string] += 1
        return self._session.execute_async(statement, parameters)

    def position_reads(self) -> int:
        """Reads of projector_state (only the position reads touch it here)."""
        return sum(n for query, n in self.sent.items() if "projector_state" in query)


def test_concurrent_checks_share_one_position_read(
    test_env: StackEnvironment, api_url: str, issue_token: Callable[..., str], tenant: str
) -> None:
    """20 concurrent asks: one read; past the TTL: one new read, which the first ask waits for
    and the others meanwhile do not; after a fresh read: never an older position."""
    seed(api_url, issue_token(tenant, "check,write"), tenant)
    settings = settings_of(test_env.env)
    cluster, session = connect(settings, "api", request_timeout=30)
    try:
        generation = active_generation(session, settings.cassandra_keyspace) or 1
        counting = CountingSession(session)
        reader = ViewReader(cast(Session, counting), settings.cassandra_keyspace, generation)

        async def scenario() -> None:
            burst = await asyncio.gather(*(reader.position(tenant) for _ in range(20)))
            read_at = time.monotonic()
            assert len(set(burst)) == 1 and burst[0].offset >= 0, burst
            assert counting.position_reads() == 1, counting.sent

            again = await reader.position(tenant)
            if time.monotonic() - read_at < POSITION_CACHE_SECONDS:
                assert counting.position_reads() == 1, "served from the cache within the TTL"
            reads = counting.position_reads()
            await asyncio.sleep(POSITION_CACHE_SECONDS * 2)
            held = await asyncio.gather(*(reader.position(tenant) for _ in range(5)))
            assert all(point.covers(again) for point in held)
            await asyncio.sleep(POSITION_CACHE_SECONDS / 2)
            assert counting.position_reads() == reads + 1, "one read again after the TTL"
            later = await reader.position(tenant)
            assert later.covers(again)

            reads = counting.position_reads()
            fresh, applied_at = await reader.freshness(tenant)
            assert applied_at is not None and fresh.covers(later)
            after = await reader.position(tenant)
            assert counting.position_reads() == reads + 1, "the fresh read is the one held"
            assert after.covers(fresh)

            await asyncio.sleep(POSITION_CACHE_SECONDS + POSITION_GRACE_SECONDS + 0.05)
            reads = counting.position_reads()
            waited = await reader.position(tenant)
            assert counting.position_reads() == reads + 1, "too old to answer: read first"
            assert waited.covers(after)

        asyncio.run(scenario())
    finally:
        cluster.shutdown()
