"""Publishes validated events to Kafka with an idempotent producer that survives broker loss."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber, UnknownProducerId

log = structlog.get_logger("permstore.api")

# After these the idempotent producer's sequence state is unusable: only a new producer (with a
# new producer id) can send again. Event ids make the caller's retry harmless.
FATAL_PRODUCER_ERRORS = (OutOfOrderSequenceNumber, UnknownProducerId)


class EventPublisher:
    """Sends one tenant's events in order and waits until Kafka acknowledged all of them."""

    def __init__(self, make_producer: Callable[[], AIOKafkaProducer]) -> None:
        self._make_producer = make_producer
        self._producer = make_producer()
        self._replacing = asyncio.Lock()

    async def start(self) -> None:
        """Connect the producer."""
        await self._producer.start()

    async def stop(self) -> None:
        """Flush and disconnect."""
        await self._producer.stop()

    async def publish(self, topic: str, key: bytes, values: Sequence[bytes]) -> list[Any]:
        """Append values in order; returns their record metadata. Raises KafkaError on failure."""
        producer = self._producer
        try:
            sends = [await producer.send(topic, key=key, value=value) for value in values]
            return list(await asyncio.gather(*sends))
        except FATAL_PRODUCER_ERRORS as exc:
            await self._replace(producer, exc)
            raise

    async def _replace(self, broken: AIOKafkaProducer, exc: KafkaError) -> None:
        async with self._replacing:
            if self._producer is not broken:
                return  # another request already replaced it
            log.warning("producer.replaced", error=type(exc).__name__)
            fresh = self._make_producer()
            await fresh.start()
            self._producer = fresh
        try:
            await broken.stop()
        except KafkaError as stop_error:
            log.warning("producer.stop_failed", error=type(stop_error).__name__)
