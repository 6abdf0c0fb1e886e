"""The audit index on the real Cassandra: a generation written with the layout before ADR 0008
keeps its history (bootstrap moves it into audit_by_month), and a month's row is never lost to
a failed write.
"""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest

from permstore.adapters.cassandra import connect
from permstore.adapters.cassandra_layout.catalogue import drop_generation
from permstore.adapters.cassandra_layout.reader import ViewReader
from permstore.adapters.cassandra_layout.schema import ensure_generation, migrate_audit_layout
from permstore.adapters.cassandra_layout.writer import ViewWriter, Write
from permstore.core.projector import RecordedEvent, project_batch
from permstore.core.state import TenantState
from permstore.schemas.events import parse_event
from tests.integration.test_crash_restart import settings_of
from tests.support.stack import StackEnvironment

pytestmark = pytest.mark.integration

OLD_LAYOUT = """CREATE TABLE {keyspace}.audit_index_g{gen} (
    tenant text, subject text, month int, recorded_at bigint, kafka_offset bigint,
    PRIMARY KEY ((tenant, subject, month), recorded_at, kafka_offset))"""


def test_old_audit_index_is_moved_and_still_answers(test_env: StackEnvironment) -> None:
    """Entries of two months and three subjects survive the move; the old table is gone."""
    settings = settings_of(test_env.env)
    keyspace = settings.cassandra_keyspace
    generation = random.randint(10_000, 99_999)
    cluster, session = connect(settings, "admin", request_timeout=60)
    try:
        ensure_generation(session, settings, generation)
        session.execute(OLD_LAYOUT.format(keyspace=keyspace, gen=generation))
        # (subject, month, recorded_at, offset): alice named by three events, bob by one.
        entries = [
            ("p:user:alice", 202601, 1_000, 1),
            ("r:doc:a/b", 202601, 1_000, 1),
            ("p:user:alice", 202601, 2_000, 2),
            ("p:user:bob", 202602, 3_000, 3),
            ("p:user:alice", 202602, 3_000, 3),
        ]
        for subject, month, recorded_at, offset in entries:
            session.execute(
                f"INSERT INTO {keyspace}.audit_index_g{generation} "
                "(tenant, subject, month, recorded_at, kafka_offset) VALUES (%s, %s, %s, %s, %s)",
                ("acme", subject, month, recorded_at, offset),
            )
        for month, recorded_at, offset in {(e[1], e[2], e[3]) for e in entries}:
            session.execute(
                f"INSERT INTO {keyspace}.event_log_g{generation} "
                "(tenant, month, recorded_at, kafka_offset, event) VALUES (%s, %s, %s, %s, %s)",
                ("acme", month, recorded_at, offset, f'{{"n": {offset}}}'),
            )

        assert migrate_audit_layout(session, keyspace, generation) == len(entries)
        assert migrate_audit_layout(session, keyspace, generation) is None
        tables = {
            row[0]
            for row in session.execute(
                "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
                (keyspace,),
            )
        }
        assert f"audit_index_g{generation}" not in tables

        reader = ViewReader(session, keyspace, generation)

        def offsets(subjects: list[str]) -> list[int]:
            rows = asyncio.run(
                reader.audit_page("acme", subjects, (-1, -1), 2**62, 100, [202601, 202602])
            )
            return [row.offset for row in rows]

        assert offsets(["p:user:alice"]) == [1, 2, 3]
        assert offsets(["p:user:bob"]) == [3]
        assert offsets(["r:doc:a/b"]) == [1]
        assert offsets(["p:user:alice", "r:doc:a/b"]) == [1, 2, 3]
        assert offsets(["p:user:carol"]) == []
    finally:
        drop_generation(session, keyspace, generation)
        cluster.shutdown()


def test_a_month_is_recorded_even_when_its_first_flush_fails(test_env: StackEnvironment) -> None:
    """A flush that fails is retried with its months row, so the month stays readable."""
    settings = settings_of(test_env.env)
    keyspace = settings.cassandra_keyspace
    generation = random.randint(10_000, 99_999)
    tenant = f"m{generation}"
    cluster, session = connect(settings, "admin", request_timeout=60)
    try:
        ensure_generation(session, settings, generation)
        writer = ViewWriter(session, keyspace, generation, concurrency=4)
        grant = parse_event(
            orjson.dumps(
                {
                    "event_id": "g1",
                    "tenant": tenant,
                    "type": "grant",
                    "actor": "user:admin",
                    "occurred_at": "2026-01-01T00:00:00Z",
                    "principal": "user:alice",
                    "resource": "doc:a",
                    "permission": "read",
                }
            )
        )
        recorded_at = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z, month 202601
        effects = project_batch(TenantState(), [RecordedEvent(grant, 7, recorded_at)], ())
        real_flush = writer._flush
        calls = 0

        async def flush_failing_once(writes: list[Write]) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise OSError("store unreachable")
            await real_flush(writes)

        writer._flush = flush_failing_once  # type: ignore[method-assign]
        with pytest.raises(OSError):
            asyncio.run(writer.write_all([(tenant, 0, effects)]))
        asyncio.run(writer.write_all([(tenant, 0, effects)]))

        reader = ViewReader(session, keyspace, generation)
        assert asyncio.run(reader.months(tenant)) == [202601]
        rows = asyncio.run(
            reader.audit_page(tenant, ["p:user:alice"], (-1, -1), 2**62, 10, [202601])
        )
        assert [row.offset for row in rows] == [7]
    finally:
        drop_generation(session, keyspace, generation)
        cluster.shutdown()
