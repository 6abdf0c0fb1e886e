"""Testing without servers: an in-memory permstore built on the processor's own pure core."""

from __future__ import annotations

from .._http import ConsistencyTokens
from ..client import AsyncPermstoreClient, PermstoreClient
from .fake import ContractHandler, InMemoryPermstore
from .server import make_server, run_dev, serve_in_thread
from .transport import PermstoreASGI, mock_transport

__all__ = [
    "AsyncPermstoreClient",
    "ContractHandler",
    "InMemoryPermstore",
    "PermstoreASGI",
    "PermstoreClient",
    "fake_async_client",
    "fake_client",
    "make_server",
    "mock_transport",
    "run_dev",
    "serve_in_thread",
]


def fake_client(
    store: InMemoryPermstore,
    *,
    tenant: str | None = None,
    actor: str | None = "user:test",
    tokens: ConsistencyTokens | None = None,
) -> PermstoreClient:
    """A PermstoreClient answered by store in memory (no network)."""
    return PermstoreClient(
        "http://permstore.test",
        "fake",
        tenant=tenant,
        actor=actor,
        tokens=tokens,
        transport=mock_transport(store),
    )


def fake_async_client(
    store: InMemoryPermstore,
    *,
    tenant: str | None = None,
    actor: str | None = "user:test",
    tokens: ConsistencyTokens | None = None,
) -> AsyncPermstoreClient:
    """An AsyncPermstoreClient answered by store in memory (no network)."""
    return AsyncPermstoreClient(
        "http://permstore.test",
        "fake",
        tenant=tenant,
        actor=actor,
        tokens=tokens,
        transport=mock_transport(store),
    )
