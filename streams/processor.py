"""Turns a batch of raw Kafka records into view writes: decode, project, write, dead-letter.

Framework-free: the faust agent hands records in, so the same code runs in tests and rebuilds.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

import structlog
from cachetools import LRUCache
from pydantic import ValidationError

from permstore.adapters.cassandra_layout.writer import ChangeSink, ViewWriter
from permstore.core.projector import BatchEffects, RecordedEvent, project_batch, project_pieces
from permstore.core.state import TenantState
from permstore.schemas.events import Event, parse_event
from permstore.streams import metrics

log = structlog.get_logger("permstore.processor")

SNAPSHOT_MIN_EVENTS = 5000
PROGRESS_EVERY_SECONDS = 1.0
PIECE_ROWS = 4000
"""Most view and path rows one piece of projection holds (the unit of work between yields):
about 0.1 s of projection and as much of writing on this 2-core machine (bench S6)."""


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One Kafka record as consumed: position, LogAppendTime (ms), key and value bytes."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record refused by validation, with the reason sent along to the DLQ."""

    record: RawRecord
    reason: str


DeadLetterSink = Callable[[Sequence[DeadLetter]], Awaitable[None]]


def describe_validation_error(exc: ValidationError) -> str:
    """A short reason naming each bad field and the rule it broke."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:10]:
        field = ".".join(str(p) for p in error["loc"]) or "event"
        parts.append(f"{field}: {error['msg']}")
    return "; ".join(parts)


def decode(record: RawRecord) -> Event | DeadLetter:
    """Validate one record against the event contract and its key."""
    if record.value is None:
        return DeadLetter(record, "value: empty record")
    try:
        event = parse_event(record.value)
    except ValidationError as exc:
        return DeadLetter(record, describe_validation_error(exc))
    if record.key is None or record.key != event.tenant.encode():
        return DeadLetter(record, "key: the record key must equal the event's tenant")
    return event


class BatchProcessor:
    """Applies batches of records to the views; safe to retry a batch any number of times."""

    def __init__(
        self,
        writer: ViewWriter,
        dead_letters: DeadLetterSink,
        cache_entries: int,
        publish_changes: ChangeSink | None = None,
    ) -> None:
        self._writer = writer
        self._dead_letters = dead_letters
        self._publish_changes = publish_changes
        self._states: LRUCache[str, TenantState] = LRUCache(
            maxsize=cache_entries, getsizeof=TenantState.size
        )
        # Events applied since each tenant's last snapshot (bounded; a lost count only delays).
        self._since_snapshot: LRUCache[str, int] = LRUCache(maxsize=100_000)
        self._progress_stamped = 0.0

    async def handle(self, records: Sequence[RawRecord]) -> None:
        """Apply one batch; raises if a write failed (the caller retries the whole batch)."""
        started = time.perf_counter()
        # A tenant's records all come from one partition (the key is the tenant); grouping by
        # tenant alone keeps one writer per tenant state even if that were ever violated.
        by_tenant: dict[str, list[RecordedEvent]] = {}
        partitions: dict[str, int] = {}
        letters: list[DeadLetter] = []
        for record in records:
            decoded = decode(record)
            if isinstance(decoded, DeadLetter):
                letters.append(decoded)
                continue
            recorded = RecordedEvent(decoded, record.offset, record.timestamp_ms * 1000)
            by_tenant.setdefault(decoded.tenant, []).append(recorded)
            partitions[decoded.tenant] = record.partition
        if letters:
            await self._dead_letters(letters)
            metrics.DEAD_LETTERED.inc(len(letters))
            for letter in letters:
                log.warning(
                    "event.dead_lettered",
                    partition=letter.record.partition,
                    offset=letter.record.offset,
                    reason=letter.reason,
                )
        try:
            projected = await asyncio.gather(
                *(self._project(t, partitions[t], events) for t, events in by_tenant.items())
            )
            # One flush for every tenant of the batch, then each tenant's state and position.
            await self._writer.write_all(
                [(t, p, effects) for t, p, _, effects in projected], publish=self._publish_changes
            )
        except BaseException:
            # Projection mutates cached states in place: any of them may now be ahead of what
            # was persisted, so forget them all and let the retry reload them.
            for tenant in by_tenant:
                self._states.pop(tenant, None)
            raise
        for tenant, _, state, effects in projected:
            await self._applied(tenant, state, effects)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _project(
        self, tenant: str, partition: int, events: list[RecordedEvent]
    ) -> tuple[str, int, TenantState, BatchEffects]:
        """Load the tenant's state and apply its events to it in memory."""
        state = await self._state_for(tenant)
        known = await self._writer.known_event_ids(tenant, (r.event.event_id for r in events))
        return tenant, partition, state, project_batch(state, events, known)

    async def _applied(self, tenant: str, state: TenantState, effects: BatchEffects) -> None:
        """Keep the written state, count what was applied, snapshot when due."""
        self._states[tenant] = state
        metrics.EVENTS_APPLIED.inc(len(effects.applied))
        metrics.EVENTS_DUPLICATE.inc(len(effects.duplicates))
        metrics.VIEW_CHANGES.inc(effects.view_change_count())
        metrics.PRINCIPAL_CHANGES.inc(sum(len(c.principals) for c in effects.changes))
        if effects.applied:
            last = effects.applied[-1]
            metrics.mark_fresh(tenant, last.recorded_at / 1_000_000)
            await self._maybe_snapshot(tenant, state, len(effects.applied), last)

    async def _maybe_snapshot(
        self, tenant: str, state: TenantState, applied: int, last: RecordedEvent
    ) -> None:
        """Snapshot once the events since the last one reach a quarter of the state (at least
        SNAPSHOT_MIN_EVENTS), so snapshot storage stays proportional to the log.

        A snapshot is filed under the recorded time of the last event it holds, so a state
        that already ran ahead of `last` (into the next piece's events) waits for a later one.
        """
        since = self._since_snapshot.get(tenant, 0) + applied
        if (
            since < max(SNAPSHOT_MIN_EVENTS, state.size() // 4)
            or state.applied_offset != last.offset
        ):
            self._since_snapshot[tenant] = since
            return
        size = await self._writer.write_snapshot(tenant, state, last.recorded_at)
        self._since_snapshot[tenant] = 0
        metrics.SNAPSHOTS.inc()
        log.info("snapshot.written", tenant=tenant, offset=state.applied_offset, bytes=size)

    async def apply_tenant(
        self,
        tenant: str,
        partition: int,
        events: Sequence[RecordedEvent],
        completed: Callable[[BatchEffects], None],
        piece_rows: int = PIECE_ROWS,
    ) -> None:
        """Apply one tenant's events in bounded pieces, each written after the one before it;
        `completed` hears of every piece once its events' state and position are written.

        Pieces are produced in a worker thread, the next one while the last is being written:
        a large fan-out then shares the interpreter with the event loop (which other tenants'
        writes need) instead of holding it, and projection overlaps the store's work.
        """
        state = await self._state_for(tenant)
        known = await self._writer.known_event_ids(tenant, (r.event.event_id for r in events))
        pieces = project_pieces(state, events, known, piece_rows, track_changes=True)
        try:
            piece = await self._produce(pieces)
            while piece is not None:
                written = asyncio.ensure_future(
                    self._writer.write_all(
                        [(tenant, partition, piece)], publish=self._publish_changes
                    )
                )
                try:
                    following = await self._produce(pieces)
                finally:
                    await written
                await self._applied(tenant, state, piece)
                await self._progress()
                completed(piece)
                piece = following
        except BaseException:
            # The state ran ahead of what was persisted: the retry reloads it.
            self._states.pop(tenant, None)
            raise

    @staticmethod
    async def _produce(pieces: Iterator[BatchEffects]) -> BatchEffects | None:
        started = time.perf_counter()
        piece = await asyncio.to_thread(_next_piece, pieces)
        metrics.PROJECT_SECONDS.observe(time.perf_counter() - started)
        return piece

    async def _progress(self) -> None:
        """Heartbeat after a written piece: the metric always, the store row once a second."""
        metrics.mark_progress()
        now = time.time()
        if now - self._progress_stamped >= PROGRESS_EVERY_SECONDS:
            self._progress_stamped = now
            try:
                await self._writer.write_progress(int(now * 1_000_000))
            except Exception as exc:
                # The stamp only informs readiness; a missed one must not fail the piece.
                log.warning("progress.stamp_failed", error=type(exc).__name__)

    def forget_states(self) -> None:
        """Drop cached states: after a rebalance another processor may have advanced them."""
        self._states.clear()

    async def _state_for(self, tenant: str) -> TenantState:
        cached = self._states.get(tenant)
        if cached is not None:
            return cached
        state = await self._writer.load_state(tenant)
        metrics.STATE_LOADS.inc()
        return state


def _next_piece(pieces: Iterator[BatchEffects]) -> BatchEffects | None:
    return next(pieces, None)


@dataclass
class _Lane:
    """One tenant's ordered queue of events not yet applied."""

    partition: int
    queue: deque[tuple[RecordedEvent, Callable[[], None]]] = field(default_factory=deque)
    in_flight: list[tuple[RecordedEvent, Callable[[], None]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class TenantLanes:
    """Key-ordered concurrency: one ordered queue and one worker per tenant, so a tenant with a
    heavy event never holds another tenant's events back, even in the same partition.

    Each record's `done` callback (the Kafka ack) is called once its event's state and
    position are written; the consumer commits a partition up to its lowest record not done.
    At most max_pending records wait at once (the submitter waits for room).
    """

    def __init__(
        self,
        processor: BatchProcessor,
        dead_letters: DeadLetterSink,
        *,
        max_pending: int = 20_000,
        max_batch: int = 1000,
        max_backoff: float = 5.0,
    ) -> None:
        self._processor = processor
        self._dead_letters = dead_letters
        self._lanes: dict[str, _Lane] = {}
        self._room = asyncio.Semaphore(max_pending)
        self._max_batch = max_batch
        self._max_backoff = max_backoff
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no tenant has work left."""
        await self._idle.wait()

    async def submit(self, record: RawRecord, done: Callable[[], None]) -> None:
        """Queue one record behind its tenant's earlier ones (dead letters go out at once)."""
        decoded = decode(record)
        if isinstance(decoded, DeadLetter):
            await self._dead_letters([decoded])
            metrics.DEAD_LETTERED.inc()
            log.warning(
                "event.dead_lettered",
                partition=record.partition,
                offset=record.offset,
                reason=decoded.reason,
            )
            done()
            return
        await self._room.acquire()
        recorded = RecordedEvent(decoded, record.offset, record.timestamp_ms * 1000)
        tenant = decoded.tenant
        lane = self._lanes.get(tenant)
        if lane is None:
            lane = self._lanes[tenant] = _Lane(record.partition)
        lane.partition = record.partition
        lane.queue.append((recorded, done))
        self._idle.clear()
        if lane.task is None and not self._stopping:
            lane.task = asyncio.ensure_future(self._run(tenant, lane))

    def pending(self) -> dict[str, tuple[int, int]]:
        """Per tenant with work: (events not yet applied, recorded time in us of the oldest)."""
        out = {}
        for tenant, lane in self._lanes.items():
            items = [*lane.in_flight, *lane.queue]
            if items:
                out[tenant] = (len(items), items[0][0].recorded_at)
        return out

    async def _run(self, tenant: str, lane: _Lane) -> None:
        try:
            while lane.queue and not self._stopping:
                while lane.queue and len(lane.in_flight) < self._max_batch:
                    lane.in_flight.append(lane.queue.popleft())
                await self._apply_with_retry(tenant, lane)
        finally:
            lane.task = None
            if not lane.queue and not lane.in_flight and self._lanes.get(tenant) is lane:
                del self._lanes[tenant]
            if not self._lanes:
                self._idle.set()

    async def _apply_with_retry(self, tenant: str, lane: _Lane) -> None:
        attempt = 0

        def completed(piece: BatchEffects) -> None:
            finished = {r.offset for r in (*piece.applied, *piece.duplicates, *piece.stale)}
            while lane.in_flight and lane.in_flight[0][0].offset in finished:
                _, done = lane.in_flight.pop(0)
                done()
                self._room.release()

        while lane.in_flight:
            attempt += 1
            events = [recorded for recorded, _ in lane.in_flight]
            try:
                await self._processor.apply_tenant(tenant, lane.partition, events, completed)
                return
            except Exception as exc:
                metrics.BATCH_RETRIES.inc()
                delay = min(self._max_backoff, 0.1 * 2 ** min(attempt, 10))
                log.warning(
                    "tenant.retry",
                    tenant=tenant,
                    attempt=attempt,
                    delay=delay,
                    error=type(exc).__name__,
                    detail=str(exc)[:500],
                )
                await asyncio.sleep(delay)

    async def stop(self, grace: float) -> bool:
        """Stop taking new work and wait up to grace seconds for the pieces being written;
        True when every worker stopped in time. Unfinished events stay unacked."""
        self._stopping = True
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        return not pending


async def handle_with_retry(
    processor: BatchProcessor,
    records: Sequence[RawRecord],
    *,
    max_backoff: float = 5.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> int:
    """Retry a batch with exponential backoff until it is applied; returns the attempts used.

    Offsets are committed only after this returns, so a failing store holds the stream back
    instead of losing events.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            await processor.handle(records)
            return attempt
        except Exception as exc:
            metrics.BATCH_RETRIES.inc()
            delay = min(max_backoff, 0.1 * 2 ** min(attempt, 10))
            log.warning(
                "batch.retry",
                attempt=attempt,
                delay=delay,
                error=type(exc).__name__,
                detail=str(exc)[:500],
            )
            await sleep(delay)
