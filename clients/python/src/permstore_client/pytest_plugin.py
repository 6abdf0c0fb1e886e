"""pytest plugin (entry point `pytest11`): fixtures for testing code that asks permstore.

By default every test gets a fresh in-memory permstore. With PERMSTORE_TEST_URL and
PERMSTORE_TEST_TOKEN set (an operator token, tenant `*`, scopes check,write,audit), the same
fixtures talk to a real permstore instead, each test in a tenant of its own, so one suite proves
both. (Not PERMSTORE_URL: the CLI's variable must not switch a developer's tests by surprise.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ._http import ConsistencyTokens
from .client import AsyncPermstoreClient, PermstoreClient
from .models import WriteResult
from .testing import InMemoryPermstore, mock_transport

ACTOR = "service:pytest"


def real_url() -> str | None:
    """The real permstore the fixtures use, if PERMSTORE_TEST_URL is set."""
    return os.environ.get("PERMSTORE_TEST_URL") or None


@pytest.fixture
def permstore_fake() -> InMemoryPermstore | None:
    """The in-memory permstore behind the fixtures; None when they use a real one."""
    return None if real_url() else InMemoryPermstore()


@pytest.fixture
def permstore_tenant() -> str:
    """The tenant of this test: fixed for the fake, fresh per test on a real permstore."""
    return os.environ.get("PERMSTORE_TEST_TENANT") or (
        f"t{uuid.uuid4().hex[:12]}" if real_url() else "test"
    )


@pytest.fixture
def permstore_tokens() -> ConsistencyTokens:
    """Write tokens shared by every client of the test, so reads see the test's writes."""
    return ConsistencyTokens()


@pytest.fixture
def permstore_async_factory(
    permstore_fake: InMemoryPermstore | None,
    permstore_tenant: str,
    permstore_tokens: ConsistencyTokens,
) -> Callable[[], AsyncPermstoreClient]:
    """Makes AsyncPermstoreClients (for the app under test) on this test's permstore."""

    def make() -> AsyncPermstoreClient:
        common: dict[str, Any] = {
            "tenant": permstore_tenant,
            "actor": ACTOR,
            "tokens": permstore_tokens,
        }
        if permstore_fake is not None:
            return AsyncPermstoreClient(
                "http://permstore.test", "fake", transport=mock_transport(permstore_fake), **common
            )
        return AsyncPermstoreClient(
            str(real_url()), os.environ.get("PERMSTORE_TEST_TOKEN"), **common
        )

    return make


@pytest.fixture
def permstore(
    permstore_fake: InMemoryPermstore | None,
    permstore_tenant: str,
    permstore_tokens: ConsistencyTokens,
) -> Iterator[PermstoreClient]:
    """A PermstoreClient on this test's tenant (in memory, or the real permstore)."""
    common: dict[str, Any] = {
        "tenant": permstore_tenant,
        "actor": ACTOR,
        "tokens": permstore_tokens,
    }
    if permstore_fake is not None:
        client = PermstoreClient(
            "http://permstore.test", "fake", transport=mock_transport(permstore_fake), **common
        )
    else:
        client = PermstoreClient(str(real_url()), os.environ.get("PERMSTORE_TEST_TOKEN"), **common)
    with client:
        yield client


@pytest.fixture
def grant(permstore: PermstoreClient) -> Callable[..., WriteResult]:
    """grant(principal, resource, permission, expires_at=None): grant on this test's tenant."""
    return permstore.grant


@pytest.fixture
def revoke(permstore: PermstoreClient) -> Callable[..., WriteResult]:
    """revoke(principal, resource, permission) on this test's tenant."""
    return permstore.revoke


@pytest.fixture
def add_member(permstore: PermstoreClient) -> Callable[..., WriteResult]:
    """add_member(group, member) on this test's tenant."""
    return permstore.add_member


@pytest.fixture
def define_role(permstore: PermstoreClient) -> Callable[..., WriteResult]:
    """define_role(role, actions) on this test's tenant."""
    return permstore.define_role
