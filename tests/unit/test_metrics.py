"""Per-tenant freshness and pending-work series stay bounded."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import REGISTRY

from permstore.streams import metrics


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


def test_requests_to_a_mounted_app_are_labelled_by_its_prefix(tmp_path: Path) -> None:
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles
    from fastapi.testclient import TestClient

    from permstore.services.api.middleware import REQUESTS, MetricsMiddleware

    (tmp_path / "site.css").write_text("body {}")
    app = FastAPI()
    app.mount("/assets", StaticFiles(directory=str(tmp_path)), name="assets")
    client = TestClient(MetricsMiddleware(app))
    labels = ("/assets/{path}", "GET", "200")
    before = REQUESTS.labels(*labels)._value.get()
    assert client.get("/assets/site.css").status_code == 200
    assert REQUESTS.labels(*labels)._value.get() == before + 1
    unmatched = REQUESTS.labels("unmatched", "GET", "404")._value.get()
    assert client.get("/nowhere").status_code == 404
    assert REQUESTS.labels("unmatched", "GET", "404")._value.get() == unmatched + 1
