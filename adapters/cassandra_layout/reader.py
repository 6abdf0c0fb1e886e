"""The API's read-only door into Cassandra: prepared statements, one round trip per check."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cachetools import LRUCache
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import PreparedStatement

from permstore.adapters.cassandra import execute
from permstore.adapters.cassandra_layout.encodings import ALL_EVENTS_SUBJECT, Rows, compact_rows
from permstore.adapters.cassandra_layout.positions import SharedPositions
from permstore.adapters.cassandra_layout.schema import ping
from permstore.adapters.cassandra_layout.tables import table
from permstore.adapters.cassandra_layout.view_cache import (
    CACHE_LOOKUPS,
    FULL_VIEW_ROWS,
    View,
    ViewCache,
    rows_in_view,
)
from permstore.core.consistency import START, LogPoint
from permstore.core.identifiers import patterns_matching

BATCH_CONCURRENCY = 100
POSITION_CACHE_SECONDS = 0.05
# How much older than POSITION_CACHE_SECONDS a held position may be while its next read runs.
POSITION_GRACE_SECONDS = 0.2

K = TypeVar("K")
V = TypeVar("V")


class PositionedCache(Generic[K, V]):
    """View reads remembered with the tenant position they were read at.

    An entry is served only while the tenant's applied position still equals that position:
    the processor moves the position after every batch it writes, so an unchanged position
    means no event of the tenant was applied since, and the remembered rows are still the view.
    Bounded (least recently used entries go first); size 0 turns it off.
    """

    def __init__(self, kind: str, entries: int, size_of: Callable[[V], int] | None = None) -> None:
        # The point is kept as a plain tuple of ints, which the cycle collector can untrack.
        # With size_of, entries bounds the sum of the values' sizes instead of their number.
        self._entries: LRUCache[K, tuple[int, int, V]] | None = None
        if entries:
            self._entries = (
                LRUCache(maxsize=entries)
                if size_of is None
                else LRUCache(maxsize=entries, getsizeof=lambda entry: size_of(entry[2]))
            )
        self._hit = CACHE_LOOKUPS.labels(kind, "hit")
        self._miss = CACHE_LOOKUPS.labels(kind, "miss")

    def get(self, key: K, point: LogPoint) -> V | None:
        """The value read at exactly point, if remembered."""
        if self._entries is None:
            return None
        found = self._entries.get(key)
        if found is None or found[0] != point.partition or found[1] != point.offset:
            self._miss.inc()
            return None
        self._hit.inc()
        return found[2]

    def put(self, key: K, point: LogPoint, value: V) -> None:
        """Remember a value read after the tenant's position was point."""
        if self._entries is not None:
            self._entries[key] = (point.partition, point.offset, value)


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit hit: an event's recorded time (us), offset and canonical JSON."""

    recorded_at: int
    offset: int
    event: str


class ViewReader:
    """Reads one generation of views; never writes (its Cassandra role cannot)."""

    def __init__(
        self, session: Session, keyspace: str, generation: int, cache_rows: int = 0
    ) -> None:
        self._session = session
        self.generation = generation
        self.cache = ViewCache(cache_rows)
        # Principals found too large to hold whole: their misses read only what a check needs.
        self._large: LRUCache[tuple[str, str], bool] = LRUCache(maxsize=100_000)
        # Positions only move forward, so a slightly old one is still a true lower bound. The
        # checks of a tenant that arrive while its position is being read share that read
        # (a burst of checks used to send one read each).
        self._shared_position = SharedPositions(
            self._read_point, ttl=POSITION_CACHE_SECONDS, grace=POSITION_GRACE_SECONDS
        )
        g = table(keyspace, "%s", generation)
        prep = session.prepare
        self._check = prep(
            f"SELECT pattern, sources FROM {g % 'permissions_by_principal'} "
            "WHERE tenant = ? AND principal = ? AND pattern IN ? AND action = ?"
        )
        self._view = prep(
            f"SELECT pattern, action, sources FROM {g % 'permissions_by_principal'} "
            f"WHERE tenant = ? AND principal = ? LIMIT {FULL_VIEW_ROWS + 1}"
        )
        self._view.fetch_size = None
        self._position = prep(
            f"SELECT applied_partition, applied_offset, applied_at FROM {g % 'projector_state'} "
            "WHERE tenant = ? LIMIT 1"
        )
        self._perms_page = prep(
            f"SELECT pattern, action, sources FROM {g % 'permissions_by_principal'} "
            "WHERE tenant = ? AND principal = ? AND (pattern, action) > (?, ?) LIMIT ?"
        )
        self._pattern_page = prep(
            f"SELECT principal, action, sources FROM {g % 'principals_by_pattern'} "
            "WHERE tenant = ? AND pattern = ? AND (principal, action) > (?, ?) LIMIT ?"
        )
        self._paths = prep(
            f"SELECT grp, via FROM {g % 'group_paths'} WHERE tenant = ? AND principal = ?"
        )
        # One principal's paths are bounded by the groups it reaches; read them in one page.
        self._paths.fetch_size = None
        self._months = prep(f"SELECT month FROM {g % 'months'} WHERE tenant = ? AND subject = ?")
        self._audit_page = prep(
            f"SELECT recorded_at, kafka_offset FROM {g % 'audit_by_month'} "
            "WHERE tenant = ? AND month = ? AND subject = ? "
            "AND (recorded_at, kafka_offset) > (?, ?) AND recorded_at <= ? LIMIT ?"
        )
        self._log_page = prep(
            f"SELECT recorded_at, kafka_offset, event FROM {g % 'event_log'} "
            "WHERE tenant = ? AND month = ? "
            "AND (recorded_at, kafka_offset) > (?, ?) AND recorded_at <= ? LIMIT ?"
        )
        self._snapshot_at = prep(
            f"SELECT recorded_at, kafka_offset, chunks FROM {g % 'snapshot_index'} "
            "WHERE tenant = ? AND recorded_at <= ? LIMIT 1"
        )
        self._snapshot_chunks = prep(
            f"SELECT chunk, data FROM {g % 'snapshot_chunks'} WHERE tenant = ? AND kafka_offset = ?"
        )
        self._log_one = prep(
            f"SELECT event FROM {g % 'event_log'} WHERE tenant = ? AND month = ? "
            "AND recorded_at = ? AND kafka_offset = ?"
        )

    async def position(self, tenant: str, *, fresh: bool = False) -> LogPoint:
        """The point of the tenant's log that the views have fully applied."""
        if fresh:
            return (await self.freshness(tenant))[0]
        return await self._shared_position.get(tenant)

    async def freshness(self, tenant: str) -> tuple[LogPoint, int | None]:
        """The applied point and when the processor wrote it (epoch us), read fresh."""
        started = time.monotonic()
        found = await self._read_position(tenant)
        # Checks after this one are answered at this position or a newer one, never an older.
        self._shared_position.offer(tenant, found[0], started)
        return found

    async def _read_point(self, tenant: str) -> LogPoint:
        return (await self._read_position(tenant))[0]

    async def _read_position(self, tenant: str) -> tuple[LogPoint, int | None]:
        rows = list(await execute(self._session, self._position, (tenant,)))
        if not rows or rows[0][1] is None:
            return START, None
        point = LogPoint(int(rows[0][0]), int(rows[0][1]))
        return point, int(rows[0][2]) if rows[0][2] is not None else None

    async def wait_for(
        self, tenant: str, wanted: LogPoint, bound_seconds: float
    ) -> tuple[bool, LogPoint]:
        """Wait until the views cover wanted, up to a bound; returns (reached, point)."""
        point = await self.position(tenant)
        deadline = time.monotonic() + bound_seconds
        delay = 0.005
        while not point.covers(wanted):
            if time.monotonic() >= deadline:
                return False, point
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.1)
            point = await self.position(tenant, fresh=True)
        return True, point

    async def check_rows(
        self, tenant: str, principal: str, resource: str, action: str, point: LogPoint
    ) -> Rows:
        """The (pattern, sources) rows that could allow: one single-partition read, or none.

        point is the tenant's position read before this call; the principal's cached entry
        answers when the cache's rule allows it at that point (view_cache.py).
        """
        entry = self.cache.lookup(tenant, principal, point)
        if entry is not None:
            rows = entry.rows_for(patterns_matching(resource), resource, action)
            if rows is not None:
                return rows
        [rows] = await self._rows_many(tenant, [(principal, resource, action)], point, False)
        return rows

    async def check_rows_many(
        self, tenant: str, items: Sequence[tuple[str, str, str]], point: LogPoint
    ) -> list[Rows]:
        """check_rows for many (principal, resource, action) items, in order.

        Cassandra is read once per distinct principal: its whole view when small (and with
        the cache on, or when the batch asks it several questions), else one read per item.
        The driver's concurrent executor runs the reads from one worker thread, so a batch
        costs one event-loop wake-up instead of one per read.
        """
        return await self._rows_many(tenant, items, point, True)

    async def _rows_many(
        self, tenant: str, items: Sequence[tuple[str, str, str]], point: LogPoint, look: bool
    ) -> list[Rows]:
        """check_rows_many; look=False when the caller already found no cached answer."""
        cache = self.cache
        patterns = {resource: patterns_matching(resource) for _, resource, _ in items}
        found: list[Rows | None] = [None] * len(items)
        asked: dict[str, list[int]] = {}
        for i, (principal, _, _) in enumerate(items):
            asked.setdefault(principal, []).append(i)
        views_wanted: list[str] = []
        targeted: list[int] = []
        for principal, indexes in asked.items():
            entry = cache.lookup(tenant, principal, point) if look else None
            for i in indexes:
                _, resource, action = items[i]
                if entry is not None:
                    found[i] = entry.rows_for(patterns[resource], resource, action)
            missing = [i for i in indexes if found[i] is None]
            if not missing:
                continue
            whole = (cache.enabled or len(missing) > 1) and (tenant, principal) not in self._large
            if whole:
                views_wanted.append(principal)
            else:
                targeted.extend(missing)
        ticket = cache.ticket()
        views = await self._read_many(self._view, [(tenant, p) for p in views_wanted])
        for principal, result in zip(views_wanted, views, strict=True):
            listed = list(result)
            if len(listed) > FULL_VIEW_ROWS:
                self._large[(tenant, principal)] = True
                targeted.extend(i for i in asked[principal] if found[i] is None)
                continue
            view: View = {(r[0], r[1]): tuple(r[2].items()) if r[2] else () for r in listed}
            cache.store(tenant, principal, point, ticket, view=view)
            for i in asked[principal]:
                if found[i] is None:
                    _, resource, action = items[i]
                    found[i] = rows_in_view(view, patterns[resource], action)
        reads = [(tenant, items[i][0], patterns[items[i][1]], items[i][2]) for i in targeted]
        for i, result in zip(targeted, await self._read_many(self._check, reads), strict=True):
            rows = compact_rows(result)
            principal, resource, action = items[i]
            cache.store(tenant, principal, point, ticket, answers={(resource, action): rows})
            found[i] = rows
        return [rows or () for rows in found]

    async def _read_many(
        self, statement: PreparedStatement, params: list[tuple[Any, ...]]
    ) -> list[Iterable[Sequence[Any]]]:
        """Each parameter tuple's rows: one read in the loop, several from a worker thread."""
        if len(params) <= 1:
            return [await execute(self._session, statement, p) for p in params]
        results = await asyncio.to_thread(
            execute_concurrent_with_args,
            self._session,
            statement,
            params,
            concurrency=BATCH_CONCURRENCY,
            raise_on_first_error=True,
        )
        return [outcome.result_or_exc for outcome in results]

    async def group_paths(
        self, tenant: str, principals: Iterable[str], point: LogPoint
    ) -> dict[str, dict[str, str]]:
        """Each principal's membership paths (group -> the member it is entered through)."""
        paths: dict[str, dict[str, str]] = {}
        missing = []
        for principal in sorted(set(principals)):
            entry = self.cache.lookup(tenant, principal, point)
            if entry is not None and entry.paths is not None:
                paths[principal] = entry.paths
            else:
                missing.append(principal)
        ticket = self.cache.ticket()
        read = await self._read_many(self._paths, [(tenant, p) for p in missing])
        for principal, rows in zip(missing, read, strict=True):
            found = {r[0]: r[1] for r in rows}
            self.cache.store(tenant, principal, point, ticket, paths=found)
            paths[principal] = found
        return paths

    async def permissions_page(
        self, tenant: str, principal: str, after: tuple[str, str], limit: int
    ) -> list[tuple[str, str, Mapping[str, int] | None]]:
        """Rows of a principal's partition after (pattern, action)."""
        rows = await execute(
            self._session, self._perms_page, (tenant, principal, after[0], after[1], limit)
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def who_can_rows(
        self, tenant: str, resource: str, after: tuple[str, str], limit: int
    ) -> list[tuple[str, str, str, Mapping[str, int] | None]]:
        """(principal, action, pattern, sources) rows after a cursor, merged over every
        pattern that matches the resource, in (principal, action) order."""
        patterns = patterns_matching(resource)
        pages = await asyncio.gather(
            *(
                execute(
                    self._session,
                    self._pattern_page,
                    (tenant, pattern, after[0], after[1], limit),
                )
                for pattern in patterns
            )
        )
        streams = [
            [(r[0], r[1], pattern, r[2]) for r in rows]
            for pattern, rows in zip(patterns, pages, strict=True)
        ]
        merged = list(heapq.merge(*streams, key=lambda row: (row[0], row[1])))
        # Each stream was cut at `limit`; past the shortest cut the merge may miss rows.
        cut = min(((s[-1][0], s[-1][1]) for s in streams if len(s) == limit), default=None)
        return [row for row in merged if cut is None or (row[0], row[1]) <= cut]

    async def months(self, tenant: str) -> list[int]:
        """Months that hold any of the tenant's events."""
        rows = await execute(self._session, self._months, (tenant, ALL_EVENTS_SUBJECT))
        return sorted(int(r[0]) for r in rows)

    async def audit_page(
        self,
        tenant: str,
        subjects: Iterable[str],
        after: tuple[int, int],
        until: int,
        limit: int,
        months: Iterable[int],
    ) -> list[AuditRow]:
        """Events naming any subject, after a cursor and up to a time, oldest first."""
        subject_list = list(subjects)
        found: list[AuditRow] = []
        for month in sorted(set(months)):
            hits: set[tuple[int, int]] = set()
            for subject in subject_list:
                rows = await execute(
                    self._session,
                    self._audit_page,
                    (tenant, month, subject, after[0], after[1], until, limit),
                )
                hits.update((int(r[0]), int(r[1])) for r in rows)
            chosen = sorted(hits)[: limit - len(found)]
            bodies = await asyncio.gather(
                *(execute(self._session, self._log_one, (tenant, month, t, o)) for t, o in chosen)
            )
            for (recorded_at, offset), body in zip(chosen, bodies, strict=True):
                rows = list(body)
                if rows:
                    found.append(AuditRow(recorded_at, offset, rows[0][0]))
            if len(found) >= limit:
                break
        return found

    async def log_page(
        self, tenant: str, month: int, after: tuple[int, int], until: int, limit: int
    ) -> list[AuditRow]:
        """A page of the tenant's event log in one month, oldest first."""
        rows = await execute(
            self._session, self._log_page, (tenant, month, after[0], after[1], until, limit)
        )
        return [AuditRow(int(r[0]), int(r[1]), r[2]) for r in rows]

    async def latest_snapshot(self, tenant: str, at_us: int) -> tuple[int, int, bytes] | None:
        """(recorded_at, offset, compressed state) of the newest snapshot at or before at_us."""
        rows = list(await execute(self._session, self._snapshot_at, (tenant, at_us)))
        if not rows:
            return None
        recorded_at, offset, chunks = int(rows[0][0]), int(rows[0][1]), int(rows[0][2])
        parts = list(await execute(self._session, self._snapshot_chunks, (tenant, offset)))
        if len(parts) != chunks:
            return None
        return recorded_at, offset, b"".join(bytes(p[1]) for p in sorted(parts))

    async def ping(self) -> None:
        """Raise unless Cassandra answers."""
        await ping(self._session)
