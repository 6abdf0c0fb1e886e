"""Per-tenant freshness and pending-work series stay bounded."""

from __future__ import annotations

import time

from prometheus_client import REGISTRY

from streams import metrics


def test_freshness_series_are_bounded() -> None:
    """Past the bound the least recent tenant's series is removed."""
    for n in range(metrics.MAX_TENANT_SERIES + 5):
        metrics.mark_fresh(f"t{n}", float(n))
    samples = [s for m in metrics.TENANT_FRESHNESS.collect() for s in m.samples]
    assert len(samples) == metrics.MAX_TENANT_SERIES
    tenants = {s.labels["tenant"] for s in samples}
    assert "t0" not in tenants and f"t{metrics.MAX_TENANT_SERIES + 4}" in tenants


class FixedPending:
    """A pending-work source with fixed contents."""

    def __init__(self, pending: dict[str, tuple[int, int]]) -> None:
        self.contents = pending

    def pending(self) -> dict[str, tuple[int, int]]:
        return self.contents


def test_pending_work_series_name_the_oldest_tenants_and_total_all() -> None:
    """Only the MAX_PENDING_SERIES tenants with the oldest work get series; totals cover all."""
    now_us = int(time.time() * 1_000_000)
    count = metrics.MAX_PENDING_SERIES + 20
    # Tenant t0 has the oldest work (1,000 s old), t1 the next, and so on.
    pending = {f"t{n}": (n + 1, now_us - (1000 - n) * 1_000_000) for n in range(count)}
    metrics.watch_lanes(FixedPending(pending))
    metrics.watch_lanes(FixedPending(pending))  # a second source replaces the first
    families = {m.name: m for m in REGISTRY.collect()}
    ages = {
        s.labels["tenant"]: s.value
        for s in families["permstore_tenant_oldest_pending_age_seconds"].samples
    }
    assert len(ages) == metrics.MAX_PENDING_SERIES
    assert "t0" in ages and f"t{count - 1}" not in ages
    assert 999 <= ages["t0"] <= 1100
    [total] = families["permstore_pending_events"].samples
    assert total.value == sum(n + 1 for n in range(count))
    [oldest] = families["permstore_oldest_pending_age_seconds"].samples
    assert oldest.value == max(ages.values())
