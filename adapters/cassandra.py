"""Cassandra connection, asyncio bridge for the callback-based driver, and schema migrations."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from importlib import resources
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
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.policies import (
    ConstantSpeculativeExecutionPolicy,
    DCAwareRoundRobinPolicy,
    RetryPolicy,
    TokenAwarePolicy,
)
from cassandra.query import tuple_factory

from adapters.settings import Settings

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


def migration_files() -> list[tuple[str, str]]:
    """Versioned keyspace migrations shipped in schemas/cql, in order."""
    folder = resources.files("schemas") / "cql"
    names = sorted(p.name for p in folder.iterdir() if p.name[:3].isdigit())
    return [(name, (folder / name).read_text()) for name in names]


def generation_ddl(keyspace: str, generation: int) -> list[str]:
    """CQL statements creating one generation of view tables."""
    text = (resources.files("schemas") / "cql" / "generation.cql").read_text()
    return split_cql(text.format(keyspace=keyspace, gen=generation))


def split_cql(text: str) -> list[str]:
    """Split a CQL file into statements, dropping comments."""
    lines = [line.split("--", 1)[0] for line in text.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def migrate(session: Session, settings: Settings) -> list[str]:
    """Create the keyspace and apply pending migrations idempotently; returns what it applied."""
    ks, rf = settings.cassandra_keyspace, settings.cassandra_replication_factor
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}"
    )
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {ks}.schema_migrations "
        "(name text PRIMARY KEY, applied_at timestamp)"
    )
    done = {row[0] for row in session.execute(f"SELECT name FROM {ks}.schema_migrations")}
    applied: list[str] = []
    for name, text in migration_files():
        if name in done:
            continue
        for statement in split_cql(text.format(keyspace=ks)):
            session.execute(statement)
        session.execute(
            f"INSERT INTO {ks}.schema_migrations (name, applied_at) "
            "VALUES (%s, toTimestamp(now()))",
            (name,),
        )
        applied.append(name)
    return applied


def ensure_generation(session: Session, settings: Settings, generation: int) -> None:
    """Create a generation's tables (idempotent)."""
    for statement in generation_ddl(settings.cassandra_keyspace, generation):
        session.execute(statement)


def migrate_audit_layout(session: Session, keyspace: str, generation: int) -> int | None:
    """Move a generation's audit index from its layout before ADR 0008 (a partition per
    subject and month) into audit_by_month, then drop the old table; returns the rows copied,
    or None when the generation has no old table."""
    old = f"audit_index_g{generation}"
    found = session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, old),
    )
    if not list(found):
        return None
    read = session.prepare(
        f"SELECT tenant, month, subject, recorded_at, kafka_offset FROM {keyspace}.{old}"
    )
    read.fetch_size = 5000
    # The writer's timestamp for an event's rows (its offset + 1), so replays stay harmless.
    insert = session.prepare(
        f"INSERT INTO {keyspace}.audit_by_month_g{generation} "
        "(tenant, month, subject, recorded_at, kafka_offset) VALUES (?, ?, ?, ?, ?) "
        "USING TIMESTAMP ?"
    )
    copied = 0
    rows = iter(session.execute(read))
    while chunk := [(*row, int(row[4]) + 1) for row in itertools.islice(rows, 10_000)]:
        execute_concurrent_with_args(
            session, insert, chunk, concurrency=64, raise_on_first_error=True
        )
        copied += len(chunk)
    session.execute(f"DROP TABLE {keyspace}.{old}")
    return copied


def active_generation(session: Session, keyspace: str) -> int | None:
    """The generation readers use, or None before the first bootstrap."""
    rows = list(session.execute(f"SELECT id FROM {keyspace}.active_generation WHERE singleton = 0"))
    return int(rows[0][0]) if rows and rows[0][0] is not None else None


def grant_least_privilege(session: Session, keyspace: str) -> None:
    """Processor may read and write the keyspace; the API may only read it."""
    for role, permissions in (
        ("permstore_processor", ("SELECT", "MODIFY")),
        ("permstore_api", ("SELECT",)),
    ):
        exists = list(
            session.execute("SELECT role FROM system_auth.roles WHERE role = %s", (role,))
        )
        if not exists:
            continue
        for permission in permissions:
            session.execute(f"GRANT {permission} ON KEYSPACE {keyspace} TO {role}")
