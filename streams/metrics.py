"""Prometheus metrics of the stream processor."""

from __future__ import annotations

from cachetools import LRUCache
from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPLIED = Counter("permstore_events_applied_total", "Events applied to the views")
EVENTS_DUPLICATE = Counter(
    "permstore_events_duplicate_total", "Events ignored because their event_id was seen"
)
DEAD_LETTERED = Counter("permstore_events_dead_lettered_total", "Events sent to the DLQ")
VIEW_CHANGES = Counter("permstore_view_changes_total", "View cells written (fan-out)")
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
