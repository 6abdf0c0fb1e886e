"""A generation written with the audit layout before ADR 0008 keeps its audit history.

Bootstrap moves the old per-subject index into audit_by_month and drops the old table; the
reader then finds every entry it found before, on the real Cassandra.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from adapters.cassandra import connect, ensure_generation, migrate_audit_layout
from services.api.reader import ViewReader
from services.ops import GENERATION_TABLES
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
        for table in GENERATION_TABLES:
            session.execute(f"DROP TABLE IF EXISTS {keyspace}.{table}_g{generation}")
        cluster.shutdown()
