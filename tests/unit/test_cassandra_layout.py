"""The Cassandra layout package: its table list, its encodings, and that it alone holds CQL."""

from __future__ import annotations

import re
from pathlib import Path

from permstore.adapters.cassandra_layout.encodings import (
    audit_subjects,
    decode_snapshot,
    encode_snapshot,
    month_of,
    principal_subject,
    resource_subject,
    write_timestamp,
)
from permstore.adapters.cassandra_layout.schema import generation_ddl
from permstore.adapters.cassandra_layout.tables import generation_tables, table
from permstore.core.projector import RecordedEvent
from permstore.core.state import TenantState
from permstore.schemas.events import AddMemberEvent, DefineRoleEvent, Event, GrantEvent

REPO = Path(__file__).resolve().parents[2]
LAYOUT = REPO / "adapters" / "cassandra_layout"
# Role provisioning of the local servers (single node and cluster) and their readiness probe
# are deployment, not layout.
DEPLOYMENT = {
    REPO / "deploy" / name for name in ("cassandra_roles.py", "cluster_auth.py", "readiness.py")
}
CQL = re.compile(
    r"\b(SELECT .+ FROM|INSERT INTO|DELETE (FROM|\w+\[)|UPDATE \S+ (USING|SET)|"
    r"CREATE (TABLE|KEYSPACE)|DROP (TABLE|KEYSPACE)|GRANT \w+ ON|TRUNCATE)\b"
)


def test_every_generation_table_is_created_by_the_ddl() -> None:
    tables = generation_tables()
    assert "permissions_by_principal" in tables
    assert "audit_by_month" in tables
    created = [s for s in generation_ddl("ks", 7) if s.startswith("CREATE TABLE")]
    assert len(created) == len(tables)
    for name in tables:
        assert any(f"CREATE TABLE IF NOT EXISTS {table('ks', name, 7)} " in s for s in created)


COMMON = {"tenant": "t1", "actor": "user:admin", "occurred_at": "2026-01-01T00:00:00Z"}


def test_audit_subjects_use_one_encoding() -> None:
    grant = GrantEvent.model_validate(
        {
            "type": "grant",
            "event_id": "e1",
            **COMMON,
            "principal": "user:alice",
            "resource": "doc:a/b",
            "permission": "read",
        }
    )
    member = AddMemberEvent.model_validate(
        {
            "type": "add_member",
            "event_id": "e2",
            **COMMON,
            "group": "group:g",
            "member": "user:bob",
        }
    )
    role = DefineRoleEvent.model_validate(
        {
            "type": "define_role",
            "event_id": "e3",
            **COMMON,
            "role": "editor",
            "actions": ["read"],
        }
    )
    events: tuple[Event, ...] = (grant, member, role)
    recorded = [RecordedEvent(event, i, 1_000_000) for i, event in enumerate(events)]
    assert audit_subjects(recorded[0]) == [
        principal_subject("user:alice"),
        resource_subject("doc:a/b"),
    ]
    assert audit_subjects(recorded[1]) == ["p:group:g", "p:user:bob"]
    assert audit_subjects(recorded[2]) == ["role:editor"]


def test_months_timestamps_and_snapshots() -> None:
    assert month_of(0) == 197001
    assert month_of(1_767_225_600_000_000) == 202601  # 2026-01-01T00:00:00Z
    assert write_timestamp(0) == 1
    state = TenantState(applied_offset=41)
    state.set_grant("user:alice", "doc:a/*", "read", 0)
    state.add_member("group:g", "user:bob")
    state.roles["editor"] = frozenset({"read", "write"})
    back = decode_snapshot(encode_snapshot(state))
    assert back.applied_offset == 41
    assert back.grants == state.grants
    assert back.roles == state.roles


def test_no_cql_outside_the_layout_package() -> None:
    found = []
    for folder in ("adapters", "permcore", "schemas", "services", "streams", "permstore", "deploy"):
        for path in (REPO / folder).rglob("*.py"):
            if LAYOUT in path.parents or path in DEPLOYMENT:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if CQL.search(line):
                    found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert found == []
