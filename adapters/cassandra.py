"""Cassandra connection and the asyncio bridge for the callback-based driver.

What the keyspace holds (DDL, tables, statements) is adapters/cassandra_layout's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from cassandra import ConsistencyLevel, OperationTimedOut, ReadTimeout
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    ResponseFuture,
    Session,
)
from cassandra.policies import (
    ConstantSpeculativeExecutionPolicy,
    DCAwareRoundRobinPolicy,
    RetryPolicy,
    TokenAwarePolicy,
)
from cassandra.query import tuple_factory

from permstore.adapters.settings import Settings

# Statement kinds and the role whose session runs them: the processor writes views and
# positions, the API reads them (token checks included), admin runs schema changes.
_KIND_OF_ROLE = {"processor": "write", "api": "read", "admin": "write"}


def consistency_for(settings: Settings, role: str) -> int:
    """The consistency level of a role's statements (docs/adr: consistency levels)."""
    kind = _KIND_OF_ROLE.get(role, "read")
    name = (
        settings.cassandra_write_consistency
        if kind == "write"
        else settings.cassandra_read_consistency
    )
    return int(getattr(ConsistencyLevel, name))


def _idempotent_prepare(session: Session) -> None:
    """Mark every statement this session prepares idempotent, so that speculative executions
    apply to it: only for the read-only API role, whose statements are all SELECTs."""
    prepare = session.prepare

    def prepare_idempotent(*args: Any, **kwargs: Any) -> Any:
        statement = prepare(*args, **kwargs)
        statement.is_idempotent = True
        return statement

    session.prepare = prepare_idempotent


def connect(
    settings: Settings, role: str, *, request_timeout: float = 5.0
) -> tuple[Cluster, Session]:
    """Open a session as one of our least-privileged roles (admin, processor, api)."""
    secret = settings.cassandra_secret(role)
    auth = PlainTextAuthProvider(username=secret[0], password=secret[1]) if secret else None
    delay = settings.cassandra_speculative_delay_ms
    speculative = (
        ConstantSpeculativeExecutionPolicy(delay / 1000, max_attempts=1)
        if delay > 0 and role == "api"
        else None
    )
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(
            DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc)
        ),
        consistency_level=consistency_for(settings, role),
        # The default policy: retry once on another replica, never at a lower level (a
        # downgraded read or write would break the quorum overlap that tokens rely on).
        retry_policy=RetryPolicy(),
        speculative_execution_policy=speculative,
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
    if speculative is not None:
        _idempotent_prepare(session)
    return cluster, session


async def execute(session: Session, statement: Any, params: Sequence[Any] | None = None) -> Any:
    """Run a statement without blocking the event loop; returns the first page of rows.

    An idempotent statement (the API's reads) that timed out is sent once more: when a node
    has just died, the driver and the other coordinators go on choosing it until they have
    marked it down, and the second attempt goes to another coordinator of the query plan.
    """
    try:
        return await _execute_once(session, statement, params)
    except (OperationTimedOut, ReadTimeout):
        if not getattr(statement, "is_idempotent", False):
            raise
        return await _execute_once(session, statement, params)


async def _execute_once(session: Session, statement: Any, params: Sequence[Any] | None) -> Any:
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
