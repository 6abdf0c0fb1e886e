"""Prometheus metrics of the stream processor."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol

from cachetools import LRUCache
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

EVENTS_APPLIED = Counter("permstore_events_applied_total", "Events applied to the views")
EVENTS_DUPLICATE = Counter(
    "permstore_events_duplicate_total", "Events ignored because their event_id was seen"
)
DEAD_LETTERED = Counter("permstore_events_dead_lettered_total", "Events sent to the DLQ")
VIEW_CHANGES = Counter("permstore_view_changes_total", "View cells written (fan-out)")
PRINCIPAL_CHANGES = Counter(
    "permstore_principal_changes_total",
    "Change-stream records written: one per principal whose effective set an event changed",
)
CHANGES_PUBLISHED = Counter(
    "permstore_changes_published_total", "Change-stream records published to Kafka"
)
STATE_LOADS = Counter("permstore_state_loads_total", "Tenant states loaded from Cassandra")
BATCH_RETRIES = Counter("permstore_batch_retries_total", "Batches retried after a failure")
BATCH_SECONDS = Histogram(
    "permstore_batch_seconds",
    "Time to apply one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TENANT_FRESHNESS = Gauge(
    "permstore_last_applied_recorded_time_seconds",
    "Recorded time of the newest event applied to a tenant's views",
    ["tenant"],
)
MAX_TENANT_SERIES = 1000


class _TenantSeries(LRUCache[str, None]):
    """The tenants that have a freshness series; the least recent loses its series."""

    def popitem(self) -> tuple[str, None]:
        tenant, value = super().popitem()
        TENANT_FRESHNESS.remove(tenant)
        return tenant, value


_tenant_series = _TenantSeries(maxsize=MAX_TENANT_SERIES)


def mark_fresh(tenant: str, recorded_at_seconds: float) -> None:
    """Record a tenant's view freshness; at most MAX_TENANT_SERIES tenants keep a series."""
    _tenant_series[tenant] = None
    TENANT_FRESHNESS.labels(tenant).set(recorded_at_seconds)


CONSUMER_LAG = Gauge(
    "permstore_consumer_lag", "Records behind the end of the partition", ["partition"]
)
SNAPSHOTS = Counter("permstore_snapshots_total", "Projector state snapshots written")
PROJECT_SECONDS = Histogram(
    "permstore_projection_piece_seconds",
    "CPU time to produce one bounded piece of projection",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

MAX_PENDING_SERIES = 100
LAST_PROGRESS = Gauge(
    "permstore_processor_last_progress_seconds",
    "Wall time at which the processor last wrote a piece of projection (its heartbeat)",
)


class PendingSource(Protocol):
    """What the pending-work collector reads: per tenant (events waiting, oldest recorded us)."""

    def pending(self) -> dict[str, tuple[int, int]]:
        """Per tenant with work: events not yet applied and the oldest one's recorded time."""
        ...


class _PendingCollector(Collector):
    """Per-tenant pending work read at scrape time: the MAX_PENDING_SERIES tenants with the
    oldest unapplied events get series, the totals cover every tenant."""

    def __init__(self, source: PendingSource) -> None:
        self._source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.time()
        pending = self._source.pending()
        events = GaugeMetricFamily(
            "permstore_tenant_pending_events",
            "Events read but not yet applied, per tenant (tenants with the oldest work)",
            labels=["tenant"],
        )
        age = GaugeMetricFamily(
            "permstore_tenant_oldest_pending_age_seconds",
            "Age (now - recorded time) of the tenant's oldest event not yet applied",
            labels=["tenant"],
        )
        oldest = sorted(pending.items(), key=lambda item: item[1][1])[:MAX_PENDING_SERIES]
        for tenant, (count, recorded_us) in oldest:
            events.add_metric([tenant], count)
            age.add_metric([tenant], max(0.0, now - recorded_us / 1_000_000))
        yield events
        yield age
        yield GaugeMetricFamily(
            "permstore_pending_events",
            "Events read but not yet applied, all tenants",
            value=sum(count for count, _ in pending.values()),
        )
        yield GaugeMetricFamily(
            "permstore_pending_tenants", "Tenants with events not yet applied", value=len(pending)
        )
        first = min((recorded for _, recorded in pending.values()), default=None)
        yield GaugeMetricFamily(
            "permstore_oldest_pending_age_seconds",
            "Age of the oldest event not yet applied, any tenant (0 when none waits)",
            value=0.0 if first is None else max(0.0, now - first / 1_000_000),
        )


_watched: list[_PendingCollector] = []


def watch_lanes(source: PendingSource) -> None:
    """Export the pending work of source (one source per process; a new one replaces it)."""
    for old in _watched:
        REGISTRY.unregister(old)
    _watched.clear()
    collector = _PendingCollector(source)
    REGISTRY.register(collector)
    _watched.append(collector)


def mark_progress() -> None:
    """Heartbeat: a piece of projection was written."""
    LAST_PROGRESS.set(time.time())
