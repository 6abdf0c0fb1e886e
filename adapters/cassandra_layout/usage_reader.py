"""Reads of the usage tables (schemas/cql/002_usage.cql) for findings and per-principal usage."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent

from permstore.adapters.cassandra import execute
from permstore.core.findings import SEP, UsageKey

# Day partitions are read this many at a time, so a long window cannot flood the store.
DAY_READS_AT_ONCE = 64
# Just above the separator: an item range [prefix|, prefix}) holds every item of the prefix.
PREFIX_END = chr(ord(SEP) + 1)


class UsageStore:
    """Last uses and per-day counts of a keyspace's usage tables (read only)."""

    def __init__(self, session: Session, keyspace: str) -> None:
        self._session = session
        prep = session.prepare
        self._last = prep(
            f"SELECT item, last_used FROM {keyspace}.usage_last WHERE tenant = ? AND kind = ?"
        )
        self._last_range = prep(
            f"SELECT item, last_used FROM {keyspace}.usage_last "
            "WHERE tenant = ? AND kind = ? AND item >= ? AND item < ?"
        )
        self._day = prep(
            f"SELECT item, uses FROM {keyspace}.usage_days "
            "WHERE tenant = ? AND day = ? AND kind = ?"
        )
        self._day_range = prep(
            f"SELECT item, uses FROM {keyspace}.usage_days "
            "WHERE tenant = ? AND day = ? AND kind = ? AND item >= ? AND item < ?"
        )
        self._last_one = prep(
            f"SELECT last_used FROM {keyspace}.usage_last "
            "WHERE tenant = ? AND kind = ? AND item = ?"
        )
        self._day_one = prep(
            f"SELECT item, uses FROM {keyspace}.usage_days "
            "WHERE tenant = ? AND day = ? AND kind = ? AND item = ?"
        )
        for statement in (self._last, self._last_range, self._day, self._day_range, self._day_one):
            statement.fetch_size = None

    async def last_used(self, tenant: str, kinds: Iterable[str]) -> dict[UsageKey, int]:
        """(kind, item) -> last use µs, for every item of those kinds ever used (in retention)."""
        out: dict[UsageKey, int] = {}
        for kind in kinds:
            for item, last in await execute(self._session, self._last, (tenant, kind)):
                out[(kind, item)] = int(last)
        return out

    async def uses(self, tenant: str, kinds: Iterable[str], days: list[int]) -> dict[UsageKey, int]:
        """(kind, item) -> uses summed over the day buckets (every worker incarnation)."""
        queries = [(self._day, (tenant, day, kind), kind) for kind in kinds for day in days]
        return await self._sum(queries)

    async def principal_last_used(self, tenant: str, kind: str, prefix: str) -> dict[str, int]:
        """item -> last use µs for the items of one kind starting with `prefix|`."""
        params = (tenant, kind, prefix + SEP, prefix + PREFIX_END)
        rows = await execute(self._session, self._last_range, params)
        return {item: int(last) for item, last in rows}

    async def principal_uses(
        self, tenant: str, kind: str, prefix: str, days: list[int]
    ) -> dict[str, int]:
        """item -> uses over the day buckets, for the items starting with `prefix|`."""
        lo, hi = prefix + SEP, prefix + PREFIX_END
        queries = [(self._day_range, (tenant, day, kind, lo, hi), kind) for day in days]
        return {item: n for (_, item), n in (await self._sum(queries)).items()}

    async def item_last_used(self, tenant: str, kind: str, item: str) -> int | None:
        """The last use µs of one item, or None."""
        rows = list(await execute(self._session, self._last_one, (tenant, kind, item)))
        return int(rows[0][0]) if rows else None

    async def item_uses(self, tenant: str, kind: str, item: str, days: list[int]) -> int:
        """Uses of one item over the day buckets."""
        queries = [(self._day_one, (tenant, day, kind, item), kind) for day in days]
        return (await self._sum(queries)).get((kind, item), 0)

    async def _sum(self, queries: list[tuple[Any, tuple[Any, ...], str]]) -> dict[UsageKey, int]:
        """Uses summed over every (statement, parameters) day read.

        The driver's concurrent executor runs the reads from one worker thread (a window of
        90 days is 90 reads): one event-loop wake-up instead of one per day.
        """
        if not queries:
            return {}
        outcomes = await asyncio.to_thread(
            execute_concurrent,
            self._session,
            [(statement, params) for statement, params, _ in queries],
            concurrency=DAY_READS_AT_ONCE,
            raise_on_first_error=True,
        )
        total: dict[UsageKey, int] = {}
        for (_, _, kind), outcome in zip(queries, outcomes, strict=True):
            for item, uses in outcome.result_or_exc:
                total[(kind, item)] = total.get((kind, item), 0) + int(uses)
        return total
