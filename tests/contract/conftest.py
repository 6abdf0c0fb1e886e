"""One client contract suite, two backends: the in-memory fake and the real stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from permstore_client import ConsistencyTokens, PermstoreClient
from permstore_client.testing import InMemoryPermstore, fake_client

from tests.e2e.helpers import TokenFactory


@pytest.fixture(params=["memory", "stack"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which permstore answers: the in-memory fake, or Kafka + processor + Cassandra + API."""
    return str(request.param)


@pytest.fixture
def ps(backend: str, request: pytest.FixtureRequest, tenant: str) -> Iterator[PermstoreClient]:
    """A client on this test's tenant, answered by the backend under test."""
    if backend == "memory":
        with fake_client(InMemoryPermstore(), tenant=tenant, actor="user:admin") as client:
            yield client
        return
    api_url: str = request.getfixturevalue("api_url")
    issue_token: TokenFactory = request.getfixturevalue("issue_token")
    with PermstoreClient(
        api_url,
        issue_token(tenant, "check,write,audit"),
        tenant=tenant,
        actor="user:admin",
        timeout=30,
        tokens=ConsistencyTokens(),
    ) as client:
        yield client


@pytest.fixture
def anonymous_ps(
    backend: str, request: pytest.FixtureRequest, tenant: str
) -> Iterator[PermstoreClient]:
    """A client without a bearer token."""
    if backend == "memory":
        from permstore_client.testing import mock_transport

        transport = mock_transport(InMemoryPermstore())
        with PermstoreClient("http://permstore.test", tenant=tenant, transport=transport) as c:
            yield c
        return
    with PermstoreClient(request.getfixturevalue("api_url"), tenant=tenant, timeout=30) as c:
        yield c
