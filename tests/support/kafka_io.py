"""Direct Kafka access for tests: publish raw records as an upstream system would, read DLQ.

Producers log in as permstore_publisher (what an upstream system gets), readers as
permstore_admin; the security protocol and passwords come from PERMSTORE_* settings.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from permstore.adapters.kafka_security import client_options
from permstore.adapters.settings import Settings
from permstore.core.consistency import LogPoint, encode_token


def login(bootstrap: str, role: str) -> dict[str, Any]:
    """aiokafka keyword arguments for a client of `bootstrap` logged in as `role`."""
    return {"bootstrap_servers": bootstrap, **client_options(Settings(), role)}


def produce(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes]],
    role: str = "publisher",
) -> list[tuple[int, int]]:
    """Publish (key, value) records in order; returns (partition, offset) of each."""

    async def run() -> list[tuple[int, int]]:
        producer = AIOKafkaProducer(**login(bootstrap, role), acks="all", enable_idempotence=True)
        await producer.start()
        try:
            positions = []
            for key, value in records:
                meta = await producer.send_and_wait(topic, key=key, value=value)
                positions.append((meta.partition, meta.offset))
            return positions
        finally:
            await producer.stop()

    return asyncio.run(run())


def produce_many(bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes]]) -> int:
    """Publish many records fast (pipelined sends, one flush); returns how many were sent."""

    async def run() -> int:
        producer = AIOKafkaProducer(
            **login(bootstrap, "publisher"), acks="all", linger_ms=20, max_batch_size=512 * 1024
        )
        await producer.start()
        try:
            futures = [await producer.send(topic, key=k, value=v) for k, v in records]
            await asyncio.gather(*futures)
            return len(futures)
        finally:
            await producer.stop()

    return asyncio.run(run())


def publish_events(bootstrap: str, topic: str, events: Sequence[dict[str, Any]]) -> str:
    """Publish contract events keyed by tenant; returns the consistency token of the last."""
    positions = produce(
        bootstrap, topic, [(str(e["tenant"]).encode(), json.dumps(e).encode()) for e in events]
    )
    partition, offset = positions[-1]
    return encode_token(str(events[-1]["tenant"]), LogPoint(partition, offset))


def read_topic(bootstrap: str, topic: str, timeout: float = 5.0, role: str = "admin") -> list[Any]:
    """Every record currently in a topic (all partitions), oldest first per partition."""

    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(
            **login(bootstrap, role), enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            records: list[Any] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while loop.time() < deadline:
                positions = {tp: await consumer.position(tp) for tp in tps}
                if all(positions[tp] >= ends[tp] for tp in tps):
                    break
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    records.extend(messages)
            return records
        finally:
            await consumer.stop()

    return asyncio.run(run())
