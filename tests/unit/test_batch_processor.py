"""The processor's batch logic: a batch that fails anywhere is retried whole, and no tenant's
events are lost or skipped because another tenant's projection or a write failed.

The writer here is an in-memory stand-in built on tests/projection_sim.py (Cassandra's
last-write-wins by timestamp); the real writer is exercised by the integration tests.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, cast

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from permstore.adapters.cassandra_layout.writer import ChangeSink, ViewWriter
from permstore.core.changes import change_records
from permstore.core.projector import BatchEffects
from permstore.core.state import TenantState
from permstore.streams.processor import BatchProcessor, DeadLetter, RawRecord, handle_with_retry
from tests.projection_sim import SimulatedViews, project_all, recorded
from tests.strategies import histories, recorded_times, write_failures


class FlakyWriter:
    """Per-tenant simulated views; the n-th call of a kind for a tenant fails once for each
    (call, tenant, n) in `failures`."""

    def __init__(self, failures: set[tuple[str, str, int]]) -> None:
        self.views: dict[str, SimulatedViews] = {}
        self.failures = failures
        self.calls: Counter[tuple[str, str]] = Counter()
        # (tenant, offset, seq) -> record: the change table, written again by every replay.
        self.changes: dict[tuple[str, int, int], dict[str, object]] = {}

    def _fail(self, call: str, tenant: str) -> None:
        self.calls[call, tenant] += 1
        failure = (call, tenant, self.calls[call, tenant])
        if failure in self.failures:
            self.failures.discard(failure)
            raise ConnectionError(f"{call} failed for {tenant}")

    def _of(self, tenant: str) -> SimulatedViews:
        return self.views.setdefault(tenant, SimulatedViews())

    async def load_state(self, tenant: str) -> TenantState:
        return self._of(tenant).load_state()

    async def known_event_ids(self, tenant: str, event_ids: Iterable[str]) -> set[str]:
        self._fail("known", tenant)
        return self._of(tenant).known_ids(event_ids)

    async def write_all(
        self,
        batches: list[tuple[str, int, BatchEffects]],
        now_us: int | None = None,
        publish: ChangeSink | None = None,
    ) -> int:
        for tenant, _, _ in batches:
            self._fail("write", tenant)
        published = []
        for tenant, partition, effects in batches:
            for change in effects.changes:
                for seq, record in change_records(tenant, partition, change):
                    self.changes[tenant, change.offset, seq] = record
                    published.append((tenant, orjson.dumps(record)))
        if publish is not None:
            await publish(published, [])
        for tenant, _, effects in batches:
            self._of(tenant).write(effects)
        return 0

    async def write_snapshot(self, tenant: str, state: TenantState, recorded_at: int) -> int:
        return 0

    async def write_progress(self, now_us: int) -> None:
        self.progress = now_us


def raw_records(streams: dict[str, list[dict[str, Any]]]) -> list[RawRecord]:
    """Every tenant's history as Kafka records of one partition, interleaved in log order."""
    records = []
    offset = 0
    longest = max((len(events) for events in streams.values()), default=0)
    for i in range(longest):
        for tenant, events in sorted(streams.items()):
            if i < len(events):
                event = dict(events[i], tenant=tenant)
                moment = recorded_times(longest)[i]
                records.append(
                    RawRecord(
                        0,
                        offset,
                        int(moment.timestamp() * 1000),
                        tenant.encode(),
                        json.dumps(event).encode(),
                    )
                )
                offset += 1
    return records


async def no_dead_letters(letters: Sequence[DeadLetter]) -> None:
    raise AssertionError(f"unexpected dead letters: {letters}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(histories(max_events=15), min_size=2, max_size=3),
    write_failures(),
    st.integers(1, 10),
)
def test_failed_batches_are_retried_without_losing_any_tenant(
    streams: list[list[dict[str, Any]]], failures: set[tuple[str, str, int]], batch: int
) -> None:
    """Whatever call fails for whichever tenant, the views end as an unfailing run's."""
    by_tenant = {f"t{i}": events for i, events in enumerate(streams)}
    writer = FlakyWriter(set(failures))
    processor = BatchProcessor(cast(ViewWriter, writer), no_dead_letters, cache_entries=10_000)
    records = raw_records(by_tenant)

    async def run() -> None:
        async def no_wait(_: float) -> None:
            return None

        for start in range(0, len(records), batch):
            await handle_with_retry(processor, records[start : start + batch], sleep=no_wait)

    asyncio.run(run())
    for tenant, events in by_tenant.items():
        # The tenant's own records, with the offsets they had in the shared partition.
        own = [r for r in records if r.key == tenant.encode()]
        expected = project_all(
            recorded([json.loads(r.value or b"") for r in own], recorded_times(len(own)))
        )
        got = writer.views.get(tenant, SimulatedViews())
        assert got.snapshot() == expected.snapshot(), (tenant, events)
