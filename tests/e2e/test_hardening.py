"""Per-subject rate limiting (429 with Retry-After) and security headers on every answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.stack import ManagedProcess, StackEnvironment, extra_api

pytestmark = pytest.mark.e2e

LIMIT = 5


@pytest.fixture(scope="module")
def limited_api(test_env: StackEnvironment, processor_process: ManagedProcess) -> Iterator[str]:
    """An API process allowing each subject LIMIT requests per second."""
    with extra_api(
        test_env.env, "api-rate-limited", PERMSTORE_RATE_LIMIT_PER_SECOND=str(LIMIT)
    ) as url:
        yield url


def test_rate_limit_per_subject(
    limited_api: str, tenant: str, issue_token: Callable[..., str]
) -> None:
    """Past the limit a subject gets 429 with Retry-After and the error body."""
    body = {"tenant": tenant, "principal": "user:a", "resource": "doc:x", "action": "read"}
    headers = {"Authorization": f"Bearer {issue_token(tenant, 'check')}"}
    with httpx.Client(base_url=limited_api, headers=headers, timeout=10) as client:
        statuses = [client.post("/v1/check", json=body) for _ in range(LIMIT * 4)]
    codes = [r.status_code for r in statuses]
    assert 200 in codes and 429 in codes, codes
    refused = next(r for r in statuses if r.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "rate_limited"


def test_security_headers(api_url: str, tenant: str, issue_token: Callable[..., str]) -> None:
    """API answers, errors included, are inert in browsers and never cached."""
    body = {"tenant": tenant, "principal": "user:a", "resource": "doc:x", "action": "read"}
    ok = httpx.post(
        f"{api_url}/v1/check",
        json=body,
        headers={"Authorization": f"Bearer {issue_token(tenant, 'check')}"},
    )
    refused = httpx.post(f"{api_url}/v1/check", json=body)
    for response in (ok, refused):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers.get("x-request-id")
    assert ok.status_code == 200 and refused.status_code == 401


def test_freshness_reports_the_applied_event(
    api_url: str, tenant: str, issue_token: Callable[..., str]
) -> None:
    """A tenant's freshness names the newest applied event and its age."""
    headers = {"Authorization": f"Bearer {issue_token(tenant, 'check,write')}"}
    empty = httpx.get(f"{api_url}/v1/tenants/{tenant}/freshness", headers=headers).json()
    assert empty["applied_offset"] == -1 and empty["applied_at"] is None
    event = {
        "event_id": "f1",
        "tenant": tenant,
        "type": "grant",
        "actor": "user:admin",
        "occurred_at": "2026-01-01T00:00:00Z",
        "principal": "user:a",
        "resource": "doc:x",
        "permission": "read",
    }
    token = httpx.post(f"{api_url}/v1/events", json={"events": [event]}, headers=headers).json()[
        "token"
    ]
    body = {
        "tenant": tenant,
        "principal": "user:a",
        "resource": "doc:x",
        "action": "read",
        "consistency": {"at_least": token},
    }
    assert httpx.post(f"{api_url}/v1/check", json=body, headers=headers).json()["allowed"]
    fresh = httpx.get(f"{api_url}/v1/tenants/{tenant}/freshness", headers=headers).json()
    assert fresh["applied_offset"] >= 0 and fresh["token"] == token
    assert 0 <= fresh["age_seconds"] < 120
