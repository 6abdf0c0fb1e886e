"""Writes projector effects into one generation of Cassandra views, idempotently.

Every cell is written `USING TIMESTAMP offset + 1`: a redelivered or replayed event writes the
same cells at the same timestamps, and an older event can never overwrite a newer one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from operator import itemgetter
from typing import Any

import orjson
from cassandra.cluster import NoHostAvailable, Session
from cassandra.concurrent import execute_concurrent
from cassandra.connection import ConnectionBusy
from cassandra.query import BatchStatement, BatchType, PreparedStatement
from prometheus_client import Counter

from permstore.adapters.cassandra import execute
from permstore.adapters.cassandra_layout.encodings import (
    ALL_EVENTS_SUBJECT,
    audit_subjects,
    encode_snapshot,
    month_of,
    write_timestamp,
)
from permstore.adapters.cassandra_layout.tables import table
from permstore.adapters.view_updates import touch_records
from permstore.core.changes import bucket_of, change_records
from permstore.core.consistency import PROGRESS_KEY
from permstore.core.projector import (
    EVENT_KIND,
    REMOVED,
    STATE_KINDS,
    BatchEffects,
    PathChange,
    RecordedEvent,
    StateChange,
    ViewChange,
    load_state,
)
from permstore.core.state import NEVER, TenantState
from permstore.schemas.events import event_to_json

MAX_TTL_SECONDS = 20 * 365 * 86_400
SNAPSHOT_CHUNK_BYTES = 512 * 1024
WRITE_BATCH_STATEMENTS = 64
WRITE_BATCH_CELLS = 256
"""Most cells one unlogged batch carries (a grouped view write counts each of its rows)."""
BUSY_RETRIES = 8
"""Rounds of resending the batches a full connection refused, 10 ms apart and doubling."""
MAX_IN_ROWS = 256
"""Most rows one grouped view write names in its IN list."""


Write = tuple[tuple[str, ...], PreparedStatement, tuple[Any, ...], int]
"""One statement to run: the partition it lands in (sorted on, to batch neighbours), the
statement, its parameters and how many cells it writes. A plain tuple, not a NamedTuple: a
direct grant makes eight of them, and a NamedTuple's constructor cost about 1 µs each."""


ViewGroup = tuple[str, str, str, int, int]
"""(row's partition value, action, source, expires, TTL or -1 for a delete): the cells of one
event that one statement can write, given the list of the other clustering values."""
EXPIRY_GRACE_SECONDS = 60
DEFAULT_CHANGES_RETENTION_SECONDS = 7 * 86_400

BUSY_RESENDS = Counter(
    "permstore_store_busy_resends_total",
    "Write batches sent again because the driver's connection to Cassandra was full",
)

ChangeSink = Callable[[list[tuple[str, bytes]], list[tuple[str, bytes]]], Awaitable[None]]
"""Takes (tenant, record JSON) of every change a write completes and (tenant, touch record) of
every tenant it wrote (adapters/view_updates.py), after its rows are stored; returns once all
are acknowledged."""


class ViewWriter:
    """The processor's only door into Cassandra: loads state, writes views, audit and state."""

    def __init__(
        self,
        session: Session,
        keyspace: str,
        generation: int,
        concurrency: int,
        changes_retention_seconds: int = DEFAULT_CHANGES_RETENTION_SECONDS,
    ) -> None:
        self._session = session
        self._limit = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._months_written: set[tuple[str, int]] = set()
        self._changes_retention = changes_retention_seconds
        self._generation = generation
        g = table(keyspace, "%s", generation)
        perms, pats, state = (
            g % "permissions_by_principal",
            g % "principals_by_pattern",
            g % "projector_state",
        )
        prep = session.prepare
        upsert, delete = (
            "UPDATE {table} USING TIMESTAMP ? AND TTL ? SET sources[?] = ? WHERE tenant = ? AND ",
            "DELETE sources[?] FROM {table} USING TIMESTAMP ? WHERE tenant = ? AND ",
        )
        by_principal = "principal = ? AND pattern {match} ? AND action = ?"
        by_pattern = "pattern = ? AND principal {match} ? AND action = ?"

        def one_and_rows(text: str, table: str) -> tuple[PreparedStatement, PreparedStatement]:
            """A view statement for one row (`=`) and for the rows of a grouped write (`IN`),
            which a one-row write would pay for in binding a list and in the store."""
            return prep(text.format(table=table, match="=")), prep(
                text.format(table=table, match="IN")
            )

        self._set_perm, self._set_perm_rows = one_and_rows(upsert + by_principal, perms)
        self._del_perm, self._del_perm_rows = one_and_rows(delete + by_principal, perms)
        self._set_pat, self._set_pat_rows = one_and_rows(upsert + by_pattern, pats)
        self._del_pat, self._del_pat_rows = one_and_rows(delete + by_pattern, pats)
        self._set_path = prep(
            f"INSERT INTO {g % 'group_paths'} (tenant, principal, grp, via) VALUES (?, ?, ?, ?) "
            "USING TIMESTAMP ?"
        )
        self._del_path = prep(
            f"DELETE FROM {g % 'group_paths'} USING TIMESTAMP ? "
            "WHERE tenant = ? AND principal = ? AND grp = ?"
        )
        self._log = prep(
            f"INSERT INTO {g % 'event_log'} (tenant, month, recorded_at, kafka_offset, event) "
            "VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._audit = prep(
            f"INSERT INTO {g % 'audit_by_month'} (tenant, month, subject, recorded_at, "
            "kafka_offset) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._month = prep(
            f"INSERT INTO {g % 'months'} (tenant, subject, month) VALUES (?, ?, ?) "
            "USING TIMESTAMP ?"
        )
        self._put_state = prep(
            f"INSERT INTO {state} (tenant, kind, key, value) VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._del_state = prep(
            f"DELETE FROM {state} USING TIMESTAMP ? WHERE tenant = ? AND kind = ? AND key = ?"
        )
        self._set_applied = prep(
            f"UPDATE {state} USING TIMESTAMP ? SET applied_partition = ?, applied_offset = ?, "
            "applied_at = ? WHERE tenant = ?"
        )
        self._get_applied = prep(f"SELECT applied_offset FROM {state} WHERE tenant = ? LIMIT 1")
        self._get_state = prep(
            f"SELECT kind, key, value FROM {state} WHERE tenant = ? AND kind IN ?"
        )
        self._seen_ids = prep(
            f"SELECT key FROM {state} WHERE tenant = ? AND kind = '{EVENT_KIND}' AND key IN ?"
        )
        self._snapshot_chunk = prep(
            f"INSERT INTO {g % 'snapshot_chunks'} (tenant, kafka_offset, chunk, data) "
            "VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._change = prep(
            f"INSERT INTO {keyspace}.changes (tenant, bucket, kafka_offset, seq, record) "
            "VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
        )
        self._change_bucket = prep(
            f"INSERT INTO {keyspace}.change_buckets (tenant, bucket) VALUES (?, ?) "
            "USING TIMESTAMP ? AND TTL ?"
        )
        self._snapshot_index = prep(
            f"INSERT INTO {g % 'snapshot_index'} (tenant, recorded_at, kafka_offset, chunks) "
            "VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
        )

    async def applied_offset(self, tenant: str) -> int:
        """The last offset whose effects are fully written for a tenant, or -1."""
        rows = list(await execute(self._session, self._get_applied, (tenant,)))
        return int(rows[0][0]) if rows and rows[0][0] is not None else -1

    async def load_state(self, tenant: str) -> TenantState:
        """Load a tenant's projector state as of its applied offset."""
        offset = await self.applied_offset(tenant)

        def read_all() -> list[tuple[str, str, str]]:
            bound = self._get_state.bind((tenant, list(STATE_KINDS)))
            bound.fetch_size = 5000
            return [(r[0], r[1], r[2]) for r in self._session.execute(bound)]

        rows = await asyncio.to_thread(read_all)
        return load_state(rows, offset)

    async def known_event_ids(self, tenant: str, event_ids: Iterable[str]) -> set[str]:
        """The subset of event ids already applied for the tenant."""
        wanted = sorted(set(event_ids))
        found: set[str] = set()
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            rows = await execute(self._session, self._seen_ids, (tenant, chunk))
            found.update(r[0] for r in rows)
        return found

    async def write_all(
        self,
        batches: list[tuple[str, int, BatchEffects]],
        now_us: int | None = None,
        publish: ChangeSink | None = None,
    ) -> int:
        """Write the views, audit and change-stream rows of every (tenant, partition, effects),
        hand the change and touch records to publish once they are all stored, then write each
        tenant's state with its applied offset; returns the number of statements written.

        State and position go last, each in one single-partition batch, so a crash before it
        replays the tenant's events from the old state; the replay writes the same change rows
        again (same keys and content), so a follower of the table sees each change once. The
        change rows may go with the views: readers of the table stop at the applied position.
        """
        now_us = now_us if now_us is not None else int(time.time() * 1_000_000)
        writes: list[Write] = []
        for tenant, _, effects in batches:
            writes.extend(self._effect_writes(tenant, effects, now_us))
        # The months the batch's log rows land in (their first two parameters).
        months = {
            (params[0], params[1]) for _, statement, params, _ in writes if statement is self._log
        } - self._months_written
        writes.extend(
            (
                ("m", tenant, ALL_EVENTS_SUBJECT),
                self._month,
                (tenant, ALL_EVENTS_SUBJECT, month, 1),
                1,
            )
            for tenant, month in months
        )
        changes, published = self._change_writes(batches, now_us)
        writes.extend(changes)
        await self._flush(writes)
        # Remembered only once written: a failed flush is retried with its months rows.
        if len(self._months_written) + len(months) > 100_000:
            self._months_written.clear()
        self._months_written |= months
        if publish is not None:
            await publish(published, list(touch_records(self._generation, batches)))
        states = []
        for tenant, partition, effects in batches:
            last = effects.last_offset()
            if last is not None:
                states.append(self._write_state(tenant, partition, effects, last, now_us))
        await asyncio.gather(*states)
        return len(writes) + len(states)

    def _change_writes(
        self, batches: list[tuple[str, int, BatchEffects]], now_us: int
    ) -> tuple[list[Write], list[tuple[str, bytes]]]:
        """The change rows (and bucket rows) of the batches, and the records to publish.

        Each row lives the retention counted from its event's recorded time: a rebuild that
        writes an old event's rows again neither revives nor prolongs them.
        """
        writes: list[Write] = []
        published: list[tuple[str, bytes]] = []
        for tenant, partition, effects in batches:
            # bucket -> (newest offset, its TTL): the newest event's row wins and lives longest.
            buckets: dict[int, tuple[int, int]] = {}
            for change in effects.changes:
                ttl = self._changes_retention - (now_us - change.recorded_at) // 1_000_000
                ts = write_timestamp(change.offset)
                bucket = bucket_of(change.offset)
                for seq, record in change_records(tenant, partition, change):
                    body = orjson.dumps(record)
                    published.append((tenant, body))
                    if ttl > 0:
                        params = (tenant, bucket, change.offset, seq, body.decode(), ts, ttl)
                        writes.append((("c", tenant, str(bucket)), self._change, params, 1))
                if ttl > 0:
                    buckets[bucket] = max(buckets.get(bucket, (-1, 0)), (change.offset, ttl))
            writes.extend(
                (
                    ("cb", tenant),
                    self._change_bucket,
                    (tenant, bucket, write_timestamp(offset), ttl),
                    1,
                )
                for bucket, (offset, ttl) in buckets.items()
            )
        return writes, published

    def _effect_writes(self, tenant: str, effects: BatchEffects, now_us: int) -> list[Write]:
        writes: list[Write] = []
        for event_effects in effects.effects:
            ts = write_timestamp(event_effects.offset)
            writes.extend(self._view_writes(tenant, ts, event_effects.views, now_us))
            writes.extend(self._path_write(tenant, ts, path) for path in event_effects.paths)
        for recorded in effects.applied:
            writes.extend(self._audit_writes(tenant, recorded))
        return writes

    async def _flush(self, writes: list[Write]) -> None:
        """Send writes as unlogged batches of neighbours (same partition where possible), each
        of at most WRITE_BATCH_STATEMENTS statements and WRITE_BATCH_CELLS cells.

        Every statement carries its own timestamp, so batching changes no outcome; it only
        saves round trips, which dominate the processor's cost in the Python driver.
        """
        writes.sort(key=itemgetter(0))
        batches: list[tuple[BatchStatement, tuple[()]]] = []
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        statements = cells = 0
        for _, statement, params, write_cells in writes:
            if statements and (
                statements == WRITE_BATCH_STATEMENTS or cells + write_cells > WRITE_BATCH_CELLS
            ):
                batches.append((batch, ()))
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                statements = cells = 0
            batch.add(statement, params)
            statements += 1
            cells += write_cells
        if statements:
            batches.append((batch, ()))
        for attempt in range(BUSY_RETRIES + 1):
            if not batches:
                return
            # One thread hop per round: the driver's own concurrent executor avoids waking the
            # event loop once per statement.
            outcomes = await asyncio.to_thread(
                execute_concurrent,
                self._session,
                batches,
                concurrency=self._concurrency,
                raise_on_first_error=False,
            )
            refused = []
            for sent, (ok, outcome) in zip(batches, outcomes, strict=True):
                if ok:
                    continue
                if not _connection_busy(outcome) or attempt == BUSY_RETRIES:
                    raise outcome
                refused.append(sent)
            # The driver refuses requests while a connection's socket buffer is full instead
            # of queueing them: resend only those once it drained, not the whole piece.
            batches = refused
            if batches:
                BUSY_RESENDS.inc(len(batches))
                await asyncio.sleep(0.01 * 2**attempt)

    def _view_writes(
        self, tenant: str, ts: int, changes: Iterable[ViewChange], now_us: int
    ) -> list[Write]:
        """One event's view cells, as few statements as their shared values allow.

        The cells of one event that share action, source and expiry differ only in principal
        and pattern, so one statement per principal names its patterns in an IN list (and one
        per pattern its principals, for the index). Every cell gets the timestamp and TTL it
        would get alone, so the stored outcome is the same as one statement per cell; the
        store and the driver do far less work per cell in a large fan-out.
        """
        by_principal: dict[ViewGroup, dict[str, None]] = {}
        by_pattern: dict[ViewGroup, dict[str, None]] = {}
        for change in changes:
            expires = change.expires
            if expires == REMOVED or (expires != NEVER and expires <= now_us):
                ttl = -1
            elif expires == NEVER:
                ttl = 0
            else:
                ttl = min(MAX_TTL_SECONDS, (expires - now_us) // 1_000_000 + EXPIRY_GRACE_SECONDS)
            shared = (change.action, change.source, expires, ttl)
            by_principal.setdefault((change.principal, *shared), {})[change.pattern] = None
            by_pattern.setdefault((change.pattern, *shared), {})[change.principal] = None
        writes: list[Write] = []
        for groups, kind, one, many in (
            (
                by_principal,
                "p",
                (self._del_perm, self._set_perm),
                (self._del_perm_rows, self._set_perm_rows),
            ),
            (
                by_pattern,
                "r",
                (self._del_pat, self._set_pat),
                (self._del_pat_rows, self._set_pat_rows),
            ),
        ):
            for (key, action, source, expires, ttl), members in groups.items():
                listed = list(members)
                for start in range(0, len(listed), MAX_IN_ROWS):
                    rows = listed[start : start + MAX_IN_ROWS]
                    delete, upsert = one if len(rows) == 1 else many
                    where = (tenant, key, rows[0] if len(rows) == 1 else rows, action)
                    if ttl < 0:
                        writes.append(
                            ((kind, tenant, key), delete, (source, ts, *where), len(rows))
                        )
                    else:
                        params = (ts, ttl, source, expires, *where)
                        writes.append(((kind, tenant, key), upsert, params, len(rows)))
        return writes

    def _path_write(self, tenant: str, ts: int, change: PathChange) -> Write:
        where = ("p", tenant, change.principal)
        if change.via is None:
            return where, self._del_path, (ts, tenant, change.principal, change.group), 1
        return where, self._set_path, (tenant, change.principal, change.group, change.via, ts), 1

    def _audit_writes(self, tenant: str, recorded: RecordedEvent) -> list[Write]:
        ts = write_timestamp(recorded.offset)
        month = month_of(recorded.recorded_at)
        body = event_to_json(recorded.event).decode()
        # Audit rows share the log row's partition key: sorted next to it, all land in one
        # mutation.
        where = ("l", tenant, str(month))
        writes: list[Write] = [
            (where, self._log, (tenant, month, recorded.recorded_at, recorded.offset, body, ts), 1)
        ]
        writes.extend(
            (
                where,
                self._audit,
                (tenant, month, subject, recorded.recorded_at, recorded.offset, ts),
                1,
            )
            for subject in audit_subjects(recorded)
        )
        return writes

    async def _write_state(
        self, tenant: str, partition: int, effects: BatchEffects, last: int, now_us: int
    ) -> None:
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for event_effects in effects.effects:
            ts = write_timestamp(event_effects.offset)
            for change in event_effects.state:
                self._add_state(batch, tenant, ts, change)
        batch.add(self._set_applied, (write_timestamp(last), partition, last, now_us, tenant))
        await execute(self._session, batch)

    def _add_state(self, batch: BatchStatement, tenant: str, ts: int, change: StateChange) -> None:
        if change.value is None:
            batch.add(self._del_state, (ts, tenant, change.kind, change.key))
        else:
            batch.add(self._put_state, (tenant, change.kind, change.key, change.value, ts))

    async def write_progress(self, now_us: int) -> None:
        """Stamp the processor's progress row (see permcore.consistency.PROGRESS_KEY)."""
        await execute(self._session, self._set_applied, (now_us, 0, -1, now_us, PROGRESS_KEY))

    async def write_snapshot(self, tenant: str, state: TenantState, recorded_at: int) -> int:
        """Store the state after its applied offset, for point-in-time answers; returns bytes.

        Chunks go first and the index row last, so a reader never finds a partial snapshot.
        """
        blob = encode_snapshot(state)
        chunks = [
            blob[i : i + SNAPSHOT_CHUNK_BYTES] for i in range(0, len(blob), SNAPSHOT_CHUNK_BYTES)
        ]
        ts = write_timestamp(state.applied_offset)
        await asyncio.gather(
            *(
                self._run(self._snapshot_chunk, (tenant, state.applied_offset, n, chunk, ts))
                for n, chunk in enumerate(chunks)
            )
        )
        await execute(
            self._session,
            self._snapshot_index,
            (tenant, recorded_at, state.applied_offset, len(chunks), ts),
        )
        return len(blob)

    async def _run(self, statement: Any, params: tuple[Any, ...] | None = None) -> Any:
        async with self._limit:
            return await execute(self._session, statement, params)


def _connection_busy(error: BaseException) -> bool:
    """Whether a failed request was refused only because every connection was full."""
    return (
        isinstance(error, NoHostAvailable)
        and bool(error.errors)
        and all(isinstance(e, ConnectionBusy) for e in error.errors.values())
    )
