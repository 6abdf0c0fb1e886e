"""Usage recording in an API worker: credit decisions in bounded memory, flush to Kafka.

A check only appends its answers to a bounded list (one append per request); a drain task
counts them by decision shape (tenant, day, principal, action, reasons) a few times a second,
and a flush expands each distinct shape into usage counters once and sends the counters that
changed to `permstore.usage` every few seconds. Counters are cumulative per worker
incarnation (`src`) and day, so a record sent twice, or replayed, writes the same cells
(streams/usage_writer.py). A failed flush drops the uses it held, counted, and starts a new
incarnation: nothing is retried and no check ever waits for Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson
import structlog
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge

from permstore.adapters.kafka_security import client_options
from permstore.adapters.settings import Settings
from permstore.core.decisions import Reason
from permstore.core.findings import DAY_US, credits

log = structlog.get_logger("permstore.usage")

DRAIN_SECONDS = 0.25
SEND_TIMEOUT_SECONDS = 5.0
ITEMS_PER_RECORD = 500
MAX_PENDING_DECISIONS = 200_000

DROPPED = Counter(
    "permstore_usage_dropped_total",
    "Uses not recorded: Kafka unavailable, or the worker's bounded memory full",
    ["reason"],
)
FLUSHES = Counter("permstore_usage_flushes_total", "Usage flushes by outcome", ["outcome"])
RECORDS = Counter("permstore_usage_records_total", "Usage records sent to Kafka")
ENTRIES = Gauge("permstore_usage_entries", "Usage counters held in this worker's memory")


class Decided(Protocol):
    """A check's principal and action (a CheckRequest or one item of a batch)."""

    @property
    def principal(self) -> str:
        """The principal checked."""

    @property
    def action(self) -> str:
        """The action checked."""


Key = tuple[str, int, str, str]
"""(tenant, day, kind, item) of one counter."""


class UsageRecorder:
    """Aggregates one worker's usage and flushes it; `record` is the only hot-path call."""

    def __init__(
        self,
        settings: Settings,
        make_producer: Callable[[], AIOKafkaProducer] | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.enabled = settings.usage_enabled
        self._topic = settings.usage_topic
        self._flush_seconds = settings.usage_flush_seconds
        self._max_entries = settings.usage_max_entries
        offset_us = round(settings.usage_clock_offset_seconds * 1_000_000)
        self._clock = clock or (lambda: time.time_ns() // 1000 + offset_us)
        self._make_producer = make_producer or (lambda: default_producer(settings))
        self._producer: AIOKafkaProducer | None = None
        self._pending: list[tuple[str, int, Sequence[Decided], Sequence[list[Reason]]]] = []
        self._pending_decisions = 0
        self._shapes: dict[tuple[str, int, str, str, tuple[Reason, ...]], list[int]] = {}
        self._counts: dict[Key, list[int]] = {}
        """key -> [uses, last used µs, uses already sent]."""
        self._dirty: set[Key] = set()
        self._src = uuid.uuid4().hex
        self._last_ts = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._flushing = asyncio.Lock()

    def record(
        self, tenant: str, checks: Sequence[Decided], answers: Sequence[list[Reason]]
    ) -> None:
        """Credit the decisions of one request (checks[i] answered by answers[i])."""
        if not self.enabled:
            return
        if self._pending_decisions >= MAX_PENDING_DECISIONS:
            DROPPED.labels("full").inc(len(answers))
            return
        self._pending.append((tenant, self._clock(), checks, answers))
        self._pending_decisions += len(answers)

    def drain(self) -> None:
        """Fold pending decisions into per-decision-shape counts (cheap: one dict bump each)."""
        pending, self._pending, self._pending_decisions = self._pending, [], 0
        shapes = self._shapes
        for tenant, now_us, checks, answers in pending:
            day = now_us // DAY_US
            for check, reasons in zip(checks, answers, strict=True):
                # Repeated decisions share a shape; credits are computed once per shape.
                key = (tenant, day, check.principal, check.action, tuple(reasons))
                shape = shapes.get(key)
                if shape is None:
                    shapes[key] = [1, now_us]
                else:
                    shape[0] += 1
                    if now_us > shape[1]:
                        shape[1] = now_us
        if len(shapes) >= self._max_entries:
            self.expand()

    def expand(self) -> None:
        """Turn decision shapes into usage counters (one credits() per distinct shape)."""
        shapes, self._shapes = self._shapes, {}
        counts, dirty, full = self._counts, self._dirty, 0
        for (tenant, day, principal, action, reasons), (uses, last) in shapes.items():
            for kind, item in credits(principal, action, reasons):
                key = (tenant, day, kind, item)
                counter = counts.get(key)
                if counter is None:
                    if len(counts) >= self._max_entries:
                        full += uses
                        continue
                    counter = counts[key] = [0, 0, 0]
                counter[0] += uses
                if last > counter[1]:
                    counter[1] = last
                dirty.add(key)
        if full:
            DROPPED.labels("full").inc(full)
        ENTRIES.set(len(counts))

    def records(self) -> list[tuple[bytes, bytes]]:
        """The (key, value) records of every counter changed since the last flush."""
        by_bucket: dict[tuple[str, int], list[list[Any]]] = {}
        for key in sorted(self._dirty):
            uses, last, _ = self._counts[key]
            by_bucket.setdefault((key[0], key[1]), []).append([key[2], key[3], uses, last])
        # Cells of one incarnation are written with this timestamp: later flushes win.
        ts = self._last_ts = max(self._clock(), self._last_ts + 1)
        out = []
        for (tenant, day), items in by_bucket.items():
            for start in range(0, len(items), ITEMS_PER_RECORD):
                chunk = items[start : start + ITEMS_PER_RECORD]
                value = {"v": 1, "tenant": tenant, "day": day, "src": self._src, "ts": ts}
                value["items"] = chunk
                out.append((tenant.encode(), orjson.dumps(value)))
        return out

    async def flush(self) -> bool:
        """Send what changed; on any failure drop it (counted) and start a new incarnation."""
        async with self._flushing:
            self.drain()
            self.expand()
            if not self._dirty:
                return True
            records = self.records()
            try:
                await asyncio.wait_for(self._send(records), SEND_TIMEOUT_SECONDS)
            except Exception as exc:
                lost = sum(self._counts[k][0] - self._counts[k][2] for k in self._dirty)
                DROPPED.labels("kafka").inc(lost)
                FLUSHES.labels("failed").inc()
                log.warning("usage.flush_failed", error=type(exc).__name__, dropped_uses=lost)
                await self._discard_producer()
                self._rotate()
                return False
            for key in self._dirty:
                counter = self._counts[key]
                counter[2] = counter[0]
            self._dirty.clear()
            FLUSHES.labels("sent").inc()
            RECORDS.inc(len(records))
            self._forget_sent()
            return True

    def _forget_sent(self) -> None:
        """Bound memory: drop past days (their totals are sent), or rotate when nearly full."""
        today = self._clock() // DAY_US
        for key in [k for k in self._counts if k[1] < today]:
            del self._counts[key]
        if len(self._counts) >= self._max_entries * 0.8:
            self._rotate()
        ENTRIES.set(len(self._counts))

    def _rotate(self) -> None:
        self._shapes.clear()
        self._counts.clear()
        self._dirty.clear()
        self._src = uuid.uuid4().hex
        ENTRIES.set(0)

    async def _send(self, records: list[tuple[bytes, bytes]]) -> None:
        if self._producer is None:
            producer = self._make_producer()
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        sends = [await self._producer.send(self._topic, key=k, value=v) for k, v in records]
        await asyncio.gather(*sends)

    async def _discard_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), SEND_TIMEOUT_SECONDS)

    async def start(self) -> None:
        """Start the drain and flush tasks (no Kafka connection until the first flush)."""
        if self.enabled:
            self._tasks = [
                asyncio.create_task(self._every(DRAIN_SECONDS, self._drain_step)),
                asyncio.create_task(self._every(self._flush_seconds, self.flush)),
            ]

    async def _drain_step(self) -> bool:
        self.drain()
        return True

    async def _every(self, seconds: float, step: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await step()
            except Exception as exc:
                log.warning("usage.step_failed", error=type(exc).__name__)

    async def stop(self) -> None:
        """Stop the tasks, send what is left (bounded), close the producer."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.enabled:
            await self.flush()
        await self._discard_producer()


def default_producer(settings: Settings) -> AIOKafkaProducer:
    """The usage producer: its own connection, short timeouts, no retries beyond them."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.usage_kafka_bootstrap or settings.kafka_bootstrap,
        acks=1,
        linger_ms=20,
        request_timeout_ms=int(SEND_TIMEOUT_SECONDS * 1000),
        **client_options(settings, "api"),
    )
