"""The keyspace's DDL: migrations, one generation's tables, layout moves, role grants."""

from __future__ import annotations

import itertools

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from permstore.adapters.cassandra import execute
from permstore.adapters.cassandra_layout.encodings import write_timestamp
from permstore.adapters.cassandra_layout.tables import (
    GENERATION_DDL_FILE,
    cql_file_names,
    cql_text,
    table,
)
from permstore.adapters.settings import Settings


def migration_files() -> list[tuple[str, str]]:
    """Versioned keyspace migrations shipped in schemas/cql, in order."""
    return [(name, cql_text(name)) for name in cql_file_names() if name[:3].isdigit()]


def generation_ddl(keyspace: str, generation: int) -> list[str]:
    """CQL statements creating one generation of view tables."""
    return split_cql(cql_text(GENERATION_DDL_FILE).format(keyspace=keyspace, gen=generation))


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
    # The writer's timestamp for an event's rows, so replays stay harmless.
    insert = session.prepare(
        f"INSERT INTO {table(keyspace, 'audit_by_month', generation)} "
        "(tenant, month, subject, recorded_at, kafka_offset) VALUES (?, ?, ?, ?, ?) "
        "USING TIMESTAMP ?"
    )
    copied = 0
    rows = iter(session.execute(read))
    while chunk := [(*row, write_timestamp(int(row[4]))) for row in itertools.islice(rows, 10_000)]:
        execute_concurrent_with_args(
            session, insert, chunk, concurrency=64, raise_on_first_error=True
        )
        copied += len(chunk)
    session.execute(f"DROP TABLE {keyspace}.{old}")
    return copied


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


def drop_keyspace(session: Session, keyspace: str) -> None:
    """Delete a whole deployment's keyspace (tests and benchmarks drop their namespace)."""
    session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


async def ping(session: Session) -> None:
    """Raise unless Cassandra answers."""
    await execute(session, "SELECT release_version FROM system.local")
