"""Folds usage records into Cassandra with idempotent cells (schemas/cql/002_usage.cql).

Every cell a record writes is a pure function of the record: a day's cumulative count of one
worker incarnation at that incarnation's flush timestamp, and a last use at its own time. So
a redelivered or replayed record rewrites the same cells and nothing counts twice; no read
precedes a write and no Cassandra counter is used.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from permstore.adapters.cassandra import execute
from permstore.core.findings import DAY_US, USAGE_KINDS

MAX_ITEMS = 10_000
MAX_ITEM_CHARS = 4096
BATCH_CELLS = 40


@dataclass(frozen=True, slots=True)
class UsageItem:
    """One counter of a record: cumulative uses of (kind, item) that day, and the last use."""

    kind: str
    item: str
    uses: int
    last_used: int


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One flush of one worker incarnation for one tenant and day."""

    tenant: str
    day: int
    src: str
    ts: int
    items: tuple[UsageItem, ...]


class BadUsageRecordError(ValueError):
    """A record that is not a usage record of version 1."""


def parse_record(value: object) -> UsageRecord:
    """Validate a decoded record (JSON object); raises BadUsageRecordError naming the problem."""
    if not isinstance(value, dict) or value.get("v") != 1:
        raise BadUsageRecordError("not a version 1 usage record")
    tenant, day, src, ts, items = (value.get(k) for k in ("tenant", "day", "src", "ts", "items"))
    if not (isinstance(tenant, str) and isinstance(src, str) and tenant and src):
        raise BadUsageRecordError("tenant and src must be non-empty text")
    if not (isinstance(day, int) and isinstance(ts, int) and day >= 0 and ts > 0):
        raise BadUsageRecordError("day and ts must be positive integers")
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise BadUsageRecordError(f"items must be a list of at most {MAX_ITEMS}")
    parsed = []
    for entry in items:
        if not (isinstance(entry, list) and len(entry) == 4):
            raise BadUsageRecordError("each item is [kind, item, uses, last_used]")
        kind, item, uses, last = entry
        if kind not in USAGE_KINDS or not isinstance(item, str) or len(item) > MAX_ITEM_CHARS:
            raise BadUsageRecordError("unknown kind or bad item")
        if not (isinstance(uses, int) and isinstance(last, int) and uses >= 0 and last > 0):
            raise BadUsageRecordError("uses and last_used must be non-negative integers")
        parsed.append(UsageItem(kind, item, uses, last))
    return UsageRecord(tenant, day, src, ts, tuple(parsed))


class UsageWriter:
    """Writes usage records: one unlogged batch per Cassandra partition, concurrently."""

    def __init__(
        self,
        session: Session,
        keyspace: str,
        retention_days: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._retention_us = retention_days * DAY_US
        self._clock = clock
        self._day = session.prepare(
            f"INSERT INTO {keyspace}.usage_days (tenant, day, kind, item, src, uses) "
            "VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
        )
        self._last = session.prepare(
            f"INSERT INTO {keyspace}.usage_last (tenant, kind, item, last_used) "
            "VALUES (?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
        )

    def ttl(self, moment_us: int) -> int:
        """Seconds a cell about moment_us has left within the retention (0: already past)."""
        now_us = int(self._clock() * 1_000_000)
        return max(0, (moment_us + self._retention_us - now_us) // 1_000_000)

    async def write(self, records: Sequence[UsageRecord]) -> int:
        """Write every record's cells; returns how many cells were written."""
        groups: dict[tuple[str, ...], list[tuple[Any, tuple[Any, ...]]]] = {}
        for record in records:
            day_ttl = self.ttl((record.day + 1) * DAY_US)
            for e in record.items:
                if day_ttl > 0:
                    day_cells = (record.tenant, record.day, e.kind, e.item, record.src, e.uses)
                    groups.setdefault(("d", record.tenant, str(record.day)), []).append(
                        (self._day, (*day_cells, record.ts, day_ttl))
                    )
                last_ttl = self.ttl(e.last_used)
                if last_ttl > 0:
                    params = (record.tenant, e.kind, e.item, e.last_used)
                    groups.setdefault(("l", record.tenant, e.kind), []).append(
                        (self._last, (*params, e.last_used, last_ttl))
                    )
        batches = []
        for cells in groups.values():
            # One partition per batch (no coordinator fan-out), bounded in size.
            for start in range(0, len(cells), BATCH_CELLS):
                batch = BatchStatement(BatchType.UNLOGGED)
                for statement, params in cells[start : start + BATCH_CELLS]:
                    batch.add(statement, params)
                batches.append(batch)
        await asyncio.gather(*(execute(self._session, batch) for batch in batches))
        return sum(len(cells) for cells in groups.values())
