"""Cassandra connection and the asyncio bridge for the callback-based driver.

What the keyspace holds (DDL, tables, statements) is adapters/cassandra_layout's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    ResponseFuture,
    Session,
)
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import tuple_factory

from adapters.settings import Settings


def connect(
    settings: Settings, role: str, *, request_timeout: float = 5.0
) -> tuple[Cluster, Session]:
    """Open a session as one of our least-privileged roles (admin, processor, api)."""
    secret = settings.cassandra_secret(role)
    auth = PlainTextAuthProvider(username=secret[0], password=secret[1]) if secret else None
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(
            DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc)
        ),
        consistency_level=ConsistencyLevel.LOCAL_QUORUM,
        request_timeout=request_timeout,
        row_factory=tuple_factory,
    )
    cluster = Cluster(
        contact_points=settings.cassandra_hosts,
        port=settings.cassandra_port,
        auth_provider=auth,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        # v5 checksums every frame segment in pure Python in this driver; v4 does not.
        protocol_version=4,
        connect_timeout=10,
        idle_heartbeat_interval=10,
    )
    session = cluster.connect()
    return cluster, session


async def execute(session: Session, statement: Any, params: Sequence[Any] | None = None) -> Any:
    """Run a statement without blocking the event loop; returns the first page of rows."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[Any] = loop.create_future()
    response: ResponseFuture = session.execute_async(statement, params)

    def on_result(rows: Any) -> None:
        loop.call_soon_threadsafe(_resolve, waiter, rows, None)

    def on_error(exc: BaseException) -> None:
        loop.call_soon_threadsafe(_resolve, waiter, None, exc)

    response.add_callbacks(on_result, on_error)
    return await waiter


def _resolve(waiter: asyncio.Future[Any], rows: Any, exc: BaseException | None) -> None:
    if waiter.done():
        return
    if exc is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(rows)
