"""Per-tenant freshness series stay bounded."""

from __future__ import annotations

from streams import metrics


def test_freshness_series_are_bounded() -> None:
    """Past the bound the least recent tenant's series is removed."""
    for n in range(metrics.MAX_TENANT_SERIES + 5):
        metrics.mark_fresh(f"t{n}", float(n))
    samples = [s for m in metrics.TENANT_FRESHNESS.collect() for s in m.samples]
    assert len(samples) == metrics.MAX_TENANT_SERIES
    tenants = {s.labels["tenant"] for s in samples}
    assert "t0" not in tenants and f"t{metrics.MAX_TENANT_SERIES + 4}" in tenants
