"""Idempotent creation of the Kafka topics permstore needs."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from permstore.adapters.kafka_security import client_options
from permstore.adapters.settings import Settings

EVENTS_TOPIC_CONFIG = {
    # Recorded time is the broker's append time, so it never goes backwards in a partition.
    "message.timestamp.type": "LogAppendTime",
    "retention.ms": "-1",
}
DLQ_TOPIC_CONFIG = {"retention.ms": str(30 * 86_400_000)}
# Usage records are folded within seconds; a week covers any processor outage worth waiting out.
USAGE_TOPIC_CONFIG = {
    "retention.ms": str(7 * 86_400_000),
    "message.timestamp.type": "LogAppendTime",
}


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the events, dead-letter, usage, changes and view-updates topics if missing;
    returns the names created."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **client_options(settings, "admin")
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                settings.events_topic,
                settings.events_partitions,
                settings.kafka_replication_factor,
                topic_configs={
                    **EVENTS_TOPIC_CONFIG,
                    "min.insync.replicas": str(settings.kafka_min_insync_replicas),
                },
            ),
            NewTopic(
                settings.dlq_topic,
                1,
                settings.kafka_replication_factor,
                topic_configs={
                    **DLQ_TOPIC_CONFIG,
                    "min.insync.replicas": str(settings.kafka_min_insync_replicas),
                },
            ),
            NewTopic(
                settings.usage_topic,
                settings.usage_partitions,
                settings.kafka_replication_factor,
                topic_configs=USAGE_TOPIC_CONFIG,
            ),
            NewTopic(
                settings.changes_topic,
                settings.events_partitions,
                settings.kafka_replication_factor,
                topic_configs={
                    "retention.ms": str(settings.changes_retention_days * 86_400_000),
                    "min.insync.replicas": str(settings.kafka_min_insync_replicas),
                },
            ),
            # Followed from its end by live API workers only: an hour covers any reconnect.
            NewTopic(
                settings.view_updates_topic,
                1,
                settings.kafka_replication_factor,
                topic_configs={
                    "retention.ms": str(3_600_000),
                    "min.insync.replicas": str(settings.kafka_min_insync_replicas),
                },
            ),
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()
