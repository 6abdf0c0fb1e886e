"""Contract events (section 2) for benchmarks, and fast bulk publishing straight to Kafka.

Bulk loads skip the API: an upstream system publishes to the topic with the tenant as the key,
so we do the same with aiokafka, keeping thousands of send() futures in flight.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.common import JsonDict
from tests.support import events

OCCURRED_AT = events.FIXED_OCCURRED_AT
ACTOR = "service:bench"
_ids = itertools.count()
_RUN = f"{int(time.time() * 1000):x}"


def kafka_login(role: str) -> dict[str, Any]:
    """aiokafka keyword arguments for a client logged in as one of our Kafka roles."""
    from permstore.adapters.kafka_security import client_options
    from permstore.adapters.settings import Settings

    return client_options(Settings(), role)


def next_id(prefix: str) -> str:
    """A fresh event id (unique in this run)."""
    return f"{prefix}-{_RUN}-{next(_ids)}"


def _fixed(prefix: str) -> dict[str, str]:
    return {"event_id": next_id(prefix), "actor": ACTOR, "occurred_at": OCCURRED_AT}


def grant(tenant: str, principal: str, resource: str, permission: str) -> JsonDict:
    """A grant event."""
    return events.grant(tenant, principal, resource, permission, **_fixed("g"))


def revoke(tenant: str, principal: str, resource: str, permission: str) -> JsonDict:
    """A revoke event."""
    return events.revoke(tenant, principal, resource, permission, **_fixed("r"))


def add_member(tenant: str, group: str, member: str) -> JsonDict:
    """An add_member event."""
    return events.add_member(tenant, group, member, **_fixed("m"))


def remove_member(tenant: str, group: str, member: str) -> JsonDict:
    """A remove_member event."""
    return events.remove_member(tenant, group, member, **_fixed("x"))


def define_role(tenant: str, role: str, actions: list[str]) -> JsonDict:
    """A define_role event."""
    return events.define_role(tenant, role, actions, **_fixed("d"))


@dataclass
class Published:
    """What a bulk publish did: counts, time, and where the marked events landed."""

    count: int = 0
    seconds: float = 0.0
    # index of an event in the input -> (partition, offset, LogAppendTime in ms)
    marks: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    last_by_tenant: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Events per second published."""
        return self.count / self.seconds if self.seconds else 0.0


async def publish_async(
    bootstrap: str,
    topic: str,
    events: Iterable[JsonDict],
    mark: Iterable[int] = (),
    chunk: int = 5000,
) -> Published:
    """Publish events keyed by tenant, `chunk` futures in flight; remember marked positions."""
    from aiokafka import AIOKafkaProducer

    marked = set(mark)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        **kafka_login("publisher"),
        acks="all",
        linger_ms=20,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=60_000,
    )
    await producer.start()
    result = Published()
    started = time.monotonic()
    try:
        pending: list[tuple[int, str, Any]] = []

        async def drain() -> None:
            metas = await asyncio.gather(*(fut for _, _, fut in pending))
            for (index, tenant, _), meta in zip(pending, metas, strict=True):
                result.last_by_tenant[tenant] = (meta.partition, meta.offset)
                if index in marked:
                    result.marks[index] = (meta.partition, meta.offset, int(meta.timestamp))
            pending.clear()

        for index, event in enumerate(events):
            tenant = str(event["tenant"])
            future = await producer.send(topic, value=orjson.dumps(event), key=tenant.encode())
            pending.append((index, tenant, future))
            result.count += 1
            if len(pending) >= chunk:
                await drain()
        if pending:
            await drain()
    finally:
        await producer.stop()
    result.seconds = time.monotonic() - started
    return result


def publish(
    bootstrap: str, topic: str, events: Iterable[JsonDict], mark: Iterable[int] = ()
) -> Published:
    """Synchronous publish_async."""
    return asyncio.run(publish_async(bootstrap, topic, events, mark))


def chunked(items: Iterable[JsonDict], size: int) -> Iterator[list[JsonDict]]:
    """Items in lists of at most size."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def paced_publisher(
    bootstrap: str,
    topic: str,
    rate: float,
    seconds: float,
    tenants: int,
    ready: Any,
    stop: Any,
    queue: Any,
) -> None:
    """Process entry: publish direct grants to `tenants` tenants at `rate` events/s for at most
    `seconds` or until `stop` is set; put what it achieved on `queue`."""

    async def run() -> JsonDict:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, **kafka_login("publisher"), acks="all", linger_ms=5
        )
        await producer.start()
        sent = 0
        tick = 0.01
        try:
            ready.set()
            start = time.monotonic()
            end = start + seconds
            futures: list[Any] = []
            while time.monotonic() < end and not stop.is_set():
                due = int((time.monotonic() - start) * rate)
                while sent < due:
                    tenant = f"bg{sent % tenants}"
                    event = grant(
                        tenant, f"user:w{sent}", f"doc:{tenant}/f{sent % 50}/d{sent}", "read"
                    )
                    futures.append(
                        await producer.send(topic, value=orjson.dumps(event), key=tenant.encode())
                    )
                    sent += 1
                if len(futures) > 2000:
                    await asyncio.gather(*futures)
                    futures.clear()
                await asyncio.sleep(tick)
            await asyncio.gather(*futures)
            elapsed = time.monotonic() - start
        finally:
            await producer.stop()
        return {"sent": sent, "seconds": round(elapsed, 2), "rate": round(sent / elapsed, 1)}

    outcome = asyncio.run(run())
    queue.put(outcome)
