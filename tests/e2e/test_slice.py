"""The vertical slice over HTTP: grant -> allowed -> revoke -> denied, with tokens."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from permstore_client import PermstoreClient

pytestmark = pytest.mark.e2e


def test_grant_then_revoke_over_http(
    api_url: str, tenant: str, issue_token: Callable[..., str]
) -> None:
    """A grant becomes visible, a revoke removes it: read-your-writes through tokens."""
    with PermstoreClient(api_url, issue_token(tenant)) as client:
        before = client.check("user:alice", "doc:acme/eng/spec-1", "read", tenant=tenant)
        assert before.allowed is False and before.reasons == []

        token = client.grant(
            "user:alice", "doc:acme/eng/*", "read", tenant=tenant, actor="user:admin"
        ).token
        granted = client.check(
            "user:alice", "doc:acme/eng/spec-1", "read", tenant=tenant, at_least=token
        )
        assert granted.allowed is True
        grant = granted.reasons[0].grant
        assert (grant.principal, grant.resource, grant.permission, grant.expires_at) == (
            "user:alice",
            "doc:acme/eng/*",
            "read",
            None,
        )
        other = client.check("user:alice", "doc:acme/eng", "read", tenant=tenant, at_least=token)
        assert other.allowed is False, "T:p/* must not cover T:p itself"

        token = client.revoke(
            "user:alice", "doc:acme/eng/*", "read", tenant=tenant, actor="user:admin"
        ).token
        revoked = client.check(
            "user:alice", "doc:acme/eng/spec-1", "read", tenant=tenant, at_least=token
        )
        assert revoked.allowed is False
        assert revoked.reasons == []
