"""The faust application: one agent that decodes batches, calls the core, hands results on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
import structlog

from permstore.adapters.cassandra_layout.writer import ChangeSink
from permstore.adapters.kafka_security import faust_credentials
from permstore.adapters.settings import Settings
from permstore.streams import metrics
from permstore.streams.processor import (
    BatchProcessor,
    DeadLetter,
    DeadLetterSink,
    RawRecord,
    TenantLanes,
)

log = structlog.get_logger("permstore.processor")

METADATA_MAX_AGE_MS = 10_000
"""How old the Kafka clients' cluster metadata may get (Kafka's default: 5 minutes).

aiokafka (0.14) does not refresh metadata when a ListOffsets request, sent while a partition
is (re)assigned, answers NotLeaderForPartition: it retries the same broker until the periodic
refresh. After a broker restart moved leaders, a processor that took over partitions waited
five minutes to consume them (seen in the node-loss test); with this, at most ten seconds."""

SHUTDOWN_GRACE_SECONDS = 3.0
"""How long a stopping processor lets the pieces being written finish (then abandons them,
unacked: a restart replays those events exactly)."""


def to_raw(message: Any) -> RawRecord:
    """Copy what the processor needs from a faust message."""
    return RawRecord(
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=round(message.timestamp * 1000),
        key=message.key,
        value=message.value,
    )


class _App(faust.App):
    """faust's app, stopping the tenant lanes instead of draining them on shutdown.

    faust waits, before it stops the consumer, for every record read to be acked; a lane in
    the middle of a large fan-out would hold a shutdown for as long as that takes. On
    shutdown the lanes get SHUTDOWN_GRACE_SECONDS to finish the pieces being written and
    stop; their unfinished records stay unacked, so the final commit leaves them to be
    replayed. Rebalances still drain (another processor must not start on a tenant whose
    events this one is still writing).
    """

    lanes: TenantLanes | None = None

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        if self.should_stop and self.lanes is not None:
            if not await self.lanes.stop(SHUTDOWN_GRACE_SECONDS):
                log.warning("shutdown.pieces_abandoned")
            return
        await super()._consumer_wait_empty(consumer, logger)


@dataclass
class ChangePublishing:
    """Whether this processor publishes its change records to Kafka (touch records always go).

    Only the active generation's processor does: a rebuild's processor stores the same rows
    (idempotent) but must not replay history on the topic. It starts publishing once readers
    switch to its generation.
    """

    enabled: bool


def build_app(
    settings: Settings,
    group: str,
    make_processor: Callable[[DeadLetterSink, ChangeSink], BatchProcessor],
    publishing: ChangePublishing,
) -> _App:
    """Create the faust app (consumer group `group`) with its agent and the processor it feeds."""
    settings.faust_dir.mkdir(parents=True, exist_ok=True)
    app = _App(
        group,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=faust_credentials(settings, "processor"),
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_disable_leader=True,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.processor_session_timeout_seconds,
        # Three heartbeats per session timeout, as Kafka recommends.
        broker_heartbeat_interval=settings.processor_session_timeout_seconds / 3,
        producer_acks=-1,
        consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
        producer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
        stream_wait_empty=True,
        autodiscover=False,
        # faust keeps a per-app folder even without tables; keep it out of the work tree root.
        datadir=str(settings.faust_dir / group),
    )
    events_topic = app.topic(
        settings.events_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,
    )

    async def send_dead_letters(letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            await app.producer.send_and_wait(
                settings.dlq_topic,
                letter.record.key,
                letter.record.value,
                partition=None,
                timestamp=None,
                headers=[
                    ("permstore-reason", letter.reason.encode()),
                    ("permstore-source-topic", settings.events_topic.encode()),
                    ("permstore-source-partition", str(letter.record.partition).encode()),
                    ("permstore-source-offset", str(letter.record.offset).encode()),
                ],
            )

    async def publish_changes(
        records: list[tuple[str, bytes]], touches: list[tuple[str, bytes]]
    ) -> None:
        """Send every change and touch record, then wait for all acks: the state write
        follows only then.

        Touches go out in every generation: a worker that switches to this one must hear of
        every piece written after its switch, and workers of other generations ignore them.
        """
        send = app.producer.send
        sent = []
        if publishing.enabled:
            sent = [
                await send(settings.changes_topic, tenant.encode(), body, None, None, None)
                for tenant, body in records
            ]
            metrics.CHANGES_PUBLISHED.inc(len(records))
        sent += [
            await send(settings.view_updates_topic, tenant.encode(), body, None, None, None)
            for tenant, body in touches
        ]
        await asyncio.gather(*sent)

    processor = make_processor(send_dead_letters, publish_changes)
    lanes = TenantLanes(
        processor,
        send_dead_letters,
        max_pending=settings.processor_max_pending,
        max_batch=settings.processor_batch_size,
    )
    metrics.watch_lanes(lanes)
    app.lanes = lanes

    async def project(stream: Any) -> None:
        """Hand each record to its tenant's lane; a record is acked once its event is applied,
        so the committed offset of a partition is its lowest record not yet applied."""
        async for event in stream.noack().events():
            await lanes.submit(to_raw(event.message), _acker(event))

    async def report_lag() -> None:
        """Publish consumer lag per partition."""
        consumer = app.consumer
        try:
            for tp in consumer.assignment():
                position = await consumer.position(tp)
                highwater = consumer.highwater(tp)
                if position is not None and highwater is not None:
                    lag = max(0, highwater - position)
                    metrics.CONSUMER_LAG.labels(str(tp.partition)).set(lag)
        except Exception as exc:
            # A timer that raises crashes the faust app; a missed sample is harmless.
            log.warning("lag.sample_failed", error=type(exc).__name__)

    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Partitions may move to another processor: forget every cached state."""
        processor.forget_states()

    app.on_partitions_revoked.connect(on_revoked)
    app.agent(events_topic, name="permstore.project", concurrency=1)(project)
    app.timer(interval=5.0)(report_lag)
    return app


def _acker(event: Any) -> Callable[[], None]:
    def ack() -> None:
        event.ack()

    return ack
