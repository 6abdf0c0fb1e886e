"""Each Kafka login can do its job and nothing else; strangers and wrong passwords get nothing.

Runs against the session's topics, whose ACLs `adapters.bootstrap` created. Every record these
tests manage to publish is a valid grant for a tenant no other test uses.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)

from permstore.adapters.kafka_security import client_options
from permstore.adapters.settings import Settings
from tests.support import events
from tests.support.stack import StackEnvironment

pytestmark = pytest.mark.integration

BOUND_SECONDS = 20.0
T = TypeVar("T")


@pytest.fixture(scope="module")
def kafka(test_env: StackEnvironment) -> Settings:
    """Settings for this session's topics and group; skipped where Kafka has no SASL."""
    env = test_env.env
    settings = Settings(
        kafka_bootstrap=env.get("PERMSTORE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        kafka_security_protocol=env.get("PERMSTORE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
        events_topic=env["PERMSTORE_EVENTS_TOPIC"],
        dlq_topic=env["PERMSTORE_DLQ_TOPIC"],
        usage_topic=env["PERMSTORE_USAGE_TOPIC"],
        changes_topic=env["PERMSTORE_CHANGES_TOPIC"],
        view_updates_topic=env["PERMSTORE_VIEW_UPDATES_TOPIC"],
        processor_group=env["PERMSTORE_PROCESSOR_GROUP"],
    )
    if settings.kafka_security_protocol == "PLAINTEXT":
        pytest.skip("this Kafka has no SASL listener (PERMSTORE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT)")
    return settings


def grant() -> tuple[bytes, bytes]:
    """(key, value) of a valid grant for a fresh tenant."""
    tenant = f"k{uuid.uuid4().hex[:12]}"
    event = events.grant(
        tenant,
        "user:acl",
        "doc:x",
        "read",
        event_id="acl-test",
        occurred_at=events.FIXED_OCCURRED_AT,
    )
    return tenant.encode(), json.dumps(event).encode()


def bounded(make: Callable[[], Awaitable[T]]) -> T:
    """Run one coroutine with a time bound: a refusal must be an error, never a hang."""

    async def run() -> T:
        return await asyncio.wait_for(make(), BOUND_SECONDS)

    return asyncio.run(run())


async def produce_as(settings: Settings, role: str, topic: str) -> int:
    """Publish one grant to `topic` as `role`; returns its offset."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        request_timeout_ms=5000,
        **client_options(settings, role),
    )
    await producer.start()
    try:
        key, value = grant()
        return int((await producer.send_and_wait(topic, key=key, value=value)).offset)
    finally:
        await producer.stop()


async def consume_as(settings: Settings, role: str, topic: str) -> int:
    """Fetch from the start of every partition of `topic` as `role`; returns records seen."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        request_timeout_ms=5000,
        **client_options(settings, role),
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.events_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        for _ in range(10):
            batches = await consumer.getmany(timeout_ms=300)
            seen += sum(len(records) for records in batches.values())
        return seen
    finally:
        await consumer.stop()


def test_publisher_writes_events_only(kafka: Settings) -> None:
    """The upstream publisher can publish events, not read them back nor write dead letters."""
    assert bounded(lambda: produce_as(kafka, "publisher", kafka.events_topic)) >= 0
    with pytest.raises(TopicAuthorizationFailedError):
        bounded(lambda: consume_as(kafka, "publisher", kafka.events_topic))
    with pytest.raises(TopicAuthorizationFailedError):
        bounded(lambda: produce_as(kafka, "publisher", kafka.dlq_topic))


def test_api_writes_events_but_cannot_consume(kafka: Settings) -> None:
    """The API login publishes accepted events; the log itself is not its to read."""
    assert bounded(lambda: produce_as(kafka, "api", kafka.events_topic)) >= 0
    with pytest.raises(TopicAuthorizationFailedError):
        bounded(lambda: consume_as(kafka, "api", kafka.events_topic))


def test_processor_reads_events_but_cannot_publish_them(kafka: Settings) -> None:
    """The processor consumes the log and never appends to it."""
    assert bounded(lambda: consume_as(kafka, "processor", kafka.events_topic)) >= 0
    with pytest.raises(TopicAuthorizationFailedError):
        bounded(lambda: produce_as(kafka, "processor", kafka.events_topic))


def test_usage_topic_is_written_by_the_api_and_read_by_the_processor(kafka: Settings) -> None:
    """Usage records flow API -> processor only: the API cannot read them back, the processor
    cannot forge them, the upstream publisher has no access at all."""
    assert bounded(lambda: produce_as(kafka, "api", kafka.usage_topic)) >= 0
    assert bounded(lambda: consume_as(kafka, "processor", kafka.usage_topic)) >= 0
    with pytest.raises(TopicAuthorizationFailedError):
        bounded(lambda: consume_as(kafka, "api", kafka.usage_topic))
    with pytest.raises(TopicAuthorizationFailedError):
        bounded(lambda: produce_as(kafka, "processor", kafka.usage_topic))
    with pytest.raises(TopicAuthorizationFailedError):
        bounded(lambda: produce_as(kafka, "publisher", kafka.usage_topic))


def test_the_change_stream_is_written_by_the_processor_only(kafka: Settings) -> None:
    """Only the processor may append change records; the API and publishers cannot forge them."""
    assert bounded(lambda: produce_as(kafka, "processor", kafka.changes_topic)) >= 0
    with pytest.raises(TopicAuthorizationFailedError):
        bounded(lambda: produce_as(kafka, "api", kafka.changes_topic))
    with pytest.raises(TopicAuthorizationFailedError):
        bounded(lambda: produce_as(kafka, "publisher", kafka.changes_topic))


def test_touch_records_are_written_by_the_processor_only(kafka: Settings) -> None:
    """A forged touch could make API workers keep a stale answer: only the processor writes."""
    assert bounded(lambda: produce_as(kafka, "processor", kafka.view_updates_topic)) >= 0
    with pytest.raises(TopicAuthorizationFailedError):
        bounded(lambda: produce_as(kafka, "api", kafka.view_updates_topic))
    with pytest.raises(TopicAuthorizationFailedError):
        bounded(lambda: produce_as(kafka, "publisher", kafka.view_updates_topic))


def test_wrong_password_is_refused(kafka: Settings) -> None:
    """A known user name with a wrong password does not get in."""
    host, port = kafka.kafka_bootstrap.split(",")[0].rsplit(":", 1)
    login = client_options(kafka, "publisher") | {"sasl_plain_password": "not-the-password"}
    with pytest.raises(SaslAuthenticationFailed):
        bounded(lambda: create_conn(host, int(port), **login))


def test_anonymous_plaintext_is_refused(kafka: Settings) -> None:
    """A client without SASL learns nothing, not even the topic list."""

    async def list_topics() -> object:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=kafka.kafka_bootstrap,
            security_protocol="PLAINTEXT",
            request_timeout_ms=5000,
        )
        try:
            await admin.start()
            return await admin.list_topics()
        finally:
            await admin.close()

    with pytest.raises(KafkaConnectionError):
        bounded(list_topics)
