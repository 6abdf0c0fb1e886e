"""The faust agent folding `permstore.usage` into Cassandra (streams/usage_writer.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import orjson
import structlog
from cassandra.cluster import Session
from prometheus_client import Counter

from permstore.adapters.cassandra_layout.usage_writer import (
    BadUsageRecordError,
    UsageRecord,
    UsageWriter,
    parse_record,
)
from permstore.adapters.settings import Settings

log = structlog.get_logger("permstore.usage")

BATCH_RECORDS = 500
BATCH_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 10.0

FOLDED = Counter("permstore_usage_folded_records_total", "Usage records written to Cassandra")
REFUSED = Counter("permstore_usage_refused_records_total", "Usage records that did not parse")


def decode(value: bytes | None) -> UsageRecord | None:
    """The record, or None (logged and counted) when it is not a usage record."""
    try:
        return parse_record(orjson.loads(value or b""))
    except (orjson.JSONDecodeError, BadUsageRecordError) as exc:
        REFUSED.inc()
        log.warning("usage.record_refused", error=str(exc))
        return None


def register_usage_agent(app: faust.App, settings: Settings, session: Session) -> None:
    """Add the usage agent to the processor's faust app (same consumer group and login)."""
    writer = UsageWriter(session, settings.cassandra_keyspace, settings.usage_retention_days)
    topic = app.topic(
        settings.usage_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,
    )

    async def fold_usage(stream: Any) -> None:
        """Write each batch before asking for the next, so offsets follow the writes."""
        async for values in stream.take(BATCH_RECORDS, within=BATCH_SECONDS):
            records = [r for r in (decode(v) for v in values) if r is not None]
            await write_with_retry(writer, records)
            FOLDED.inc(len(records))

    app.agent(topic, name="permstore.usage", concurrency=1)(fold_usage)


async def write_with_retry(writer: UsageWriter, records: list[UsageRecord]) -> None:
    """Retry a failing write with backoff: the offsets are not acked until it succeeds."""
    delay = 0.2
    while True:
        try:
            await writer.write(records)
            return
        except Exception as exc:
            log.warning("usage.write_failed", error=type(exc).__name__, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)
