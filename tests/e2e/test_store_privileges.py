"""The API's Cassandra login can read every table of the keyspace and change nothing.

Every statement below is chosen so that, were it wrongly allowed, it would touch nothing the
other tests rely on (a tenant no one uses, a key that does not exist, a table that does not
exist), while the server still has to check the permission first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cassandra import Unauthorized

from permstore.adapters.cassandra import connect
from permstore.adapters.settings import Settings
from tests.support.stack import StackEnvironment

pytestmark = pytest.mark.e2e


def settings_for(test_env: StackEnvironment) -> Settings:
    """Settings pointing at this session's Cassandra and keyspace."""
    env = test_env.env
    overrides: dict[str, Any] = {"cassandra_keyspace": env["PERMSTORE_CASSANDRA_KEYSPACE"]}
    if "PERMSTORE_CASSANDRA_HOSTS" in env:
        overrides["cassandra_hosts"] = env["PERMSTORE_CASSANDRA_HOSTS"]
    if "PERMSTORE_CASSANDRA_PORT" in env:
        overrides["cassandra_port"] = int(env["PERMSTORE_CASSANDRA_PORT"])
    return Settings(**overrides)


@pytest.fixture(scope="module")
def api_session(test_env: StackEnvironment, api_url: str) -> Iterator[tuple[Any, str]]:
    """A session logged in exactly as the API logs in, and the keyspace name."""
    settings = settings_for(test_env)
    cluster, session = connect(settings, "api", request_timeout=30)
    try:
        yield session, settings.cassandra_keyspace
    finally:
        cluster.shutdown()


def tables(session: Any, keyspace: str) -> dict[str, dict[str, tuple[str, str]]]:
    """Every table of the keyspace: column name -> (kind, CQL type)."""
    rows = session.execute(
        "SELECT table_name, column_name, kind, type FROM system_schema.columns "
        "WHERE keyspace_name = %s",
        (keyspace,),
    )
    result: dict[str, dict[str, tuple[str, str]]] = {}
    for table, column, kind, cql_type in rows:
        result.setdefault(table, {})[column] = (kind, cql_type)
    return result


def literal(cql_type: str, marker: str) -> str:
    """A CQL literal of the type that names nothing real."""
    if cql_type == "text":
        return f"'{marker}'"
    if cql_type in ("int", "bigint", "smallint", "tinyint", "varint"):
        return "-7"
    if cql_type == "timestamp":
        return "0"
    raise AssertionError(f"no literal for key type {cql_type}")


def active_generation(session: Any, keyspace: str) -> int:
    """The generation the API reads."""
    row = session.execute(f"SELECT id FROM {keyspace}.active_generation WHERE singleton = 0").one()
    assert row is not None
    return int(row[0])


def test_api_login_reads_every_table(api_session: tuple[Any, str]) -> None:
    """SELECT works on every table (and there are tables to read)."""
    session, keyspace = api_session
    found = tables(session, keyspace)
    generation = active_generation(session, keyspace)
    assert f"permissions_by_principal_g{generation}" in found
    assert "active_generation" in found
    for table in found:
        rows = list(session.execute(f"SELECT * FROM {keyspace}.{table} LIMIT 1"))
        assert len(rows) <= 1


def test_api_login_cannot_insert_update_or_delete_in_any_table(
    api_session: tuple[Any, str],
) -> None:
    """Every kind of write to every table is refused with Unauthorized."""
    session, keyspace = api_session
    marker = f"zz-priv-{uuid.uuid4().hex[:8]}"
    found = tables(session, keyspace)
    assert len(found) >= 5
    for table, columns in found.items():
        keys = {c: t for c, (kind, t) in columns.items() if kind in ("partition_key", "clustering")}
        partition = {c: t for c, (kind, t) in columns.items() if kind == "partition_key"}
        where = " AND ".join(f"{c} = {literal(t, marker)}" for c, t in partition.items())
        names = ", ".join(keys)
        values = ", ".join(literal(t, marker) for t in keys.values())
        regular = [c for c, (kind, t) in columns.items() if kind == "regular" and t == "text"]
        statements = [
            f"INSERT INTO {keyspace}.{table} ({names}) VALUES ({values})",
            f"DELETE FROM {keyspace}.{table} WHERE {where}",
            f"BEGIN BATCH INSERT INTO {keyspace}.{table} ({names}) VALUES ({values}); APPLY BATCH",
        ]
        if regular and len(keys) == len(partition):
            statements.append(f"UPDATE {keyspace}.{table} SET {regular[0]} = 'x' WHERE {where}")
        for statement in statements:
            with pytest.raises(Unauthorized):
                session.execute(statement)


def test_api_login_cannot_touch_the_generation_switch(api_session: tuple[Any, str]) -> None:
    """Even writing the value already there is refused: the API can never switch reads."""
    session, keyspace = api_session
    generation = active_generation(session, keyspace)
    for statement in (
        f"UPDATE {keyspace}.active_generation SET id = {generation} WHERE singleton = 0",
        f"UPDATE {keyspace}.permissions_by_principal_g{generation} SET sources = sources + "
        "{'user:x|read': 0} WHERE tenant = 'zz-priv' AND principal = 'user:x' "
        "AND pattern = 'doc:x' AND action = 'read'",
    ):
        with pytest.raises(Unauthorized):
            session.execute(statement)
    assert active_generation(session, keyspace) == generation


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE {ks}.evil (k int PRIMARY KEY)",
        "CREATE TABLE IF NOT EXISTS {ks}.evil (k int PRIMARY KEY)",
        "ALTER TABLE {ks}.active_generation WITH comment = 'x'",
        "DROP TABLE IF EXISTS {ks}.no_such_table",
        "TRUNCATE {ks}.no_such_table",
        "CREATE INDEX IF NOT EXISTS evil ON {ks}.generations (state)",
        "CREATE KEYSPACE evil_ks WITH replication = "
        "{{'class': 'SimpleStrategy', 'replication_factor': 1}}",
        "DROP KEYSPACE IF EXISTS no_such_keyspace",
        "CREATE ROLE evil WITH LOGIN = true AND PASSWORD = 'x'",
        "GRANT MODIFY ON KEYSPACE {ks} TO permstore_api",
        "GRANT ALL PERMISSIONS ON ALL KEYSPACES TO permstore_api",
    ],
)
def test_api_login_cannot_change_schema_or_roles(
    api_session: tuple[Any, str], statement: str
) -> None:
    """DDL and privilege changes are refused with Unauthorized."""
    session, keyspace = api_session
    with pytest.raises(Unauthorized):
        session.execute(statement.format(ks=keyspace))
