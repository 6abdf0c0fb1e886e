"""SharedPositions: one read per tenant at a time, the first check past the TTL waits for it
while checks meanwhile answer at the held position, a hard bound on how old an answer's
position may be, and never an older position after a newer one was seen."""

from __future__ import annotations

import asyncio

import pytest

from permstore.adapters.cassandra_layout import positions
from permstore.adapters.cassandra_layout.positions import SharedPositions
from permstore.core.consistency import LogPoint

TTL, GRACE = 0.05, 0.2


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


class Store:
    """The tenant's position in Cassandra, with reads the test can hold back or fail."""

    def __init__(self) -> None:
        self.point = LogPoint(0, 10)
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.failure: Exception | None = None

    async def read(self, tenant: str) -> LogPoint:
        self.reads += 1
        seen = self.point
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return seen


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(positions, "time", fake)
    return fake


async def test_a_burst_shares_one_read_and_the_ttl_serves_without_reading(clock: Clock) -> None:
    store = Store()
    shared = SharedPositions(store.read, ttl=TTL, grace=GRACE)
    store.gate.clear()
    burst = asyncio.gather(*(shared.get("acme") for _ in range(20)))
    await asyncio.sleep(0)
    store.gate.set()
    assert set(await burst) == {LogPoint(0, 10)}
    assert store.reads == 1
    clock.now += TTL / 2
    store.point = LogPoint(0, 11)
    assert await shared.get("acme") == LogPoint(0, 10)
    assert store.reads == 1


async def test_past_the_ttl_one_check_reads_and_checks_meanwhile_answer_at_the_held_one(
    clock: Clock,
) -> None:
    store = Store()
    shared = SharedPositions(store.read, ttl=TTL, grace=GRACE)
    await shared.get("acme")
    store.point, store.gate = LogPoint(0, 12), asyncio.Event()
    clock.now += TTL + GRACE / 2
    first = asyncio.ensure_future(shared.get("acme"))
    await asyncio.sleep(0)
    assert not first.done(), "the first check past the TTL waits for the new read"
    assert await shared.get("acme") == LogPoint(0, 10), "checks meanwhile do not wait"
    await asyncio.sleep(0)
    assert store.reads == 2, "one new read for all"
    clock.now += GRACE
    late = asyncio.ensure_future(shared.get("acme"))
    await asyncio.sleep(0)
    assert not late.done(), "past the grace, checks wait for the read too"
    store.gate.set()
    assert await first == LogPoint(0, 12)
    assert await late == LogPoint(0, 12)
    assert store.reads == 2


async def test_past_ttl_and_grace_a_check_waits_for_the_read(clock: Clock) -> None:
    store = Store()
    shared = SharedPositions(store.read, ttl=TTL, grace=GRACE)
    await shared.get("acme")
    store.point, store.gate = LogPoint(0, 13), asyncio.Event()
    clock.now += TTL + GRACE + 0.01
    waiting = asyncio.ensure_future(shared.get("acme"))
    await asyncio.sleep(0)
    assert not waiting.done(), "an answer this old waits for the read"
    store.gate.set()
    assert await waiting == LogPoint(0, 13)


async def test_an_offered_fresh_position_is_never_followed_by_an_older_one(clock: Clock) -> None:
    store = Store()
    shared = SharedPositions(store.read, ttl=TTL, grace=GRACE)
    await shared.get("acme")
    shared.offer("acme", LogPoint(0, 20), clock.now)
    assert await shared.get("acme") == LogPoint(0, 20)
    # A read that saw an older position (a replica behind) does not move it back.
    clock.now += TTL + 0.01
    store.point = LogPoint(0, 15)
    assert await shared.get("acme") == LogPoint(0, 20)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert await shared.get("acme") == LogPoint(0, 20)


async def test_a_failed_read_reaches_its_waiters_and_the_next_get_reads_again(
    clock: Clock,
) -> None:
    store = Store()
    shared = SharedPositions(store.read, ttl=TTL, grace=GRACE)
    store.failure = TimeoutError("cassandra slow")
    with pytest.raises(TimeoutError):
        await shared.get("acme")
    store.failure = None
    assert await shared.get("acme") == LogPoint(0, 10)
    assert store.reads == 2


async def test_a_cancelled_check_does_not_cancel_the_shared_read(clock: Clock) -> None:
    store = Store()
    shared = SharedPositions(store.read, ttl=TTL, grace=GRACE)
    store.gate.clear()
    first = asyncio.ensure_future(shared.get("acme"))
    second = asyncio.ensure_future(shared.get("acme"))
    await asyncio.sleep(0)
    first.cancel()
    store.gate.set()
    assert await second == LogPoint(0, 10)
    assert store.reads == 1


async def test_tenants_are_read_apart(clock: Clock) -> None:
    store = Store()
    shared = SharedPositions(store.read, ttl=TTL, grace=GRACE)
    await asyncio.gather(shared.get("acme"), shared.get("globex"))
    assert store.reads == 2
