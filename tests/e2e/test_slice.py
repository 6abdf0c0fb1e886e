"""The vertical slice over HTTP: grant -> allowed -> revoke -> denied, with tokens."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from permstore import PermstoreClient

pytestmark = pytest.mark.e2e


def test_grant_then_revoke_over_http(
    api_url: str, tenant: str, issue_token: Callable[..., str]
) -> None:
    """A grant becomes visible, a revoke removes it: read-your-writes through tokens."""
    with PermstoreClient(api_url, issue_token(tenant)) as client:
        before = client.check(tenant, "user:alice", "doc:acme/eng/spec-1", "read")
        assert before.allowed is False and before.reasons == []

        token = client.grant(tenant, "user:alice", "doc:acme/eng/*", "read", actor="user:admin")
        granted = client.check(tenant, "user:alice", "doc:acme/eng/spec-1", "read", at_least=token)
        assert granted.allowed is True
        assert granted.reasons[0]["grant"] == {
            "principal": "user:alice",
            "resource": "doc:acme/eng/*",
            "permission": "read",
        }
        other = client.check(tenant, "user:alice", "doc:acme/eng", "read", at_least=token)
        assert other.allowed is False, "T:p/* must not cover T:p itself"

        token = client.revoke(tenant, "user:alice", "doc:acme/eng/*", "read", actor="user:admin")
        revoked = client.check(tenant, "user:alice", "doc:acme/eng/spec-1", "read", at_least=token)
        assert revoked.allowed is False
        assert revoked.reasons == []
