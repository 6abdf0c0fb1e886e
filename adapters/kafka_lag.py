"""Consumer lag of the processor group: how far the views are behind the log, per partition."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from permstore.adapters.kafka_security import client_options
from permstore.adapters.settings import Settings


class LagProbe:
    """Long-lived Kafka clients that measure lag on demand, logged in as `role`."""

    def __init__(self, settings: Settings, role: str) -> None:
        self._settings = settings
        login = client_options(settings, role)
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=3000, **login
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            enable_auto_commit=False,
            request_timeout_ms=3000,
            **login,
        )
        self._started = False

    async def start(self) -> None:
        """Connect both clients."""
        await self._admin.start()
        await self._consumer.start()
        self._started = True

    async def close(self) -> None:
        """Disconnect."""
        if self._started:
            await self._consumer.stop()
            await self._admin.close()

    async def lag(self, group: str) -> dict[int, int]:
        """Records not yet committed by a consumer group, per partition of the events topic."""
        topic = self._settings.events_topic
        partitions = self._consumer.partitions_for_topic(topic)
        if not partitions:
            await self._consumer._client.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await self._consumer.end_offsets(tps)
        committed = await self._admin.list_consumer_group_offsets(group, partitions=tps)
        result: dict[int, int] = {}
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            result[tp.partition] = max(0, ends[tp] - done)
        return result

    async def end_offsets(self, topic: str) -> dict[int, int]:
        """The end offset of every partition of a topic."""
        partitions = self._consumer.partitions_for_topic(topic)
        if not partitions:
            await self._consumer._client.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await self._consumer.end_offsets(tps)
        return {tp.partition: int(offset) for tp, offset in ends.items()}
