"""Touch records: which principals' rows a written piece changed, for the API workers' caches.

The processor publishes them on an internal topic after a piece's rows are stored and before
it writes the tenant's position; each API worker follows the topic from its end and feeds the
records to its reader's ViewCache (ADR 0017). Not part of the public contract: the change
stream (section 6) tells effective-set changes; a touch also covers rows whose sources or
expiry moved and membership paths, which a check's reasons show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer
from prometheus_client import Counter, Gauge

from permstore.adapters.cassandra_layout.view_cache import ViewCache
from permstore.adapters.kafka_security import client_options
from permstore.adapters.settings import Settings
from permstore.core.consistency import LogPoint
from permstore.core.projector import BatchEffects

PRINCIPALS_PER_RECORD = 2_000
"""Keeps a record far below Kafka's message size limit (a piece touches up to 4,000 rows)."""
RETRY_SECONDS = 1.0
ASSIGN_POLLS = 100

log = structlog.get_logger("permstore.view_updates")
FOLLOWING = Gauge(
    "permstore_view_cache_following",
    "1 while this worker follows touch records (cache hits beyond an unchanged position)",
)
TOUCHES = Counter("permstore_view_touches_total", "Touch records applied to the view cache")


@dataclass(frozen=True, slots=True)
class Touch:
    """One touch record: generation, tenant, principals changed, point applied (if moved)."""

    generation: int
    tenant: str
    principals: list[str]
    applied: LogPoint | None


def touch_records(
    generation: int, batches: list[tuple[str, int, BatchEffects]]
) -> Iterator[tuple[str, bytes]]:
    """(tenant, body) of each written tenant piece: its principals, the point last."""
    for tenant, partition, effects in batches:
        touched = {v.principal for e in effects.effects for v in e.views}
        touched.update(p.principal for e in effects.effects for p in e.paths)
        last = effects.last_offset()
        principals = sorted(touched)
        chunks = [
            principals[i : i + PRINCIPALS_PER_RECORD]
            for i in range(0, len(principals), PRINCIPALS_PER_RECORD)
        ] or [[]]
        for index, chunk in enumerate(chunks):
            at = [partition, last] if last is not None and index == len(chunks) - 1 else None
            if chunk or at is not None:
                yield tenant, orjson.dumps({"g": generation, "t": tenant, "p": chunk, "at": at})


def decode_touch(body: bytes) -> Touch:
    """A touch record; raises ValueError when it is not one."""
    try:
        raw = orjson.loads(body)
        at = raw["at"]
        return Touch(
            int(raw["g"]),
            str(raw["t"]),
            [str(p) for p in raw["p"]],
            None if at is None else LogPoint(int(at[0]), int(at[1])),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, IndexError, ValueError) as exc:
        raise ValueError(f"not a touch record: {exc}") from exc


def apply_touch(cache: ViewCache, generation: int, touch: Touch) -> None:
    """Feed one record to the cache of the generation it was written for."""
    if touch.generation == generation:
        cache.touched(touch.tenant, touch.principals, touch.applied)


class TouchFollower:
    """Follows the touch topic from its end and feeds the current reader's cache.

    `current()` returns (generation, cache) of the reader in use, which a generation switch
    replaces. Any failure resets that cache before following again from the end.
    """

    def __init__(self, settings: Settings, current: Callable[[], tuple[int, ViewCache]]) -> None:
        self._settings = settings
        self._current = current
        self.following = False

    async def run(self) -> None:
        """Follow until cancelled, starting over (and resetting the cache) after a failure."""
        while True:
            consumer = AIOKafkaConsumer(
                self._settings.view_updates_topic,
                bootstrap_servers=self._settings.kafka_bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="latest",
                fetch_max_wait_ms=100,
                **client_options(self._settings, "api"),
            )
            try:
                await consumer.start()
                await self._follow(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("view_updates.follow_failed", error=type(exc).__name__, detail=str(exc))
            finally:
                self._stopped()
                await consumer.stop()
            await asyncio.sleep(RETRY_SECONDS)

    async def _follow(self, consumer: Any) -> None:
        topic = self._settings.view_updates_topic
        # Without a group the consumer takes every partition of the topic once it has its
        # metadata; each starts at the end (auto_offset_reset).
        for _ in range(ASSIGN_POLLS):
            if consumer.assignment():
                break
            await asyncio.sleep(0.1)
        assigned = consumer.assignment()
        if not assigned:
            raise RuntimeError(f"topic {topic} has no partitions this login may read")
        # Resolve the end now: touches before it describe rows written before the reset below.
        for tp in assigned:
            await consumer.position(tp)
        self._current()[1].reset()
        self.following = True
        FOLLOWING.set(1)
        log.info("view_updates.following", topic=topic, partitions=len(assigned))
        while True:
            fetched = await consumer.getmany(timeout_ms=1_000)
            generation, cache = self._current()
            for records in fetched.values():
                for record in records:
                    apply_touch(cache, generation, decode_touch(record.value))
                    TOUCHES.inc()

    def _stopped(self) -> None:
        if self.following:
            self._current()[1].reset()
        self.following = False
        FOLLOWING.set(0)
