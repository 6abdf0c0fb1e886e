"""Per-tenant lanes: each tenant applies its own records in log order, acks each record once
after it is written, loses nothing when writes fail, and never waits for another tenant.

The writer is the in-memory stand-in of test_batch_processor (Cassandra's last-write-wins);
the real writer and Kafka are exercised by tests/integration/test_tenant_lanes.py.
"""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any, cast

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from permstore.adapters.cassandra_layout.writer import ChangeSink, ViewWriter
from permstore.core.projector import BatchEffects, to_micros
from permstore.core.state import NEVER
from permstore.streams.processor import BatchProcessor, RawRecord, TenantLanes
from tests.projection_sim import SimulatedViews, project_all, recorded
from tests.reference_model import parse_time
from tests.strategies import histories, recorded_times, write_failures
from tests.unit.test_batch_processor import FlakyWriter, no_dead_letters, raw_records
from tests.unit.test_changes import expected_changes


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(histories(max_events=15), min_size=2, max_size=3),
    write_failures(),
    st.integers(1, 5),
)
def test_lanes_apply_every_tenant_in_order_and_ack_each_record_once(
    streams: list[list[dict[str, Any]]], failures: set[tuple[str, str, int]], piece_rows: int
) -> None:
    by_tenant = {f"t{i}": events for i, events in enumerate(streams)}
    writer = FlakyWriter(set(failures))
    published: list[tuple[str, bytes]] = []

    async def publish(records: list[tuple[str, bytes]], touches: list[tuple[str, bytes]]) -> None:
        published.extend(records)

    processor = BatchProcessor(
        cast(ViewWriter, writer), no_dead_letters, cache_entries=10_000, publish_changes=publish
    )
    records = raw_records(by_tenant)
    acks: list[RawRecord] = []

    async def run() -> None:
        lanes = TenantLanes(processor, no_dead_letters, max_pending=7, max_batch=4, max_backoff=0)
        original = processor.apply_tenant

        async def small_pieces(*args: Any, **kwargs: Any) -> None:
            await original(*args, **{**kwargs, "piece_rows": piece_rows})

        processor.apply_tenant = small_pieces  # type: ignore[method-assign]
        for record in records:
            await lanes.submit(record, partial(acks.append, record))
        await lanes.wait_idle()

    asyncio.run(run())
    assert sorted(r.offset for r in acks) == [r.offset for r in records]
    for tenant in by_tenant:
        own = [r for r in records if r.key == tenant.encode()]
        assert [r for r in acks if r.key == tenant.encode()] == own, "acks out of log order"
        expected = project_all(
            recorded([json.loads(r.value or b"") for r in own], recorded_times(len(own)))
        )
        got = writer.views.get(tenant, SimulatedViews())
        assert got.snapshot() == expected.snapshot(), tenant
        assert_changes_stored_and_published(writer, published, tenant, own)


def assert_changes_stored_and_published(
    writer: FlakyWriter, published: list[tuple[str, bytes]], tenant: str, own: list[RawRecord]
) -> None:
    """The change table holds the reference model's diff of every event, however the writes
    failed and were retried; Kafka saw each of its records, some more than once."""
    index_of = {r.offset: i for i, r in enumerate(own)}
    table: dict[int, dict[str, tuple[list[tuple[str, str, int]], list[tuple[str, str]]]]] = {}
    rows = sorted((k, v) for k, v in writer.changes.items() if k[0] == tenant)
    for (_, offset, _), record in rows:
        added = [
            (
                a["resource"],
                a["action"],
                to_micros(parse_time(a["expires_at"])) if a["expires_at"] else NEVER,
            )
            for a in cast(list[dict[str, str]], record["added"])
        ]
        removed = [
            (r["resource"], r["action"]) for r in cast(list[dict[str, str]], record["removed"])
        ]
        table.setdefault(index_of[offset], {})[str(record["principal"])] = (added, removed)
    events = [json.loads(r.value or b"") for r in own]
    assert table == expected_changes(events), tenant
    seen = {body for t, body in published if t == tenant}
    assert seen == {orjson.dumps(v) for k, v in writer.changes.items() if k[0] == tenant}


class BlockingWriter(FlakyWriter):
    """Holds every write of one tenant until released."""

    def __init__(self, blocked: str) -> None:
        super().__init__(set())
        self.blocked = blocked
        self.release = asyncio.Event()

    async def write_all(
        self,
        batches: list[tuple[str, int, BatchEffects]],
        now_us: int | None = None,
        publish: ChangeSink | None = None,
    ) -> int:
        if any(tenant == self.blocked for tenant, _, _ in batches):
            await self.release.wait()
        return await super().write_all(batches, now_us, publish)


def test_a_stuck_tenant_does_not_hold_back_another_in_its_partition() -> None:
    """Tenant a's write never finishes until released; tenant b, later in the same partition,
    is applied and acked meanwhile, and the partition's lowest unacked record stays a's."""
    grant = {
        "type": "grant",
        "actor": "user:x",
        "occurred_at": "2026-01-01T00:00:00Z",
        "principal": "user:u",
        "resource": "doc:d",
        "permission": "read",
    }
    records = raw_records(
        {
            "a": [dict(grant, event_id=f"a{i}") for i in range(3)],
            "b": [dict(grant, event_id=f"b{i}") for i in range(3)],
        }
    )
    acked: list[int] = []
    b_offsets = [r.offset for r in records if r.key == b"b"]

    async def run() -> None:
        writer = BlockingWriter("a")
        processor = BatchProcessor(cast(ViewWriter, writer), no_dead_letters, 10_000)
        lanes = TenantLanes(processor, no_dead_letters)
        b_done = asyncio.Event()

        def ack(offset: int) -> None:
            acked.append(offset)
            if set(b_offsets) <= set(acked):
                b_done.set()

        for record in records:
            await lanes.submit(record, partial(ack, record.offset))
        # A liveness bound, not a timing: b must finish while a is still held.
        await asyncio.wait_for(b_done.wait(), 60)
        assert sorted(acked) == b_offsets
        assert set(lanes.pending()) == {"a"}
        writer.release.set()
        await lanes.wait_idle()

    asyncio.run(run())
    assert sorted(acked) == [r.offset for r in records]
